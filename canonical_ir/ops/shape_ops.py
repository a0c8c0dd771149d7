"""Shape and data-movement ops: reshaping, joining, splitting, slicing, padding, broadcasting.

Semantics are those of the newest ONNX version of each op. Inference keeps symbolic dims (such as the
batch ``N``) wherever the result is determined by them, and reads run-time shape tensors symbolically
(see ``dims.shape_value``). Kernels only move data, so they are bit-exact.
The indexing ops (Gather, Scatter*, Compress, NonZero, Trilu, ReverseSequence) live in ``indexing``.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.ops.dims import (
    clamp_index, divide_out, fill_unknown, merge, product, shape_value, total)
from convertkit.canonical_ir.ops.registry import REQUIRED, InferContext, TensorType, register, same_as

INT64 = np.dtype(np.int64)
BOOL = np.dtype(bool)
BIG = 2**31 - 1
"""Slice bounds at least this large mean "to the end of the axis" (exporters use INT32/64_MAX)."""


def _ints(v) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


def _length_of(ctx: InferContext, i: int, what: str) -> int:
    """Static length of 1-D input ``i`` (e.g. a shape or axes tensor computed at run time)."""
    s = ctx.shape(i)
    if len(s) != 1 or not isinstance(s[0], int):
        raise ctx.error(f"the {what} input has unknown length {list(s)}, so the output rank is unknown")
    return s[0]


def _axes(ctx: InferContext | None, axes, rank: int) -> list[int]:
    """Normalised axes; duplicates and out-of-range axes raise."""
    out = []
    for a in _ints(axes):
        if not -rank <= a < rank:
            msg = f"axis {a} is out of range for rank {rank}"
            raise ctx.error(msg) if ctx else ValueError(msg)
        out.append(a % rank)
    if len(set(out)) != len(out):
        msg = f"axes {_ints(axes)} repeat an axis"
        raise ctx.error(msg) if ctx else ValueError(msg)
    return out


# --------------------------------------------------------------------------------------- Reshape
def _reshape_infer(ctx: InferContext) -> list[TensorType]:
    data = ctx.shape(0)
    target = shape_value(ctx, 1)
    if target is None:
        target = [None] * _length_of(ctx, 1, "shape")
    allowzero = ctx.attrs["allowzero"]
    if allowzero and 0 in target and -1 in target:
        raise ctx.error("allowzero=1 forbids a shape with both 0 and -1")
    out: list = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(data):
                raise ctx.error(f"shape entry {i} is 0 (copy) but the input has rank {len(data)}")
            d = data[i]
        elif isinstance(d, int) and d < -1:
            raise ctx.error(f"shape entry {d} is invalid")
        out.append(d)
    if out.count(-1) > 1:
        raise ctx.error(f"shape {target} has more than one -1")
    if -1 in out:
        k = out.index(-1)
        out[k] = divide_out(ctx, data, out[:k] + out[k + 1:])
    elif all(isinstance(d, int) for d in list(data) + out) and (
            int(np.prod(data, dtype=np.int64)) != int(np.prod(out, dtype=np.int64))):
        raise ctx.error(f"cannot reshape {list(data)} into {out}")
    return [(ctx.dtype(0), fill_unknown(ctx, out))]


@register("Reshape", inputs=["data", "shape"], outputs=["reshaped"], attrs={"allowzero": 0},
          infer=_reshape_infer)
def reshape(data, shape, allowzero):
    """Reshape: 0 copies the input dim (unless allowzero), -1 takes what is left."""
    dims = _ints(shape)
    if not allowzero:
        dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return data.reshape(dims)


def _flatten_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    axis = _flatten_axis(ctx, ctx.attrs["axis"], len(shape))
    dims = [product(ctx, shape[:axis]), product(ctx, shape[axis:])]
    return [(ctx.dtype(0), fill_unknown(ctx, dims))]


def _flatten_axis(ctx: InferContext | None, axis: int, rank: int) -> int:
    if not -rank <= axis <= rank:
        msg = f"axis {axis} is out of range for rank {rank}"
        raise ctx.error(msg) if ctx else ValueError(msg)
    return axis + rank if axis < 0 else axis


@register("Flatten", inputs=["input"], outputs=["output"], attrs={"axis": 1}, infer=_flatten_infer)
def flatten(x, axis):
    """Flatten: 2-D, the dims before ``axis`` times the dims from it."""
    axis = _flatten_axis(None, axis, x.ndim)
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), int(np.prod(x.shape[axis:], dtype=np.int64)))


def _perm(ctx: InferContext | None, perm, rank: int) -> list[int]:
    if perm is None:
        return list(range(rank))[::-1]
    p = _ints(perm)
    if sorted(p) != list(range(rank)):
        msg = f"perm {p} is not a permutation of {rank} axes"
        raise ctx.error(msg) if ctx else ValueError(msg)
    return p


def _transpose_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    return [(ctx.dtype(0), tuple(shape[i] for i in _perm(ctx, ctx.attrs["perm"], len(shape))))]


@register("Transpose", inputs=["data"], outputs=["transposed"], attrs={"perm": None},
          infer=_transpose_infer)
def transpose(x, perm):
    """Transpose: no perm reverses the axes."""
    return np.transpose(x, _perm(None, perm, x.ndim))


# ------------------------------------------------------------------------------ Squeeze/Unsqueeze
def _squeeze_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    if not ctx.has(1):
        if any(isinstance(d, str) for d in shape):
            raise ctx.error(f"Squeeze without axes on {list(shape)}: whether the symbolic dims are 1 is "
                            "only known at run time, so the output rank is unknown")
        return [(ctx.dtype(0), tuple(d for d in shape if d != 1))]
    axes = ctx.value(1)
    if axes is None:
        return [(ctx.dtype(0), fill_unknown(ctx, [None] * (len(shape) - _length_of(ctx, 1, "axes"))))]
    axes = _axes(ctx, axes, len(shape))
    for a in axes:
        if isinstance(shape[a], int) and shape[a] != 1:
            raise ctx.error(f"cannot squeeze axis {a} of size {shape[a]}")
    return [(ctx.dtype(0), tuple(d for i, d in enumerate(shape) if i not in axes))]


@register("Squeeze", inputs=["data", "axes?"], outputs=["squeezed"], infer=_squeeze_infer)
def squeeze(x, axes=None):
    """Squeeze: removes the given size-1 axes, or every size-1 axis."""
    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(_axes(None, axes, x.ndim)))


def _unsqueeze_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    axes = ctx.value(1)
    if axes is None:
        return [(ctx.dtype(0), fill_unknown(ctx, [None] * (len(shape) + _length_of(ctx, 1, "axes"))))]
    rank = len(shape) + len(_ints(axes))
    axes = _axes(ctx, axes, rank)
    rest = iter(shape)
    return [(ctx.dtype(0), tuple(1 if i in axes else next(rest) for i in range(rank)))]


@register("Unsqueeze", inputs=["data", "axes"], outputs=["expanded"], infer=_unsqueeze_infer)
def unsqueeze(x, axes):
    """Unsqueeze: inserts size-1 axes at positions of the output."""
    return np.expand_dims(x, tuple(_axes(None, axes, x.ndim + len(_ints(axes)))))


# ---------------------------------------------------------------------------------- Concat/Split
def _concat_infer(ctx: InferContext) -> list[TensorType]:
    shapes = [ctx.shape(i) for i in range(ctx.n_inputs)]
    dt = ctx.dtype(0)
    rank = len(shapes[0])
    axis = _axes(ctx, [ctx.attrs["axis"]], rank)[0]
    for i, s in enumerate(shapes):
        if len(s) != rank:
            raise ctx.error(f"input {i} has rank {len(s)}, input 0 has rank {rank}")
        if ctx.dtype(i) != dt:
            raise ctx.error(f"input {i} is {ctx.dtype(i)}, input 0 is {dt}")
    out = list(shapes[0])
    for k in range(rank):
        if k == axis:
            out[k] = total([s[k] for s in shapes])
        else:
            for s in shapes[1:]:
                out[k] = merge(ctx, out[k], s[k], f"Concat axis {k}")
    return [(dt, fill_unknown(ctx, out))]


@register("Concat", inputs=["inputs*"], outputs=["concat_result"], attrs={"axis": REQUIRED},
          infer=_concat_infer)
def concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


def even_split(dim: int, n: int) -> list[int]:
    """num_outputs split (opset 18): equal chunks of ceil(dim/n), the last one smaller."""
    chunk = -(-dim // n)
    last = dim - chunk * (n - 1)
    if last < 0:
        raise ValueError(f"cannot split a dimension of {dim} into {n} parts of {chunk}")
    return [chunk] * (n - 1) + [last]


def _split_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    axis = _axes(ctx, [ctx.attrs["axis"]], len(shape))[0]
    n, dim = ctx.n_outputs, shape[axis]
    if ctx.has(1):
        split = ctx.value(1)
        sizes = [None] * n if split is None else _ints(split)
        if len(sizes) != n:
            raise ctx.error(f"split has {len(sizes)} entries for {n} outputs")
        if isinstance(dim, int) and split is not None and sum(sizes) != dim:
            raise ctx.error(f"split {sizes} does not add up to the axis size {dim}")
    elif isinstance(dim, int):
        try:
            sizes = even_split(dim, n)
        except ValueError as e:
            raise ctx.error(str(e)) from None
    else:
        sizes = [dim] if n == 1 else [None] * n
    types = []
    for j, size in enumerate(sizes):
        dims = list(shape)
        dims[axis] = size
        types.append((ctx.dtype(0), fill_unknown(ctx, dims, out=j)))
    return types


@register("Split", inputs=["input", "split?"], outputs=["outputs*"], attrs={"axis": 0},
          infer=_split_infer, pass_num_outputs=True)
def split(x, split=None, axis=0, num_outputs=1):
    """Split: sizes from ``split``, else as many parts as the node has outputs (the last smaller)."""
    axis = _axes(None, [axis], x.ndim)[0]
    sizes = _ints(split) if split is not None else even_split(x.shape[axis], num_outputs)
    if sum(sizes) != x.shape[axis] or min(sizes, default=0) < 0:
        raise ValueError(f"split {sizes} does not fit an axis of size {x.shape[axis]}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


# ------------------------------------------------------------------------------------------ Slice
def _slice_params(ctx: InferContext | None, rank: int, starts, ends, axes, steps) -> list[tuple]:
    """(axis, start, end, step) per sliced axis, validated."""
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else _axes(ctx, axes, rank)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        msg = "starts, ends, axes and steps differ in length"
        raise ctx.error(msg) if ctx else ValueError(msg)
    if 0 in steps:
        msg = "a slice step is 0"
        raise ctx.error(msg) if ctx else ValueError(msg)
    return list(zip(axes, starts, ends, steps))


def _axis_slice(dim: int, start: int, end: int, step: int) -> slice:
    """ONNX clamping: indices count from the end when negative, then clamp to the axis."""
    if step > 0:
        return slice(clamp_index(start, dim, 0, dim), clamp_index(end, dim, 0, dim), step)
    s = clamp_index(start, dim, 0, dim - 1)
    e = clamp_index(end, dim, -1, dim - 1)
    return slice(s, None if e < 0 else e, step)


def _sliced_dim(dim, start: int, end: int, step: int):
    if isinstance(dim, int):
        return len(range(dim)[_axis_slice(dim, start, end, step)]) if dim else 0
    if step == 1 and (start == 0 or start <= -BIG) and end >= BIG:
        return dim
    if step == -1 and (start >= BIG or start == -1) and end <= -BIG:
        return dim
    return None


def _slice_infer(ctx: InferContext) -> list[TensorType]:
    shape = list(ctx.shape(0))
    vals = [ctx.value(i) if ctx.has(i) else None for i in range(1, 5)]
    if ctx.has(3) and vals[2] is None:
        return [(ctx.dtype(0), fill_unknown(ctx, [None] * len(shape)))]
    if vals[0] is None or vals[1] is None or (ctx.has(4) and vals[3] is None):
        n = _length_of(ctx, 1, "starts")
        axes = list(range(n)) if vals[2] is None else _axes(ctx, vals[2], len(shape))
        for a in axes:
            shape[a] = None
        return [(ctx.dtype(0), fill_unknown(ctx, shape))]
    for axis, start, end, step in _slice_params(ctx, len(shape), *vals):
        shape[axis] = _sliced_dim(shape[axis], start, end, step)
    return [(ctx.dtype(0), fill_unknown(ctx, shape))]


@register("Slice", inputs=["data", "starts", "ends", "axes?", "steps?"], outputs=["output"],
          infer=_slice_infer)
def slice_(x, starts, ends, axes=None, steps=None):
    """Slice: per-axis start/end/step with ONNX clamping (negative steps walk backwards)."""
    index = [slice(None)] * x.ndim
    for axis, start, end, step in _slice_params(None, x.ndim, starts, ends, axes, steps):
        index[axis] = _axis_slice(x.shape[axis], start, end, step)
    return x[tuple(index)]


# -------------------------------------------------------------------------------------------- Pad
PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}
"""ONNX pad mode -> numpy.pad mode."""


def pad_widths(ctx: InferContext | None, rank: int, pads, axes) -> list[tuple[int, int]]:
    pads = _ints(pads)
    axes = list(range(rank)) if axes is None else _axes(ctx, axes, rank)
    if len(pads) != 2 * len(axes):
        msg = f"{len(pads)} pads for {len(axes)} axes (expected {2 * len(axes)})"
        raise ctx.error(msg) if ctx else ValueError(msg)
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + len(axes)])
    return widths


def _pad_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.attrs["mode"] not in PAD_MODES:
        raise ctx.error(f"pad mode {ctx.attrs['mode']!r} is not one of {sorted(PAD_MODES)}")
    shape = list(ctx.shape(0))
    pads, axes = ctx.value(1), ctx.value(3)
    if (ctx.has(3) and axes is None) or pads is None:
        unknown = range(len(shape)) if axes is None else _axes(ctx, axes, len(shape))
        for a in unknown:
            shape[a] = None
        return [(ctx.dtype(0), fill_unknown(ctx, shape))]
    for a, (b, e) in enumerate(pad_widths(ctx, len(shape), pads, axes)):
        d = shape[a]
        if isinstance(d, int):
            if d + b + e < 0:
                raise ctx.error(f"pads ({b}, {e}) remove more than the {d} elements of axis {a}")
            shape[a] = d + b + e
        elif b + e:
            shape[a] = None
    return [(ctx.dtype(0), fill_unknown(ctx, shape))]


@register("Pad", inputs=["data", "pads", "constant_value?", "axes?"], outputs=["output"],
          attrs={"mode": "constant"}, infer=_pad_infer)
def pad(x, pads, constant_value=None, axes=None, mode="constant"):
    """Pad: negative pads crop (applied first), then constant/reflect/edge/wrap padding."""
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode {mode!r} is not one of {sorted(PAD_MODES)}")
    widths = pad_widths(None, x.ndim, pads, axes)
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, widths))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        value = 0 if constant_value is None or constant_value.size == 0 else constant_value.reshape(-1)[0]
        return np.pad(x, widths, mode="constant", constant_values=np.asarray(value).astype(x.dtype))
    for axis, (d, (b, e)) in enumerate(zip(x.shape, widths)):
        if (b or e) and d == 0:
            raise ValueError(f"{mode} padding needs a non-empty axis (axis {axis} is empty)")
        if mode == "reflect" and max(b, e) > d - 1:
            raise ValueError(f"reflect padding of {max(b, e)} exceeds {d - 1}, the most axis {axis} "
                             f"of size {d} can mirror")
    return np.pad(x, widths, mode=PAD_MODES[mode])


# ------------------------------------------------------------------------------------ Tile/Expand
def _tile_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    reps = ctx.value(1)
    if reps is None:
        _length_of(ctx, 1, "repeats")
        return [(ctx.dtype(0), fill_unknown(ctx, [None] * len(shape)))]
    reps = _ints(reps)
    if len(reps) != len(shape):
        raise ctx.error(f"{len(reps)} repeats for rank {len(shape)}")
    dims = [d * r if isinstance(d, int) else (d if r == 1 else 0 if r == 0 else None)
            for d, r in zip(shape, reps)]
    return [(ctx.dtype(0), fill_unknown(ctx, dims))]


@register("Tile", inputs=["input", "repeats"], outputs=["output"], infer=_tile_infer)
def tile(x, repeats):
    reps = _ints(repeats)
    if len(reps) != x.ndim:
        raise ValueError(f"{len(reps)} repeats for rank {x.ndim}")
    return np.tile(x, reps)


def _expand_dim(ctx: InferContext, a, b):
    """One axis of Expand's bidirectional broadcast; b is the requested dim (None: unknown)."""
    if b is None:
        return a if isinstance(a, int) and a != 1 else None
    if a == 1 or a == b:
        return b
    if b == 1:
        return a
    if isinstance(a, int) and isinstance(b, int):
        raise ctx.error(f"cannot expand a dimension of {a} to {b}")
    return a if isinstance(a, int) else b if isinstance(b, int) else None


