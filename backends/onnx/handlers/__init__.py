"""IR -> ONNX handlers, one module per op family (mirroring ``canonical_ir/ops``).

Only ops whose ONNX form at the target opset differs from the canonical one need a handler.
"""
from convertkit.backends.onnx.handlers import (  # noqa: F401
    elementwise,
    activations,
    nn,
    norm,
    linalg,
    shape_ops,
    reduce,
    misc,
    quant,
)
