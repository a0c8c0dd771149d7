"""Transpose optimization: push transposes through layout-agnostic ops until they meet and cancel.

After a layout change every converted op sits between two Transposes. An op that does not care about
layout (elementwise, activations, concat, split, reduce, softmax, pad, slice, gather, resize...) gives
the same result on transposed data if its axes (and constant operands) are permuted to match, so
``op(T_p(x)) == T_q(op'(x))``: the Transpose moves below it, towards the next op's inverse Transpose.
A move is made when it does not add Transposes (counting the ones it makes cancel), so the pass only
ever reduces the count. Transposes reading a graph input are lifted to it through unary ops, so that
what remains of a fixed interface is one Transpose right at each boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops.registry import layout_channel_axis
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules
from convertkit.canonical_ir.passes.simplify import (
    MergeTransposes, TransposeAsReshape, CollapseReshapes, DropNoopReshape, Perm, compose, inverse,
    is_identity, perm_of, write_reshape)

UNARY = frozenset({
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Gelu",
    "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Swish", "Shrink", "Clip",
    "Abs", "Neg", "Exp", "Log", "Sqrt", "Floor", "Ceil", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos",
    "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Reciprocal", "Round", "Erf", "Not", "BitwiseNot",
    "IsNaN", "IsInf", "Cast", "Identity", "QuantizeLinear", "DequantizeLinear"})
"""One data input, output of the same shape; other inputs (Clip bounds, quantization params) are
scalars or per-axis vectors."""

BROADCAST = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "PRelu", "Equal",
    "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "BitShift", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor"})
"""Elementwise with numpy broadcasting over every input."""

AXIS_OPS = frozenset({"Concat", "Split", "Softmax", "LogSoftmax", "Hardmax", "LpNormalization",
                      "ArgMax", "ArgMin", "Gather"})
AXES_INPUT_OPS = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                            "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "Squeeze"})
CHANNEL_OPS = frozenset({"BatchNormalization"})
"""Spatial ops that only care where the channel axis is: a Transpose moves through them by changing
their ``layout`` (when the channels land first or last)."""
MOVABLE = UNARY | BROADCAST | AXIS_OPS | AXES_INPUT_OPS | CHANNEL_OPS | frozenset(
    {"Pad", "Slice", "Resize", "Tile", "MeanVarianceNormalization", "Unsqueeze"})

LAYOUTS = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}


def layout_name(last: bool, rank: int) -> str:
    """The layout string of the channels-first or channels-last family for a tensor of ``rank``."""
    first, last_name = LAYOUTS.get(rank, ("NC" + "S" * (rank - 2), "N" + "S" * (rank - 2) + "C"))
    return last_name if last else first


# ------------------------------------------------------------------------------------ plans
@dataclass
class Plan:
    """How ``op(T_p(x))`` is written as ``T_q(op'(x))``: op' attributes, replaced constant inputs,
    and the perm q of each output (None: identity)."""

    attrs: dict[str, Any]
    consts: dict[int, np.ndarray] = field(default_factory=dict)
    out_perms: list[Perm | None] = field(default_factory=list)


Planner = Callable[[Rewriter, Node, Perm], "Plan | str"]


def data_ports(rw: Rewriter, node: Node) -> list[int]:
    """Inputs that carry the (transposed) activation."""
    if node.op in BROADCAST or node.op == "Concat":
        return [i for i, t in enumerate(rw.graph.inputs_of(node)) if t is not None]
    return [0]


def permute_const(value: np.ndarray, p: Perm) -> np.ndarray:
    """A constant operand broadcast against ``T_p(x)``, rewritten to broadcast against ``x``."""
    if value.size == 1 or value.ndim == 0:
        return value
    rank = len(p)
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    out = np.ascontiguousarray(np.transpose(full, inverse(p)))
    while out.ndim > value.ndim and out.shape[0] == 1:
        out = out[0]
    return out


def _ax(p: Perm, axis: int) -> int:
    return p[int(axis) % len(p)]


def reduced_perm(p: Perm, removed: set[int]) -> Perm:
    """The output perm once the axes ``removed`` (in transposed numbering) are dropped."""
    kept = [p[i] for i in range(len(p)) if i not in removed]
    order = sorted(kept)
    return [order.index(k) for k in kept]


def _unary(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    attrs = dict(node.attrs)
    if node.op in ("QuantizeLinear", "DequantizeLinear"):
        scale = rw.const(node, 1)
        if scale is None and rw.shape(rw.input(node, 1)) not in ((), (1,)):
            return "run-time per-axis quantization parameters"
        if rw.attrs(node)["block_size"]:
            return "blocked quantization"
        if scale is not None and scale.size > 1:
            attrs["axis"] = _ax(p, rw.attrs(node)["axis"])
    return Plan(attrs, {}, [p])


def _broadcast(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    consts = {}
    for port in data_ports(rw, node):
        value = rw.const(node, port)
        if value is not None:
            if value.ndim > len(p):
                return f"input {port} has a higher rank than the transposed one"
            consts[port] = permute_const(value, p)
    return Plan(dict(node.attrs), consts, [p])


def _axis(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    a = rw.attrs(node)
    attrs = dict(node.attrs, axis=_ax(p, a["axis"]))
    n_out = len(rw.graph.outputs_of(node))
    if node.op == "Concat":
        consts = {port: permute_const(v, p) for port in data_ports(rw, node)
                  if (v := rw.const(node, port)) is not None}
        return Plan(attrs, consts, [p])
    if node.op in ("ArgMax", "ArgMin") and not a["keepdims"]:
        return Plan(attrs, {}, [reduced_perm(p, {int(a["axis"]) % len(p)})])
    if node.op == "Gather":
        rank = len(rw.shape(rw.input(node, 1)))
        if rank == 0:
            return Plan(attrs, {}, [reduced_perm(p, {int(a["axis"]) % len(p)})])
        if rank != 1:
            return "indices of rank > 1 change the output rank"
    return Plan(attrs, {}, [p] * n_out)


def _axes_input(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    port = 1
    if rw.input(node, port) is None:
        if node.op == "Squeeze":
            return "Squeeze without axes"
        a = rw.attrs(node)
        if a["noop_with_empty_axes"] or a["keepdims"]:
            return Plan(dict(node.attrs), {}, [p])
        return Plan(dict(node.attrs), {}, [None])
    axes = rw.const(node, port)
    if axes is None:
        return "axes are only known at run time"
    axes = [int(x) % len(p) for x in axes.reshape(-1)]
    keep = node.op != "Squeeze" and rw.attrs(node)["keepdims"]
    if not axes and node.op != "Squeeze" and not rw.attrs(node)["noop_with_empty_axes"]:
        axes = list(range(len(p)))
    new = np.array([p[x] for x in axes], np.int64)
    return Plan(dict(node.attrs), {port: new}, [p if keep else reduced_perm(p, set(axes))])


def _per_axis(values: np.ndarray, p: Perm, groups: int) -> np.ndarray:
    """A vector of ``groups`` x rank per-axis values (pads, roi) with its axes permuted by ``p``."""
    inv = inverse(p)
    rank = len(p)
    return np.concatenate([values[g * rank:(g + 1) * rank][inv] for g in range(groups)])


def _pad(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    pads = rw.const(node, 1)
    if pads is None:
        return "pads are only known at run time"
    if rw.input(node, 3) is not None:
        axes = rw.const(node, 3)
        if axes is None:
            return "axes are only known at run time"
        return Plan(dict(node.attrs), {3: np.array([_ax(p, a) for a in axes.reshape(-1)], axes.dtype)}, [p])
    return Plan(dict(node.attrs), {1: _per_axis(pads.reshape(-1), p, 2).astype(pads.dtype)}, [p])


def _slice(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    axes = rw.const(node, 3)
    if rw.input(node, 3) is None:
        n = rw.shape(rw.input(node, 1))
        if len(n) != 1 or not isinstance(n[0], int):
            return "unknown number of sliced axes"
        axes = np.arange(n[0], dtype=np.int64)
    elif axes is None:
        return "axes are only known at run time"
    return Plan(dict(node.attrs), {3: np.array([_ax(p, a) for a in axes.reshape(-1)], np.int64)}, [p])


def _resize(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    axes = node.attrs.get("axes")
    if axes:
        return Plan(dict(node.attrs, axes=[_ax(p, a) for a in axes]), {}, [p])
    consts = {}
    for port, groups in ((1, 2), (2, 1), (3, 1)):
        if rw.input(node, port) is None:
            continue
        v = rw.const(node, port)
        if v is None:
            return "run-time roi, scales or sizes"
        if v.size:
            consts[port] = _per_axis(v.reshape(-1), p, groups).astype(v.dtype)
    return Plan(dict(node.attrs), consts, [p])


def _tile(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    reps = rw.const(node, 1)
    if reps is None:
        return "repeats are only known at run time"
    return Plan(dict(node.attrs), {1: _per_axis(reps.reshape(-1), p, 1).astype(reps.dtype)}, [p])


def unsqueeze_plan(p: Perm, axes: list[int]) -> tuple[list[int], Perm]:
    """``Unsqueeze(T_p(x), axes) == T_q(Unsqueeze(x, axes'))``: (axes', q). Each new axis is put right
    after the axis of x it follows in the output, so a later split-and-repeat (tf2onnx's nearest
    upsampling: Unsqueeze -> Tile -> Reshape) keeps its axes together and the Transposes cancel."""
    rank = len(p) + len(axes)
    new = set(axes)
    src = iter(p)
    labels: list[Any] = [("new", j) if j in new else next(src) for j in range(rank)]
    after: dict[Any, list[Any]] = {}
    prev: Any = "front"
    for lab in labels:
        if isinstance(lab, tuple):
            after.setdefault(prev, []).append(lab)
        else:
            prev = lab
    order: list[Any] = list(after.get("front", []))
    for a in range(len(p)):
        order += [a, *after.get(a, [])]
    axes2 = [i for i, lab in enumerate(order) if isinstance(lab, tuple)]
    return axes2, [order.index(lab) for lab in labels]


def _unsqueeze(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    if rw.input(node, 1) is None:
        return "axes as an attribute"
    axes = rw.const(node, 1)
    if axes is None:
        return "axes are only known at run time"
    rank = len(p) + axes.size
    axes2, q = unsqueeze_plan(p, sorted({int(a) % rank for a in axes.reshape(-1)}))
    return Plan(dict(node.attrs), {1: np.array(axes2, np.int64)}, [q])


def _mvn(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    return Plan(dict(node.attrs, axes=[_ax(p, a) for a in rw.attrs(node)["axes"]]), {}, [p])


def _channel_op(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    rank = len(p)
    k = p[layout_channel_axis(rw.attrs(node)["layout"], rank)]
    if rank > 2 and k in (1, rank - 1):
        return Plan(dict(node.attrs, layout=layout_name(k == rank - 1, rank)), {}, [p])
    return "the channels would land on a middle axis"


def planner(op: str) -> Planner:
    if op in UNARY:
        return _unary
    if op in BROADCAST:
        return _broadcast
    if op in AXIS_OPS:
        return _axis
    if op in AXES_INPUT_OPS:
        return _axes_input
    if op in CHANNEL_OPS:
        return _channel_op
    return {"Pad": _pad, "Slice": _slice, "Resize": _resize, "Tile": _tile,
            "MeanVarianceNormalization": _mvn, "Unsqueeze": _unsqueeze}[op]


def plan_for(rw: Rewriter, node: Node, p: Perm) -> Plan | str:
    """How ``node`` is written for inputs ``T_p(x)``, or why it cannot be."""
    if node.op == "Split" and rw.input(node, 1) is not None and rw.const(node, 1) is None:
        return "run-time split sizes"
    return planner(node.op)(rw, node, p)


def apply_plan(rw: Rewriter, node: Node, inputs: list[str | None], plan: Plan) -> list[str]:
    """Replace ``node`` by op' (reading ``inputs``, with the plan's constants) and T_q on its outputs;
    returns op'``s outputs."""
    g = rw.graph
    ins = list(inputs)
    for port, value in plan.consts.items():
        ins[port] = rw.constant(value, f"{node.name}_in{port}")
    outs, old_ins = g.outputs_of(node), g.inputs_of(node)
    name, op = node.name, node.op
    g.remove_node(node, keep_outputs=True)
    new_outs = [o if (q is None or is_identity(q)) else g.unique_name(f"{name}_out{i}")
                for i, (o, q) in enumerate(zip(outs, plan.out_perms))]
    for o in new_outs:
        if not g.has_tensor(o):
            g.add_tensor(o)
    rw.add(op, ins, plan.attrs, name=name, outputs=new_outs)
    for o, new, q in zip(outs, new_outs, plan.out_perms):
        if o == new:
            continue
        if g.consumers(o) or g.is_graph_output(o):
            rw.add("Transpose", [new], {"perm": q}, name=f"{name}_post", outputs=[o])
        else:
            g.remove_tensor(o)
    for t in old_ins:
        if t is not None:
            rw.drop_if_dead(t)
    return new_outs


# ------------------------------------------------------------------------------------ rules
@dataclass
class Inputs:
    """The data inputs of a node about to take a Transpose: the common perm, port -> the Transpose
    feeding it, and port -> the inverse Transpose of an untransposed input (None: one must be added)."""

    perm: Perm
    transposed: dict[int, Node]
    others: dict[int, Node | None]


def _inverse_user(rw: Rewriter, tensor: str, perm: Perm) -> Node | None:
    for c, _ in rw.graph.consumers(tensor):
        if c.op == "Transpose" and perm_of(rw, c) == perm:
            return c
    return None


def _transposed_inputs(rw: Rewriter, node: Node) -> Inputs | str:
    """What feeds the data inputs, or why the node cannot take a Transpose from them."""
    perm, found, plain = None, {}, []
    broadcast = node.op in BROADCAST or node.op == "Concat"
    for port in data_ports(rw, node):
        t = rw.input(node, port)
        prod = rw.producer_op(t)
        if prod is not None and prod.op == "Transpose":
            p = perm_of(rw, prod)
            if perm is not None and p != perm:
                return "inputs are transposed differently"
            perm, found[port] = p, prod
        elif rw.graph.tensor(t).is_const or all(d == 1 for d in rw.shape(t)):
            continue
        elif broadcast:
            plain.append(port)
        else:
            return f"input {port} is not transposed"
    if perm is None:
        return "no input is transposed"
    if node.op in BROADCAST and len(rw.shape(rw.graph.outputs_of(node)[0])) != len(perm):
        return "the output rank differs from the transposed inputs'"
    others = {}
    for port in plain:
        t = rw.input(node, port)
        if len(rw.shape(t)) != len(perm):
            return f"input {port} has another rank than the transposed ones"
        others[port] = _inverse_user(rw, t, inverse(perm))
    return Inputs(perm, found, others)


def _output_cost(rw: Rewriter, tensor: str, q: Perm | None) -> int:
    """Transposes added by putting T_q on ``tensor``, minus those it makes cancel."""
    g = rw.graph
    if q is None or is_identity(q) or (not g.consumers(tensor) and not g.is_graph_output(tensor)):
        return 0
    cancels = stays = 0
    for c, _ in g.consumers(tensor):
        if c.op == "Transpose":
            cancels += is_identity(compose(q, perm_of(rw, c)))
        else:
            stays = 1
    return (1 if stays or g.is_graph_output(tensor) else 0) - cancels


def _single_data_input(rw: Rewriter, node: Node) -> str | None:
    """The one non-constant input of a rank-preserving movable op whose other inputs are constants or
    broadcast scalars (a Relu, a Mul by a constant, a BatchNorm...), else None."""
    if node.op not in UNARY | BROADCAST | CHANNEL_OPS:
        return None
    live = [t for t in rw.graph.inputs_of(node)
            if t is not None and not rw.graph.tensor(t).is_const and not all(d == 1 for d in rw.shape(t))]
    return live[0] if len(live) == 1 and live[0] == rw.input(node, 0) or (
        len(live) == 1 and node.op in BROADCAST) else None


def _liftable(rw: Rewriter, node: Node, t: str, q: Perm) -> bool:
    """Whether a Transpose(q) reading ``t`` can move above ``t``'s producer ``node``."""
    if _single_data_input(rw, node) is None or not rw.single_use(t):
        return False
    if len(rw.shape(_single_data_input(rw, node))) != len(q):
        return False
    plan = plan_for(rw, node, inverse(q))
    return not isinstance(plan, str) and all(p == inverse(q) for p in plan.out_perms)


def from_graph_input(rw: Rewriter, transpose: Node, limit: int = 64) -> bool:
    """Whether ``transpose`` reads a graph input, directly or through single-use ops with one
    non-constant input it can be lifted over (then it belongs at the interface, and is not pushed
    down for nothing)."""
    t = rw.input(transpose, 0)
    q = perm_of(rw, transpose)
    for _ in range(limit):
        if t in rw.graph.inputs:
            return True
        prod = rw.producer_op(t)
        if prod is None or not _liftable(rw, prod, t, q):
            return False
        t = _single_data_input(rw, prod)
    return False


class PushTransposeDown(Rule):
    """``op(T_p(x), ...)`` -> ``T_q(op'(x, ...))`` when that adds no Transposes."""

    ops = MOVABLE

    def __init__(self) -> None:
        self._memo: tuple[Node, Inputs, Plan] | None = None

    def check(self, rw: Rewriter, node: Node) -> str | None:
        self._memo = None
        found = _transposed_inputs(rw, node)
        if isinstance(found, str):
            return found
        plan = plan_for(rw, node, found.perm)
        if isinstance(plan, str):
            return plan
        g = rw.graph
        removed = sum(1 for t in set(found.transposed.values())
                      if all(c is node for c, _ in g.consumers(g.outputs_of(t)[0]))
                      and not g.is_graph_output(g.outputs_of(t)[0]))
        new_inputs = sum(1 for t in found.others.values() if t is None)
        added = new_inputs + sum(_output_cost(rw, o, q) for o, q in zip(g.outputs_of(node), plan.out_perms))
        cost = added - removed
        fixed = new_inputs or any(from_graph_input(rw, t) for t in found.transposed.values())
        if cost > 0 or (cost == 0 and fixed):
            return f"moving it would not reduce the transposes (cost {cost})"
        self._memo = (node, found, plan)
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        memo, self._memo = self._memo, None
        assert memo is not None and memo[0] is node
        _, found, plan = memo
        ins = list(rw.graph.inputs_of(node))
        for port, t in found.transposed.items():
            ins[port] = rw.input(t, 0)
        back = inverse(found.perm)
        for port, t in found.others.items():
            ins[port] = (rw.graph.outputs_of(t)[0] if t is not None else
                         rw.add1("Transpose", [ins[port]], {"perm": back}, name=f"{node.name}_in{port}"))
        apply_plan(rw, node, ins, plan)


FAN_OUT_LIMIT = 32
"""Most nodes one fan-out push looks at (so each check is bounded and the pass stays linear)."""


class PushTransposeFanOut(Rule):
    """A Transpose read by several layout-agnostic ops moves below all of them at once.

    Pushing it into one consumer alone adds a Transpose (the original stays for the others), so
    :class:`PushTransposeDown` will not; but when every consumer can take it, and the branches they
    start reconverge (tf2onnx's hard-swish ``x * relu6(x + 3) / 6``, squeeze-excite's ``x * se(x)``),
    the whole neighbourhood is rewritten together: the region grows from the consumers through
    movable ops whose data inputs all come from the Transpose or the region, and the move is made when
    the Transposes then needed on the region's outputs (minus those they cancel) are fewer than the
    one removed (or as many, as for single pushes). The region is bounded by ``FAN_OUT_LIMIT``."""

    ops = frozenset({"Transpose"})

    def __init__(self) -> None:
        self._memo: tuple[Node, list[tuple[Node, Plan]]] | None = None

    def _region(self, rw: Rewriter, node: Node, p: Perm) -> list[tuple[Node, Plan]] | str:
        g = rw.graph
        moved = {g.outputs_of(node)[0]}       # tensors that will be untransposed
        region: list[tuple[Node, Plan]] = []
        taken: set[str] = set()
        failed: set[str] = set()
        frontier = [c for c, _ in g.consumers(g.outputs_of(node)[0])]
        i = 0
        while i < len(frontier):
            c = frontier[i]
            i += 1
            if c.name in taken or c.name in failed:
                continue
            if len(region) >= FAN_OUT_LIMIT:
                break
            ready = self._ready(rw, c, p, moved)
            if ready is None:  # waits for another input to join the region
                continue
            if isinstance(ready, str):
                failed.add(c.name)
                continue
            taken.add(c.name)
            region.append((c, ready))
            for o in g.outputs_of(c):
                moved.add(o)
                frontier.extend(cc for cc, _ in g.consumers(o))
        if any(cc.name not in taken for cc, _ in g.consumers(g.outputs_of(node)[0])):
            return "not every consumer can take the Transpose"
        return region

    @staticmethod
    def _ready(rw: Rewriter, c: Node, p: Perm, moved: set[str]) -> Plan | str | None:
        """c's plan if all its data inputs are moved (or constants/scalars), None if some are not yet."""
        if c.op not in MOVABLE:
            return f"{c.op} is not layout-agnostic"
        g = rw.graph
        ports = data_ports(rw, c)
        if any(t in moved for i, t in enumerate(g.inputs_of(c)) if i not in ports):
            return "a moved tensor is read as a parameter"
        waiting = False
        for port in ports:
            t = rw.input(c, port)
            if t in moved or g.tensor(t).is_const or all(d == 1 for d in rw.shape(t)):
                continue
            waiting = True
        if waiting:
            return None
        if any(len(rw.shape(o) or ()) != len(p) for o in g.outputs_of(c)):
            return "the output rank changes"
        plan = plan_for(rw, c, p)
        if isinstance(plan, str):
            return plan
        if any(q != p for q in plan.out_perms):
            return "the output perm changes"
        return plan

    def check(self, rw: Rewriter, node: Node) -> str | None:
        self._memo = None
        g = rw.graph
        out = g.outputs_of(node)[0]
        if g.is_graph_output(out):
            return "writes a graph output"
        if len(g.consumers(out)) < 2:
            return "fewer than two consumers (PushTransposeDown's case)"
        p = perm_of(rw, node)
        region = self._region(rw, node, p)
        if isinstance(region, str):
            return region
        inside = {c.name for c, _ in region}
        cost = -1
        for c, _ in region:
            for o in g.outputs_of(c):
                outside = [cc for cc, _ in g.consumers(o) if cc.name not in inside]
                if not outside and not g.is_graph_output(o):
                    continue
                cancels = sum(1 for cc in outside if cc.op == "Transpose" and is_identity(compose(p, perm_of(rw, cc))))
                stays = any(cc.op != "Transpose" for cc in outside) or g.is_graph_output(o)
                cost += (1 if stays else 0) - cancels
        if cost > 0 or (cost == 0 and from_graph_input(rw, node)):
            return f"moving it would not reduce the transposes (cost {cost})"
        self._memo = (node, region)
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        memo, self._memo = self._memo, None
        assert memo is not None and memo[0] is node
        g = rw.graph
        new = {g.outputs_of(node)[0]: rw.input(node, 0)}
        for c, plan in memo[1]:
            old_outs = g.outputs_of(c)
            ins = [new.get(t, t) for t in g.inputs_of(c)]
            for o, n in zip(old_outs, apply_plan(rw, c, ins, plan)):
                new[o] = n


class HoistInputTranspose(Rule):
    """A Transpose reached from a graph input through single-use ops with one non-constant input
    moves up to the input, so a fixed interface costs one Transpose right at the boundary."""

    ops = frozenset({"Transpose"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        if rw.input(node, 0) in rw.graph.inputs:
            return "already at a graph input"
        if any(c.op == "Transpose" for c, _ in rw.graph.consumers(rw.graph.outputs_of(node)[0])):
            return "it feeds a Transpose (they merge instead)"
        if not from_graph_input(rw, node):
            return "not reached from a graph input through single-use ops with one data input"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        q = perm_of(rw, node)
        prod = rw.producer_op(rw.input(node, 0))
        plan = plan_for(rw, prod, inverse(q))
        out, name, op, prod_name = rw.graph.outputs_of(node)[0], node.name, prod.op, prod.name
        data = _single_data_input(rw, prod)
        ins = list(rw.graph.inputs_of(prod))
        port = ins.index(data)
        ins[port] = rw.add1("Transpose", [data], {"perm": q}, name=f"{name}_up")
        for p, value in plan.consts.items():
            ins[p] = rw.constant(value, f"{prod_name}_in{p}")
        old_ins = rw.graph.inputs_of(prod)
        rw.graph.remove_node(node, keep_outputs=True)
        rw.graph.remove_node(prod)
        rw.add(op, ins, plan.attrs, name=prod_name, outputs=[out])
        for t in old_ins:
            if t is not None:
                rw.drop_if_dead(t)


class AbsorbTransposeIntoDense(Rule):
    """``Flatten(T_p(x)) @ W`` is ``Flatten(x) @ W'`` with W's rows permuted: the Transpose before a
    dense layer (an NHWC flatten read by NCHW weights, or the reverse) folds into the weights."""

    ops = frozenset({"Gemm", "MatMul"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        a = rw.input(node, 0)
        flat = rw.producer_op(a)
        if flat is None or flat.op not in ("Flatten", "Reshape") or not rw.single_use(a):
            return "input is not a single-use Flatten/Reshape"
        t = rw.producer_op(rw.input(flat, 0))
        if t is None or t.op != "Transpose" or not rw.single_use(rw.input(flat, 0)):
            return "the flatten does not read a single-use Transpose"
        x_shape, a_shape = rw.shape(rw.input(t, 0)), rw.shape(a)
        p = perm_of(rw, t)
        if p[0] != 0 or len(a_shape) != 2 or a_shape[0] != x_shape[0]:
            return "not a flatten of everything but the batch"
        if not all(isinstance(d, int) for d in x_shape[1:]):
            return "symbolic feature dims"
        w = rw.const(node, 1)
        if w is None or w.ndim != 2:
            return "weights are not a constant matrix"
        if node.op == "Gemm" and rw.attrs(node)["transA"]:
            return "transA"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        a = rw.input(node, 0)
        flat = rw.producer_op(a)
        t = rw.producer_op(rw.input(flat, 0))
        x = rw.input(t, 0)
        p = perm_of(rw, t)
        feat = rw.shape(x)[1:]
        src = np.arange(int(np.prod(feat))).reshape(feat).transpose([i - 1 for i in p[1:]]).reshape(-1)
        w = rw.const(node, 1)
        trans_b = node.op == "Gemm" and rw.attrs(node)["transB"]
        new_w = np.empty_like(w)
        if trans_b:
            new_w[:, src] = w
        else:
            new_w[src] = w
        flat_x = write_reshape(rw, x, rw.shape(a), f"{flat.name}")[0]
        ins = list(rw.graph.inputs_of(node))
        ins[0], ins[1] = flat_x, rw.constant(new_w, f"{node.name}_w")
        rw.replace(node, node.op, ins, dict(node.attrs))


PUSH_RULES: tuple[Rule, ...] = (MergeTransposes(), AbsorbTransposeIntoDense(), PushTransposeDown(),
                                PushTransposeFanOut(), HoistInputTranspose())
CLEANUP_RULES: tuple[Rule, ...] = (MergeTransposes(), TransposeAsReshape(), DropNoopReshape(),
                                   CollapseReshapes())


def optimize_transposes(graph: Graph) -> bool:
    """Push transposes through layout-agnostic ops and cancel the ones that meet.

    The rest are folded into dense weights or turned into Reshapes where they only relabel."""
    n = apply_rules(graph, PUSH_RULES)
    n += apply_rules(graph, CLEANUP_RULES)
    return n > 0


def count_transposes(graph: Graph) -> tuple[int, int]:
    """(inside, at the boundary): a boundary Transpose reads a graph input or writes a graph output."""
    inside = boundary = 0
    for node in graph.nodes:
        if node.op != "Transpose":
            continue
        edge = graph.inputs_of(node)[0] in graph.inputs or any(
            graph.is_graph_output(o) for o in graph.outputs_of(node))
        boundary += edge
        inside += not edge
    return inside, boundary
