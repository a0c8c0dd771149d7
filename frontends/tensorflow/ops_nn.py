"""Convolutions, pooling, batch normalization, resizing and the fused activation patterns.

Everything stays in TensorFlow's layout: an NHWC op becomes a canonical op with ``layout="NHWC"`` and
its weights are permuted once (they are constants) into the canonical NHWC order, ``[O, kH, kW, I/group]``
(depthwise: ``[C*M, kH, kW, 1]`` with ``group=C``). No Transpose is inserted around activations.
"""
from __future__ import annotations

import numpy as np

from convertkit.frontends.tensorflow.context import Context, Converter

def _spatial_axes(fmt: str, rank: int) -> list[int]:
    return list(range(2, rank)) if fmt.startswith("NC") else list(range(1, rank - 1))


def _per_spatial(ctx: Context, key: str, fmt: str, rank: int, default: int = 1) -> list[int]:
    """A per-dimension attribute (strides, dilations, ksize) reduced to its spatial entries; the batch
    and channel entries must be 1."""
    v = ctx.attr(key, None)
    if v is None or len(v) == 0:
        return [default] * (rank - 2)
    if len(v) != rank:
        raise ctx.error(f"attribute {key}={v} should have {rank} entries")
    c = 1 if fmt.startswith("NC") else rank - 1
    if v[0] != 1 or v[c] != 1:
        raise ctx.unsupported(f"{key}={v} (batch or channel entry not 1)")
    return [int(v[a]) for a in _spatial_axes(fmt, rank)]


