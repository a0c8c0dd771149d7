"""One converter per Caffe2 op, in the plain dict ``HANDLERS`` at the bottom.

Caffe2 semantics that differ from the canonical (ONNX) ops, and how they are bridged:

* Add/Sub/Mul/Div with ``broadcast=1`` align B with A at ``axis`` (default: A's last dims) instead of
  numpy's trailing alignment, so B gets trailing 1-dims. Without ``broadcast`` numpy rules apply.
* Softmax coerces its input to 2-D at ``axis`` (ONNX before opset 13): Flatten, Softmax, Reshape back.
* FC/FCTransposed flatten X at ``axis`` and W at ``axis_w``; Y keeps X's leading dims.
* PRelu's slope runs along the channel axis given by ``order``, not along the last axis.
* Optional second outputs (Concat's split_info, Reshape's old_shape, Dropout's mask) are built only
  when something reads them. SpatialBN and Dropout must be in test mode (``is_test=1``): training
  mode computes batch statistics or random masks, which an inference graph cannot reproduce.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convertkit.frontends.caffe2 import spatial
from convertkit.frontends.caffe2.registry import Args, Converter, Dims, OpContext


# ------------------------------------------------------------------------------------- helpers
def _rename(op: str, **fixed: object) -> Callable[[OpContext], None]:
    """A Caffe2 op that is the canonical op of another name, inputs unchanged and no arguments."""
    def convert(ctx: OpContext) -> None:
        ctx.str("order", "NCHW")  # elementwise ops tolerate an order hint
        ctx.emit(op, ctx.inputs, attrs=dict(fixed))
    return convert


def _axis(ctx: OpContext, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        raise ctx.error(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def _shape_tensor(ctx: OpContext, i: int, end: int | None = None) -> str:
    """Input i's shape (dims ``:end``) as an int64 tensor: a constant when static, else a Shape op."""
    shape = ctx.shape(i)[:end]
    if all(isinstance(d, int) for d in shape):
        return ctx.const(np.asarray(shape, np.int64), name="shape")
    return ctx.emit("Shape", [ctx.input(i)], [ctx.tmp("shape")], attrs={} if end is None else {"end": end})


def _bind(ctx: OpContext, port: int, tensor: str) -> None:
    """Make an existing tensor the value of output ``port`` (an Identity the cleanup pass removes)."""
    ctx.emit("Identity", [tensor], [ctx.outputs[port]])


def _channel_shape(n: int, rank: int, layout: str) -> tuple[int, ...]:
    """Shape that makes a per-channel vector broadcast along the layout's channel axis."""
    return (n,) if layout == "NHWC" or rank <= 2 else (n,) + (1,) * (rank - 2)


# ------------------------------------------------------------------------------- activations
def leaky_relu(ctx: OpContext) -> None:
    ctx.emit("LeakyRelu", [ctx.input(0)], attrs={"alpha": ctx.float("alpha", 0.01)})


def prelu(ctx: OpContext) -> None:
    layout = ctx.order()
    slope = ctx.param(1, "slope")
    shape = _channel_shape(slope.size, ctx.rank(0), layout)
    ctx.emit("PRelu", [ctx.input(0), ctx.const(slope.reshape(shape), name="slope")])


def softmax(ctx: OpContext) -> None:
    shape = ctx.shape(0)
    axis = _axis(ctx, ctx.int("axis", 1), len(shape))
    if all(d == 1 for d in shape[axis + 1:]):  # nothing to coerce (e.g. class scores [N, C, 1, 1])
        ctx.emit("Softmax", [ctx.input(0)], attrs={"axis": axis})
        return
    flat = ctx.emit("Flatten", [ctx.input(0)], [ctx.tmp("2d")], attrs={"axis": axis})
    soft = ctx.emit("Softmax", [flat], [ctx.tmp("softmax")], attrs={"axis": 1})
    ctx.emit("Reshape", [soft, _shape_tensor(ctx, 0)])


