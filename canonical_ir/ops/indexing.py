"""Indexing ops: gathers, scatters, masks and reorderings driven by index or condition tensors.

Semantics are those of the newest ONNX version of each op; negative indices count from the end and
out-of-range indices raise (never wrap silently). Registered by importing ``shape_ops``.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.ops.dims import fill_unknown
from convertkit.canonical_ir.ops.registry import InferContext, TensorType, register, same_as

INT64 = np.dtype(np.int64)

REDUCTIONS = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
"""Scatter reduction attribute -> the numpy ufunc whose ``.at`` applies it (unbuffered)."""


def _axis(ctx: InferContext | None, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        msg = f"axis {axis} is out of range for rank {rank}"
        raise ctx.error(msg) if ctx else ValueError(msg)
    return axis % rank


def _normalize(indices: np.ndarray, dims) -> np.ndarray:
    """Indices with negatives counted from the end; any outside [-dim, dim) raises."""
    idx = indices.astype(np.int64, copy=False)
    dims = np.asarray(dims, dtype=np.int64)
    if ((idx < -dims) | (idx >= dims)).any():
        bad = idx[(idx < -dims) | (idx >= dims)].reshape(-1)[0]
        raise IndexError(f"index {bad} is out of range for dimension(s) {dims.tolist()}")
    return np.where(idx < 0, idx + dims, idx)


# ----------------------------------------------------------------------------------------- gathers
def _gather_infer(ctx: InferContext) -> list[TensorType]:
    data = ctx.shape(0)
    axis = _axis(ctx, ctx.attrs["axis"], len(data))
    return [(ctx.dtype(0), tuple(data[:axis]) + tuple(ctx.shape(1)) + tuple(data[axis + 1:]))]


@register("Gather", inputs=["data", "indices"], outputs=["output"], attrs={"axis": 0}, infer=_gather_infer)
def gather(data, indices, axis):
    axis = _axis(None, axis, data.ndim)
    return np.take(data, _normalize(indices, data.shape[axis]), axis=axis)


def _gather_elements_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.rank(1) != ctx.rank(0):
        raise ctx.error(f"indices have rank {ctx.rank(1)}, data rank {ctx.rank(0)}")
    _axis(ctx, ctx.attrs["axis"], ctx.rank(0))
    return [(ctx.dtype(0), ctx.shape(1))]


@register("GatherElements", inputs=["data", "indices"], outputs=["output"], attrs={"axis": 0},
          infer=_gather_elements_infer)
def gather_elements(data, indices, axis):
    """GatherElements: out[i][j][k] = data[index][j][k] (axis 0); indices may be smaller than data
    in every dim, which numpy's take_along_axis does not allow."""
    axis = _axis(None, axis, data.ndim)
    if indices.ndim != data.ndim:
        raise ValueError(f"indices have rank {indices.ndim}, data rank {data.ndim}")
    return data[_element_index(indices, data.shape, axis)]


def _element_index(indices: np.ndarray, shape: tuple, axis: int) -> tuple:
    """Full index tuple: each element's own position, with the ``axis`` coordinate from indices."""
    grid = np.indices(indices.shape, sparse=True)
    return tuple(_normalize(indices, shape[axis]) if a == axis else grid[a] for a in range(len(shape)))


def _gather_nd_infer(ctx: InferContext) -> list[TensorType]:
    data, idx, b = ctx.shape(0), ctx.shape(1), ctx.attrs["batch_dims"]
    k = idx[-1] if idx else None
    if not isinstance(k, int):
        raise ctx.error(f"the last dim of indices {list(idx)} must be static: it sets the output rank")
    if b + k > len(data) or b >= len(idx):
        raise ctx.error(f"batch_dims={b} and index depth {k} do not fit data rank {len(data)}")
    return [(ctx.dtype(0), tuple(idx[:-1]) + tuple(data[b + k:]))]


@register("GatherND", inputs=["data", "indices"], outputs=["output"], attrs={"batch_dims": 0},
          infer=_gather_nd_infer)
def gather_nd(data, indices, batch_dims):
    """GatherND: index tuples of depth k over the dims after ``batch_dims`` batch dims."""
    b, k = batch_dims, indices.shape[-1]
    if data.shape[:b] != indices.shape[:b]:
        raise ValueError(f"batch dims of data {data.shape[:b]} and indices {indices.shape[:b]} differ")
    nb = int(np.prod(data.shape[:b], dtype=np.int64))
    m = int(np.prod(indices.shape[b:-1], dtype=np.int64))
    idx = _normalize(indices.reshape(nb, m, k), data.shape[b:b + k])
    flat = data.reshape((nb,) + data.shape[b:])
    batch = np.broadcast_to(np.arange(nb)[:, None], (nb, m))
    out = flat[(batch,) + tuple(idx[..., j] for j in range(k))]
    return out.reshape(indices.shape[:-1] + data.shape[b + k:])


# ---------------------------------------------------------------------------------------- scatters
def _scatter_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.attrs["reduction"] not in REDUCTIONS:
        raise ctx.error(f"reduction {ctx.attrs['reduction']!r} is not one of {sorted(REDUCTIONS)}")
    if ctx.dtype(2) != ctx.dtype(0):
        raise ctx.error(f"updates are {ctx.dtype(2)}, data is {ctx.dtype(0)}")
    return [(ctx.dtype(0), ctx.shape(0))]


