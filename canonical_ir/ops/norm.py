"""Normalization ops, with ONNX's newest semantics (inference form).

Statistics are computed in float64 and the results rounded once to the input's dtype. Where ONNX
defines two stages (LayerNormalization, GroupNormalization, RMSNormalization: normalize in the stash
type, then scale and shift in the input's type) the kernels round between the stages the same way,
so float16 inputs give what onnxruntime gives. BatchNormalization, InstanceNormalization and LRN are
spatial: their ``layout`` says whether channels are axis 1 (NCHW family) or the last axis (NHWC).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convertkit.canonical_ir.ops.registry import (
    REQUIRED, InferContext, TensorType, broadcast_shapes, layout_channel_axis, normalize_axis,
    register)

F64 = np.float64
EPS = float(np.float32(1e-5))
"""ONNX's default epsilon (1e-5 as a float32)."""

STASH_TYPES = {1: np.dtype(np.float32)}
"""stash_type (an ONNX TensorProto code) -> dtype of stage one and of LayerNormalization's statistics.
ONNX also allows bfloat16 (16), which the IR has no dtype for."""


# ------------------------------------------------------------------------------ inference
def _float_input(ctx: InferContext) -> np.dtype:
    dt = ctx.dtype(0)
    if dt.kind != "f":
        raise ctx.error(f"{ctx.schema.name} takes float input, got {dt}")
    return dt


def _channel_axis(ctx: InferContext) -> int:
    rank = ctx.rank(0)
    if rank < 2:
        raise ctx.error(f"{ctx.schema.name} needs an input of rank 2 or more, got rank {rank}")
    return layout_channel_axis(ctx.attrs.get("layout", "NCHW"), rank)


def _check_per_channel(ctx: InferContext, ports: Sequence[int], channels: int | str) -> None:
    """Inputs at ``ports`` must be float vectors of length ``channels``."""
    for i in ports:
        shape = ctx.shape(i)
        if ctx.dtype(i).kind != "f":
            raise ctx.error(f"input {i} ({ctx.schema.inputs[i]}) must be float, got {ctx.dtype(i)}")
        if len(shape) != 1 or (isinstance(shape[0], int) and isinstance(channels, int)
                               and shape[0] != channels):
            raise ctx.error(f"input {i} ({ctx.schema.inputs[i]}) must have shape [{channels}], "
                            f"got {list(shape)}")


def _per_channel_infer(ctx: InferContext) -> list[TensorType]:
    """BatchNormalization, InstanceNormalization: per-channel vectors, output like X."""
    dt = _float_input(ctx)
    shape = ctx.shape(0)
    _check_per_channel(ctx, range(1, ctx.n_inputs), shape[_channel_axis(ctx)])
    return [(dt, shape)]


def _stash_dtype(ctx: InferContext) -> np.dtype:
    stash = ctx.attrs["stash_type"]
    if stash not in STASH_TYPES:
        raise ctx.error(f"stash_type={stash} is not supported (only 1, float32)")
    return STASH_TYPES[stash]


def _check_onto(ctx: InferContext, port: int, target: tuple) -> None:
    """Input ``port`` must broadcast one way onto ``target``."""
    shape = ctx.shape(port)
    if len(shape) > len(target) or broadcast_shapes(ctx, target, shape) != tuple(target):
        raise ctx.error(f"input {port} ({ctx.schema.inputs[port]}) of shape {list(shape)} does not "
                        f"broadcast onto {list(target)}")


def _layer_norm_infer(ctx: InferContext) -> list[TensorType]:
    dt = _float_input(ctx)
    shape = ctx.shape(0)
    axis = normalize_axis(ctx.attrs["axis"], len(shape), ctx)
    stash = _stash_dtype(ctx)
    for i in range(1, ctx.n_inputs):
        if ctx.has(i):
            _check_onto(ctx, i, shape)
    stats = tuple(shape[:axis]) + (1,) * (len(shape) - axis)
    return [(dt, shape), (stash, stats), (stash, stats)]


def _rms_norm_infer(ctx: InferContext) -> list[TensorType]:
    dt = _float_input(ctx)
    normalize_axis(ctx.attrs["axis"], ctx.rank(0), ctx)
    _stash_dtype(ctx)
    _check_onto(ctx, 1, ctx.shape(0))
    return [(dt, ctx.shape(0))]


