"""Post-training quantization: calibration, quantize_graph, the error report and calibration files.

The TensorFlow-based tests show that ``quantize_graph`` reproduces TensorFlow's own int8 converter: fed
the activation ranges the converter chose, it gives the converter's weights, biases and parameters
exactly, so the int8 IR graph computes what TFLite Micro and LiteRT compute, bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import convertkit
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.passes.infer import infer_shapes
from convertkit.canonical_ir.quantize import (
    QType, calibrate, choose_qparams, load_calibration_data, quantization_report, quantize_graph)
from convertkit.errors import UnsupportedOpError, UsageError

ROOT = Path(__file__).resolve().parents[1]
F32, I8 = np.float32, np.int8


# ------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("lo, hi, scale, zp", [(-10.0, 30.0, 0.156863, 64), (0.0, 30.0, 0.117647, 0),
                                               (-10.0, 0.0, 0.039216, 255)])
def test_choose_qparams_tflite_examples_uint8(lo, hi, scale, zp):
    s, z = choose_qparams(lo, hi, np.uint8)
    assert abs(float(s) - scale) < 1e-5 and z == zp


def test_choose_qparams_int8_includes_zero_and_nudges():
    s, z = choose_qparams(0.5, 2.0)                       # widened to [0, 2]: zero exactly representable
    assert z == -128 and float(s) == pytest.approx(2 / 255)
    s, z = choose_qparams(-1.0, 1.0)
    assert z == -1 and float(s) == pytest.approx(2 / 255)  # zero point -0.5, rounded away from zero
    assert choose_qparams(0.0, 0.0) == (1.0, 0)


# ------------------------------------------------------------------------------------ small graphs
def small_nhwc_cnn(seed: int = 0) -> Graph:
    """Conv-Relu, MaxPool, depthwise Conv-Relu6, residual Add, GlobalAveragePool, Gemm, Softmax (NHWC)."""
    rng = np.random.default_rng(seed)
    g = Graph("cnn")
    g.add_input("x", F32, (1, 12, 12, 3))

    def const(shape, scale=0.3):
        return g.add_const((rng.normal(size=shape) * scale).astype(F32), "w")
    g.add_node("Conv", ["x", const((8, 3, 3, 3)), const((8,), 0.1)], ["c1"],
               {"layout": "NHWC", "auto_pad": "SAME_UPPER"})
    g.add_node("Relu", ["c1"], ["r1"])
    g.add_node("MaxPool", ["r1"], ["p1"], {"layout": "NHWC", "kernel_shape": [2, 2], "strides": [2, 2]})
    g.add_node("Conv", ["p1", const((8, 3, 3, 1)), const((8,), 0.1)], ["d1"],
               {"layout": "NHWC", "group": 8, "pads": [1, 1, 1, 1]})
    g.add_node("Clip", ["d1", g.add_const(F32(0.0)), g.add_const(F32(6.0))], ["r2"])
    g.add_node("Add", ["p1", "r2"], ["a1"])
    g.add_node("GlobalAveragePool", ["a1"], ["gp"], {"layout": "NHWC"})
    g.add_node("Reshape", ["gp", g.add_const(np.array([1, 8], np.int64))], ["f"])
    g.add_node("Gemm", ["f", const((5, 8)), const((5,), 0.1)], ["logits"], {"transB": 1, "alpha": 0.5})
    g.add_node("Softmax", ["logits"], ["probs"])
    g.outputs.append("probs")
    infer_shapes(g)
    return g


def feeds(n: int, seed: int = 1, shape=(1, 12, 12, 3), name: str = "x") -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{name: rng.normal(size=shape).astype(F32)} for _ in range(n)]


def test_quantize_graph_follows_the_tflite_scheme():
    g = small_nhwc_cnn()
    q = quantize_graph(g, calibrate(g, feeds(8)))
    q.validate()
    convs = [n for n in q.topo_order() if n.op == "Conv"]
    for node in convs:
        x, w, b = q.inputs_of(node)
        wq, bq, xq = QType.of(q.tensor(w)), QType.of(q.tensor(b)), QType.of(q.tensor(x))
        assert wq.dtype == I8 and wq.axis == 0 and wq.scale.size == 8 and np.all(wq.zero_point == 0)
        assert np.abs(q.const_value(w)).max() == 127 and q.const_value(w).min() >= -127
        assert bq.dtype == np.int32 and np.array_equal(bq.scale, (xq.s * wq.scale).astype(F32))
    gemm = next(n for n in q.topo_order() if n.op == "Gemm")
    assert QType.of(q.tensor(q.inputs_of(gemm)[1])).axis == 0 and gemm.attrs["alpha"] == 1.0
    assert QType.of(q.tensor("probs")).s == F32(1 / 256) and QType.of(q.tensor("probs")).zp == -128
    assert QType.of(q.tensor("p1")).same(QType.of(q.tensor("r1")))         # MaxPool keeps its input's
    assert QType.of(q.tensor("c1")).same(QType.of(q.tensor("r1")))         # Relu lends its to the Conv
    assert QType.of(q.tensor("d1")).same(QType.of(q.tensor("r2")))
    assert q.tensor("x").dtype == I8 and all(q.tensor(o).dtype == I8 for o in q.outputs)
    assert g.tensor("x").dtype == F32                                     # the float graph is untouched
    report = quantization_report(g, q, feeds(6, seed=7))
    err = report["probs"]
    assert err.top1_agreement >= 5 / 6 and err.rel_rms < 0.08 and err.sqnr_db > 20, str(err)


def test_quantize_graph_float_io_adds_quantize_and_dequantize():
    g = small_nhwc_cnn()
    q = quantize_graph(g, calibrate(g, feeds(8)), io="float")
    assert q.inputs == ["x"] and q.outputs == ["probs"]
    assert q.tensor("x").dtype == F32 and q.tensor("probs").dtype == F32
    assert [n.op for n in q.topo_order()][0] == "QuantizeLinear"
    assert q.producer("probs").op == "DequantizeLinear"
    quant = next(n for n in q.topo_order() if n.op == "QuantizeLinear")
    assert quant.attrs["rounding"] == "half_away_from_zero"
    i8 = quantize_graph(g, calibrate(g, feeds(8)))
    f = feeds(3, seed=9)
    a = quantization_report(g, q, f)["probs"]
    b = quantization_report(g, i8, f)["probs"]
    assert a.max_abs == pytest.approx(b.max_abs) and a.mean_abs == pytest.approx(b.mean_abs)


def test_calibrate_minmax_and_percentile():
    g = small_nhwc_cnn()
    data = feeds(6)
    mm = calibrate(g, data)
    pc = calibrate(g, data, method="percentile", percentile=99.0)
    assert set(mm) >= {"x", "c1", "r1", "probs"} and set(pc) == set(mm)
    xs = np.concatenate([f["x"].ravel() for f in data])
    assert mm["x"] == (float(xs.min()), float(xs.max()))
    lo, hi = pc["x"]
    assert xs.min() < lo < np.percentile(xs, 1.5) and np.percentile(xs, 98.5) < hi < xs.max()
    with pytest.raises(UsageError, match="method"):
        calibrate(g, data, method="kl")
    with pytest.raises(UsageError, match="empty"):
        calibrate(g, [])


def test_quantize_graph_refuses_ops_without_integer_kernels_all_at_once():
    g = Graph("g")
    g.add_input("x", F32, (1, 4))
    g.add_node("Exp", ["x"], ["a"], name="exp1")
    g.add_node("Sin", ["a"], ["b"], name="sin1")
    g.add_node("Relu", ["b"], ["y"])
    g.outputs.append("y")
    infer_shapes(g)
    with pytest.raises(UnsupportedOpError) as e:
        quantize_graph(g, calibrate(g, [{"x": np.ones((1, 4), F32)}]))
    assert e.value.missing == {"Exp": ["exp1"], "Sin": ["sin1"]}


def fixture_feeds(g: Graph, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    shapes = {i: [d if isinstance(d, int) else 2 for d in g.tensor(i).shape] for i in g.inputs}
    return [{i: rng.normal(size=s).astype(F32) for i, s in shapes.items()} for _ in range(n)]


@pytest.mark.parametrize("fixture, min_sqnr", [("small_cnn", 30), ("audio_conv1d", 30), ("unet_tiny", 30)])
def test_ptq_of_onnx_fixtures_nchw(fixture, min_sqnr):
    """ONNX fixtures (NCHW; BatchNorm folded first) quantized in place: int8 outputs close to float."""
    fusion = pytest.importorskip("convertkit.canonical_ir.passes.fusion")
    g = convertkit.load(ROOT / f"fixtures/onnx/{fixture}.onnx")
    fusion.fold_batch_norms(g)
    infer_shapes(g)
    calib, test = fixture_feeds(g, 16, 3), fixture_feeds(g, 8, 4)
    report = {}
    for method in ("minmax", "percentile"):
        q = quantize_graph(g, calibrate(g, calib, method=method))
        assert all(q.tensor(n).dtype == I8 for n in q.outputs)
        report[method] = quantization_report(g, q, test)
        for err in report[method].values():
            assert err.sqnr_db > min_sqnr, str(err)
    figures = "; ".join(f"{m}: {e}" for m, r in report.items() for e in r.values())
    print(f"\n{fixture}.onnx int8 PTQ: {figures}")


def test_ptq_of_the_tensorflow_mobilenet_v2_fixture_nhwc():
    """fixtures/tf/mobilenet_v2.keras through the TensorFlow frontend (NHWC; BatchNorm folded first),
    quantized in place."""
    pytest.importorskip("tensorflow")
    fusion = pytest.importorskip("convertkit.canonical_ir.passes.fusion")
    g = convertkit.load(ROOT / "fixtures/tf/mobilenet_v2.keras")
    fusion.fold_batch_norms(g)
    infer_shapes(g)
    q = quantize_graph(g, calibrate(g, fixture_feeds(g, 16, 3)))
    report = quantization_report(g, q, fixture_feeds(g, 8, 4))
    for err in report.values():
        assert err.sqnr_db > 30 and err.top1_agreement >= 0.9, str(err)
    print("\nmobilenet_v2.keras int8 PTQ: " + "; ".join(str(e) for e in report.values()))


# ------------------------------------------------------------------------------- calibration files
def one_input_graph() -> Graph:
    g = Graph("g")
    g.add_input("x", F32, (2, 3))
    g.add_node("Relu", ["x"], ["y"])
    g.outputs.append("y")
    return g


def test_load_calibration_npz_npy_and_folder(tmp_path):
    g = one_input_graph()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(4, 2, 3)))                # a stack of 4 runs (float64)
    np.savez(tmp_path / "b.npz", x=rng.normal(size=(6, 3)).astype(F32))      # a batch: 3 runs of 2
    np.savez(tmp_path / "c.npz", whatever=rng.normal(size=(2, 3)))           # one run, any name, one input
    assert len(load_calibration_data(tmp_path / "a.npy", g)) == 4
    assert len(load_calibration_data(tmp_path / "b.npz", g)) == 3
    runs = load_calibration_data(tmp_path, g)
    assert len(runs) == 8 and all(r["x"].shape == (2, 3) and r["x"].dtype == F32 for r in runs)
    assert len(calibrate(g, runs)) == 2


def test_load_calibration_errors_name_the_file(tmp_path):
    g = one_input_graph()
    with pytest.raises(UsageError, match="does not exist"):
        load_calibration_data(tmp_path / "missing.npz", g)
    np.save(tmp_path / "bad.npy", np.zeros((5, 4)))
    with pytest.raises(UsageError, match=r"bad\.npy.*does not fit input 'x'"):
        load_calibration_data(tmp_path / "bad.npy", g)
    two = Graph("two")
    for n in ("a", "b"):
        two.add_input(n, F32, (1, 2))
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 2)), c=np.zeros((1, 2)))
    with pytest.raises(UsageError, match=r"two\.npz.*missing \['b'\].*unknown \['c'\]"):
        load_calibration_data(tmp_path / "two.npz", two)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no .npz or .npy"):
        load_calibration_data(tmp_path / "empty", g)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="not an .npz or .npy"):
        load_calibration_data(tmp_path / "notes.txt", g)


# ------------------------------------------------------------------------- against TF's converter
def _keras_cnn(x):
    import tensorflow as tf
    K = tf.keras.layers
    y = K.ReLU()(K.BatchNormalization()(K.Conv2D(8, 3, padding="same")(x)))
    z = K.Conv2D(8, 1)(K.ReLU(6.0)(K.DepthwiseConv2D(3, padding="same")(y)))
    y = K.MaxPooling2D(2)(K.Add()([y, z]))
    y = K.Conv2D(16, 3, strides=2, padding="same", activation="relu")(y)
    y = K.AveragePooling2D(2)(K.Concatenate()([y, K.Activation("hard_swish")(y)]))
    return K.Softmax()(K.Dense(10)(K.GlobalAveragePooling2D()(y)))


def _ranges_of_converter(q_buf: bytes, f_buf: bytes, q_graph: Graph) -> dict:
    """The float graph's tensors (by the op they come from) with the ranges the converter quantized
    them to: (qmin - zp) * s .. (qmax - zp) * s."""
    from tests.test_quant_tflite_util import schema
    s = schema()
    sq, sf = (s.ModelT.InitFromPackedBuf(b, 0).subgraphs[0] for b in (q_buf, f_buf))
    pairs = list(zip(sq.inputs, sf.inputs))
    for oq, of in zip(sq.operators, sf.operators):
        pairs += list(zip(oq.outputs, of.outputs))
    ranges = {}
    for iq, i_f in pairs:
        q = QType.of(q_graph.tensor(f"t{iq}"))
        ranges[f"t{i_f}"] = ((q.qmin - q.zp) * float(q.s), (q.qmax - q.zp) * float(q.s))
    return ranges


def test_ptq_reproduces_tensorflows_int8_converter_bit_exactly(monkeypatch):
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from tests.test_quant_litert import check_model
    from tests.test_quant_tflite_util import (
        convert_float32, convert_int8, int8_inputs, ir_from_tflite, keras_model, op_names)
    shapes = [(1, 16, 16, 3)]
    model = keras_model(_keras_cnn, shapes, seed=0)
    q_buf = convert_int8(model, shapes, seed=0, n_samples=32)
    f_buf = convert_float32(model)
    assert op_names(q_buf) == op_names(f_buf)
    tflite_q = ir_from_tflite(q_buf)
    float_g = ir_from_tflite(f_buf)
    ours = quantize_graph(float_g, _ranges_of_converter(q_buf, f_buf, tflite_q))
    # same weights, biases and parameters as the converter's
    by_op = list(zip(ours.topo_order(), [n for n in tflite_q.topo_order() if n.op != "Reshape"]))
    for mine, theirs in by_op:
        assert mine.op == theirs.op
        for a, b in zip(ours.inputs_of(mine) + ours.outputs_of(mine), tflite_q.inputs_of(theirs)
                        + tflite_q.outputs_of(theirs)):
            ta, tb = ours.tensor(a), tflite_q.tensor(b)
            if tb.quant is not None:
                assert QType.of(ta).same(QType.of(tb)), f"{mine.name}: parameters of {a} differ"
            if tb.is_const and tb.dtype.kind in "iu":
                np.testing.assert_array_equal(ta.value, tb.value, err_msg=f"{mine.name} input {a}")
    # and so the same int8 arithmetic, tensor by tensor, on many inputs
    for seed in range(4):
        inputs = int8_inputs(q_buf, seed)
        mine = run(ours, {"t0": inputs[0]}, record=True)
        theirs = run(tflite_q, {"t0": inputs[0]}, record=True)
        for name in ours.outputs:
            np.testing.assert_array_equal(mine[name], theirs[name])
        check_model(q_buf, inputs, monkeypatch, "keras_cnn")     # = TFLite Micro, and LiteRT's formulas


def test_ptq_calibrated_independently_matches_the_converter_closely():
    pytest.importorskip("tensorflow")
    from tests.test_quant_tflite_util import convert_float32, convert_int8, ir_from_tflite, keras_model
    shapes = [(1, 16, 16, 3)]
    model = keras_model(_keras_cnn, shapes, seed=0)
    rng = np.random.default_rng(5)
    data = [[rng.normal(size=shapes[0]).astype(F32)] for _ in range(32)]
    q_buf = convert_int8(model, shapes, dataset=data, float_io=True)
    float_g = ir_from_tflite(convert_float32(model))
    ours = quantize_graph(float_g, calibrate(float_g, [{"t0": d[0]} for d in data]), io="float")
    test = [{"t0": rng.normal(size=shapes[0]).astype(F32)} for _ in range(8)]
    ours_err = quantization_report(float_g, ours, test)
    theirs_err = quantization_report(float_g, ir_from_tflite(q_buf), test)
    a, b = next(iter(ours_err.values())), next(iter(theirs_err.values()))
    print(f"\nkeras CNN int8: convertkit PTQ {a}\n                TF converter  {b}")
    assert a.sqnr_db > b.sqnr_db - 3 and a.top1_agreement >= b.top1_agreement - 0.125