def clip(ctx: OpContext) -> None:
    dt = ctx.dtype(0)
    lo, hi = ctx.float("min", None), ctx.float("max", None)
    bounds = [None if v is None else ctx.const(np.asarray(v, dt), name=n) for v, n in ((lo, "min"), (hi, "max"))]
    ctx.emit("Clip", [ctx.input(0), *bounds])


def scale(ctx: OpContext) -> None:
    ctx.emit("Mul", [ctx.input(0), ctx.const(np.asarray(ctx.float("scale", 1.0), ctx.dtype(0)), name="scale")])


# ------------------------------------------------------------------------------- elementwise
def _binary(op: str) -> Callable[[OpContext], None]:
    def convert(ctx: OpContext) -> None:
        legacy = ctx.int("broadcast", 0)
        axis, axis_str, order = ctx.int("axis", -1), ctx.str("axis_str", ""), ctx.str("order", "NCHW")
        b = ctx.input(1)
        if legacy:
            b = _legacy_broadcast(ctx, axis, axis_str, order)
        ctx.emit(op, [ctx.input(0), b])
    return convert


def _legacy_broadcast(ctx: OpContext, axis: int, axis_str: str, order: str) -> str:
    """B aligned with A's dims starting at ``axis``: B with trailing 1-dims for numpy broadcasting."""
    ra, rb = ctx.rank(0), ctx.rank(1)
    if axis_str:
        if ctx.has("axis") or len(axis_str) != 1 or axis_str not in order:
            raise ctx.error(f"axis_str={axis_str!r} with order {order!r} does not name one axis")
        axis = order.index(axis_str)
    if axis == -1:
        axis = ra - rb
    if not 0 <= axis <= ra - rb:
        raise ctx.error(f"cannot broadcast B of rank {rb} onto A of rank {ra} at axis {axis}")
    trailing = ra - axis - rb
    if trailing == 0:
        return ctx.input(1)
    value = ctx.value(1)
    if value is not None:
        return ctx.const(value.reshape(value.shape + (1,) * trailing), name="b")
    axes = ctx.const(np.arange(rb, rb + trailing, dtype=np.int64), name="axes")
    return ctx.emit("Unsqueeze", [ctx.input(1), axes], [ctx.tmp("b")])


def sum_(ctx: OpContext) -> None:
    ctx.emit("Sum" if ctx.n_inputs() > 1 else "Identity", ctx.inputs)


# ------------------------------------------------------------------------------------ linear
def _fc(transposed: bool) -> Callable[[OpContext], None]:
    def convert(ctx: OpContext) -> None:
        rank = ctx.rank(0)
        axis = _axis(ctx, ctx.int("axis", 1), rank)
        w = ctx.param(1, "weight")
        axis_w = _axis(ctx, ctx.int("axis_w", 1), w.ndim, "axis_w")
        rows = int(np.prod(w.shape[:axis_w], dtype=np.int64))
        w2 = w.reshape(rows, -1)
        n_out, k = (w2.shape[1], w2.shape[0]) if transposed else w2.shape
        x = ctx.input(0)
        if rank != 2 or axis != 1:
            x = ctx.emit("Flatten", [x], [ctx.tmp("2d")], attrs={"axis": axis})
        got = ctx.graph.tensor(x).shape[1]
        if isinstance(got, int) and got != k:
            raise ctx.error(f"input has {got} features at axis {axis}, the weight {list(w.shape)} expects {k}")
        weight = ctx.input(1) if w2.shape == w.shape else ctx.const(w2, name="weight")
        bias = ctx.inputs[2:3]
        if axis == 1:
            ctx.emit("Gemm", [x, weight, *bias], attrs={"transB": 0 if transposed else 1})
            return
        y = ctx.emit("Gemm", [x, weight, *bias], [ctx.tmp("2d")], attrs={"transB": 0 if transposed else 1})
        lead = _shape_tensor(ctx, 0, end=axis)
        target = ctx.emit("Concat", [lead, ctx.const(np.asarray([n_out], np.int64), name="n")],
                          [ctx.tmp("shape")], attrs={"axis": 0})
        ctx.emit("Reshape", [y, target])
    return convert