def _group_norm_infer(ctx: InferContext) -> list[TensorType]:
    dt = _float_input(ctx)
    shape = ctx.shape(0)
    if len(shape) < 2:
        raise ctx.error(f"GroupNormalization needs an input of rank 2 or more, got rank {len(shape)}")
    groups, channels = ctx.attrs["num_groups"], shape[1]
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ctx.error(f"num_groups must be a positive integer, got {groups!r}")
    if isinstance(channels, int) and channels % groups:
        raise ctx.error(f"{channels} channels do not split into {groups} groups")
    _stash_dtype(ctx)
    _check_per_channel(ctx, (1, 2), channels)
    return [(dt, shape)]


def _lrn_infer(ctx: InferContext) -> list[TensorType]:
    dt = _float_input(ctx)
    _channel_axis(ctx)
    size = ctx.attrs["size"]
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ctx.error(f"LRN size must be a positive integer, got {size!r}")
    return [(dt, ctx.shape(0))]


def _lp_norm_infer(ctx: InferContext) -> list[TensorType]:
    dt = _float_input(ctx)
    normalize_axis(ctx.attrs["axis"], ctx.rank(0), ctx)
    if ctx.attrs["p"] not in (1, 2):
        raise ctx.error(f"LpNormalization p={ctx.attrs['p']} is not supported (ONNX allows 1 and 2)")
    return [(dt, ctx.shape(0))]


def _mvn_infer(ctx: InferContext) -> list[TensorType]:
    dt = _float_input(ctx)
    rank = ctx.rank(0)
    axes = [normalize_axis(int(a), rank, ctx) for a in ctx.attrs["axes"]]
    if len(set(axes)) != len(axes):
        raise ctx.error(f"axes {list(ctx.attrs['axes'])} repeat an axis")
    return [(dt, ctx.shape(0))]


