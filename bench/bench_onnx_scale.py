"""Scale: ONNX -> IR -> ONNX on synthetic graphs of 1k, 10k and 100k nodes.

    python bench/bench_onnx_scale.py [--sizes 1000,10000,100000]

Prints the time per node of each phase; a pass that is quadratic in the graph would show as a time per
node that grows with the size. The peer baseline is onnx itself doing the least any tool must do on
the same file (parse, shape inference, serialize), measured in the same run; the ratio is convertkit's
total over it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import convertkit
from convertkit.backends.onnx import export


def synthetic(n_nodes: int, width: int = 8, seed: int = 0) -> onnx.ModelProto:
    """Residual blocks (MatMul, Add, Relu, Add-skip, Identity) so the graph has fan-out, fan-in and
    removable nodes; n_nodes counts ONNX nodes."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "x"
    i = 0
    while len(nodes) + 5 <= n_nodes:
        w = numpy_helper.from_array((rng.standard_normal((width, width)) * 0.3).astype(np.float32), f"w{i}")
        b = numpy_helper.from_array(rng.standard_normal(width).astype(np.float32) * 0.1, f"b{i}")
        inits += [w, b]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"add{i}"),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"relu{i}"),
                  helper.make_node("Identity", [f"r{i}"], [f"id{i}"], name=f"id{i}"),
                  helper.make_node("Add", [x, f"id{i}"], [f"s{i}"], name=f"skip{i}")]
        x = f"s{i}"
        i += 1
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    graph = helper.make_graph(nodes, "synthetic", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                 ["N", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'nodes':>8} {'load us/node':>13} {'export us/node':>15} {'total us/node':>14} "
          f"{'onnx baseline us/node':>22} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            src = Path(tmp) / f"syn{n}.onnx"
            src.write_bytes(synthetic(n).SerializeToString())
            graph, t_load = timed(lambda: convertkit.load(src))
            _, t_export = timed(lambda: export(graph, Path(tmp) / f"out{n}.onnx", check=False))

            def baseline():
                m = onnx.load(src)
                m = onnx.shape_inference.infer_shapes(m)
                (Path(tmp) / f"base{n}.onnx").write_bytes(m.SerializeToString())

            _, t_base = timed(baseline)
            total = t_load + t_export
            print(f"{n:>8} {t_load / n * 1e6:>13.1f} {t_export / n * 1e6:>15.1f} {total / n * 1e6:>14.1f} "
                  f"{t_base / n * 1e6:>22.1f} {total / t_base:>6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
