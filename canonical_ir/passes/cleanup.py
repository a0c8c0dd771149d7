"""Removal of ops that do nothing at inference time, and of everything no output depends on."""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.graph import Graph

PASS_THROUGH = frozenset({"Identity", "Dropout"})
"""Ops that return their first input unchanged at inference (Dropout only while its mask is unused)."""


def remove_identities(graph: Graph) -> bool:
    """Bypass Identity and Dropout, keeping graph output names."""
    changed = False
    for node in graph.topo_order():
        if node.op not in PASS_THROUGH:
            continue
        src = graph.inputs_of(node)[0]
        outs = graph.outputs_of(node)
        if not _same_quant(graph.tensor(src).quant, graph.tensor(outs[0]).quant):
            continue  # between different quantization parameters an Identity is a requantize
        if any(graph.consumers(o) or graph.is_graph_output(o) for o in outs[1:]):
            continue  # Dropout's mask is used: keep it
        out = outs[0]
        if graph.is_graph_output(out):
            if (src in graph.inputs or graph.is_graph_output(src) or graph.tensor(src).is_const
                    or graph.producer(src) is None):
                continue  # the output must keep its name and stay a distinct tensor
            graph.remove_node(node, keep_outputs=True)
            graph.rename_tensor(src, out, replace_isolated=True)
        else:
            graph.replace_uses(out, src)
            graph.remove_node(node)
        changed = True
    return changed


def _same_quant(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (a.axis == b.axis and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point))


def remove_dead_code(graph: Graph) -> bool:
    """Drop ops and tensors that no graph output depends on."""
    return graph.remove_dead() > 0
