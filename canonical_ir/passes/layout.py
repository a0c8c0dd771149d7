"""Layout conversion: make every spatial op use the target's layout (NCHW or NHWC family).

Each op in the other layout is rewritten in place: its ``layout`` flips, constant weights are permuted
once (Conv ``[O, I/g, k...]`` <-> ``[O, k..., I/g]``, ConvTranspose per ``nn.py``), and a Transpose
goes before its data input and after each output, so the graph computes exactly what it did. Those
transposes are then pushed through layout-agnostic ops and cancelled by ``optimize_transposes``.

The graph's interface keeps the source layout unless the user asks otherwise
(:func:`set_io_layouts`, the CLI's ``--input-layout``/``--output-layout``): a graph input or output
whose layout is fixed keeps one Transpose at the boundary.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import (
    channels_last, conv_transpose_weight_from_nchw, conv_transpose_weight_to_nchw,
    conv_weight_from_nchw, conv_weight_to_nchw)
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules
from convertkit.canonical_ir.passes.transpose import MOVABLE, layout_name, optimize_transposes
from convertkit.errors import UsageError

WEIGHT_PORT = {"Conv": 1, "ConvTranspose": 1, "QLinearConv": 3}


def to_last(rank: int) -> list[int]:
    """Perm taking channels-first to channels-last."""
    return [0, *range(2, rank), 1]


def to_first(rank: int) -> list[int]:
    """Perm taking channels-last to channels-first."""
    return [0, rank - 1, *range(1, rank - 1)]


def check_layout(layout: str | None, what: str) -> str | None:
    if layout is not None and layout not in ("NCHW", "NHWC"):
        raise UsageError(f"{what} {layout!r} is not NCHW or NHWC",
                         hint="NCHW/NHWC name the channels-first/last family, for any rank")
    return layout


# ----------------------------------------------------------------------------- one spatial op
def _weight(rw: Rewriter, node: Node, last: bool) -> str | None | bool:
    """The weight input in the new layout (a permuted constant or a Transpose); False if impossible."""
    port = WEIGHT_PORT.get(node.op)
    if port is None:
        return None
    w = rw.input(node, port)
    old = rw.attrs(node)["layout"]
    rank = len(rw.shape(w))
    new = layout_name(last, rank)
    value = rw.graph.const_value(w)
    if node.op == "ConvTranspose":
        group = int(rw.attrs(node)["group"])
        if value is not None:
            nchw = conv_transpose_weight_to_nchw(value, group, old)
            return rw.constant(conv_transpose_weight_from_nchw(nchw, group, new), f"{node.name}_w")
        if group != 1:
            return False
        perm = [1, *range(2, rank), 0] if last else [rank - 1, 0, *range(1, rank - 1)]
    else:
        if value is not None:
            nchw = conv_weight_to_nchw(value, old)
            return rw.constant(np.ascontiguousarray(conv_weight_from_nchw(nchw, new)), f"{node.name}_w")
        perm = to_last(rank) if last else to_first(rank)
    return rw.add1("Transpose", [w], {"perm": perm}, name=f"{node.name}_w")


class ConvertLayout(Rule):
    """A spatial op in the other layout family: flip it, with Transposes around it. Ops in ``keep``
    (those the target takes in either layout) are left to the transposes moving through them."""

    def __init__(self, layout: str, keep: frozenset[str] = frozenset()) -> None:
        self.last = channels_last(layout)
        self.ops = frozenset(op for op in _spatial_ops() if op not in keep)

    def check(self, rw: Rewriter, node: Node) -> str | None:
        if channels_last(rw.attrs(node)["layout"]) == self.last:
            return "already in the target layout"
        if len(rw.shape(rw.input(node, 0))) <= 2:
            return "rank <= 2: channels are axis 1 in either family"
        if node.op == "ConvTranspose" and rw.const(node, 1) is None and int(rw.attrs(node)["group"]) != 1:
            return "grouped ConvTranspose with a run-time weight"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        convert_node(rw, node, self.last)


def _spatial_ops() -> dict[str, object]:
    from convertkit.canonical_ir.ops import all_schemas

    return {op: s for op, s in all_schemas().items() if s.spatial}


def convert_node(rw: Rewriter, node: Node, last: bool) -> None:
    """Rewrite one spatial op into the channels-last (``last``) or channels-first family."""
    g = rw.graph
    rank = len(rw.shape(rw.input(node, 0)))
    new_layout = layout_name(last, rank)
    attrs = dict(node.attrs, layout=new_layout)
    if rank <= 2:  # channels are axis 1 in both families
        rw.set_attrs(node, attrs)
        return
    fwd = to_last(rank) if last else to_first(rank)
    back = to_first(rank) if last else to_last(rank)
    ins = list(g.inputs_of(node))
    weight = _weight(rw, node, last)
    if weight is not None:
        ins[WEIGHT_PORT[node.op]] = weight
    ins[0] = rw.add1("Transpose", [ins[0]], {"perm": fwd}, name=f"{node.name}_to_{new_layout}")
    outs, old_ins, name, op = g.outputs_of(node), g.inputs_of(node), node.name, node.op
    g.remove_node(node, keep_outputs=True)
    new_outs = [g.add_tensor(g.unique_name(f"{o}_{new_layout}")) for o in outs]
    rw.add(op, ins, attrs, name=name, outputs=new_outs)
    for o, n in zip(outs, new_outs):
        rw.add("Transpose", [n], {"perm": back}, name=f"{name}_from_{new_layout}", outputs=[o])
    for t in old_ins:
        if t is not None:
            rw.drop_if_dead(t)


def convert_layout_only(graph: Graph, layout: str, keep: frozenset[str] = frozenset()) -> bool:
    """Flip every spatial op (but those in ``keep``) into ``layout``'s family, wrapped in Transposes."""
    return apply_rules(graph, [ConvertLayout(layout, keep)]) > 0


