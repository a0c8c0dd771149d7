"""TFLite frontend: real MLPerf Tiny / TFLite Micro models and converter-made models, read into the IR
and run in the reference interpreter.

int8 models must be bit-identical to TFLite Micro (the IR's integer kernels follow TFLM where LiteRT's
BUILTIN_REF differs); float models within 1e-5 relative of LiteRT, also after saving as ONNX. Bad files
fail with one ModelFileError line (exit 2 from the CLI); every unconvertible op is listed at once.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convertkit
from convertkit.canonical_ir.interpreter import run
from convertkit.errors import ModelFileError, UnsupportedOpError
from convertkit.frontends.tflite import from_bytes, load
from tests.conftest import FIXTURES, ROOT

MODELS = ROOT.parent / "shared" / "models"
INT8 = ["mlperf_tiny/anomaly_detection/ad01_int8.tflite",
        "mlperf_tiny/image_classification/pretrainedResnet_quant.tflite",
        "mlperf_tiny/keyword_spotting/kws_ref_model.tflite",
        "mlperf_tiny/visual_wake_words/vww_96_int8.tflite",
        "mlperf_tiny/anomaly_detection/model_ToyCar_quant_fullint.tflite",
        "mlperf_tiny/streaming_wakeword/str_ww_ref_model.tflite",
        "tflm/hello_world/hello_world_int8.tflite",
        "tflm/micro_speech/micro_speech_quantized.tflite",
        "tflm/person_detection/person_detect.tflite",
        "tflm/misc/simple_add_model.tflite",
        "tflm/seanet_int16/add/add0.tflite",
        "tflm/seanet_int16/conv/conv0.tflite",
        "tflm/seanet_int16/transpose_conv/transpose_conv4.tflite"]
FLOAT = ["mlperf_tiny/anomaly_detection/ad01_fp32.tflite",
         "mlperf_tiny/image_classification/pretrainedResnet.tflite",
         "mlperf_tiny/visual_wake_words/vww_96_float.tflite",
         "tflm/hello_world/hello_world_float.tflite"]
REFUSED = {"mlperf_tiny/keyword_spotting/kws_ref_model_float32.tflite": "hybrid",
           "mlperf_tiny/anomaly_detection/model_ToyCar_quant.tflite": "hybrid",
           "tflm/misc/micro_speech_lstm.tflite": "UNIDIRECTIONAL_SEQUENCE_LSTM",
           "tflm/misc/keyword_scrambled.tflite": "SVDF",
           "tflm/person_detection/person_detect_vela.tflite": "CUSTOM:ethos-u",
           "tflm/micro_speech/audio_preprocessor_int8.tflite": "CUSTOM:SignalFilterBank"}


def _model(rel: str) -> Path:
    path = MODELS / rel
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path


def _inputs(graph, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for name in graph.inputs:
        t = graph.tensor(name)
        if t.dtype.kind == "f":
            out.append(rng.normal(size=t.shape).astype(t.dtype))
        else:
            info = np.iinfo(t.dtype)
            out.append(rng.integers(info.min, info.max + 1, size=t.shape, dtype=t.dtype))
    return out


def _run_ir(graph, inputs) -> list[np.ndarray]:
    res = run(graph, dict(zip(graph.inputs, inputs)))
    return [res[n] for n in graph.outputs]


def _tflm(path: Path, inputs, n_out: int) -> list[np.ndarray]:
    runtime = pytest.importorskip("tflite_micro").runtime
    it = runtime.Interpreter.from_file(str(path), arena_size=max(path.stat().st_size * 10, 1 << 20))
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    return [np.array(it.get_output(i)) for i in range(n_out)]


def _litert(buf: bytes, inputs) -> list[np.ndarray]:
    lite = pytest.importorskip("ai_edge_litert.interpreter")
    it = lite.Interpreter(model_content=buf, experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _close(a: np.ndarray, b: np.ndarray, rel: float = 1e-5) -> None:
    assert a.shape == b.shape
    tol = rel * max(float(np.abs(b).max()), 1e-6)
    assert float(np.abs(a.astype(np.float64) - b).max()) <= tol


# ------------------------------------------------------------------------------------ real models
@pytest.mark.parametrize("rel", INT8)
def test_int8_model_bit_exact_with_tflm(rel: str) -> None:
    path = _model(rel)
    g = load(path)
    g.validate()
    for seed in (1, 2):
        xs = _inputs(g, seed)
        ir = _run_ir(g, xs)
        micro = _tflm(path, xs, len(g.outputs))
        for a, b in zip(ir, micro):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert int(np.sum(a != b)) == 0, f"{int(np.sum(a != b))} of {a.size} differ"


def test_quant_params_kept_exactly() -> None:
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    path = _model("mlperf_tiny/keyword_spotting/kws_ref_model.tflite")
    m = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    sg = m.subgraphs[0]
    g = load(path)
    names = {t.name.decode() if isinstance(t.name, bytes) else t.name for t in sg.tensors}
    checked = 0
    for t in sg.tensors:
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        if not g.has_tensor(name) or t.quantization is None or t.quantization.scale is None:
            continue
        q = g.tensor(name).quant
        if t.type == 0 or q is None:
            continue
        assert np.array_equal(q.scale.reshape(-1), np.asarray(t.quantization.scale, np.float32))
        assert np.array_equal(q.zero_point.reshape(-1), np.asarray(t.quantization.zeroPoint))
        checked += 1
    assert checked > 10 and len(names) == len(sg.tensors)
    axes = {g.tensor(g.inputs_of(n)[1]).quant.axis
            for n in g.nodes if n.op == "Conv"}
    assert axes == {0}  # per-channel on output channels, depthwise's dimension 3 moved with its weight


@pytest.mark.parametrize("rel", FLOAT)
def test_float_model_matches_litert_and_onnx(rel: str, tmp_path: Path) -> None:
    path = _model(rel)
    g = load(path)
    g.validate()
    xs = _inputs(g)
    ir = _run_ir(g, xs)
    for a, b in zip(ir, _litert(path.read_bytes(), xs)):
        _close(a, b)
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    convertkit.save(g, out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})
    for a, b in zip(got, ir):
        _close(np.asarray(a), b, 1e-4)


@pytest.mark.parametrize("rel", sorted(REFUSED))
def test_unconvertible_models_listed(rel: str) -> None:
    with pytest.raises(UnsupportedOpError) as e:
        load(_model(rel))
    assert REFUSED[rel] in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------- models made by TFLiteConverter
@pytest.fixture(scope="module", params=["mlp", "mobilenet_v2"])
def keras_fixture(request):
    """(float32, int8) flatbuffers of a Keras fixture, made by TensorFlow's own converter."""
    tf = pytest.importorskip("tensorflow")
    path = FIXTURES / "tf" / f"{request.param}.keras"
    if not path.exists():
        pytest.skip(f"{path} absent")
    from tests.test_quant_tflite_util import convert_float32, convert_int8
    model = tf.keras.models.load_model(path, compile=False)
    shape = tuple(1 if d is None else d for d in model.inputs[0].shape)
    return request.param, convert_float32(model), convert_int8(model, [shape])