def _padding(ctx: Context, fmt: str, rank: int, kernel: list[int], strides: list[int],
             dilations: list[int]) -> dict:
    """Conv/pool padding attributes: explicit pads when the spatial dims are static (TF's SAME puts
    the odd pixel at the end, as ONNX's SAME_UPPER), else auto_pad."""
    padding = ctx.choice("padding", ("SAME", "VALID", "EXPLICIT"))
    axes = _spatial_axes(fmt, rank)
    n = len(axes)
    if padding == "VALID":
        return {"pads": [0] * (2 * n)}
    if padding == "EXPLICIT":
        flat = [int(p) for p in ctx.attr("explicit_paddings")]
        pairs = [flat[2 * a: 2 * a + 2] for a in range(rank)]
        c = 1 if fmt.startswith("NC") else rank - 1
        if any(pairs[0]) or any(pairs[c]):
            raise ctx.unsupported("explicit padding of the batch or channel dimension")
        return {"pads": [pairs[a][0] for a in axes] + [pairs[a][1] for a in axes]}
    dims = [ctx.shape(0)[a] for a in axes]
    if not all(isinstance(d, int) for d in dims):
        return {"auto_pad": "SAME_UPPER"}
    begin, end = [], []
    for size, k, s, d in zip(dims, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        begin.append(total // 2)
        end.append(total - total // 2)
    return {"pads": begin + end}


def _layout(ctx: Context, rank: int) -> str:
    fmt = ctx.data_format()
    if rank == 4:
        return {"NHWC": "NHWC", "NCHW": "NCHW"}.get(fmt) or _bad_format(ctx, fmt)
    if rank == 5:
        return {"NDHWC": "NDHWC", "NCDHW": "NCDHW", "NHWC": "NDHWC", "NCHW": "NCDHW"}[fmt]
    return _bad_format(ctx, fmt)


def _bad_format(ctx: Context, fmt: str) -> str:
    raise ctx.unsupported(f"data_format={fmt!r} on a rank-{ctx.rank(0)} input")


def conv(ctx: Context) -> None:
    """Conv2D/Conv3D: filter [k..., I/group, O]; group = input channels / I."""
    rank = ctx.rank(0)
    if rank not in (4, 5):
        raise ctx.error(f"input has rank {rank}")
    layout = _layout(ctx, rank)
    w_shape = ctx.shape(1)
    kernel = [int(k) for k in w_shape[:-2]]
    c_axis = 1 if layout.startswith("NC") else rank - 1
    in_ch = ctx.static_dims(0, [c_axis], "a grouped convolution's group count")[0]
    if in_ch % w_shape[-2]:
        raise ctx.error(f"input has {in_ch} channels, not a multiple of the filter's {w_shape[-2]}")
    group = in_ch // w_shape[-2]
    strides = _per_spatial(ctx, "strides", layout, rank)
    dilations = _per_spatial(ctx, "dilations", layout, rank)
    n = rank - 2
    perm = [n + 1, *range(n), n] if not layout.startswith("NC") else [n + 1, n, *range(n)]
    w = ctx.emit("Transpose", [ctx.input(1)], "weights", {"perm": perm})
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "group": group,
             "layout": layout, **_padding(ctx, layout, rank, kernel, strides, dilations)}
    ctx.emit("Conv", [ctx.input(0), w], attrs=attrs)


def depthwise(ctx: Context) -> None:
    """DepthwiseConv2dNative: filter [kH, kW, C, M]; output channel c*M + m."""
    layout = _layout(ctx, 4)
    kh, kw, c, m = ctx.shape(1)
    shape = ctx.const(np.array([kh, kw, 1, c * m], np.int64), name="shape")
    flat = ctx.emit("Reshape", [ctx.input(1), shape], "weights_flat")
    perm = [3, 0, 1, 2] if layout == "NHWC" else [3, 2, 0, 1]
    w = ctx.emit("Transpose", [flat], "weights", {"perm": perm})
    strides = _per_spatial(ctx, "strides", layout, 4)
    dilations = _per_spatial(ctx, "dilations", layout, 4)
    attrs = {"kernel_shape": [kh, kw], "strides": strides, "dilations": dilations, "group": c,
             "layout": layout, **_padding(ctx, layout, 4, [kh, kw], strides, dilations)}
    ctx.emit("Conv", [ctx.input(0), w], attrs=attrs)


def conv_backprop_input(ctx: Context) -> None:
    """Conv2DBackpropInput (transposed convolution): inputs (output size, filter [kH, kW, O, I], x).
    Written as ConvTranspose with explicit pads and output_padding reproducing TF's output size."""
    layout = _layout(ctx, 4)
    sizes = ctx.ints(0, "output size")
    x = ctx.input(2)
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    in_dims = ctx.static_dims(2, axes, "a transposed convolution's padding")
    out_dims = [sizes[a] for a in axes]
    if not all(isinstance(d, int) for d in out_dims):
        raise ctx.unsupported("a run-time output size", "give the input a static shape")
    kh, kw, o, i = ctx.shape(1)
    c_axis = 1 if layout == "NCHW" else 3
    in_ch = ctx.static_dims(2, [c_axis], "the group count")[0]
    group = in_ch // i
    if group != 1:
        raise ctx.unsupported("groups (the input has more channels than the filter)")
    strides = _per_spatial(ctx, "strides", layout, 4)
    dilations = _per_spatial(ctx, "dilations", layout, 4)
    padding = ctx.choice("padding", ("SAME", "VALID", "EXPLICIT"))
    begin, end, extra = [], [], []
    for a, (n_in, n_out, k, s, d) in enumerate(zip(in_dims, out_dims, (kh, kw), strides, dilations)):
        ek = (k - 1) * d + 1
        if padding == "SAME":
            total = max(0, (n_in - 1) * s + ek - n_out)
            pb, pe = total // 2, total - total // 2
        elif padding == "VALID":
            pb = pe = 0
        else:
            flat = [int(p) for p in ctx.attr("explicit_paddings")]
            pb, pe = flat[2 * axes[a]], flat[2 * axes[a] + 1]
        natural = s * (n_in - 1) + ek - pb - pe
        op = n_out - natural
        if op < 0:
            pe, op = pe - op, 0
        if op >= max(s, d):
            raise ctx.error(f"output size {n_out} is not reachable from input size {n_in} with stride {s}")
        begin.append(pb)
        end.append(pe)
        extra.append(op)
    # [kH, kW, O, I] -> NHWC [O, kH, kW, I], or NCHW (ONNX) [I, O, kH, kW]
    perm = [2, 0, 1, 3] if layout == "NHWC" else [3, 2, 0, 1]
    w = ctx.emit("Transpose", [ctx.input(1)], "weights", {"perm": perm})
    attrs = {"kernel_shape": [kh, kw], "strides": strides, "dilations": dilations, "pads": begin + end,
             "output_padding": extra, "layout": layout}
    ctx.emit("ConvTranspose", [x, w], attrs=attrs)


def _pool(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        rank = ctx.rank(0)
        layout = _layout(ctx, rank)
        if ctx.node.op.startswith("MaxPoolV2"):
            ksize, strides_full = ctx.static_ints(1, "ksize"), ctx.static_ints(2, "strides")
            ctx.node.attrs.update(ksize=ksize, strides=strides_full)
        kernel = _per_spatial(ctx, "ksize", layout, rank)
        strides = _per_spatial(ctx, "strides", layout, rank)
        attrs = {"kernel_shape": kernel, "strides": strides, "layout": layout,
                 **_padding(ctx, layout, rank, kernel, strides, [1] * len(kernel))}
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # TF averages over the valid pixels only
        ctx.emit(op, [ctx.input(0)], attrs=attrs)
    return convert


def _bn_layout(ctx: Context, rank: int, fmt: str) -> str:
    if rank == 4:
        return "NCHW" if fmt == "NCHW" else "NHWC"
    if rank == 5:
        return "NCDHW" if fmt in ("NCHW", "NCDHW") else "NDHWC"
    raise ctx.error(f"input has rank {rank}")


def fused_batch_norm(ctx: Context) -> None:
    if ctx.attr("is_training", False):
        raise ctx.unsupported("is_training=True (normalizes with batch statistics)",
                              "export the model for inference (Keras: training=False)")
    layout = _bn_layout(ctx, ctx.rank(0), ctx.data_format())
    ctx.emit("BatchNormalization", ctx.inputs[:5],
             attrs={"epsilon": float(ctx.attr("epsilon", 1e-4)), "layout": layout})


def fused_bn_pattern(ctx: Context) -> None:
    """``_CK_BatchNorm`` from fusions: tf.nn.batch_normalization's arithmetic on constant statistics,
    kept as one BatchNormalization so the statistics stay four separate constants."""
    a = ctx.node.attrs
    rank = ctx.rank(0)
    axis = a["axis"] % rank
    layout = "NCHW" if axis == 1 or rank == 2 else "NHWC"
    if axis not in (1, rank - 1):
        raise ctx.error(f"batch normalization over axis {axis}")
    names = [ctx.graph.add_tensor(ctx.graph.unique_name(src), value=a[key])
             for key, src in zip(("gamma", "beta", "mean", "var"), a["sources"])]
    ctx.emit("BatchNormalization", [ctx.input(0), *names], attrs={"epsilon": a["epsilon"], "layout": layout})


def lrn(ctx: Context) -> None:
    """TF's alpha multiplies the plain sum of squares; ONNX's is divided by the window size."""
    radius = int(ctx.attr("depth_radius", 5))
    size = 2 * radius + 1
    ctx.emit("LRN", [ctx.input(0)], attrs={"size": size, "alpha": float(ctx.attr("alpha", 1.0)) * size,
                                          "beta": float(ctx.attr("beta", 0.5)),
                                          "bias": float(ctx.attr("bias", 1.0)), "layout": "NHWC"})


def _resize(mode: str) -> Converter:
    def convert(ctx: Context) -> None:
        if ctx.rank(0) != 4:
            raise ctx.error(f"images must be rank 4 (NHWC), got rank {ctx.rank(0)}")
        size = ctx.ints(1, "size")
        align = bool(ctx.attr("align_corners", False))
        half = bool(ctx.attr("half_pixel_centers", False))
        if align and half:
            raise ctx.unsupported("align_corners and half_pixel_centers both set")
        coord = "align_corners" if align else "half_pixel" if half else "asymmetric"
        attrs = {"mode": mode, "coordinate_transformation_mode": coord, "axes": [1, 2]}
        if mode == "nearest":
            attrs["nearest_mode"] = "floor" if coord == "asymmetric" else "round_prefer_ceil"
        x = ctx.input(0)
        if ctx.dtype(0) != np.float32 and mode == "linear":
            x = ctx.emit("Cast", [x], "as_float", {"to": "float32"})
        in_hw = [ctx.shape(0)[1], ctx.shape(0)[2]]
        if not all(isinstance(d, int) for d in in_hw + size):
            raise ctx.unsupported("run-time image or output sizes", "give the input a static shape")
        if all(isinstance(d, int) for d in ctx.shape(0)) and not all(o % i == 0 for o, i in zip(size, in_hw)):
            sizes = ctx.const(np.array(size, np.int64), name="sizes")
            ctx.emit("Resize", [x, None, None, sizes], attrs=attrs)
        else:  # scales: writable at every ONNX opset even with a symbolic batch
            ctx.emit("Resize", [x, None, ctx.const(_scales(in_hw, size), name="scales")], attrs=attrs)
    return convert


def _scales(in_sizes: list[int], out_sizes: list[int]) -> np.ndarray:
    """float32 scales whose product with the input size floors to the output size exactly (out/in
    rounded to float32 can fall an ulp short, e.g. 5 * float32(7/5) < 7)."""
    out = []
    for n, m in zip(in_sizes, out_sizes):
        s = np.float32(m / n)
        while np.floor(np.float64(s) * n) < m:
            s = np.nextafter(s, np.float32(np.inf))
        out.append(s)
    return np.array(out, np.float32)


def _space_depth(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        layout = _layout(ctx, 4)
        ctx.emit(op, [ctx.input(0)], attrs={"blocksize": int(ctx.attr("block_size")), "mode": "DCR",
                                            "layout": layout})
    return convert


# --------------------------------------------------------------------- fused activation patterns
def hard_swish(ctx: Context) -> None:
    ctx.emit("HardSwish", [ctx.input(0)])


def hard_sigmoid(ctx: Context) -> None:
    ctx.emit("HardSigmoid", [ctx.input(0)], attrs={"alpha": 1.0 / 6.0, "beta": 0.5})


def gelu(ctx: Context) -> None:
    ctx.emit("Gelu", [ctx.input(0)], attrs={"approximate": ctx.node.attrs["approximate"]})


def swish(ctx: Context) -> None:
    ctx.emit("Swish", [ctx.input(0)], attrs={"alpha": float(ctx.node.attrs.get("alpha", 1.0))})


CONVERTERS: dict[str, Converter] = {
    "Conv2D": conv, "Conv3D": conv, "DepthwiseConv2dNative": depthwise,
    "Conv2DBackpropInput": conv_backprop_input,
    "MaxPool": _pool("MaxPool"), "MaxPoolV2": _pool("MaxPool"), "MaxPool3D": _pool("MaxPool"),
    "AvgPool": _pool("AveragePool"), "AvgPool3D": _pool("AveragePool"),
    "FusedBatchNorm": fused_batch_norm, "FusedBatchNormV2": fused_batch_norm,
    "FusedBatchNormV3": fused_batch_norm, "LRN": lrn,
    "ResizeBilinear": _resize("linear"), "ResizeNearestNeighbor": _resize("nearest"),
    "DepthToSpace": _space_depth("DepthToSpace"), "SpaceToDepth": _space_depth("SpaceToDepth"),
    "_CK_BatchNorm": fused_bn_pattern, "_CK_HardSwish": hard_swish, "_CK_HardSigmoid": hard_sigmoid,
    "_CK_Gelu": gelu, "_CK_Swish": swish,
}
