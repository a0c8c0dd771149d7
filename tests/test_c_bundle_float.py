"""float32 C bundles against the real runtimes.

Every TensorFlow fixture (fixtures/tf/, the whole ``--to c-bundle`` pipeline: normalize, NHWC layout,
fusion, legalization) is compiled with gcc and clang under the strict flags and run on the inputs of
fixtures/tf/expected.npz; its outputs agree with TensorFlow's (recorded in the same file) within
1e-4 relative. The ONNX fixtures (NCHW ones converted to NHWC by the pipeline) likewise against
onnxruntime on seeded inputs. Two single-op "zoo" graphs cover the tricky cases one by one against
onnxruntime (asymmetric pads, dilations, grouped and depthwise convs, transposed convs, pools with
count_include_pad/ceil_mode, broadcast Div, softmax on inner axes, reductions, slices with negative
steps, reflect/edge pads, Resize modes, DepthToSpace, normalizations...).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from convertkit.canonical_ir.passes.legalize import LegalizeError
from onnx import TensorProto, helper, numpy_helper

from convertkit import api
from tests.c_bundle_util import compile_bundle, compilers, run_bundle
from tests.conftest import FIXTURES

RTOL = 1e-4
ATOL = 1e-5
TF_MODELS = ["mlp", "small_cnn", "mobilenet_v2", "mobilenet_v3", "audio_conv1d", "unet_tiny", "rnn"]
ONNX_MODELS = {"small_cnn": "small_cnn.onnx", "mobilenet_block": "mobilenet_block.onnx",
               "unet_tiny": "unet_tiny.onnx", "audio_conv1d": "audio_conv1d.onnx",
               "transformer_block": "transformer_block.onnx", "legacy_opset11": "legacy_opset11.onnx",
               "mlp_external": "mlp_external/mlp.onnx"}


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """Max abs error relative to the reference's largest magnitude."""
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / max(np.abs(ref).max(), ATOL / RTOL))


def check_close(got: np.ndarray, ref: np.ndarray, what: str) -> float:
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    if ref.dtype.kind in "iub":
        assert np.array_equal(got.astype(np.int64), ref.astype(np.int64)), f"{what}: {got} != {ref}"
        return 0.0
    assert np.isfinite(got).all() == np.isfinite(ref).all(), what
    err = rel_err(got, ref)
    assert err <= RTOL, f"{what}: max relative error {err:.2e}"
    return err


def run_everywhere(folder: Path, feeds: list[list[np.ndarray]], specs) -> dict[str, list[list[np.ndarray]]]:
    """Compile with gcc and clang (in parallel, strict flags) and run each on ``feeds``."""
    cc = compilers()
    assert "gcc" in cc
    with ThreadPoolExecutor(len(cc)) as pool:
        runs = {c: pool.submit(lambda c=c: run_bundle(compile_bundle(folder, c), feeds, specs)) for c in cc}
        return {c: r.result() for c, r in runs.items()}


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tf_expected():
    path = FIXTURES / "tf" / "expected.npz"
    assert path.exists(), path
    return dict(np.load(path))


@pytest.mark.parametrize("name", TF_MODELS)
def test_tf_fixture_matches_tensorflow(name, tf_expected, tmp_path):
    folder = api.convert(FIXTURES / "tf" / name, to="c-bundle", output=tmp_path / name)
    x, ref = tf_expected[f"{name}/input"], tf_expected[f"{name}/output"]
    feeds = [[x[i:i + 1]] for i in range(x.shape[0])]          # the bundle's batch is 1
    spec = [(np.dtype(np.float32), (1, *ref.shape[1:]))]
    worst = 0.0
    for cc, outs in run_everywhere(Path(folder), feeds, spec).items():
        for i, o in enumerate(outs):
            worst = max(worst, check_close(o[0], ref[i:i + 1], f"tf/{name} sample {i} ({cc})"))
    print(f"tf/{name}: max relative error vs TensorFlow {worst:.1e}")