def test_converter_made_float(keras_fixture) -> None:
    fbuf = keras_fixture[1]
    g = from_bytes(fbuf)
    xs = _inputs(g)
    for a, b in zip(_run_ir(g, xs), _litert(fbuf, xs)):
        _close(a, b)


def test_converter_made_int8(keras_fixture, tmp_path: Path) -> None:
    """The MLP fixture's LayerNorm and log-softmax have integer TFLite kernels the IR does not model:
    refused, all listed; MobileNetV2 is bit-exact with TFLite Micro."""
    name, _, qbuf = keras_fixture
    if name == "mlp":
        with pytest.raises(UnsupportedOpError, match="LOG_SOFTMAX.*RSQRT.*SQUARED_DIFFERENCE"):
            from_bytes(qbuf)
        return
    q = from_bytes(qbuf)
    xs = _inputs(q)
    path = tmp_path / "q.tflite"
    path.write_bytes(qbuf)
    for a, b in zip(_run_ir(q, xs), _tflm(path, xs, len(q.outputs))):
        assert int(np.sum(a != b)) == 0


# -------------------------------------------------------------------------------------- bad input
def _small() -> bytes:
    path = _model("tflm/hello_world/hello_world_int8.tflite")
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "identifier", "buffer_offset", "empty"])
def test_bad_files_are_one_line_model_file_errors(damage: str, tmp_path: Path) -> None:
    data = bytearray(_small())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "identifier":
        data[4:8] = b"XXXX"
    elif damage == "empty":
        data = data[:6]
    else:
        data = _with_far_buffer(bytes(data))
    p = tmp_path / "bad.tflite"
    p.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as e:
        load(p)
    assert "\n" not in str(e.value)


def _with_far_buffer(data: bytes) -> bytes:
    """Point the root table's first uoffset (operator codes vector) far past the end of the file."""
    out = bytearray(data)
    root = struct.unpack_from("<I", out, 0)[0]
    vt = root - struct.unpack_from("<i", out, root)[0]
    field = struct.unpack_from("<H", out, vt + 4 + 2 * 4)[0]  # Model.buffers
    struct.pack_into("<I", out, root + field, len(out) * 4)
    return bytes(out)


def test_cli_exit_code_two(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    data = bytearray(_small())
    bad.write_bytes(bytes(data[: len(data) // 3]))
    res = subprocess.run([sys.executable, "-m", "convertkit", str(bad), "--to", "onnx", "-o",
                          str(tmp_path / "o.onnx")], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ})
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_verify_runs_the_tflite_source(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")
    src = _model("mlperf_tiny/image_classification/pretrainedResnet.tflite")
    res = subprocess.run([sys.executable, "-m", "convertkit", str(src), "--to", "onnx", "-o",
                          str(tmp_path / "o.onnx"), "--verify"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "verification passed" in res.stdout


def test_damaged_bytes_never_escape_as_internal_errors() -> None:
    """Truncations and flipped bytes give a ConvertError (usually ModelFileError) or a graph, never a
    Python exception from deep inside the reader."""
    from convertkit.errors import ConvertError

    data = _model("tflm/micro_speech/micro_speech_quantized.tflite").read_bytes()
    rng = np.random.default_rng(0)
    for k in range(120):
        b = bytearray(data)
        if k % 2:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            for _ in range(5):
                b[int(rng.integers(0, min(len(b), 4000)))] = int(rng.integers(0, 256))
        try:
            from_bytes(bytes(b))
        except ConvertError:
            pass
