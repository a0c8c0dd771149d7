"""Every integer kernel bit-exact against TFLite's reference kernels, op by op.

Single-op models are made by TensorFlow's converter with full-integer quantization (int8 in and out,
a seeded representative dataset), read back into the IR with their exact parameters and buffers, and
run on the same int8 inputs in TFLite Micro, in LiteRT with the reference kernels (BUILTIN_REF) and in
the reference interpreter.

The IR equals TFLite Micro on every op. It equals LiteRT too, except on the seven ops whose LiteRT
reference kernel computes differently from TFLite Micro's (FULLY_CONNECTED requantizes in double,
LOGISTIC and TANH use float look-up tables, HARD_SWISH, RELU, MUL and PRELU compute their multipliers
in float32 where TFLite Micro uses double); for those the
test shows that LiteRT equals the IR graph run with a kernel that computes LiteRT's way, so the
accumulators and everything else agree bit for bit and the difference is that one documented formula.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from convertkit.canonical_ir.ops.registry import get_schema  # noqa: E402
from convertkit.canonical_ir.quantize import fixedpoint as fx  # noqa: E402
from convertkit.canonical_ir.quantize.base import F32, activation_range, saturate  # noqa: E402
from convertkit.canonical_ir.quantize.kernels_activation import hard_swish_int8, prelu_int8, relu_x  # noqa: E402
from convertkit.canonical_ir.quantize.kernels_elementwise import mul_int8  # noqa: E402
from tests.test_quant_tflite_util import (  # noqa: E402
    convert_int8, int8_inputs, ir_from_tflite, keras_model, op_names, run_ir, run_litert, run_tflm)

import tensorflow as tf  # noqa: E402

K = tf.keras.layers


def _resize(method: str, **kw):
    def build(x):
        if kw.get("half_pixel_centers"):
            return K.Lambda(lambda t: tf.image.resize(t, (11, 7), method=method))(x)
        return K.Lambda(lambda t: tf.compat.v1.image.resize(t, (11, 7), method=method, **kw))(x)
    return build


CASES = {
    "conv_same": (lambda x: K.Conv2D(12, 3, padding="same")(x), [(2, 11, 10, 6)]),
    "conv_valid_stride2": (lambda x: K.Conv2D(8, 5, strides=2, padding="valid")(x), [(1, 17, 16, 6)]),
    "conv_dilated": (lambda x: K.Conv2D(6, 3, dilation_rate=2, padding="same")(x), [(1, 12, 12, 4)]),
    "conv_relu6_fused": (lambda x: K.ReLU(6.0)(K.Conv2D(8, 3, padding="same")(x)), [(1, 9, 9, 3)]),
    "conv_relu_fused": (lambda x: K.ReLU()(K.Conv2D(8, 3, strides=2, padding="same")(x)), [(1, 9, 9, 3)]),
    "conv_grouped": (lambda x: K.Conv2D(8, 3, groups=2, padding="same")(x), [(1, 6, 6, 4)]),
    "depthwise": (lambda x: K.DepthwiseConv2D(3, padding="same")(x), [(1, 10, 10, 8)]),
    "depthwise_mult_stride": (
        lambda x: K.DepthwiseConv2D(3, strides=2, depth_multiplier=3, padding="same")(x), [(1, 15, 15, 4)]),
    "transpose_conv_same": (lambda x: K.Conv2DTranspose(6, 3, strides=2, padding="same")(x), [(1, 5, 5, 4)]),
    "transpose_conv_valid": (lambda x: K.Conv2DTranspose(6, 3, strides=2, padding="valid")(x),
                             [(1, 5, 5, 4)]),
    "transpose_conv_k4": (lambda x: K.Conv2DTranspose(6, 4, strides=2, padding="same")(x), [(1, 5, 6, 4)]),
    "dense": (lambda x: K.Dense(33)(x), [(4, 100)]),
    "dense_relu_3d": (lambda x: K.Dense(9, activation="relu")(x), [(2, 3, 20)]),
    "add": (lambda a, b: K.Add()([a, b]), [(2, 6, 6, 8), (2, 6, 6, 8)]),
    "add_broadcast": (lambda a, b: K.Lambda(lambda t: t[0] + t[1])([a, b]), [(2, 4, 4, 8), (1, 1, 1, 8)]),
    "sub_relu": (lambda a, b: K.ReLU()(K.Subtract()([a, b])), [(1, 6, 6, 4), (1, 6, 6, 4)]),
    "mul": (lambda a, b: K.Multiply()([a, b]), [(2, 6, 6, 8), (2, 6, 6, 8)]),
    "mul_const": (lambda a: K.Lambda(lambda t: t * tf.constant(np.linspace(-2, 3, 8).astype(np.float32)))(a),
                  [(2, 4, 4, 8)]),
    "avg_pool_same": (lambda x: K.AveragePooling2D(3, strides=2, padding="same")(x), [(1, 13, 13, 6)]),
    "avg_pool_valid": (lambda x: K.AveragePooling2D(2)(x), [(1, 7, 7, 4)]),
    "max_pool": (lambda x: K.MaxPooling2D(3, strides=2, padding="same")(x), [(1, 9, 9, 4)]),
    "mean_spatial": (lambda x: K.GlobalAveragePooling2D(keepdims=True)(x), [(2, 7, 9, 8)]),
    "mean_axis1": (lambda x: K.Lambda(lambda t: tf.reduce_mean(t, axis=[1]))(x), [(2, 13, 11, 4)]),
    "reduce_max": (lambda x: K.GlobalMaxPooling2D(keepdims=True)(x), [(1, 5, 6, 3)]),
    "softmax": (lambda x: K.Softmax()(x), [(6, 40)]),
    "softmax_3d": (lambda x: K.Softmax()(x), [(2, 3, 20)]),
    "logistic": (lambda x: K.Activation("sigmoid")(x), [(4, 256)]),
    "tanh": (lambda x: K.Activation("tanh")(x), [(4, 256)]),
    "hard_swish": (lambda x: K.Activation("hard_swish")(x), [(4, 256)]),
    "relu": (lambda x: K.ReLU()(x), [(2, 128)]),
    "relu6": (lambda x: K.ReLU(6.0)(x), [(2, 128)]),
    "relu_n1_to_1": (lambda x: K.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0))(x), [(2, 128)]),
    "leaky_relu": (lambda x: K.LeakyReLU(0.3)(x), [(2, 128)]),
    "prelu": (lambda x: K.PReLU(shared_axes=[1, 2])(x), [(1, 5, 5, 4)]),
    "concat": (lambda a, b: K.Concatenate()([K.ReLU()(a), b]), [(1, 4, 4, 3), (1, 4, 4, 2)]),
    "pad": (lambda x: K.ZeroPadding2D(((1, 2), (0, 1)))(x), [(1, 4, 4, 3)]),
    "pad_value": (lambda x: K.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [2, 0], [0, 0]],
                                                      constant_values=0.7))(x), [(1, 4, 4, 3)]),
    "mirror_pad": (lambda x: K.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [2, 1], [0, 0]],
                                                       mode="REFLECT"))(x), [(1, 4, 4, 3)]),
    "reshape_dense": (lambda x: K.Dense(5)(K.Flatten()(x)), [(2, 3, 3, 4)]),
    "transpose": (lambda x: K.Permute((3, 1, 2))(x), [(1, 4, 5, 3)]),
    "strided_slice": (lambda x: K.Lambda(lambda t: t[:, 1:3, ::2, :])(x), [(1, 4, 5, 3)]),
    "resize_bilinear": (_resize("bilinear"), [(1, 5, 6, 3)]),
    "resize_bilinear_half_pixel": (_resize("bilinear", half_pixel_centers=True), [(1, 5, 6, 3)]),
    "resize_bilinear_align_corners": (_resize("bilinear", align_corners=True), [(1, 5, 6, 3)]),
    "resize_nearest": (_resize("nearest"), [(1, 5, 6, 3)]),
    "resize_nearest_half_pixel": (_resize("nearest", half_pixel_centers=True), [(1, 5, 6, 3)]),
    "resize_nearest_align_corners": (_resize("nearest", align_corners=True), [(1, 5, 6, 3)]),
}
NOT_IN_TFLM = {"relu_n1_to_1", "gelu"}
"""TFLite Micro has no RELU_N1_TO_1 or GELU kernel."""
TFLM_IGNORES_OUTPUT_PARAMS = {"relu6"}
"""TFLite Micro's RELU6 is a clamp at the input's parameters; the converter gives a standalone RELU6
other output parameters, so TFLite Micro's answer there is not the op's (LiteRT requantizes)."""


# ------------------------------------------------------------------- LiteRT's own formulas (test-local)
def _litert_fully_connected(inputs, in_q, out_q, attrs):
    """LiteRT's reference FULLY_CONNECTED: acc * (s_x * s_w / s_y) in double, C ``round``."""
    a, b, c = inputs[:3]
    qa, qb, qy = in_q[0], in_q[1], out_q[0]
    w = b.T if attrs["transB"] else b
    acc = (a.astype(np.int64) - qa.zp) @ (w.astype(np.int64) - (0 if qb.per_channel else qb.zp))
    acc = acc + (c.astype(np.int64) if c is not None else 0)
    real = np.float64(qa.s) * qb.scale.astype(np.float64) / np.float64(qy.s)
    lo, hi = activation_range(attrs, qy)
    return [saturate(fx.round_half_away(acc * real).astype(np.int64) + qy.zp, qy.dtype, lo, hi)]


