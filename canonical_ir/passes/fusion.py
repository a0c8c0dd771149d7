"""Fusions: BatchNorm and bias Adds folded into the preceding layer's weights, Pads into the next
convolution or pooling, activations into their producer for targets that run them fused.

Folding rewrites constants once at conversion time instead of costing a pass over the tensor at every
inference. A fused activation is the producer's ``fused_activation`` attribute (see
``ops/registry.py``): the reference interpreter applies it, TFLite-style backends write it as the op's
fused activation, and legalization splits it back into its own node for targets that cannot.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops.nn import channels_last
from convertkit.canonical_ir.ops.registry import FUSABLE, FUSED_ACTIVATION, layout_channel_axis
from convertkit.canonical_ir.passes.legalize import Capabilities, Lowering, activation_kind
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules

FOLDS_BN = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def _bn_affine(rw: Rewriter, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b) with BatchNormalization(x) = x * a + b per channel, in float64; None if not constant."""
    params = [rw.const(bn, i) for i in range(1, 5)]
    if any(p is None for p in params):
        return None
    scale, bias, mean, var = (p.astype(np.float64) for p in params)
    a = scale / np.sqrt(var + float(rw.attrs(bn)["epsilon"]))
    return a, bias - mean * a


def _channel_axis(rw: Rewriter, node: Node, tensor: str) -> int:
    return layout_channel_axis(rw.attrs(node).get("layout", "NCHW"), len(rw.shape(tensor)))


