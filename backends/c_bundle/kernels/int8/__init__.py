"""int8 C kernels (TFLite's integer semantics; the IR's integer kernels are the reference)."""
from convertkit.backends.c_bundle.kernels.int8 import lut  # noqa: F401
from convertkit.backends.c_bundle.kernels.int8 import conv, dense  # noqa: F401
from convertkit.backends.c_bundle.kernels.int8 import binary, movement, pool, quant, softmax  # noqa: F401
