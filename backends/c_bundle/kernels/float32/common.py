"""Helpers shared by the float32 kernels: dtype checks, fused activations as a clamp, loop nests
over strided operands (dims coalesced where every operand allows it), the IR kernel of a node
evaluated at export time."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, flit
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION

F32 = np.dtype(np.float32)


def attrs_of(ctx_or_node: Any) -> dict[str, Any]:
    """The node's attributes with the schema's defaults filled in."""
    node = ctx_or_node.node if isinstance(ctx_or_node, EmitContext) else ctx_or_node
    return get_schema(node.op).resolve_attrs(dict(node.attrs))


def spatial_check(const_inputs: Sequence[int] = ()) -> Callable[[Graph, Node], str | None]:
    """A check for 1-D/2-D channels-last spatial ops (conv, pool) on float32 tensors."""
    base = float_check(const_inputs=const_inputs)

    def check(graph: Graph, node: Node) -> str | None:
        why = base(graph, node)
        if why:
            return why
        layout = node.attrs.get("layout", "NCHW")
        rank = graph.tensor(graph.inputs_of(node)[0]).rank or 0
        if rank not in (3, 4):
            return f"float {node.op} of rank {rank} (the C bundle has 1-D and 2-D)"
        if layout.startswith("NC"):
            return f"float {node.op} in layout {layout} (the C bundle takes channels-last)"
        return None
    return check


def float_check(n_float_inputs: int | None = None, const_inputs: Sequence[int] = (),
                max_outputs: int | None = 1) -> Callable[[Graph, Node], str | None]:
    """A check: output 0 and the first ``n_float_inputs`` present inputs (all when None) are float32;
    inputs ``const_inputs`` (when present) are constants; at most ``max_outputs`` outputs."""
    def check(graph: Graph, node: Node) -> str | None:
        outs = graph.outputs_of(node)
        if max_outputs is not None and len(outs) > max_outputs:
            return f"float {node.op} with {len(outs)} outputs has no C kernel"
        for o in outs:
            if graph.tensor(o).dtype != F32:
                return f"float {node.op} needs float32 tensors (output {graph.tensor(o).dtype})"
        ins = graph.inputs_of(node)
        for i, t in enumerate(ins[:n_float_inputs] if n_float_inputs is not None else ins):
            if t is not None and graph.tensor(t).dtype != F32:
                return f"float {node.op} needs float32 tensors (input {i} is {graph.tensor(t).dtype})"
        for i in const_inputs:
            if i < len(ins) and ins[i] is not None and graph.const_value(ins[i]) is None:
                return f"{node.op} with a run-time input {i} has no C kernel"
        return None
    return check


def activation_bounds(attrs: dict[str, Any]) -> tuple[float | None, float | None]:
    """(lo, hi) of the node's fused activation (None: unbounded on that side)."""
    act = attrs.get(FUSED_ACTIVATION)
    if act is None:
        return None, None
    op, *params = act
    if op == "Relu":
        return 0.0, None
    if op == "Clip":
        lo, hi = (list(params) + [None, None])[:2]
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))
    raise ValueError(f"fused {op} has no C form")


def clamp_value(v: str, lo: float | None, hi: float | None) -> str:
    """``v`` (a variable or an element, read more than once) clamped to [lo, hi] with comparisons:
    fmaxf/fminf are library calls on x86 without -ffast-math and on Cortex-M4."""
    if lo is not None and hi is not None:
        return f"({v} > {flit(lo)} ? ({v} < {flit(hi)} ? {v} : {flit(hi)}) : {flit(lo)})"
    if lo is not None:
        return f"({v} > {flit(lo)} ? {v} : {flit(lo)})"
    if hi is not None:
        return f"({v} < {flit(hi)} ? {v} : {flit(hi)})"
    return v


def clamp_expr(v: str, attrs: dict[str, Any]) -> str:
    """``v`` (a variable or an element) clamped by the node's fused activation."""
    return clamp_value(v, *activation_bounds(attrs))


def clamp_assign(target: str, expr: str, attrs: dict[str, Any]) -> str:
    """The statement ``target = act(expr);``."""
    if not has_activation(attrs):
        return f"{target} = {expr};"
    return f"{{\n    const float v_ = {expr};\n    {target} = {clamp_expr('v_', attrs)};\n}}"


def has_activation(attrs: dict[str, Any]) -> bool:
    return activation_bounds(attrs) != (None, None)


def contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return strides[::-1]


def broadcast_strides(in_shape: Sequence[int], out_shape: Sequence[int]) -> list[int]:
    """Element strides of a numpy-broadcast input over the output's dims (0 on broadcast dims)."""
    shape = [1] * (len(out_shape) - len(in_shape)) + [int(d) for d in in_shape]
    st = contiguous_strides(shape)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(shape, out_shape, st)]


def coalesce(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours where every operand's strides allow it."""
    dims = [(int(n), [int(s[d]) for s in strides]) for d, n in enumerate(shape) if int(n) != 1]
    merged: list[tuple[int, list[int]]] = []
    for n, st in dims:
        if merged:
            pn, pst = merged[-1]
            if all(ps == s * n for ps, s in zip(pst, st)):
                merged[-1] = (pn * n, st)
                continue
        merged.append((n, st))
    return [m[0] for m in merged], [[m[1][k] for m in merged] for k in range(len(strides))]


def index_expr(offset: int, strides: Sequence[int], var: str = "i") -> str:
    terms = [] if offset == 0 else [str(offset)]
    for d, s in enumerate(strides):
        if s == 1:
            terms.append(f"{var}{d}")
        elif s != 0:
            terms.append(f"{var}{d} * {s}")
    return " + ".join(terms) or "0"


def loop_nest(shape: Sequence[int], operands: Sequence[tuple[Sequence[int], int]],
              body: Callable[[list[str]], str], var: str = "i") -> str:
    """C loops over ``shape``; operand k is addressed at ``offset_k + sum(i_d * stride_k[d])``;
    ``body(index expressions)`` is the innermost statement(s)."""
    dims, strides = coalesce(shape, [list(s) for s, _ in operands])
    offsets = [off for _, off in operands]
    exprs = [index_expr(off, st, var) for off, st in zip(offsets, strides)]
    inner = body(exprs)
    if not dims:
        return "{\n" + _indent(inner, 1) + "\n}"
    decl = "int32_t " + ", ".join(f"{var}{d}" for d in range(len(dims))) + ";"
    lines = [decl]
    for d, n in enumerate(dims):
        lines.append("    " * d + f"for ({var}{d} = 0; {var}{d} < {n}; ++{var}{d}) {{")
    lines.append(_indent(inner, len(dims)))
    for d in reversed(range(len(dims))):
        lines.append("    " * d + "}")
    return "{\n" + _indent("\n".join(lines), 1) + "\n}"


def _indent(text: str, level: int) -> str:
    pad = "    " * level
    return "\n".join(pad + ln if ln else ln for ln in text.split("\n"))


def indent(text: str, level: int = 1) -> str:
    return _indent(text, level)


def evaluate(ctx: EmitContext, inputs: Sequence[Any], n_outputs: int | None = None) -> list[np.ndarray]:
    """The IR kernel of the node on ``inputs`` (export-time numpy), attributes resolved."""
    schema = get_schema(ctx.node.op)
    attrs = {k: v for k, v in attrs_of(ctx).items() if k != FUSED_ACTIVATION}
    return schema.evaluate(list(inputs), attrs, len(ctx.outputs) if n_outputs is None else n_outputs)