def _litert_lut(fn):
    """LiteRT's int8 LOGISTIC/TANH: ``LUTPopulate`` in float32 (the function correctly rounded)."""
    def kernel(inputs, in_q, out_q, attrs):
        qx, qy = in_q[0], out_q[0]
        vals = np.arange(-128, 128)
        deq = (qx.s * (vals - qx.zp).astype(F32)).astype(F32)
        with np.errstate(all="ignore"):
            out = fx.round_half_away((fn(deq) * (F32(1.0) / qy.s)).astype(F32)) + qy.zp
        table = saturate(out, qy.dtype)
        return [table[inputs[0].astype(np.int64) + 128]]
    return kernel


def _sigmoid_f32(x):
    e = np.exp(-x.astype(np.float64)).astype(F32)
    return (F32(1.0) / (F32(1.0) + e)).astype(F32)


def _litert_hard_swish(inputs, in_q, out_q, attrs):
    """LiteRT's HARD_SWISH: the same kernel, its multipliers divided in float32."""
    qx, qy = in_q[0], out_q[0]
    hires = F32(F32(1.0 / 128.0) * qx.s)
    return [hard_swish_int8(inputs[0], qx, qy, F32(hires / qy.s), F32(hires / F32(3.0 / 32768.0)))]


def _litert_relu(inputs, in_q, out_q, attrs):
    """LiteRT's RELU: s_x / s_y divided in float32 (TFLite Micro divides in double)."""
    qx, qy = in_q[0], out_q[0]
    lo = max(qy.qmin, qy.zp)
    return [relu_x(inputs[0], qx, qy, lo, qy.qmax, F32(qx.s / qy.s))]