def guess_fc(transposed: bool) -> Callable[[Args, Sequence[np.ndarray | None], int], Dims | None]:
    """FC's data input is taken as [N, K]: flattened features, the usual Caffe2 FC input."""
    def guess(a: Args, consts: Sequence[np.ndarray | None], port: int) -> Dims | None:
        w = consts[1] if len(consts) > 1 else None
        if port != 0 or w is None or a.values.get("axis", 1) != 1:
            return None
        axis_w = a.values.get("axis_w", 1)
        if not isinstance(axis_w, int) or not 0 < axis_w < max(w.ndim, 1):
            return None
        k = int(np.prod(w.shape[:axis_w] if transposed else w.shape[axis_w:], dtype=np.int64))
        return ["N", k]
    return guess


# ------------------------------------------------------------------------------ normalization
def spatial_bn(ctx: OpContext) -> None:
    if not ctx.int("is_test", 0):
        raise ctx.error("SpatialBN in training mode (is_test=0) normalizes with batch statistics",
                        hint="export the predict net with is_test=1")
    if ctx.n_inputs() != 5 or len(ctx.outputs) != 1:
        raise ctx.error(f"test-mode SpatialBN takes 5 inputs and gives 1 output, not "
                        f"{ctx.n_inputs()} and {len(ctx.outputs)}")
    attrs = {"epsilon": ctx.float("epsilon", 1e-5), "layout": ctx.order()}
    ctx.emit("BatchNormalization", ctx.inputs, attrs=attrs)


def guess_bn(a: Args, consts: Sequence[np.ndarray | None], port: int) -> Dims | None:
    s = consts[1] if len(consts) > 1 else None
    if port != 0 or s is None:
        return None
    c = int(s.size)
    return ["N", "H", "W", c] if spatial._nhwc(a) else ["N", c, "H", "W"]


def lrn(ctx: OpContext) -> None:
    if len(ctx.used) > 1 and ctx.used[1]:
        raise ctx.error("LRN's second output (the scale) is read by the net, which is not supported")
    attrs = {"size": ctx.int("size"), "alpha": ctx.float("alpha", 0.0), "beta": ctx.float("beta", 0.0),
             "bias": ctx.float("bias", 1.0), "layout": ctx.order()}
    ctx.emit("LRN", [ctx.input(0)], attrs=attrs)


def guess_lrn(a: Args, consts: Sequence[np.ndarray | None], port: int) -> Dims | None:
    return (["N", "H", "W", "C"] if spatial._nhwc(a) else ["N", "C", "H", "W"]) if port == 0 else None


# ------------------------------------------------------------------------------- shape ops
def concat(ctx: OpContext) -> None:
    if ctx.has("axis") and ctx.has("order"):
        raise ctx.error("Concat takes axis or order, not both (Caffe2 refuses it too)")
    if ctx.has("axis"):
        axis, add_axis = ctx.int("axis"), ctx.int("add_axis", 0)
    else:
        axis, add_axis = (3 if ctx.order() == "NHWC" else 1), 0
    rank = ctx.rank(0) + (1 if add_axis else 0)
    axis = _axis(ctx, axis, rank)
    ins = ctx.inputs
    if add_axis:
        axes = ctx.const(np.asarray([axis], np.int64), name="axes")
        ins = [ctx.emit("Unsqueeze", [t, axes], [ctx.tmp(f"in{i}")]) for i, t in enumerate(ins)]
    ctx.emit("Concat", ins, attrs={"axis": axis})
    if len(ctx.used) > 1 and ctx.used[1]:
        sizes = [1] * len(ins) if add_axis else \
            [ctx.static_dims(i, [axis], "Concat's split_info output")[0] for i in range(len(ins))]
        _bind(ctx, 1, ctx.const(np.asarray(sizes, np.int32), name="split_info"))


