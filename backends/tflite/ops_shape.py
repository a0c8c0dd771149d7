"""Builders for pooling, reductions, data movement, quantization and type ops (see ``ops.py``)."""
from __future__ import annotations

import numpy as np
from convertkit.backends.tflite.ops import (
    BIG,
    I8,
    I16,
    I32,
    Ctx,
    _const,
    _dt,
    _fused,
    _is_q,
    _padding,
    _rank,
    _same_q,
    _shape,
    _sig_shape,
    _static,
    as_2d,
    builder,
    from_4d,
    to_4d,
)
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema


def _v_int8(g: Graph, x: str, int16: int = 3) -> int:
    dt = _dt(g, x)
    return int16 if dt == I16 else 2 if dt == I8 else 1


# ------------------------------------------------------------------------------------ pooling
def _pool_check(g: Graph, node: Node) -> str | None:
    x = g.inputs_of(node)[0]
    if _rank(g, x) not in (3, 4):
        return f"rank-{_rank(g, x)} pooling (TFLite pools are 2-D, NHWC; 1-D NWC is expanded)"
    a0 = get_schema(node.op).resolve_attrs(node.attrs, node.name)
    a, spatial, k = as_2d(g, node, list(a0["kernel_shape"]))
    if any(d != 1 for d in (a.get("dilations") or [1, 1])):
        return "dilated pooling"
    if len(g.outputs_of(node)) > 1:
        return "MaxPool indices output"
    pad = _padding(g, node, spatial, k, bool(a["ceil_mode"]), attrs=a)
    if pad is None:
        return f"padding {a.get('pads')} is neither SAME nor VALID"
    if node.op == "AveragePool" and a["count_include_pad"] and pad == 0 and _static(_shape(g, x)):
        return "count_include_pad with padding (TFLite averages over the valid elements only)"
    return None


