"""Integer primitives of TFLite's quantized kernels, vectorised over numpy arrays.

Each function mirrors one routine of TFLite (``tensorflow/lite/kernels/internal/common.h``,
``quantization_util.cc``) or of gemmlowp's ``fixedpoint/fixedpoint.h``, which TFLite Micro and CMSIS-NN
share, bit for bit. Values are carried in int64 arrays holding int32 (or int16) quantities; where the C
code relies on two's complement wrap-around, :func:`wrap` reproduces it. TFLite is built with its
default double rounding (``TFLITE_SINGLE_ROUNDING`` off), which is what these implement; it is the
same as TOSA's ``DOUBLE_ROUND``.

Float parts (the multipliers computed once at prepare time) follow TFLite's precision exactly: where
TFLite computes in float32 the caller passes float32 values, in double float64 ones.
"""
from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | int | float

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1


def _i64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap(x: ArrayLike, bits: int = 32) -> np.ndarray:
    """Two's complement wrap-around to ``bits`` bits: what C's int32 arithmetic does on overflow."""
    half = 1 << (bits - 1)
    return ((_i64(x) + half) & ((1 << bits) - 1)) - half


def trunc_div(x: ArrayLike, d: ArrayLike) -> np.ndarray:
    """C integer division (rounds toward zero); numpy's ``//`` floors."""
    x, d = _i64(x), _i64(d)
    q = np.abs(x) // np.abs(d)
    return np.where((x < 0) != (d < 0), -q, q)


