"""Converters for MXNet's neural-network ops (convolution, dense, normalization, activations,
pooling, softmax, resampling, embedding).

MXNet is NCHW throughout; every spatial canonical op keeps the default ``layout="NCHW"``. Where MXNet's
semantics differ from the canonical (ONNX) op, the converter says how it bridges the gap or refuses.
"""
from __future__ import annotations

import math

import numpy as np

from convertkit.frontends.mxnet import tensor_ops  # noqa: F401  (registers the tensor converters)
from convertkit.frontends.mxnet.context import (
    ConvertContext,
    along_axis,
    converter,
    norm_axis,
)

NC_LAYOUTS = ("NCW", "NCHW", "NCDHW")


def _window(ctx: ConvertContext, n: int | None = None) -> dict:
    """kernel/stride/dilate/pad of Convolution, Deconvolution and Pooling as canonical attributes."""
    a = ctx.attrs
    kernel = a.ints("kernel", ())
    if n is None:
        n = len(kernel)
        if not n:
            raise ctx.error("has no kernel attribute")
    stride = a.ints("stride", ()) or (1,) * n
    pad = a.ints("pad", ()) or (0,) * n
    if len(stride) != n or len(pad) != n:
        raise ctx.error(f"kernel {list(kernel)}, stride {list(stride)} and pad {list(pad)} differ in length")
    layout = a.str("layout")
    if layout is not None and layout not in NC_LAYOUTS:
        raise ctx.unsupported(f"layout={layout}")
    return {"kernel_shape": list(kernel), "strides": list(stride), "pads": list(pad) * 2}


def _dilations(ctx: ConvertContext, n: int) -> list[int]:
    dilate = ctx.attrs.ints("dilate", ()) or (1,) * n
    if len(dilate) != n:
        raise ctx.error(f"dilate {list(dilate)} does not match a {n}-D kernel")
    return list(dilate)


def _bias(ctx: ConvertContext, default_no_bias: bool) -> str | None:
    if ctx.attrs.bool("no_bias", default_no_bias):
        return None
    return ctx.input(2)


def _check_filters(ctx: ConvertContext, w: str, axis: int, group: int = 1) -> None:
    num_filter = ctx.attrs.int("num_filter")
    got = ctx.shape(w)[axis]
    if num_filter is not None and isinstance(got, int) and got * (group if axis == 1 else 1) != num_filter:
        raise ctx.error(f"num_filter is {num_filter} but the weight has shape {list(ctx.shape(w))}",
                        hint="the .params file may belong to another model")


# ----------------------------------------------------------------------------- convolutions
@converter("Convolution", "Convolution_v1", weights=(1, 2))
def convolution(ctx: ConvertContext) -> None:
    attrs = _window(ctx)
    n = len(attrs["kernel_shape"])
    attrs.update(dilations=_dilations(ctx, n), group=ctx.attrs.int("num_group", 1))
    w = ctx.input(1)
    _check_filters(ctx, w, 0)
    ctx.emit("Conv", [ctx.input(0), w, _bias(ctx, False)], attrs)


@converter("Deconvolution", weights=(1, 2))
def deconvolution(ctx: ConvertContext) -> None:
    """ConvTranspose. MXNet crops ``pad`` from both ends and gives back ``adj`` at the end, which is
    ONNX's pads + output_padding; a ``target_shape`` fixes pad and adj from the input size."""
    a = ctx.attrs
    attrs = _window(ctx)
    n = len(attrs["kernel_shape"])
    group = a.int("num_group", 1)
    dil = _dilations(ctx, n)
    adj = list(a.ints("adj", ()) or (0,) * n)
    x, w = ctx.input(0), ctx.input(1)
    _check_filters(ctx, w, 1, group)
    target = a.ints("target_shape", ())
    attrs.update(dilations=dil, group=group)
    if target and any(target):
        _deconv_to_target(ctx, x, w, attrs, list(target))
        return
    if any(adj):
        attrs["output_padding"] = adj
    ctx.emit("ConvTranspose", [x, w, _bias(ctx, True)], attrs)


