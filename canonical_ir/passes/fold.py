"""Constant folding: ops whose inputs are all constants become constants.

Shape and Size fold too when their input's shape is static, which unlocks the Shape -> Gather ->
Concat -> Reshape chains that exporters emit for dynamic reshapes.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.interpreter import evaluate_node
from convertkit.canonical_ir.ops import get_schema

MAX_FOLD_BYTES = 64 << 20
"""A folded result larger than this stays an op (e.g. a huge ConstantOfShape stays small in the file)."""

NEVER_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                        "Bernoulli", "Multinomial", "DequantizeLinear"})
"""Random ops; and DequantizeLinear, whose int8 weights and quantization parameters must survive to the
backends (folding would turn a quantized model's weights back into float)."""


def _fold_from_type(graph: Graph, node: Node) -> list[np.ndarray] | None:
    """Ops whose result depends only on the input's static type, not its value."""
    if node.op not in ("Shape", "Size"):
        return None
    t = graph.tensor(graph.inputs_of(node)[0])
    if not t.is_static:
        return None
    if node.op == "Size":
        return [np.array(int(np.prod(t.shape, dtype=np.int64)), dtype=np.int64)]
    attrs = get_schema("Shape").resolve_attrs(node.attrs)
    start, end = attrs["start"], attrs["end"]
    dims = list(t.shape)[slice(start, end)]
    return [np.array(dims, dtype=np.int64)]


def fold_constants(graph: Graph) -> bool:
    """Replace ops whose inputs are all constant (or whose result follows from static shapes) by constants."""
    changed = False
    for node in graph.topo_order():
        if node.op in NEVER_FOLD:
            continue
        values = _fold_from_type(graph, node)
        if values is None:
            ins = graph.inputs_of(node)
            if any(n is not None and not graph.tensor(n).is_const for n in ins):
                continue
            if any(graph.tensor(o).size is None for o in graph.outputs_of(node)):
                continue
            est = sum((graph.tensor(o).size or 0) * (graph.tensor(o).dtype.itemsize if graph.tensor(o).dtype
                      else 8) for o in graph.outputs_of(node))
            if est > MAX_FOLD_BYTES:
                continue
            # evaluate_node picks the integer kernel for quantized nodes, as the interpreter would
            values = evaluate_node(graph, node, [graph.const_value(n) for n in ins])
        outs = graph.outputs_of(node)
        graph.remove_node(node, keep_outputs=True)
        for name, value in zip(outs, values):
            t = graph.tensor(name)
            arr = np.asarray(value)
            if t.dtype is not None and arr.dtype != t.dtype:
                arr = arr.astype(t.dtype)
            t.value, t.dtype, t.shape = arr, arr.dtype, arr.shape
        changed = True
    return changed
