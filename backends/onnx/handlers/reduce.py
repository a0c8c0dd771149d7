"""IR -> ONNX handlers for the reduce family (see canonical_ir/ops/reduce.py)."""
from __future__ import annotations
