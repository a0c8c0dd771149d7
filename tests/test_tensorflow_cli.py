"""Bad TensorFlow input through the command line: each is one clear line on stderr and exit code 2.

The four cases the issue names run ``python -m convertkit.cli`` in a subprocess (as a user would); the
rest call ``cli.main`` in-process, which is the same code without paying TensorFlow's import again.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from convertkit import cli  # noqa: E402
from tests.conftest import FIXTURES, ROOT  # noqa: E402

TF_DIR = FIXTURES / "tf"


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    return subprocess.run([sys.executable, "-m", "convertkit.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("convertkit:")]
    assert len(lines) == 1 and lines[0].startswith("convertkit: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def main_error(capsys, *args: str | Path) -> str:
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("convertkit: error:"), err
    return err[0]


def _lambda_model(marker: Path):
    """A model whose Lambda layer would create ``marker`` if its code ever ran."""
    def side_effect(x):
        marker.write_text("the Lambda layer ran")
        return x * 2.0

    inp = keras.Input((4,), name="x")
    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(side_effect, name="evil")(inp)))


# ------------------------------------------------------------------------- the four cases
def test_folder_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    r = run_cli(tmp_path, "--format", "tf-saved-model", "--to", "onnx", "-o", tmp_path / "out.onnx")
    assert_one_line_error(r, "not a SavedModel folder", "saved_model.pb")
    assert not (tmp_path / "out.onnx").exists()


def test_keras_file_with_a_lambda_layer_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran.txt"
    model = _lambda_model(marker)
    model.save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)  # saving traced the layer once; from here on nothing may run it
    r = run_cli(tmp_path / "lambda.keras", "--to", "onnx", "-o", tmp_path / "out.onnx")
    assert_one_line_error(r, "Lambda 'evil'", "refusing to load")
    assert not marker.exists()


def test_pb_that_is_not_a_graph_def(tmp_path):
    bad = tmp_path / "model.pb"
    bad.write_bytes(bytes(range(256)) * 3)
    r = run_cli(bad, "--to", "onnx", "-o", tmp_path / "out.onnx")
    assert_one_line_error(r, "not a TensorFlow GraphDef")


def test_wrong_inputs_name(tmp_path):
    r = run_cli(TF_DIR / "small_cnn_frozen.pb", "--inputs", "imag:0", "--to", "onnx",
                "-o", tmp_path / "out.onnx")
    assert_one_line_error(r, "no tensor 'imag:0'", "did you mean image", "image:0 (float32 ?x16x16x3)")


# --------------------------------------------------------------------------------- more, in-process
def test_lambda_in_legacy_h5_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    _lambda_model(marker).save(tmp_path / "lambda.h5")
    marker.unlink(missing_ok=True)
    err = main_error(capsys, "inspect", tmp_path / "lambda.h5")
    assert "Lambda 'evil'" in err and not marker.exists()


def test_custom_layer_is_refused(tmp_path, capsys):
    @keras.saving.register_keras_serializable(package="mine")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inp = keras.Input((3,))
    keras.Model(inp, Doubler(name="doubler")(inp)).save(tmp_path / "custom.keras")
    err = main_error(capsys, "inspect", tmp_path / "custom.keras")
    assert "custom object" in err and "doubler" in err


def test_corrupt_saved_model_pb(tmp_path, capsys):
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xfe garbage")
    assert "not a valid SavedModel" in main_error(capsys, "inspect", tmp_path)


def test_saved_model_pb_passed_as_graph_def(capsys):
    err = main_error(capsys, "inspect", TF_DIR / "mlp" / "saved_model.pb", "--format", "tf-graphdef")
    assert "SavedModel's saved_model.pb" in err and "pass the folder" in err


def test_unknown_signature_and_tag(capsys):
    err = main_error(capsys, "inspect", TF_DIR / "mlp", "--signature", "nope")
    assert "its signatures: serve, serving_default" in err
    assert "its tag sets: serve" in main_error(capsys, "inspect", TF_DIR / "mlp", "--tag", "gpu")


def test_weights_flag_is_refused(tmp_path, capsys):
    err = main_error(capsys, "--weights", TF_DIR / "mlp.keras", TF_DIR / "mlp.keras", "--to", "onnx",
                     "-o", tmp_path / "o.onnx")
    assert "no separate weights file" in err


def test_inputs_shape_must_fit(capsys):
    err = main_error(capsys, "inspect", TF_DIR / "mlp", "--inputs", "features=2x21")
    assert "static shape ['N', 20]" in err


def test_cut_at_inner_tensor_and_named_outputs(capsys):
    """--inputs may name an inner tensor (the graph is cut there); --outputs an inner result."""
    code = cli.main(["inspect", str(TF_DIR / "small_cnn_frozen.pb"), "--json", "--inputs",
                     "small_cnn_1/max_pooling2d_1/MaxPool2d:0=1x8x8x8", "--outputs", "probs"])
    import json

    report = json.loads(capsys.readouterr().out)
    assert code == 0 and list(report["inputs"]) == ["small_cnn_1/max_pooling2d_1/MaxPool2d:0"]
    assert report["inputs"]["small_cnn_1/max_pooling2d_1/MaxPool2d:0"] == [1, 8, 8, 8]
    assert "MaxPool" not in report["ops"] and report["ops"]["Conv"] == 1


@pytest.mark.parametrize("model, extra", [
    ("mobilenet_v3", []), ("rnn.keras", []), ("small_cnn_frozen.pb", ["--inputs", "image:0"]),
])
def test_verify_runs_the_source_in_tensorflow(model, extra, tmp_path, capsys):
    code = cli.main([str(TF_DIR / model), "--to", "onnx", "-o", str(tmp_path / "m.onnx"), "--verify", *extra])
    out = capsys.readouterr().out
    assert code == 0 and "verification passed" in out, out
    assert "reference interpreter" not in out  # the source ran in TensorFlow itself
