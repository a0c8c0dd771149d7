"""Decomposition rules: an op a target lacks, written with simpler ones it has.

Each rule is exact up to float rounding between the steps (the formulas are the ops' definitions,
as in ONNX's function bodies). Legalization applies a rule only to nodes the target rejects and only
when the target accepts (or can lower in turn) every op the rule ``produces``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Node
from convertkit.canonical_ir.ops.nn import channels_last
from convertkit.canonical_ir.ops.registry import layout_channel_axis, normalize_axis
from convertkit.canonical_ir.passes.layout import layout_name
from convertkit.canonical_ir.passes.legalize import Capabilities, Lowering
from convertkit.canonical_ir.passes.rewrite import Rewriter
from convertkit.canonical_ir.passes.simplify import can_reshape, write_reshape

F32 = np.dtype(np.float32)


class Builder:
    """Writes a decomposition: ``b("Mul", x, y)`` adds a node and returns its output, ``out=`` makes
    it write a given tensor; ``b.c(v)`` is a constant in the computation's dtype."""

    def __init__(self, rw: Rewriter, node: Node, dtype: np.dtype | None = None) -> None:
        self.rw, self.node = rw, node
        self.dtype = np.dtype(dtype) if dtype is not None else rw.graph.tensor(rw.input(node, 0)).dtype

    def __call__(self, op: str, *inputs: str | None, out: str | None = None, **attrs: Any) -> str:
        outputs = [out] if out is not None else None
        return self.rw.add(op, list(inputs), attrs, name=f"{self.node.name}_{op.lower()}", outputs=outputs)[0]

    def c(self, value: Any, dtype: Any = None, name: str = "const") -> str:
        return self.rw.constant(np.asarray(value, dtype=dtype if dtype is not None else self.dtype),
                                f"{self.node.name}_{name}")

    def cast(self, x: str, dtype: np.dtype, out: str | None = None) -> str:
        if self.rw.graph.tensor(x).dtype == dtype and out is None:
            return x
        return self("Cast", x, out=out, to=np.dtype(dtype).name)

    def mean(self, x: str, axes: list[int], out: str | None = None) -> str:
        return self("ReduceMean", x, self.c(axes, np.int64, "axes"), out=out, keepdims=1)


def detach(rw: Rewriter, node: Node) -> tuple[list[str | None], list[str]]:
    """Remove ``node`` but keep its output tensors for the decomposition to write; unused optional
    outputs go. Returns (inputs, outputs)."""
    g = rw.graph
    ins, outs = g.inputs_of(node), g.outputs_of(node)
    g.remove_node(node, keep_outputs=True)
    for o in outs[1:]:
        if not g.consumers(o) and not g.is_graph_output(o):
            g.remove_tensor(o)
    return ins, outs


def _float_input(rw: Rewriter, node: Node) -> str | None:
    dt = rw.graph.tensor(rw.input(node, 0)).dtype
    return None if dt is not None and dt.kind == "f" else f"input is {dt}, not float"


