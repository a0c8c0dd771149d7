"""The same int8 model in the C bundle and in TFLite Micro: a float fixture quantized once by
convertkit (seeded calibration), written both as a C bundle and as a `.tflite` (issue 6's exporter),
run on the same seeded int8 inputs: the compiled C and TFLite Micro agree bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convertkit import api
from convertkit.backends.c_bundle.host import read_io
from tests.c_bundle_util import compile_bundle, run_bundle
from tests.conftest import FIXTURES
from tests.test_c_bundle_int8_fixtures import _calibration

pytest.importorskip("tflite_micro")
from tests.test_quant_tflite_util import run_tflm  # noqa: E402

MODELS = ["small_cnn", "mobilenet_v2", "unet_tiny", "digits_cnn"]
"""Fixtures whose every int8 op TFLite Micro has (audio_conv1d's GELU and mobilenet_v3's hard sigmoid
table it has not; rnn's unrolled cells it runs only with a fixed batch, tested in test_tflite_export)."""


@pytest.mark.parametrize("model", MODELS)
def test_bundle_equals_tflite_micro(model: str, tmp_path: Path) -> None:
    src = FIXTURES / "tf" / model
    written = []
    folder = api.convert(src, to="c-bundle", output=tmp_path / "bundle", quantize="int8",
                         calibration=_calibration(api.load(src), 6, seed=2), on_graph=written.append)
    tfl = api.save(written[0], tmp_path / "m.tflite").read_bytes()
    ins, outs = read_io(folder)
    rng = np.random.default_rng(11)
    records = [[rng.integers(-128, 128, i.shape).astype(i.dtype) for i in ins] for _ in range(3)]
    got = run_bundle(compile_bundle(folder), records, [(o.dtype, o.shape) for o in outs])
    for rec, g in zip(records, got):
        micro = run_tflm(tfl, rec)
        assert micro is not None
        for a, b in zip(g, micro):
            np.testing.assert_array_equal(a, np.asarray(b).reshape(a.shape), err_msg=model)