# ------------------------------------------------------------------------------- kernels
def _along(v: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast along ``axis`` of a rank-``rank`` tensor, in float64."""
    shape = [1] * rank
    shape[axis] = -1
    return np.asarray(v, dtype=F64).reshape(shape)


def _standardize(x64: np.ndarray, axes: tuple[int, ...], epsilon: float) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon) over ``axes`` (population variance)."""
    mean = np.mean(x64, axis=axes, keepdims=True)
    d = x64 - mean
    return d / np.sqrt(np.mean(d * d, axis=axes, keepdims=True) + epsilon)


@register("BatchNormalization", inputs=["X", "scale", "B", "input_mean", "input_var"],
          attrs={"epsilon": EPS}, infer=_per_channel_infer, spatial=True)
def batch_normalization(x: np.ndarray, scale: np.ndarray, b: np.ndarray, mean: np.ndarray,
                        var: np.ndarray, epsilon: float, layout: str) -> np.ndarray:
    """BatchNormalization, inference form: the running statistics are inputs. Training mode (batch
    statistics, updated running statistics) is not part of the canonical op."""
    axis = layout_channel_axis(layout, x.ndim)
    r = x.ndim
    y = ((x.astype(F64) - _along(mean, axis, r)) / np.sqrt(_along(var, axis, r) + epsilon)
         * _along(scale, axis, r) + _along(b, axis, r))
    return y.astype(x.dtype)


@register("InstanceNormalization", inputs=["input", "scale", "B"], outputs=["output"],
          attrs={"epsilon": EPS}, infer=_per_channel_infer, spatial=True)
def instance_normalization(x: np.ndarray, scale: np.ndarray, b: np.ndarray, epsilon: float,
                           layout: str) -> np.ndarray:
    """Per sample and channel, over the spatial axes."""
    axis = layout_channel_axis(layout, x.ndim)
    spatial = tuple(a for a in range(1, x.ndim) if a != axis)
    y = _standardize(x.astype(F64), spatial, epsilon) * _along(scale, axis, x.ndim) + _along(b, axis, x.ndim)
    return y.astype(x.dtype)


@register("LayerNormalization", inputs=["X", "Scale", "B?"], outputs=["Y", "Mean?", "InvStdDev?"],
          attrs={"axis": -1, "epsilon": EPS, "stash_type": 1}, infer=_layer_norm_infer)
def layer_normalization(x: np.ndarray, scale: np.ndarray, b: np.ndarray | None = None, *, axis: int,
                        epsilon: float, stash_type: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over axes ``axis..rank-1``. Mean and InvStdDev have the stash type and keep reduced axes as 1."""
    stash = STASH_TYPES[stash_type]
    axes = tuple(range(normalize_axis(axis, x.ndim), x.ndim))
    x64 = x.astype(F64)
    mean = np.mean(x64, axis=axes, keepdims=True)
    d = x64 - mean
    inv_std = 1.0 / np.sqrt(np.mean(d * d, axis=axes, keepdims=True) + epsilon)
    y = (d * inv_std).astype(x.dtype) * scale.astype(x.dtype, copy=False)
    if b is not None:
        y = y + b.astype(x.dtype, copy=False)
    return y.astype(x.dtype, copy=False), mean.astype(stash), inv_std.astype(stash)


@register("GroupNormalization", inputs=["X", "scale", "bias"],
          attrs={"epsilon": EPS, "num_groups": REQUIRED, "stash_type": 1}, infer=_group_norm_infer)
def group_normalization(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, epsilon: float,
                        num_groups: int, stash_type: int) -> np.ndarray:
    """GroupNormalization-21: statistics per sample and group of channels (axis 1); ``scale`` and
    ``bias`` are per channel (opsets 18-20 had them per group: the ONNX frontend expands them)."""
    grouped = x.astype(F64).reshape(x.shape[0], num_groups, -1)
    normalized = _standardize(grouped, (2,), epsilon).reshape(x.shape).astype(x.dtype)
    shape = (-1,) + (1,) * (x.ndim - 2)
    y = normalized * scale.astype(x.dtype).reshape(shape) + bias.astype(x.dtype).reshape(shape)
    return y.astype(x.dtype, copy=False)


@register("RMSNormalization", inputs=["X", "scale"], attrs={"axis": -1, "epsilon": EPS, "stash_type": 1},
          infer=_rms_norm_infer)
def rms_normalization(x: np.ndarray, scale: np.ndarray, axis: int, epsilon: float,
                      stash_type: int) -> np.ndarray:
    """x / sqrt(mean(x^2) + epsilon) over axes ``axis..rank-1``, then times ``scale``."""
    axes = tuple(range(normalize_axis(axis, x.ndim), x.ndim))
    x64 = x.astype(F64)
    normalized = (x64 / np.sqrt(np.mean(x64 * x64, axis=axes, keepdims=True) + epsilon)).astype(x.dtype)
    return (normalized * scale.astype(x.dtype, copy=False)).astype(x.dtype, copy=False)


@register("LRN", attrs={"alpha": float(np.float32(1e-4)), "beta": 0.75, "bias": 1.0, "size": REQUIRED},
          infer=_lrn_infer, spatial=True)
def lrn(x: np.ndarray, alpha: float, beta: float, bias: float, size: int, layout: str) -> np.ndarray:
    """Local response normalization across channels: the window around channel c runs from
    c - floor((size-1)/2) to c + ceil((size-1)/2), clipped to the channels that exist."""
    axis = layout_channel_axis(layout, x.ndim)
    x64 = np.moveaxis(x.astype(F64), axis, -1)
    channels = x64.shape[-1]
    lo, hi = (size - 1) // 2, size // 2  # floor((size-1)/2), ceil((size-1)/2)
    cum = np.concatenate([np.zeros(x64.shape[:-1] + (1,)), np.cumsum(x64 * x64, axis=-1)], axis=-1)
    c = np.arange(channels)
    square_sum = cum[..., np.minimum(c + hi + 1, channels)] - cum[..., np.maximum(c - lo, 0)]
    y = x64 / (bias + (float(alpha) / size) * square_sum) ** beta
    return np.moveaxis(y, -1, axis).astype(x.dtype)


@register("LpNormalization", inputs=["input"], outputs=["output"], attrs={"axis": -1, "p": 2},
          infer=_lp_norm_infer)
def lp_normalization(x: np.ndarray, axis: int, p: int) -> np.ndarray:
    """x / ||x||_p along ``axis``; where the norm is 0 the output is 0 (ONNX's rule since opset 22,
    which onnxruntime follows at every opset)."""
    x64 = x.astype(F64)
    norm = np.sum(np.abs(x64), axis=axis, keepdims=True) if p == 1 else \
        np.sqrt(np.sum(x64 * x64, axis=axis, keepdims=True))
    with np.errstate(all="ignore"):
        return np.where(norm == 0, 0.0, x64 / norm).astype(x.dtype)


@register("MeanVarianceNormalization", attrs={"axes": (0, 2, 3)}, infer=_mvn_infer)
def mean_variance_normalization(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """(x - mean) / (std + 1e-9) over ``axes``, ONNX's function body. (onnxruntime's own kernel
    divides by the bare std, so a constant slice gives NaN there and 0 here.)"""
    axes_t = tuple(normalize_axis(int(a), x.ndim) for a in axes)
    x64 = x.astype(F64)
    d = x64 - np.mean(x64, axis=axes_t, keepdims=True)
    std = np.sqrt(np.mean(d * d, axis=axes_t, keepdims=True))
    return (d / (std + 1e-9)).astype(x.dtype)
