"""From a legalized graph to a bundle: node functions, the arena plan, weights and the model API.

:func:`build` does everything that can fail (a node without kernel, a symbolic shape) before a byte is
written; :mod:`.files` turns the result into the files of the folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from convertkit.backends.c_bundle import kernels  # noqa: F401  (registers the C kernels)
from convertkit.backends.c_bundle.emit import (
    NodeCode, TensorRef, WeightTable, emit_node, find_kernel, node_precision, uses)
from convertkit.backends.c_bundle.planner import Buffer, MemoryPlan, check_plan, plan
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.legalize import LegalizeError
from convertkit.canonical_ir.quantize.base import QType
from convertkit.errors import ExportError


@dataclass
class IOTensor:
    index: int
    ref: TensorRef
    offset: int = 0


@dataclass
class Bundle:
    name: str
    codes: list[NodeCode]
    weights: WeightTable
    memory: MemoryPlan
    inputs: list[IOTensor]
    outputs: list[IOTensor]
    tensor_offset: dict[str, int]
    scratch_offset: dict[int, int]
    precisions: set[str] = field(default_factory=set)

    @property
    def uses_float(self) -> bool:
        return "float" in self.precisions


def _union_find() -> tuple[dict[str, str], callable]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    return parent, find


def build(graph: Graph, name: str = "model", on_node: Callable[[int], None] | None = None) -> Bundle:
    """Emit every node, plan the arena, and collect what the model API exposes. ``on_node(i)`` is
    called after node i is written (for a progress bar)."""
    order = graph.topo_order()
    missing: dict[str, tuple[str, str]] = {}
    chosen = []
    for node in order:
        k, why = find_kernel(graph, node)
        if k is None:
            missing[node.name] = (node.op, why or "no kernel")
        chosen.append(k)
    if missing:
        raise LegalizeError("the C bundle", missing,
                            hint="quantize with --quantize int8 only models whose ops have int8 kernels, or "
                                 "export float32")
    for name_ in [*graph.inputs, *graph.outputs]:
        t = graph.tensor(name_)
        if not t.is_static:
            raise ExportError(f"tensor {name_!r} has a symbolic shape {list(t.shape or ())}",
                              hint="fix it with --inputs NAME=1x...")
    for out in graph.outputs:
        if graph.tensor(out).is_const:
            raise ExportError(f"output {out!r} is a constant", hint="the model computes nothing for it")

    weights = WeightTable(prefix=f"{name}_w")
    codes = []
    for i, (node, k) in enumerate(zip(order, chosen)):
        codes.append(emit_node(graph, node, k, weights))
        if on_node is not None:
            on_node(i)
    precisions = {node_precision(graph, n) for n, c in zip(order, codes) if c.kernel.emit is not None}

    # ---- buffers: one per tensor, merged through views and in-place kernels
    n_steps = len(codes)
    last_use: dict[str, int] = {}
    first_def: dict[str, int] = {t: -1 for t in graph.inputs}
    for i, c in enumerate(codes):
        for ref in c.inputs:
            if ref is not None and ref.value is None:
                last_use[ref.name] = i
        for ref in c.outputs:
            first_def[ref.name] = i
            last_use.setdefault(ref.name, i)
    for t in graph.outputs:
        last_use[t] = n_steps
    for t in graph.inputs:
        last_use.setdefault(t, -1)

    parent, find = _union_find()
    span: dict[str, list[int]] = {}
    nbytes: dict[str, int] = {}

    def group_last(root: str) -> int:
        return span[root][1]

    for t, f in first_def.items():
        r = find(t)
        span[r] = [f, last_use.get(t, f)]
        nbytes[r] = _nbytes(graph, t)
    for i, c in enumerate(codes):
        src = c.inputs[0] if c.inputs else None
        if src is None or src.value is not None or not c.outputs:
            continue
        out = c.outputs[0].name
        rs, ro = find(src.name), find(out)
        share = c.kernel.view or (c.kernel.inplace and group_last(rs) == i and nbytes[rs] == nbytes[ro]
                                  and not graph.is_graph_output(src.name))
        if share and rs != ro:
            parent[ro] = rs
            span[rs] = [min(span[rs][0], span[ro][0]), max(span[rs][1], span[ro][1])]
            nbytes[rs] = max(nbytes[rs], nbytes[ro])
            del span[ro]
            del nbytes[ro]
    buffers = [Buffer(r, nbytes[r], f, max(f, l)) for r, (f, l) in span.items()]
    for i, c in enumerate(codes):
        if c.scratch_bytes:
            buffers.append(Buffer(f"@scratch{i}", c.scratch_bytes, i, i))
    memory = plan(buffers)
    check_plan(buffers, memory)

    tensor_offset = {t: memory.offsets[find(t)] for t in first_def}
    scratch_offset = {i: memory.offsets[f"@scratch{i}"] for i, c in enumerate(codes) if c.scratch_bytes}
    io_in = [IOTensor(i, _ref(graph, t), tensor_offset[t]) for i, t in enumerate(graph.inputs)]
    io_out = [IOTensor(i, _ref(graph, t), tensor_offset[t]) for i, t in enumerate(graph.outputs)]
    return Bundle(name, codes, weights, memory, io_in, io_out, tensor_offset, scratch_offset, precisions)


def _nbytes(graph: Graph, tensor: str) -> int:
    t = graph.tensor(tensor)
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize


def _ref(graph: Graph, name: str) -> TensorRef:
    t = graph.tensor(name)
    return TensorRef(name, tuple(int(d) for d in t.shape), np.dtype(t.dtype), QType.of(t))


def function_name(index: int, code: NodeCode) -> str:
    return f"node{index}_{code.node.op.lower()}"


def node_function(bundle: Bundle, index: int, code: NodeCode) -> str:
    """The C function of one node: pointer declarations for the names its body uses, then the body."""
    decls = []
    for i, ref in enumerate(code.inputs):
        var = f"in{i}"
        if ref is None or not uses(code.body, var):
            continue
        if i in code.const_inputs:
            decls.append(f"const {ref.ctype} *{var} = {code.const_inputs[i]};")
        else:
            decls.append(f"const {ref.ctype} *{var} = (const {ref.ctype} *)(arena + "
                         f"{bundle.tensor_offset[ref.name]});")
    for i, ref in enumerate(code.outputs):
        var = f"out{i}"
        if uses(code.body, var):
            decls.append(f"{ref.ctype} *{var} = ({ref.ctype} *)(arena + {bundle.tensor_offset[ref.name]});")
    if code.scratch_bytes and uses(code.body, "scratch"):
        decls.append(f"uint8_t *scratch = arena + {bundle.scratch_offset[index]};")
    shapes = ", ".join("x".join(map(str, r.shape)) or "scalar" for r in code.inputs if r is not None)
    out_shapes = ", ".join("x".join(map(str, r.shape)) or "scalar" for r in code.outputs)
    comment = (f"/* {code.node.op} {_c_comment(code.node.name)} ({node_precision_label(code)}): "
               f"{shapes} -> {out_shapes} */")
    uses_arena = any(d.find("arena") >= 0 for d in decls)
    lines = [comment, f"static CK_NOINLINE void {function_name(index, code)}(uint8_t *arena)", "{"]
    if not uses_arena:
        lines.append("    (void)arena;")
    lines += [f"    {d}" for d in decls]
    lines += [f"    {ln}" if ln else "" for ln in code.body.split("\n")]
    lines.append("}")
    return "\n".join(lines)


def node_precision_label(code: NodeCode) -> str:
    return code.kernel.precision


def _c_comment(text: str) -> str:
    return "'" + text.replace("*/", "* /").replace("/*", "/ *") + "'"
