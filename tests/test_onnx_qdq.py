"""Quantized models to ONNX as QDQ (float ops between DequantizeLinear and QuantizeLinear), without
requantizing: int8 weights, int32 biases and every scale/zero point cross unchanged, and onnxruntime's
outputs stay within one quantization step of the IR's int8 reference (TFLite Micro's arithmetic)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from convertkit import api
from convertkit.canonical_ir.interpreter import run
from tests.conftest import ROOT
from tests.onnx_check import ort_run

MODELS = ROOT.parent / "shared" / "models" / "mlperf_tiny"
INT8 = {"ad01": "anomaly_detection/ad01_int8.tflite", "kws": "keyword_spotting/kws_ref_model.tflite",
        "resnet8": "image_classification/pretrainedResnet_quant.tflite",
        "vww": "visual_wake_words/vww_96_int8.tflite"}


def _int8_feeds(graph, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    name = graph.inputs[0]
    shape = tuple(graph.tensor(name).shape)
    return [{name: rng.integers(-128, 128, shape).astype(np.int8)} for _ in range(n)]


def _weight_scales(graph) -> set[tuple]:
    return {tuple(np.asarray(t.quant.scale, np.float32).reshape(-1).tolist()) for t in graph.tensors
            if t.is_const and t.quant is not None}


@pytest.mark.parametrize("model", sorted(INT8))
def test_int8_tflite_to_qdq_onnx(model: str, tmp_path: Path) -> None:
    path = MODELS / INT8[model]
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared models folder is not beside the repository)")
    graph = api.load(path)
    out = api.convert(path, to="onnx", output=tmp_path / f"{model}.onnx")
    m = onnx.load(out)
    ops = [n.op_type for n in m.graph.node]
    inner = [n for n in m.graph.node if n.op_type == "Transpose" and n.input[0] != m.graph.input[0].name]
    assert not inner and ops.count("QuantizeLinear") >= 1  # (one Transpose may keep the NHWC interface)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    dq_inputs = [inits[n.input[0]] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert dq_inputs and all(v.dtype in (np.int8, np.int32) for v in dq_inputs)
    dq_scales = {tuple(inits[n.input[1]].astype(np.float32).reshape(-1).tolist())
                 for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    assert _weight_scales(graph) <= dq_scales, "weight scales changed on the way"
    for feed in _int8_feeds(graph, 4):
        ref = run(graph, feed)[graph.outputs[0]].astype(np.int32)
        got = ort_run(m, {m.graph.input[0].name: feed[graph.inputs[0]]})[0].astype(np.int32).reshape(ref.shape)
        diff = np.abs(ref - got)
        # float arithmetic between Q/DQ vs TFLite's fixed point: a step here and there, which the ten
        # dense layers of the autoencoder accumulate to two at most
        assert diff.max() <= 2 and (diff.size < 16 or diff.mean() < 0.5), (diff.max(), diff.mean())
        if model != "ad01":  # classifiers: the same class
            assert np.argmax(ref) == np.argmax(got)


def test_ptq_of_a_float_model_to_qdq_onnx(tmp_path: Path) -> None:
    src = ROOT / "fixtures" / "tf" / "small_cnn"
    rng = np.random.default_rng(3)
    g = api.load(src)
    shape = tuple(d if isinstance(d, int) else 1 for d in g.tensor(g.inputs[0]).shape)
    calib = [{g.inputs[0]: rng.random(shape, dtype=np.float32)} for _ in range(8)]
    written = []
    out = api.convert(src, to="onnx", output=tmp_path / "q.onnx", quantize="int8", calibration=calib,
                      on_graph=written.append)
    q = written[0]
    m = onnx.load(out)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= {n.op_type for n in m.graph.node}
    x = calib[0][g.inputs[0]]
    qx = {q.inputs[0]: _quantize_input(q, x)}
    ref = run(q, qx)[q.outputs[0]].astype(np.int32)
    got = ort_run(m, {m.graph.input[0].name: qx[q.inputs[0]]})[0].astype(np.int32).reshape(ref.shape)
    assert np.abs(ref - got).max() <= 1


def _quantize_input(graph, x: np.ndarray) -> np.ndarray:
    qp = graph.tensor(graph.inputs[0]).quant
    v = np.floor(np.abs(x / np.float32(qp.scale)) + 0.5) * np.sign(x) + int(qp.zero_point)
    return np.clip(v, -128, 127).astype(np.int8)


def test_save_of_a_quantized_graph_writes_qdq(tmp_path: Path) -> None:
    """``convertkit.save`` (no pipeline) lowers to QDQ as the pipeline does: the same model results."""
    path = MODELS / INT8["kws"]
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared models folder is not beside the repository)")
    graph = api.load(path)
    saved = onnx.load(api.save(graph, tmp_path / "saved.onnx"))
    converted = onnx.load(api.convert(path, to="onnx", output=tmp_path / "converted.onnx"))
    feed = _int8_feeds(graph, 1)[0][graph.inputs[0]]
    a = ort_run(saved, {saved.graph.input[0].name: feed})[0]
    b = ort_run(converted, {converted.graph.input[0].name: feed})[0]
    np.testing.assert_array_equal(a, b)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in saved.graph.node}


def test_int8_table_activations_match_onnxruntime_qdq() -> None:
    """The IR's int8 HardSigmoid, Elu and Gelu tables (TFLite's LUTPopulate: dequantize, the float op,
    requantize) against onnxruntime running DequantizeLinear -> op -> QuantizeLinear on every int8 value:
    equal but where the float result falls on a rounding tie (ONNX rounds those to even), one step."""
    from onnx import TensorProto, helper

    from convertkit.canonical_ir.quantize.base import QType
    from convertkit.canonical_ir.quantize.kernels_activation import LUT_TRANSFORMS, lut_populate

    x = np.arange(-128, 128, dtype=np.int8)
    for op, attrs, opset in (("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, 17), ("Elu", {"alpha": 1.0}, 17),
                             ("Gelu", {"approximate": "tanh"}, 20)):
        for (s_in, z_in), (s_out, z_out) in (((0.05, 3), (1 / 255, -128)), ((0.1, -20), (0.02, -50))):
            table = lut_populate(QType.make(np.int8, s_in, z_in), QType.make(np.int8, s_out, z_out),
                                 LUT_TRANSFORMS[op](attrs))
            ir = table[x.astype(np.int64) + 128]
            c = [helper.make_tensor(n, TensorProto.FLOAT if "s" in n else TensorProto.INT8, [], [v])
                 for n, v in (("si", s_in), ("zi", z_in), ("so", s_out), ("zo", z_out))]
            g = helper.make_graph(
                [helper.make_node("DequantizeLinear", ["x", "si", "zi"], ["f"]),
                 helper.make_node(op, ["f"], ["g"], **attrs),
                 helper.make_node("QuantizeLinear", ["g", "so", "zo"], ["y"])], op,
                [helper.make_tensor_value_info("x", TensorProto.INT8, [256])],
                [helper.make_tensor_value_info("y", TensorProto.INT8, [256])], initializer=c)
            ops = [helper.make_opsetid("", opset)]
            m = helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
            got = ort_run(m, {"x": x})[0]
            diff = np.abs(got.astype(np.int32) - ir.astype(np.int32))
            assert diff.max() <= 1 and np.mean(diff) < 0.02, (op, diff.max(), np.mean(diff))