def _deconv_to_target(ctx: ConvertContext, x: str, w: str, attrs: dict, target: list[int]) -> None:
    """MXNet crops the full result to ``target_shape``, ceil(extra / 2) from the start: explicit pads
    when the input size is known, else the full result sliced at run time (ONNX's own
    ``output_shape`` would do, but onnxruntime splits odd padding the other way)."""
    spatial = ctx.shape(x)[2:]
    if len(target) != len(spatial):
        raise ctx.error(f"target_shape {target} does not fit a {len(spatial)}-D input")
    a = attrs
    if all(isinstance(d, int) for d in spatial):
        pads = []
        for size, k, s, d, t in zip(spatial, a["kernel_shape"], a["strides"], a["dilations"], target):
            total = s * (size - 1) + (k - 1) * d + 1 - t
            if total < 0:
                raise ctx.error(f"target_shape {target} is larger than the full output")
            pads.append((total + 1) // 2)
        crop_end = [p - (s * (size - 1) + (k - 1) * d + 1 - t) % 2 for p, size, k, s, d, t in
                    zip(pads, spatial, a["kernel_shape"], a["strides"], a["dilations"], target)]
        ctx.emit("ConvTranspose", [x, w, _bias(ctx, True)], dict(a, pads=pads + crop_end))
        return
    n = len(target)
    full = ctx.op("ConvTranspose", [x, w, _bias(ctx, True)], dict(a, pads=[0] * 2 * n))
    size = ctx.op("Shape", [full], {"start": 2, "end": 2 + n})
    extra = ctx.op("Sub", [size, ctx.const(target, np.int64, "target")])
    starts = ctx.op("Div", [ctx.op("Add", [extra, ctx.const([1] * n, np.int64, "one")]),
                            ctx.const([2] * n, np.int64, "two")])
    ends = ctx.op("Add", [starts, ctx.const(target, np.int64, "target")])
    ctx.emit("Slice", [full, starts, ends, ctx.const(list(range(2, 2 + n)), np.int64, "axes")])


@converter("FullyConnected", weights=(1, 2))
def fully_connected(ctx: ConvertContext) -> None:
    """Gemm with the weight transposed; ``flatten`` (the default) first folds all axes after the
    first, otherwise the product runs over the last axis only (MatMul + Add)."""
    a = ctx.attrs
    x, w = ctx.input(0), ctx.input(1)
    num_hidden = a.int("num_hidden")
    if num_hidden is not None and ctx.shape(w)[0] != num_hidden:
        raise ctx.error(f"num_hidden is {num_hidden} but the weight has shape {list(ctx.shape(w))}",
                        hint="the .params file may belong to another model")
    bias = _bias(ctx, False)
    flatten = a.bool("flatten", True)
    if ctx.rank(x) == 2:
        ctx.emit("Gemm", [x, w, bias], {"transB": 1})
    elif flatten:
        ctx.emit("Gemm", [ctx.op("Flatten", [x], {"axis": 1}), w, bias], {"transB": 1})
    else:
        wv = ctx.const_value(w)
        wt = (ctx.const(wv.T, suffix="weight_t") if wv is not None
              else ctx.op("Transpose", [w], {"perm": [1, 0]}))
        if bias is None:
            ctx.emit("MatMul", [x, wt])
        else:
            ctx.emit("Add", [ctx.op("MatMul", [x, wt]), bias])


# ---------------------------------------------------------------------------- normalization
@converter("BatchNorm", "CuDNNBatchNorm", "BatchNorm_v1", weights=(1, 2, 3, 4))
def batch_norm(ctx: ConvertContext) -> None:
    """Inference uses the moving statistics whatever ``use_global_stats`` says; ``fix_gamma`` (on by
    default in MXNet, off in Gluon) means gamma is 1 whatever the file holds."""
    a = ctx.attrs
    eps = a.float("eps", 1e-3)
    a.ignore("momentum", "use_global_stats", "output_mean_var")  # outputs 1, 2 (mean, var): refused if used
    x = ctx.input(0)
    gamma, beta, mean, var = (ctx.weight(i, n) for i, n in
                              ((1, "gamma"), (2, "beta"), (3, "moving_mean"), (4, "moving_var")))
    if a.bool("fix_gamma", True):
        gamma = np.ones_like(gamma)
    rank = ctx.rank(x)
    axis = norm_axis(a.int("axis", 1), rank)
    if axis == 1:
        ins = [x, ctx.const(gamma, suffix="gamma"), ctx.input(2), ctx.input(3), ctx.input(4)]
        ctx.emit("BatchNormalization", ins, {"epsilon": eps})
        return
    # another channel axis: the same arithmetic as a per-channel scale and shift
    scale = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + np.float32(eps)))
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    dt = ctx.dtype(x)
    y = ctx.op("Mul", [x, ctx.const(along_axis(scale, axis, rank).astype(dt), suffix="scale")])
    ctx.emit("Add", [y, ctx.const(along_axis(shift, axis, rank).astype(dt), suffix="shift")])


