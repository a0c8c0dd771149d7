"""Constants, identities, and the ops that reshape, join, split, slice, pad, gather and generate tensors.

TensorFlow's int32 shape, axis and index tensors become int64 where ONNX wants them. StridedSlice's
five masks are resolved at conversion time into one Slice plus Squeeze/Unsqueeze (or one Gather for
a plain index), which is what shape-manipulating graphs (Keras Flatten, tf.repeat) need.
"""
from __future__ import annotations

import numpy as np

from convertkit.frontends.tensorflow.context import Context, Converter

BIG = 2**31 - 1
"""Slice bound meaning "to the end" (canonical Slice clamps it)."""


def const(ctx: Context) -> None:
    value = ctx.attr("value")
    if value.dtype.kind in "OSU":
        raise ctx.unsupported("a string constant", "cut the graph after the string processing with --inputs")
    dt = ctx.type_attr("dtype")
    ctx.graph.add_tensor(ctx.out(0), value=np.require(value.astype(dt, copy=False), requirements="C"))


def identity(ctx: Context) -> None:
    ctx.alias(0, ctx.input(0))


def identity_n(ctx: Context) -> None:
    for k, name in enumerate(ctx.inputs):
        ctx.alias(k, name)


def _i64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def reshape(ctx: Context) -> None:
    v = ctx.value(1)
    attrs = {"allowzero": 1} if v is not None and 0 in np.asarray(v).reshape(-1) else {}
    ctx.emit("Reshape", [ctx.input(0), ctx.int64(1)], attrs=attrs)


def squeeze(ctx: Context) -> None:
    dims = ctx.attr("squeeze_dims", None) or []
    if not dims:
        shape = ctx.shape(0)
        if any(not isinstance(d, int) for d in shape):
            raise ctx.unsupported(f"no squeeze_dims on a tensor of shape {list(shape)} with symbolic dims",
                                  "give the input a static shape with --inputs NAME=DIMS")
        dims = [i for i, d in enumerate(shape) if d == 1]
    ctx.emit("Squeeze", [ctx.input(0), ctx.const(_i64(dims), name="axes")])


def expand_dims(ctx: Context) -> None:
    axis = ctx.static_ints(1, "axis")
    ctx.emit("Unsqueeze", [ctx.input(0), ctx.const(_i64(axis), name="axes")])


def transpose(ctx: Context) -> None:
    ctx.emit("Transpose", [ctx.input(0)], attrs={"perm": ctx.static_ints(1, "perm")})


def concat_v2(ctx: Context) -> None:
    _concat(ctx, list(ctx.inputs[:-1]), ctx.static_ints(ctx.n_inputs - 1, "axis")[0])


def concat_v1(ctx: Context) -> None:
    _concat(ctx, list(ctx.inputs[1:]), ctx.static_ints(0, "axis")[0])


def _concat(ctx: Context, values: list[str], axis: int) -> None:
    if len(values) == 1:
        ctx.alias(0, values[0])
    else:
        ctx.emit("Concat", values, attrs={"axis": axis})


def pack(ctx: Context) -> None:
    axis = int(ctx.attr("axis", 0))
    axes = ctx.const(_i64([axis]), name="axes")
    if ctx.n_inputs == 1:
        ctx.emit("Unsqueeze", [ctx.input(0), axes])
        return
    parts = [ctx.emit("Unsqueeze", [x, axes], f"part{i}") for i, x in enumerate(ctx.inputs)]
    ctx.emit("Concat", parts, attrs={"axis": axis})


def unpack(ctx: Context) -> None:
    axis = int(ctx.attr("axis", 0))
    num = int(ctx.attr("num"))
    axes = ctx.const(_i64([axis]), name="axes")
    parts = [ctx.tmp(f"part{i}") for i in range(num)]
    if num == 1:
        parts = [ctx.input(0)]
    else:
        ctx.emit("Split", [ctx.input(0), ctx.const(_i64([1] * num), name="split")], parts, {"axis": axis})
    for k in range(min(num, len(ctx.outputs))):
        ctx.emit("Squeeze", [parts[k], axes], [ctx.out(k)])


