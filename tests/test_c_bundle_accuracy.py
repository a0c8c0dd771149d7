"""Issue 5, accuracy on real data: a small CNN trained on scikit-learn's handwritten digits
(fixtures/make_digits_fixture.py; the tests need no sklearn, the fixture holds the data) converted to a
C bundle in float32 and in int8 (post-training quantization from the fixture's 100 calibration
samples), compiled with the strict flags and run on the 360 held-out images.

Measured in the same run, against TensorFlow itself:
- TensorFlow's float accuracy of the SavedModel;
- TensorFlow's own full-integer int8 post-training quantization (TFLiteConverter.from_saved_model with
  the same calibration samples as ``representative_dataset``), run in LiteRT with the reference kernels;
- the float32 bundle's accuracy: same predictions as TensorFlow (>= 99.5 % of samples, outputs within
  1e-4) and so the same accuracy;
- the int8 bundle's accuracy: less than 1 point below TensorFlow's float accuracy and no worse than
  TensorFlow's int8 quantization.

``pytest -s`` prints the four accuracies.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.c_bundle_util import compile_bundle, compilers, run_bundle
from tests.conftest import FIXTURES
from tests.test_quant_tflite_util import run_litert

MODEL = FIXTURES / "tf" / "digits_cnn"
DATA = FIXTURES / "tf" / "digits_data.npz"
CALIB = FIXTURES / "tf" / "digits_calibration.npz"


def round_half_away(v: np.ndarray) -> np.ndarray:
    """TfLiteRound / C's round: nearest, ties away from zero."""
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's Quantize: ``zero_point + round(x / scale)`` (float32 division), saturated to int8."""
    q = round_half_away(x.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _macros(header: Path) -> dict[str, str]:
    return dict(re.findall(r"^#define\s+(\w+)\s+(.*?)\s*(?:/\*.*)?$", header.read_text(), re.MULTILINE))


def _float_macro(v: str) -> float:
    v = v.strip("() ").rstrip("f")
    return float.fromhex(v) if "0x" in v.lower() else float(v)


class Bundle:
    """A converted, compiled bundle and its I/O as model.h declares it."""

    def __init__(self, folder: Path) -> None:
        m = _macros(folder / "model.h")
        assert m["MODEL_NUM_INPUTS"] == "1" and m["MODEL_NUM_OUTPUTS"] == "1", m
        self.in_type, self.out_type = m["MODEL_INPUT0_TYPE"], m["MODEL_OUTPUT0_TYPE"]
        self.in_shape = tuple(int(d) for d in m["MODEL_INPUT0_DIMS"].strip("{}").split(","))
        self.out_shape = tuple(int(d) for d in m["MODEL_OUTPUT0_DIMS"].strip("{}").split(","))
        self.in_q = ((_float_macro(m["MODEL_INPUT0_SCALE"]), int(m["MODEL_INPUT0_ZERO_POINT"].strip("() ")))
                     if "MODEL_INPUT0_SCALE" in m else None)
        self.out_q = ((_float_macro(m["MODEL_OUTPUT0_SCALE"]), int(m["MODEL_OUTPUT0_ZERO_POINT"].strip("() ")))
                      if "MODEL_OUTPUT0_SCALE" in m else None)
        self.integer_only = m.get("MODEL_INTEGER_ONLY") == "1"
        self.exe = compile_bundle(folder, compilers()[0])

    def run(self, xs: np.ndarray) -> np.ndarray:
        """The output for each sample of ``xs`` (already in the input's dtype), one run each."""
        dtype = {"float": np.float32, "int8_t": np.int8}
        outs = run_bundle(self.exe, [[x.reshape(self.in_shape)] for x in xs],
                          [(np.dtype(dtype[self.out_type]), self.out_shape)])
        return np.stack([o[0].reshape(-1) for o in outs])


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    assert DATA.exists() and MODEL.is_dir(), "run fixtures/make_digits_fixture.py"
    with np.load(DATA) as z:
        d = {k: z[k] for k in z.files}
    assert d["calib_x"].shape == (100, 8, 8, 1) and d["test_x"].shape == (360, 8, 8, 1)
    assert d["test_y"].shape == (360,) and set(np.unique(d["test_y"])) == set(range(10))
    return d


@pytest.fixture(scope="module")
def tf_results(data) -> dict[str, np.ndarray]:
    """TensorFlow's float outputs and its own int8 PTQ's predictions (LiteRT reference kernels)."""
    tf = pytest.importorskip("tensorflow")
    loaded = tf.saved_model.load(str(MODEL))
    fn = loaded.signatures["serving_default"]
    (probs,) = fn(tf.constant(data["test_x"])).values()

    def representative():
        for x in data["calib_x"]:
            yield [x[None]]
    conv = tf.lite.TFLiteConverter.from_saved_model(str(MODEL))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    buf = conv.convert()
    lite = pytest.importorskip("ai_edge_litert.interpreter")
    it = lite.Interpreter(model_content=buf)
    (ind,), (outd,) = it.get_input_details(), it.get_output_details()
    assert ind["dtype"] == np.int8 and outd["dtype"] == np.int8 and tuple(ind["shape"]) == (1, 8, 8, 1)
    scale, zp = ind["quantization"]
    tfl = np.stack([run_litert(buf, [quantize_input(x[None], scale, zp)])[0].reshape(-1)
                    for x in data["test_x"]])
    return {"float": probs.numpy(), "int8_pred": tfl.argmax(1)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("digits")


@pytest.fixture(scope="module")
def f32_out(data, workdir) -> np.ndarray:
    """The float32 bundle's outputs on the held-out images."""
    from convertkit import api

    api.convert(MODEL, to="c-bundle", output=workdir / "f32")
    b = Bundle(workdir / "f32")
    assert b.in_type == "float" and b.out_type == "float" and b.in_q is None, vars(b)
    return b.run(data["test_x"].astype(np.float32))


@pytest.fixture(scope="module")
def i8_out(data, workdir) -> np.ndarray:
    """The int8 bundle's outputs on the held-out images, quantized with the bundle's input parameters."""
    from convertkit import api

    # the calibration file as the CLI takes it (``make demo`` uses it): the samples TensorFlow calibrates
    # from, under the graph input's name
    name = api.load(MODEL).inputs[0]
    with np.load(CALIB) as z:
        assert z.files == [name] and np.array_equal(z[name], data["calib_x"]), (z.files, name)
    api.convert(MODEL, to="c-bundle", output=workdir / "i8", quantize="int8", calibration=CALIB)
    b = Bundle(workdir / "i8")
    assert b.in_type == "int8_t" and b.out_type == "int8_t" and b.in_q is not None and b.integer_only, vars(b)
    return b.run(quantize_input(data["test_x"], *b.in_q))


def accuracies(data, tf_results, f32_out=None, i8_out=None) -> dict[str, float]:
    """Every figure measured so far (printed; ``pytest -s`` shows them)."""
    y, tf_pred = data["test_y"], tf_results["float"].argmax(1)
    acc = {"tf_float": float(np.mean(tf_pred == y)),
           "tf_int8_ptq": float(np.mean(tf_results["int8_pred"] == y))}
    if f32_out is not None:
        acc |= {"bundle_float": float(np.mean(f32_out.argmax(1) == y)),
                "float_agreement": float(np.mean(f32_out.argmax(1) == tf_pred)),
                "float_max_abs_diff": float(np.max(np.abs(f32_out - tf_results["float"])))}
    if i8_out is not None:
        acc |= {"bundle_int8": float(np.mean(i8_out.argmax(1) == y)),
                "int8_agreement_with_tf_ptq": float(np.mean(i8_out.argmax(1) == tf_results["int8_pred"]))}
    print("\ndigits, 360 held-out images: " + ", ".join(
        f"{k} {v:.2e}" if k == "float_max_abs_diff" else f"{k} {v * 100:.2f} %" for k, v in acc.items()))
    return acc


def _fmt(acc: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in acc.items())


def test_fixture_model_is_accurate(data, tf_results):
    acc = accuracies(data, tf_results)
    assert acc["tf_float"] >= 0.95, _fmt(acc)
    assert acc["tf_float"] - acc["tf_int8_ptq"] < 0.02, _fmt(acc)      # TensorFlow's PTQ works on it too


def test_float_bundle_matches_tensorflow(data, tf_results, f32_out):
    acc = accuracies(data, tf_results, f32_out=f32_out)
    assert acc["float_agreement"] >= 0.995, _fmt(acc)
    assert acc["float_max_abs_diff"] < 1e-4, _fmt(acc)
    assert abs(acc["bundle_float"] - acc["tf_float"]) <= 1 - acc["float_agreement"], _fmt(acc)


def test_int8_bundle_accuracy(data, tf_results, f32_out, i8_out):
    """The int8 drop is under 1 point, and no worse than TensorFlow's own int8 PTQ."""
    acc = accuracies(data, tf_results, f32_out=f32_out, i8_out=i8_out)
    drop = acc["tf_float"] - acc["bundle_int8"]
    assert drop < 0.01, f"int8 drop {drop * 100:.2f} points; {_fmt(acc)}"
    assert acc["bundle_int8"] >= acc["tf_int8_ptq"], _fmt(acc)
