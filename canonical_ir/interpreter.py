"""The reference interpreter: runs any Graph with the ops' numpy kernels.

It is the oracle of the tests, the engine of calibration (``record=True`` keeps every intermediate
tensor) and the reference the generated C code is compared with. Values are freed as soon as their
last consumer has run, so peak memory follows the graph's live set rather than its size.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.errors import ConvertError, ShapeError, UsageError


def run(graph: Graph, feeds: Mapping[str, np.ndarray], *, record: bool = False,
        on_node: Callable[[Node, list[np.ndarray]], None] | None = None) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds`` (graph input name -> array).

    Returns the graph outputs by name; with ``record``, every tensor computed along the way as well.
    ``on_node(node, outputs)`` is called after each op (for calibration hooks and debugging).
    """
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in feeds:
            raise UsageError(f"no value fed for graph input {name!r}",
                             hint=f"inputs are {', '.join(graph.inputs)}")
        values[name] = _check_feed(graph, name, feeds[name])
    extra = set(feeds) - set(graph.inputs)
    if extra:
        raise UsageError(f"fed values for unknown inputs {sorted(extra)}",
                         hint=f"inputs are {', '.join(graph.inputs)}")

    order = graph.topo_order()
    remaining = _use_counts(graph, order)
    keep = set(graph.outputs)
    for node in order:
        schema = get_schema(node.op)
        in_names = graph.inputs_of(node)
        args = [None if n is None else _fetch(graph, values, n) for n in in_names]
        attrs = schema.resolve_attrs(node.attrs, where=f"node {node.name}")
        out_names = graph.outputs_of(node)
        try:
            outs = schema.evaluate(args, attrs, len(out_names))
        except ConvertError:
            raise
        except Exception as e:  # a kernel rejecting its inputs: report where, not a numpy traceback
            shapes = ", ".join("-" if a is None else f"{a.dtype}{list(a.shape)}" for a in args)
            raise ShapeError(f"{type(e).__name__}: {e} (inputs: {shapes})",
                             where=f"node {node.name} ({node.op})") from e
        if len(outs) < len(out_names):
            raise ShapeError(f"kernel returned {len(outs)} outputs, node has {len(out_names)}",
                             where=f"node {node.name} ({node.op})")
        outs = outs[: len(out_names)]
        for name, value in zip(out_names, outs):
            values[name] = value
        if on_node is not None:
            on_node(node, outs)
        if not record:
            for n in in_names:
                if n is not None and n in remaining:
                    remaining[n] -= 1
                    if remaining[n] == 0 and n not in keep:
                        values.pop(n, None)
    if record:
        return values
    return {name: _fetch(graph, values, name) for name in graph.outputs}


def _fetch(graph: Graph, values: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name in values:
        return values[name]
    value = graph.const_value(name)
    if value is None:
        raise ShapeError(f"tensor {name!r} has no value (not computed, fed or constant)")
    return value


def _use_counts(graph: Graph, order: list[Node]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in order:
        for n in graph.inputs_of(node):
            if n is not None and not graph.tensor(n).is_const:
                counts[n] = counts.get(n, 0) + 1
    return counts


def _check_feed(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
    t = graph.tensor(name)
    arr = np.asarray(value)
    if t.dtype is not None and arr.dtype != t.dtype:
        raise UsageError(f"input {name!r} expects {t.dtype}, got {arr.dtype}")
    if t.shape is not None:
        ok = len(arr.shape) == len(t.shape) and all(
            not isinstance(d, int) or d == s for d, s in zip(t.shape, arr.shape))
        if not ok:
            raise UsageError(f"input {name!r} expects shape {list(t.shape)}, got {list(arr.shape)}")
    return arr