def _split(ctx: Context, x: str, axis: int, sizes: list[int]) -> None:
    outs = [ctx.out(k) if k < len(ctx.outputs) else ctx.tmp(f"unused{k}") for k in range(len(sizes))]
    if len(sizes) == 1:
        ctx.alias(0, x)
        return
    ctx.emit("Split", [x, ctx.const(_i64(sizes), name="split")], outs, {"axis": axis})


def split(ctx: Context) -> None:
    axis = ctx.static_ints(0, "axis")[0]
    n = int(ctx.attr("num_split"))
    dim = ctx.static_dims(1, [axis], "Split")[0]
    if dim % n:
        raise ctx.error(f"cannot split {dim} into {n} equal parts")
    _split(ctx, ctx.input(1), axis, [dim // n] * n)


def split_v(ctx: Context) -> None:
    sizes = ctx.static_ints(1, "size_splits")
    axis = ctx.static_ints(2, "axis")[0]
    if -1 in sizes:
        dim = ctx.static_dims(0, [axis], "SplitV with a -1 size")[0]
        k = sizes.index(-1)
        sizes[k] = dim - (sum(sizes) + 1)
    _split(ctx, ctx.input(0), axis, sizes)


def slice_(ctx: Context) -> None:
    begin = ctx.ints(1, "begin")
    size = ctx.ints(2, "size")
    if all(isinstance(v, int) for v in begin + size):
        ends = [BIG if s == -1 else b + s for b, s in zip(begin, size)]
        starts, stops = ctx.const(_i64(begin), name="starts"), ctx.const(_i64(ends), name="ends")
        ctx.emit("Slice", [ctx.input(0), starts, stops, ctx.const(_i64(range(len(begin))), name="axes")])
        return
    raise ctx.unsupported("a size that depends on a symbolic dimension")


def strided_slice(ctx: Context) -> None:
    """Resolve TF's masks into (input axis, start, end, step) slices, index (shrink) axes and new
    axes, then emit Slice -> Squeeze -> Unsqueeze (or a single Gather for one plain index)."""
    begin, end = ctx.static_ints(1, "begin"), ctx.static_ints(2, "end")
    strides = ctx.static_ints(3, "strides")
    masks = {k: int(ctx.attr(k, 0)) for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                               "shrink_axis_mask")}
    rank = ctx.rank(0)
    n = len(begin)

    def bit(mask: str, i: int) -> bool:
        return bool(masks[mask] >> i & 1)

    if masks["ellipsis_mask"].bit_count() > 1:
        raise ctx.error("more than one ellipsis")
    consumed = sum(1 for i in range(n) if not bit("ellipsis_mask", i) and not bit("new_axis_mask", i))
    entries: list[tuple] = []
    for i in range(n):
        if bit("ellipsis_mask", i):
            entries += [("full",)] * (rank - consumed)
        elif bit("new_axis_mask", i):
            entries.append(("new",))
        elif bit("shrink_axis_mask", i):
            entries.append(("index", begin[i]))
        else:
            entries.append(("slice", None if bit("begin_mask", i) else begin[i],
                            None if bit("end_mask", i) else end[i], strides[i]))
    if not masks["ellipsis_mask"]:
        entries += [("full",)] * (rank - consumed)
    starts, ends, axes, steps, shrink, new_axes = [], [], [], [], [], []
    in_axis = out_axis = 0
    for e in entries:
        if e[0] == "new":
            new_axes.append(out_axis)
            out_axis += 1
            continue
        if e[0] == "index":
            b = e[1]
            starts.append(b)
            ends.append(b + 1 if b != -1 else BIG)
            axes.append(in_axis)
            steps.append(1)
            shrink.append(in_axis)
        elif e[0] == "slice":
            _, b, en, s = e
            if s == 0:
                raise ctx.error("stride 0")
            if not (b is None and en is None and s == 1):
                starts.append(b if b is not None else (0 if s > 0 else BIG))
                ends.append(en if en is not None else (BIG if s > 0 else -BIG))
                axes.append(in_axis)
                steps.append(s)
            out_axis += 1
        else:
            out_axis += 1
        in_axis += 1
    if in_axis != rank:
        raise ctx.error(f"slices {in_axis} dimensions of a rank-{rank} input")
    x = ctx.input(0)
    last = not shrink and not new_axes
    if len(shrink) == 1 and len(axes) == 1 and not new_axes:  # one plain index: Gather
        ctx.emit("Gather", [x, ctx.const(np.int64(starts[0]), name="index")], attrs={"axis": shrink[0]})
        return
    if axes:
        x = ctx.emit("Slice", [x, ctx.const(_i64(starts), name="starts"), ctx.const(_i64(ends), name="ends"),
                               ctx.const(_i64(axes), name="axes"), ctx.const(_i64(steps), name="steps")],
                     None if last else "sliced")
    if shrink:
        x = ctx.emit("Squeeze", [x, ctx.const(_i64(shrink), name="shrink")],
                     None if not new_axes else "squeezed")
    if new_axes:
        x = ctx.emit("Unsqueeze", [x, ctx.const(_i64(new_axes), name="new_axes")])
    if not axes and not shrink and not new_axes:
        ctx.alias(0, x)


def reverse(ctx: Context) -> None:
    """ReverseV2 (Keras's backward RNNs flip the time axis): a Slice with step -1 on each axis."""
    axes = [a % ctx.rank(0) for a in ctx.static_ints(1, "axis")]
    if not axes:
        ctx.alias(0, ctx.input(0))
        return
    n = len(axes)
    ctx.emit("Slice", [ctx.input(0), ctx.const(_i64([-1] * n), name="starts"),
                       ctx.const(_i64([-BIG] * n), name="ends"), ctx.const(_i64(axes), name="axes"),
                       ctx.const(_i64([-1] * n), name="steps")])


def _tf_pads(ctx: Context, i: int) -> str:
    """TF paddings [[begin, end], ...] -> ONNX pads [begins..., ends...]."""
    v = ctx.value(i)
    if v is not None:
        return ctx.const(_i64(np.asarray(v).T.reshape(-1)), name="pads")
    t = ctx.emit("Transpose", [ctx.int64(i)], "pads_t", {"perm": [1, 0]})
    return ctx.emit("Reshape", [t, ctx.const(_i64([-1]), name="flat")], "pads")


def pad(ctx: Context) -> None:
    value = ctx.input(2) if ctx.node.op == "PadV2" else None
    ctx.emit("Pad", [ctx.input(0), _tf_pads(ctx, 1), value], attrs={"mode": "constant"})


def mirror_pad(ctx: Context) -> None:
    mode = ctx.choice("mode", ("REFLECT", "SYMMETRIC"))
    if mode == "SYMMETRIC":
        raise ctx.unsupported("mode='SYMMETRIC'", "ONNX Pad has no symmetric mode; REFLECT is supported")
    ctx.emit("Pad", [ctx.input(0), _tf_pads(ctx, 1)], attrs={"mode": "reflect"})


def gather_v2(ctx: Context) -> None:
    if int(ctx.attr("batch_dims", 0)) != 0:
        raise ctx.unsupported(f"batch_dims={ctx.attr('batch_dims')}")
    axis = ctx.static_ints(2, "axis")[0] if ctx.node.op == "GatherV2" else 0
    ctx.emit("Gather", [ctx.input(0), ctx.input(1)], attrs={"axis": axis})


def gather_nd(ctx: Context) -> None:
    ctx.emit("GatherND", [ctx.input(0), ctx.int64(1)])


def tile(ctx: Context) -> None:
    ctx.emit("Tile", [ctx.input(0), ctx.int64(1)])


def fill(ctx: Context) -> None:
    ctx.emit("Expand", [ctx.input(1), ctx.int64(0)])


def broadcast_to(ctx: Context) -> None:
    ctx.emit("Expand", [ctx.input(0), ctx.int64(1)])


def _like(value: int) -> Converter:
    def convert(ctx: Context) -> None:
        shape = ctx.emit("Shape", [ctx.input(0)], "shape")
        ctx.emit("Expand", [ctx.const(np.asarray(value, ctx.dtype(0)), name="value"), shape])
    return convert


def range_(ctx: Context) -> None:
    ctx.emit("Range", ctx.inputs[:3])


def shape(ctx: Context) -> None:
    out_type = ctx.type_attr("out_type", np.dtype(np.int32))
    if out_type == np.int64:
        ctx.emit("Shape", [ctx.input(0)])
    else:
        ctx.emit("Cast", [ctx.emit("Shape", [ctx.input(0)], "shape64")], attrs={"to": out_type.name})


def size(ctx: Context) -> None:
    out_type = ctx.type_attr("out_type", np.dtype(np.int32))
    ctx.emit("Cast", [ctx.emit("Size", [ctx.input(0)], "size64")], attrs={"to": out_type.name})


def rank(ctx: Context) -> None:
    ctx.graph.add_tensor(ctx.out(0), value=np.asarray(ctx.rank(0), np.int32))


def one_hot(ctx: Context) -> None:
    axis0 = ctx.const(_i64([0]), name="ax")
    off = ctx.emit("Unsqueeze", [ctx.input(3), axis0], "off")
    on = ctx.emit("Unsqueeze", [ctx.input(2), axis0], "on")
    values = ctx.emit("Concat", [off, on], "values", {"axis": 0})
    ctx.emit("OneHot", [ctx.input(0), ctx.input(1), values], attrs={"axis": int(ctx.attr("axis", -1))})


def top_k(ctx: Context) -> None:
    if not ctx.attr("sorted", True):
        raise ctx.unsupported("sorted=False")
    k = ctx.emit("Reshape", [ctx.int64(1), ctx.const(_i64([1]), name="k_shape")], "k")
    idx = ctx.tmp("indices64") if len(ctx.outputs) > 1 else ctx.tmp("unused_indices")
    outs = [ctx.out(0), idx]
    ctx.emit("TopK", [ctx.input(0), k], outs, {"axis": -1, "largest": 1, "sorted": 1})
    if len(ctx.outputs) > 1:
        ctx.emit("Cast", [idx], [ctx.out(1)], {"to": "int32"})


def placeholder_with_default(ctx: Context) -> None:
    ctx.alias(0, ctx.input(0))


CONVERTERS: dict[str, Converter] = {
    "Const": const, "Identity": identity, "IdentityN": identity_n, "StopGradient": identity,
    "Snapshot": identity, "PreventGradient": identity, "EnsureShape": identity, "CheckNumerics": identity,
    "PlaceholderWithDefault": placeholder_with_default, "Reshape": reshape, "Squeeze": squeeze,
    "ExpandDims": expand_dims, "Transpose": transpose, "ConcatV2": concat_v2, "Concat": concat_v1,
    "Pack": pack, "Unpack": unpack, "Split": split, "SplitV": split_v, "Slice": slice_,
    "StridedSlice": strided_slice, "Pad": pad, "PadV2": pad, "MirrorPad": mirror_pad, "GatherV2": gather_v2,
    "Gather": gather_v2, "GatherNd": gather_nd, "Tile": tile, "Fill": fill, "BroadcastTo": broadcast_to,
    "ZerosLike": _like(0), "OnesLike": _like(1), "Range": range_, "Shape": shape, "Size": size, "Rank": rank,
    "OneHot": one_hot, "TopKV2": top_k, "ReverseV2": reverse,
}
