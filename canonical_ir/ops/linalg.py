"""Matrix products (MatMul, Gemm, MatMulInteger, Einsum) and Det.

MatMul follows numpy's matmul: batch dims broadcast, a 1-D operand is a vector whose axis is dropped from
the result. Float products are computed in the operands' dtype (agreeing with onnxruntime to rounding);
integer products are exact. Each product op has a ``macs`` function (multiply-accumulates, for ``inspect``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convertkit.canonical_ir.ops.registry import (
    REQUIRED, InferContext, TensorType, broadcast_shapes, elements, register)

INT32 = np.dtype(np.int32)


# ---------------------------------------------------------------------------------- MatMul
def matmul_shape(ctx: InferContext, a: tuple, b: tuple) -> tuple[tuple, object]:
    """Result shape of numpy-style matmul of shapes ``a`` and ``b``, and the contracted size K."""
    if not a or not b:
        raise ctx.error("MatMul operands must have rank >= 1")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    ka, kb = a2[-1], b2[-2]
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise ctx.error(f"MatMul inner dimensions differ: {list(a)} x {list(b)}")
    batch = broadcast_shapes(ctx, a2[:-2], b2[:-2])
    out = list(batch) + ([a2[-2]] if len(a) > 1 else []) + ([b2[-1]] if len(b) > 1 else [])
    return tuple(out), (ka if isinstance(ka, int) else kb)


def _matmul_infer(ctx: InferContext) -> list[TensorType]:
    return [(ctx.dtype(0), matmul_shape(ctx, ctx.shape(0), ctx.shape(1))[0])]


def _matmul_macs(ctx: InferContext) -> int:
    out, k = matmul_shape(ctx, ctx.shape(0), ctx.shape(1))
    return elements(out) * (k if isinstance(k, int) else 1)


@register("MatMul", inputs=["A", "B"], infer=_matmul_infer, macs=_matmul_macs)
def matmul(a, b):
    """MatMul: numpy matmul semantics (broadcast batch dims, 1-D operands as vectors)."""
    return np.matmul(a, b).astype(a.dtype, copy=False)


# ------------------------------------------------------------------------------------- Gemm
def _gemm_dims(ctx: InferContext) -> tuple:
    a, b = ctx.shape(0), ctx.shape(1)
    if len(a) != 2 or len(b) != 2:
        raise ctx.error(f"Gemm takes 2-D A and B, got shapes {list(a)} and {list(b)}")
    m, ka = (a[1], a[0]) if ctx.attrs["transA"] else (a[0], a[1])
    kb, n = (b[1], b[0]) if ctx.attrs["transB"] else (b[0], b[1])
    if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
        raise ctx.error(f"Gemm inner dimensions differ: A' is {[m, ka]}, B' is {[kb, n]}")
    return m, (ka if isinstance(ka, int) else kb), n


def _gemm_infer(ctx: InferContext) -> list[TensorType]:
    m, _, n = _gemm_dims(ctx)
    if ctx.has(2):
        c = ctx.shape(2)
        if len(c) > 2 or any(isinstance(x, int) and isinstance(y, int) and x not in (1, y)
                             for x, y in zip(c[::-1], (n, m))):
            raise ctx.error(f"Gemm bias of shape {list(c)} does not broadcast to {[m, n]}")
    return [(ctx.dtype(0), (m, n))]


def _gemm_macs(ctx: InferContext) -> int:
    return elements(_gemm_dims(ctx))


@register("Gemm", inputs=["A", "B", "C?"], attrs={"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
          infer=_gemm_infer, macs=_gemm_macs)
def gemm(a, b, c=None, *, alpha, beta, transA, transB):
    """Gemm: alpha * A' @ B' + beta * C, with A' and B' optionally transposed and C broadcast.

    Float inputs are scaled in their own dtype; integer ones by the float factors in float64, then
    truncated back.
    """
    t = a.dtype.type if a.dtype.kind == "f" else np.float64
    y = np.matmul(a.T if transA else a, b.T if transB else b)
    if alpha != 1.0:
        y = y * t(alpha)
    if c is not None and beta != 0.0:
        y = y + (c * t(beta) if beta != 1.0 else c)
    return np.asarray(y).astype(a.dtype, copy=False)


# ------------------------------------------------------------------------------ MatMulInteger
def _matmul_integer_infer(ctx: InferContext) -> list[TensorType]:
    for i in (0, 1):
        if ctx.dtype(i) not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise ctx.error(f"MatMulInteger takes int8/uint8 operands, input {i} is {ctx.dtype(i)}")
    return [(INT32, matmul_shape(ctx, ctx.shape(0), ctx.shape(1))[0])]


def integer_operand(x: np.ndarray, zero_point: np.ndarray | None, row_axis: bool) -> np.ndarray:
    """``x - zero_point`` in int32. A 1-D zero point of A is per row (the second-last axis), of B per
    column (the last axis), as in ONNX MatMulInteger."""
    v = x.astype(np.int32)
    if zero_point is None:
        return v
    zp = np.asarray(zero_point).astype(np.int32)
    if row_axis and zp.ndim == 1 and zp.size > 1:
        zp = zp.reshape(-1, 1)
    return v - zp


def exact_product(fn: Callable, a: np.ndarray, b: np.ndarray, **kw: Any) -> np.ndarray:
    """An exact integer product (``np.matmul``, ``np.tensordot``...) as int64.

    It runs in float64 (BLAS-fast) whenever no sum can reach 2**53, which holds for all 8- and 16-bit
    operands of any realistic size; otherwise in int64.
    """
    k = max(a.size, 1)
    bound = float(np.max(np.abs(a), initial=0)) * float(np.max(np.abs(b), initial=0)) * k
    if bound < 2.0 ** 53:
        return fn(a.astype(np.float64), b.astype(np.float64), **kw).astype(np.int64)
    return fn(a.astype(np.int64), b.astype(np.int64), **kw)


@register("MatMulInteger", inputs=["A", "B", "a_zero_point?", "b_zero_point?"],
          infer=_matmul_integer_infer, macs=_matmul_macs)
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """MatMulInteger: (A - a_zero_point) @ (B - b_zero_point), exact, as int32."""
    av = integer_operand(a, a_zero_point, row_axis=a.ndim > 1)
    bv = integer_operand(b, b_zero_point, row_axis=False)
    return exact_product(np.matmul, av, bv).astype(np.int32)


# ------------------------------------------------------------------------------------ Einsum
def parse_einsum(equation: str, n_inputs: int) -> tuple[list[list[str]], list[str]]:
    """Equation -> per-input label lists and the output label list; "..." is one label.

    The implicit form (no "->") outputs the ellipsis, then the labels used exactly once, in ASCII order.
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")

    def labels(term: str) -> list[str]:
        out, i = [], 0
        while i < len(term):
            if term.startswith("...", i):
                out.append("...")
                i += 3
            elif term[i].isalpha():
                out.append(term[i])
                i += 1
            else:
                raise ValueError(f"einsum equation {equation!r}: unexpected {term[i]!r}")
        return out

    terms = [labels(t) for t in lhs.split(",")]
    if len(terms) != n_inputs:
        raise ValueError(f"einsum equation {equation!r} has {len(terms)} operands, node has {n_inputs}")
    if arrow:
        return terms, labels(rhs)
    counts: dict[str, int] = {}
    for t in terms:
        for lab in t:
            counts[lab] = counts.get(lab, 0) + 1
    ell = ["..."] if "..." in counts else []
    return terms, ell + sorted(lab for lab, n in counts.items() if n == 1 and lab != "...")


