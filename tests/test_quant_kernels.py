"""Integer kernels through the reference interpreter, on hand-worked graphs (no TensorFlow needed):
dispatch to the int8 kernel, the clear error for an op without one, the TFLite arithmetic on values
that can be checked by hand, requantization, fused activations and shape inference on int8 graphs."""
from __future__ import annotations

import numpy as np
import pytest

from convertkit.canonical_ir.graph import Graph, QuantParams
from convertkit.canonical_ir.interpreter import evaluate_node, run
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION, get_schema
from convertkit.canonical_ir.passes.infer import infer_shapes
from convertkit.canonical_ir.quantize import quantized_ops
from convertkit.errors import ShapeError, UnsupportedOpError

I8 = np.int8


def qp(scale, zp=0, axis=None, dtype=I8) -> QuantParams:
    return QuantParams(np.asarray(scale, np.float32), np.asarray(zp, dtype), axis)


def unary(op: str, x_q: QuantParams, y_q: QuantParams, shape=(1, 8), attrs=None, extra=()) -> Graph:
    g = Graph(op)
    g.add_input("x", I8, shape)
    g.tensor("x").quant = x_q
    g.add_tensor("y", I8, None, quant=y_q)
    g.add_node(op, ["x", *extra], ["y"], attrs or {})
    g.outputs.append("y")
    return g


def test_every_op_of_the_brief_has_an_integer_kernel():
    need = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "AveragePool", "MaxPool", "GlobalAveragePool",
            "ReduceMean", "Softmax", "Sigmoid", "Tanh", "HardSwish", "Relu", "Clip", "LeakyRelu", "PRelu",
            "Concat", "Reshape", "Transpose", "Pad", "Slice", "Squeeze", "Resize", "QuantizeLinear",
            "DequantizeLinear"}
    assert need <= set(quantized_ops())


def test_op_without_integer_kernel_is_an_error_listing_every_node():
    g = Graph("g")
    g.add_input("x", I8, (4,))
    g.tensor("x").quant = qp(0.1)
    for name in ("a", "b"):
        g.add_tensor(name, I8, (4,), quant=qp(0.1))
        g.add_node("Sin", ["x"], [name], name=f"sin_{name}")
    g.add_tensor("c", I8, (4,), quant=qp(0.1))
    g.add_node("Cos", ["a"], ["c"], name="cos_c")
    g.outputs += ["b", "c"]
    with pytest.raises(UnsupportedOpError) as e:
        run(g, {"x": np.zeros(4, I8)})
    assert e.value.missing == {"Cos": ["cos_c"], "Sin": ["sin_a", "sin_b"]}
    assert "no integer kernel" in str(e.value)


def test_float_graphs_still_run_their_float_kernels():
    g = Graph("f")
    g.add_input("x", np.float32, (1, 4))
    g.add_node("Sigmoid", ["x"], ["y"])
    g.outputs.append("y")
    infer_shapes(g)
    x = np.array([[-1, 0, 1, 2]], np.float32)
    np.testing.assert_allclose(run(g, {"x": x})["y"], 1 / (1 + np.exp(-x)), rtol=1e-6)


def test_conv_by_hand_with_a_power_of_two_multiplier():
    # s_x * s_w / s_y = 0.5 * 0.25 / 0.25 = 0.5: y = round_half_up(acc / 2) + zp_y, acc = sum((x - 1) * w) + b
    g = Graph("conv")
    g.add_input("x", I8, (1, 1, 2, 2))
    g.tensor("x").quant = qp(0.5, 1)
    w = g.add_const(np.array([[[[1, 2]]], [[[-3, 1]]]], I8), "w")          # NHWC weights [O=2, 1, 1, I=2]
    g.tensor(w).quant = qp([0.25, 0.25], [0, 0], axis=0)
    b = g.add_const(np.array([1, -2], np.int32), "b")
    g.tensor(b).quant = qp([0.125, 0.125], [0, 0], axis=0, dtype=np.int32)
    g.add_tensor("y", I8, None, quant=qp(0.25, -3))
    g.add_node("Conv", ["x", w, b], ["y"], {"layout": "NHWC"})
    g.outputs.append("y")
    x = np.array([[[[3, 0], [10, 6]]]], I8)                                   # x - 1: [2, -1], [9, 5]
    acc = np.array([[2 * 1 - 1 * 2 + 1, 2 * -3 - 1 * 1 - 2], [9 + 10 + 1, -27 + 5 - 2]])
    expected = np.array([[1, -4], [10, -12]]) - 3        # 0.5 -> 1, -4.5 -> -4 (ties go up), 10, -12
    assert acc.tolist() == [[1, -9], [20, -24]]
    np.testing.assert_array_equal(run(g, {"x": x})["y"], expected.reshape(1, 1, 2, 2).astype(I8))