class FoldBatchNorm(Rule):
    """Conv/ConvTranspose/Gemm/MatMul -> BatchNormalization: scale the weights per output channel and
    fold the shift into the bias (MatMul keeps an Add for it)."""

    ops = frozenset({"BatchNormalization"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        x = rw.input(node, 0)
        prod = rw.producer_op(x)
        if prod is None or prod.op not in FOLDS_BN:
            return "input is not a Conv, ConvTranspose, Gemm or MatMul"
        if not rw.single_use(x) or FUSED_ACTIVATION in prod.attrs:
            return "the layer's output has other uses or a fused activation"
        if _bn_affine(rw, node) is None or rw.const(prod, 1) is None:
            return "statistics or weights are not constant"
        if rw.graph.tensor(x).dtype.kind != "f":
            return "not float"
        axis = _channel_axis(rw, node, x)
        rank = len(rw.shape(x))
        if prod.op in ("Conv", "ConvTranspose"):
            if _channel_axis(rw, prod, x) != axis:
                return "the layer and the BatchNorm disagree on the channel axis"
            if rw.input(prod, 2) is not None and rw.const(prod, 2) is None:
                return "run-time bias"
        elif axis != rank - 1 or rw.const(prod, 1).ndim != 2:
            return "the BatchNorm channels are not the dense layer's outputs"
        elif prod.op == "Gemm" and rw.input(prod, 2) is not None and rw.const(prod, 2) is None:
            return "run-time Gemm C"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        a, b = _bn_affine(rw, node)
        x = rw.input(node, 0)
        prod = rw.producer_op(x)
        w = rw.const(prod, 1)
        dt = w.dtype
        attrs = dict(prod.attrs)
        if prod.op == "MatMul":
            rw.replace(prod, "MatMul", [rw.input(prod, 0), rw.constant((w * a[None, :]).astype(dt), "w_bn")])
            rw.replace(node, "Add", [x, rw.constant(b.astype(dt), f"{node.name}_shift")])
            return
        if prod.op == "Gemm":
            ga = rw.attrs(prod)
            w2 = w * (a[:, None] if ga["transB"] else a[None, :])
            c = rw.const(prod, 2)
            c2 = (0.0 if c is None else c.astype(np.float64) * float(ga["beta"])) * a + b
            attrs["beta"] = 1.0
            ins = [rw.input(prod, 0), rw.constant(w2.astype(dt), "w_bn"), rw.constant(c2.astype(dt), "c_bn")]
        else:
            group = int(rw.attrs(prod)["group"])
            if prod.op == "ConvTranspose" and not channels_last(rw.attrs(prod)["layout"]):
                i, og = w.shape[:2]
                w2 = (w.reshape(group, i // group, og, -1) * a.reshape(group, 1, og, 1)).reshape(w.shape)
            else:
                w2 = w * a.reshape((-1,) + (1,) * (w.ndim - 1))
            bias = rw.const(prod, 2) if rw.input(prod, 2) is not None else np.zeros(a.shape, dt)
            ins = [rw.input(prod, 0), rw.constant(w2.astype(dt), "w_bn"),
                   rw.constant((bias.astype(np.float64) * a + b).astype(dt), "b_bn")]
        rw.replace(prod, prod.op, ins, attrs)
        rw.bypass(node)


class FoldAddIntoConvBias(Rule):
    """Conv/ConvTranspose -> Add(per-channel constant): the constant joins the layer's bias."""

    ops = frozenset({"Add"})

    def _parts(self, rw: Rewriter, node: Node) -> tuple[Node, int, np.ndarray] | str:
        for port in (0, 1):
            prod = rw.producer_op(rw.input(node, port))
            c = rw.const(node, 1 - port)
            if prod is None or prod.op not in ("Conv", "ConvTranspose") or c is None:
                continue
            y = rw.input(node, port)
            if not rw.single_use(y) or FUSED_ACTIVATION in prod.attrs:
                return "the Conv output has other uses or a fused activation"
            rank, axis = len(rw.shape(y)), _channel_axis(rw, prod, y)
            if c.ndim > rank or rw.graph.tensor(y).dtype != c.dtype:
                return "the constant does not broadcast per channel"
            full = c.reshape((1,) * (rank - c.ndim) + c.shape)
            if any(d != 1 for i, d in enumerate(full.shape) if i != axis):
                return "the constant is not per channel"
            channels = rw.shape(y)[axis]
            if rw.input(prod, 2) is not None and rw.const(prod, 2) is None:
                return "run-time bias"
            return prod, port, np.broadcast_to(full.reshape(-1), (channels,))
        return "not a Conv plus a constant"

    def check(self, rw: Rewriter, node: Node) -> str | None:
        parts = self._parts(rw, node)
        return parts if isinstance(parts, str) else None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        prod, port, c = self._parts(rw, node)
        old = rw.const(prod, 2)
        bias = c if old is None else old + c
        rw.replace(prod, prod.op, [rw.input(prod, 0), rw.input(prod, 1),
                                   rw.constant(bias.astype(c.dtype), f"{prod.name}_b")], dict(prod.attrs))
        rw.bypass(node, port)


class MatMulAddToGemm(Rule):
    """MatMul(2-D x, constant weights) -> Add(constant per-column bias): one Gemm with bias, as TFLite's
    FULLY_CONNECTED and the C bundle's dense kernel take it (and int8 keeps the bias in int32)."""

    ops = frozenset({"Add"})

    def _parts(self, rw: Rewriter, node: Node) -> tuple[Node, int, np.ndarray] | str:
        for port in (0, 1):
            prod = rw.producer_op(rw.input(node, port))
            c = rw.const(node, 1 - port)
            if prod is None or prod.op != "MatMul" or c is None:
                continue
            y = rw.input(node, port)
            w = rw.const(prod, 1)
            if w is None or w.ndim != 2 or len(rw.shape(rw.input(prod, 0))) != 2:
                return "not a 2-D input times constant 2-D weights"
            if not rw.single_use(y) or FUSED_ACTIVATION in prod.attrs:
                return "the MatMul output has other uses or a fused activation"
            n = w.shape[1]
            if c.ndim > 2 or c.dtype != w.dtype or c.size not in (1, n) or (c.ndim == 2 and c.shape[0] != 1):
                return "the constant is not a per-column bias"
            return prod, port, np.broadcast_to(c.reshape(-1), (n,)).copy()
        return "not a MatMul plus a constant"

    def check(self, rw: Rewriter, node: Node) -> str | None:
        parts = self._parts(rw, node)
        return parts if isinstance(parts, str) else None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        prod, port, c = self._parts(rw, node)
        rw.replace(prod, "Gemm", [rw.input(prod, 0), rw.input(prod, 1), rw.constant(c, f"{prod.name}_b")], {})
        rw.bypass(node, port)


# ------------------------------------------------------------------------------------- Pad
def _pad_widths(rw: Rewriter, pad: Node) -> list[tuple[int, int]] | None:
    pads, axes = rw.const(pad, 1), rw.const(pad, 3)
    if pads is None or (rw.input(pad, 3) is not None and axes is None):
        return None
    rank = len(rw.shape(rw.input(pad, 0)))
    pads = [int(p) for p in pads.reshape(-1)]
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes.reshape(-1)]
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + len(axes)])
    return widths


class FoldPad(Lowering):
    """Constant Pad of the spatial axes -> Conv/AveragePool/MaxPool reading it: the pads join the
    consumer's own (zeros for Conv and AveragePool counting pads, -inf for MaxPool)."""

    ops = frozenset({"Pad"})

    def _why_not(self, rw: Rewriter, pad: Node, use: Node, port: int,
                 widths: list[tuple[int, int]], value: float) -> str | None:
        if use.op not in ("Conv", "AveragePool", "MaxPool") or port != 0:
            return f"read by {use.op}"
        a = rw.attrs(use)
        if a["auto_pad"] not in ("NOTSET", "VALID"):
            return "the consumer pads automatically"
        rank = len(widths)
        spatial = range(1, rank - 1) if channels_last(a["layout"]) else range(2, rank)
        if any(widths[i] != (0, 0) for i in range(rank) if i not in spatial):
            return "it pads the batch or channel axis"
        if any(b < 0 or e < 0 for b, e in widths):
            return "negative pads crop"
        if use.op == "MaxPool":
            ok = value == -np.inf and len(rw.graph.outputs_of(use)) == 1
            return None if ok else "MaxPool needs -inf pads (and no Indices)"
        if value != 0:
            return "non-zero pad value"
        if use.op == "AveragePool":
            own = a["pads"] or []
            if a["ceil_mode"] or (any(own) and not a["count_include_pad"]):
                return "the pool's own pads are not counted"
        return None

    def check(self, rw: Rewriter, node: Node) -> str | None:
        if rw.attrs(node)["mode"] != "constant" or rw.graph.is_graph_output(rw.graph.outputs_of(node)[0]):
            return "not a constant pad, or a graph output"
        widths = _pad_widths(rw, node)
        value = rw.const(node, 2) if rw.input(node, 2) is not None else np.zeros(1)
        if widths is None or value is None:
            return "run-time pads or value"
        value = float(value.reshape(-1)[0]) if value.size else 0.0
        uses = rw.graph.consumers(rw.graph.outputs_of(node)[0])
        for use, port in uses:
            why = self._why_not(rw, node, use, port, widths, value)
            if why:
                return why
        return None if uses else "unused"

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        widths = _pad_widths(rw, node)
        x = rw.input(node, 0)
        for use, _ in rw.graph.consumers(rw.graph.outputs_of(node)[0]):
            a = rw.attrs(use)
            rank = len(widths)
            spatial = list(range(1, rank - 1) if channels_last(a["layout"]) else range(2, rank))
            n = len(spatial)
            own = list(a["pads"] or [0] * (2 * n)) if a["auto_pad"] == "NOTSET" else [0] * (2 * n)
            pads = [own[i] + widths[ax][0] for i, ax in enumerate(spatial)] + \
                   [own[n + i] + widths[ax][1] for i, ax in enumerate(spatial)]
            attrs = dict(use.attrs, pads=pads, auto_pad="NOTSET")
            if use.op == "AveragePool":
                attrs["count_include_pad"] = 1
            use.attrs = attrs
            rw.set_input(use, 0, x)


# ------------------------------------------------------------------------------- activations
def activation_of(rw: Rewriter, node: Node) -> tuple | None:
    """``node`` as a fused-activation value ``(op, *params)``, or None if it is not one."""
    if node.op in ("Relu", "Sigmoid", "Tanh", "HardSwish"):
        return (node.op,)
    if node.op == "LeakyRelu":
        return ("LeakyRelu", float(rw.attrs(node)["alpha"]))
    if node.op == "Clip":
        bounds = []
        for port in (1, 2):
            if rw.input(node, port) is None:
                bounds.append(None)
                continue
            v = rw.const(node, port)
            if v is None:
                return None
            bounds.append(float(v.reshape(-1)[0]))
        return ("Clip", *bounds)
    return None


class FuseActivation(Rule):
    """Activation -> its producer's ``fused_activation``, when the target runs that pair fused."""

    def __init__(self, caps: Capabilities) -> None:
        self.caps = caps
        self.ops = frozenset({"Relu", "Sigmoid", "Tanh", "HardSwish", "LeakyRelu", "Clip"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        act = activation_of(rw, node)
        if act is None or activation_kind(act) not in self.caps.fused_activations:
            return "the target does not fuse this activation"
        x = rw.input(node, 0)
        prod = rw.producer_op(x)
        if prod is None or prod.op not in FUSABLE or prod.op not in self.caps.fusable_ops:
            return "the producer cannot carry a fused activation"
        if not rw.single_use(x) or prod.attrs.get(FUSED_ACTIVATION) is not None:
            return "the producer's output has other uses or already has one"
        if rw.graph.outputs_of(prod)[0] != x or rw.graph.tensor(x).dtype.kind != "f":
            return "not the producer's float output 0"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        prod = rw.producer_op(rw.input(node, 0))
        rw.set_attrs(prod, dict(prod.attrs, **{FUSED_ACTIVATION: activation_of(rw, node)}))
        rw.bypass(node)


class UnfuseActivation(Lowering):
    """A fused activation the target cannot run becomes its own node again."""

    ops = FUSABLE

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return None if node.attrs.get(FUSED_ACTIVATION) is not None else "no fused activation"

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        g = rw.graph
        op, *params = node.attrs[FUSED_ACTIVATION]
        attrs = {k: v for k, v in node.attrs.items() if k != FUSED_ACTIVATION}
        ins, outs, name, kind = g.inputs_of(node), g.outputs_of(node), node.name, node.op
        g.remove_node(node, keep_outputs=True)
        inner = g.add_tensor(g.unique_name(f"{outs[0]}_pre_act"))
        rw.add(kind, ins, attrs, name=name, outputs=[inner, *outs[1:]])
        dt = g.tensor(inner).dtype
        if op == "Clip":
            bounds = [None if v is None else rw.constant(np.asarray(v, dt), f"{name}_clip") for v in params]
            rw.add("Clip", [inner, *bounds], name=f"{name}_act", outputs=[outs[0]])
        else:
            from convertkit.canonical_ir.ops import get_schema
            attrs = dict(zip(get_schema(op).attrs, params))
            rw.add(op, [inner], attrs, name=f"{name}_act", outputs=[outs[0]])


# ------------------------------------------------------------------------------------ passes
def fold_batch_norms(graph: Graph) -> bool:
    """BatchNorm and per-channel bias Adds folded into the preceding Conv/ConvTranspose/Gemm/MatMul."""
    return apply_rules(graph, [FoldBatchNorm(), FoldAddIntoConvBias()]) > 0


def fold_pads(graph: Graph) -> bool:
    """Constant spatial Pads folded into the Conv or pooling that reads them."""
    return apply_rules(graph, [FoldPad()]) > 0


def fusion_pass(caps: Capabilities) -> Callable[[Graph], bool]:
    rules: list[Rule] = [MatMulAddToGemm()] if "Gemm" in caps.ops else []
    rules.append(FuseActivation(caps))

    def fuse_activations(graph: Graph) -> bool:
        return apply_rules(graph, rules) > 0
    acts, ops = ", ".join(sorted(caps.fused_activations)), ", ".join(sorted(caps.fusable_ops))
    fuse_activations.__doc__ = (f"Activations fused into their producer ({acts} on {ops})"
                                + ("; MatMul + bias Add into Gemm." if len(rules) > 1 else "."))
    return fuse_activations
