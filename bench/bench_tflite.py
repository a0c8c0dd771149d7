"""convertkit's TFLite exporter beside TensorFlow's TFLiteConverter on the TF fixtures, in one run.

For each fixture (fixtures/tf/*, Keras SavedModels): wall time of the whole conversion (load, passes,
export; for int8 also calibration and quantization) and the size of the written .tflite file, float32
and full-integer int8 (int8 I/O, the same calibration samples for both tools), side by side with the
ratio convertkit / TensorFlow (below 1: convertkit faster or smaller). Each conversion runs
``--repeat`` times in the same process and the fastest run is reported (imports and TF's one-time
graph tracing setup are paid once before timing starts). A conversion a tool refuses prints its error.

    /tmp/allvenv/bin/python bench/bench_tflite.py [--repeat N] [MODEL ...]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convertkit import api

TF_DIR = ROOT / "fixtures" / "tf"
MODELS = ["small_cnn", "mobilenet_v2", "mobilenet_v3", "audio_conv1d", "mlp", "rnn", "unet_tiny"]


def samples(name: str, n: int = 8) -> list[np.ndarray]:
    x = np.load(TF_DIR / "expected.npz")[f"{name}/input"]
    rng = np.random.default_rng(0)
    return [x[i:i + 1] for i in range(len(x))] + [rng.normal(size=(1, *x.shape[1:])).astype(np.float32)
                                                  for _ in range(n - len(x))]


def ours(name: str, out: Path, int8: bool) -> int:
    opts = {}
    if int8:
        g = api.load(TF_DIR / name)
        opts = {"quantize": "int8", "calibration": [{g.inputs[0]: s} for s in samples(name)], "quantized_io": "int8"}
    return api.convert(TF_DIR / name, to="tflite", output=out, **opts).stat().st_size


def theirs(name: str, out: Path, int8: bool) -> int:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(TF_DIR / name))
    if int8:
        data = samples(name)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([s] for s in data)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    buf = conv.convert()
    out.write_bytes(buf)
    return len(buf)


def timed(fn, repeat: int) -> tuple[float, int | str]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        try:
            size = fn()
        except Exception as e:  # noqa: BLE001  (either tool's refusal is a result, printed as such)
            return float("nan"), f"refused: {type(e).__name__}: {str(e).splitlines()[0][:70]}"
        best = min(best, time.perf_counter() - t)
    return best, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=MODELS)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    print(f"{'model':14} {'mode':6} {'convertkit s':>12} {'TF s':>8} {'time ratio':>10} "
          f"{'convertkit B':>12} {'TF B':>8} {'size ratio':>10}")
    with tempfile.TemporaryDirectory() as d:
        for name in args.models:
            for int8 in (False, True):
                t_ck, s_ck = timed(lambda n=name, q=int8: ours(n, Path(d) / "ck.tflite", q), args.repeat)
                t_tf, s_tf = timed(lambda n=name, q=int8: theirs(n, Path(d) / "tf.tflite", q), args.repeat)
                mode = "int8" if int8 else "float"
                row = f"{name:14} {mode:6} {t_ck:12.3f} {t_tf:8.3f} {t_ck / t_tf:10.2f} "
                if isinstance(s_ck, int) and isinstance(s_tf, int):
                    row += f"{s_ck:12d} {s_tf:8d} {s_ck / s_tf:10.2f}"
                else:
                    row += f"{s_ck!s:>12} {s_tf!s:>8}"
                print(row, flush=True)


if __name__ == "__main__":
    main()
