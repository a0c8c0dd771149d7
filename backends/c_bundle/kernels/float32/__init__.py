"""float32 C kernels (semantics: the IR op schemas' numpy kernels, within float32 rounding)."""
from convertkit.backends.c_bundle.kernels.float32 import (  # noqa: F401
    binary,
    conv,
    dense,
    movement,
    norm,
    pool,
    softmax,
    unary,
)
