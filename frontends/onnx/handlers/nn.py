"""ONNX -> IR handlers for the nn family (see canonical_ir/ops/nn.py)."""
from __future__ import annotations
