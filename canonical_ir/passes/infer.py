"""Shape and dtype inference: each op's ``infer`` in topological order."""
from __future__ import annotations

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.errors import ShapeError


def infer_shapes(graph: Graph) -> bool:
    """Set the dtype and shape of every op output from its op's inference rule."""
    changed = False
    for node in graph.topo_order():
        schema = get_schema(node.op)
        ctx = InferContext(graph, node, schema)
        types = schema.infer(ctx)
        outs = graph.outputs_of(node)
        if len(types) < len(outs):
            raise ShapeError(f"inference gave {len(types)} output types for {len(outs)} outputs",
                             where=f"node {node.name} ({node.op})")
        for name, (dtype, shape) in zip(outs, types):
            t = graph.tensor(name)
            shape = tuple(int(d) if not isinstance(d, str) else d for d in shape)
            if t.dtype != dtype or t.shape != shape:
                t.dtype, t.shape = dtype, shape
                changed = True
    return changed
