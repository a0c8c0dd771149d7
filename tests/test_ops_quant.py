"""The quant family (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul,
QLinearConv) against onnxruntime, bit-exact.

Each case runs the ONNX model in onnxruntime, the IR in the reference interpreter and the re-exported
model in onnxruntime (``check_onnx_model`` with zero tolerance for integer outputs), including exports
at older opsets and the refusals where an opset lacks a feature.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.canonical_ir.passes import infer_shapes
from convertkit.errors import ConvertError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, ort_run
from tests.test_ops_reduce import node_model

RNG = np.random.default_rng(3)
EXACT = {"rtol": 0, "atol": 0}


def elem(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def qrand(dtype, shape) -> np.ndarray:
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def with_ties(shape, scale: float) -> np.ndarray:
    """Values whose quotient by ``scale`` is often exactly k + 0.5, plus out-of-range ones."""
    halves = (RNG.integers(-300, 300, shape) + 0.5) * scale
    wide = RNG.standard_normal(shape) * 200 * scale
    return np.where(RNG.random(shape) < 0.5, halves, wide).astype(np.float32)


# ------------------------------------------------------------------------------ QuantizeLinear
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("opset", [10, 13, 19])
def test_quantize_per_tensor_rounds_half_to_even_and_saturates(dtype, opset):
    scale, zp = np.float32(0.25), np.array(3 if dtype == np.uint8 else -2, dtype)
    x = with_ties([4, 64], 0.25)
    m = node_model("QuantizeLinear", [("x", ["N", 64], TP.FLOAT)], [("y", elem(dtype))],
                   inits={"s": scale, "zp": zp}, opset=opset)
    check_onnx_model(m, {"x": x}, **EXACT, opset=max(opset, 11))


def test_quantize_without_zero_point_is_uint8():
    m = node_model("QuantizeLinear", [("x", [16], TP.FLOAT)], [("y", TP.UINT8)], inits={"s": np.float32(0.1)},
                   opset=13)
    check_onnx_model(m, {"x": with_ties([16], 0.1)}, **EXACT)


@pytest.mark.parametrize("axis", [1, -1, 0])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_quantize_per_axis(axis, dtype):
    shape = [3, 4, 5]
    n = shape[axis]
    scale = RNG.uniform(0.05, 0.5, n).astype(np.float32)
    zp = qrand(dtype, n) // 4
    m = node_model("QuantizeLinear", [("x", shape, TP.FLOAT)], [("y", elem(dtype))],
                   inits={"s": scale, "zp": zp}, opset=13, axis=axis)
    check_onnx_model(m, {"x": with_ties(shape, 0.05)}, **EXACT)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_quantize_16_bit(dtype):
    m = node_model("QuantizeLinear", [("x", [64], TP.FLOAT)], [("y", elem(dtype))],
                   inits={"s": np.float32(0.001), "zp": np.array(100, dtype)}, opset=21)
    check_onnx_model(m, {"x": (RNG.standard_normal(64) * 40).astype(np.float32)}, **EXACT)


@pytest.mark.parametrize("zero_point", [True, False])
def test_quantize_blocked(zero_point):
    x = with_ties([3, 8], 0.1)
    scale = RNG.uniform(0.05, 0.3, (3, 3)).astype(np.float32)  # blocks of 3 over 8 columns: 3, 3, 2
    inits = {"s": scale, "zp": qrand(np.int8, (3, 3)) // 8} if zero_point else {"s": scale}
    attrs = {} if zero_point else {"output_dtype": TP.INT8}
    m = node_model("QuantizeLinear", [("x", [3, 8], TP.FLOAT)], [("y", TP.INT8)], inits=inits, opset=21,
                   axis=1, block_size=3, **attrs)
    check_onnx_model(m, {"x": x}, **EXACT)


def test_quantize_float16_input():
    x = with_ties([32], 0.125).astype(np.float16)
    m = node_model("QuantizeLinear", [("x", [32], TP.FLOAT16)], [("y", TP.INT8)],
                   inits={"s": np.float16(0.125), "zp": np.int8(1)}, opset=19)
    check_onnx_model(m, {"x": x}, **EXACT)


def test_quantize_output_dtype_exports_before_opset_21_as_zero_point():
    m = node_model("QuantizeLinear", [("x", [2, 8], TP.FLOAT)], [("y", TP.INT8)],
                   inits={"s": np.float32(0.05)}, opset=21, output_dtype=TP.INT8)
    for opset in (13, 21):
        check_onnx_model(m, {"x": with_ties([2, 8], 0.05)}, **EXACT, opset=opset)


@pytest.mark.parametrize("attrs,inits,opset,needed", [
    ({"axis": 1}, {"s": np.full(4, 0.1, np.float32)}, 11, "13"),
    ({"axis": 1, "block_size": 2}, {"s": np.full((2, 2), 0.1, np.float32)}, 19, "21"),
    ({}, {"s": np.float32(0.1), "zp": np.int16(0)}, 19, "21")])
def test_quantize_export_refuses_features_of_newer_opsets(attrs, inits, opset, needed):
    out = elem(inits["zp"].dtype) if "zp" in inits else TP.UINT8
    m = node_model("QuantizeLinear", [("x", [2, 4], TP.FLOAT)], [("y", out)], inits=inits, opset=21, **attrs)
    g = normalize(from_model(m))
    with pytest.raises(ConvertError, match=f"opset {needed}"):
        to_model(g, opset=opset)


def test_quantize_float8_is_refused_clearly():
    m = node_model("QuantizeLinear", [("x", [4], TP.FLOAT)], [("y", TP.FLOAT8E4M3FN)],
                   inits={"s": np.float32(1)}, opset=21, output_dtype=TP.FLOAT8E4M3FN)
    with pytest.raises(ConvertError, match="not support"):
        normalize(from_model(m))


# ---------------------------------------------------------------------------- DequantizeLinear
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_dequantize_per_tensor(dtype):
    x = qrand(dtype, (4, 6)) if dtype != np.int32 else RNG.integers(-(2 ** 20), 2 ** 20, (4, 6)).astype(dtype)
    inits = {"s": np.float32(0.037)}
    if dtype != np.int32:
        inits["zp"] = np.array(5, dtype)
    m = node_model("DequantizeLinear", [("x", ["N", 6], elem(dtype))], [("y", TP.FLOAT)], inits=inits,
                   opset=13)
    check_onnx_model(m, {"x": x}, rtol=0, atol=0, opset=11)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_dequantize_per_axis(axis):
    shape = [2, 3, 4]
    scale = RNG.uniform(0.01, 0.2, shape[axis]).astype(np.float32)
    m = node_model("DequantizeLinear", [("x", shape, TP.INT8)], [("y", TP.FLOAT)],
                   inits={"s": scale, "zp": qrand(np.int8, shape[axis])}, opset=13, axis=axis)
    check_onnx_model(m, {"x": qrand(np.int8, shape)}, **EXACT)


def test_dequantize_blocked_and_16_bit():
    m = node_model("DequantizeLinear", [("x", [4, 6], TP.UINT16)], [("y", TP.FLOAT)],
                   inits={"s": RNG.uniform(0.01, 0.1, (2, 6)).astype(np.float32),
                          "zp": qrand(np.uint16, (2, 6))}, opset=21, axis=0, block_size=2)
    check_onnx_model(m, {"x": qrand(np.uint16, (4, 6))}, **EXACT)


def test_dequantize_float16_scale_and_output_dtype():
    m = node_model("DequantizeLinear", [("x", [8], TP.INT8)], [("y", TP.FLOAT16)],
                   inits={"s": np.float16(0.0625), "zp": np.int8(-3)}, opset=19)
    check_onnx_model(m, {"x": qrand(np.int8, 8)}, **EXACT)


def test_dequantize_per_axis_export_needs_opset_13():
    m = node_model("DequantizeLinear", [("x", [2, 3], TP.UINT8)], [("y", TP.FLOAT)],
                   inits={"s": np.full(3, 0.5, np.float32)}, opset=13)
    g = normalize(from_model(m))
    with pytest.raises(ConvertError, match="per-axis.*opset 13"):
        to_model(g, opset=11)


def test_quantize_dequantize_chain_keeps_quant_params():
    """An imported Q/DQ pair records its parameters on the quantized tensor (DESIGN: kept, not lost)."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], axis=0),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], axis=0)]
    s, zp = np.array([0.1, 0.2], np.float32), np.array([1, -1], np.int8)
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TP.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, [2, 5])],
                              initializer=[helper.make_tensor("s", TP.FLOAT, [2], s),
                                           helper.make_tensor("zp", TP.INT8, [2], zp)])
    ops = [helper.make_opsetid("", 13)]
    m = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    check_onnx_model(m, {"x": with_ties([2, 5], 0.1)})
    q = from_model(m).tensor("q").quant
    assert q is not None and q.axis == 0
    np.testing.assert_array_equal(q.scale, s)
    np.testing.assert_array_equal(q.zero_point, zp)