@pytest.mark.parametrize("name", list(ONNX_MODELS))
def test_onnx_fixture_matches_onnxruntime(name, tmp_path):
    src = FIXTURES / "onnx" / ONNX_MODELS[name]
    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    rng = np.random.default_rng(7)
    feeds = [[rng.standard_normal(shape).astype(np.float32)] for _ in range(4)]
    refs = [sess.run(None, {inp.name: f[0]}) for f in feeds]
    folder = api.convert(src.parent if name == "mlp_external" else src, to="c-bundle", output=tmp_path / name)
    specs = [(np.dtype(np.float32), r.shape) for r in refs[0]]
    worst = 0.0
    for cc, outs in run_everywhere(Path(folder), feeds, specs).items():
        for i, (o, r) in enumerate(zip(outs, refs)):
            for k, (a, b) in enumerate(zip(o, r)):
                worst = max(worst, check_close(a, b, f"onnx/{name} sample {i} output {k} ({cc})"))
    print(f"onnx/{name}: max relative error vs onnxruntime {worst:.1e}")


# ------------------------------------------------------------------------- single-op zoos
def _init(rng, name: str, shape, scale: float = 0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inputs: dict[str, tuple], outputs: list[str], inits, opset: int = 18):
    g = helper.make_graph(nodes, "zoo",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def conv_zoo():
    """Convs, transposed convs and pools on one NCHW input (the pipeline makes them NHWC)."""
    rng = np.random.default_rng(1)
    inits = [_init(rng, "w1", (6, 4, 3, 3)), _init(rng, "b1", (6,)), _init(rng, "w2", (5, 4, 3, 2)),
             _init(rng, "w3", (6, 2, 3, 3)), _init(rng, "b3", (6,)), _init(rng, "w4", (8, 1, 3, 3)),
             _init(rng, "wt1", (4, 3, 3, 3)), _init(rng, "bt1", (3,)), _init(rng, "wt2", (4, 2, 2, 3)),
             _init(rng, "w5", (3, 4, 1, 1)), _init(rng, "w6", (4, 1, 3, 3))]
    N = helper.make_node
    nodes = [
        N("Conv", ["x", "w1", "b1"], ["asym_pads"], pads=[1, 0, 2, 1], strides=[2, 1]),
        N("Conv", ["x", "w2"], ["dilated"], dilations=[2, 3], pads=[2, 1, 0, 3]),
        N("Conv", ["x", "w3", "b3"], ["g_pre"], group=2, pads=[1, 1, 1, 1]),
        N("Relu", ["g_pre"], ["grouped_relu"]),
        N("Conv", ["x", "w4"], ["dw_pre"], group=4, strides=[2, 2], auto_pad="SAME_UPPER"),
        N("Clip", ["dw_pre", "lo", "hi"], ["depthwise_m2_relu6"]),
        N("Conv", ["x", "w6"], ["depthwise_dil"], group=4, dilations=[2, 2], pads=[2, 1, 2, 3]),
        N("Conv", ["x", "w5"], ["pointwise_strided"], strides=[2, 3]),
        N("ConvTranspose", ["x", "wt1", "bt1"], ["convt"], strides=[2, 2], pads=[1, 0, 0, 1],
          output_padding=[1, 0]),
        N("ConvTranspose", ["x", "wt2"], ["convt_grouped"], group=2, strides=[2, 1], dilations=[1, 2]),
        N("AveragePool", ["x"], ["avg_incl_ceil"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
          count_include_pad=1, ceil_mode=1),
        N("AveragePool", ["x"], ["avg_excl"], kernel_shape=[3, 2], pads=[0, 1, 1, 0]),
        N("MaxPool", ["x"], ["max_dil"], kernel_shape=[2, 3], strides=[2, 2], pads=[1, 1, 0, 1],
          dilations=[1, 2]),
        N("GlobalMaxPool", ["x"], ["gmax"]),
    ]
    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
              numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    outs = ["asym_pads", "dilated", "grouped_relu", "depthwise_m2_relu6", "depthwise_dil", "pointwise_strided",
            "convt", "convt_grouped", "avg_incl_ceil", "avg_excl", "max_dil", "gmax"]
    return _model(nodes, {"x": (1, 4, 9, 11)}, outs, inits)


def conv1d_zoo():
    rng = np.random.default_rng(2)
    inits = [_init(rng, "w1", (5, 3, 4)), _init(rng, "b1", (5,)), _init(rng, "w2", (6, 1, 3)),
             _init(rng, "wt", (3, 2, 3))]
    N = helper.make_node
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], strides=[2], pads=[2, 1], dilations=[2]),
             N("Conv", ["x", "w2"], ["dw"], group=3, auto_pad="SAME_LOWER"),
             N("ConvTranspose", ["x", "wt"], ["ct"], strides=[3], pads=[1, 2]),
             N("MaxPool", ["x"], ["mp"], kernel_shape=[3], strides=[2], ceil_mode=1),
             N("AveragePool", ["x"], ["ap"], kernel_shape=[4], strides=[3], pads=[1, 2], count_include_pad=1)]
    return _model(nodes, {"x": (1, 3, 17)}, ["c1", "dw", "ct", "mp", "ap"], inits)


