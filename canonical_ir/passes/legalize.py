"""Legalization: rewrite a graph until its target accepts every node, or say at once what cannot be.

A backend declares what it accepts as :class:`Capabilities` (ops, the spatial layout, dtypes, fused
activations and per-op constraints). The type lives here, in the canonical IR, so backends can declare
it without the IR importing any backend. :func:`legalize` converts the layout, applies decomposition
rules (``decompose.py``) only to nodes the target rejects, and then either every node is accepted or
one :class:`LegalizeError` lists every node left, by op, with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Mapping

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import channels_last
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules
from convertkit.errors import ConvertError, ExportError, UnsupportedOpError

Constraint = Callable[[Graph, Node], "str | None"]
"""An extra per-op check: None if the target takes this node, else why not."""


@dataclass(frozen=True)
class Capabilities:
    """What a target accepts.

    ``ops``: canonical ops it can write. ``layouts``: the spatial layout families it takes ("NCHW",
    "NHWC"); the first is the one graphs are converted to. ``dtypes``: tensor element types (None: any).
    ``fused_activations``: activations (see ``fusion.ACTIVATIONS``) that the ops in ``fusable_ops``
    may carry in their ``fused_activation`` attribute. ``constraints``: op -> extra check.
    """

    name: str
    ops: frozenset[str]
    layouts: tuple[str, ...] = ("NCHW",)
    dtypes: frozenset[np.dtype] | None = None
    fused_activations: frozenset[str] = frozenset()
    fusable_ops: frozenset[str] = frozenset()
    constraints: Mapping[str, Constraint] = field(default_factory=dict)
    any_layout: frozenset[str] = frozenset()
    """Spatial ops the target writes well in either layout (layout conversion leaves them alone)."""
    hint: str | None = None
    """What to suggest when something cannot be lowered (e.g. a newer opset)."""
    static_shapes: bool = False
    """The target needs every shape static: a symbolic batch dim becomes 1 before anything else."""
    integer_ops: bool = False
    """The target runs quantized (int8) ops as such; if not, they become QDQ (float ops between
    DequantizeLinear and QuantizeLinear) before anything else."""

    @property
    def layout(self) -> str:
        """The layout graphs are converted to."""
        return self.layouts[0]

    def accepts(self, graph: Graph, node: Node) -> str | None:
        """None if the target takes ``node`` as it is, else the reason it does not."""
        if node.op not in self.ops:
            return f"{self.name} has no {node.op}"
        schema = get_schema(node.op)
        if schema.spatial and node.op not in self.any_layout:
            layout = node.attrs.get("layout", "NCHW")
            rank = graph.tensor(graph.inputs_of(node)[0]).rank or 0
            if rank > 2 and channels_last(layout) not in {channels_last(x) for x in self.layouts}:
                return f"layout {layout} (the target takes {'/'.join(self.layouts)})"
        act = node.attrs.get(FUSED_ACTIVATION)
        if act is not None:
            if node.op not in self.fusable_ops or activation_kind(act) not in self.fused_activations:
                return f"fused activation {activation_kind(act)} on {node.op}"
        if self.dtypes is not None:
            for name in [*graph.inputs_of(node), *graph.outputs_of(node)]:
                dt = graph.tensor(name).dtype if name is not None else None
                if dt is not None and dt not in self.dtypes:
                    return f"dtype {dt}"
        check = self.constraints.get(node.op)
        return check(graph, node) if check is not None else None


def activation_kind(act: tuple) -> str:
    """The name a target's ``fused_activations`` uses for a fused activation ``(op, *params)``: Relu6
    and ReluN1To1 for those Clips (TFLite's fused kinds), Relu for Clip(0, none), else the op."""
    op, *params = act
    if op == "Clip":
        lo, hi = (list(params) + [None, None])[:2]
        named = {(0.0, None): "Relu", (0.0, 6.0): "Relu6", (-1.0, 1.0): "ReluN1To1"}
        return named.get((lo, hi), "Clip")
    return op


class LegalizeError(UnsupportedOpError, ExportError):
    """Some nodes cannot be lowered for the target. Lists every one, by op, with the reason."""

    def __init__(self, target: str, reasons: Mapping[str, tuple[str, str]], hint: str | None = None):
        missing: dict[str, list[str]] = {}
        for node, (op, _) in reasons.items():
            missing.setdefault(op, []).append(node)
        self.reasons = dict(reasons)
        self.missing = {op: names for op, names in sorted(missing.items())}
        parts = [f"{op} x{len(names)} (" + "; ".join(f"{n}: {reasons[n][1]}" for n in names) + ")"
                 for op, names in self.missing.items()]
        ConvertError.__init__(self, f"cannot lower {len(reasons)} node(s) for {target}: {'; '.join(parts)}",
                              hint=hint or "these ops have no decomposition into what the target accepts")


# ------------------------------------------------------------------------------------ lowering
class Lowering(Rule):
    """A decomposition rule: ``produces`` names the ops its rewrite creates, so legalization only
    applies it when the target accepts them (or can lower them in turn)."""

    produces: frozenset[str] = frozenset()


class _ForTarget(Rule):
    """Applies a lowering rule to a node only if the target rejects the node and can take the result."""

    def __init__(self, rule: Lowering, caps: Capabilities, lowerable: Callable[[str], bool]) -> None:
        self.rule, self.caps, self.lowerable = rule, caps, lowerable
        self.ops = rule.ops

    @property
    def name(self) -> str:
        return self.rule.name

    def check(self, rw: Rewriter, node: Node) -> str | None:
        if self.caps.accepts(rw.graph, node) is None:
            return "the target accepts it"
        missing = sorted(op for op in self.rule.produces if not self.lowerable(op))
        if missing:
            return f"it would produce {', '.join(missing)}, which {self.caps.name} lacks"
        return self.rule.check(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        self.rule.rewrite(rw, node)


def _lowerable_fn(caps: Capabilities, rules: Iterable[Lowering]) -> Callable[[str], bool]:
    """op -> whether the target has it, or some rule lowers it into ops that are lowerable."""
    by_op: dict[str, list[Lowering]] = {}
    for r in rules:
        for op in r.ops:
            by_op.setdefault(op, []).append(r)

    @lru_cache(maxsize=None)
    def lowerable(op: str, depth: int = 0) -> bool:
        if op in caps.ops:
            return True
        if depth > 8:
            return False
        return any(all(lowerable(p, depth + 1) for p in r.produces) for r in by_op.get(op, []))
    return lowerable


def rejected(graph: Graph, caps: Capabilities) -> dict[str, str]:
    """node name -> why the target rejects it, for every rejected node."""
    return {n.name: why for n in graph.topo_order() if (why := caps.accepts(graph, n)) is not None}


def legalized(graph: Graph, caps: Capabilities) -> Graph:
    """``graph`` if ``caps`` takes it as it is, else a legalized copy: what an exporter does with a
    graph that did not come through the pipeline (``convertkit.save``). As its pipeline would, a target
    without integer ops gets quantized ops in QDQ form, and one with static shapes the symbolic batch
    bound and shapes re-inferred and folded, before legalization."""
    from convertkit.canonical_ir.passes.qdq import has_quantized_ops, lower_to_qdq

    static = not caps.static_shapes or all(graph.tensor(t).is_static for t in graph.inputs)
    qdq = not caps.integer_ops and has_quantized_ops(graph)
    if static and not qdq and not rejected(graph, caps):
        return graph
    g = graph.copy()
    if qdq:  # int8 ops as float ops between DequantizeLinear and QuantizeLinear, as the pipeline does
        lower_to_qdq(g)
    if caps.static_shapes:
        from convertkit.canonical_ir.passes.infer import bind_symbolic_dims
        from convertkit.canonical_ir.passes.manager import NORMALIZE, PassManager

        bind_symbolic_dims(g)
        PassManager([("normalize", NORMALIZE)]).run(g)
    return legalize(g, caps)


def legalize(graph: Graph, caps: Capabilities, rules: Iterable[Lowering] | None = None) -> Graph:
    """Rewrite ``graph`` (in place) into what ``caps`` accepts, or raise one :class:`LegalizeError`.

    Layout first (every spatial op to ``caps.layout``, transposes cancelled), then the decomposition
    rules, each only on nodes the target rejects; a node still rejected afterwards is reported with the
    target's reason and, where a rule exists, why it did not apply.
    """
    from convertkit.canonical_ir.passes.decompose import lowerings
    from convertkit.canonical_ir.passes.layout import convert_layout

    rules = list(lowerings(caps) if rules is None else rules)
    if not rejected(graph, caps):
        return graph
    layouts = {channels_last(x) for x in caps.layouts}
    if any(get_schema(n.op).spatial and n.op not in caps.any_layout
           and channels_last(n.attrs.get("layout", "NCHW")) not in layouts for n in graph.nodes):
        convert_layout(graph, caps.layout, caps.any_layout)
    lowerable = _lowerable_fn(caps, rules)
    wrapped = [_ForTarget(r, caps, lowerable) for r in rules]
    apply_rules(graph, wrapped)
    left = rejected(graph, caps)
    if left:
        reasons = {}
        rw = Rewriter(graph)
        for name, why in left.items():
            node = graph.node(name)
            tried = [f"{r.name}: {r.check(rw, node)}" for r in wrapped if node.op in r.ops]
            reasons[name] = (node.op, why + (f" ({'; '.join(tried)})" if tried else ""))
        raise LegalizeError(caps.name, reasons, caps.hint)
    return graph


def legalize_pass(caps: Capabilities) -> Callable[[Graph], bool]:
    """``legalize`` as a pipeline pass (True if it changed the graph)."""
    def legalize_for_target(graph: Graph) -> bool:
        if not rejected(graph, caps):
            return False
        legalize(graph, caps)
        return True
    legalize_for_target.__name__ = "legalize"
    legalize_for_target.__doc__ = (f"Rewrite into what {caps.name} accepts (layout, decompositions), "
                                   "or fail listing every node that cannot be lowered.")
    return legalize_for_target
