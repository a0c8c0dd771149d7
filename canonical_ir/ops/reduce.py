"""Reductions (Reduce*, ArgMax/ArgMin), TopK and cumulative ops (CumSum, CumProd).

Reduce* follow the newest ONNX form: ``axes`` is an optional second input (frontends turn the older
attribute into a constant), ``keepdims`` keeps reduced axes as size 1, and an empty or absent ``axes``
reduces everything unless ``noop_with_empty_axes`` is set (then no axis is reduced). Results keep the
input's dtype; integer arithmetic is exact, float sums accumulate in the input's precision (float16 in
float32) as onnxruntime does.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from convertkit.canonical_ir.ops.registry import InferContext, TensorType, normalize_axis, register, same_as

INT64 = np.dtype(np.int64)


# ------------------------------------------------------------------------------------- helpers
def stable_dims(ctx: InferContext, out: int, dims: list) -> tuple:
    """``dims`` with each None replaced by a symbolic dim.

    A dim an earlier inference of this output already named is reused, so re-running inference on an
    unchanged graph changes nothing (``ctx.new_dim`` alone would mint a new name every time).
    """
    prev = ctx.graph.tensor(ctx.graph.outputs_of(ctx.node)[out]).shape
    same_rank = prev is not None and len(prev) == len(dims)
    return tuple(
        d if d is not None else
        (prev[i] if same_rank and isinstance(prev[i], str) else ctx.new_dim())
        for i, d in enumerate(dims))


def _axes_list(axes: np.ndarray | None) -> list[int]:
    return [] if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]


def _reduce_infer(ctx: InferContext) -> list[TensorType]:
    dt, shape = ctx.dtype(0), ctx.shape(0)
    keepdims, noop = ctx.attrs["keepdims"], ctx.attrs["noop_with_empty_axes"]
    rank = len(shape)
    if ctx.has(1) and ctx.value(1) is None:
        # axes known only at run time: the rank follows from keepdims and the number of axes
        if keepdims:
            return [(dt, stable_dims(ctx, 0, [1 if d == 1 else None for d in shape]))]
        n_axes = ctx.shape(1)
        if len(n_axes) != 1 or not isinstance(n_axes[0], int):
            raise ctx.error("keepdims=0 with run-time axes of unknown length: the output rank is unknown")
        if n_axes[0] == 0 and noop:
            return [(dt, shape)]
        out_rank = rank - n_axes[0] if n_axes[0] else 0
        return [(dt, stable_dims(ctx, 0, [None] * out_rank))]
    axes = _axes_list(ctx.value(1))
    if not axes:
        if noop:
            return [(dt, shape)]
        axes = list(range(rank))
    axes_set = {normalize_axis(a, rank, ctx) for a in axes}
    out = [1 if i in axes_set else d for i, d in enumerate(shape) if keepdims or i not in axes_set]
    return [(dt, tuple(out))]


def _lowest(dt: np.dtype):
    if dt.kind == "b":
        return False
    return -np.inf if dt.kind == "f" else np.iinfo(dt).min


def _highest(dt: np.dtype):
    if dt.kind == "b":
        return True
    return np.inf if dt.kind == "f" else np.iinfo(dt).max


def _acc(dt: np.dtype) -> np.dtype:
    """Accumulator dtype: float16 sums run in float32 (as onnxruntime's do), others in their own."""
    return np.dtype(np.float32) if dt == np.float16 else dt


def _mean(x: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    if x.dtype.kind in "iu":  # exact integer sum, then division truncating toward zero
        s = np.sum(x, axis=axes, keepdims=keepdims, dtype=np.int64)
        n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        q = np.abs(s) // max(n, 1)
        return (np.sign(s) * q).astype(x.dtype)
    return np.mean(x, axis=axes, keepdims=keepdims, dtype=_acc(x.dtype))


def _float_op(fn: Callable[[np.ndarray, tuple, bool], np.ndarray]):
    """Evaluate in floating point (float32 for float16, float64 for integers), cast back to the input's."""
    def run(x: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
        xf = x.astype(_acc(x.dtype)) if x.dtype.kind == "f" else x.astype(np.float64)
        return fn(xf, axes, keepdims).astype(x.dtype)
    return run


def _log_sum_exp(x: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """Max-shifted, as onnxruntime computes it, so large inputs do not overflow."""
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axes, keepdims=keepdims))
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros_like(m))
    s = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axes)


_REDUCERS: dict[str, Callable[[np.ndarray, tuple, bool], np.ndarray]] = {
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k, dtype=_acc(x.dtype)),
    "ReduceMean": _mean,
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_highest(x.dtype)),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=_acc(x.dtype)),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k, dtype=_acc(x.dtype)),
    "ReduceL2": _float_op(lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k))),
    "ReduceSumSquare": lambda x, a, k: np.sum(np.square(x, dtype=_acc(x.dtype)), axis=a, keepdims=k),
    "ReduceLogSum": _float_op(lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k))),
    "ReduceLogSumExp": _float_op(_log_sum_exp),
}
"""How each Reduce* combines the values of one reduced group."""


