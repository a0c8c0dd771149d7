"""IR -> ONNX handlers for the elementwise family (see canonical_ir/ops/elementwise.py)."""
from __future__ import annotations
