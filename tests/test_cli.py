"""The command line as a user runs it: a subprocess, its exit code, and what it prints."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import FIXTURES, ROOT
from tests.onnx_check import ort_run, random_feeds

CNN = FIXTURES / "onnx" / "small_cnn.onnx"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "convertkit.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_convert_onnx_to_onnx_matches_onnxruntime(tmp_path):
    out = tmp_path / "cnn.onnx"
    proc = cli(CNN, "--to", "onnx", "-o", out)
    assert proc.returncode == 0, proc.stderr
    src, dst = onnx.load(CNN), onnx.load(out)
    onnx.checker.check_model(dst, full_check=True)
    feeds = random_feeds(src, seed=3, batch=3)
    np.testing.assert_allclose(ort_run(dst, feeds)[0], ort_run(src, feeds)[0], rtol=1e-5, atol=1e-6)
    ops = [n.op_type for n in dst.graph.node]
    assert "Identity" not in ops and "Dropout" not in ops
    assert dst.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_verify_prints_outputs_side_by_side(tmp_path):
    proc = cli(CNN, "-o", tmp_path / "cnn.onnx", "--verify")
    assert proc.returncode == 0, proc.stderr
    assert "max abs error" in proc.stdout and "verification passed" in proc.stdout


def test_opset_choice_is_written(tmp_path):
    out = tmp_path / "cnn13.onnx"
    assert cli(CNN, "--to", "onnx", "-o", out, "--opset", "13").returncode == 0
    assert {i.version for i in onnx.load(out).opset_import if i.domain == ""} == {13}


def test_inspect_table_and_json():
    proc = cli("inspect", CNN)
    assert proc.returncode == 0, proc.stderr
    assert "Conv" in proc.stdout and "parameters:" in proc.stdout and "MACs:" in proc.stdout
    data = json.loads(cli("inspect", CNN, "--json").stdout)
    model = onnx.load(CNN)
    # every float initializer is a parameter; BatchNorm folding does not happen during inspect
    expected = sum(numpy_helper.to_array(t).size for t in model.graph.initializer
                   if t.data_type == TensorProto.FLOAT)
    assert data["params"] == expected
    conv_macs = [r["macs"] for r in data["rows"] if r["op"] == "Conv"]
    assert conv_macs[0] == 32 * 32 * 8 * 3 * 3 * 3  # H*W*Cout*kh*kw*Cin, batch counted as 1


def test_print_passes_and_dump_after(tmp_path):
    proc = cli("--print-passes")
    assert proc.returncode == 0
    for name in ("infer_shapes", "fold_constants", "remove_identities", "remove_dead_code"):
        assert name in proc.stdout
    proc = cli(CNN, "-o", tmp_path / "x.onnx", "--dump-after", "remove_identities")
    assert proc.returncode == 0, proc.stderr
    assert "--- after remove_identities ---" in proc.stdout and "Identity(" not in proc.stdout
    one_line_error(cli(CNN, "-o", tmp_path / "y.onnx", "--dump-after", "nope"))


# ------------------------------------------------------------------------------------ bad input
def test_missing_file():
    line = one_line_error(cli(ROOT / "no_such_model.onnx", "-o", "x.onnx"))
    assert "no_such_model.onnx" in line and "no such file" in line


def test_truncated_onnx(tmp_path):
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(CNN.read_bytes()[: CNN.stat().st_size // 2])
    out = tmp_path / "out.onnx"
    line = one_line_error(cli(bad, "-o", out))
    assert "truncated.onnx" in line and ("truncated" in line or "corrupt" in line)
    assert not out.exists() and not list(tmp_path.glob(".convertkit-*"))


def test_corrupt_onnx(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    data = bytearray(CNN.read_bytes())
    data[10:60] = os.urandom(50)  # noqa: deterministic enough: any corruption must be caught
    data[0] = 0x08
    bad.write_bytes(bytes(data))
    line = one_line_error(cli(bad, "-o", tmp_path / "o.onnx"))
    assert "corrupt.onnx" in line


def test_garbage_file(tmp_path):
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"\x00\x01hello, not a model")
    line = one_line_error(cli(bad, "-o", tmp_path / "o.onnx"))
    assert "garbage.bin" in line and "hint:" in line


def test_folder_without_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    line = one_line_error(cli(tmp_path, "-o", tmp_path / "o.onnx"))
    assert "no model" in line and "notes.txt" in line


def test_unknown_ops_are_listed_all_at_once(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("FancyOp", ["x"], ["a"], name="f1", domain="com.example"),
             helper.make_node("FancyOp", ["a"], ["b"], name="f2", domain="com.example"),
             helper.make_node("MysteryOp", ["b"], ["y"], name="m1")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, [2])]), opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("com.example", 1)])
    path = tmp_path / "custom.onnx"
    path.write_bytes(model.SerializeToString())
    line = one_line_error(cli(path, "-o", tmp_path / "o.onnx"))
    assert "com.example::FancyOp x2 (f1, f2)" in line and "MysteryOp x1 (m1)" in line


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    w = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    model = helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                                                initializer=[w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    (folder / "m.onnx").write_bytes(model.SerializeToString())
    line = one_line_error(cli(folder / "m.onnx", "-o", tmp_path / "o.onnx"))
    assert "../secret.bin" in line and "outside the model's folder" in line


def test_debug_shows_the_traceback(tmp_path):
    proc = cli(ROOT / "nope.onnx", "-o", tmp_path / "o.onnx", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_bad_arguments_are_one_line_too(tmp_path):
    one_line_error(cli(CNN, "--to", "onnx"))  # no -o
    one_line_error(cli(CNN, "-o", tmp_path / "o.onnx", "--opset", "99"))
    one_line_error(cli(CNN, "-o", tmp_path / "o.xyz"))


def test_failed_export_leaves_no_file(tmp_path):
    out = tmp_path / "cnn.onnx"
    proc = cli(FIXTURES / "onnx" / "transformer_block.onnx", "-o", out, "--opset", "11")
    # opset 11 cannot express LayerNormalization as one op; either it is decomposed (file written and
    # valid) or refused (no file at all): never a half-written output
    if proc.returncode == 0:
        onnx.checker.check_model(onnx.load(out), full_check=True)
    else:
        one_line_error(proc)
        assert not out.exists()
    assert not list(tmp_path.glob(".convertkit-*"))


def test_console_script_is_installed():
    exe = shutil.which("convertkit", path=str(Path(sys.executable).parent))
    assert exe, "the convertkit console script is not installed next to this python"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "convertkit" in proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["inspect", "--help"]])
def test_help(args):
    proc = cli(*args)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower()
