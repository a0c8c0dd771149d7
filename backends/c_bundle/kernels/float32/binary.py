"""float32 elementwise ops of several inputs with numpy broadcasting: Add, Sub, Mul, Div, Pow, Max,
Min, Sum, Mean, PRelu, Where and the comparisons (bool outputs are uint8_t 0/1).

Each input is addressed with its broadcast strides over the output's dims (0 on a broadcast dim);
dims are coalesced where every operand allows it, so same-shape operands become one flat loop and a
per-channel vector an inner loop over the channels. A scalar constant operand is baked in as a
literal. Fused Relu/Clip (Add, Sub, Mul, Div) clamp the result."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.float32.common import (
    attrs_of,
    broadcast_strides,
    clamp_assign,
    contiguous_strides,
    float_check,
    loop_nest,
)
from convertkit.canonical_ir.graph import Graph, Node

BINARY: dict[str, Callable[[str, str], str]] = {
    "Add": lambda a, b: f"{a} + {b}",
    "Sub": lambda a, b: f"{a} - {b}",
    "Mul": lambda a, b: f"{a} * {b}",
    "Div": lambda a, b: f"{a} / {b}",
    "Pow": lambda a, b: f"powf({a}, {b})",
    "PRelu": lambda a, b: f"({a} < 0.0f ? {a} * {b} : {a})",
}
VARIADIC: dict[str, Callable[[str, str], str]] = {
    "Max": lambda a, b: f"({a} > {b} ? {a} : {b})",
    "Min": lambda a, b: f"({a} < {b} ? {a} : {b})",
    "Sum": lambda a, b: f"{a} + {b}",
    "Mean": lambda a, b: f"{a} + {b}",
}
COMPARE: dict[str, str] = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=",
                           "GreaterOrEqual": ">="}


def _operand(ctx: EmitContext, i: int, exprs: list[str], k: int) -> str:
    ref = ctx.inputs[i]
    if ref.value is not None and ref.size == 1:
        return flit(float(np.asarray(ref.value, np.float32).reshape(-1)[0]))
    return f"in{i}[{exprs[k]}]"


def _emit(ctx: EmitContext, combine: Callable[[list[str]], str], clamp: bool = True) -> str:
    out = ctx.outputs[0]
    shape = out.shape
    idx = [i for i, r in enumerate(ctx.inputs) if r is not None]
    operands = [(contiguous_strides(shape), 0)] + [(broadcast_strides(ctx.inputs[i].shape, shape), 0)
                                                  for i in idx]
    attrs = attrs_of(ctx)

    def body(exprs: list[str]) -> str:
        vals = [_operand(ctx, i, exprs, k + 1) for k, i in enumerate(idx)]
        expr = combine(vals)
        if clamp:
            return clamp_assign(f"out0[{exprs[0]}]", expr, attrs)
        return f"out0[{exprs[0]}] = {expr};"
    return loop_nest(shape, operands, body)


def _check_float(graph: Graph, node: Node) -> str | None:
    return float_check()(graph, node)


for _op, _fn in BINARY.items():
    def _e(ctx: EmitContext, _f=_fn) -> str:
        return _emit(ctx, lambda v: _f(v[0], v[1]))
    kernel(_op, precision="float", check=_check_float, inplace=True)(_e)

for _op, _fn in VARIADIC.items():
    def _ev(ctx: EmitContext, _f=_fn, _op=_op) -> str:
        def combine(v: list[str]) -> str:
            acc = v[0]
            for x in v[1:]:
                acc = _f(acc, x)
            return f"({acc}) * {flit(1.0 / len(v))}" if _op == "Mean" and len(v) > 1 else acc
        return _emit(ctx, combine)
    kernel(_op, precision="float", check=_check_float, inplace=True)(_ev)


def _compare_check(graph: Graph, node: Node) -> str | None:
    for t in graph.inputs_of(node):
        if graph.tensor(t).dtype != np.float32:
            return f"{node.op} on {graph.tensor(t).dtype} has no C kernel"
    return None


for _op, _sym in COMPARE.items():
    def _ec(ctx: EmitContext, _s=_sym) -> str:
        return _emit(ctx, lambda v: f"(uint8_t)({v[0]} {_s} {v[1]})", clamp=False)
    kernel(_op, precision="float", check=_compare_check)(_ec)


def _where_check(graph: Graph, node: Node) -> str | None:
    c, x, y = graph.inputs_of(node)
    if graph.tensor(c).dtype != np.bool_:
        return "Where needs a bool condition"
    if graph.tensor(x).dtype != np.float32 or graph.tensor(y).dtype != np.float32:
        return "float Where needs float32 values"
    return None


@kernel("Where", precision="float", check=_where_check)
def emit_where(ctx: EmitContext) -> str:
    def combine(v: list[str]) -> str:
        return f"({v[0]} ? {v[1]} : {v[2]})"
    return _emit(ctx, combine, clamp=False)
