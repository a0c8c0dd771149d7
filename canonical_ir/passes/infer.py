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