def test_conv_nchw_equals_nhwc():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 6, 6, 3), dtype=I8)
    w = rng.integers(-127, 128, (4, 3, 3, 3), dtype=I8)
    b = rng.integers(-500, 500, (4,), dtype=np.int32)
    outs = []
    for layout in ("NHWC", "NCHW"):
        g = Graph(layout)
        xs = x if layout == "NHWC" else x.transpose(0, 3, 1, 2)
        ws = w if layout == "NHWC" else w.transpose(0, 3, 1, 2)
        g.add_input("x", I8, xs.shape)
        g.tensor("x").quant = qp(0.05, 3)
        wn = g.add_const(ws, "w")
        g.tensor(wn).quant = qp([0.01, 0.02, 0.03, 0.015], [0] * 4, axis=0)
        bn = g.add_const(b, "b")
        w_scales = np.array([0.01, 0.02, 0.03, 0.015], np.float32)
        g.tensor(bn).quant = qp(np.float32(0.05) * w_scales, [0] * 4, 0, np.int32)
        g.add_tensor("y", I8, None, quant=qp(0.1, -5))
        g.add_node("Conv", ["x", wn, bn], ["y"], {"layout": layout, "pads": [1, 1, 1, 1], "strides": [2, 2]})
        g.outputs.append("y")
        y = run(g, {"x": xs})["y"]
        outs.append(y if layout == "NHWC" else y.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_fused_relu6_equals_a_separate_clip_with_the_same_parameters():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (1, 5, 5, 2), dtype=I8)
    results = []
    w_value = rng.integers(-127, 128, (3, 3, 3, 2), dtype=I8)
    for fused in (True, False):
        g = Graph("g")
        g.add_input("x", I8, x.shape)
        g.tensor("x").quant = qp(0.1, 0)
        w = g.add_const(w_value, "w")
        g.tensor(w).quant = qp([0.02] * 3, [0] * 3, 0)
        y_q = qp(6 / 255, -128)
        g.add_tensor("c", I8, None, quant=y_q)
        attrs = {"layout": "NHWC", "auto_pad": "SAME_UPPER"}
        if fused:
            g.add_node("Conv", ["x", w], ["c"], {**attrs, FUSED_ACTIVATION: ("Clip", 0.0, 6.0)})
            g.outputs.append("c")
        else:
            g.add_node("Conv", ["x", w], ["c"], attrs)
            g.add_tensor("y", I8, None, quant=y_q)
            g.add_node("Clip", ["c", g.add_const(np.float32(0)), g.add_const(np.float32(6))], ["y"])
            g.outputs.append("y")
        results.append(run(g, {"x": x})[g.outputs[0]])
    np.testing.assert_array_equal(results[0], results[1])
    assert results[0].min() >= -128


def test_quantize_linear_rounding_attribute():
    g = Graph("q")
    g.add_input("x", np.float32, (6,))
    s, z = g.add_const(np.float32(1.0), "s"), g.add_const(np.int8(0), "z")
    g.add_node("QuantizeLinear", ["x", s, z], ["even"], name="even")
    g.add_node("QuantizeLinear", ["x", s, z], ["away"], {"rounding": "half_away_from_zero"}, name="away")
    g.outputs += ["even", "away"]
    infer_shapes(g)
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 200.0], np.float32)
    out = run(g, {"x": x})
    assert out["even"].tolist() == [0, 2, 2, 0, -2, 127]
    assert out["away"].tolist() == [1, 2, 3, -1, -3, 127]
    g.node("away").attrs["rounding"] = "up"
    with pytest.raises(ShapeError, match="rounding"):
        infer_shapes(g)


def test_quantize_linear_on_a_quantized_tensor_requantizes():
    g = Graph("rq")
    g.add_input("x", I8, (5,))
    g.tensor("x").quant = qp(0.5, 0)
    g.add_tensor("y", I8, None, quant=qp(1.0, 0))
    g.add_node("QuantizeLinear", ["x", g.add_const(np.float32(1.0)), g.add_const(np.int8(0))], ["y"])
    g.outputs.append("y")
    # x * 0.5 through MultiplyByQuantizedMultiplier: 1.5 -> 2, -1.5 -> -1, 2.5 -> 3
    assert run(g, {"x": np.array([3, -3, 5, -5, 127], I8)})["y"].tolist() == [2, -1, 3, -2, 64]


