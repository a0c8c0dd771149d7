"""Common subexpression elimination: identical constants and identical ops on the same inputs are
computed once.

Frontends and earlier passes duplicate freely (a Transpose of the same tensor per consumer, the same
shape constant per Reshape); merging them shrinks the file and lets later rules see one value.
"""
from __future__ import annotations

import hashlib
from typing import Any, Hashable

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.fold import NEVER_FOLD
from convertkit.canonical_ir.passes.rewrite import Rewriter


def _frozen(value: Any) -> Hashable:
    """An attribute value as a hashable key (lists, arrays and dicts included)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, np.generic):
        return value.item()
    return value


def _const_key(value: np.ndarray) -> Hashable:
    return (value.dtype.str, value.shape, hashlib.blake2b(np.ascontiguousarray(value).tobytes(),
                                                          digest_size=16).digest())


def merge_constants(graph: Graph) -> bool:
    """Constants with the same dtype, shape and bytes become one tensor."""
    rw = Rewriter(graph)
    first: dict[Hashable, str] = {}
    changed = False
    for t in list(graph.tensors):
        if not t.is_const or graph.is_graph_output(t.name):
            continue
        key = _const_key(t.value)
        keep = first.setdefault(key, t.name)
        if keep != t.name and np.array_equal(graph.tensor(keep).value, t.value):
            rw.substitute(t.name, keep)
            changed = True
    return changed


def eliminate_common_subexpressions(graph: Graph) -> bool:
    """Merge identical constants, and identical ops on the same inputs (graph outputs keep theirs)."""
    changed = merge_constants(graph)
    rw = Rewriter(graph)
    seen: dict[Hashable, list[str]] = {}
    for node in graph.topo_order():
        if node.op in NEVER_FOLD or not graph.has_node(node.name) or graph.node(node.name) is not node:
            continue
        outs = graph.outputs_of(node)
        key = (node.op, _frozen(node.attrs), tuple(graph.inputs_of(node)), len(outs))
        twin = seen.get(key)
        if twin is None:
            seen[key] = outs
            continue
        if any(graph.is_graph_output(o) for o in outs):
            continue
        for old, new in zip(outs, twin):
            rw.substitute(old, new)
        changed = True
    return changed