@converter("InstanceNorm", weights=(1, 2))
def instance_norm(ctx: ConvertContext) -> None:
    ctx.emit("InstanceNormalization", [ctx.input(0), ctx.input(1), ctx.input(2)],
             {"epsilon": ctx.attrs.float("eps", 1e-3)})


@converter("LayerNorm", weights=(1, 2))
def layer_norm(ctx: ConvertContext) -> None:
    """MXNet normalizes over one axis; the canonical op over all axes from ``axis`` on, which is the
    same only for the last axis."""
    a = ctx.attrs
    x = ctx.input(0)
    rank = ctx.rank(x)
    if norm_axis(a.int("axis", -1), rank) != rank - 1:
        raise ctx.unsupported(f"axis={a.raw['axis']} (only the last axis)")
    if a.bool("output_mean_var", False):
        raise ctx.unsupported("output_mean_var=True")
    ctx.emit("LayerNormalization", [x, ctx.input(1), ctx.input(2)],
             {"axis": -1, "epsilon": a.float("eps", 1e-5)})


@converter("L2Normalization")
def l2_normalization(ctx: ConvertContext) -> None:
    """x / sqrt(sum(x^2) + eps) over all axes but the batch (instance), the channels (channel) or
    the spatial axes (spatial). ONNX's LpNormalization has no eps, so it is spelled out."""
    a = ctx.attrs
    x = ctx.input(0)
    rank = ctx.rank(x)
    mode = a.choice("mode", "instance", ("instance", "channel", "spatial"))
    axes = {"instance": range(1, rank), "channel": (1,), "spatial": range(2, rank)}[mode]
    sq = ctx.op("ReduceSumSquare", [x, ctx.const(list(axes), np.int64, "axes")], {"keepdims": 1})
    norm = ctx.op("Sqrt", [ctx.op("Add", [sq, ctx.scalar(a.float("eps", 1e-10), x, "eps")])])
    ctx.emit("Div", [x, norm])


@converter("LRN")
def lrn(ctx: ConvertContext) -> None:
    a = ctx.attrs
    ctx.emit("LRN", [ctx.input(0)], {"size": a.int("nsize"), "alpha": a.float("alpha", 1e-4),
                                     "beta": a.float("beta", 0.75), "bias": a.float("knorm", 2.0)})


# ------------------------------------------------------------------------------ activations
ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus",
               "softsign": "Softsign"}
"""Activation's act_type values (all that MXNet 1.x has)."""


@converter("Activation")
def activation(ctx: ConvertContext) -> None:
    ctx.emit(ACTIVATIONS[ctx.attrs.choice("act_type", "relu", ACTIVATIONS)], [ctx.input(0)])


