"""Integer activations: TFLite's RELU family, LEAKY_RELU, PRELU, LOGISTIC, TANH, HARD_SWISH, ELU,
SOFTMAX.

- Relu / Clip: ``ReluX``: (x - zp_x) rescaled by s_x / s_y, plus zp_y, clamped to the bounds quantized
  as ``zp_y + roundf(bound / s_y)``. Clip(0, 6) is RELU6, Clip(-1, 1) RELU_N1_TO_1.
- LeakyRelu / PRelu: two multipliers, identity s_x / s_y and alpha s_x alpha / s_y (float32).
- Sigmoid / Tanh: gemmlowp's fixed-point logistic and tanh on a Q4.27 input
  (``reference_integer_ops::Logistic``/``Tanh``), integer-only.
- HardSwish: ``reference_ops::HardSwish``, int16 fixed point.

Where TFLite Micro and LiteRT's reference kernels differ, the IR follows TFLite Micro (the runtime of
the C bundle's targets, and integer-only): LiteRT builds 256-entry float look-up tables for int8
LOGISTIC and TANH, and divides the scales of HARD_SWISH, RELU and PRELU in float32 rather than double, so it
differs from these kernels by one step on a few input values for some quantization parameters. The
exception is RELU6/RELU_N1_TO_1, which TFLite Micro runs as a plain clamp at the input's parameters,
ignoring the output's: there the IR requantizes as LiteRT does.
- Softmax: ``reference_ops::Softmax`` for int8: gemmlowp's fixed-point exp and reciprocal; the output
  is int8 with scale 1/256 and zero point -128, as TFLite fixes it.
"""
from __future__ import annotations

import math
import numpy as np

from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.base import (
    F32, QType, need_quantized, quantize_value, quantized, require, requantize, saturate)

I8 = np.dtype(np.int8)


def relu_x(x: np.ndarray, qx: QType, qy: QType, lo: int, hi: int, real_multiplier: float) -> np.ndarray:
    """TFLite ``ReluX``: zp_y + (x - zp_x) rescaled by ``real_multiplier`` (s_x / s_y), clamped."""
    m, shift = fx.quantize_multiplier(np.float64(real_multiplier))
    out = qy.zp + fx.multiply_by_quantized_multiplier(x.astype(np.int64) - qx.zp, m, shift)
    return saturate(out, qy.dtype, lo, hi)


@quantized("Relu")
def relu_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """RELU: clamped below at the quantized 0; s_x / s_y in double, as TFLite Micro computes it."""
    need_quantized(in_q, out_q)
    qx, qy = in_q[0], out_q[0]
    lo = max(qy.qmin, quantize_value(0.0, qy))
    return [relu_x(inputs[0], qx, qy, lo, qy.qmax, np.float64(qx.s) / np.float64(qy.s))]


def _bound(v: np.ndarray | None, q: QType | None, qy: QType, default: int) -> int:
    if v is None or np.asarray(v).size == 0:
        return default
    if q is not None:                      # a quantized bound: its real value in the output's terms
        return int(requantize(np.asarray(v).reshape(-1)[:1], q, qy)[0])
    return quantize_value(float(np.asarray(v).reshape(-1)[0]), qy)


