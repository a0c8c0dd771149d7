"""Every TensorFlow fixture through `--to c-bundle --quantize int8` (seeded calibration data), compiled
with gcc and clang under the strict flags and run on seeded inputs: outputs bit-exact with the IR's
int8 reference interpreter (TFLite Micro's arithmetic) on the graph the bundle was written from, and
the C is integer-only. A fixture with an op that has no int8 kernel is refused with the one-line
listing, never written (asserted too)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convertkit import api
from convertkit.backends.c_bundle.host import read_io
from convertkit.canonical_ir.interpreter import run
from convertkit.errors import ConvertError
from tests.c_bundle_util import compile_bundle, compilers, run_bundle
from tests.conftest import FIXTURES

TF = FIXTURES / "tf"
QUANTIZABLE = ["small_cnn", "mobilenet_v2", "mobilenet_v3", "audio_conv1d", "unet_tiny", "rnn", "digits_cnn"]
REFUSED = {"mlp": "Sqrt"}
"""Fixtures with ops that have no integer kernel (TFLite has none either), and one op named in the error."""


def _calibration(graph, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feed = {}
        for name in graph.inputs:
            t = graph.tensor(name)
            shape = tuple(d if isinstance(d, int) else 1 for d in t.shape)
            feed[name] = rng.standard_normal(shape).astype(np.float32)
        out.append(feed)
    return out


@pytest.mark.parametrize("model", QUANTIZABLE)
def test_int8_fixture_bit_exact(model: str, tmp_path: Path) -> None:
    src = TF / model
    calib = _calibration(api.load(src), 6, seed=1)
    written = []
    folder = api.convert(src, to="c-bundle", output=tmp_path / model, quantize="int8", calibration=calib,
                         on_graph=written.append)
    graph = written[0]
    assert "#define MODEL_INTEGER_ONLY 1" in (folder / "model.h").read_text()
    ins, outs = read_io(folder)
    rng = np.random.default_rng(7)
    records = [[rng.integers(-128, 128, i.shape).astype(i.dtype) for i in ins] for _ in range(4)]
    expected = [[np.asarray(run(graph, dict(zip(graph.inputs, rec)))[o]) for o in graph.outputs] for rec in records]
    specs = [(o.dtype, o.shape) for o in outs]
    for cc in compilers():
        got = run_bundle(compile_bundle(folder, cc), records, specs)
        for r, (g, e) in enumerate(zip(got, expected)):
            for k, (a, b) in enumerate(zip(g, e)):
                np.testing.assert_array_equal(a, b.reshape(a.shape), err_msg=f"{model} {cc} record {r} output {k}")


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_fixture_without_int8_kernels_is_refused(model: str, tmp_path: Path) -> None:
    src = TF / model
    with pytest.raises(ConvertError) as e:
        api.convert(src, to="c-bundle", output=tmp_path / model, quantize="int8",
                    calibration=_calibration(api.load(src), 2, seed=1))
    assert REFUSED[model] in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / model).exists()
