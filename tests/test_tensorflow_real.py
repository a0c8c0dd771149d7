"""Real TensorFlow models from ../shared/models (see its MANIFEST.md): each converts with outputs
matching TensorFlow within 1e-4 relative (IR interpreter and the ONNX model in onnxruntime), or fails
with one precise error naming the unsupported construct. ``EXPECTED_FAILURES`` records which; it may
only shrink: a model listed there that starts converting fails this test until it is removed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
ort = pytest.importorskip("onnxruntime")

from convertkit import api  # noqa: E402
from convertkit.backends.onnx import to_model  # noqa: E402
from convertkit.canonical_ir.interpreter import run  # noqa: E402
from convertkit.detect import detect_format  # noqa: E402
from convertkit.errors import ConvertError, UnsupportedOpError, UsageError  # noqa: E402
from convertkit.frontends.tensorflow import runtime  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
if not MODELS.is_dir():
    pytest.skip("the shared real-model corpus is not present", allow_module_level=True)

RTOL = 1e-4
KWS = "tf/arm_ml_kws"
ARM = [f"{KWS}/{kind}/{kind}_{size}.pb"
       for kind in ("DNN", "CNN", "DS_CNN", "LSTM", "Basic_LSTM", "GRU", "CRNN") for size in "SML"]
WHILE_LOOP = "TF1 while loop"

EXPECTED_FAILURES: dict[str, tuple[type, str]] = {
    **{p: (UnsupportedOpError, WHILE_LOOP) for p in ARM if "/DNN/" not in p and "CNN/" not in p},
    "tf/tf_serving_testdata/saved_model_counter/00000123#incr_counter":
        (UnsupportedOpError, "AssignAdd (variable update)"),
    "tf/tf_serving_testdata/saved_model_half_plus_two_cpu/00000123#regress_x_to_y":
        (ConvertError, "tensors of type string are not supported"),
}
"""Models that fail, and the construct their one error names. Only ever remove entries."""


def _normal(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _ad_sample(_):
    raw = np.fromfile(MODELS / "mlperf_tiny/anomaly_detection/data/normal_id_01_00000000_hist_librosa.bin",
                      dtype=np.float32).reshape(40, 640)
    return raw[:2]


def _sww_sample(_):
    specs = np.load(MODELS / "mlperf_tiny/streaming_wakeword/calibration_samples.npz")["specs"]
    return specs[:2].astype(np.float32)


CASES = {
    # path (#signature), frontend options, input maker (shape with batch 2 -> array)
    "mlperf_tiny/anomaly_detection/ad01.h5": ({}, _ad_sample),
    "mlperf_tiny/image_classification/pretrainedResnet.h5": ({}, None),
    "mlperf_tiny/visual_wake_words/vww_96.h5": ({}, None),
    "mlperf_tiny/streaming_wakeword/str_ww_ref_model.h5": ({}, _sww_sample),
    "mlperf_tiny/keyword_spotting/kws_ref_model": ({}, lambda s: _normal(s, scale=10.0)),
    "tf/keras_mnist_ann/model.keras": ({}, None),
    "tf/keras_mnist_ann/best_model.h5": ({}, None),
    "tf/tf_serving_testdata/matrix_half_plus_two/1": ({}, None),
    "tf/tf_serving_testdata/saved_model_half_plus_two_cpu/00000123": ({}, None),
    "tf/tf_serving_testdata/saved_model_half_plus_two_cpu/00000123#regress_x2_to_y3": ({}, None),
    "tf/tf_serving_testdata/saved_model_half_plus_two_cpu/00000123#regress_x_to_y": ({}, None),
    "tf/tf_serving_testdata/saved_model_half_plus_two_tf2_cpu/00000123": ({}, None),
    "tf/tf_serving_testdata/saved_model_half_plus_three/00000123": ({}, None),
    "tf/tf_serving_testdata/saved_model_counter/00000123#get_counter": ({}, None),
    "tf/tf_serving_testdata/saved_model_counter/00000123#incr_counter": ({}, None),
    **{p: ({"inputs": {"Mfcc:0": None}, "outputs": ["labels_softmax:0"]}, lambda s: _normal(s, scale=10.0))
       for p in ARM},
}


def _split(key: str) -> tuple[Path, str | None]:
    path, _, signature = key.partition("#")
    return MODELS / path, signature or None


def _feeds(graph, make) -> dict[str, np.ndarray]:
    feeds = {}
    for i, name in enumerate(graph.inputs):
        t = graph.tensor(name)
        shape = tuple(2 if isinstance(d, str) else d for d in t.shape)
        feeds[name] = make(shape) if make is not None else _normal(shape, seed=i)
        assert feeds[name].shape == shape, (feeds[name].shape, shape)
    return feeds


@pytest.mark.parametrize("key", list(CASES))
def test_real_model(key, tmp_path):
    options, make = CASES[key]
    path, signature = _split(key)
    if signature:
        options = {**options, "signature": signature}
    if key in EXPECTED_FAILURES:
        kind, text = EXPECTED_FAILURES[key]
        try:
            api.load(path, **options)
        except kind as e:
            assert text in str(e), str(e)
            assert "\n" not in str(e)
            print(f"{key}: fails as recorded: {e}")
            return
        pytest.fail(f"{key} now converts: remove it from EXPECTED_FAILURES (the list only shrinks)")
    graph = api.load(path, **options)
    feeds = _feeds(graph, make)
    fmt = detect_format(path)
    out_names = options.get("outputs")
    ref = runtime.run(path, fmt, feeds, outputs=out_names, signature=signature)
    got = run(graph, feeds)
    onnx_path = api.convert(path, to="onnx", output=tmp_path / "model.onnx", frontend_options=options)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    via_ort = dict(zip(graph.outputs, sess.run(None, feeds)))
    errors = []
    for name, r in zip(graph.outputs, ref.values()):
        r = np.asarray(r, np.float64)
        scale = max(float(np.abs(r).max()), 1e-6)
        for label, value in (("IR", got[name]), ("ONNX", via_ort[name])):
            assert np.shape(value) == r.shape, f"{label} {name}: shape {np.shape(value)} vs {r.shape}"
            err = float(np.abs(np.asarray(value, np.float64) - r).max()) / scale
            assert err <= RTOL, f"{label} output {name}: relative error {err:.2e}"
            errors.append(f"{label} {err:.1e}")
    print(f"{key}: converts; max error vs TensorFlow: {', '.join(errors)}")


def test_kws_graph_without_inputs_lists_placeholders():
    with pytest.raises(UsageError) as e:
        api.load(MODELS / f"{KWS}/DS_CNN/DS_CNN_S.pb")
    assert "wav_data:0 (string" in str(e.value) and "--inputs" in str(e.value)


def test_saved_model_without_default_signature_lists_them():
    with pytest.raises(UsageError) as e:
        api.load(MODELS / "tf/tf_serving_testdata/saved_model_counter/00000123")
    assert "get_counter, incr_counter, incr_counter_by, reset_counter" in str(e.value)


def test_kws_saved_model_keeps_the_original_untouched():
    """The TF 2.3 SavedModel needs its optimizer slot references dropped: done on a temporary copy."""
    folder = MODELS / "mlperf_tiny/keyword_spotting/kws_ref_model"
    before = (folder / "saved_model.pb").read_bytes()
    g = api.load(folder)
    assert (folder / "saved_model.pb").read_bytes() == before
    assert g.inputs == ["input_1"] and g.outputs == ["dense"] and g.metadata["tf_version"] == "2.3.2"


def test_kws_mlperf_param_count_matches_keras_h5():
    """The Keras 2.4 .h5 files load with the legacy DepthwiseConv2D ``groups`` key handled; inspect's
    parameter count is Keras's."""
    import keras

    from convertkit.frontends.tensorflow import loaders
    from convertkit.report import inspect_graph

    path = MODELS / "mlperf_tiny/visual_wake_words/vww_96.h5"
    model = keras.saving.load_model(str(path), compile=False, custom_objects=loaders.legacy_objects())
    assert inspect_graph(api.load(path)).params == model.count_params() == 221794


def test_to_model_smoke_for_static_batch_graph():
    g = api.load(MODELS / f"{KWS}/DS_CNN/DS_CNN_S.pb", inputs={"Mfcc": (1, 49, 10)},
                 outputs=["labels_softmax"])
    assert g.tensor("Mfcc:0").shape == (1, 49, 10)
    assert to_model(g).graph.output[0].name == "labels_softmax:0"