@quantized("Clip")
def clip_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 generalised: bounds are real values (float) or quantized
    constants; s_x / s_y in float32, as LiteRT computes it (TFLite Micro's RELU6 ignores the output's
    parameters, so it agrees only when they equal the input's, as ``quantize_graph`` makes them)."""
    need_quantized(in_q, out_q)
    x, lo_v, hi_v = (inputs + [None] * 3)[:3]
    qy = out_q[0]
    q_of = (in_q + [None] * 3)[:3]
    lo = max(qy.qmin, _bound(lo_v, q_of[1], qy, qy.qmin))
    hi = min(qy.qmax, _bound(hi_v, q_of[2], qy, qy.qmax))
    return [relu_x(x, in_q[0], qy, lo, hi, F32(in_q[0].s / qy.s))]


@quantized("LeakyRelu")
def leaky_relu_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """LEAKY_RELU (``reference_ops::QuantizeLeakyRelu``)."""
    need_quantized(in_q, out_q)
    qx, qy = in_q[0], out_q[0]
    alpha = F32(attrs["alpha"])
    m_a, s_a = fx.quantize_multiplier(np.float64(F32(F32(qx.s * alpha) / qy.s)))
    m_i, s_i = fx.quantize_multiplier(np.float64(F32(qx.s / qy.s)))
    v = inputs[0].astype(np.int64) - qx.zp
    neg = fx.multiply_by_quantized_multiplier(v, abs(int(m_a)), s_a)
    out = np.where(v >= 0, fx.multiply_by_quantized_multiplier(v, m_i, s_i), -neg if m_a < 0 else neg)
    return [saturate(out + qy.zp, qy.dtype)]


@quantized("PRelu")
def prelu_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """PRELU: a quantized slope tensor (per tensor), broadcast onto the input; the multipliers
    s_x / s_y and s_x s_alpha / s_y in double, as TFLite Micro computes them."""
    need_quantized(in_q, out_q, ins=(0, 1))
    qx, qa, qy = in_q[0], in_q[1], out_q[0]
    require(not qa.per_channel, "the integer PRelu slope must be quantized per tensor (TFLite's PRELU)")
    return [prelu_int8(inputs[0], inputs[1], qx, qa, qy, np.float64(qx.s) / np.float64(qy.s),
                       np.float64(qx.s) * np.float64(qa.s) / np.float64(qy.s))]


def prelu_int8(x: np.ndarray, slope: np.ndarray, qx: QType, qa: QType, qy: QType, real_1: float,
               real_2: float) -> np.ndarray:
    """``reference_ops::BroadcastPrelu4DSlow`` given its two real multipliers."""
    m1, s1 = fx.quantize_multiplier(np.float64(real_1))
    m2, s2 = fx.quantize_multiplier(np.float64(real_2))
    v = x.astype(np.int64) - qx.zp
    alpha = slope.astype(np.int64) - qa.zp
    out = np.where(v >= 0, fx.multiply_by_quantized_multiplier(v, m1, s1),
                   fx.multiply_by_quantized_multiplier(fx.wrap(v * alpha), m2, s2))
    return saturate(out + qy.zp, qy.dtype)


# ------------------------------------------------------------------------------------ Sigmoid, Tanh
def _q4_input(x: np.ndarray, qx: QType) -> tuple[np.ndarray, np.ndarray, int]:
    """The input in gemmlowp's Q4.27, as TFLite Micro's LOGISTIC/TANH Prepare sets it up: a multiplier
    from ``frexp(s_x * 2^27)`` rounded (without QuantizeMultiplier's overflow fix-up, so it wraps
    like the C cast) and the input radius beyond which the output saturates. Returns (q4, x - zp, radius)."""
    q, shift = np.frexp(np.float64(qx.s) * float(1 << 27))
    multiplier = int(fx.wrap(fx.round_half_away(q * float(1 << 31))))
    radius = fx.calculate_input_radius(4, int(shift), 31)
    v = x.astype(np.int64) - qx.zp
    return fx.multiply_by_quantized_multiplier(np.clip(v, -radius, radius), multiplier, int(shift)), v, radius


@quantized("Sigmoid")
def sigmoid_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """LOGISTIC (``reference_integer_ops::Logistic``, TFLite Micro): gemmlowp's fixed-point logistic
    on the Q4.27 input, rounded to Q0.8; the output is int8 with scale 1/256, zero point -128."""
    need_quantized(in_q, out_q)
    qx, qy = in_q[0], out_q[0]
    require(qx.dtype == I8 and qy.dtype == I8, "integer Sigmoid is defined for int8")
    require(qy.zp == -128 and math.isclose(float(qy.s), 1 / 256, rel_tol=1e-6),
            "TFLite's int8 Sigmoid output is quantized with scale 1/256 and zero point -128, "
            f"got {float(qy.s):g} and {qy.zp}")
    q4, v, radius = _q4_input(inputs[0], qx)
    out = fx.rounding_divide_by_pot(fx.logistic(q4, 4), 31 - 8) - 128
    out = np.where(v <= -radius, -128, np.where(v >= radius, 127, out))
    return [saturate(out, I8)]


@quantized("Tanh")
def tanh_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """TANH (``reference_integer_ops::Tanh``, TFLite Micro): gemmlowp's fixed-point tanh on the Q4.27
    input, rounded to Q0.7; the output is int8 with scale 1/128, zero point 0."""
    need_quantized(in_q, out_q)
    qx, qy = in_q[0], out_q[0]
    require(qx.dtype == I8 and qy.dtype == I8, "integer Tanh is defined for int8")
    require(qy.zp == 0 and math.isclose(float(qy.s), 1 / 128, rel_tol=1e-6),
            "TFLite's int8 Tanh output is quantized with scale 1/128 and zero point 0, "
            f"got {float(qy.s):g} and {qy.zp}")
    q4, v, radius = _q4_input(inputs[0], qx)
    out = fx.rounding_divide_by_pot(fx.tanh(q4, 4), 31 - 7)
    out = np.where(v <= -radius, -128, np.where(v >= radius, 127, out))
    return [saturate(out, I8)]


# ------------------------------------------------------------------------------------------ HardSwish
def hard_swish_int8(x: np.ndarray, qx: QType, qy: QType, output_real: float,
                    reluish_real: float) -> np.ndarray:
    """``reference_ops::HardSwish`` given its two real multipliers (hi-res input scale s_x / 128 over s_y,
    and over 3 / 32768), which are reduced to int16 fixed point."""
    m_out, e_out = fx.quantize_multiplier(np.float64(output_real))
    m_out16 = fx.downscale_int32_to_int16_multiplier(m_out)
    require(int(e_out) <= 0, "HardSwish output scale too small for TFLite's kernel (output exponent > 0)")
    m_rel, e_rel = fx.quantize_multiplier(np.float64(reluish_real))
    m_rel16 = fx.downscale_int32_to_int16_multiplier(m_rel)
    e_rel = int(e_rel)
    v = fx.wrap(x.astype(np.int64) - qx.zp, 16)
    hires_v = fx.wrap(v * 128, 16)
    preshift = fx.saturating_rounding_doubling_high_mul(hires_v, m_out16, bits=16)
    reluish = hires_v
    if e_rel > 0:
        reluish = np.clip(reluish * (1 << (e_rel - 1)), fx.I16_MIN, fx.I16_MAX)
    reluish = fx.saturating_rounding_doubling_high_mul(reluish, m_rel16, bits=16)
    if e_rel > 0:
        reluish = np.clip(reluish * 2, fx.I16_MIN, fx.I16_MAX)
    if e_rel < 0:
        reluish = fx.rounding_divide_by_pot(reluish, -e_rel)
    reluish = fx.wrap((reluish + (1 << 15)) >> 1, 16)
    pre_out = fx.saturating_doubling_high_mul16(reluish, preshift)
    out = fx.wrap(fx.rounding_divide_by_pot(pre_out, -int(e_out)) + qy.zp, 16)
    return saturate(out, qy.dtype)


@quantized("HardSwish")
def hard_swish_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """HARD_SWISH: the float32 hi-res input scale s_x / 128 divided in double precision, as TFLite
    Micro computes the multipliers (LiteRT divides in float32)."""
    need_quantized(in_q, out_q)
    qx, qy = in_q[0], out_q[0]
    require(qx.dtype.itemsize == 1, "integer HardSwish is defined for int8/uint8")
    hires = np.float64(F32(F32(1.0 / 128.0) * qx.s))
    reluish_scale = np.float64(F32(3.0 / 32768.0))
    return [hard_swish_int8(inputs[0], qx, qy, hires / np.float64(qy.s), hires / reluish_scale)]


# -------------------------------------------------------------------------------------------- Softmax
def softmax_int8(x: np.ndarray, qx: QType, beta: float, out_dtype: np.dtype) -> np.ndarray:
    """``reference_ops::Softmax`` for int8/uint8 input along the last axis."""
    integer_bits, accumulation_bits = 5, 12
    mult, left_shift = fx.preprocess_softmax_scaling(beta, float(qx.s), integer_bits)
    diff_min = -fx.calculate_input_radius(integer_bits, left_shift)
    v = x.astype(np.int64)
    diff = v - np.max(v, axis=-1, keepdims=True)
    live = diff >= diff_min
    scaled = fx.multiply_by_quantized_multiplier_greater_than_one(diff, mult, left_shift)
    exp = fx.exp_on_negative_values(scaled, integer_bits)                      # Q0.31
    exp_acc = fx.saturating_rounding_multiply_by_pot(exp, -accumulation_bits)  # Rescale<12>
    total = fx.wrap(np.sum(np.where(live, exp_acc, 0), axis=-1, keepdims=True))
    recip, bits_over_unit = fx.get_reciprocal(total, accumulation_bits)
    bits = 8 * out_dtype.itemsize
    exponent = bits_over_unit + 31 - bits
    unsat = fx.rounding_divide_by_pot(fx.saturating_rounding_doubling_high_mul(recip, exp), exponent)
    info = np.iinfo(out_dtype)
    out = np.where(live, unsat + info.min, info.min)
    return saturate(out, out_dtype)


@quantized("Softmax")
def softmax_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """SOFTMAX (beta 1) over ``axis``, computed along the last axis as TFLite does (other axes are
    moved there and back)."""
    need_quantized(in_q, out_q)
    qx, qy = in_q[0], out_q[0]
    require(qx.dtype == I8 and qy.dtype == I8,
            f"integer Softmax is defined for int8, got {qx.dtype} -> {qy.dtype}")
    require(math.isclose(float(qy.s), 1 / 256, rel_tol=1e-3) and qy.zp == -128,
            "TFLite's int8 Softmax output is quantized with scale 1/256 (0.00390625) and zero point -128, "
            f"got {float(qy.s):g} and {qy.zp}")
    x = inputs[0]
    axis = int(attrs["axis"]) % x.ndim
    y = softmax_int8(np.moveaxis(x, axis, -1), qx, 1.0, qy.dtype)
    return [np.moveaxis(y, -1, axis)]


def lut_populate(qx: QType, qy: QType, transform) -> np.ndarray:
    """TFLite's ``LUTPopulate`` / ``PopulateLookupTable`` (ELU, GELU in int8): for every input value,
    dequantize in float32, apply the float ``transform``, multiply by 1/s_out, round half away from
    zero, add the zero point, saturate. Returns the table indexed by ``q - qmin``."""
    vals = np.arange(qx.qmin, qx.qmax + 1, dtype=np.int64)
    deq = F32(qx.s) * (vals - qx.zp).astype(F32)
    out = np.asarray(transform(deq), F32)
    rescaled = fx.round_half_away(out * (F32(1) / F32(qy.s)))
    return np.clip(rescaled + qy.zp, qy.qmin, qy.qmax).astype(qy.dtype)


LUT_TRANSFORMS = {
    "Elu": lambda attrs: (lambda v: np.where(v < 0, np.exp(v) - F32(1), v).astype(F32)
                          if float(attrs.get("alpha", 1.0)) == 1.0 else None),
    "Gelu": lambda attrs: (lambda v: (F32(0.5) * v * (F32(1) + np.tanh(F32(math.sqrt(2 / math.pi))
                                                                      * (v + F32(0.044715) * v ** 3))))
                           if attrs.get("approximate", "none") == "tanh"
                           else (F32(0.5) * v * (F32(1) + _erf(v / F32(math.sqrt(2)))))),
    # no TFLite builtin (its converter writes ADD/RELU6/MUL); the same table method, convertkit's own
    "HardSigmoid": lambda attrs: (lambda v: np.clip(F32(attrs.get("alpha", 0.2)) * v + F32(attrs.get("beta", 0.5)),
                                                    F32(0), F32(1)).astype(F32)),
}
"""Ops whose int8 form is TFLite's float look-up table (``LUTPopulate``)."""


def _erf(v: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(v.astype(np.float64)).astype(F32)


def _lut_kernel(op: str):
    def kernel(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        need_quantized(in_q, out_q)
        qx, qy = in_q[0], out_q[0]
        require(qx.dtype == np.dtype(np.int8) and qy.dtype == np.dtype(np.int8), f"int8 {op} only")
        transform = LUT_TRANSFORMS[op](attrs)
        require(transform is not None, f"{op} with these attributes has no TFLite integer form")
        return [lut_populate(qx, qy, transform)[inputs[0].astype(np.int64) - qx.qmin]]
    kernel.__doc__ = f"int8 {op}: a 256-entry table built as TFLite builds it (``lut_populate``)."
    return kernel


for _op in LUT_TRANSFORMS:
    quantized(_op)(_lut_kernel(_op))
