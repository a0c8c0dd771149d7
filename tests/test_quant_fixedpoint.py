"""The integer primitives of canonical_ir/quantize/fixedpoint.py against hand-worked values and the
examples of TFLite's own tests (tensorflow/lite/kernels/internal/quantization_util_test.cc)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from convertkit.canonical_ir.quantize import fixedpoint as fx

I32_MIN, I32_MAX = fx.I32_MIN, fx.I32_MAX


def pair(m, s) -> tuple[int, int]:
    return int(m), int(s)


# ----------------------------------------------------------------------------- QuantizeMultiplier
@pytest.mark.parametrize("real, expected", [
    (0.25, (1073741824, -1)), (0.50 - 5e-9, (2147483627, -1)), (0.50 - 1e-10, (1073741824, 0)),
    (0.50, (1073741824, 0)), (0.75, (1610612736, 0)), (1 - 1e-9, (2147483646, 0))])
def test_quantize_multiplier_smaller_than_one_tflite_examples(real, expected):
    assert pair(*fx.quantize_multiplier_smaller_than_one_exp(real)) == expected


@pytest.mark.parametrize("real, expected", [
    (1 + 1e-11, (1073741824, 1)), (1.25, (1342177280, 1)), (1.50, (1610612736, 1)), (1.75, (1879048192, 1)),
    (2 - 1e-9, (2147483647, 1)), (2 - 1e-11, (1073741824, 2)), (2.0, (1073741824, 2))])
def test_quantize_multiplier_greater_than_one_tflite_examples(real, expected):
    assert pair(*fx.quantize_multiplier(real)) == expected


@pytest.mark.parametrize("real, expected", [
    (math.ldexp(1.0, -31), (1073741824, -30)), (math.ldexp(1.0, -32), (1073741824, -31)),
    (math.ldexp(float(np.float32(0.99)), -32), (0, 0)), (math.ldexp(1.0, -33), (0, 0)), (0.0, (0, 0))])
def test_quantize_multiplier_underflow_flushes_to_zero(real, expected):
    assert pair(*fx.quantize_multiplier(real)) == expected


def test_quantize_multiplier_array_and_negative_values():
    m, s = fx.quantize_multiplier(np.array([-4, -0.5, 0, 0.125, 4]))
    assert m.tolist() == [-1073741824, -1073741824, 0, 1073741824, 1073741824]
    assert s.tolist() == [3, 0, 0, -2, 3]


def test_quantize_multiplier_smaller_than_one_refuses_out_of_range():
    for bad in (-0.1, 0.0, 1.0):
        with pytest.raises(ValueError):
            fx.quantize_multiplier_smaller_than_one_exp(bad)


# --------------------------------------------------------------------- MultiplyByQuantizedMultiplier
def quant_and_multiply(x, real):
    return int(fx.multiply_by_quantized_multiplier(x, *fx.quantize_multiplier(real)))


@pytest.mark.parametrize("x, real, expected", [
    (0, 0.1, 0), (1, 0, 0), (10000, 0.00097656, 10), (-10000, 0.00097656, -10),
    (I32_MIN, 0.00001, -21475), (I32_MAX, 0.00001, 21475), (10000, -0.00097656, -10),
    (-10000, -0.00097656, 10), (I32_MIN, -0.00001, 21475), (I32_MAX, -0.00001, -21475)])
def test_multiply_by_quantized_multiplier_tflite_examples(x, real, expected):
    assert quant_and_multiply(x, real) == expected


def test_multiply_by_quantized_multiplier_extremes():
    x, m, shift = I32_MAX, I32_MAX, -3
    expected = int(fx.round_half_away(x * m / float(1 << (31 - shift))))
    assert int(fx.multiply_by_quantized_multiplier(x, m, shift)) == expected
    assert int(fx.multiply_by_quantized_multiplier(-x, m, shift)) == -expected


def test_multiply_by_quantized_multiplier_is_two_roundings():
    # 0.3 = 1288490189 * 2^-32: x * 0.6 is rounded by the high multiply, then halved and rounded again.
    m, s = fx.quantize_multiplier(0.3)
    assert (int(m), int(s)) == (1288490189, -1)
    f = lambda x: int(fx.multiply_by_quantized_multiplier(x, m, s))  # noqa: E731
    assert f(8) == 3 and f(-8) == -3          # 4.8 -> 5 -> 2.5 -> 3, where round(8 * 0.3) = 2
    assert f(5) == 2 and f(-5) == -2 and f(4) == 1


def test_multiply_by_quantized_multiplier_per_channel_broadcast():
    m, s = fx.quantize_multiplier(np.array([0.5, 0.25, 2.0]))
    x = np.array([[10, 10, 10], [-7, -7, -7]])
    # -3.5 -> -3: the high multiply's tie goes up, the rounding shift's (-1.5 -> -2) away from zero
    assert fx.multiply_by_quantized_multiplier(x, m, s).tolist() == [[5, 3, 20], [-3, -2, -14]]


@pytest.mark.parametrize("x, real, expected", [
    (0, 0.1, 0), (1, 0, 0), (10000, 0.00097656, 10), (-10000, 0.00097656, -10),
    (-(1 << 47), 0.00001, -1407385600), ((1 << 47) - 1, 0.00001, 1407385600)])
def test_multiply_by_quantized_multiplier_int64_tflite_examples(x, real, expected):
    assert int(fx.multiply_by_quantized_multiplier_int64(x, *fx.quantize_multiplier(real))) == expected


def test_multiply_by_quantized_multiplier_int64_extremes():
    x = (1 << 47) - 1
    assert int(fx.multiply_by_quantized_multiplier_int64(x, I32_MAX, -31)) == 65534
    assert int(fx.multiply_by_quantized_multiplier_int64(-x, I32_MAX, -31)) == -65534


# ------------------------------------------------------------------------------ gemmlowp primitives
def test_saturating_rounding_doubling_high_mul():
    f = fx.saturating_rounding_doubling_high_mul
    assert int(f(I32_MIN, I32_MIN)) == I32_MAX                  # the one overflow saturates
    assert int(f(1 << 30, 1 << 30)) == 1 << 29                    # 0.5 * 0.5 = 0.25
    assert int(f(1, 1 << 30)) == 1                                # +0.5 rounds up
    assert int(f(-1, 1 << 30)) == 0                               # -0.5 rounds up too (nudge 1 - 2^30)
    assert int(f(-3, 1 << 30)) == -1                              # -1.5 -> -1
    assert int(f(I32_MAX, I32_MAX)) == I32_MAX - 1
    assert int(f(-32768, -32768, bits=16)) == 32767               # int16 overload
    assert int(f(16384, 16384, bits=16)) == 8192


def test_saturating_doubling_high_mul16_truncates():
    assert int(fx.saturating_doubling_high_mul16(32767, 6113)) == 6112      # 6112.81 -> 6112
    assert int(fx.saturating_doubling_high_mul16(-32767, 6113)) == -6112
    assert int(fx.saturating_doubling_high_mul16(-32768, -32768)) == 32767


@pytest.mark.parametrize("x, e, expected", [
    (5, 1, 3), (-5, 1, -3), (7, 2, 2), (6, 2, 2), (-6, 2, -2), (-7, 2, -2), (0, 5, 0), (13, 0, 13),
    (I32_MAX, 31, 1), (I32_MIN, 31, -1), (-1, 1, -1), (1, 1, 1)])
def test_rounding_divide_by_pot_ties_away_from_zero(x, e, expected):
    assert int(fx.rounding_divide_by_pot(x, e)) == expected


def test_saturating_rounding_multiply_by_pot():
    f = fx.saturating_rounding_multiply_by_pot
    assert int(f(3, 2)) == 12
    assert int(f(1 << 29, 2)) == I32_MAX and int(f(-(1 << 29) - 1, 2)) == I32_MIN
    assert int(f(10, -2)) == 3 and int(f(-10, -2)) == -3
    assert int(f(20000, 1, bits=16)) == 32767


def test_rounding_half_sum():
    assert [int(fx.rounding_half_sum(a, b)) for a, b in ((1, 2), (-1, -2), (3, 3), (I32_MAX, I32_MAX))] == \
        [2, -2, 3, I32_MAX]


def test_wrap_and_trunc_div_mimic_c():
    assert fx.wrap(np.array([I32_MAX + 1, I32_MIN - 1, 5])).tolist() == [I32_MIN, I32_MAX, 5]
    assert fx.wrap(40000, 16) == 40000 - 65536
    assert fx.trunc_div(np.array([7, -7, 7, -7]), np.array([2, 2, -2, -2])).tolist() == [3, -3, -3, 3]


def test_round_half_away_is_c_round():
    v = np.array([0.5, -0.5, 2.5, -2.5, 1.4999999, np.float32(0.49999997)], dtype=np.float64)
    assert fx.round_half_away(v).tolist() == [1, -1, 3, -3, 1, 0]


def test_count_leading_zeros32():
    x = np.array([0, 1, 2, 3, 255, 1 << 30, I32_MAX, -1, I32_MIN])
    assert fx.count_leading_zeros32(x).tolist() == [32, 31, 30, 30, 24, 1, 1, 0, 0]


def test_downscale_int32_to_int16_multiplier():
    assert int(fx.downscale_int32_to_int16_multiplier(2092859392)) == 31935    # exact tie rounds up
    assert int(fx.downscale_int32_to_int16_multiplier(2092859374)) == 31934
    assert int(fx.downscale_int32_to_int16_multiplier(I32_MAX)) == 32767


@pytest.mark.parametrize("bits, shift, expected", [(4, 27, 15), (3, 27, 14), (3, 28, 7), (4, 2, 503316480)])
def test_calculate_input_radius_tflite_examples(bits, shift, expected):
    assert fx.calculate_input_radius(bits, shift) == expected


@pytest.mark.parametrize("beta, scale, bits, expected", [
    (1.0, 16.0, 4, (2147483647, 31)), (1.0, 8.0, 4, (1073741824, 31)), (2.0, 16.0, 5, (2147483647, 31)),
    (2.0, 8.0, 5, (1073741824, 31))])
def test_preprocess_softmax_scaling_tflite_examples(beta, scale, bits, expected):
    assert fx.preprocess_softmax_scaling(beta, scale, bits) == expected


# --------------------------------------------------------------------------- fixed-point functions
def q(x: float, integer_bits: int) -> np.ndarray:
    return np.asarray(np.round(np.asarray(x) * 2.0 ** (31 - integer_bits)), np.int64)


def test_exp_on_negative_values():
    x = np.linspace(-15.9, 0, 500)
    got = fx.exp_on_negative_values(q(x, 5), 5) / 2.0 ** 31
    assert np.max(np.abs(got - np.exp(x))) < 2e-8 * 2 ** 5 + 1e-9
    assert int(fx.exp_on_negative_values(0, 5)) == I32_MAX
    assert int(fx.exp_on_negative_values(q(-0.25, 0), 0)) == 1672462419   # Taylor series, 2.2e-7 off


def test_reciprocal_and_fixed_point_logistic_tanh():
    a = np.linspace(0, 0.999, 300)
    one_over = fx.one_over_one_plus_x_for_x_in_0_1(q(a, 0)) / 2.0 ** 31
    assert np.max(np.abs(one_over - 1 / (1 + a))) < 1e-8
    ratio = fx.one_minus_x_over_one_plus_x_for_x_in_0_1(q(a, 0)) / 2.0 ** 31
    assert np.max(np.abs(ratio - (1 - a) / (1 + a))) < 1e-8
    x = np.linspace(-7.9, 7.9, 301)
    assert np.max(np.abs(fx.logistic(q(x, 4), 4) / 2.0 ** 31 - 1 / (1 + np.exp(-x)))) < 1e-7
    assert np.max(np.abs(fx.tanh(q(x, 4), 4) / 2.0 ** 31 - np.tanh(x))) < 1e-7
    assert int(fx.logistic(0, 4)) == 1 << 30 and int(fx.tanh(0, 4)) == 0


def test_get_reciprocal():
    for value in (1.0, 1.25, 3.0, 100.5, 4000.0):
        recip, over = fx.get_reciprocal(q(value, 12), 12)
        assert abs(int(recip) / 2.0 ** 31 / 2.0 ** int(over) - 1 / value) < 1e-8 / value