# ----------------------------------------------------------------------- DynamicQuantizeLinear
@pytest.mark.parametrize("kind", ["mixed", "positive", "negative", "zeros", "ties"])
def test_dynamic_quantize_linear(kind):
    x = {"mixed": RNG.standard_normal((3, 7)) * 4, "positive": RNG.uniform(0.1, 9, (3, 7)),
         "negative": -RNG.uniform(0.1, 9, (3, 7)), "zeros": np.zeros((3, 7)),
         "ties": np.linspace(-2.55, 2.55, 21).reshape(3, 7)}[kind].astype(np.float32)
    m = node_model("DynamicQuantizeLinear", [("x", ["N", 7], TP.FLOAT)],
                   [("y", TP.UINT8), ("s", TP.FLOAT), ("zp", TP.UINT8)], opset=11)
    check_onnx_model(m, {"x": x}, **EXACT)


# ------------------------------------------------------------------------------ QLinearMatMul
@pytest.mark.parametrize("a_dt,b_dt,y_dt", [(np.uint8, np.uint8, np.uint8), (np.int8, np.int8, np.int8),
                                            (np.uint8, np.int8, np.uint8)])
@pytest.mark.parametrize("b_per_column", [False, True])
def test_qlinear_matmul(a_dt, b_dt, y_dt, b_per_column):
    b = qrand(b_dt, (16, 5))
    bs = RNG.uniform(0.005, 0.02, 5).astype(np.float32) if b_per_column else np.float32(0.011)
    bz = (qrand(b_dt, 5) // 16) if b_per_column else np.array(2, b_dt)
    inits = {"as": np.float32(0.023), "az": np.array(9, a_dt), "b": b, "bs": bs, "bz": bz,
             "ys": np.float32(0.37), "yz": np.array(7, y_dt)}
    m = node_model("QLinearMatMul", [("a", ["N", 3, 16], elem(a_dt))], [("y", elem(y_dt))], inits=inits,
                   opset=10, input_names=["a", "as", "az", "b", "bs", "bz", "ys", "yz"])
    check_onnx_model(m, {"a": qrand(a_dt, (2, 3, 16))}, **EXACT, opset=11)


def test_qlinear_matmul_half_scales_need_opset_21():
    inits = {"as": np.float16(0.02), "az": np.uint8(3), "b": qrand(np.uint8, (4, 2)), "bs": np.float16(0.03),
             "bz": np.uint8(1), "ys": np.float16(0.1), "yz": np.uint8(5)}
    m = node_model("QLinearMatMul", [("a", [3, 4], TP.UINT8)], [("y", TP.UINT8)], inits=inits, opset=21,
                   input_names=["a", "as", "az", "b", "bs", "bz", "ys", "yz"])
    check_onnx_model(m, {"a": qrand(np.uint8, (3, 4))}, **EXACT)
    with pytest.raises(ConvertError, match="opset 21"):
        to_model(normalize(from_model(m)), opset=19)


# -------------------------------------------------------------------------------- QLinearConv
CONV_CASES = [
    {"shape": (1, 4, 9, 9), "w": (6, 4, 3, 3)},
    {"shape": (2, 4, 10, 7), "w": (6, 4, 3, 3), "pads": [1, 2, 0, 1], "strides": [2, 1]},
    {"shape": (1, 6, 9, 9), "w": (6, 2, 3, 3), "group": 3, "dilations": [2, 2]},
    {"shape": (1, 4, 8, 8), "w": (4, 1, 3, 3), "group": 4, "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"shape": (1, 3, 7, 8), "w": (5, 3, 2, 2), "auto_pad": "SAME_LOWER"},
    {"shape": (2, 3, 12), "w": (4, 3, 5), "pads": [2, 2], "strides": [3]},
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("x_dt,w_dt", [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.int8)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv_bit_exact(case, x_dt, w_dt, per_channel):
    c = dict(CONV_CASES[case])
    shape, w_shape = c.pop("shape"), c.pop("w")
    m_out = w_shape[0]
    w_zp = np.array(0, w_dt) if w_dt == np.int8 else np.array(100, w_dt)  # int8 weights are symmetric
    inits = {"xs": np.float32(0.0123), "xz": np.array(11, x_dt), "w": qrand(w_dt, w_shape),
             "ws": RNG.uniform(0.002, 0.02, m_out).astype(np.float32) if per_channel else np.float32(0.007),
             "wz": np.full(m_out, w_zp, w_dt) if per_channel else w_zp, "ys": np.float32(0.051),
             "yz": np.array(-3 if x_dt == np.int8 else 120, x_dt),
             "B": RNG.integers(-3000, 3000, m_out, np.int32)}
    m = node_model("QLinearConv", [("x", ["N", *shape[1:]], elem(x_dt))], [("y", elem(x_dt))], inits=inits,
                   opset=10, input_names=["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "B"], **c)
    check_onnx_model(m, {"x": qrand(x_dt, shape)}, **EXACT, opset=11)


def test_qlinear_conv_channels_last_matches_onnxruntime():
    """An NHWC QLinearConv (weights [M, kh, kw, C/group], as Conv's) equals onnxruntime's NCHW one."""
    x, w = qrand(np.uint8, (1, 4, 6, 6)), qrand(np.int8, (6, 2, 3, 3))
    ws = RNG.uniform(0.01, 0.03, 6).astype(np.float32)
    params = {"xs": np.float32(0.02), "xz": np.uint8(128), "ws": ws, "wz": np.zeros(6, np.int8),
              "ys": np.float32(0.09), "yz": np.uint8(100)}
    attrs = {"group": 2, "pads": [1, 1, 1, 1]}
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    m = node_model("QLinearConv", [("x", [1, 4, 6, 6], TP.UINT8)], [("y", TP.UINT8)],
                   inits={**params, "w": w}, opset=10, input_names=names, **attrs)
    expected = ort_run(m, {"x": x})[0]
    g = Graph("nhwc")
    g.add_input("x", np.uint8, ("N", 6, 6, 4))
    ins = ["x"] + [g.add_const(np.asarray(params[k]), k) for k in ("xs", "xz")] + \
        [g.add_const(np.transpose(w, (0, 2, 3, 1)), "w")] + [g.add_const(np.asarray(params[k]), k)
                                                             for k in ("ws", "wz", "ys", "yz")]
    g.add_node("QLinearConv", ins, ["y"], {**attrs, "layout": "NHWC"})
    g.outputs = ["y"]
    infer_shapes(g)
    assert g.tensor("y").shape == ("N", 6, 6, 6)
    got = run(g, {"x": np.transpose(x, (0, 2, 3, 1))})["y"]
    np.testing.assert_array_equal(got, np.transpose(expected, (0, 2, 3, 1)))


def test_qlinear_macs():
    g = Graph("g")
    names = {k: g.add_const(np.asarray(v), k) for k, v in
             {"s": np.float32(0.1), "z": np.uint8(0), "w": np.zeros((8, 2, 3, 3), np.uint8),
              "b": np.zeros((16, 4), np.uint8)}.items()}
    g.add_input("x", np.uint8, (1, 4, 10, 10))
    s, z = names["s"], names["z"]
    conv = g.add_node("QLinearConv", ["x", s, z, names["w"], s, z, s, z], ["y"],
                      {"group": 2, "pads": [1] * 4})
    g.add_input("a", np.uint8, (3, 16))
    mm = g.add_node("QLinearMatMul", ["a", s, z, names["b"], s, z, s, z], ["m"])
    g.outputs = ["y", "m"]
    infer_shapes(g)
    macs = {n.op: get_schema(n.op).macs(InferContext(g, n, get_schema(n.op))) for n in (conv, mm)}
    assert macs == {"QLinearConv": 8 * 10 * 10 * 2 * 9, "QLinearMatMul": 3 * 4 * 16}
