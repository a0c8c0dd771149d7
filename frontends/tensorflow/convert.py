"""A frozen GraphDef, cut at given inputs, into the canonical IR.

The steps, in order: recognise fused patterns (``fusions``), keep the nodes the outputs depend on
(``tfgraph.select``), list every unsupported op at once (``tfgraph.check_supported``), convert node by
node with the registries of the ``ops_*`` modules, name the graph's inputs and outputs as requested,
merge duplicated computations (a Keras RNN cell unrolled over time splits its bias once per step;
merging keeps each weight one constant, so parameter counts stay right), and apply the rewrites that
need inferred shapes (``rewrites``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import ConvertError, ModelFileError, UnsupportedOpError
from convertkit.frontends.tensorflow import fusions, ops_math, ops_nn, ops_shape, rewrites
from convertkit.frontends.tensorflow.context import Context, Converter
from convertkit.frontends.tensorflow.tfgraph import (
    TFGraph,
    check_supported,
    dependency_order,
    select,
    split_ref,
)

CONVERTERS: dict[str, Converter] = {**ops_math.CONVERTERS, **ops_nn.CONVERTERS, **ops_shape.CONVERTERS}
"""TF op name -> converter. Placeholder is absent on purpose: every graph input is a cut point."""


@dataclass
class InputSpec:
    name: str
    """The IR (and ONNX) name of the graph input."""
    ref: str
    """The TF tensor it replaces (``node:index``)."""
    dtype: np.dtype
    shape: tuple


@dataclass
class OutputSpec:
    name: str
    ref: str


def is_supported(op: str) -> bool:
    return op in CONVERTERS


def to_ir(tfg: TFGraph, inputs: list[InputSpec], outputs: list[OutputSpec], name: str,
          metadata: dict[str, Any] | None = None) -> Graph:
    """Convert the part of ``tfg`` between ``inputs`` and ``outputs`` into a Graph."""
    fusions.apply(tfg)
    cut = {s.ref for s in inputs}
    nodes = select(tfg, cut, [o.ref for o in outputs])
    check_supported(nodes, is_supported, tfg.source)
    nodes = dependency_order(nodes, cut)

    g = Graph(name)
    g.metadata.update(metadata or {})
    reserved = {s.name for s in inputs} | {o.name for o in outputs}
    tmap: dict[str, str] = {}
    for s in inputs:
        g.add_input(s.name, s.dtype, s.shape)
        tmap[s.ref] = s.name
    used: dict[str, int] = {}
    for n in nodes:
        for r in n.inputs:
            node_name, idx = split_ref(r)
            used[node_name] = max(used.get(node_name, -1), idx)
    for o in outputs:
        node_name, idx = split_ref(o.ref)
        used[node_name] = max(used.get(node_name, -1), idx)

    for n in nodes:
        where = f"{tfg.source}: node {n.name} ({n.op})"
        ins = []
        for r in n.inputs:
            if r not in tmap:
                raise ModelFileError(f"input {r} has no converted value (output index out of range?)",
                                     where=where)
            ins.append(tmap[r])
        outs = [_fresh(g, n.name if k == 0 else f"{n.name}:{k}", reserved)
                for k in range(used.get(n.name, 0) + 1)]
        ctx = Context(g, n, ins, outs, where)
        try:
            CONVERTERS[n.op](ctx)
        except ConvertError as e:
            if (e.where and where in e.where) or isinstance(e, UnsupportedOpError):
                raise
            raise type(e)(e.message if e.where is None else f"{e.message} (at {e.where})",
                          where=where, hint=e.hint) from None
        for k, out in enumerate(outs):
            r = f"{n.name}:{k}"
            if k in ctx.aliases:
                tmap[r] = ctx.aliases[k]
            elif g.has_tensor(out) and (g.producer(out) is not None or g.tensor(out).is_const):
                tmap[r] = out
    _name_outputs(g, outputs, tmap, tfg.source)
    merge_duplicates(g)
    rewrites.repeat_to_resize(g)
    rewrites.conv1d(g)
    g.remove_dead()
    return g


def _fresh(g: Graph, base: str, reserved: set[str]) -> str:
    name = base
    n = 0
    while g.has_tensor(name) or g.has_node(name) or name in reserved:
        n += 1
        name = f"{base}_{n}"
    reserved.add(name)
    return name


def _name_outputs(g: Graph, outputs: list[OutputSpec], tmap: dict[str, str], source: str) -> None:
    """Give every graph output its requested name: rename the tensor when it is an op's own result
    used once, else add an Identity (inputs, constants, and tensors named twice must stay distinct)."""
    taken: set[str] = set()
    for o in outputs:
        if o.ref not in tmap:
            raise ModelFileError(f"output {o.ref} was not produced by the conversion", where=source)
        t = tmap[o.ref]
        if t != o.name and g.has_tensor(o.name):
            if o.name in g.inputs or o.name in taken:
                raise ModelFileError(f"output name {o.name!r} is already the name of another input or output",
                                     where=source)
            moved = g.unique_name(o.name + "_inner")  # a helper tensor took the name: move it
            g.rename_tensor(o.name, moved)
            for k, v in tmap.items():
                if v == o.name:
                    tmap[k] = moved
        tensor = g.tensor(t)
        if t == o.name and t not in taken and t not in g.inputs and not tensor.is_const:
            pass
        elif t in g.inputs or tensor.is_const or t in taken or g.producer(t) is None:
            g.add_node("Identity", [t], [o.name], name=o.name)
            g.tensor(o.name).dtype, g.tensor(o.name).shape = tensor.dtype, tensor.shape
        else:
            g.rename_tensor(t, o.name)
            for k, v in tmap.items():
                if v == t:
                    tmap[k] = o.name
        taken.add(o.name)
        g.outputs.append(o.name)


def merge_duplicates(g: Graph) -> int:
    """Merge ops with the same op, attributes and inputs (common-subexpression elimination)."""
    seen: dict[tuple, Any] = {}
    merged = 0
    outputs = set(g.outputs)
    for node in g.topo_order():
        outs = g.outputs_of(node)
        if any(o in outputs for o in outs):
            continue
        ins = tuple(_input_key(g, name) for name in g.inputs_of(node))
        key = (node.op, ins, _freeze(node.attrs), len(outs))
        other = seen.get(key)
        if other is None:
            seen[key] = node
            continue
        for mine, theirs in zip(outs, g.outputs_of(other)):
            g.replace_uses(mine, theirs)
        g.remove_node(node)
        merged += 1
    return merged


def _input_key(g: Graph, name: str | None) -> Any:
    """Small constants compare by value (converters make a fresh axes/shape constant per node)."""
    if name is None:
        return None
    v = g.const_value(name)
    if v is not None and v.size <= 64:
        return ("const", v.dtype.str, v.shape, v.tobytes())
    return name


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    return v