@converter("LeakyReLU", weights=(1,))
def leaky_relu(ctx: ConvertContext) -> None:
    """leaky, elu (``slope`` is alpha), selu, gelu (erf form), prelu (gamma per channel on axis 1)
    and rrelu (at inference a leaky ReLU with the mean of its bounds)."""
    a = ctx.attrs
    act = a.choice("act_type", "leaky", ("leaky", "prelu", "elu", "selu", "gelu", "rrelu"))
    slope = a.float("slope", 0.25)
    lower, upper = a.float("lower_bound", 0.125), a.float("upper_bound", 0.334)
    x = ctx.input(0)
    if act == "leaky":
        ctx.emit("LeakyRelu", [x], {"alpha": slope})
    elif act == "rrelu":
        ctx.emit("LeakyRelu", [x], {"alpha": (lower + upper) / 2})
    elif act == "elu":
        ctx.emit("Elu", [x], {"alpha": slope})
    elif act == "selu":
        ctx.emit("Selu", [x])
    elif act == "gelu":
        ctx.emit("Gelu", [x])
    else:
        gamma = ctx.weight(1, "prelu gamma").reshape(-1)
        rank = ctx.rank(x)
        if gamma.size == 1 or rank < 2:
            slope_value = gamma.reshape(1) if gamma.size == 1 else gamma
        else:
            slope_value = along_axis(gamma, 0, rank - 1)
        ctx.emit("PRelu", [x, ctx.const(slope_value.astype(ctx.dtype(x)), suffix="slope")])


@converter("hard_sigmoid")
def hard_sigmoid(ctx: ConvertContext) -> None:
    a = ctx.attrs
    ctx.emit("HardSigmoid", [ctx.input(0)], {"alpha": a.float("alpha", 0.2),
                                             "beta": a.float("beta", 0.5)})