def test_movement_ops_requantize_when_parameters_differ():
    g = unary("Reshape", qp(0.5, 0), qp(1.0, 0), shape=(2, 2), extra=())
    g.remove_node(g.producer("y"), keep_outputs=True)
    g.add_node("Reshape", ["x", g.add_const(np.array([4], np.int64))], ["y"])
    out = run(g, {"x": np.array([[3, -3], [5, 4]], I8)})["y"]
    assert out.tolist() == [2, -1, 3, 2]
    same = unary("Transpose", qp(0.5, 1), qp(0.5, 1), shape=(2, 3), attrs={"perm": [1, 0]})
    x = np.arange(6, dtype=I8).reshape(2, 3)
    np.testing.assert_array_equal(run(same, {"x": x})["y"], x.T)


def test_concat_requantizes_each_input_to_the_output():
    g = Graph("cat")
    for name, q in (("a", qp(0.5, 0)), ("b", qp(1.0, 0))):
        g.add_input(name, I8, (2,))
        g.tensor(name).quant = q
    g.add_tensor("y", I8, None, quant=qp(1.0, 0))
    g.add_node("Concat", ["a", "b"], ["y"], {"axis": 0})
    g.outputs.append("y")
    assert run(g, {"a": np.array([3, -3], I8), "b": np.array([7, -8], I8)})["y"].tolist() == [2, -1, 7, -8]


def test_relu_and_clip_clamp_at_the_quantized_bounds():
    g = unary("Relu", qp(0.1, -10), qp(0.1, -10))
    x = np.array([[-128, -11, -10, -9, 0, 127, 50, -50]], I8)
    assert run(g, {"x": x})["y"].tolist() == [[-10, -10, -10, -9, 0, 127, 50, -10]]
    c = unary("Clip", qp(0.1, 0), qp(0.1, 0))
    c.set_input(c.producer("y"), 1, c.add_const(np.float32(-1.0)))
    c.set_input(c.producer("y"), 2, c.add_const(np.float32(2.55)))
    x = np.array([[-128, -11, -10, 0, 25, 26, 27, 127]], I8)
    assert run(c, {"x": x})["y"].tolist() == [[-10, -10, -10, 0, 25, 26, 26, 26]]   # 2.55 / 0.1 -> 25.5 -> 26


def test_average_pool_rounds_half_away_from_zero():
    g = unary("AveragePool", qp(0.1, 0), qp(0.1, 0), shape=(1, 1, 1, 4),
              attrs={"layout": "NHWC", "kernel_shape": [1, 2], "strides": [1, 2]})
    g.tensor("x").shape = (1, 1, 4, 1)
    x = np.array([1, 2, -1, -2], I8).reshape(1, 1, 4, 1)             # means 1.5 and -1.5
    assert run(g, {"x": x})["y"].reshape(-1).tolist() == [2, -2]
    pads = unary("AveragePool", qp(0.1, 0), qp(0.1, 0), shape=(1, 1, 4, 1),
                 attrs={"layout": "NHWC", "kernel_shape": [1, 2], "pads": [0, 1, 0, 1],
                        "count_include_pad": 1})
    with pytest.raises(ShapeError, match="count_include_pad"):
        run(pads, {"x": x})


def test_global_average_pool_is_tflite_mean():
    g = unary("GlobalAveragePool", qp(0.1, 3), qp(0.05, -2), shape=(2, 3, 3, 4), attrs={"layout": "NHWC"})
    m = Graph("m")
    m.add_input("x", I8, (2, 3, 3, 4))
    m.tensor("x").quant = qp(0.1, 3)
    m.add_tensor("y", I8, None, quant=qp(0.05, -2))
    m.add_node("ReduceMean", ["x", m.add_const(np.array([1, 2], np.int64))], ["y"], {"keepdims": 1})
    m.outputs.append("y")
    x = np.random.default_rng(3).integers(-128, 128, (2, 3, 3, 4), dtype=I8)
    a, b = run(g, {"x": x})["y"], run(m, {"x": x})["y"]
    np.testing.assert_array_equal(a, b)
    exact = ((x.astype(np.float64) - 3) * 0.1).mean(axis=(1, 2), keepdims=True) / 0.05 - 2
    # 1/count folded into the multiplier, then TFLite's two roundings: within one step, not half
    assert np.max(np.abs(a - exact)) < 1 and np.max(np.abs(a - exact)) > 0.5