def round_half_away(x: ArrayLike) -> np.ndarray:
    """``TfLiteRound`` / C's ``round``: nearest, ties away from zero, computed without the float32
    error of ``floor(x + 0.5)`` (done in float64, exact for float32 inputs). Returns float64."""
    v = np.asarray(x, dtype=np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


# ---------------------------------------------------------------------------- gemmlowp / common.h
def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike, bits: int = 32) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` (ARM VQRDMULH): round(a * b / 2^(bits-1)) with
    ties away from zero, and MIN * MIN saturated to MAX. ``bits`` is 32 or 16 (the int16 overload)."""
    a, b = _i64(a), _i64(b)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    ab = a * b
    nudge = np.where(ab >= 0, 1 << (bits - 2), 1 - (1 << (bits - 2)))
    out = trunc_div(ab + nudge, 1 << (bits - 1))
    return np.where((a == b) & (a == lo), hi, wrap(out, bits))


def saturating_doubling_high_mul16(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """TFLite's int16 ``SaturatingDoublingHighMul`` (ARM SQDMULH, hard_swish.h): like the rounding
    version but truncating toward zero."""
    a, b = _i64(a), _i64(b)
    out = wrap(trunc_div(a * b, 1 << 15), 16)
    return np.where((a == b) & (a == I16_MIN), I16_MAX, out)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: x / 2^exponent rounded to nearest, ties away from zero."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_rounding_multiply_by_pot(x: ArrayLike, exponent: int, bits: int = 32) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>``: saturating left shift for a positive
    exponent, rounding right shift for a negative one."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    threshold = (1 << (bits - 1 - exponent)) - 1
    out = wrap(x << exponent, bits)
    return np.where(x > threshold, hi, np.where(x < -threshold, lo, out))


def rounding_half_sum(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum``: (a + b) / 2, ties away from zero (C division of sum + sign)."""
    s = _i64(a) + _i64(b)
    return trunc_div(s + np.where(s >= 0, 1, -1), 2)


def multiply_by_quantized_multiplier(x: ArrayLike, multiplier: ArrayLike, shift: ArrayLike) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, ...)``, double rounding: x * 2^max(shift, 0)
    (wrapping, as C does), high multiply by ``multiplier``, rounding right shift by max(-shift, 0).
    ``multiplier``/``shift`` broadcast against x (per-channel requantization)."""
    shift = _i64(shift)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(wrap(_i64(x) << left), multiplier),
                                  right)


def multiply_by_quantized_multiplier_smaller_than_one_exp(x: ArrayLike, multiplier: ArrayLike,
                                                          left_shift: ArrayLike) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (shift <= 0): high multiply, then
    rounding right shift by -left_shift (the ADD/SUB kernels use it)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -_i64(left_shift))


def multiply_by_quantized_multiplier_greater_than_one(x: ArrayLike, multiplier: ArrayLike,
                                                      left_shift: ArrayLike) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplierGreaterThanOne``: x * 2^left_shift (wrapping), high
    multiply; no right shift (softmax's input scaling)."""
    return saturating_rounding_doubling_high_mul(wrap(_i64(x) << _i64(left_shift)), multiplier)


def multiply_by_quantized_multiplier_int64(x: ArrayLike, multiplier: ArrayLike,
                                           shift: ArrayLike) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int64 x, ...)`` used by the 16x8 kernels (int64
    accumulators): the multiplier rounded to 16 bits, one rounding shift by 15 - shift."""
    m = _i64(multiplier)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - _i64(shift)
    return wrap((_i64(x) * reduced + (np.int64(1) << (total - 1))) >> total)


# ----------------------------------------------------------------------------- quantization_util.cc
def quantize_multiplier(real: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``QuantizeMultiplier``: real = multiplier * 2^(shift - 31) with multiplier in
    [2^30, 2^31); ``frexp`` and ``TfLiteRound`` in double. Returns int64 arrays (multiplier, shift).
    A multiplier below 2^-31 flushes to (0, 0), as TFLite does."""
    r = np.asarray(real, dtype=np.float64)
    q, e = np.frexp(r)
    q_fixed = round_half_away(q * float(1 << 31)).astype(np.int64)
    top = q_fixed == (1 << 31)
    q_fixed = np.where(top, q_fixed // 2, q_fixed)
    e = np.where(top, e + 1, e).astype(np.int64)
    tiny = e < -31
    q_fixed = np.where(tiny | (r == 0), 0, q_fixed)
    e = np.where(tiny | (r == 0), 0, e)
    return q_fixed, e


def quantize_multiplier_smaller_than_one_exp(real: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``QuantizeMultiplierSmallerThanOneExp``: QuantizeMultiplier for 0 < real < 1."""
    r = np.asarray(real, dtype=np.float64)
    if np.any((r <= 0) | (r >= 1)):
        raise ValueError(f"multiplier {r} is not in (0, 1)")
    return quantize_multiplier(r)


def downscale_int32_to_int16_multiplier(m: ArrayLike) -> np.ndarray:
    """TFLite ``DownScaleInt32ToInt16Multiplier``: the top 16 bits, rounded, saturated."""
    m = _i64(m)
    return np.where(m >= I32_MAX - (1 << 15), I16_MAX, (m + (1 << 15)) >> 16)


def calculate_input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """TFLite ``CalculateInputRadius``: the largest input difference whose rescaled value still fits."""
    real = 1.0 * ((1 << integer_bits) - 1) * float(1 << (total_bits - integer_bits)) / float(1 << left_shift)
    return int(np.floor(real))


def preprocess_softmax_scaling(beta: float, input_scale: float, integer_bits: int) -> tuple[int, int]:
    """TFLite ``PreprocessSoftmaxScaling``: beta * input_scale as a multiplier greater than one in a
    Q(integer_bits) format, capped at 2^31 - 1. Returns (multiplier, left_shift)."""
    real = min(float(beta) * float(input_scale) * float(1 << (31 - integer_bits)), float((1 << 31) - 1))
    m, s = quantize_multiplier(real)
    return int(m), int(s)


def count_leading_zeros32(x: ArrayLike) -> np.ndarray:
    """Leading zero bits of x read as a uint32 (32 for zero); ``frexp`` gives the bit length exactly."""
    v = (_i64(x) & 0xFFFFFFFF).astype(np.float64)
    return 32 - np.frexp(v)[1].astype(np.int64)


# ------------------------------------------------------------------------ gemmlowp fixed-point math
def _fx_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two Q-format values: SaturatingRoundingDoublingHighMul (the integer bits add up)."""
    return saturating_rounding_doubling_high_mul(a, b)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: ArrayLike) -> np.ndarray:
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8)."""
    a = _i64(a)
    constant_term = 1895147668            # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap(a + (1 << 28))
    x2 = _fx_mul(x, x)
    x3 = _fx_mul(x2, x)
    x4 = _fx_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    inner = saturating_rounding_multiply_by_pot(
        wrap(_fx_mul(wrap(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap(constant_term + _fx_mul(constant_term, wrap(x + inner)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
               (3, 720401), (4, 242))


def exp_on_negative_values(a: ArrayLike, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: exp(a) for a <= 0 in Q(integer_bits), result in Q0.31."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, _fx_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, I32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: ArrayLike) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a in [0, 1) in Q0.31, by three Newton-Raphson steps in Q2.29."""
    half_denominator = rounding_half_sum(a, I32_MAX)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    one_q2 = 1 << 29
    x = wrap(constant_48_over_17 + _fx_mul(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = _fx_mul(half_denominator, x)                   # Q2
        one_minus = wrap(one_q2 - half_denominator_times_x)
        x = wrap(x + saturating_rounding_multiply_by_pot(_fx_mul(x, one_minus), 2))  # Rescale<2> of Q4
    return saturating_rounding_multiply_by_pot(x, 1)           # ExactMulByPot<-1>, then Rescale<0>


def get_reciprocal(x: ArrayLike, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal``: 1/x for a positive Q(x_integer_digits) value, as a Q0.31 value and
    ``num_bits_over_unit`` (the shift that completes it)."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: ArrayLike) -> np.ndarray:
    """gemmlowp: (1 - a) / (1 + a) for a in [0, 1) in Q0.31 (the same Newton-Raphson division)."""
    half_denominator = rounding_half_sum(a, I32_MAX)
    one_q2 = 1 << 29
    x = wrap(1515870810 + _fx_mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap(one_q2 - _fx_mul(half_denominator, x))
        x = wrap(x + saturating_rounding_multiply_by_pot(_fx_mul(x, one_minus), 2))
    return saturating_rounding_multiply_by_pot(wrap(x - one_q2), 2)                  # Rescale<0> of Q2


def logistic(a: ArrayLike, integer_bits: int) -> np.ndarray:
    """gemmlowp ``logistic``: 1 / (1 + exp(-a)) for a in Q(integer_bits), result in Q0.31."""
    a = _i64(a)
    positive = a > 0
    abs_a = np.where(positive, a, wrap(-a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap(-abs_a), integer_bits))
    if_negative = wrap(I32_MAX - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a: ArrayLike, integer_bits: int) -> np.ndarray:
    """gemmlowp ``tanh``: (1 - exp(-2|a|)) / (1 + exp(-2|a|)) with a's sign, a in Q(integer_bits),
    result in Q0.31."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, wrap(-a))                                  # -|a|
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap(-t), t))
