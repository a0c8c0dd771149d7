"""`--to c-bundle` as a user runs it: the folder written, the summary, --verify compiling and running
the C against onnxruntime / the int8 reference, --budget, and the quantization flags' errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.test_cli import cli, one_line_error

FILES = {"model.h", "model.c", "model_weights.c", "model_weights.h", "ck_runtime.h", "main.c", "Makefile",
         "CMakeLists.txt", "README.md"}


@pytest.fixture()
def act_model(tmp_path: Path) -> Path:
    """Sigmoid -> Tanh on a [N, 1000] input (a symbolic batch, which the bundle binds to 1)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1000])
    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Tanh", ["s"], ["y"])],
                          "acts", [x], [y])
    path = tmp_path / "acts.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_float_bundle_verified_against_onnxruntime(act_model, tmp_path):
    out = tmp_path / "bundle"
    proc = cli(act_model, "--to", "c-bundle", "-o", out, "--verify")
    assert proc.returncode == 0, proc.stderr
    assert set(p.name for p in out.iterdir()) == FILES
    assert "arena" in proc.stdout and "weights" in proc.stdout
    assert "within 1e-4 relative" in proc.stdout
    header = (out / "model.h").read_text()
    assert "#define MODEL_INPUT0_DIMS {1, 1000}" in header
    assert "#define MODEL_ARENA_SIZE 4000u" in header  # one buffer: both activations run in place


def test_int8_bundle_bit_exact_with_the_reference(act_model, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((8, 1, 1000)).astype(np.float32))
    out = tmp_path / "q"
    proc = cli(act_model, "--to", "c-bundle", "-o", out, "--quantize", "int8", "--calibration", calib, "--verify")
    assert proc.returncode == 0, proc.stderr
    assert "int8 quantization error on the calibration data" in proc.stdout
    assert "int8 (integer-only)" in proc.stdout
    assert "bit-exact" in proc.stdout
    assert "#define MODEL_INTEGER_ONLY 1" in (out / "model.h").read_text()


def test_budget_exceeded_names_the_excess_and_writes_nothing(act_model, tmp_path):
    out = tmp_path / "bundle"
    msg = one_line_error(cli(act_model, "--to", "c-bundle", "-o", out, "--budget", "ram=1K"))
    assert "RAM: the arena needs 3.9 KiB, 2.9 KiB over the 1.0 KiB budget" in msg
    assert not out.exists() and not list(tmp_path.glob(".bundle*"))


def test_budget_that_fits(act_model, tmp_path):
    assert cli(act_model, "--to", "c-bundle", "-o", tmp_path / "b", "--budget", "ram=4K,flash=1M").returncode == 0


@pytest.mark.parametrize("args, expected", [
    (("--quantize", "int8"), "needs calibration data"),
    (("--quantize", "int8", "--calibration", "missing.npz"), "does not exist"),
    (("--calibration", "x.npz"), "--quantize is not"),
    (("--budget", "ram=lots"), "bad --budget item"),
])
def test_bad_flags(act_model, tmp_path, args, expected):
    msg = one_line_error(cli(act_model, "--to", "c-bundle", "-o", tmp_path / "b", *args))
    assert expected in msg


def test_budget_only_for_c_bundle(act_model, tmp_path):
    assert "--budget applies to --to c-bundle only" in one_line_error(
        cli(act_model, "--to", "onnx", "-o", tmp_path / "m.onnx", "--budget", "ram=1K"))


def test_percentile_calibration_from_a_folder(act_model, tmp_path):
    """--calibration takes a folder of .npy/.npz files; the percentile method clips the outliers, so
    the input scale is smaller than min/max's (read back from model.h)."""
    data = tmp_path / "calib"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        x = rng.standard_normal((1, 1000)).astype(np.float32)
        x[0, 0] = 40.0  # one outlier per sample
        np.save(data / f"s{i}.npy", x)
    scales = {}
    for method in ("minmax", "percentile"):
        out = tmp_path / method
        proc = cli(act_model, "--to", "c-bundle", "-o", out, "--quantize", "int8", "--calibration", data,
                   "--calibration-method", method, "--percentile", "99.5", "--verify")
        assert proc.returncode == 0, proc.stderr
        line = next(ln for ln in (out / "model.h").read_text().splitlines() if "MODEL_INPUT0_SCALE" in ln
                    and ln.startswith("#define"))
        scales[method] = float.fromhex(line.split()[2].rstrip("f"))
    assert scales["percentile"] < scales["minmax"] / 4


def test_verify_of_a_model_onnxruntime_cannot_load_is_one_line(tmp_path):
    """An ONNX file of an IR version newer than onnxruntime reads converts fine; --verify then says in
    one line why it cannot run the source (no 'internal error')."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "r", [x], [y])
    path = tmp_path / "new_ir.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=99), path)
    msg = one_line_error(cli(path, "--to", "c-bundle", "-o", tmp_path / "b", "--verify"))
    assert "onnxruntime cannot run" in msg and "new_ir.onnx" in msg
