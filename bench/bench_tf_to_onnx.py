"""TensorFlow -> ONNX: convertkit against tf2onnx on the TensorFlow fixtures, in the same run.

    python bench/bench_tf_to_onnx.py [--opset 17] [--repeat 3] [--models small_cnn,mlp]

For each SavedModel in fixtures/tf/: the conversion time (best of --repeat, TensorFlow already imported,
both tools in this process: tf2onnx through its SavedModel loader and ``from_graph_def``, as
``python -m tf2onnx.convert --saved-model DIR`` does), the Transpose and total node counts of the ONNX
each writes, and each model's max relative error against TensorFlow in onnxruntime ("invalid" when the
file does not load). Ratios are convertkit over tf2onnx (time: below 1 is faster; Transposes: the issue
asks for at most 1x).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TF_DIR = ROOT / "fixtures" / "tf"
MODELS = ["small_cnn", "mobilenet_v2", "mobilenet_v3", "audio_conv1d", "mlp", "rnn", "unet_tiny"]


def convertkit_onnx(path: Path, out: Path, opset: int):
    import onnx

    from convertkit import api

    api.convert(path, to="onnx", output=out, opset=opset)
    return onnx.load(str(out))


def tf2onnx_onnx(path: Path, opset: int):
    import logging

    import tf2onnx
    from tf2onnx import tf_loader

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    graph_def, inputs, outputs, renames = tf_loader.from_saved_model(str(path), None, None,
                                                                     return_tensors_to_rename=True)
    model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                              opset=opset, tensors_to_rename=renames)
    return model


def best_time(fn, repeat: int):
    result, best = None, float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return result, best


def error_vs_tf(model, x: np.ndarray, ref: np.ndarray) -> str:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    except Exception as e:
        return f"invalid ({str(e).split(':')[-1].strip()[:40]})"
    return f"{float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-6)):.1e}"


def transposes(model) -> int:
    return sum(n.op_type == "Transpose" for n in model.graph.node)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args(argv)
    import tensorflow  # noqa: F401  (imported once, outside the timings)
    from convertkit.frontends.tensorflow import runtime

    expected = np.load(TF_DIR / "expected.npz")
    header = (f"{'model':14s} {'convertkit s':>12s} {'tf2onnx s':>10s} {'time x':>7s} | "
              f"{'Transposes ck':>13s} {'t2o':>4s} {'x':>5s} | {'nodes ck':>8s} {'t2o':>4s} | "
              f"{'err ck':>8s} {'err t2o':>24s}")
    print(header)
    print("-" * len(header))
    totals = [0.0, 0.0, 0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = TF_DIR / name
            x = expected[f"{name}/input"]
            ref = next(iter(runtime.run(path, "tf-saved-model", {_input_names(path)[0]: x}).values()))
            out = Path(tmp) / f"{name}.onnx"
            ours, t_ck = best_time(lambda p=path, o=out: convertkit_onnx(p, o, args.opset), args.repeat)
            peer, t_peer = best_time(lambda p=path: tf2onnx_onnx(p, args.opset), args.repeat)
            n_ck, n_peer = transposes(ours), transposes(peer)
            ratio = f"{n_ck / n_peer:.1f}" if n_peer else ("1.0" if n_ck == 0 else "inf")
            print(f"{name:14s} {t_ck:12.3f} {t_peer:10.3f} {t_ck / t_peer:7.2f} | {n_ck:13d} {n_peer:4d} "
                  f"{ratio:>5s} | {len(ours.graph.node):8d} {len(peer.graph.node):4d} | "
                  f"{error_vs_tf(ours, x, ref):>8s} {error_vs_tf(peer, x, ref):>24s}")
            totals = [totals[0] + t_ck, totals[1] + t_peer, totals[2] + n_ck, totals[3] + n_peer]
    print("-" * len(header))
    print(f"{'total':14s} {totals[0]:12.3f} {totals[1]:10.3f} {totals[0] / totals[1]:7.2f} | {totals[2]:13d} "
          f"{totals[3]:4d} {totals[2] / max(totals[3], 1):5.1f}")
    return 0


def _input_names(path: Path) -> list[str]:
    from convertkit.frontends import load

    return load(path, "tf-saved-model").inputs


if __name__ == "__main__":
    sys.exit(main())