# --------------------------------------------------------------------------------- activations
class HardSwishToHardSigmoid(Lowering):
    """HardSwish(x) = x * HardSigmoid(x; alpha=1/6, beta=1/2)."""

    ops = frozenset({"HardSwish"})
    produces = frozenset({"Mul", "HardSigmoid"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        b("Mul", x, b("HardSigmoid", x, alpha=1.0 / 6.0, beta=0.5), out=y)


class HardSigmoidToClip(Lowering):
    """HardSigmoid(x) = Clip(alpha * x + beta, 0, 1)."""

    ops = frozenset({"HardSigmoid"})
    produces = frozenset({"Mul", "Add", "Clip"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        a = rw.attrs(node)
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        lin = b("Add", b("Mul", x, b.c(a["alpha"])), b.c(a["beta"]))
        b("Clip", lin, b.c(0.0, name="zero"), b.c(1.0, name="one"), out=y)


class GeluErf(Lowering):
    """Gelu(x) = x * (erf(x / sqrt 2) + 1) * 1/2."""

    ops = frozenset({"Gelu"})
    produces = frozenset({"Mul", "Add", "Erf"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        mode = rw.attrs(node)["approximate"]
        return _float_input(rw, node) or (None if mode == "none" else f"approximate={mode!r}, not 'none'")

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        inner = b("Erf", b("Mul", x, b.c(1.0 / math.sqrt(2.0))))
        b("Mul", b("Mul", x, b("Add", inner, b.c(1.0))), b.c(0.5), out=y)


class GeluTanh(Lowering):
    """Gelu(x; tanh) = x * (tanh(sqrt(2/pi) (x + 0.044715 x^3)) + 1) * 1/2."""

    ops = frozenset({"Gelu"})
    produces = frozenset({"Mul", "Add", "Tanh"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        mode = rw.attrs(node)["approximate"]
        return _float_input(rw, node) or (None if mode == "tanh" else f"approximate={mode!r}, not 'tanh'")

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        cube = b("Mul", x, b("Mul", x, x))
        poly = b("Add", x, b("Mul", cube, b.c(0.044715)))
        inner = b("Tanh", b("Mul", poly, b.c(math.sqrt(2.0 / math.pi))))
        b("Mul", b("Mul", x, b("Add", inner, b.c(1.0))), b.c(0.5), out=y)


class MishToSoftplus(Lowering):
    """Mish(x) = x * tanh(softplus(x))."""

    ops = frozenset({"Mish"})
    produces = frozenset({"Mul", "Tanh", "Softplus"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        b("Mul", x, b("Tanh", b("Softplus", x)), out=y)


class SoftplusStable(Lowering):
    """Softplus(x) = relu(x) + log(1 + exp(-|x|)): never overflows, unlike log(exp(x) + 1)."""

    ops = frozenset({"Softplus"})
    produces = frozenset({"Relu", "Add", "Log", "Exp", "Neg", "Abs"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        tail = b("Log", b("Add", b("Exp", b("Neg", b("Abs", x))), b.c(1.0)))
        b("Add", b("Relu", x), tail, out=y)


class SwishToSigmoid(Lowering):
    """Swish(x; alpha) = x * sigmoid(alpha x)."""

    ops = frozenset({"Swish"})
    produces = frozenset({"Mul", "Sigmoid"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        alpha = float(rw.attrs(node)["alpha"])
        b = Builder(rw, node)
        (x,), (y,) = detach(rw, node)
        b("Mul", x, b("Sigmoid", x if alpha == 1.0 else b("Mul", x, b.c(alpha))), out=y)


# ----------------------------------------------------------------------------- normalization
class LayerNormDecompose(Lowering):
    """LayerNormalization's function body: standardize over axes ``axis..`` in the stash type
    (float32 for float16 input), then scale and shift in the input type; Mean and InvStdDev are
    written in the stash type when used."""

    ops = frozenset({"LayerNormalization"})
    produces = frozenset({"ReduceMean", "Sub", "Mul", "Add", "Sqrt", "Reciprocal", "Cast"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        a = rw.attrs(node)
        xtype = rw.graph.tensor(rw.input(node, 0)).dtype
        stage = F32 if xtype == np.float16 else xtype
        b = Builder(rw, node, stage)
        rank = len(rw.shape(rw.input(node, 0)))
        axes = list(range(normalize_axis(int(a["axis"]), rank), rank))
        ins, outs = detach(rw, node)
        stats = [outs[p] if p < len(outs) and rw.graph.has_tensor(outs[p]) else None for p in (1, 2)]
        direct = [s if stage == F32 else None for s in stats]
        x = b.cast(ins[0], stage)
        mean = b.mean(x, axes, out=direct[0])
        d = b("Sub", x, mean)
        var = b.mean(b("Mul", d, d), axes)
        inv = b("Reciprocal", b("Sqrt", b("Add", var, b.c(float(a["epsilon"])))), out=direct[1])
        normalized = b.cast(b("Mul", d, inv), xtype)
        has_bias = len(ins) > 2 and ins[2] is not None
        scaled = b("Mul", normalized, ins[1], out=None if has_bias else outs[0])
        if has_bias:
            b("Add", scaled, ins[2], out=outs[0])
        for stat, value in zip(stats, (mean, inv)):
            if stat is not None and stage != F32:
                b.cast(value, F32, out=stat)


def _channel_shape(rank: int, layout: str, c: int) -> tuple[int, ...]:
    axis = layout_channel_axis(layout, rank)
    return (c,) + (1,) * (rank - 1 - axis)


class BatchNormToMulAdd(Lowering):
    """BatchNormalization (inference) = x * a + b, a = scale / sqrt(var + eps), b = B - mean * a,
    with per-channel constants shaped to broadcast along the layout's channel axis."""

    ops = frozenset({"BatchNormalization"})
    produces = frozenset({"Mul", "Add"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        if any(rw.const(node, i) is None for i in range(1, 5)):
            return "run-time statistics"
        return _float_input(rw, node)

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        scale, bias, mean, var = (rw.const(node, i).astype(np.float64) for i in range(1, 5))
        a_ = rw.attrs(node)
        rank = len(rw.shape(rw.input(node, 0)))
        mul = scale / np.sqrt(var + float(a_["epsilon"]))
        shape = _channel_shape(rank, a_["layout"], mul.size)
        b = Builder(rw, node)
        (x, *_), (y,) = detach(rw, node)
        b("Add", b("Mul", x, b.c(mul.reshape(shape), name="scale")), b.c((bias - mean * mul).reshape(shape),
                                                                            name="shift"), out=y)


# ------------------------------------------------------------------------------------ linalg
class GemmToMatMul(Lowering):
    """Gemm = alpha * A' @ B' + beta * C: MatMul, with constant transposes and scales folded."""

    ops = frozenset({"Gemm"})
    produces = frozenset({"MatMul", "Add", "Mul", "Transpose"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        a_ = rw.attrs(node)
        b = Builder(rw, node)
        alpha, beta = float(a_["alpha"]), float(a_["beta"])
        (a, w, *c), (y,) = detach(rw, node)
        c = c[0] if c else None
        if a_["transA"]:
            a = b("Transpose", a, perm=[1, 0])
        wv = rw.graph.const_value(w)
        if wv is not None:
            wv = wv.T if a_["transB"] else wv
            w = b.c(wv * np.asarray(alpha, wv.dtype) if alpha != 1.0 else wv, wv.dtype, "w")
            alpha = 1.0
        elif a_["transB"]:
            w = b("Transpose", w, perm=[1, 0])
        has_c = c is not None and beta != 0.0
        mm = b("MatMul", a, w, out=None if (has_c or alpha != 1.0) else y)
        if alpha != 1.0:
            mm = b("Mul", mm, b.c(alpha), out=None if has_c else y)
        if has_c:
            cv = rw.graph.const_value(c)
            if cv is not None:
                c = b.c(cv * np.asarray(beta, cv.dtype) if beta != 1.0 else cv, cv.dtype, "c")
            elif beta != 1.0:
                c = b("Mul", c, b.c(beta))
            b("Add", mm, c, out=y)


# ---------------------------------------------------------------------------------- spatial
def _groups(rw: Rewriter, node: Node) -> tuple[int, int, int]:
    """(group, input channels, output channels) of a Conv."""
    a = rw.attrs(node)
    x = rw.shape(rw.input(node, 0))
    w = rw.shape(rw.input(node, 1))
    axis = layout_channel_axis(a["layout"], len(x))
    return int(a["group"]), x[axis], w[0]


class GroupedConvSplit(Lowering):
    """A grouped (not depthwise) Conv = Split the channels, one plain Conv per group, Concat: for
    targets that only have plain and depthwise convolutions."""

    ops = frozenset({"Conv"})
    produces = frozenset({"Split", "Conv", "Concat"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        g, c, o = _groups(rw, node)
        if g == 1 or (isinstance(c, int) and g == c):
            return "not a grouped convolution"
        if not isinstance(c, int):
            return "symbolic channel count"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        g, c, o = _groups(rw, node)
        a_ = rw.attrs(node)
        axis = layout_channel_axis(a_["layout"], len(rw.shape(rw.input(node, 0))))
        attrs = dict(node.attrs, group=1)
        b = Builder(rw, node)
        ins, (y,) = detach(rw, node)
        xs = rw.add("Split", [ins[0], b.c([c // g] * g, np.int64, "split")], {"axis": axis},
                    name=f"{node.name}_split", n_outputs=g)
        ws = self._parts(rw, b, ins[1], g, o)
        bs = self._parts(rw, b, ins[2], g, o) if len(ins) > 2 and ins[2] is not None else [None] * g
        ys = [rw.add1("Conv", [xs[i], ws[i], bs[i]], attrs, name=f"{node.name}_g{i}") for i in range(g)]
        rw.add("Concat", ys, {"axis": axis}, name=f"{node.name}_concat", outputs=[y])

    @staticmethod
    def _parts(rw: Rewriter, b: Builder, t: str, g: int, o: int) -> list[str]:
        """``t`` cut into ``g`` equal parts along axis 0 (the output channels in both layouts)."""
        value = rw.graph.const_value(t)
        if value is not None:
            return [rw.constant(part, f"{b.node.name}_part") for part in np.split(value, g)]
        return rw.add("Split", [t, b.c([o // g] * g, np.int64, "wsplit")], {"axis": 0},
                      name=f"{b.node.name}_wsplit", n_outputs=g)


class ReduceMeanToGlobalPool(Lowering):
    """ReduceMean over exactly the spatial axes of the target layout = GlobalAveragePool (then a
    Reshape when the reduced axes are dropped)."""

    ops = frozenset({"ReduceMean"})
    produces = frozenset({"GlobalAveragePool", "Reshape"})

    def __init__(self, layout: str = "NCHW") -> None:
        self.layout = layout

    def check(self, rw: Rewriter, node: Node) -> str | None:
        axes = rw.const(node, 1)
        shape = rw.shape(rw.input(node, 0))
        rank = len(shape)
        if axes is None or rank < 3:
            return "axes unknown or rank below 3"
        spatial = set(range(1, rank - 1)) if channels_last(self.layout) else set(range(2, rank))
        if {int(a) % rank for a in axes.reshape(-1)} != spatial:
            return f"axes are not the spatial axes of {self.layout}"
        if rw.graph.tensor(rw.input(node, 0)).dtype.kind != "f":
            return "integer mean"
        out = rw.shape(rw.graph.outputs_of(node)[0])
        kept = tuple(1 if i in spatial else d for i, d in enumerate(shape))
        if not rw.attrs(node)["keepdims"] and not can_reshape(kept, out):
            return "the squeeze is not expressible statically"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        keep = rw.attrs(node)["keepdims"]
        rank = len(rw.shape(rw.input(node, 0)))
        layout = layout_name(channels_last(self.layout), rank)
        (x, *_), (y,) = detach(rw, node)
        if keep:
            rw.add("GlobalAveragePool", [x], {"layout": layout}, name=node.name, outputs=[y])
            return
        pooled = rw.add1("GlobalAveragePool", [x], {"layout": layout}, name=node.name)
        write_reshape(rw, pooled, rw.shape(y), f"{node.name}_squeeze", outputs=[y])


def lowerings(caps: Capabilities | None = None) -> list[Lowering]:
    """The decomposition rules, in the order they are tried (fused-activation and Pad rules included)."""
    from convertkit.canonical_ir.passes.fusion import FoldPad, UnfuseActivation

    layout = caps.layout if caps is not None else "NCHW"
    return [UnfuseActivation(), HardSwishToHardSigmoid(), HardSigmoidToClip(), GeluErf(), GeluTanh(),
            MishToSoftplus(), SoftplusStable(), SwishToSigmoid(), LayerNormDecompose(), BatchNormToMulAdd(),
            GemmToMatMul(), GroupedConvSplit(), ReduceMeanToGlobalPool(layout), FoldPad()]