def _litert_mul(inputs, in_q, out_q, attrs):
    """LiteRT's MUL: s_1 s_2 / s_y in float32 (TFLite Micro: double)."""
    qa, qb, qy = in_q[0], in_q[1], out_q[0]
    return [mul_int8(inputs[0], inputs[1], qa, qb, qy, F32(F32(qa.s * qb.s) / qy.s), attrs)]


def _litert_prelu(inputs, in_q, out_q, attrs):
    """LiteRT's PRELU: its two multipliers in float32 (TFLite Micro: double)."""
    qx, qa, qy = in_q[0], in_q[1], out_q[0]
    return [prelu_int8(inputs[0], inputs[1], qx, qa, qy, F32(qx.s / qy.s), F32(F32(qx.s * qa.s) / qy.s))]


LITERT_FORMULAS = {"FULLY_CONNECTED": ("Gemm", _litert_fully_connected), "RELU": ("Relu", _litert_relu),
                   "MUL": ("Mul", _litert_mul), "PRELU": ("PRelu", _litert_prelu),
                   "LOGISTIC": ("Sigmoid", _litert_lut(_sigmoid_f32)),
                   "TANH": ("Tanh", _litert_lut(lambda x: np.tanh(x.astype(np.float64)).astype(F32))),
                   "HARD_SWISH": ("HardSwish", _litert_hard_swish)}


NOT_IN_LITERT_REF = frozenset({"ELU"})
"""Ops LiteRT's reference op resolver does not register (its optimized resolver has them)."""


