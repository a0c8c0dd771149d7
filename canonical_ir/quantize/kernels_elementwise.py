"""Integer Add, Sub and Mul with numpy broadcasting: TFLite's ADD, SUB and MUL.

ADD/SUB (``reference_integer_ops::Add``, ``reference_ops::Sub`` general path): both inputs, less their
zero points, are shifted left by ``left_shift`` (20 for int8, 15 for int16), each scaled by
s_i / (2 max(s_1, s_2)) with MultiplyByQuantizedMultiplierSmallerThanOneExp, summed (or subtracted),
scaled by 2 max(s_1, s_2) / (2^left_shift s_y), offset by zp_y and clamped; the multipliers come from
double arithmetic. MUL (``reference_integer_ops::Mul``): (x_1 - zp_1)(x_2 - zp_2) scaled by
s_1 s_2 / s_y, computed in double as TFLite Micro's Prepare does (LiteRT's computes it in float32, so
it can differ by one step where that changes the multiplier's last bits).
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.base import (
    QType, activation_range, need_quantized, quantized, require, saturate)

_LEFT_SHIFT = {np.dtype(np.int8): 20, np.dtype(np.uint8): 20, np.dtype(np.int16): 15}


def _per_tensor(*qs: QType) -> None:
    for q in qs:
        require(not q.per_channel, "integer Add/Sub/Mul take per-tensor quantized inputs")


def _add_sub(a: np.ndarray, b: np.ndarray, qa: QType, qb: QType, qy: QType, sign: int,
             attrs: dict) -> np.ndarray:
    _per_tensor(qa, qb, qy)
    require(qa.dtype == qb.dtype == qy.dtype, f"integer Add/Sub need one storage type, got "
                                              f"{qa.dtype}, {qb.dtype} -> {qy.dtype}")
    if qy.dtype == np.dtype(np.int16):
        require(qa.zp == qb.zp == qy.zp == 0, "int16 Add/Sub need zero points of 0 (TFLite's 16x8 scheme)")
    left_shift = _LEFT_SHIFT[qy.dtype]
    twice_max = 2.0 * float(max(qa.s, qb.s))
    m1, s1 = fx.quantize_multiplier_smaller_than_one_exp(float(qa.s) / twice_max)
    m2, s2 = fx.quantize_multiplier_smaller_than_one_exp(float(qb.s) / twice_max)
    mo, so = fx.quantize_multiplier_smaller_than_one_exp(twice_max / (float(1 << left_shift) * float(qy.s)))
    x1 = fx.multiply_by_quantized_multiplier_smaller_than_one_exp(
        fx.wrap((a.astype(np.int64) - qa.zp) << left_shift), m1, s1)
    x2 = fx.multiply_by_quantized_multiplier_smaller_than_one_exp(
        fx.wrap((b.astype(np.int64) - qb.zp) << left_shift), m2, s2)
    raw = fx.wrap(x1 + x2 if sign > 0 else x1 - x2)
    out = fx.multiply_by_quantized_multiplier_smaller_than_one_exp(raw, mo, so) + qy.zp
    lo, hi = activation_range(attrs, qy)
    return saturate(out, qy.dtype, lo, hi)


@quantized("Add")
def add_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """ADD with input rescaling (left_shift 20 for int8)."""
    need_quantized(in_q, out_q, ins=(0, 1))
    return [_add_sub(inputs[0], inputs[1], in_q[0], in_q[1], out_q[0], +1, attrs)]


@quantized("Sub")
def sub_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """SUB: as ADD with the second input subtracted."""
    need_quantized(in_q, out_q, ins=(0, 1))
    return [_add_sub(inputs[0], inputs[1], in_q[0], in_q[1], out_q[0], -1, attrs)]


def mul_int8(a: np.ndarray, b: np.ndarray, qa: QType, qb: QType, qy: QType, real_multiplier: float,
             attrs: dict) -> np.ndarray:
    """``reference_integer_ops::Mul`` given its real multiplier s_1 s_2 / s_y."""
    m, shift = fx.quantize_multiplier(np.float64(real_multiplier))
    prod = fx.wrap((a.astype(np.int64) - qa.zp) * (b.astype(np.int64) - qb.zp))
    out = fx.multiply_by_quantized_multiplier(prod, m, shift) + qy.zp
    lo, hi = activation_range(attrs, qy)
    return saturate(out, qy.dtype, lo, hi)


@quantized("Mul")
def mul_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """MUL: the product of the zero-point-free inputs, requantized by s_1 s_2 / s_y (double)."""
    need_quantized(in_q, out_q, ins=(0, 1))
    qa, qb, qy = in_q[0], in_q[1], out_q[0]
    _per_tensor(qa, qb, qy)
    if qy.dtype == np.dtype(np.int16):
        require(qa.zp == qb.zp == qy.zp == 0, "int16 Mul needs zero points of 0 (TFLite's 16x8 scheme)")
    real = np.float64(qa.s) * np.float64(qb.s) / np.float64(qy.s)
    return [mul_int8(inputs[0], inputs[1], qa, qb, qy, real, attrs)]
