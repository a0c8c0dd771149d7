"""int8 C kernels other than conv/dense (backends/c_bundle/kernels/int8/{binary,pool,softmax,movement,quant}):
single-op quantized graphs built by hand (seeded parameters and inputs), exported as C bundles, compiled
with gcc and clang under the strict flags, run on batches of seeded inputs, and compared bit for bit
with the IR reference interpreter's integer kernels (TFLite Micro's arithmetic). Independent cases of one
family share a bundle (one node each, one compile). Whole MLPerf Tiny int8 models (keyword spotting, which
also needs the conv/dense kernels; ResNet-8 with its Adds; ToyCar with float edges) are compared with the
IR and with TFLite Micro itself, and a chain of these kernels is built for Cortex-M0 (soft float) to
prove it links no floating-point helper."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convertkit.backends.c_bundle import export
from convertkit.canonical_ir.graph import Graph, QuantParams
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.canonical_ir.passes.infer import infer_shapes

from tests.c_bundle_util import compile_bundle, compilers, graph_out_specs, run_bundle
from tests.conftest import ROOT

I8 = np.int8
F32 = np.float32
N_BATCH = 24


def qp(scale: float, zp: int = 0) -> QuantParams:
    return QuantParams(np.asarray(scale, F32), np.asarray(zp, I8), None)


class Const:
    def __init__(self, value: np.ndarray, q: QuantParams | None = None) -> None:
        self.value, self.q = value, q


def add_op(g: Graph, prefix: str, op: str, inputs: list, out_q: list[QuantParams] | QuantParams,
           attrs: dict | None = None, out_dtype=I8) -> None:
    """Add one node ``op`` fed by its own graph inputs: inputs are (shape, QuantParams) for int8 graph
    inputs, (shape, None) for float inputs, Const, or None (absent); ``out_q`` one QuantParams per
    output (None for a float output). Tensor names start with ``prefix``."""
    names = []
    for i, spec in enumerate(inputs):
        if spec is None:
            names.append(None)
        elif isinstance(spec, Const):
            n = g.add_const(spec.value, f"{prefix}c{i}")
            if spec.q is not None:
                g.tensor(n).quant = spec.q
            names.append(n)
        else:
            shape, q = spec
            g.add_input(f"{prefix}x{i}", I8 if q is not None else F32, shape)
            if q is not None:
                g.tensor(f"{prefix}x{i}").quant = q
            names.append(f"{prefix}x{i}")
    outs = out_q if isinstance(out_q, list) else [out_q]
    onames = []
    for j, q in enumerate(outs):
        g.add_tensor(f"{prefix}y{j}", I8 if q is not None else out_dtype, None, quant=q)
        onames.append(f"{prefix}y{j}")
    g.add_node(op, names, onames, attrs or {}, name=f"{prefix}{op}")
    g.outputs += onames


def graph(op: str, inputs: list, out_q: list[QuantParams] | QuantParams, attrs: dict | None = None,
          out_dtype=I8) -> Graph:
    """A graph of one node (see :func:`add_op`)."""
    g = Graph(op.lower())
    add_op(g, "", op, inputs, out_q, attrs, out_dtype)
    infer_shapes(g)
    return g


def suite(cases: dict[str, tuple]) -> Graph:
    """Independent single-op nodes in one graph (one bundle, one compile): case name -> the
    arguments of :func:`add_op` after the prefix."""
    g = Graph("suite")
    for name, args in sorted(cases.items()):
        add_op(g, f"{name}__", *args)
    infer_shapes(g)
    return g


def feeds_for(g: Graph, seed: int, n: int = N_BATCH) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    feeds = []
    for k in range(n):
        feed = []
        for name in g.inputs:
            t = g.tensor(name)
            shape = tuple(t.shape)
            if np.dtype(t.dtype) == np.dtype(F32):
                a = (rng.normal(size=shape) * 3).astype(F32)
                if k == 0:                                   # rounding ties and saturation
                    flat = a.reshape(-1)
                    special = np.array([0.5, -0.5, 1.5, -2.5, 1e9, -1e9, 0.0, 126.5], F32) * F32(0.05)
                    flat[:min(flat.size, special.size)] = special[:flat.size]
            else:
                a = rng.integers(-128, 128, shape).astype(I8)
                if k == 0:
                    a[...] = 127
                elif k == 1:
                    a[...] = -128
            feed.append(a)
        feeds.append(feed)
    return feeds


def check_bit_exact(g: Graph, tmp_path: Path, seed: int = 0, n: int = N_BATCH) -> None:
    """Export, compile with every compiler, run the batch and compare with the IR interpreter."""
    folder = export(g, tmp_path / "bundle")
    feeds = feeds_for(g, seed, n)
    want = [[np.asarray(run(g, dict(zip(g.inputs, f)))[o]) for o in g.outputs] for f in feeds]
    specs = graph_out_specs(g)
    ccs = compilers()
    assert "gcc" in ccs
    for cc in ccs:
        got = run_bundle(compile_bundle(folder, cc), feeds, specs)
        for k, (w, o) in enumerate(zip(want, got)):
            for j, (a, b) in enumerate(zip(w, o)):
                assert a.dtype == b.dtype and a.shape == b.shape, (cc, k, j, a.dtype, b.dtype, a.shape, b.shape)
                if not np.array_equal(a, b):
                    bad = np.argwhere(a != b)[:5].tolist()
                    raise AssertionError(f"{cc}: sample {k} output {g.outputs[j]!r} differs from the IR at {bad}: "
                                         f"IR {a[tuple(np.array(bad).T)]} C {b[tuple(np.array(bad).T)]}")


# ------------------------------------------------------------------------------------ Add, Sub, Mul
BINARY_CASES = {
    "add_bcast_channels": ("Add", [((1, 4, 4, 8), qp(0.05, 3)), ((1, 1, 1, 8), qp(0.11, -7))], qp(0.09, -2), {}),
    "add_same_shape": ("Add", [((1, 4, 4, 8), qp(0.02, -128)), ((1, 4, 4, 8), qp(0.02, -128))],
                       qp(0.04, -128), {}),
    "add_scalar_const": ("Add", [((1, 4, 4, 8), qp(0.05, 3)), Const(np.array(37, I8), qp(0.2, 5))],
                         qp(0.1, 0), {}),
    "add_runtime_scalar": ("Add", [((1, 4, 4, 8), qp(0.05, 3)), ((), qp(0.3, -4))], qp(0.1, 7), {}),
    "mul_runtime_scalar": ("Mul", [((1,), qp(0.3, -4)), ((2, 4, 8), qp(0.05, 3))], qp(0.1, 7), {}),
    "add_fused_relu": ("Add", [((1, 4, 4, 8), qp(0.05, 3)), ((1, 1, 1, 8), qp(0.03, -1))], qp(0.06, -20),
                       {FUSED_ACTIVATION: ("Relu",)}),
    "add_const_row_first": ("Add", [Const(np.arange(-4, 4, dtype=I8) * 9, qp(0.07, 2)), ((2, 3, 8), qp(0.05, 1))],
                            qp(0.08, 4), {FUSED_ACTIVATION: ("Clip", 0.0, 6.0)}),
    "add_large_tables": ("Add", [((1, 16, 16, 8), qp(0.05, 3)), ((1, 16, 16, 8), qp(0.11, -7))], qp(0.09, -2),
                         {FUSED_ACTIVATION: ("Relu",)}),
    "sub_large_bcast": ("Sub", [((1, 1, 16, 8), qp(0.013, 100)), ((1, 16, 16, 8), qp(0.05, -128))],
                        qp(0.06, 9), {}),
    "sub_bcast_rows": ("Sub", [((1, 4, 4, 8), qp(0.05, 3)), ((1, 4, 1, 1), qp(0.08, 10))], qp(0.12, 0), {}),
    "mul_bcast_channels": ("Mul", [((1, 4, 4, 8), qp(0.05, 3)), ((1, 1, 1, 8), qp(0.11, -7))], qp(0.2, -5), {}),
    "mul_const_vector_relu6": ("Mul", [((1, 4, 4, 8), qp(0.05, 3)),
                                       Const(np.arange(-64, 64, 16, dtype=I8), qp(0.02, 0))],
                               qp(0.01, -100), {FUSED_ACTIVATION: ("Clip", 0.0, 6.0)}),
    "mul_scalar_big_multiplier": ("Mul", [((3, 5), qp(0.5, 0)), Const(np.array(-100, I8), qp(0.5, 20))],
                                  qp(0.01, 0), {}),
}


def test_binary(tmp_path):
    check_bit_exact(suite(BINARY_CASES), tmp_path)


# ------------------------------------------------------------------------------------ pools, means
POOL_CASES = {
    "max_same_s2": ("MaxPool", (1, 9, 7, 5), qp(0.1, 2), qp(0.1, 2),
                    {"layout": "NHWC", "kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "max_pads_relu_requant": ("MaxPool", (2, 6, 6, 3), qp(0.1, 2), qp(0.07, -9),
                              {"layout": "NHWC", "kernel_shape": [2, 3], "strides": [1, 2], "pads": [1, 0, 1, 1],
                               FUSED_ACTIVATION: ("Relu",)}),
    "avg_same_s2": ("AveragePool", (1, 9, 7, 5), qp(0.1, 2), qp(0.1, 2),
                    {"layout": "NHWC", "kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "avg_ceil_requant": ("AveragePool", (1, 8, 8, 4), qp(0.05, -3), qp(0.09, 7),
                         {"layout": "NHWC", "kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1,
                          "pads": [1, 1, 0, 0]}),
    "avg_kws_global_window": ("AveragePool", (1, 25, 5, 16), qp(0.1, -128), qp(0.1, -128),
                              {"layout": "NHWC", "kernel_shape": [25, 5], "strides": [25, 5], "auto_pad": "VALID"}),
    "avg_1d": ("AveragePool", (2, 11, 3), qp(0.1, 0), qp(0.1, 0),
               {"layout": "NWC", "kernel_shape": [4], "strides": [3], "auto_pad": "SAME_LOWER"}),
}


def test_pool(tmp_path):
    check_bit_exact(suite({k: (op, [(shape, qx)], qy, attrs) for k, (op, shape, qx, qy, attrs) in POOL_CASES.items()}),
                    tmp_path)


REDUCE_CASES = {
    "gap_nhwc": ("GlobalAveragePool", (1, 7, 5, 12), qp(0.05, -4), qp(0.03, 6), {"layout": "NHWC"}, None),
    "gmp_nhwc_requant": ("GlobalMaxPool", (2, 3, 4, 6), qp(0.05, -4), qp(0.08, 1), {"layout": "NHWC"}, None),
    "mean_hw_keep": ("ReduceMean", (1, 6, 5, 8), qp(0.05, -4), qp(0.02, 3), {"keepdims": 1}, [1, 2]),
    "mean_hw_drop": ("ReduceMean", (1, 6, 5, 8), qp(0.05, -128), qp(0.05, -128), {"keepdims": 0}, [1, 2]),
    "mean_last_axis": ("ReduceMean", (3, 4, 10), qp(0.1, 0), qp(0.07, -3), {"keepdims": 0}, [-1]),
    "mean_all": ("ReduceMean", (2, 3, 5), qp(0.1, 9), qp(0.01, -3), {"keepdims": 1}, None),
    "max_axis1": ("ReduceMax", (2, 5, 3, 4), qp(0.1, 0), qp(0.1, 0), {"keepdims": 0}, [1]),
    "min_axis0_3_requant": ("ReduceMin", (2, 5, 3, 4), qp(0.1, 0), qp(0.13, 12), {"keepdims": 1}, [0, 3]),
}


def test_reduce(tmp_path):
    cases = {}
    for k, (op, shape, qx, qy, attrs, axes) in REDUCE_CASES.items():
        ins = [(shape, qx)] + ([Const(np.array(axes, np.int64))] if axes is not None else [])
        cases[k] = (op, ins, qy, attrs)
    check_bit_exact(suite(cases), tmp_path)


# ------------------------------------------------------------------------------------------ Softmax
SOFTMAX_OUT = qp(1 / 256, -128)


SOFTMAX_CASES = [((4, 1), 0.1, -1), ((3, 10), 0.0625, -1), ((2, 37), 0.3, -1), ((1, 300), 0.02, -1),
                 ((2, 600), 0.5, -1), ((2, 7, 3), 0.1, 1), ((5, 12), 0.0039, -1), ((1, 12), 0.9, -1)]


def test_softmax(tmp_path):
    """Row lengths 1 to 600 (600: the sum reaches 2^28, the final shift exceeds 31), an inner axis."""
    check_bit_exact(suite({f"s{i}": ("Softmax", [(shape, qp(scale, 5))], SOFTMAX_OUT, {"axis": axis})
                           for i, (shape, scale, axis) in enumerate(SOFTMAX_CASES)}), tmp_path)


def test_softmax_rows_of_equal_values(tmp_path):
    g = graph("Softmax", [((1, 12), qp(0.2, 0))], SOFTMAX_OUT, {"axis": -1})
    folder = export(g, tmp_path / "b")
    feeds = [[np.full((1, 12), v, I8)] for v in (-128, 0, 127)] + \
            [[np.array([[127] + [-128] * 11], I8)], [np.array([[-128] * 11 + [127]], I8)]]
    exe = compile_bundle(folder, "gcc")
    got = run_bundle(exe, feeds, graph_out_specs(g))
    for f, o in zip(feeds, got):
        np.testing.assert_array_equal(o[0], run(g, {"x0": f[0]})["y0"])


# ------------------------------------------------------------------------------------ data movement
MOVE_CASES = {
    "concat_scales": ("Concat", [((1, 4, 4, 3), qp(0.05, 3)), ((1, 4, 4, 5), qp(0.2, -10)),
                                 Const((np.arange(16) * 13 - 100).astype(I8).reshape(1, 4, 4, 1), qp(0.1, 0)),
                                 ((1, 4, 4, 2), qp(0.1, -1))], qp(0.1, -1), {"axis": -1}),
    "concat_axis1": ("Concat", [((2, 3, 4), qp(0.05, 3)), ((2, 1, 4), qp(0.05, 3))], qp(0.05, 3), {"axis": 1}),
    "pad_zero_point": ("Pad", [((1, 5, 4, 3), qp(0.1, -7)), Const(np.array([0, 1, 2, 0, 0, 2, 1, 0], np.int64))],
                       qp(0.1, -7), {}),
    "pad_value_requant": ("Pad", [((1, 5, 4, 3), qp(0.1, -7)), Const(np.array([0, 1, 0, 1, 0, 0, 0, 2], np.int64)),
                                  Const(np.array(0.75, F32))], qp(0.05, 20), {}),
    "pad_reflect": ("Pad", [((2, 5, 4), qp(0.1, 0)), Const(np.array([0, 2, 1, 0, 1, 1], np.int64))],
                    qp(0.1, 0), {"mode": "reflect"}),
    "transpose": ("Transpose", [((2, 3, 4, 5), qp(0.1, 3))], qp(0.1, 3), {"perm": [0, 3, 1, 2]}),
    "transpose_requant": ("Transpose", [((6, 7), qp(0.1, 3))], qp(0.3, -3), {"perm": [1, 0]}),
    "slice_steps": ("Slice", [((1, 9, 8, 6), qp(0.1, 3)), Const(np.array([1, -1, 1], np.int64)),
                              Const(np.array([8, -9, 5], np.int64)), Const(np.array([1, 2, 3], np.int64)),
                              Const(np.array([2, -2, 1], np.int64))], qp(0.1, 3), {}),
    "gather_const_indices": ("Gather", [((5, 4, 6), qp(0.1, 3)), Const(np.array([4, 0, 0, 2, -1], np.int64))],
                             qp(0.1, 3), {"axis": 1 - 1}),
    "gather_inner_axis": ("Gather", [((2, 4, 6), qp(0.1, 3)), Const(np.array([[5, 1], [0, 3]], np.int64))],
                          qp(0.1, 3), {"axis": 2}),
    "depth_to_space": ("DepthToSpace", [((1, 3, 2, 8), qp(0.1, 3))], qp(0.1, 3),
                       {"blocksize": 2, "layout": "NHWC"}),
    "space_to_depth": ("SpaceToDepth", [((1, 4, 6, 3), qp(0.1, 3))], qp(0.1, 3),
                       {"blocksize": 2, "layout": "NHWC"}),
    "tile": ("Tile", [((2, 3, 4), qp(0.1, 3)), Const(np.array([2, 1, 3], np.int64))], qp(0.1, 3), {}),
    "expand": ("Expand", [((1, 3, 1), qp(0.1, 3)), Const(np.array([2, 3, 5], np.int64))], qp(0.1, 3), {}),
}


MOVE_CASES["split"] = ("Split", [((1, 4, 4, 10), qp(0.1, 3)), Const(np.array([3, 5, 2], np.int64))],
                       [qp(0.1, 3), qp(0.2, 0), qp(0.1, 3)], {"axis": -1})


def test_movement(tmp_path):
    check_bit_exact(suite(MOVE_CASES), tmp_path)


RESIZE_CASES = {
    "nearest_asymmetric_x2": {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                              "nearest_mode": "floor"},
    "nearest_half_pixel_x2": {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                              "nearest_mode": "round_prefer_ceil"},
    "nearest_align_corners_x2": {"mode": "nearest", "coordinate_transformation_mode": "align_corners",
                                 "nearest_mode": "round_prefer_ceil"},
    "bilinear_half_pixel_x2": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
    "bilinear_asymmetric_x2": {"mode": "linear", "coordinate_transformation_mode": "asymmetric"},
    "bilinear_align_corners_x2": {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
}


def test_resize(tmp_path):
    """x2 upscales in every TFLite coordinate mode (some requantizing), and a bilinear downscale."""
    sizes = Const(np.array([1, 10, 6, 3], np.int64))
    cases = {k: ("Resize", [((1, 5, 3, 3), qp(0.1, 3)), None, None, sizes],
                 qp(0.1, 3) if "half" in k else qp(0.07, -4), attrs) for k, attrs in RESIZE_CASES.items()}
    cases["bilinear_down"] = ("Resize", [((2, 7, 9, 2), qp(0.1, 3)), None, None,
                                         Const(np.array([2, 3, 4, 2], np.int64))], qp(0.1, 3),
                              {"mode": "linear", "coordinate_transformation_mode": "half_pixel"})
    check_bit_exact(suite(cases), tmp_path)


# ---------------------------------------------------------------------------------- float edges
def test_quantize_dequantize_edges(tmp_path):
    """QuantizeLinear (TFLite rounding) -> int8 Add -> DequantizeLinear, float in and out."""
    g = Graph("edges")
    g.add_input("x", F32, (2, 16))
    s, z = g.add_const(np.array(0.05, F32), "s"), g.add_const(np.array(-3, I8), "z")
    g.add_tensor("q", I8, None, quant=qp(0.05, -3))
    g.add_node("QuantizeLinear", ["x", s, z], ["q"], {"rounding": "half_away_from_zero"})
    c = g.add_const(np.array(20, I8), "c")
    g.tensor(c).quant = qp(0.1, 0)
    g.add_tensor("a", I8, None, quant=qp(0.07, 4))
    g.add_node("Add", ["q", c], ["a"])
    s2, z2 = g.add_const(np.array(0.07, F32), "s2"), g.add_const(np.array(4, I8), "z2")
    g.add_node("DequantizeLinear", ["a", s2, z2], ["y"])
    g.outputs.append("y")
    infer_shapes(g)
    check_bit_exact(g, tmp_path)


@pytest.mark.parametrize("rounding", ["half_away_from_zero", "half_to_even"])
def test_quantize_rounding_ties(rounding, tmp_path):
    g = Graph("q")
    g.add_input("x", F32, (1, 12))
    s, z = g.add_const(np.array(0.5, F32), "s"), g.add_const(np.array(1, I8), "z")
    g.add_tensor("q", I8, None, quant=qp(0.5, 1))
    g.add_node("QuantizeLinear", ["x", s, z], ["q"], {"rounding": rounding})
    g.outputs.append("q")
    infer_shapes(g)
    folder = export(g, tmp_path / "b")
    xs = np.array([[0.25, -0.25, 0.75, -0.75, 1.25, -1.25, 63.25, -64.75, np.inf, -np.inf, np.nan, 1e30]], F32)
    got = run_bundle(compile_bundle(folder, "gcc"), [[xs]], graph_out_specs(g))[0][0]
    np.testing.assert_array_equal(got, run(g, {"x": xs})["q"])


def test_float_io_quantized_graph(tmp_path):
    """A float graph quantized with quantized_io="float" (calibrate + quantize_graph): the edges are
    QuantizeLinear/DequantizeLinear, the inside integer Add, Mul and Softmax."""
    from convertkit.canonical_ir.quantize import calibrate, quantize_graph

    g = Graph("f")
    g.add_input("a", F32, (1, 10))
    g.add_input("b", F32, (1, 10))
    g.add_node("Add", ["a", "b"], ["s"])
    w = g.add_const(np.linspace(-2, 2, 10).astype(F32).reshape(1, 10), "w")
    g.add_node("Mul", ["s", w], ["m"])
    g.add_node("Softmax", ["m"], ["y"], {"axis": -1})
    g.outputs.append("y")
    infer_shapes(g)
    rng = np.random.default_rng(3)
    data = [{"a": rng.normal(size=(1, 10)).astype(F32), "b": rng.normal(size=(1, 10)).astype(F32)}
            for _ in range(16)]
    qg = quantize_graph(g, calibrate(g, data), io="float")
    assert {n.op for n in qg.nodes} >= {"QuantizeLinear", "DequantizeLinear", "Softmax"}
    check_bit_exact(qg, tmp_path)


def test_refusals_are_clear():
    """What the int8 kernels do not implement is refused by the kernel's check, with the reason."""
    from convertkit.backends.c_bundle.emit import find_kernel

    def why(g: Graph) -> str | None:
        return find_kernel(g, next(iter(g.nodes)))[1]
    assert "1/256" in why(graph("Softmax", [((1, 8), qp(0.1, 0))], qp(0.1, 0), {"axis": -1}))
    assert "dilation" in why(graph("AveragePool", [((1, 4, 4, 2), qp(0.1, 0))], qp(0.1, 0),
                                   {"layout": "NHWC", "kernel_shape": [2, 2], "dilations": [2, 2]}))
    assert "channels-last" in why(graph("MaxPool", [((1, 2, 4, 4), qp(0.1, 0))], qp(0.1, 0),
                                        {"layout": "NCHW", "kernel_shape": [2, 2]}))
    g = Graph("g")
    g.add_input("x", I8, (4, 5))
    g.tensor("x").quant = qp(0.1, 0)
    g.add_input("i", np.int64, (2,))
    g.add_tensor("y", I8, None, quant=qp(0.1, 0))
    g.add_node("Gather", ["x", "i"], ["y"], {"axis": 0})
    g.outputs.append("y")
    infer_shapes(g)
    assert "constant 'indices'" in why(g)
    g = Graph("g16")
    g.add_input("x", np.int16, (4,))
    g.tensor("x").quant = QuantParams(np.asarray(0.1, F32), np.asarray(0, np.int16), None)
    g.add_tensor("y", np.int16, None, quant=QuantParams(np.asarray(0.2, F32), np.asarray(0, np.int16), None))
    g.add_node("Add", ["x", "x"], ["y"])
    g.outputs.append("y")
    infer_shapes(g)
    assert "int8" in why(g)


