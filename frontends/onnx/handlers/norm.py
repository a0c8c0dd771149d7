"""ONNX -> IR handlers for the norm family (see canonical_ir/ops/norm.py)."""
from __future__ import annotations
