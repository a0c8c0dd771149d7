"""Type conversion and tensor-generating ops: Cast, CastLike, ConstantOfShape, Range, EyeLike, OneHot,
Unique.

Dtype attributes (Cast ``to``, EyeLike ``dtype``) hold numpy dtype names such as ``"float32"``, not
ONNX TensorProto codes: the IR is framework-neutral and frontends/backends translate. The random ops
(RandomNormal, Bernoulli, ...) are absent on purpose: no runtime reproduces another's random stream,
so they have no reference kernel that a test could check.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.ops.dims import fill_unknown, shape_value
from convertkit.canonical_ir.ops.registry import REQUIRED, InferContext, TensorType, register

INT64 = np.dtype(np.int64)


def ir_dtype(ctx: InferContext | None, name) -> np.dtype:
    """The IR dtype a dtype attribute names; anything outside the IR's dtypes raises."""
    try:
        dt = np.dtype(name)
    except TypeError:
        dt = None
    if dt not in dtypes.ALL:
        msg = f"dtype {name!r} is not an IR dtype ({', '.join(d.name for d in dtypes.ALL)})"
        raise ctx.error(msg) if ctx else ValueError(msg)
    return dt


def _convert(x: np.ndarray, dt: np.dtype) -> np.ndarray:
    """x as dt. Float -> int truncates toward zero; out-of-range and NaN give what onnxruntime's
    static_cast gives on x86 (numpy's astype compiles to the same conversion instructions)."""
    with np.errstate(all="ignore"):
        return x.astype(dt)


# ------------------------------------------------------------------------------------------- Cast
@register("Cast", inputs=["input"], outputs=["output"], attrs={"to": REQUIRED, "saturate": 1},
          infer=lambda ctx: [(ir_dtype(ctx, ctx.attrs["to"]), ctx.shape(0))])
def cast(x, to, saturate=1):
    """Cast to the dtype named by ``to``. ``saturate`` only affects float8, which the IR lacks."""
    return _convert(x, ir_dtype(None, to))


@register("CastLike", inputs=["input", "target_type"], outputs=["output"], attrs={"saturate": 1},
          infer=lambda ctx: [(ctx.dtype(1), ctx.shape(0))])
def cast_like(x, target, saturate=1):
    """CastLike: Cast to the dtype of the second input (whose values are not used)."""
    return _convert(x, target.dtype)


# ------------------------------------------------------------------------------ ConstantOfShape
DEFAULT_FILL = np.zeros(1, dtype=np.float32)


def _fill_value(value) -> np.ndarray:
    v = DEFAULT_FILL if value is None else np.asarray(value)
    if v.size != 1:
        raise ValueError(f"ConstantOfShape value must have one element, got {v.size}")
    return v.reshape(1)


def _constant_of_shape_infer(ctx: InferContext) -> list[TensorType]:
    try:
        dt = _fill_value(ctx.attrs["value"]).dtype
    except ValueError as e:
        raise ctx.error(str(e)) from None
    dims = shape_value(ctx, 0)
    if dims is None:
        s = ctx.shape(0)
        if len(s) != 1 or not isinstance(s[0], int):
            raise ctx.error(f"the shape input has unknown length {list(s)}, so the output rank is unknown")
        dims = [None] * s[0]
    if any(isinstance(d, int) and d < 0 for d in dims):
        raise ctx.error(f"negative dimension in shape {dims}")
    return [(dt, fill_unknown(ctx, dims))]


@register("ConstantOfShape", inputs=["input"], outputs=["output"], attrs={"value": None},
          infer=_constant_of_shape_infer)
def constant_of_shape(shape, value=None):
    """ConstantOfShape: a tensor of the given shape filled with ``value`` (a one-element array;
    None means float32 zero)."""
    v = _fill_value(value)
    return np.full(tuple(int(d) for d in shape.reshape(-1)), v[0], dtype=v.dtype)


# ------------------------------------------------------------------------------------------ Range
def _range_length(start, limit, delta) -> int:
    """ceil((limit - start) / delta), the difference taken in the input type, as onnxruntime does."""
    with np.errstate(all="ignore"):
        diff = np.asarray(limit - start)
    if delta == 0:
        raise ValueError("Range delta is 0")
    return max(int(np.ceil(np.float64(diff) / np.float64(delta))), 0)


def _range_args(vals, stash_type: int) -> tuple:
    """Scalars start, limit, delta in the type Range computes in, and that type."""
    out_dt = np.asarray(vals[0]).dtype
    work = np.dtype(np.float32) if out_dt == np.float16 and stash_type == 1 else out_dt
    return tuple(np.asarray(v).reshape(()).astype(work) for v in vals) + (work,)


