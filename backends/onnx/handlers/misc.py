"""IR -> ONNX handlers for the misc family (see canonical_ir/ops/misc.py)."""
from __future__ import annotations