def dropout(ctx: OpContext) -> None:
    ctx.float("ratio", 0.5)
    if not ctx.int("is_test", 0):
        raise ctx.error("Dropout in training mode (is_test=0) drops at random",
                        hint="export the predict net with is_test=1")
    outs = ctx.outputs[:2] if len(ctx.used) > 1 and ctx.used[1] else ctx.outputs[:1]
    ctx.emit("Dropout", [ctx.input(0)], outs)


def reshape(ctx: OpContext) -> None:
    if ctx.n_inputs() > 1:
        if ctx.has("shape"):
            raise ctx.error("the new shape is given both as an argument and as an input")
        value = ctx.value(1)
        if value is not None:
            shape = ctx.const(value.astype(np.int64).reshape(-1), name="shape")
        elif ctx.dtype(1) != np.int64:
            shape = ctx.emit("Cast", [ctx.input(1)], [ctx.tmp("shape")], attrs={"to": 7})
        else:
            shape = ctx.input(1)
    else:
        shape = ctx.const(np.asarray(ctx.ints("shape"), np.int64), name="shape")
    ctx.emit("Reshape", [ctx.input(0), shape])
    if len(ctx.used) > 1 and ctx.used[1]:
        ctx.emit("Shape", [ctx.input(0)], [ctx.outputs[1]])


def flatten(ctx: OpContext) -> None:
    ctx.emit("Flatten", [ctx.input(0)], attrs={"axis": ctx.int("axis", 1)})


def flatten_to_vec(ctx: OpContext) -> None:
    ctx.emit("Reshape", [ctx.input(0), ctx.const(np.asarray([-1], np.int64), name="shape")])


def transpose(ctx: OpContext) -> None:
    axes = ctx.ints("axes", None)
    ctx.emit("Transpose", [ctx.input(0)], attrs={} if not axes else {"perm": axes})


def _squeeze(op: str) -> Callable[[OpContext], None]:
    def convert(ctx: OpContext) -> None:
        dims = sorted(set(ctx.ints("dims")))
        if not dims or dims[0] < 0:
            raise ctx.error(f"dims {dims} must be non-negative and not empty")
        ctx.emit(op, [ctx.input(0), ctx.const(np.asarray(dims, np.int64), name="axes")])
    return convert


def channel_shuffle(ctx: OpContext) -> None:
    """Channel g*K + k moves to k*G + g: a reshape to (G, K), a transpose and a reshape back."""
    layout = ctx.order()
    groups = ctx.int("group", 1)
    rank = ctx.rank(0)
    c_axis = rank - 1 if layout == "NHWC" else 1
    channels = ctx.static_dims(0, [c_axis], "ChannelShuffle")[0]
    if groups <= 0 or channels % groups:
        raise ctx.error(f"{channels} channels do not split into {groups} groups")
    k = channels // groups
    if layout == "NHWC":  # [N, H, W, G, K] -> [N, H, W, K, G]; the 0s copy N, H, W both ways
        split, perm = [0] * (rank - 1) + [groups, k], list(range(rank - 1)) + [rank, rank - 1]
        back = ctx.const(np.asarray([0] * (rank - 1) + [channels], np.int64), name="shape")
    else:  # [N, G, K, H*W...] -> [N, K, G, H*W...]
        split, perm = [0, groups, k, -1], [0, 2, 1, 3]
        back = _shape_tensor(ctx, 0)
    t = ctx.emit("Reshape", [ctx.input(0), ctx.const(np.asarray(split, np.int64), name="split")],
                 [ctx.tmp("grouped")])
    t = ctx.emit("Transpose", [t], [ctx.tmp("shuffled")], attrs={"perm": perm})
    ctx.emit("Reshape", [t, back])