def test_softmax_and_sigmoid_require_tflite_output_parameters():
    bad = unary("Softmax", qp(0.1, 0), qp(0.01, 0), attrs={"axis": -1})
    with pytest.raises(ShapeError, match="1/256|0.00390625"):
        run(bad, {"x": np.zeros((1, 8), I8)})
    good = unary("Softmax", qp(0.1, 0), qp(1 / 256, -128), attrs={"axis": -1})
    y = run(good, {"x": np.array([[0, 0, 0, 0, 0, 0, 0, 0]], I8)})["y"]
    assert y.tolist() == [[-96] * 8]                               # 1/8 = 32/256 -> -128 + 32
    with pytest.raises(ShapeError, match="scale 1/256"):
        run(unary("Sigmoid", qp(0.1, 0), qp(0.1, 0)), {"x": np.zeros((1, 8), I8)})


def test_sigmoid_tanh_are_monotone_and_close_to_the_real_functions():
    x = np.arange(-128, 128, dtype=I8).reshape(1, 256)
    for op, y_q, fn in (("Sigmoid", qp(1 / 256, -128), lambda v: 1 / (1 + np.exp(-v))),
                        ("Tanh", qp(1 / 128, 0), np.tanh)):
        y = run(unary(op, qp(0.05, 3), y_q, shape=(1, 256)), {"x": x})["y"][0].astype(np.int64)
        assert np.all(np.diff(y) >= 0)
        real = fn((x[0].astype(np.float64) - 3) * 0.05) / float(y_q.scale) + int(y_q.zero_point)
        assert np.max(np.abs(y - np.clip(real, -128, 127))) <= 1


def test_hybrid_nodes_are_refused():
    g = Graph("h")
    g.add_input("x", np.float32, (1, 4))
    w = g.add_const(np.ones((2, 4), I8), "w")
    g.tensor(w).quant = qp([0.1, 0.1], [0, 0], 0)
    g.add_tensor("y", np.float32, (1, 2))
    g.add_node("Gemm", ["x", w], ["y"], {"transB": 1})
    g.outputs.append("y")
    with pytest.raises(ShapeError, match="hybrid"):
        run(g, {"x": np.ones((1, 4), np.float32)})


def test_shape_inference_on_quantized_graphs_keeps_storage_types():
    g = unary("Sigmoid", qp(0.05, 0), qp(1 / 256, -128), shape=("N", 8))
    g.add_tensor("z", I8, None, quant=qp(1 / 256, -128))
    g.add_node("Reshape", ["y", g.add_const(np.array([-1, 2, 4], np.int64))], ["z"])
    g.outputs[:] = ["z"]
    infer_shapes(g)
    assert g.tensor("y").dtype == I8 and g.tensor("y").shape == ("N", 8)
    assert g.tensor("z").dtype == I8 and g.tensor("z").shape[1:] == (2, 4)
    g.validate()


def test_evaluate_node_uses_the_integer_kernel():
    g = unary("Relu", qp(0.1, -10), qp(0.1, -10))
    (out,) = evaluate_node(g, g.producer("y"), [np.array([-20, 5], I8)])
    assert out.tolist() == [-10, 5]
    assert get_schema("Relu").qkernel is not None


def test_matmul_with_constant_weights_equals_gemm():
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (3, 10), dtype=I8)
    w = rng.integers(-127, 128, (10, 6), dtype=I8)
    scales = rng.uniform(0.001, 0.01, 6).astype(np.float32)
    outs = []
    cases = (("MatMul", w, 1, {}), ("Gemm", np.ascontiguousarray(w.T), 0, {"transB": 1}))
    for op, weight, axis, attrs in cases:
        g = Graph(op)
        g.add_input("a", I8, a.shape)
        g.tensor("a").quant = qp(0.02, -4)
        wn = g.add_const(weight, "w")
        g.tensor(wn).quant = qp(scales, [0] * 6, axis)
        g.add_tensor("y", I8, None, quant=qp(0.05, 2))
        g.add_node(op, ["a", wn], ["y"], attrs)
        g.outputs.append("y")
        outs.append(run(g, {"a": a})["y"])
    np.testing.assert_array_equal(outs[0], outs[1])
    exact = ((a.astype(np.float64) + 4) * 0.02) @ (w * scales) / 0.05 + 2
    assert np.max(np.abs(outs[0] - np.clip(exact, -128, 127))) <= 1
