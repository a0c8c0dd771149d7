"""IR -> ONNX handlers for the shape_ops family (see canonical_ir/ops/shape_ops.py)."""
from __future__ import annotations