def _layout_transpose(to_nhwc: bool) -> Callable[[OpContext], None]:
    def convert(ctx: OpContext) -> None:
        r = ctx.rank(0)
        perm = [0, *range(2, r), 1] if to_nhwc else [0, r - 1, *range(1, r - 1)]
        ctx.emit("Transpose", [ctx.input(0)], attrs={"perm": perm})
    return convert


# ------------------------------------------------------------------------------------ registry
HANDLERS: dict[str, Converter] = {
    "Conv": Converter(spatial.conv, guess=spatial.guess_conv, params=(1, 2)),
    "Conv1D": Converter(spatial.conv, guess=spatial.guess_conv, params=(1, 2)),
    "Conv2D": Converter(spatial.conv, guess=spatial.guess_conv, params=(1, 2)),
    "Conv3D": Converter(spatial.conv, guess=spatial.guess_conv, params=(1, 2)),
    "ConvTranspose": Converter(spatial.conv_transpose, guess=spatial.guess_conv_transpose, params=(1, 2)),
    "MaxPool": Converter(spatial.max_pool, guess=spatial.guess_pool),
    "MaxPool1D": Converter(spatial.max_pool, guess=spatial.guess_pool),
    "MaxPool2D": Converter(spatial.max_pool, guess=spatial.guess_pool),
    "MaxPool3D": Converter(spatial.max_pool, guess=spatial.guess_pool),
    "AveragePool": Converter(spatial.average_pool, guess=spatial.guess_pool),
    "AveragePool1D": Converter(spatial.average_pool, guess=spatial.guess_pool),
    "AveragePool2D": Converter(spatial.average_pool, guess=spatial.guess_pool),
    "AveragePool3D": Converter(spatial.average_pool, guess=spatial.guess_pool),
    "PadImage": Converter(spatial.pad_image),
    "FC": Converter(_fc(False), params=(1, 2), guess=guess_fc(False)),
    "FCTransposed": Converter(_fc(True), params=(1, 2), guess=guess_fc(True)),
    "SpatialBN": Converter(spatial_bn, params=(1, 2, 3, 4), guess=guess_bn),
    "LRN": Converter(lrn, guess=guess_lrn),
    "Relu": Converter(_rename("Relu")),
    "Sigmoid": Converter(_rename("Sigmoid")),
    "Tanh": Converter(_rename("Tanh")),
    "Exp": Converter(_rename("Exp")),
    "Log": Converter(_rename("Log")),
    "Sqrt": Converter(_rename("Sqrt")),
    "Abs": Converter(_rename("Abs")),
    "Negative": Converter(_rename("Neg")),
    "Softsign": Converter(_rename("Softsign")),
    "StopGradient": Converter(_rename("Identity")),
    "Alias": Converter(_rename("Identity")),
    "Copy": Converter(_rename("Identity")),
    "LeakyRelu": Converter(leaky_relu),
    "PRelu": Converter(prelu, params=(1,)),
    "Softmax": Converter(softmax),
    "Clip": Converter(clip),
    "Scale": Converter(scale),
    "Sum": Converter(sum_),
    "Add": Converter(_binary("Add")),
    "Sub": Converter(_binary("Sub")),
    "Mul": Converter(_binary("Mul")),
    "Div": Converter(_binary("Div")),
    "Concat": Converter(concat),
    "DepthConcat": Converter(concat),
    "Dropout": Converter(dropout),
    "Reshape": Converter(reshape),
    "Flatten": Converter(flatten),
    "FlattenToVec": Converter(flatten_to_vec),
    "Transpose": Converter(transpose),
    "Squeeze": Converter(_squeeze("Squeeze")),
    "ExpandDims": Converter(_squeeze("Unsqueeze")),
    "ChannelShuffle": Converter(channel_shuffle),
    "NCHW2NHWC": Converter(_layout_transpose(True)),
    "NHWC2NCHW": Converter(_layout_transpose(False)),
}
"""Caffe2 op type -> converter. The Int8* ops (QNNPACK quantized inference) have none yet and are
refused as unsupported; the init net reader already keeps their weights' scale and zero point."""