def _apply(out: np.ndarray, index: tuple, updates: np.ndarray, reduction: str) -> np.ndarray:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction {reduction!r} is not one of {sorted(REDUCTIONS)}")
    fn = REDUCTIONS[reduction]
    if fn is None:
        out[index] = updates
    else:
        fn.at(out, index, updates)
    return out


@register("ScatterElements", inputs=["data", "indices", "updates"], outputs=["output"],
          attrs={"axis": 0, "reduction": "none"}, infer=_scatter_infer)
def scatter_elements(data, indices, updates, axis, reduction):
    """ScatterElements: data with updates written (or reduced) at indices along ``axis``."""
    axis = _axis(None, axis, data.ndim)
    if indices.shape != updates.shape or indices.ndim != data.ndim:
        raise ValueError(f"indices {indices.shape} and updates {updates.shape} must match, of data's rank")
    return _apply(data.copy(), _element_index(indices, data.shape, axis), updates, reduction)


@register("ScatterND", inputs=["data", "indices", "updates"], outputs=["output"],
          attrs={"reduction": "none"}, infer=_scatter_infer)
def scatter_nd(data, indices, updates, reduction):
    """ScatterND: data with slices at index tuples of depth k replaced (or reduced) by updates."""
    k = indices.shape[-1]
    want = indices.shape[:-1] + data.shape[k:]
    if updates.shape != want:
        raise ValueError(f"updates have shape {updates.shape}, expected {want}")
    idx = _normalize(indices.reshape(-1, k), data.shape[:k])
    upd = updates.reshape((-1,) + data.shape[k:])
    return _apply(data.copy(), tuple(idx[:, j] for j in range(k)), upd, reduction)


# ------------------------------------------------------------------------------- masks, reorders
def _compress_infer(ctx: InferContext) -> list[TensorType]:
    cond = ctx.value(1)
    shape, axis = list(ctx.shape(0)), ctx.attrs["axis"]
    if axis is not None:
        axis = _axis(ctx, axis, len(shape))
    n = None if cond is None else int(np.count_nonzero(np.asarray(cond).reshape(-1)[:_limit(shape, axis)]))
    if axis is None:
        return [(ctx.dtype(0), fill_unknown(ctx, [n]))]
    shape[axis] = n
    return [(ctx.dtype(0), fill_unknown(ctx, shape))]


def _limit(shape, axis) -> int | None:
    d = shape[axis] if axis is not None else (int(np.prod(shape)) if all(isinstance(s, int) for s in shape)
                                              else None)
    return d if isinstance(d, int) else None


@register("Compress", inputs=["input", "condition"], outputs=["output"], attrs={"axis": None},
          infer=_compress_infer)
def compress(x, condition, axis):
    """Compress: the slices where condition is true (a short condition means false for the rest)."""
    if axis is not None:
        axis = _axis(None, axis, x.ndim)
    return np.compress(condition.reshape(-1).astype(bool), x, axis=axis)


def _nonzero_infer(ctx: InferContext) -> list[TensorType]:
    return [(INT64, fill_unknown(ctx, [max(ctx.rank(0), 1), None]))]


@register("NonZero", inputs=["X"], outputs=["Y"], infer=_nonzero_infer)
def nonzero(x):
    """NonZero: (rank, count) indices of non-zero elements. A 0-D input counts as 1-D, as
    onnxruntime does (the ONNX reference returns a (0, count) tensor instead)."""
    return np.array(np.nonzero(np.atleast_1d(x)), dtype=np.int64).reshape(max(x.ndim, 1), -1)


def _trilu_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.rank(0) < 2:
        raise ctx.error(f"Trilu needs rank >= 2, got {ctx.rank(0)}")
    return same_as(0)(ctx)


@register("Trilu", inputs=["input", "k?"], outputs=["output"], attrs={"upper": 1}, infer=_trilu_infer)
def trilu(x, k=None, upper=1):
    """Trilu: keeps the upper (or lower) triangle of the last two dims, from diagonal k."""
    kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    return np.triu(x, kk) if upper else np.tril(x, kk)


def _reverse_sequence_infer(ctx: InferContext) -> list[TensorType]:
    r = ctx.rank(0)
    if r < 2:
        raise ctx.error(f"ReverseSequence needs rank >= 2, got {r}")
    b, t = _axis(ctx, ctx.attrs["batch_axis"], r), _axis(ctx, ctx.attrs["time_axis"], r)
    if b == t or b > 1 or t > 1:
        raise ctx.error(f"batch_axis {b} and time_axis {t} must be 0 and 1 in some order")
    return same_as(0)(ctx)


@register("ReverseSequence", inputs=["input", "sequence_lens"], outputs=["Y"],
          attrs={"batch_axis": 1, "time_axis": 0}, infer=_reverse_sequence_infer)
def reverse_sequence(x, sequence_lens, batch_axis, time_axis):
    """ReverseSequence: reverses the first ``sequence_lens[b]`` time steps of each batch entry."""
    steps = x.shape[time_axis]
    lens = sequence_lens.astype(np.int64).reshape(-1)
    if lens.shape[0] != x.shape[batch_axis] or (lens > steps).any() or (lens < 0).any():
        raise ValueError(f"sequence_lens {lens.tolist()} do not fit {x.shape[batch_axis]} batches of "
                         f"{steps} steps")
    t = np.arange(steps)[:, None]
    src = np.where(t < lens[None, :], lens[None, :] - 1 - t, t)  # [time, batch]
    if batch_axis < time_axis:
        src = src.T
    src = src.reshape(src.shape + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, np.broadcast_to(src, x.shape), axis=time_axis)
