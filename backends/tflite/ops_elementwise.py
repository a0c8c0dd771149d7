"""Builders for elementwise ops and activations (see ``ops.py``)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from convertkit.backends.tflite.ops import (
    CHECKS,
    Ctx,
    _const,
    _fused,
    _is_q,
    _rank,
    _same_q,
    _shape,
    builder,
    float_only,
)
from convertkit.canonical_ir.graph import Graph, Node, QuantParams

# ---------------------------------------------------------------------------------- elementwise
_BINARY = {"Add": ("ADD", "AddOptions"), "Sub": ("SUB", "SubOptions"), "Mul": ("MUL", "MulOptions"),
           "Div": ("DIV", "DivOptions")}


def _binary_check(g: Graph, node: Node) -> str | None:
    if node.op == "Div":
        return float_only(g, node)
    ins = g.inputs_of(node)
    if _is_q(g, g.outputs_of(node)[0]) and not all(_is_q(g, i) for i in ins):
        return "int8 op with an unquantized operand"
    return None


@builder("Add", "Sub", "Mul", "Div", check=_binary_check)
def _binary(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    a, b = ctx.ins(node)
    code, opts = _BINARY[node.op]
    q = _is_q(g, a)
    ranks = [_rank(g, a), _rank(g, b)]
    bcast = _shape(g, a) != _shape(g, b)
    if node.op == "Mul":
        qa, qb, qy = (g.tensor(n).quant for n in (a, b, g.outputs_of(node)[0]))
        big = q and float(np.float64(qa.scale.reshape(-1)[0]) * qb.scale.reshape(-1)[0] / qy.scale.reshape(-1)[0]) >= 1
        version = 3 if big else 2 if q else 1
    elif node.op == "Div":
        version = 2 if bcast and max(ranks) > 4 else 1
    elif node.op == "Sub":
        version = 3 if bcast and max(ranks) > 4 else 2 if q else 1
    else:
        version = 2 if q else 1
    ctx.m.op(code, [ctx.t(a), ctx.t(b)], [ctx.out(node)], (opts, {"fused": _fused(node)}), version)


_UNARY: dict[str, tuple[str, str | None, Callable[[bool], int]]] = {
    "Sigmoid": ("LOGISTIC", None, lambda q: 2 if q else 1), "Tanh": ("TANH", None, lambda q: 2 if q else 1),
    "HardSwish": ("HARD_SWISH", "HardSwishOptions", lambda q: 1), "Relu": ("RELU", None, lambda q: 2 if q else 1),
    "Exp": ("EXP", "ExpOptions", lambda q: 1), "Sqrt": ("SQRT", None, lambda q: 1),
    "Neg": ("NEG", "NegOptions", lambda q: 1), "Log": ("LOG", None, lambda q: 1),
    "Abs": ("ABS", "AbsOptions", lambda q: 1), "Elu": ("ELU", None, lambda q: 1)}
FLOAT_ONLY = frozenset({"Exp", "Sqrt", "Neg", "Log", "Abs", "LogSoftmax", "Reciprocal", "Max", "Min", "Div"})
"""Ops written for float tensors only: their TFLite integer kernels are not what the IR's would be (if
it gains one). Elu and Gelu are written in int8: the IR's kernels are TFLite's look-up tables."""


def _unary_check(g: Graph, node: Node) -> str | None:
    if node.op in FLOAT_ONLY:
        return float_only(g, node)
    return None


@builder(*_UNARY, check=_unary_check)
def _unary(ctx: Ctx, node: Node) -> None:
    code, opts, version = _UNARY[node.op]
    x = ctx.ins(node)[0]
    ctx.m.op(code, [ctx.t(x)], [ctx.out(node)], (opts, {}) if opts else None, version(_is_q(ctx.g, x)))


def _elu_check(g: Graph, node: Node) -> str | None:
    return "alpha != 1" if float(node.attrs.get("alpha", 1.0)) != 1.0 else None


CHECKS["Elu"] = _elu_check


@builder("Gelu")
def _gelu(ctx: Ctx, node: Node) -> None:
    x = ctx.ins(node)[0]
    ctx.m.op("GELU", [ctx.t(x)], [ctx.out(node)],
             ("GeluOptions", {"approximate": ctx.attrs(node)["approximate"] == "tanh"}), 2 if _is_q(ctx.g, x) else 1)


@builder("Reciprocal", check=float_only)
def _reciprocal(ctx: Ctx, node: Node) -> None:
    """RSQRT of a Sqrt's input (TFLite's float RSQRT is ``1.f / std::sqrt(x)``, the same two roundings;
    a SQRT nothing else reads is pruned), else DIV(1, x)."""
    x = ctx.ins(node)[0]
    prod = ctx.g.producer(x)
    if prod is not None and prod.op == "Sqrt":
        ctx.m.op("RSQRT", [ctx.t(ctx.ins(prod)[0])], [ctx.out(node)], None, 1)
        return
    one = ctx.const(1.0, ctx.g.tensor(x).dtype, f"{node.name}_one")
    ctx.m.op("DIV", [one, ctx.t(x)], [ctx.out(node)], ("DivOptions", {"fused": 0}), 1)


@builder("Max", "Min", check=lambda g, n: float_only(g, n) or (
        None if len(g.inputs_of(n)) == 2 else "not exactly two inputs"))
def _max_min(ctx: Ctx, node: Node) -> None:
    a, b = ctx.ins(node)
    ctx.m.op("MAXIMUM" if node.op == "Max" else "MINIMUM", [ctx.t(a), ctx.t(b)], [ctx.out(node)],
             ("MaximumMinimumOptions", {}), 1)


@builder("LeakyRelu")
def _leaky_relu(ctx: Ctx, node: Node) -> None:
    x = ctx.ins(node)[0]
    ctx.m.op("LEAKY_RELU", [ctx.t(x)], [ctx.out(node)],
             ("LeakyReluOptions", {"alpha": float(ctx.attrs(node)["alpha"])}), 1)


@builder("PRelu", check=lambda g, n: None if _const(g, g.inputs_of(n)[1]) is not None or not _is_q(
        g, g.inputs_of(n)[0]) else "int8 PRelu with a run-time slope")
def _prelu(ctx: Ctx, node: Node) -> None:
    x, s = ctx.ins(node)
    ctx.m.op("PRELU", [ctx.t(x), ctx.t(s)], [ctx.out(node)], None, 1)


def _clip_bounds(g: Graph, node: Node) -> tuple[float | None, float | None] | None:
    ins = (g.inputs_of(node) + [None, None])[1:3]
    out = []
    for n in ins:
        if n is None:
            out.append(None)
            continue
        v = _const(g, n)
        if v is None or v.size != 1:
            return None
        out.append(float(v.reshape(-1)[0]))
    return out[0], out[1]


def _clip_check(g: Graph, node: Node) -> str | None:
    b = _clip_bounds(g, node)
    if b is None:
        return "bounds computed at run time"
    if b in ((0.0, 6.0), (-1.0, 1.0), (0.0, None)):
        return None
    x, y = g.inputs_of(node)[0], g.outputs_of(node)[0]
    if _is_q(g, x) and not _same_q(g.tensor(x).quant, g.tensor(y).quant):
        return f"int8 Clip{b} with output parameters other than the input's"
    if _is_q(g, x) and any(_is_q(g, n) for n in g.inputs_of(node)[1:] if n is not None):
        return "int8 Clip with quantized bounds"
    return None if b != (None, None) else "Clip without bounds"


@builder("Clip", check=_clip_check)
def _clip(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    lo, hi = _clip_bounds(g, node)
    q = _is_q(g, x)
    named = {(0.0, 6.0): ("RELU6", 2 if q else 1), (-1.0, 1.0): ("RELU_N1_TO_1", 1), (0.0, None): ("RELU", 2 if q else 1)}
    if (lo, hi) in named:
        code, version = named[(lo, hi)]
        ctx.m.op(code, [ctx.t(x)], [ctx.out(node)], None, version)
        return
    dt = g.tensor(x).dtype
    src = ctx.t(x)
    y = g.outputs_of(node)[0]
    qx = g.tensor(x).quant

    def bound(v: float, tag: str) -> int:
        if not q:  # int8: the bound quantized as TFLite does (zp + round(v / s)), compared as integers
            return ctx.const([v], dt, f"{node.name}_{tag}")
        s, zp = np.float32(qx.scale.reshape(-1)[0]), int(qx.zero_point.reshape(-1)[0])
        r = np.float32(v) / s
        iv = int(np.clip(zp + int(np.sign(r) * np.floor(np.abs(r) + 0.5)), -128, 127))
        return ctx.const([iv], dt, f"{node.name}_{tag}", QuantParams(qx.scale, qx.zero_point))
    if lo is not None:
        dst = ctx.out(node) if hi is None else ctx.mid(y, _shape(g, y), f"{y}_lo")
        ctx.m.op("MAXIMUM", [src, bound(lo, "min")], [dst], ("MaximumMinimumOptions", {}), 2 if q else 1)
        src = dst
    if hi is not None:
        ctx.m.op("MINIMUM", [src, bound(hi, "max")], [ctx.out(node)], ("MaximumMinimumOptions", {}),
                 2 if q else 1)


def _softmax_check(g: Graph, node: Node) -> str | None:
    x = g.inputs_of(node)[0]
    r = _rank(g, x)
    axis = int(node.attrs.get("axis", -1))
    if axis % r != r - 1:
        return f"axis {axis} is not the last axis"
    return float_only(g, node) if node.op == "LogSoftmax" else None


@builder("Softmax", "LogSoftmax", check=_softmax_check)
def _softmax(ctx: Ctx, node: Node) -> None:
    x = ctx.ins(node)[0]
    if node.op == "Softmax":
        ctx.m.op("SOFTMAX", [ctx.t(x)], [ctx.out(node)], ("SoftmaxOptions", {"beta": 1.0}),
                 2 if _is_q(ctx.g, x) else 1)
    else:
        ctx.m.op("LOG_SOFTMAX", [ctx.t(x)], [ctx.out(node)], ("LogSoftmaxOptions", {}), 1)
