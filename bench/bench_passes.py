"""The pass pipeline on synthetic 1k/10k/100k-node graphs, and the transposes left on the fixtures.

    python bench/bench_passes.py [--sizes 1000,10000,100000] [--no-counts]

Part 1 times normalize -> optimize -> legalize for ONNX on an NHWC residual CNN (Conv, BatchNorm,
Relu, Pad, Add, Transposes to cancel) and prints the time per node of each stage: a pass that is not
linear in the graph size shows as a time per node growing with the size. Part 2 prints the Transpose
nodes left inside each graph (and at its interface) after layout conversion: NHWC graphs to ONNX, and
NCHW fixtures to an NHWC target like TFLite's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convertkit.canonical_ir.graph import Graph  # noqa: E402
from convertkit.canonical_ir.passes import count_transposes, infer_shapes  # noqa: E402
from convertkit.canonical_ir.passes.manager import PassManager  # noqa: E402
from convertkit.pipeline import stages_for  # noqa: E402


def synthetic_nhwc(n_nodes: int, c: int = 4, seed: int = 0) -> Graph:
    """Residual blocks of Pad -> Conv -> BatchNorm -> Relu -> Add(skip), all NHWC: every block gives
    the passes a Pad and a BatchNorm to fold and two layout transposes to cancel."""
    rng = np.random.default_rng(seed)
    g = Graph("synthetic")
    x = g.add_input("x", np.float32, ("N", 4, 4, c))
    pads = g.add_const(np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64), "pads")
    i = 0
    while 5 * (i + 1) <= n_nodes:
        w = g.add_const((rng.standard_normal((c, 3, 3, c)) * 0.2).astype(np.float32), f"w{i}")
        stats = [g.add_const(v.astype(np.float32), f"bn{i}") for v in
                 (np.ones(c), np.zeros(c), rng.standard_normal(c) * 0.1, np.ones(c))]
        g.add_node("Pad", [x, pads], [f"p{i}"])
        g.add_node("Conv", [f"p{i}", w], [f"c{i}"], {"layout": "NHWC", "kernel_shape": [3, 3]})
        g.add_node("BatchNormalization", [f"c{i}", *stats], [f"b{i}"], {"layout": "NHWC"})
        g.add_node("Relu", [f"b{i}"], [f"r{i}"])
        g.add_node("Add", [x, f"r{i}"], [f"s{i}"])
        x = f"s{i}"
        i += 1
    g.outputs = [x]
    infer_shapes(g)
    return g


def bench(sizes: list[int]) -> None:
    print(f"{'nodes':>8} {'normalize us/node':>18} {'optimize us/node':>17} {'legalize us/node':>17} "
          f"{'total us/node':>14} {'ops after':>10}")
    for n in sizes:
        g = synthetic_nhwc(n)
        stages = stages_for("onnx")
        times = []
        for stage in stages:
            t = time.perf_counter()
            PassManager([stage]).run(g)
            times.append(time.perf_counter() - t)
        per = [t / n * 1e6 for t in times]
        print(f"{n:>8} {per[0]:>18.1f} {per[1]:>17.1f} {per[2]:>17.1f} {sum(per):>14.1f} {len(g):>10}")


def counts() -> None:
    from tests.test_layout import CNN_FIXTURES, KINDS, _export, nhwc_net, onnx_transposes, static_spatial
    from tests.test_passes_equivalence import NHWC_TARGET, load_fixture
    from convertkit.pipeline import make_manager, stages_for_capabilities
    from convertkit.backends.onnx import to_model
    import convertkit

    print("\nTransposes left (inside the graph, at its interface)")
    print(f"{'model':<34} {'before':>8} {'after, source interface':>24} {'after, interface moved':>23}")
    for kind in KINDS:
        graph = nhwc_net(kind)
        src = count_transposes(graph)
        print(f"{'NHWC ' + kind + ' -> ONNX':<34} {str(src):>8} {str(onnx_transposes(_export(graph))):>24} "
              f"{str(onnx_transposes(_export(graph, input_layout='NCHW', output_layout='NCHW'))):>23}")
    graph = convertkit.load(ROOT / "fixtures" / "caffe2" / "nhwc")
    kept = to_model(make_manager("onnx").run(graph.copy()))
    moved = to_model(make_manager("onnx", input_layout="NCHW", output_layout="NCHW").run(graph.copy()))
    print(f"{'caffe2/nhwc -> ONNX':<34} {str(count_transposes(graph)):>8} {str(onnx_transposes(kept)):>24} "
          f"{str(onnx_transposes(moved)):>23}")
    for name in CNN_FIXTURES:
        graph, feeds = load_fixture(ROOT / "fixtures" / name)
        graph = static_spatial(graph, feeds)
        kept = PassManager(stages_for_capabilities(NHWC_TARGET)).run(graph.copy())
        moved = PassManager(stages_for_capabilities(NHWC_TARGET, "NHWC", "NHWC")).run(graph.copy())
        print(f"{name + ' -> NHWC':<34} {str(count_transposes(graph)):>8} {str(count_transposes(kept)):>24} "
              f"{str(count_transposes(moved)):>23}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--no-counts", action="store_true")
    args = ap.parse_args()
    bench([int(s) for s in args.sizes.split(",")])
    if not args.no_counts:
        counts()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
