"""IR -> ONNX handlers for the quant family (see canonical_ir/ops/quant.py)."""
from __future__ import annotations