@builder("AveragePool", "MaxPool", check=_pool_check)
def _pool(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    a, spatial, k = as_2d(g, node, list(ctx.attrs(node)["kernel_shape"]))
    s = a["strides"] or [1, 1]
    pad = _padding(g, node, spatial, k, bool(a["ceil_mode"]), attrs=a)
    code = "AVERAGE_POOL_2D" if node.op == "AveragePool" else "MAX_POOL_2D"
    one_d = _rank(g, x) == 3
    xin = to_4d(ctx, x, node) if one_d else ctx.t(x)
    y, back = from_4d(ctx, node) if one_d else (ctx.moved(node) if node.op == "MaxPool" else ctx.out(node),
                                                lambda: None)
    ctx.m.op(code, [xin], [y],
             ("Pool2DOptions", {"padding": pad, "stride_w": s[1], "stride_h": s[0], "filter_w": k[1],
                                "filter_h": k[0], "fused": _fused(node)}), _v_int8(g, x))
    back()


def _global_check(g: Graph, node: Node) -> str | None:
    if _rank(g, g.inputs_of(node)[0]) not in (3, 4):
        return "not a 4-D NHWC or 3-D NWC input"
    return None


@builder("GlobalAveragePool", "GlobalMaxPool", check=_global_check)
def _global_pool(ctx: Ctx, node: Node) -> None:
    x = ctx.ins(node)[0]
    code = "MEAN" if node.op == "GlobalAveragePool" else "REDUCE_MAX"
    axes = list(range(1, _rank(ctx.g, x) - 1))
    y = ctx.moved(node) if code == "REDUCE_MAX" else ctx.out(node)
    ctx.m.op(code, [ctx.t(x), ctx.const(axes, I32, f"{node.name}_axes")], [y],
             ("ReducerOptions", {"keep_dims": True}), _v_int8(ctx.g, x))


def _reduce_axes(g: Graph, node: Node) -> list[int] | None:
    ins = g.inputs_of(node)
    x = ins[0]
    r = _rank(g, x)
    if len(ins) > 1 and ins[1] is not None:
        v = _const(g, ins[1])
        if v is None:
            return None
        axes = [int(a) % r for a in v.reshape(-1)]
    else:
        axes = []
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return None
        axes = list(range(r))
    return sorted(set(axes))


def _reduce_check(g: Graph, node: Node) -> str | None:
    if _reduce_axes(g, node) is None:
        return "axes computed at run time, or empty with noop_with_empty_axes"
    return None


_REDUCERS = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceSum": "SUM"}


@builder(*_REDUCERS, check=_reduce_check)
def _reduce(ctx: Ctx, node: Node) -> None:
    """MEAN, SUM (float: the IR has no integer ReduceSum), REDUCE_MAX/MIN (values moved, so an int8
    output quantized differently from the input is requantized after)."""
    x = ctx.ins(node)[0]
    axes = _reduce_axes(ctx.g, node)
    code = _REDUCERS[node.op]
    y = ctx.moved(node) if code in ("REDUCE_MAX", "REDUCE_MIN") else ctx.out(node)
    ctx.m.op(code, [ctx.t(x), ctx.const(axes, I32, f"{node.name}_axes")], [y],
             ("ReducerOptions", {"keep_dims": bool(ctx.attrs(node)["keepdims"])}), _v_int8(ctx.g, x))


# ------------------------------------------------------------------------------- data movement
def _reshape_check(g: Graph, node: Node) -> str | None:
    y = g.outputs_of(node)[0]
    if sum(1 for d in _shape(g, y) if not isinstance(d, int)) > 1:
        return "more than one symbolic dimension in the output shape"
    return None


@builder("Reshape", "Flatten", "Squeeze", "Unsqueeze", check=_reshape_check)
def _reshape(ctx: Ctx, node: Node) -> None:
    x = ctx.ins(node)[0]
    y = ctx.g.outputs_of(node)[0]
    shape = ctx.const(_sig_shape(_shape(ctx.g, y)), I32, f"{node.name}_shape")
    ctx.m.op("RESHAPE", [ctx.t(x), shape], [ctx.moved(node)], None, 1)


@builder("Transpose")
def _transpose(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    r = _rank(g, x)
    perm = ctx.attrs(node)["perm"] or list(reversed(range(r)))
    dt = _dt(g, x)
    version = 6 if r > 5 else 5 if dt == I16 else 4 if r > 4 else 3 if dt == np.dtype(bool) else 2 if dt == I8 else 1
    ctx.m.op("TRANSPOSE", [ctx.t(x), ctx.const(perm, I32, f"{node.name}_perm")], [ctx.moved(node)],
             ("TransposeOptions", {}), version)


MAX_CONCAT = 10


def _requantized(ctx: Ctx, x: str, like: str) -> int:
    """``x``, or a QUANTIZE of it into ``like``'s parameters (TFLite's int8 CONCATENATION needs its
    inputs quantized as its output; the IR's Concat means exactly this requantization)."""
    g = ctx.g
    qx, qy = g.tensor(x).quant, g.tensor(like).quant
    if not _is_q(g, x) or _same_q(qx, qy):
        return ctx.t(x)
    out = ctx.m.add_tensor(f"{x}_requantized", g.tensor(like).dtype, _shape(g, x), qy)
    ctx.m.op("QUANTIZE", [ctx.t(x)], [out], ("QuantizeOptions", {}), 1)
    return out


@builder("Concat", check=None)
def _concat(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    ins = ctx.ins(node)
    axis = int(ctx.attrs(node)["axis"]) % _rank(g, ins[0])
    version = 3 if _dt(g, ins[0]) == I16 else 2 if _dt(g, ins[0]) == I8 else 1
    opts = ("ConcatenationOptions", {"axis": axis, "fused": 0})
    y = g.outputs_of(node)[0]
    parts = [(_requantized(ctx, i, y), _shape(g, i)) for i in ins]
    while len(parts) > MAX_CONCAT:  # TFLite Micro concatenates at most 10 tensors: a tree, exact
        groups = [parts[k:k + MAX_CONCAT] for k in range(0, len(parts), MAX_CONCAT)]
        parts = []
        for group in groups:
            shape = list(group[0][1])
            sizes = [s[axis] for _, s in group]
            shape[axis] = sum(sizes) if all(isinstance(d, int) for d in sizes) else shape[axis]
            mid = ctx.mid(y, tuple(shape), f"{y}_part")
            ctx.m.op("CONCATENATION", [i for i, _ in group], [mid], opts, version)
            parts.append((mid, tuple(shape)))
    ctx.m.op("CONCATENATION", [i for i, _ in parts], [ctx.out(node)], opts, version)


def _pads(g: Graph, node: Node) -> np.ndarray | None:
    ins = g.inputs_of(node) + [None] * 3
    p = _const(g, ins[1])
    if p is None or ins[3] is not None:
        return None
    r = _rank(g, ins[0])
    p = p.reshape(-1).astype(np.int64)
    return np.stack([p[:r], p[r:]], axis=1)


def _pad_value(g: Graph, node: Node) -> float | None:
    ins = g.inputs_of(node) + [None] * 3
    if ins[2] is None:
        return 0.0
    v = _const(g, ins[2])
    return None if v is None else float(v.reshape(-1)[0])


def _pad_check(g: Graph, node: Node) -> str | None:
    p = _pads(g, node)
    mode = node.attrs.get("mode", "constant")
    if p is None or np.any(p < 0):
        return "pads computed at run time, negative, or with axes"
    if mode not in ("constant", "reflect"):
        return f"mode {mode}"
    v = _pad_value(g, node)
    if v is None:
        return "pad value computed at run time"
    x = g.inputs_of(node)[0]
    if _is_q(g, x) and (v != 0.0 or mode != "constant"):
        return "int8 pad with a nonzero value or a mirror mode"
    return None


@builder("Pad", check=_pad_check)
def _pad(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    pads = ctx.const(_pads(g, node), I32, f"{node.name}_pads")
    v = _pad_value(g, node)
    r = _rank(g, x)
    version = 4 if r > 4 else _v_int8(g, x)
    if node.attrs.get("mode", "constant") == "reflect":
        ctx.m.op("MIRROR_PAD", [ctx.t(x), pads], [ctx.out(node)], ("MirrorPadOptions", {"mode": 0}), 1)
    elif v == 0.0:
        ctx.m.op("PAD", [ctx.t(x), pads], [ctx.moved(node)], ("PadOptions", {}), version)
    else:
        value = ctx.const([v], _dt(g, x), f"{node.name}_value")
        ctx.m.op("PADV2", [ctx.t(x), pads, value], [ctx.out(node)], ("PadV2Options", {}), version)


def _resize_mode(g: Graph, node: Node) -> tuple[str, dict] | None:
    a = get_schema("Resize").resolve_attrs(node.attrs, node.name)
    x, y = g.inputs_of(node)[0], g.outputs_of(node)[0]
    xs, ys = _shape(g, x), _shape(g, y)
    if len(xs) != 4 or xs[0] != ys[0] or xs[3] != ys[3] or not _static(ys[1:3]) or a["antialias"] \
            or a["exclude_outside"] or a["keep_aspect_ratio_policy"] != "stretch":
        return None
    coord, mode = a["coordinate_transformation_mode"], a["mode"]
    upscale = all(o % i == 0 for i, o in zip(xs[1:3], ys[1:3]) if isinstance(i, int))
    if (mode == "nearest" and coord in ("half_pixel", "pytorch_half_pixel") and upscale
            and a["nearest_mode"] in ("round_prefer_floor", "round_prefer_ceil")):
        # integer factor s: (o + 0.5) / s - 0.5 = k + (r + 0.5) / s - 0.5 never ties and rounds to k = o // s
        coord, a = "asymmetric", {**a, "nearest_mode": "floor"}
    if coord == "pytorch_half_pixel" and min(ys[1:3]) > 1:
        coord = "half_pixel"
    if mode == "linear":
        flags = {"align_corners": {"align_corners": True, "half_pixel": False},
                 "half_pixel": {"align_corners": False, "half_pixel": True},
                 "asymmetric": {"align_corners": False, "half_pixel": False}}.get(coord)
        return None if flags is None else ("RESIZE_BILINEAR", flags)
    if mode == "nearest":
        key = (coord, a["nearest_mode"])
        flags = {("asymmetric", "floor"): {"align_corners": False, "half_pixel": False},
                 ("align_corners", "round_prefer_ceil"): {"align_corners": True, "half_pixel": False},
                 ("tf_half_pixel_for_nn", "floor"): {"align_corners": False, "half_pixel": True}}.get(key)
        return None if flags is None else ("RESIZE_NEAREST_NEIGHBOR", flags)
    return None


@builder("Resize", check=lambda g, n: (None if _resize_mode(g, n) else
                                       "a mode/coordinate transform TFLite's resize ops do not compute"))
def _resize(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x, y = ctx.ins(node)[0], g.outputs_of(node)[0]
    code, flags = _resize_mode(g, node)
    size = ctx.const(list(_shape(g, y)[1:3]), I32, f"{node.name}_size")
    q = _is_q(g, x)
    if code == "RESIZE_BILINEAR":
        version = 3 if flags["half_pixel"] else 2 if q else 1
        opts = ("ResizeBilinearOptions", flags)
    else:
        version = 3 if flags["half_pixel"] or flags["align_corners"] else 2 if q else 1
        opts = ("ResizeNearestNeighborOptions", flags)
    ctx.m.op(code, [ctx.t(x), size], [ctx.moved(node)], opts, version)


def _slice_params(g: Graph, node: Node) -> tuple[list, list, list, int, int] | None:
    ins = g.inputs_of(node) + [None] * 5
    x = ins[0]
    shape = _shape(g, x)
    r = len(shape)
    starts, ends = _const(g, ins[1]), _const(g, ins[2])
    axes = _const(g, ins[3]) if ins[3] is not None else np.arange(len(starts if starts is not None else []))
    steps = _const(g, ins[4]) if ins[4] is not None else np.ones(len(axes), np.int64)
    if starts is None or ends is None or axes is None or steps is None:
        return None
    begin, end, stride = [0] * r, [0] * r, [1] * r
    bmask = emask = 0
    touched = set()
    for a, s, e, st in zip(axes.reshape(-1), starts.reshape(-1), ends.reshape(-1), steps.reshape(-1)):
        a, s, e, st = int(a) % r, int(s), int(e), int(st)
        touched.add(a)
        d = shape[a]
        if not isinstance(d, int):
            if st == 1 and s == 0 and e >= BIG:
                bmask |= 1 << a
                emask |= 1 << a
                continue
            return None
        b0, e0, _ = slice(s, e, st).indices(d)
        begin[a], stride[a] = b0, st
        if st < 0 and e0 < 0:
            emask |= 1 << a
        else:
            end[a] = e0
    for a in range(r):
        if a not in touched:
            bmask |= 1 << a
            emask |= 1 << a
    return begin, end, stride, bmask, emask


@builder("Slice", check=lambda g, n: None if _slice_params(g, n) else "bounds computed at run time")
def _slice(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    begin, end, stride, bm, em = _slice_params(g, node)
    r = _rank(g, x)
    version = 4 if r > 4 else 3 if _dt(g, x) == np.dtype(bool) else 2 if _dt(g, x) == I8 else 1
    ins = [ctx.t(x)] + [ctx.const(v, I32, f"{node.name}_{k}") for k, v in
                        (("begin", begin), ("end", end), ("strides", stride))]
    ctx.m.op("STRIDED_SLICE", ins, [ctx.moved(node)],
             ("StridedSliceOptions", {"begin_mask": bm, "end_mask": em, "ellipsis_mask": 0, "new_axis_mask": 0,
                                      "shrink_axis_mask": 0}), version)


def _split_check(g: Graph, node: Node) -> str | None:
    ins = g.inputs_of(node)
    if len(ins) > 1 and ins[1] is not None and _const(g, ins[1]) is None:
        return "split sizes computed at run time"
    x = ins[0]
    axis = int(node.attrs.get("axis", 0)) % _rank(g, x)
    if not isinstance(_shape(g, x)[axis], int):
        return "split along a symbolic dimension"
    return None


@builder("Split", check=_split_check)
def _split(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    outs = g.outputs_of(node)
    axis = int(ctx.attrs(node)["axis"]) % _rank(g, x)
    sizes = [_shape(g, o)[axis] for o in outs]
    dt = _dt(g, x)
    ax = ctx.const(axis, I32, f"{node.name}_axis")
    out_idx = [ctx.moved(node, k) for k in range(len(outs))]
    if len(set(sizes)) == 1:
        version = 4 if dt == I16 else 3 if dt == np.dtype(np.int32) else 2 if dt == I8 else 1
        ctx.m.op("SPLIT", [ax, ctx.t(x)], out_idx, ("SplitOptions", {"num_splits": len(outs)}), version)
    else:
        ctx.m.op("SPLIT_V", [ctx.t(x), ctx.const(sizes, I32, f"{node.name}_sizes"), ax], out_idx,
                 ("SplitVOptions", {"num_splits": len(outs)}), 2 if dt == I8 else 1)


@builder("Gather", check=lambda g, n: None if _const(g, g.inputs_of(n)[1]) is not None else
         "run-time indices (the IR wraps negative ones, TFLite's GATHER does not)")
def _gather(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x, i = ctx.ins(node)
    axis = int(ctx.attrs(node)["axis"]) % _rank(g, x)
    iv = _const(g, i)
    idx = ctx.t(i) if iv is None else ctx.const(np.where(iv < 0, iv + _shape(g, x)[axis], iv), I32, f"{i}_i32")
    dt = _dt(g, x)
    version = 4 if dt == I16 else 3 if dt == np.dtype(bool) else 2 if dt == I8 else 1
    ctx.m.op("GATHER", [ctx.t(x), idx], [ctx.moved(node)], ("GatherOptions", {"axis": axis, "batch_dims": 0}), version)


@builder("Expand")
def _expand(ctx: Ctx, node: Node) -> None:
    """BROADCAST_TO to the output's static shape, else to the run-time shape tensor."""
    g = ctx.g
    x, s = ctx.ins(node)
    y = g.outputs_of(node)[0]
    static = _static(_shape(g, y)) and _rank(g, x) <= _rank(g, y)
    shape = ctx.const(_shape(g, y), I32, f"{node.name}_shape") if static else ctx.t(s)
    ctx.m.op("BROADCAST_TO", [ctx.t(x), shape], [ctx.moved(node)], ("BroadcastToOptions", {}),
             3 if _dt(g, x) in (I8, I16) else 2)


# ------------------------------------------------------------------------------ quantization
def _quant_check(g: Graph, node: Node) -> str | None:
    x, y = g.inputs_of(node)[0], g.outputs_of(node)[0]
    q = g.tensor(y if node.op == "QuantizeLinear" else x).quant
    if q is None or q.axis is not None or np.asarray(q.scale).size != 1:
        return "not per-tensor quantization parameters on the quantized side"
    if node.op == "QuantizeLinear" and _dt(g, x).kind == "f" and \
            node.attrs.get("rounding", "half_to_even") != "half_away_from_zero":
        return "round-half-to-even quantization (TFLite's QUANTIZE rounds half away from zero)"
    if _dt(g, y if node.op == "QuantizeLinear" else x) not in (I8, I16):
        return "not int8/int16"
    return None


@builder("QuantizeLinear", "DequantizeLinear", check=_quant_check)
def _quantize(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x = ctx.ins(node)[0]
    y = g.outputs_of(node)[0]
    if node.op == "QuantizeLinear":
        ctx.m.op("QUANTIZE", [ctx.t(x)], [ctx.out(node)], ("QuantizeOptions", {}), 2 if _dt(g, y) == I16 else 1)
    else:
        ctx.m.op("DEQUANTIZE", [ctx.t(x)], [ctx.out(node)], ("DequantizeOptions", {}),
                 3 if _dt(g, x) == I16 else 2 if _dt(g, x) == I8 else 1)


_TYPE = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.uint8): 3, np.dtype(np.int64): 4,
         np.dtype(bool): 6, np.dtype(np.int16): 7, np.dtype(np.int8): 9}


@builder("Cast", check=lambda g, n: None if not _is_q(g, g.inputs_of(n)[0]) and not _is_q(g, g.outputs_of(n)[0])
         and _dt(g, g.inputs_of(n)[0]) in _TYPE and _dt(g, g.outputs_of(n)[0]) in _TYPE else "quantized or unknown types")
def _cast(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x, y = ctx.ins(node)[0], g.outputs_of(node)[0]
    a, b = _dt(g, x), _dt(g, y)
    version = 3 if I8 in (a, b) else 1
    ctx.m.op("CAST", [ctx.t(x)], [ctx.out(node)],
             ("CastOptions", {"in_data_type": _TYPE[a], "out_data_type": _TYPE[b]}), version)


@builder("Shape", check=lambda g, n: None if not n.attrs.get("start") and n.attrs.get("end") is None
         else "start/end")
def _shape_op(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    y = g.outputs_of(node)[0]
    ctx.m.op("SHAPE", [ctx.t(ctx.ins(node)[0])], [ctx.out(node)], ("ShapeOptions", {"out_type": _TYPE[_dt(g, y)]}), 1)