def misc_zoo():
    rng = np.random.default_rng(3)
    N = helper.make_node
    c = lambda name, v, dt=np.int64: numpy_helper.from_array(np.asarray(v, dt), name)
    inits = [c("axes02", [0, 2]), c("axes13", [1, 3]), c("axes3", [3]),
             c("st", [3, -1]), c("en", [0, -6]), c("sax", [2, 3]), c("sst", [-2, -1]),
             c("pads_r", [0, 0, 1, 2, 0, 0, 2, 1]), c("pads_e", [0, 1, 0, 2, 1, 0, 2, 0]),
             c("pads_c", [0, 0, -1, 2, 0, 0, 1, -2]), c("padv", 1.5, np.float32),
             c("gidx", [[2, 0], [1, -1]]), c("reps", [2, 1, 3]), c("eshape", [2, 4, 3]),
             c("split", [1, 3, 1]), c("sc_lin", [1, 1, 2, 1.5], np.float32),
             c("sc_near", [1, 1, 1.7, 2.5], np.float32), c("sizes", [1, 8, 5, 3]),
             c("two", 2.0, np.float32), c("three", 3.0, np.float32), c("slope", rng.standard_normal((3, 1, 1)), np.float32),
             c("divc", rng.uniform(0.5, 2.0, (5,)), np.float32),
             c("lnS", rng.standard_normal((4, 5)), np.float32), c("lnB", rng.standard_normal((4, 5)), np.float32),
             c("inS", rng.standard_normal(8), np.float32), c("inB", rng.standard_normal(8), np.float32),
             c("empty", [], np.float32)]
    nodes = [
        N("Div", ["a", "b"], ["div_bcast"]),
        N("Div", ["a", "divc"], ["div_const"]),
        N("Sub", ["cc", "a"], ["sub_bcast"]),
        N("Softmax", ["a"], ["softmax_ax1"], axis=1),
        N("LogSoftmax", ["a"], ["logsoftmax_ax2"], axis=2),
        N("ReduceMean", ["a", "axes02"], ["mean02"], keepdims=0),
        N("ReduceMax", ["a", "axes13"], ["max13"], keepdims=1),
        N("ReduceProd", ["a", "axes3"], ["prod3"], keepdims=1),
        N("ReduceL2", ["a", "axes13"], ["l2_13"], keepdims=0),
        N("Slice", ["a", "st", "en", "sax", "sst"], ["slice_neg"]),
        N("Pad", ["a", "pads_r"], ["pad_reflect"], mode="reflect"),
        N("Pad", ["a", "pads_e"], ["pad_edge"], mode="edge"),
        N("Pad", ["a", "pads_c", "padv"], ["pad_const"]),
        N("Gather", ["a", "gidx"], ["gather2"], axis=2),
        N("Tile", ["b", "reps"], ["tile"]),
        N("Expand", ["cc", "eshape"], ["expand"]),
        N("Transpose", ["a"], ["transpose"], perm=[2, 0, 3, 1]),
        N("Mul", ["a", "two"], ["a2"]),
        N("Concat", ["a", "a2", "a"], ["concat1"], axis=1),
        N("Split", ["a", "split"], ["sp0", "sp1", "sp2"], axis=3),
        N("Greater", ["a", "b"], ["gt"]),
        N("Where", ["gt", "a", "b"], ["where"]),
        N("Pow", ["b", "two"], ["pow"]),
        N("PRelu", ["a", "slope"], ["prelu"]),
        N("Max", ["a", "b", "cc"], ["max3"]),
        N("Min", ["a", "b"], ["min2"]),
        N("DepthToSpace", ["d"], ["d2s_dcr"], blocksize=2, mode="DCR"),
        N("DepthToSpace", ["d"], ["d2s_crd"], blocksize=2, mode="CRD"),
        N("SpaceToDepth", ["d2s_dcr"], ["s2d"], blocksize=2),
        N("Resize", ["d", "", "sc_lin"], ["resize_linear"], mode="linear"),
        N("Resize", ["d", "", "sc_lin"], ["resize_align"], mode="linear",
          coordinate_transformation_mode="align_corners"),
        N("Resize", ["d", "", "sc_near"], ["resize_nearest"], mode="nearest",
          coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        N("Resize", ["d", "", "", "sizes"], ["resize_cubic"], mode="cubic"),
        N("Resize", ["d", "", "sc_near"], ["resize_nearest_hp"], mode="nearest"),
        N("Mul", ["a", "three"], ["a3"]),
        N("Cast", ["a3"], ["cast_i32"], to=TensorProto.INT32),
        N("Cast", ["cast_i32"], ["cast_back"], to=TensorProto.FLOAT),
        N("LayerNormalization", ["a", "lnS", "lnB"], ["layernorm"], axis=-2),
        N("InstanceNormalization", ["d", "inS", "inB"], ["instnorm"]),
    ]
    outs = ["div_bcast", "div_const", "sub_bcast", "softmax_ax1", "logsoftmax_ax2", "mean02", "max13", "prod3",
            "l2_13", "slice_neg", "pad_reflect", "pad_edge", "pad_const", "gather2", "tile", "expand",
            "transpose", "concat1", "sp0", "sp1", "sp2", "where", "pow", "prelu", "max3", "min2", "d2s_dcr",
            "d2s_crd", "s2d", "resize_linear", "resize_align", "resize_nearest", "resize_cubic",
            "resize_nearest_hp", "layernorm", "instnorm", "cast_i32", "cast_back"]
    m = _model(nodes, {"a": (2, 3, 4, 5), "b": (3, 1, 5), "cc": (4, 1), "d": (1, 8, 3, 2)}, outs, inits)
    m.graph.output[outs.index("cast_i32")].type.tensor_type.elem_type = TensorProto.INT32
    return m


def dense_zoo():
    """Gemm (transposes, alpha/beta, broadcast C, run-time B), batched/broadcast MatMul, 1-D operands,
    ArgMax/ArgMin, Gather with run-time indices."""
    rng = np.random.default_rng(4)
    N = helper.make_node
    inits = [_init(rng, "w", (4, 6)), _init(rng, "c", (6,)), _init(rng, "w2", (6, 4)), _init(rng, "c2", (3, 1)),
             _init(rng, "r", (5, 6)), _init(rng, "vec", (5,)), _init(rng, "u", (3, 5, 2)),
             _init(rng, "table", (7, 3))]
    nodes = [
        N("Gemm", ["p", "w", "c"], ["gemm_plain"]),
        N("Gemm", ["pt", "w2", "c2"], ["gemm_trans"], transA=1, transB=1, alpha=0.7, beta=1.3),
        N("Gemm", ["p", "s"], ["gemm_runtime_bt"], transB=1),
        N("Gemm", ["p", "st"], ["gemm_runtime_b"], alpha=2.0),
        N("MatMul", ["q", "r"], ["matmul_batched"]),
        N("MatMul", ["q", "vec"], ["matmul_vec"]),
        N("MatMul", ["vv", "r"], ["matmul_vec_left"]),
        N("MatMul", ["q", "u"], ["matmul_bcast"]),
        N("MatMul", ["q", "q5"], ["matmul_runtime"]),
        N("ArgMax", ["q"], ["argmax"], axis=2, keepdims=0),
        N("ArgMin", ["q"], ["argmin"], axis=-1, select_last_index=1),
        N("ArgMax", ["p"], ["rows"], axis=1, keepdims=0),
        N("Gather", ["table", "rows"], ["gather_runtime"], axis=0),
    ]
    outs = ["gemm_plain", "gemm_trans", "gemm_runtime_bt", "gemm_runtime_b", "matmul_batched", "matmul_vec",
            "matmul_vec_left", "matmul_bcast", "matmul_runtime", "argmax", "argmin", "gather_runtime"]
    m = _model(nodes, {"p": (3, 4), "pt": (4, 3), "s": (5, 4), "st": (4, 5), "q": (2, 3, 4, 5),
                       "q5": (3, 5, 2), "vv": (5,)}, outs, inits)
    for o in m.graph.output:
        if o.name in ("argmax", "argmin"):
            o.type.tensor_type.elem_type = TensorProto.INT64
    return m


def _feeds(model, rng, n: int) -> list[dict[str, np.ndarray]]:
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    return [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(n)]


@pytest.mark.parametrize("zoo", [conv_zoo, conv1d_zoo, misc_zoo, dense_zoo])
def test_single_op_zoo_matches_onnxruntime(zoo, tmp_path):
    model = zoo()
    path = tmp_path / f"{zoo.__name__}.onnx"
    onnx.save(model, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(11)
    feeds = _feeds(model, rng, 3)
    refs = [sess.run(None, f) for f in feeds]
    folder = Path(api.convert(path, to="c-bundle", output=tmp_path / "bundle"))
    g = api.load(path)
    assert g.inputs == [i.name for i in model.graph.input]
    assert g.outputs == [o.name for o in model.graph.output]
    specs = [(np.dtype(r.dtype) if r.dtype != np.bool_ else np.dtype(np.uint8), r.shape) for r in refs[0]]
    names = [o.name for o in model.graph.output]
    worst = 0.0
    for cc, outs in run_everywhere(folder, [[f[k] for k in g.inputs] for f in feeds], specs).items():
        for i, (o, r) in enumerate(zip(outs, refs)):
            for name, a, b in zip(names, o, r):
                worst = max(worst, check_close(a, b, f"{zoo.__name__} {name} sample {i} ({cc})"))
    print(f"{zoo.__name__}: max relative error vs onnxruntime {worst:.1e}")


def test_fused_activation_is_a_clamp(tmp_path):
    """Conv + Relu6 from the pipeline reaches the C bundle fused (one node), and clamps."""
    model = conv_zoo()
    path = tmp_path / "z.onnx"
    onnx.save(model, str(path))
    folder = Path(api.convert(path, to="c-bundle", output=tmp_path / "b"))
    code = (folder / "model.c").read_text()
    assert "_clip(" not in code and "_relu(" not in code                  # no separate activation node
    six = float(np.float32(6.0)).hex() + "f"
    dw = code[code.index("/* Conv 'dw_pre"):]
    dw = dw[:dw.index("\n}\n")]
    assert f"o[c] = (o[c] > 0x0.0p+0f ? (o[c] < {six} ? o[c] : {six}) : 0x0.0p+0f);" in dw, dw


def test_op_without_float_kernel_is_refused_with_the_listing(tmp_path):
    """TopK has no float kernel and no decomposition, nor has a Pad whose pads are computed at run
    time: conversion stops with the legalization error naming each node and why."""
    N = helper.make_node
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    g = helper.make_graph(
        [N("TopK", ["x", "k"], ["v", "i"], axis=1), N("Cast", ["i"], ["pads"], to=TensorProto.INT64),
         N("Reshape", ["pads", "shape"], ["pads4"]), N("Pad", ["x", "pads4"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (4, 3))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
        initializer=[k, numpy_helper.from_array(np.array([-1], np.int64), "shape")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    path = tmp_path / "g.onnx"
    onnx.save(m, str(path))
    with pytest.raises(LegalizeError) as e:
        api.convert(path, to="c-bundle", output=tmp_path / "b")
    assert {"TopK", "Pad"} <= set(e.value.missing), e.value.missing
    msg = str(e.value)
    assert "the C bundle has no TopK" in msg and "Pad with a run-time input 1" in msg, msg
    assert not (tmp_path / "b").exists()
