"""ONNX -> IR handlers, one module per op family (mirroring ``canonical_ir/ops``).

Only ops whose ONNX form differs from the canonical one need a handler; see ``registry.py``.
"""
from convertkit.frontends.onnx.handlers import (  # noqa: F401
    core,
    activations,
    nn,
    norm,
    linalg,
    shape_ops,
    reduce,
    misc,
    quant,
)