# ---------------------------------------------------------------------------------- whole models
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"
KWS = MLPERF / "keyword_spotting" / "kws_ref_model.tflite"
WHOLE_MODELS = {
    # Conv, depthwise Conv, AveragePool, Reshape, Gemm, Softmax
    "kws": KWS,
    # ResNet-8: int8 Add of residuals, AveragePool, Softmax
    "resnet8": MLPERF / "image_classification" / "pretrainedResnet_quant.tflite",
    # float input and output: QuantizeLinear / DequantizeLinear edges around int8 Gemms
    "toycar_float_io": MLPERF / "anomaly_detection" / "model_ToyCar_quant_fullint.tflite",
}


@pytest.mark.skipif(not (ROOT.parent / "shared" / "models").is_dir(), reason="no shared models folder")
@pytest.mark.parametrize("model", sorted(WHOLE_MODELS))
def test_mlperf_tiny_model_bit_exact_with_ir_and_tflite_micro(model, tmp_path):
    """A real int8 TFLite model as a C bundle: bit-exact with the IR and with TFLite Micro itself. The
    KWS model also needs the conv/dense kernels (kernels/int8/conv.py, dense.py)."""
    from convertkit.backends.c_bundle.emit import find_kernel

    from convertkit import api
    from tests.test_quant_tflite_util import run_tflm

    path = WHOLE_MODELS[model]
    assert path.exists(), f"{path} is missing from the shared models folder"
    g = api.load(path)
    missing = {n.op: find_kernel(g, n)[1] for n in g.nodes if find_kernel(g, n)[0] is None}
    assert not missing, f"the model needs int8 C kernels that are missing: {missing}"
    folder = export(g, tmp_path / model)
    rng = np.random.default_rng(7)
    feeds = []
    for _ in range(6):
        feed = []
        for name in g.inputs:
            t = g.tensor(name)
            shape = tuple(t.shape)
            feed.append(rng.integers(-128, 128, shape).astype(I8) if np.dtype(t.dtype) == np.dtype(I8)
                        else (rng.normal(size=shape) * 2).astype(F32))
        feeds.append(feed)
    want = [[run(g, dict(zip(g.inputs, f)))[o] for o in g.outputs] for f in feeds]
    buf = path.read_bytes()
    tflm = [run_tflm(buf, f) for f in feeds]
    assert tflm[0] is not None, "TFLite Micro's Python runtime (tflite_micro) is not installed"
    for w, t in zip(want, tflm):                        # the reference itself agrees with TFLite Micro
        for a, b in zip(w, t):
            np.testing.assert_array_equal(a, b)
    for cc in compilers():
        got = run_bundle(compile_bundle(folder, cc), feeds, graph_out_specs(g))
        for k, (w, t, o) in enumerate(zip(want, tflm, got)):
            for a, b, c in zip(w, t, o):
                np.testing.assert_array_equal(c, a, err_msg=f"{cc}: sample {k} differs from the IR")
                np.testing.assert_array_equal(c, b, err_msg=f"{cc}: sample {k} differs from TFLite Micro")