def _range_infer(ctx: InferContext) -> list[TensorType]:
    dt = ctx.dtype(0)
    for i in (1, 2):
        if ctx.dtype(i) != dt:
            raise ctx.error(f"input {i} is {ctx.dtype(i)}, start is {dt}")
    vals = [ctx.value(i) for i in range(3)]
    if any(v is None for v in vals):
        return [(dt, fill_unknown(ctx, [None]))]
    try:
        return [(dt, (_range_length(*_range_args(vals, ctx.attrs["stash_type"])[:3]),))]
    except ValueError as e:
        raise ctx.error(str(e)) from None


@register("Range", inputs=["start", "limit", "delta"], outputs=["output"], attrs={"stash_type": 1},
          infer=_range_infer)
def range_(start, limit, delta, stash_type=1):
    """Range: start, start+delta, ... below limit. Values accumulate (v += delta) as onnxruntime
    computes them (ONNX's formula start + i*delta differs in the last float bits); float16 works in
    float32 when stash_type is 1 (opset 27), else in float16."""
    out_dt = start.dtype
    start, limit, delta, work = _range_args((start, limit, delta), stash_type)
    n = _range_length(start, limit, delta)
    steps = np.full(n, delta, dtype=work)
    if n:
        steps[0] = start
    with np.errstate(all="ignore"):
        return np.add.accumulate(steps, dtype=work).astype(out_dt)


# ----------------------------------------------------------------------------------------- EyeLike
def _eye_like_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.rank(0) != 2:
        raise ctx.error(f"EyeLike needs a 2-D input, got rank {ctx.rank(0)}")
    dt = ctx.dtype(0) if ctx.attrs["dtype"] is None else ir_dtype(ctx, ctx.attrs["dtype"])
    return [(dt, ctx.shape(0))]


@register("EyeLike", inputs=["input"], outputs=["output"], attrs={"dtype": None, "k": 0},
          infer=_eye_like_infer)
def eye_like(x, dtype=None, k=0):
    """EyeLike: ones on diagonal k of a matrix shaped like the input (dtype: input's by default)."""
    return np.eye(x.shape[0], x.shape[1], k, dtype=x.dtype if dtype is None else ir_dtype(None, dtype))


# ------------------------------------------------------------------------------------------ OneHot
def _one_hot_infer(ctx: InferContext) -> list[TensorType]:
    shape = list(ctx.shape(0))
    axis = ctx.attrs["axis"]
    rank = len(shape) + 1
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for output rank {rank}")
    depth = ctx.value(1)
    shape.insert(axis % rank, None if depth is None else int(np.asarray(depth).reshape(-1)[0]))
    return [(ctx.dtype(2), fill_unknown(ctx, shape))]


@register("OneHot", inputs=["indices", "depth", "values"], outputs=["output"], attrs={"axis": -1},
          infer=_one_hot_infer)
def one_hot(indices, depth, values, axis=-1):
    """OneHot: values[1] where the index matches (negative indices count from depth), else values[0];
    indices outside [-depth, depth) give an all-off row."""
    d = int(np.asarray(depth).reshape(-1)[0])
    idx = indices.astype(np.int64) if indices.dtype.kind != "f" else np.trunc(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + d, idx)
    hot = idx[..., None] == np.arange(d)
    off, on = values.reshape(-1)[:2]
    return np.moveaxis(np.where(hot, on, off), -1, axis % (indices.ndim + 1))


# ------------------------------------------------------------------------------------------ Unique
def _unique_infer(ctx: InferContext) -> list[TensorType]:
    shape, axis = list(ctx.shape(0)), ctx.attrs["axis"]
    n = None
    if axis is None:
        y = [None]
        inverse = [int(np.prod(shape)) if all(isinstance(d, int) for d in shape) else None]
    else:
        if not -len(shape) <= axis < len(shape):
            raise ctx.error(f"axis {axis} is out of range for rank {len(shape)}")
        axis %= len(shape)
        inverse = [shape[axis]]
        y = list(shape)
        y[axis] = n
    y = fill_unknown(ctx, y, out=0)
    count = y[0 if axis is None else axis]
    return [(ctx.dtype(0), y), (INT64, (count,)), (INT64, fill_unknown(ctx, inverse, out=2)),
            (INT64, (count,))]


@register("Unique", inputs=["X"], outputs=["Y", "indices?", "inverse_indices?", "counts?"],
          attrs={"axis": None, "sorted": 1}, infer=_unique_infer)
def unique(x, axis=None, sorted=1):
    """Unique elements (or slices along ``axis``), sorted or in order of first occurrence, with the
    first-occurrence indices, the inverse mapping and the counts."""
    y, first, inverse, counts = np.unique(x if axis is not None else x.reshape(-1), return_index=True,
                                          return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)
