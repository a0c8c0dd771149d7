"""The C kernels, one module per op family and precision: ``int8/`` (TFLite's integer scheme,
bit-exact with the IR's integer kernels in ``canonical_ir/quantize``) and ``float32/``. Importing this
package registers them all in ``emit.KERNELS``; ``views.py`` holds the ops that need no code."""
from convertkit.backends.c_bundle.kernels import float32, int8, views  # noqa: F401
