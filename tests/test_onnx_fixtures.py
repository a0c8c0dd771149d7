"""Round-trip equivalence on the ONNX fixtures: onnxruntime on the original, the reference interpreter
on the IR, and onnxruntime on ONNX -> IR -> ONNX, on the same seeded inputs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

import convertkit
from convertkit.backends.onnx import export
from convertkit.canonical_ir.interpreter import run
from tests.conftest import FIXTURES, ONNX_FIXTURES, ROOT
from tests.onnx_check import random_feeds

IDS = [p.relative_to(FIXTURES / "onnx").as_posix() for p in ONNX_FIXTURES]


def _ort_path(path, feeds):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("path", ONNX_FIXTURES, ids=IDS)
@pytest.mark.parametrize("opset", [None, 13, 17])
def test_roundtrip_matches_onnxruntime(path, opset, tmp_path):
    model = onnx.load(path)  # loads external data too
    feeds = random_feeds(model, seed=11, batch=2)
    expected = _ort_path(path, feeds)
    graph = convertkit.load(path)
    got = run(graph, feeds)
    for name, exp in zip(graph.outputs, expected):
        np.testing.assert_allclose(got[name], exp, rtol=1e-5, atol=1e-5, err_msg=f"interpreter {name}")
    src_opset = next(i.version for i in model.opset_import if i.domain == "")
    out = convertkit.save(graph, tmp_path / "out.onnx", opset=opset or max(src_opset, 11))
    for res, exp in zip(_ort_path(out, feeds), expected):
        np.testing.assert_allclose(res, exp, rtol=1e-5, atol=1e-5, err_msg="round trip")


@pytest.mark.parametrize("path", ONNX_FIXTURES, ids=IDS)
def test_symbolic_batch_survives(path, tmp_path):
    model = onnx.load(path, load_external_data=False)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    out = convertkit.save(convertkit.load(path), tmp_path / "out.onnx")
    dim0_out = onnx.load(out, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == dim0_out.dim_param and dim0.dim_value == dim0_out.dim_value


@pytest.mark.parametrize("path", ONNX_FIXTURES, ids=IDS)
def test_output_is_byte_identical_across_runs(path, tmp_path):
    """Two conversions in separate processes write the same bytes (no dict or hash order leaks)."""
    outs = []
    for i in range(2):
        out = tmp_path / f"out{i}.onnx"
        code = (f"import convertkit; convertkit.convert({str(path)!r}, to='onnx', output={str(out)!r})")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                       env={"PYTHONHASHSEED": str(i + 1), "PATH": ""})
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_external_data_is_read_and_written(tmp_path):
    path = FIXTURES / "onnx" / "mlp_external" / "mlp.onnx"
    assert (path.parent / "mlp.onnx.data").exists()
    graph = convertkit.load(path)
    out = export(graph, tmp_path / "mlp_out.onnx", external_data=True)
    assert (tmp_path / "mlp_out.onnx.data").stat().st_size > 60_000
    assert out.stat().st_size < 5_000  # weights are not inline
    feeds = random_feeds(onnx.load(path), seed=5)
    np.testing.assert_allclose(_ort_path(out, feeds)[0], _ort_path(path, feeds)[0], rtol=1e-5, atol=1e-6)


def test_large_models_switch_to_external_data(tmp_path, monkeypatch):
    """Above the protobuf limit weights go to a side file; the threshold is lowered to test it cheaply."""
    import convertkit.backends.onnx as onnx_backend

    monkeypatch.setattr(onnx_backend, "EXTERNAL_DATA_THRESHOLD", 10_000)
    out = export(convertkit.load(FIXTURES / "onnx" / "mlp_external" / "mlp.onnx"), tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").exists()
    onnx.checker.check_model(str(out), full_check=True)


def test_import_convertkit_does_not_import_tensorflow():
    code = ("import sys, convertkit; g = convertkit.load('fixtures/onnx/small_cnn.onnx'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_library_api_convert_and_save_formats(tmp_path):
    src = FIXTURES / "onnx" / "small_cnn.onnx"
    out = convertkit.convert(src, to="onnx", output=tmp_path / "a.onnx", opset=15)
    assert {i.version for i in onnx.load(out).opset_import} == {15}
    with pytest.raises(convertkit.ConvertError, match="cannot tell the output format"):
        convertkit.save(convertkit.load(src), tmp_path / "a.unknown")