def check_model(buf: bytes, inputs, monkeypatch, name: str = "") -> dict:
    """Assert IR == TFLite Micro and IR == LiteRT (or LiteRT == the IR with LiteRT's formula)."""
    graph = ir_from_tflite(buf)
    ir = run_ir(graph, inputs)
    no_ref = NOT_IN_LITERT_REF & set(op_names(buf))
    litert = run_litert(buf, inputs) if not no_ref else None
    stats = {"elements": sum(a.size for a in ir), "litert_diff": 0}
    if name not in NOT_IN_TFLM | TFLM_IGNORES_OUTPUT_PARAMS:
        micro = run_tflm(buf, inputs)
        assert micro is not None or not no_ref, f"{name}: neither LiteRT's reference kernels nor TFLM run it"
        if micro is not None:
            for a, b in zip(ir, micro):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: IR vs TFLite Micro")
    if no_ref:  # LiteRT's BUILTIN_REF resolver has no kernel for these: TFLite Micro is the oracle
        return stats
    differing = [LITERT_FORMULAS[op] for op in op_names(buf) if op in LITERT_FORMULAS]
    if not differing:
        for a, b in zip(ir, litert):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: IR vs LiteRT")
        return stats
    for a, b in zip(ir, litert):
        assert np.max(np.abs(a.astype(np.int64) - b), initial=0) <= 1, f"{name}: IR vs LiteRT beyond one step"
        stats["litert_diff"] += int(np.sum(a != b))
    with monkeypatch.context() as m:
        for op, kernel in differing:
            m.setattr(get_schema(op), "qkernel", kernel)
        for a, b in zip(run_ir(graph, inputs), litert):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: LiteRT's formula vs LiteRT")
    return stats


@pytest.mark.parametrize("name", sorted(CASES))
def test_single_op_bit_exact(name, monkeypatch):
    build, shapes = CASES[name]
    for seed, scale in ((0, 1.0), (1, 0.05), (2, 6.0)):
        buf = convert_int8(keras_model(build, shapes, seed=seed), shapes, seed=seed, scale=scale)
        check_model(buf, int8_inputs(buf, seed), monkeypatch, name)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "hard_swish", "relu", "leaky_relu", "dense_relu6", "elu",
                                 "gelu"])
def test_activations_over_the_whole_int8_range(act, monkeypatch):
    """Every one of the 256 input values, for many calibrations (scales and zero points)."""
    layer = {"sigmoid": lambda x: K.Activation("sigmoid")(x), "tanh": lambda x: K.Activation("tanh")(x),
             "hard_swish": lambda x: K.Activation("hard_swish")(x), "relu": lambda x: K.ReLU()(x),
             "leaky_relu": lambda x: K.LeakyReLU(0.1)(x), "elu": lambda x: K.Activation("elu")(x),
             "gelu": lambda x: K.Activation("gelu")(x),
             "dense_relu6": lambda x: K.ReLU(6.0)(K.Dense(256)(x))}[act]
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    differing = 0
    for seed in range(3):
        for scale in (0.01, 0.3, 2.0, 9.0):
            buf = convert_int8(keras_model(layer, [(1, 256)], seed=seed), [(1, 256)], seed=seed, scale=scale,
                               sample=lambda r, s: (r.normal(size=s) * scale + r.uniform(-1, 1) * scale)
                               .astype(np.float32))
            differing += check_model(buf, [x], monkeypatch, act)["litert_diff"]
    assert differing < 0.01 * 12 * 256


def convert_16x8(model, shapes, seed=0) -> bytes:
    """TFLite's 16x8 mode: int16 activations, int8 weights, int64 biases."""
    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(16):
            yield [rng.normal(size=s).astype(np.float32) for s in shapes]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    return conv.convert()


@pytest.mark.parametrize("name", ["conv_same", "depthwise", "dense", "add", "mul", "avg_pool_valid",
                                  "max_pool", "mean_spatial", "relu", "concat"])
def test_16x8_mode_bit_exact(name, monkeypatch):
    build, shapes = CASES[name]
    buf = convert_16x8(keras_model(build, shapes), shapes)
    assert "int16" in str(run_litert(buf, int8_inputs(buf))[0].dtype)
    check_model(buf, int8_inputs(buf), monkeypatch, name)


def test_requantize_is_tflite_quantize():
    """The int16 CONCATENATION of inputs with other parameters makes the converter insert QUANTIZE ops
    (int16 -> int16 requantization), which the IR reads as QuantizeLinear on a quantized tensor."""
    build, shapes = CASES["concat"]
    buf = convert_16x8(keras_model(build, shapes), shapes)
    assert "QUANTIZE" in op_names(buf)
    inputs = int8_inputs(buf)
    np.testing.assert_array_equal(run_ir(ir_from_tflite(buf), inputs)[0], run_litert(buf, inputs)[0])
