"""IR -> ONNX handlers for the activations family (see canonical_ir/ops/activations.py)."""
from __future__ import annotations
