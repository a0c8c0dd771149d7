"""ONNX -> IR handlers for the linalg family (see canonical_ir/ops/linalg.py and attention.py).

None are needed: from opset 11 on, MatMul, Gemm (C optional since 11), MatMulInteger, Einsum (12), Det
and Attention (23; 24 adds an input, 25 attributes, all with the newest meaning) map one to one onto
the canonical ops, so the default handler copies them.
"""
from __future__ import annotations