def _expand_infer(ctx: InferContext) -> list[TensorType]:
    shape = list(ctx.shape(0))
    target = shape_value(ctx, 1)
    if target is None:
        target = [None] * _length_of(ctx, 1, "shape")
    rank = max(len(shape), len(target))
    a = [1] * (rank - len(shape)) + shape
    b = [1] * (rank - len(target)) + list(target)
    return [(ctx.dtype(0), fill_unknown(ctx, [_expand_dim(ctx, x, y) for x, y in zip(a, b)]))]


@register("Expand", inputs=["input", "shape"], outputs=["output"], infer=_expand_infer)
def expand(x, shape):
    """Expand: numpy broadcasting of the input with the given shape (either side may be 1)."""
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(shape)))).copy()


# ------------------------------------------------------------------------- Identity/Dropout/Shape
@register("Identity", inputs=["input"], outputs=["output"], infer=same_as(0))
def identity(x):
    return x


def _dropout_infer(ctx: InferContext) -> list[TensorType]:
    training, ratio = ctx.value(2), ctx.value(1)
    if training is not None and bool(np.asarray(training).reshape(-1)[0]) and (
            ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0.0):
        raise ctx.error("Dropout in training mode is random; only inference (training_mode=false or "
                        "ratio 0) is supported")
    return [(ctx.dtype(0), ctx.shape(0)), (BOOL, ctx.shape(0))]