def convert_layout(graph: Graph, layout: str, keep: frozenset[str] = frozenset()) -> bool:
    """Convert every spatial op (but those in ``keep``) to ``layout``'s family, then push and cancel
    the transposes."""
    changed = convert_layout_only(graph, layout, keep)
    if changed:
        optimize_transposes(graph)
    return changed


def layout_pass(layout: str, keep: frozenset[str] = frozenset()) -> Callable[[Graph], bool]:
    def convert(graph: Graph) -> bool:
        return convert_layout(graph, layout, keep)
    convert.__name__ = "convert_layout"
    convert.__doc__ = f"Spatial ops to {layout}, their weights permuted, transposes pushed and cancelled."
    return convert


# ------------------------------------------------------------------------------ the interface
def traced_layout(graph: Graph, tensor: str, forward: bool) -> str | None:
    """The layout family of the spatial ops that ``tensor`` reaches through layout-agnostic ops
    (consumers when ``forward``, producers otherwise), if they agree; None if none or they differ."""
    rank = graph.tensor(tensor).rank
    seen, stack, found = {tensor}, [tensor], set()
    while stack and len(seen) < 10_000:
        t = stack.pop()
        nodes = [c for c, _ in graph.consumers(t)] if forward else [p for p in [graph.producer(t)] if p]
        for node in nodes:
            schema = get_schema(node.op)
            if schema.spatial:
                layout = node.attrs.get("layout", "NCHW")
                if graph.tensor(graph.inputs_of(node)[0]).rank == rank:
                    found.add(channels_last(layout))
                continue
            if node.op not in MOVABLE:
                continue
            nxt = graph.outputs_of(node) if forward else [i for i in graph.inputs_of(node) if i]
            for n in nxt:
                tt = graph.tensor(n)
                if n not in seen and not tt.is_const and tt.rank == rank:
                    seen.add(n)
                    stack.append(n)
    if len(found) != 1:
        return None
    return layout_name(found.pop(), rank)


def _retype_input(graph: Graph, name: str, perm: list[int]) -> None:
    """Graph input ``name`` now arrives permuted by ``perm``; a Transpose restores what the graph reads."""
    t = graph.tensor(name)
    inner = graph.unique_name(f"{name}_source_layout")
    graph.rename_tensor(name, inner)
    graph.add_tensor(name, t.dtype, tuple(t.shape[i] for i in perm))
    graph.inputs = [name if i == inner else i for i in graph.inputs]
    rw = Rewriter(graph)
    rw.add("Transpose", [name], {"perm": [int(i) for i in np.argsort(perm)]}, name=f"{name}_layout",
           outputs=[inner])


def _retype_output(graph: Graph, name: str, perm: list[int]) -> None:
    """Graph output ``name`` is now written permuted by ``perm``."""
    inner = graph.unique_name(f"{name}_source_layout")
    graph.rename_tensor(name, inner)
    graph.outputs = [name if o == inner else o for o in graph.outputs]
    Rewriter(graph).add("Transpose", [inner], {"perm": perm}, name=f"{name}_layout", outputs=[name])


def set_io_layouts(graph: Graph, inputs: str | None = None, outputs: str | None = None) -> bool:
    """Give graph inputs/outputs of rank >= 3 the requested layout family (None: keep the source's).

    The source layout of a tensor is that of the spatial ops it reaches through layout-agnostic ops;
    tensors that reach none keep theirs. What each boundary ended up as is recorded in
    ``graph.metadata["io_layout"]`` (so this runs once per graph, whatever the pipeline repeats).
    """
    done: dict = graph.metadata.setdefault("io_layout", {})
    changed = False
    for names, want, forward in ((list(graph.inputs), inputs, True), (list(graph.outputs), outputs, False)):
        for name in names:
            key = ("input:" if forward else "output:") + name
            t = graph.tensor(name)
            if key in done or t.rank is None or t.rank < 3 or t.is_const or name in (
                    graph.inputs if not forward else graph.outputs):
                continue
            src = traced_layout(graph, name, forward)
            done[key] = src
            if src is None or want is None or channels_last(src) == channels_last(want):
                continue
            rank = t.rank
            if forward:  # the input arrives in ``want``; the graph reads ``src``
                _retype_input(graph, name, to_last(rank) if channels_last(want) else to_first(rank))
            else:
                _retype_output(graph, name, to_last(rank) if channels_last(want) else to_first(rank))
            done[key] = layout_name(channels_last(want), rank)
            changed = True
    return changed


def io_layout_pass(inputs: str | None, outputs: str | None) -> Callable[[Graph], bool]:
    def set_interface_layout(graph: Graph) -> bool:
        return set_io_layouts(graph, inputs, outputs)
    set_interface_layout.__doc__ = (f"Graph inputs in {inputs or 'the source layout'}, outputs in "
                                    f"{outputs or 'the source layout'} (a Transpose where changed).")
    return set_interface_layout
