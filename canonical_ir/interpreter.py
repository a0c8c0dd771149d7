"""The reference interpreter: runs any Graph with the ops' numpy kernels.

It is the oracle of the tests, the engine of calibration (``record=True`` keeps every intermediate
tensor) and the reference the generated C code is compared with. Values are freed as soon as their
last consumer has run, so peak memory follows the graph's live set rather than its size.

A node any of whose tensors is quantized (an integer tensor with ``Tensor.quant``) runs its op's integer
kernel (``OpSchema.qkernel``, TFLite's integer semantics, see ``canonical_ir/quantize``); an op without
one is an error listing every such node, never a silent float fallback.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from convertkit.canonical_ir import quantize as _quantize  # noqa: F401  (registers the integer kernels)
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.quantize.base import QType
from convertkit.errors import ConvertError, ShapeError, UnsupportedOpError, UsageError

QSignature = tuple[list[QType | None], list[QType | None]]
"""The quantization of a node's inputs and outputs, by port."""


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
    signatures = quantized_signatures(graph, order)
    remaining = _use_counts(graph, order)
    keep = set(graph.outputs)
    for node in order:
        in_names = graph.inputs_of(node)
        args = [None if n is None else _fetch(graph, values, n) for n in in_names]
        out_names = graph.outputs_of(node)
        outs = evaluate(node, args, len(out_names), signatures.get(node.name))
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


def quantized_signatures(graph: Graph, order: list[Node] | None = None) -> dict[str, QSignature]:
    """The quantization of every quantized node (by node name); raises UnsupportedOpError listing all
    quantized nodes whose op has no integer kernel."""
    sigs: dict[str, QSignature] = {}
    missing: dict[str, list[str]] = {}
    for node in order if order is not None else graph.topo_order():
        ins = [None if n is None else QType.of(graph.tensor(n)) for n in graph.inputs_of(node)]
        outs = [QType.of(graph.tensor(n)) for n in graph.outputs_of(node)]
        if not any(q is not None for q in ins + outs):
            continue
        if get_schema(node.op).qkernel is None:
            missing.setdefault(node.op, []).append(node.name)
        sigs[node.name] = (ins, outs)
    if missing:
        raise UnsupportedOpError("quantized nodes whose op has no integer kernel", missing,
                                 hint="dequantize around them, or keep the model in float")
    return sigs


def evaluate_node(graph: Graph, node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """Run one node on the given input values: its integer kernel if any of its tensors is quantized,
    else its float kernel. For passes that evaluate nodes (such as constant folding)."""
    sig = quantized_signatures(graph, [node]).get(node.name)
    return evaluate(node, args, len(graph.outputs_of(node)), sig)


def evaluate(node: Node, args: list[np.ndarray | None], n_out: int,
             sig: QSignature | None) -> list[np.ndarray]:
    """Run one node's kernel on ``args``: the integer kernel with quantization ``sig`` (in, out QTypes),
    or the float kernel when ``sig`` is None. Errors name the node."""
    schema = get_schema(node.op)
    attrs = schema.resolve_attrs(node.attrs, where=f"node {node.name}")
    try:
        if sig is None:
            outs = schema.evaluate(args, attrs, n_out)
        else:
            outs = _evaluate_quantized(schema, args, attrs, n_out, sig)
    except ConvertError as e:
        if e.where is None:
            e.where = f"node {node.name} ({node.op})"
        raise
    except Exception as e:  # a kernel rejecting its inputs: report where, not a numpy traceback
        shapes = ", ".join("-" if a is None else f"{a.dtype}{list(a.shape)}" for a in args)
        raise ShapeError(f"{type(e).__name__}: {e} (inputs: {shapes})",
                         where=f"node {node.name} ({node.op})") from e
    if len(outs) < n_out:
        raise ShapeError(f"kernel returned {len(outs)} outputs, node has {n_out}",
                         where=f"node {node.name} ({node.op})")
    return outs[:n_out]


def _evaluate_quantized(schema, args: list, attrs: dict, n_out: int, sig: QSignature) -> list[np.ndarray]:
    in_q, out_q = sig
    args = list(args)
    if not (schema.inputs and schema.inputs[-1].endswith("*")):
        args += [None] * (len(schema.inputs) - len(args))
        in_q = list(in_q) + [None] * (len(args) - len(in_q))
    if schema.pass_num_outputs:
        attrs = {**attrs, "num_outputs": n_out}
    outs = [np.asarray(o) for o in schema.qkernel(args, list(in_q), list(out_q), attrs)]
    for i, (o, q) in enumerate(zip(outs, out_q)):
        if q is not None and o.dtype != q.dtype:
            raise ShapeError(f"integer kernel gave output {i} as {o.dtype}, the tensor is {q.dtype}")
    return outs


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
