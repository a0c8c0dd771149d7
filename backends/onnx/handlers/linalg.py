"""IR -> ONNX handlers for the linalg family (see canonical_ir/ops/linalg.py)."""
from __future__ import annotations