def _reduce_kernel(name: str, fn: Callable[[np.ndarray, tuple, bool], np.ndarray]) -> None:
    def kernel(data, axes=None, *, keepdims, noop_with_empty_axes):
        ax = _axes_list(axes)
        if not ax and not noop_with_empty_axes:
            ax = list(range(data.ndim))
        norm = tuple(sorted({normalize_axis(a, data.ndim) for a in ax})) if data.ndim else ()
        with np.errstate(all="ignore"):
            return np.asarray(fn(data, norm, bool(keepdims))).astype(data.dtype, copy=False)
    kernel.__name__ = name.lower()
    kernel.__doc__ = (f"{name}: over ``axes`` (input 1; absent or empty = all axes). With "
                      "noop_with_empty_axes, empty axes reduce over no axis: every element is its own group, "
                      "so the op's elementwise part still applies (ReduceL1 gives |x|), as in onnxruntime. "
                      "An empty group gives the reduction's identity element.")
    register(name, inputs=["data", "axes?"], outputs=["reduced"],
             attrs={"keepdims": 1, "noop_with_empty_axes": 0}, infer=_reduce_infer)(kernel)


for _name, _fn in _REDUCERS.items():
    _reduce_kernel(_name, _fn)


# ------------------------------------------------------------------------------ ArgMax/ArgMin
def _arg_infer(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    axis = normalize_axis(ctx.attrs["axis"], len(shape), ctx)
    out = [1 if i == axis else d for i, d in enumerate(shape) if ctx.attrs["keepdims"] or i != axis]
    return [(INT64, tuple(out))]


def _arg(fn: Callable, data: np.ndarray, axis: int, keepdims: int, select_last_index: int) -> np.ndarray:
    axis = normalize_axis(axis, data.ndim)
    if select_last_index:
        idx = data.shape[axis] - 1 - fn(np.flip(data, axis), axis=axis)
    else:
        idx = fn(data, axis=axis)
    idx = np.asarray(idx, dtype=np.int64)
    return np.expand_dims(idx, axis) if keepdims else idx


_ARG_ATTRS = {"axis": 0, "keepdims": 1, "select_last_index": 0}


@register("ArgMax", inputs=["data"], outputs=["reduced"], attrs=_ARG_ATTRS, infer=_arg_infer)
def arg_max(data, axis, keepdims, select_last_index):
    """ArgMax: index of the first maximum (the last with select_last_index), as int64."""
    return _arg(np.argmax, data, axis, keepdims, select_last_index)


@register("ArgMin", inputs=["data"], outputs=["reduced"], attrs=_ARG_ATTRS, infer=_arg_infer)
def arg_min(data, axis, keepdims, select_last_index):
    """ArgMin: index of the first minimum (the last with select_last_index), as int64."""
    return _arg(np.argmin, data, axis, keepdims, select_last_index)


# ------------------------------------------------------------------------------------- TopK
def _topk_infer(ctx: InferContext) -> list[TensorType]:
    shape = list(ctx.shape(0))
    axis = normalize_axis(ctx.attrs["axis"], len(shape), ctx)
    k = ctx.value(1)
    if k is not None:
        k = int(np.asarray(k).reshape(-1)[0])
        if k < 0 or (isinstance(shape[axis], int) and k > shape[axis]):
            raise ctx.error(f"K={k} is out of range for axis {axis} of size {shape[axis]}")
    shape[axis] = k
    dims = stable_dims(ctx, 0, shape)
    return [(ctx.dtype(0), dims), (INT64, dims)]


@register("TopK", inputs=["X", "K"], outputs=["Values", "Indices"],
          attrs={"axis": -1, "largest": 1, "sorted": 1}, infer=_topk_infer)
def top_k(x, k, axis, largest, sorted):
    """TopK: the K largest (or smallest) values along ``axis`` and their int64 indices.

    Always returned sorted (allowed for sorted=0 too); equal values keep the lower index first, as
    onnxruntime orders them.
    """
    axis = normalize_axis(axis, x.ndim)
    k = int(np.asarray(k).reshape(-1)[0])
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"K={k} is out of range for axis {axis} of size {x.shape[axis]}")
    if largest:
        # a stable ascending sort of the reversed axis, reversed again: descending, ties by index
        n = x.shape[axis]
        order = np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
        order = n - 1 - order
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis).astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis), idx


# ------------------------------------------------------------------------------ CumSum/CumProd
def _cumulative(fn: Callable, identity: int, x: np.ndarray, axis: np.ndarray, exclusive: int,
                reverse: int) -> np.ndarray:
    ax = normalize_axis(int(np.asarray(axis).reshape(-1)[0]), x.ndim)
    y = np.flip(x, ax) if reverse else x
    out = fn(y, axis=ax, dtype=x.dtype)
    if exclusive and out.shape[ax]:
        pad = np.full_like(np.take(out, [0], axis=ax), identity)
        out = np.concatenate([pad, np.take(out, np.arange(out.shape[ax] - 1), axis=ax)], axis=ax)
    return np.flip(out, ax) if reverse else out


_CUM_ATTRS = {"exclusive": 0, "reverse": 0}


@register("CumSum", inputs=["x", "axis"], outputs=["y"], attrs=_CUM_ATTRS, infer=same_as(0))
def cum_sum(x, axis, exclusive, reverse):
    """CumSum: running sum along the axis given as a scalar input (exclusive shifts in a 0)."""
    with np.errstate(all="ignore"):
        return _cumulative(np.cumsum, 0, x, axis, exclusive, reverse)


@register("CumProd", inputs=["x", "axis"], outputs=["y"], attrs=_CUM_ATTRS, infer=same_as(0))
def cum_prod(x, axis, exclusive, reverse):
    """CumProd: running product along the axis given as a scalar input (exclusive shifts in a 1)."""
    with np.errstate(all="ignore"):
        return _cumulative(np.cumprod, 1, x, axis, exclusive, reverse)