@register("Dropout", inputs=["data", "ratio?", "training_mode?"], outputs=["output", "mask?"],
          attrs={"seed": None}, infer=_dropout_infer)
def dropout(x, ratio=None, training_mode=None, seed=None):
    """Dropout at inference: the input unchanged and an all-true mask. Training mode is refused."""
    if training_mode is not None and bool(training_mode.reshape(-1)[0]) and (
            ratio is not None and float(ratio.reshape(-1)[0]) != 0.0):
        raise ValueError("Dropout in training mode is random and not supported")
    return x, np.ones(x.shape, dtype=bool)


def _shape_bounds(rank: int, start: int, end: int | None) -> tuple[int, int]:
    s = clamp_index(start, rank, 0, rank)
    e = rank if end is None else clamp_index(end, rank, 0, rank)
    return s, max(s, e)


def _shape_infer(ctx: InferContext) -> list[TensorType]:
    s, e = _shape_bounds(ctx.rank(0), ctx.attrs["start"], ctx.attrs["end"])
    return [(INT64, (e - s,))]


@register("Shape", inputs=["data"], outputs=["shape"], attrs={"start": 0, "end": None},
          infer=_shape_infer)
def shape(x, start, end):
    """Shape: the input's dims ``start:end`` (clamped to the rank) as int64."""
    s, e = _shape_bounds(x.ndim, start, end)
    return np.array(x.shape[s:e], dtype=np.int64)


@register("Size", inputs=["data"], outputs=["size"], infer=lambda ctx: [(INT64, ())])
def size(x):
    return np.array(x.size, dtype=np.int64)