# ---------------------------------------------------------------------------------- pooling
@converter("Pooling", "Pooling_v1")
def pooling(ctx: ConvertContext) -> None:
    """max/avg/sum/lp pooling. ``pooling_convention="full"`` is ceil mode, except that MXNet keeps a
    last window that starts inside the end padding where ONNX drops it: such a geometry is refused.
    MXNet's lp pooling raises to the p-th power without abs(), so only p=2 matches LpPool (p=1 is a
    sum pool)."""
    a = ctx.attrs
    x = ctx.input(0)
    kind = a.choice("pool_type", "max", ("max", "avg", "sum", "lp"))
    p = a.int("p_value", 2)
    if kind == "lp" and p not in (1, 2):
        raise ctx.unsupported(f"pool_type=lp with p_value={p}")
    if kind == "lp" and p == 1:
        kind = "sum"
    include_pad = a.bool("count_include_pad", True)
    rank = ctx.rank(x)
    if a.bool("global_pool", False):
        a.ignore("kernel", "stride", "pad", "pooling_convention", "layout")
        if kind == "sum":
            ctx.emit("ReduceSum", [x, ctx.const(list(range(2, rank)), np.int64, "axes")], {"keepdims": 1})
        else:
            op = {"max": "GlobalMaxPool", "avg": "GlobalAveragePool", "lp": "GlobalLpPool"}[kind]
            ctx.emit(op, [x], {"p": 2} if kind == "lp" else {})
        return
    attrs = _window(ctx)
    n = len(attrs["kernel_shape"])
    if n != rank - 2:
        raise ctx.error(f"a {n}-D kernel on a rank-{rank} input")
    full = a.choice("pooling_convention", "valid", ("valid", "full")) == "full"
    spatial = ctx.shape(x)[2:]
    if full:
        _check_full_convention(ctx, spatial, attrs)
        if not all(isinstance(d, int) for d in spatial) or any(   # ceil only where it changes the size
                _out_size(d, k, s, p) != (d + 2 * p - k) // s + 1
                for d, k, s, p in zip(spatial, attrs["kernel_shape"], attrs["strides"], attrs["pads"])):
            attrs["ceil_mode"] = 1
    if kind == "max":
        ctx.emit("MaxPool", [x], attrs)
    elif kind == "avg":
        ctx.emit("AveragePool", [x], dict(attrs, count_include_pad=int(include_pad)))
    elif kind == "lp":
        ctx.emit("LpPool", [x], dict(attrs, p=2))
    else:
        if full and not _windows_inside(spatial, attrs):
            raise ctx.unsupported("pool_type=sum with pooling_convention=full past the padded input")
        mean = ctx.op("AveragePool", [x], dict(attrs, count_include_pad=1))
        ctx.emit("Mul", [mean, ctx.scalar(float(np.prod(attrs["kernel_shape"])), x, "window")])


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return -(-(n + 2 * p - k) // s) + 1


def _check_full_convention(ctx: ConvertContext, spatial: tuple, attrs: dict) -> None:
    """Refuse geometries where ONNX's ceil mode drops a window MXNet keeps (one starting in the end
    padding); that needs pad + stride > kernel, so common pools are always safe."""
    for i, (size, k, s) in enumerate(zip(spatial, attrs["kernel_shape"], attrs["strides"])):
        p = attrs["pads"][i]
        if p + s <= k:
            continue
        if not isinstance(size, int):
            raise ctx.unsupported(f"pooling_convention=full with pad {p} and stride {s} > kernel {k} "
                                  "on an input of unknown size")
        if (_out_size(size, k, s, p) - 1) * s >= size + p:
            raise ctx.unsupported(f"pooling_convention=full whose last window lies in the padding "
                                  f"(size {size}, kernel {k}, stride {s}, pad {p})")


def _windows_inside(spatial: tuple, attrs: dict) -> bool:
    """True if every ceil-mode window ends inside the padded input (so each covers a full kernel)."""
    for i, (size, k, s) in enumerate(zip(spatial, attrs["kernel_shape"], attrs["strides"])):
        p = attrs["pads"][i]
        if not isinstance(size, int) or (_out_size(size, k, s, p) - 1) * s + k > size + 2 * p:
            return False
    return True


# ---------------------------------------------------------------------------------- softmax
def _softmax_flat(ctx: ConvertContext, x: str) -> None:
    """Softmax over all axes but the first, keeping the input's shape."""
    if ctx.rank(x) == 2:
        ctx.emit("Softmax", [x], {"axis": 1})
        return
    flat = ctx.op("Softmax", [ctx.op("Flatten", [x], {"axis": 1})], {"axis": 1})
    static = ctx.static_shape(x)
    shape = ctx.const(list(static), np.int64, "shape") if static else ctx.op("Shape", [x])
    ctx.emit("Reshape", [flat, shape])


@converter("SoftmaxOutput", "Softmax", labels=(1,))
def softmax_output(ctx: ConvertContext) -> None:
    """At inference only the forward softmax remains: over axis 1 (``multi_output``), the last axis
    (``preserve_shape``) or all axes but the first. The loss settings are training-only."""
    a = ctx.attrs
    a.ignore("grad_scale", "ignore_label", "use_ignore", "normalization", "out_grad", "smooth_alpha")
    x = ctx.input(0)
    if a.bool("multi_output", False):
        ctx.emit("Softmax", [x], {"axis": 1})
    elif a.bool("preserve_shape", False):
        ctx.emit("Softmax", [x], {"axis": -1})
    else:
        _softmax_flat(ctx, x)


@converter("SoftmaxActivation")
def softmax_activation(ctx: ConvertContext) -> None:
    """mode "channel": over axis 1; "instance": over the last axis (MXNet folds all leading axes into
    rows, so for inputs of rank > 2 this is not a softmax over the whole instance)."""
    axis = 1 if ctx.attrs.choice("mode", "instance", ("instance", "channel")) == "channel" else -1
    ctx.emit("Softmax", [ctx.input(0)], {"axis": axis})


@converter("Dropout")
def dropout(ctx: ConvertContext) -> None:
    """Identity at inference, unless ``mode="always"`` asks for random dropping then too."""
    a = ctx.attrs
    a.choice("mode", "training", ("training",))
    a.ignore("p", "axes", "cudnn_off")
    ctx.emit("Identity", [ctx.input(0)])


@converter("softmax", "log_softmax")
def softmax(ctx: ConvertContext) -> None:
    a = ctx.attrs
    x = ctx.input(0)
    if a.bool("use_length", False):
        raise ctx.unsupported("use_length=True")
    if a.str("dtype") not in (None, "float32") and a.str("dtype") != ctx.dtype(x).name:
        raise ctx.unsupported(f"dtype={a.raw['dtype']}")
    temperature = a.float("temperature", None)
    if temperature is not None and temperature != 1.0:
        x = ctx.op("Div", [x, ctx.scalar(temperature, x, "temperature")])
    op = "LogSoftmax" if ctx.op_type == "log_softmax" else "Softmax"
    ctx.emit(op, [x], {"axis": a.int("axis", -1)})


# ------------------------------------------------------------------------------- resampling
@converter("UpSampling", weights=lambda attrs: (1,) if attrs.get("sample_type") == "bilinear" else ())
def upsampling(ctx: ConvertContext) -> None:
    """nearest: each input repeated to the first input's size times ``scale``, then concatenated or
    summed; bilinear: MXNet's own definition, a grouped transposed convolution with the weight input
    (kernel 2s - s%2, stride s, pad ceil((s-1)/2))."""
    a = ctx.attrs
    scale = a.int("scale")
    kind = a.choice("sample_type", "nearest", ("nearest", "bilinear"))
    num_args = a.int("num_args", 1)
    mode = a.choice("multi_input_mode", "concat", ("concat", "sum"))
    num_filter = a.int("num_filter", 0)
    x = ctx.input(0)
    if kind == "bilinear":
        channels = ctx.shape(x)[1]
        w = ctx.input(1)
        k = 2 * scale - scale % 2
        pad = math.ceil((scale - 1) / 2)
        group = num_filter or channels
        if not isinstance(group, int):
            raise ctx.unsupported("bilinear UpSampling without num_filter on an input of unknown channels")
        ctx.emit("ConvTranspose", [x, w], {"kernel_shape": [k, k], "strides": [scale, scale],
                                           "pads": [pad] * 4, "group": group})
        return
    outs = [_nearest(ctx, x, scale, final=num_args == 1)]
    for i in range(1, num_args):     # the others to the first one's output size
        outs.append(_nearest_to(ctx, ctx.input(i), x, scale))
    if num_args > 1:
        ctx.emit("Concat" if mode == "concat" else "Sum", outs, {"axis": 1} if mode == "concat" else {})


_NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
"""Resize attributes that repeat each value (exact for integer factors, as MXNet's are)."""


def _nearest(ctx: ConvertContext, x: str, factor: int, final: bool) -> str:
    scales = ctx.const([1.0, 1.0] + [float(factor)] * (ctx.rank(x) - 2), np.float32, "scales")
    return ctx.emit("Resize", [x, None, scales], _NEAREST, final=final)[0]


def _nearest_to(ctx: ConvertContext, x: str, first: str, scale: int) -> str:
    """``x`` resized to the first input's spatial size times ``scale``."""
    head, base = ctx.shape(x)[:2], ctx.shape(first)[2:]
    if all(isinstance(d, int) for d in (*head, *base)):
        sizes = ctx.const([*head, *(b * scale for b in base)], np.int64, "sizes")
    else:
        spatial = ctx.op("Mul", [ctx.op("Shape", [first], {"start": 2}),
                                 ctx.const([scale], np.int64, "scale")])
        sizes = ctx.op("Concat", [ctx.op("Shape", [x], {"start": 0, "end": 2}), spatial], {"axis": 0})
    return ctx.op("Resize", [x, None, None, sizes], _NEAREST)


# -------------------------------------------------------------------------------- embedding
@converter("Embedding", weights=(1,))
def embedding(ctx: ConvertContext) -> None:
    """A row lookup. MXNet takes float indices, truncates them and clips them into range."""
    a = ctx.attrs
    a.ignore("sparse_grad")
    w = ctx.input(1)
    rows = ctx.shape(w)[0]
    input_dim = a.int("input_dim")
    if input_dim is not None and input_dim != rows:
        raise ctx.error(f"input_dim is {input_dim} but the weight has {rows} rows")
    dtype = a.str("dtype", "float32")
    if dtype != ctx.dtype(w).name:
        raise ctx.unsupported(f"dtype={dtype} with {ctx.dtype(w).name} weights")
    a.ignore("output_dim")
    idx = ctx.op("Cast", [ctx.input(0)], {"to": "int64"})
    idx = ctx.op("Clip", [idx, ctx.const(0, np.int64, "lo"), ctx.const(rows - 1, np.int64, "hi")])
    ctx.emit("Gather", [w, idx], {"axis": 0})
