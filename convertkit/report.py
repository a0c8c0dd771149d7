"""``convertkit inspect``: per-node ops, parameters, MACs and tensor memory of a graph."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.canonical_ir.ops.registry import elements

NOT_WEIGHTS: dict[str, frozenset[int]] = {
    "Resize": frozenset({1, 2, 3}),   # roi, scales, sizes
    "Pad": frozenset({1, 2, 3}),      # pads, constant_value, axes
    "Clip": frozenset({1, 2}),        # bounds
    "Range": frozenset({0, 1, 2}),
    "ConstantOfShape": frozenset({0}),
}
"""Input ports whose constants configure an op rather than hold learned weights (not parameters)."""

PARAM_DTYPES = frozenset(np.dtype(t) for t in ("float16", "float32", "float64", "int8", "uint8", "int16"))
"""Constants of these dtypes and rank >= 1 count as parameters, as frameworks count weights: scalars
(clip bounds, scales in arithmetic) and integer tensors (shapes, axes, indices) are not parameters,
except quantized ones (an int8 model's int32 biases)."""


@dataclass
class NodeRow:
    name: str
    op: str
    output_shapes: list[list]
    params: int
    macs: int
    output_bytes: int


@dataclass
class ModelReport:
    name: str
    inputs: dict[str, list]
    outputs: dict[str, list]
    rows: list[NodeRow] = field(default_factory=list)
    params: int = 0
    weight_bytes: int = 0
    macs: int = 0
    peak_activation_bytes: int = 0
    ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _nbytes(graph: Graph, name: str) -> int:
    t = graph.tensor(name)
    return elements(t.shape or ()) * (t.dtype.itemsize if t.dtype is not None else 4)


def inspect_graph(graph: Graph) -> ModelReport:
    """Per-node figures. Each constant's parameters are counted once, at its first consumer; symbolic
    dimensions count as 1 for MACs and memory."""
    rep = ModelReport(graph.name, {n: list(graph.tensor(n).shape or ()) for n in graph.inputs},
                      {n: list(graph.tensor(n).shape or ()) for n in graph.outputs})
    seen: set[str] = set()
    order = graph.topo_order()
    for node in order:
        params = 0
        skip = NOT_WEIGHTS.get(node.op, frozenset())
        for port, name in enumerate(graph.inputs_of(node)):
            t = graph.tensor(name) if name is not None and port not in skip else None
            if t is not None and t.is_const and name not in seen:
                seen.add(name)
                if t.value.ndim >= 1 and (t.dtype in PARAM_DTYPES or t.quant is not None):
                    params += t.value.size
                    rep.weight_bytes += t.value.nbytes
        schema = get_schema(node.op)
        macs = int(schema.macs(InferContext(graph, node, schema))) if schema.macs else 0
        outs = graph.outputs_of(node)
        rep.rows.append(NodeRow(node.name, node.op, [list(graph.tensor(o).shape or ()) for o in outs],
                                params, macs, sum(_nbytes(graph, o) for o in outs)))
        rep.params += params
        rep.macs += macs
    rep.ops = graph.ops_histogram()
    rep.peak_activation_bytes = _peak_live_bytes(graph, order)
    return rep


def _peak_live_bytes(graph: Graph, order) -> int:
    """Largest total size of tensors alive at once when running ops in ``order`` (no in-place reuse)."""
    last_use: dict[str, int] = {}
    for i, node in enumerate(order):
        for name in graph.inputs_of(node):
            if name is not None and not graph.tensor(name).is_const:
                last_use[name] = i
    for name in graph.outputs:
        last_use[name] = len(order)
    live = {n: _nbytes(graph, n) for n in graph.inputs}
    peak = sum(live.values())
    for i, node in enumerate(order):
        for name in graph.outputs_of(node):
            live[name] = _nbytes(graph, name)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= i]:
            del live[name]
    return peak


def _human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000 or suffix == "T":
            return f"{n:.0f}{suffix}{unit}" if suffix == "" else f"{n:.2f}{suffix}{unit}"
        n /= 1000
    return str(n)


def _shape(shape: list) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def format_report(rep: ModelReport) -> str:
    """The table ``convertkit inspect`` prints."""
    header = ("node", "op", "output shape", "params", "MACs", "out bytes")
    body = [(r.name, r.op, " ".join(_shape(s) for s in r.output_shapes), f"{r.params:,}", f"{r.macs:,}",
             f"{r.output_bytes:,}") for r in rep.rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    widths[0] = min(widths[0], 40)

    def fmt(cols) -> str:
        name = cols[0] if len(cols[0]) <= widths[0] else cols[0][: widths[0] - 1] + "~"
        return "  ".join([name.ljust(widths[0]), cols[1].ljust(widths[1]), cols[2].ljust(widths[2])]
                         + [c.rjust(w) for c, w in zip(cols[3:], widths[3:])])

    lines = [f"model {rep.name}",
             "inputs:  " + ", ".join(f"{k} {_shape(v)}" for k, v in rep.inputs.items()),
             "outputs: " + ", ".join(f"{k} {_shape(v)}" for k, v in rep.outputs.items()), "",
             fmt(header), fmt(tuple("-" * w for w in widths))]
    lines += [fmt(b) for b in body]
    lines += ["", f"{len(rep.rows)} nodes: " + ", ".join(f"{op} x{n}" for op, n in rep.ops.items()),
              f"parameters: {rep.params:,} ({_human(rep.weight_bytes, 'B')} of weights)",
              f"MACs: {rep.macs:,} ({_human(rep.macs)})",
              f"peak activation memory: {rep.peak_activation_bytes:,} bytes "
              "(tensors alive at once in this op order, symbolic dims as 1)"]
    return "\n".join(lines)