def _einsum_dims(ctx: InferContext) -> tuple[dict, tuple, list[str]]:
    try:
        terms, out = parse_einsum(ctx.attrs["equation"], ctx.n_inputs)
    except ValueError as e:
        raise ctx.error(str(e)) from None
    dims: dict[str, object] = {}
    ellipses = []
    for i, term in enumerate(terms):
        shape = ctx.shape(i)
        n_ell = len(shape) - (len(term) - 1) if "..." in term else 0
        if n_ell < 0 or ("..." not in term and len(term) != len(shape)):
            raise ctx.error(f"einsum operand {i} has rank {len(shape)}, its term has {len(term)} labels")
        pos = 0
        for lab in term:
            if lab == "...":
                ellipses.append(tuple(shape[pos:pos + n_ell]))
                pos += n_ell
                continue
            d, pos = shape[pos], pos + 1
            prev = dims.get(lab)
            if prev is None or prev == 1 or (isinstance(d, int) and not isinstance(prev, int) and d != 1):
                dims[lab] = d
            elif isinstance(d, int) and isinstance(prev, int) and d not in (1, prev):
                raise ctx.error(f"einsum label {lab!r} has sizes {prev} and {d}")
    return dims, broadcast_shapes(ctx, *ellipses) if ellipses else (), out


def _einsum_infer(ctx: InferContext) -> list[TensorType]:
    dims, ell, out = _einsum_dims(ctx)
    shape: list = []
    for lab in out:
        if lab == "...":
            shape.extend(ell)
        elif lab not in dims:
            raise ctx.error(f"einsum output label {lab!r} appears in no operand")
        else:
            shape.append(dims[lab])
    return [(ctx.dtype(0), tuple(shape))]


def _einsum_macs(ctx: InferContext) -> int:
    """Every combination of labels is one multiply-accumulate per extra operand."""
    if ctx.n_inputs < 2:
        return 0
    dims, ell, _ = _einsum_dims(ctx)
    return elements(list(dims.values()) + list(ell)) * (ctx.n_inputs - 1)


@register("Einsum", inputs=["Inputs*"], outputs=["Output"], attrs={"equation": REQUIRED},
          infer=_einsum_infer, macs=_einsum_macs)
def einsum(*xs, equation):
    """Einsum: numpy's einsum, always given the explicit output (so implicit ordering is ONNX's)."""
    terms, out = parse_einsum(equation, len(xs))
    explicit = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    return np.asarray(np.einsum(explicit, *xs, optimize=len(xs) > 1)).astype(xs[0].dtype, copy=False)


# --------------------------------------------------------------------------------------- Det
def _det_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    if len(shape) < 2:
        raise ctx.error(f"Det takes [..., M, M], got shape {list(shape)}")
    m, n = shape[-2:]
    if isinstance(m, int) and isinstance(n, int) and m != n:
        raise ctx.error(f"Det needs square matrices, got {m}x{n}")
    return [(ctx.dtype(0), tuple(shape[:-2]))]


@register("Det", infer=_det_infer)
def det(x):
    """Det: determinant of each trailing square matrix (float16 computed in float32: LAPACK lacks it)."""
    return np.asarray(np.linalg.det(x.astype(np.float32) if x.dtype == np.float16 else x)).astype(x.dtype)
