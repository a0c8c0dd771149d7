"""Integer Conv, ConvTranspose, Gemm and MatMul: TFLite's CONV_2D / DEPTHWISE_CONV_2D, TRANSPOSE_CONV
and FULLY_CONNECTED.

Arithmetic (``reference_integer_ops::ConvPerChannel``, ``DepthwiseConvPerChannel``,
``FullyConnected[PerChannel]``): acc = sum((x - zp_x) * (w - zp_w)) + bias in int32 (int64 for int16
activations, TFLite's 16x8 mode), then MultiplyByQuantizedMultiplier by s_x * s_w / s_y, plus zp_y,
clamped to the activation range. Padding contributes zero (TFLite skips out-of-bounds taps, the same
thing). The sums are exact: they run as float64 products, exact for every 8- and 16-bit operand size a
real model has, then are wrapped to the accumulator width as the C code would.

How the multiplier's real value is computed matters for bit-exactness and differs per op in TFLite:
conv, depthwise and per-channel fully-connected use double(s_x) * double(s_w) / double(s_y)
(``PopulateConvolutionQuantizationParams``); per-tensor fully-connected multiplies s_x * s_w in float32
first (``GetQuantizedConvolutionMultipler``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convertkit.canonical_ir.ops.nn import channels_last, conv, conv_transpose
from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.base import (
    F32, QType, activation_range, float_attrs, need_quantized, quantized, require, saturate)


def _requantize_acc(acc: np.ndarray, out_q: QType, real: np.ndarray, wide: bool, ch_axis: int,
                    attrs: dict[str, Any]) -> np.ndarray:
    """acc (int64 holding int32, or int64 for 16x8) -> output type, per-channel along ``ch_axis``."""
    m, shift = fx.quantize_multiplier(real)
    shape = [1] * acc.ndim
    if m.size > 1:
        shape[ch_axis] = -1
    m, shift = m.reshape(shape), shift.reshape(shape)
    if wide:
        y = fx.multiply_by_quantized_multiplier_int64(acc, m, shift)
    else:
        y = fx.multiply_by_quantized_multiplier(fx.wrap(acc), m, shift)
    lo, hi = activation_range(attrs, out_q)
    return saturate(y + out_q.zp, out_q.dtype, lo, hi)


def conv_real_multiplier(x_q: QType, w_q: QType, y_q: QType) -> np.ndarray:
    """The real requantization multiplier(s) of CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV: double
    s_x * s_w / s_y per weight channel (shared with the C bundle's kernels)."""
    return np.float64(x_q.s) * w_q.scale.astype(np.float64) / np.float64(y_q.s)


def fc_real_multiplier(a_q: QType, b_q: QType, y_q: QType) -> np.ndarray:
    """FULLY_CONNECTED's real multiplier(s): per channel in double; per tensor s_a * s_b in float32
    first (``GetQuantizedConvolutionMultipler``), then / s_y in double."""
    if b_q.per_channel:
        return np.float64(a_q.s) * b_q.scale.astype(np.float64) / np.float64(y_q.s)
    return np.asarray(np.float64(F32(a_q.s * b_q.s)) / np.float64(y_q.s))


def _check_weights(w_q: QType, n_out: int, axis: int, what: str, ndim: int = 4) -> None:
    require(w_q.dtype in (np.dtype(np.int8), np.dtype(np.int16)), f"{what} must be int8, got {w_q.dtype}")
    if w_q.per_channel:
        require(w_q.scale.size == n_out and (w_q.axis is None or w_q.axis % ndim == axis % ndim),
                f"{what} per-channel scales must run along the output-channel axis {axis} "
                f"({n_out} channels), got {w_q.scale.size} on axis {w_q.axis}")
        require(bool(np.all(w_q.zero_point == 0)), f"per-channel {what} must be symmetric (zero point 0)")


def _bias(b: np.ndarray | None, n: int) -> np.ndarray:
    if b is None:
        return np.zeros(n, np.int64)
    require(b.dtype in (np.dtype(np.int32), np.dtype(np.int64)), f"bias must be int32 (int64 in 16x8 mode), "
                                                                  f"got {b.dtype}")
    return b.astype(np.int64).reshape(-1)


@quantized("Conv")
def conv_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """CONV_2D / DEPTHWISE_CONV_2D (a depthwise conv is the group == channels case): per-channel
    symmetric weights along the output-channel axis 0 (in both layouts)."""
    x, w, b = inputs[:3]
    need_quantized(in_q, out_q, ins=(0, 1))
    x_q, w_q, y_q = in_q[0], in_q[1], out_q[0]
    n_out = w.shape[0]
    _check_weights(w_q, n_out, 0, "Conv weights")
    wide = x_q.dtype == np.dtype(np.int16)
    require(x_q.dtype in (np.dtype(np.int8), np.dtype(np.int16)),
            f"Conv input must be int8 or int16, got {x_q.dtype}")
    layout = attrs["layout"]
    ww = w.astype(np.float64) - (0 if w_q.per_channel else w_q.zp)
    acc = conv(x.astype(np.float64) - x_q.zp, ww, None, **float_attrs(attrs))
    ch_axis = acc.ndim - 1 if channels_last(layout) else 1
    bshape = [1] * acc.ndim
    bshape[ch_axis] = -1
    acc = np.rint(acc).astype(np.int64) + _bias(b, n_out).reshape(bshape)
    real = conv_real_multiplier(x_q, w_q, y_q)
    return [_requantize_acc(acc, y_q, real, wide, ch_axis, attrs)]


@quantized("ConvTranspose")
def conv_transpose_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """TRANSPOSE_CONV (``reference_integer_ops::TransposeConv``): the scattered products
    (x - zp_x) * w summed exactly, plus bias, requantized per output channel (double multipliers).
    Weights per channel along the output-channel axis: 0 for NHWC's [O, k..., I/group], 1 for
    NCHW's [I, O/group, k...] (group 1)."""
    x, w, b = inputs[:3]
    need_quantized(in_q, out_q, ins=(0, 1))
    x_q, w_q, y_q = in_q[0], in_q[1], out_q[0]
    last = channels_last(attrs["layout"])
    group = int(attrs["group"])
    require(last or group == 1 or not w_q.per_channel,
            "per-channel NCHW ConvTranspose weights need group 1 (their output channels are split)")
    n_out = w.shape[0] if last else w.shape[1] * group
    _check_weights(w_q, n_out, 0 if last else 1, "ConvTranspose weights", w.ndim)
    ww = w.astype(np.float64) - (0 if w_q.per_channel else w_q.zp)
    acc = conv_transpose(x.astype(np.float64) - x_q.zp, ww, None, **float_attrs(attrs))
    ch_axis = acc.ndim - 1 if last else 1
    bshape = [1] * acc.ndim
    bshape[ch_axis] = -1
    acc = np.rint(acc).astype(np.int64) + _bias(b, n_out).reshape(bshape)
    real = conv_real_multiplier(x_q, w_q, y_q)
    return [_requantize_acc(acc, y_q, real, x_q.dtype == np.dtype(np.int16), ch_axis, attrs)]


def _fc(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None, a_q: QType, b_q: QType, y_q: QType,
        n_axis: int, attrs: dict) -> np.ndarray:
    """FULLY_CONNECTED on a @ b with b [..., K, N]; per-channel weights along N."""
    n = b.shape[-1]
    _check_weights(b_q, n, n_axis, "weights", b.ndim)
    wide = a_q.dtype == np.dtype(np.int16)
    bb = b.astype(np.float64) - (0 if b_q.per_channel else b_q.zp)
    acc = np.rint(np.matmul(a.astype(np.float64) - a_q.zp, bb)).astype(np.int64)
    acc = acc + _bias(bias, n) if bias is not None else acc
    real = fc_real_multiplier(a_q, b_q, y_q)
    return _requantize_acc(acc, y_q, real, wide, acc.ndim - 1, attrs)


@quantized("Gemm")
def gemm_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """FULLY_CONNECTED: Y = A' @ B' + C with int32 bias C; weights per channel along the output
    column (axis 0 of B when transB, axis 1 otherwise). alpha and beta must be 1."""
    a, b, c = inputs[:3]
    need_quantized(in_q, out_q, ins=(0, 1))
    require(attrs["alpha"] == 1.0 and (c is None or attrs["beta"] == 1.0),
            "an integer Gemm needs alpha = beta = 1 (fold the factors into the scales)")
    a = a.T if attrs["transA"] else a
    b_q = in_q[1]
    if attrs["transB"]:                      # B' = B^T: its output channels are B's rows
        _check_weights(b_q, b.shape[0], 0, "Gemm weights", 2)
        b, b_q = b.T, QType(b_q.dtype, b_q.scale, b_q.zero_point, 1 if b_q.per_channel else None)
    if c is not None:
        require(c.size == b.shape[1] or c.size == 1, f"integer Gemm bias must have one value per output "
                                                      f"column, got shape {list(c.shape)}")
        c = np.broadcast_to(c.reshape(-1), (b.shape[1],))
    return [_fc(a, b, c, in_q[0], b_q, out_q[0], 1, attrs)]


@quantized("MatMul")
def matmul_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """FULLY_CONNECTED arithmetic on numpy matmul operands (batch dims of A kept); B per tensor, or per
    channel along its last axis. (TFLite's BATCH_MATMUL of two activations is not verified against
    TFLite here; constant-B MatMuls are FULLY_CONNECTED.)"""
    a, b = inputs[:2]
    need_quantized(in_q, out_q, ins=(0, 1))
    require(b.ndim >= 2, "an integer MatMul needs B of rank >= 2")
    return [_fc(a, b, None, in_q[0], in_q[1], out_q[0], b.ndim - 1, attrs)]
