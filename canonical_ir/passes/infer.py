"""Shape and dtype inference: each op's ``infer`` in topological order."""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.errors import ShapeError


def infer_node(graph: Graph, node: Node) -> bool:
    """Set the dtype and shape of one node's outputs; True if any changed. Frontends call it on each
    node they add, so the next converter can read its input's shape."""
    schema = get_schema(node.op)
    types = schema.infer(InferContext(graph, node, schema))
    outs = graph.outputs_of(node)
    if len(types) < len(outs):
        raise ShapeError(f"inference gave {len(types)} output types for {len(outs)} outputs",
                         where=f"node {node.name} ({node.op})")
    changed = False
    for name, (dtype, shape) in zip(outs, types):
        t = graph.tensor(name)
        dtype = np.dtype(dtype)
        shape = tuple(int(d) if not isinstance(d, str) else d for d in shape)
        if t.dtype != dtype or t.shape != shape:
            t.dtype, t.shape = dtype, shape
            changed = True
    return changed


def infer_shapes(graph: Graph) -> bool:
    """Set the dtype and shape of every op output from its op's inference rule."""
    changed = False
    for node in graph.topo_order():
        changed |= infer_node(graph, node)
    return changed


def bind_symbolic_dims(graph: Graph) -> bool:
    """Give every graph input static dims, for targets that need them (the C bundle): a symbolic
    leading (batch) dim becomes 1; any other symbolic dim is an error naming the input."""
    changed = False
    for name in graph.inputs:
        t = graph.tensor(name)
        if t.shape is None:
            raise ShapeError(f"input {name!r} has no known shape",
                             hint=f"give it one, e.g. --inputs '{name}=1x...'")
        dims = tuple(1 if i == 0 and isinstance(d, str) else d for i, d in enumerate(t.shape))
        bad = [d for d in dims if isinstance(d, str)]
        if bad:
            raise ShapeError(f"input {name!r} has symbolic dims {bad} (shape {list(t.shape)}) and this target "
                             "needs static shapes", hint=f"fix them with --inputs '{name}=1x...'")
        if dims != t.shape:
            t.shape, changed = dims, True
    return changed