# ------------------------------------------------------------------------ integer-only on Cortex-M0
def chain_graph() -> Graph:
    """Most kernels of this file in one int8 graph (no float edge)."""
    g = Graph("chain")
    g.add_input("x", I8, (1, 8, 8, 4))
    g.tensor("x").quant = qp(0.05, -10)
    count = iter(range(100))

    def node(op, ins, q, attrs=None, name=None):
        out = name or f"t{next(count)}"
        g.add_tensor(out, I8, None, quant=q)
        g.add_node(op, ins, [out], attrs or {})
        return out

    def const(v, q=None):
        n = g.add_const(v, f"k{next(count)}")
        if q is not None:
            g.tensor(n).quant = q
        return n
    a = node("AveragePool", ["x"], qp(0.05, -10), {"layout": "NHWC", "kernel_shape": [2, 2], "strides": [2, 2]})
    b = node("Add", [a, const(np.arange(4, dtype=I8) * 20, qp(0.03, 1))], qp(0.06, -3),
             {FUSED_ACTIVATION: ("Relu",)})
    c = node("Mul", [b, b], qp(0.08, -50))
    d = node("Pad", [c, const(np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64))], qp(0.08, -50))
    e = node("MaxPool", [d], qp(0.08, -50), {"layout": "NHWC", "kernel_shape": [3, 3], "strides": [1, 1],
                                             "auto_pad": "SAME_UPPER"})
    f = node("Resize", [e, None, None, const(np.array([1, 12, 12, 4], np.int64))], qp(0.08, -50),
             {"mode": "linear", "coordinate_transformation_mode": "half_pixel"})
    h = node("Concat", [f, node("Transpose", [f], qp(0.1, 0), {"perm": [0, 2, 1, 3]})], qp(0.09, -40),
             {"axis": -1})
    m = node("ReduceMean", [h, const(np.array([1, 2], np.int64))], qp(0.05, -20), {"keepdims": 0})
    node("Softmax", [m], SOFTMAX_OUT, {"axis": -1}, name="y")
    g.outputs.append("y")
    infer_shapes(g)
    return g


def test_chain_bit_exact(tmp_path):
    check_bit_exact(chain_graph(), tmp_path)


def test_chain_on_cortex_m0_is_integer_only(tmp_path):
    from tools.mcu import mcu

    if not mcu.have_toolchain():
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed (CI installs them)")
    import subprocess

    from convertkit.backends.c_bundle.host import compile_example

    folder = export(chain_graph(), tmp_path / "chain")
    srcs = [folder / f for f in ("main.c", "model.c", "model_weights.c")]
    elf = mcu.build(srcs, folder / "main_m0.elf", cpu="cortex-m0", include_dirs=[folder])
    assert mcu.float_helper_symbols(elf) == set()
    res = mcu.run(elf, timeout=300)
    host = subprocess.run([str(compile_example(folder, folder / "main_host"))], capture_output=True, text=True,
                          check=True, timeout=120).stdout
    assert res.exit_code == 0 and not res.faulted, res.stderr
    assert res.stdout == host and host.startswith("output0:")
