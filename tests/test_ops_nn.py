"""The nn family (conv, pooling, depth/space, Resize) against onnxruntime.

Every case runs the ONNX model in onnxruntime, the IR in the reference interpreter, and the re-exported
model in onnxruntime (``check_onnx_model``). Channels-last cases build an NHWC IR graph and compare
both the interpreter and its ONNX export (Transposes around NCHW ops) with onnxruntime on the NCHW
model; cases for ops onnxruntime lacks use onnx's own reference implementation instead.
"""
from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper, version_converter
from onnx.reference import ReferenceEvaluator

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.canonical_ir.ops.nn import (
    conv_transpose_weight_from_nchw,
    conv_weight_from_nchw,
    to_channels_first,
    to_channels_last,
)
from convertkit.errors import ConvertError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, ort_run
from tests.onnx_check import make_model as one_op_model

OPSET = 22
RNG = np.random.default_rng(0)


def make_model(op: str, inputs: list[tuple[str, list, int]], n_out: int = 1, *, opset: int = OPSET,
               **kw) -> onnx.ModelProto:
    """``onnx_check.make_model`` at this file's opset; extra outputs are int64 (MaxPool's indices)."""
    kw.setdefault("out_types", [inputs[0][2]] + [TP.INT64] * (n_out - 1))
    return one_op_model(op, inputs, n_out, opset=opset, **kw)


def randn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def xin(x: np.ndarray | tuple, elem: int = TP.FLOAT) -> list[tuple[str, list, int]]:
    """The graph input ``x``: an array's shape and type, or a shape (float)."""
    if isinstance(x, np.ndarray):
        return [("x", list(x.shape), helper.np_dtype_to_tensor_dtype(x.dtype))]
    return [("x", list(x), elem)]


def check_x(op: str, x: np.ndarray, *, inits=None, n_out: int = 1, opset: int = OPSET, rtol=1e-5,
            atol=1e-5, export_opset: int | None = None, **attrs) -> onnx.ModelProto:
    m = make_model(op, xin(x), n_out, opset=opset, inits=inits, **attrs)
    check_onnx_model(m, {"x": x}, rtol=rtol, atol=atol, opset=export_opset)
    return m


def check_nhwc(op: str, x: np.ndarray, *, weights: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
               n_out: int = 1, opset: int = OPSET, rtol=1e-5, atol=1e-5, **attrs) -> None:
    """NHWC IR node == onnxruntime on the NCHW node, in the interpreter and exported to ONNX.

    ``weights``: name -> (ONNX-order array, the array the NHWC op takes).
    """
    weights = weights or {}
    m = make_model(op, xin(x), n_out, opset=opset, inits={k: v[0] for k, v in weights.items()}, **attrs)
    expected = [to_channels_last(e) for e in ort_run(m, {"x": x})]
    g = Graph("nhwc")
    xl = to_channels_last(x)
    g.add_input("x", xl.dtype, ("N", *xl.shape[1:]))
    ins = ["x"] + [g.add_const(v[1], k) for k, v in weights.items()]
    outs = [f"y{i}" for i in range(n_out)]
    g.add_node(op, ins, outs, dict(attrs, layout="NHWC"))
    g.outputs = outs
    normalize(g, validate=True)
    assert g.tensor("y0").shape[0] == "N"
    got = run(g, {"x": xl})
    for name, exp in zip(outs, expected):
        np.testing.assert_allclose(got[name], exp, rtol=rtol, atol=atol, err_msg=f"interpreter {name}")
    exported = to_model(g, opset=opset)
    onnx.checker.check_model(exported, full_check=True)
    for res, exp in zip(ort_run(exported, {"x": xl}), expected):
        np.testing.assert_allclose(res, exp, rtol=rtol, atol=atol, err_msg="NHWC export in onnxruntime")


# ---------------------------------------------------------------------------------------- Conv
CONV_CASES = [
    # (spatial, kernel, group, attrs)
    ((9,), (3,), 1, {}),
    ((9,), (3,), 2, {"strides": [2], "pads": [1, 2], "dilations": [2]}),
    ((8, 7), (3, 3), 1, {"pads": [1, 1, 1, 1]}),
    ((8, 7), (3, 2), 1, {"strides": [2, 1], "pads": [0, 1, 2, 0]}),
    ((8, 7), (3, 3), 4, {"dilations": [2, 1], "strides": [1, 2]}),
    ((8, 7), (3, 3), 1, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((8, 7), (2, 4), 2, {"auto_pad": "SAME_LOWER", "strides": [1, 3]}),
    ((8, 7), (3, 3), 1, {"auto_pad": "VALID", "strides": [2, 2]}),
    ((8, 7), (1, 1), 1, {}),
    ((8, 7), (1, 1), 2, {"strides": [2, 2]}),
    ((6, 5, 4), (3, 2, 2), 1, {"pads": [1, 0, 1, 1, 1, 0], "strides": [2, 1, 1]}),
    ((6, 5, 4), (2, 2, 2), 2, {"auto_pad": "SAME_UPPER", "dilations": [1, 1, 1]}),
]


@pytest.mark.parametrize("spatial,kernel,group,attrs", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv(spatial, kernel, group, attrs, bias):
    c, o = 4, 8
    inits = {"w": randn(o, c // group, *kernel)}
    if bias:
        inits["b"] = randn(o)
    check_x("Conv", randn(2, c, *spatial), inits=inits, rtol=1e-4, group=group, **attrs)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_conv_depthwise(multiplier):
    c = 5
    inits = {"w": randn(c * multiplier, 1, 3, 3), "b": randn(c * multiplier)}
    check_x("Conv", randn(1, c, 10, 9), inits=inits, group=c, strides=[2, 2], pads=[1, 1, 1, 1])


def test_conv_same_with_dilations_exports_explicit_pads():
    """onnxruntime refuses SAME with dilations; the exporter writes the pads SAME stands for."""
    x, w = randn(1, 3, 9, 8), randn(4, 3, 3, 3)
    m = make_model("Conv", xin(x), inits={"w": w}, auto_pad="SAME_UPPER",
                   dilations=[2, 2], strides=[2, 1])
    explicit = make_model("Conv", xin(x), inits={"w": w}, pads=[2, 2, 2, 2],
                          dilations=[2, 2], strides=[2, 1])
    expected = ort_run(explicit, {"x": x})[0]
    g = normalize(from_model(m))
    np.testing.assert_allclose(run(g, {"x": x})["y0"], expected, rtol=1e-5, atol=1e-5)
    out = to_model(g, OPSET)
    assert not any(a.name == "auto_pad" for n in out.graph.node for a in n.attribute)
    np.testing.assert_allclose(ort_run(out, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_conv_symbolic_batch_and_macs():
    m = make_model("Conv", xin(("batch", 3, 8, 8)), inits={"w": randn(6, 3, 3, 3)},
                   strides=[2, 2], pads=[1, 1, 1, 1])
    g = normalize(from_model(m))
    assert g.tensor("y0").shape == ("batch", 6, 4, 4)
    node = g.nodes[0]
    macs = get_schema("Conv").macs(InferContext(g, node, get_schema("Conv")))
    assert macs == 6 * 4 * 4 * 3 * 3 * 3


@pytest.mark.parametrize("spatial,kernel,group,attrs", [CONV_CASES[i] for i in (1, 3, 4, 6, 10)])
def test_conv_nhwc(spatial, kernel, group, attrs):
    c, o = 4, 8
    w, b = randn(o, c // group, *kernel), randn(o)
    check_nhwc("Conv", randn(2, c, *spatial), rtol=1e-4,
               weights={"w": (w, conv_weight_from_nchw(w, "NHWC")), "b": (b, b)}, group=group, **attrs)


def test_conv_nhwc_depthwise_weight_is_ohwi():
    """NHWC depthwise weight is [C*M, kh, kw, 1]: TFLite's [1, kh, kw, C*M] moved to the front."""
    c, m = 3, 2
    tfl = randn(1, 3, 3, c * m)                      # TFLite DEPTHWISE_CONV_2D weight
    onnx_w = np.transpose(tfl, (3, 0, 1, 2))         # [C*M, 1, kh, kw]
    nhwc_w = np.transpose(tfl, (3, 1, 2, 0))         # [C*M, kh, kw, 1]
    check_nhwc("Conv", randn(1, c, 7, 7), weights={"w": (onnx_w, nhwc_w)}, group=c, pads=[1, 1, 1, 1])


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_nhwc_runtime_weight(op):
    """A channels-last weight only known at run time is transposed by an ONNX Transpose on export."""
    x, w = randn(2, 4, 7, 6), randn(4, 4, 3, 3)
    expected = to_channels_last(ort_run(make_model(op, xin(x), inits={"w": w}, strides=[2, 2]), {"x": x})[0])
    wl = conv_weight_from_nchw(w, "NHWC") if op == "Conv" else conv_transpose_weight_from_nchw(w, 1, "NHWC")
    g = Graph("nhwc")
    g.add_input("x", np.float32, to_channels_last(x).shape)
    g.add_input("w", np.float32, wl.shape)
    g.add_node(op, ["x", "w"], ["y"], {"strides": [2, 2], "layout": "NHWC"})
    g.outputs = ["y"]
    normalize(g, validate=True)
    feeds = {"x": to_channels_last(x), "w": wl}
    np.testing.assert_allclose(run(g, feeds)["y"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ort_run(to_model(g, OPSET), feeds)[0], expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ ConvTranspose
CONV_T_CASES = [
    ((5,), (3,), 1, {}),
    ((5,), (3,), 2, {"strides": [2], "output_padding": [1], "pads": [1, 0]}),
    ((4, 5), (3, 3), 1, {"strides": [2, 2]}),
    ((4, 5), (3, 2), 1, {"strides": [3, 2], "pads": [1, 0, 2, 1], "output_padding": [1, 1]}),
    ((4, 5), (3, 3), 2, {"strides": [2, 2], "dilations": [2, 1]}),
    ((4, 5), (3, 3), 1, {"strides": [2, 2], "output_shape": [10, 8]}),
    ((4, 5), (3, 3), 1, {"strides": [2, 2], "output_shape": [9, 11], "output_padding": [1, 0]}),
    ((4, 5), (3, 3), 1, {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((4, 5), (4, 3), 2, {"strides": [2, 3], "auto_pad": "SAME_LOWER"}),
    ((4, 5), (3, 3), 1, {"strides": [2, 2], "auto_pad": "VALID"}),
    ((3, 4, 3), (2, 3, 2), 1, {"strides": [2, 1, 2], "pads": [0, 1, 0, 1, 0, 1]}),
]


def _spec_same_pads(spatial, kernel, attrs):
    """ConvTranspose SAME padding as the ONNX spec states it (extra pad at the end for SAME_UPPER)."""
    n = len(spatial)
    s, d = attrs.get("strides", [1] * n), attrs.get("dilations", [1] * n)
    total = [s[i] * (spatial[i] - 1) + (kernel[i] - 1) * d[i] + 1 - spatial[i] * s[i] for i in range(n)]
    upper = attrs["auto_pad"] == "SAME_UPPER"
    begin = [t // 2 if upper else t - t // 2 for t in total]
    return begin + [t - b for t, b in zip(total, begin)]


@pytest.mark.parametrize("spatial,kernel,group,attrs", CONV_T_CASES)
def test_conv_transpose(spatial, kernel, group, attrs):
    c, og = 4, 3
    x, w, b = randn(2, c, *spatial), randn(c, og, *kernel), randn(og * group)
    attrs = dict(attrs, group=group)
    if len(spatial) == 3:  # onnxruntime has no 3-D ConvTranspose: onnx's reference implementation
        m = make_model("ConvTranspose", xin(x), inits={"w": w, "b": b}, **attrs)
        g = normalize(from_model(m), validate=True)
        expected = ReferenceEvaluator(m).run(None, {"x": x})[0]
        np.testing.assert_allclose(run(g, {"x": x})["y0"], expected, rtol=1e-4, atol=1e-5)
        return
    if attrs.get("auto_pad", "").startswith("SAME"):
        # onnxruntime splits odd SAME padding the other way round from the spec: the reference is
        # onnxruntime with the spec's explicit pads, and the exporter writes those pads too
        explicit = {k: v for k, v in attrs.items() if k != "auto_pad"}
        explicit["pads"] = _spec_same_pads(spatial, kernel, attrs)
        ref = make_model("ConvTranspose", xin(x), inits={"w": w, "b": b}, **explicit)
        expected = ort_run(ref, {"x": x})[0]
        m = make_model("ConvTranspose", xin(x), inits={"w": w, "b": b}, **attrs)
        g = normalize(from_model(m), validate=True)
        np.testing.assert_allclose(run(g, {"x": x})["y0"], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ort_run(to_model(g, OPSET), {"x": x})[0], expected, rtol=1e-4, atol=1e-5)
        return
    check_x("ConvTranspose", x, inits={"w": w, "b": b}, rtol=1e-4, **attrs)


@pytest.mark.parametrize("spatial,kernel,group,attrs", [CONV_T_CASES[i] for i in (1, 3, 4, 5)])
def test_conv_transpose_nhwc(spatial, kernel, group, attrs):
    c, og = 4, 3
    w, b = randn(c, og, *kernel), randn(og * group)
    check_nhwc("ConvTranspose", randn(2, c, *spatial), rtol=1e-4, group=group,
               weights={"w": (w, conv_transpose_weight_from_nchw(w, group, "NHWC")), "b": (b, b)}, **attrs)


def test_conv_transpose_macs():
    m = make_model("ConvTranspose", xin((1, 4, 5, 5)), inits={"w": randn(4, 3, 3, 3)},
                   group=2, strides=[2, 2])
    g = normalize(from_model(m))
    s = get_schema("ConvTranspose")
    assert s.macs(InferContext(g, g.nodes[0], s)) == 4 * 25 * 3 * 9


# ------------------------------------------------------------------------------------ pooling
POOL_CASES = [
    ((9,), {"kernel_shape": [3]}),
    ((9,), {"kernel_shape": [2], "strides": [2], "ceil_mode": 1}),
    ((8, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((8, 7), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1}),
    ((7, 7), {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
    ((8, 7), {"kernel_shape": [3, 3], "dilations": [2, 2], "strides": [1, 2]}),
    ((8, 7), {"kernel_shape": [2, 3], "dilations": [2, 1], "pads": [1, 1, 1, 1], "ceil_mode": 1,
              "strides": [2, 2]}),
    ((8, 7), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((8, 7), {"kernel_shape": [2, 4], "auto_pad": "SAME_LOWER", "strides": [3, 2]}),
    ((8, 7), {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 2]}),
    ((6, 5, 4), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2], "pads": [0, 1, 0, 1, 0, 1]}),
]


@pytest.mark.parametrize("spatial,attrs", POOL_CASES)
@pytest.mark.parametrize("n_out,storage_order", [(1, 0), (2, 0), (2, 1)])
def test_max_pool(spatial, attrs, n_out, storage_order):
    check_x("MaxPool", randn(2, 3, *spatial), n_out=n_out, storage_order=storage_order, **attrs)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_integers(dtype):
    x = RNG.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (1, 2, 7, 6)).astype(dtype)
    check_x("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    with pytest.raises(ConvertError, match="opset 12"):
        to_model(normalize(from_model(make_model("MaxPool", xin((1, 2, 7, 6), TP.INT8),
                                                 kernel_shape=[3, 3]))), 11)


@pytest.mark.parametrize("spatial,attrs", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool(spatial, attrs, count_include_pad):
    check_x("AveragePool", randn(2, 3, *spatial), count_include_pad=count_include_pad, **attrs)


@pytest.mark.parametrize("spatial,attrs", POOL_CASES)
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(spatial, attrs, p):
    check_x("LpPool", randn(2, 3, *spatial), p=p, rtol=1e-4, **attrs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("spatial", [(7,), (6, 5), (4, 3, 5)])
def test_global_pool(op, spatial):
    # onnxruntime implements GlobalLpPool only up to opset 21
    check_x(op, randn(2, 3, *spatial), rtol=1e-5, opset=17 if op == "GlobalLpPool" else OPSET)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_nhwc(op):
    check_nhwc(op, randn(2, 3, 6, 5))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("case", [2, 3, 6, 7])
def test_pool_nhwc(op, case):
    spatial, attrs = POOL_CASES[case]
    n_out = 2 if op == "MaxPool" else 1
    check_nhwc(op, randn(2, 3, *spatial), n_out=n_out, **attrs)


def test_pool_older_opsets():
    x = randn(1, 2, 7, 7)
    # equivalent forms are written, trivial attributes dropped
    check_x("AveragePool", x, opset=OPSET, export_opset=11, kernel_shape=[3, 3], dilations=[1, 1])
    check_x("LpPool", x, opset=OPSET, export_opset=13, kernel_shape=[3, 3], ceil_mode=0, dilations=[1, 1])
    check_x("AveragePool", x, opset=11, kernel_shape=[3, 3], ceil_mode=1, strides=[2, 2], count_include_pad=1,
            pads=[1, 1, 1, 1])
    check_x("MaxPool", x, opset=11, n_out=2, kernel_shape=[2, 2], dilations=[2, 2], storage_order=1)
    for op, attrs, opset in (("AveragePool", {"dilations": [2, 2]}, 19), ("LpPool", {"ceil_mode": 1}, 18),
                             ("LpPool", {"dilations": [1, 2]}, 18)):
        g = normalize(from_model(make_model(op, xin(x), kernel_shape=[2, 2], **attrs)))
        with pytest.raises(ConvertError, match=f"opset {opset}"):
            to_model(g, opset - 1)


# ---------------------------------------------------------------------------- depth <-> space
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_depth_to_space(mode, dtype):
    x = RNG.integers(0, 100, (2, 12, 3, 4)).astype(dtype)
    check_x("DepthToSpace", x, blocksize=2, mode=mode)
    check_x("DepthToSpace", x, opset=11, blocksize=2, mode=mode)
    check_nhwc("DepthToSpace", x, blocksize=2, mode=mode)


def test_space_to_depth():
    x = randn(2, 3, 6, 4)
    check_x("SpaceToDepth", x, blocksize=2)
    check_x("SpaceToDepth", x, opset=11, blocksize=2)
    check_nhwc("SpaceToDepth", x, blocksize=2)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("opset", [11, 13, 17])
def test_space_to_depth_crd_older_opsets(layout, opset):
    """mode=CRD is opset 28; older targets get DCR + a channel Gather. onnxruntime's DepthToSpace CRD
    (the inverse) and onnx's reference implementation of opset 28 are the references."""
    x = randn(2, 3, 6, 4)
    ref = ReferenceEvaluator(make_model("SpaceToDepth", xin(x), opset=28,
                                        blocksize=2, mode="CRD")).run(None, {"x": x})[0]
    g = Graph("s2d")
    feed = to_channels_last(x) if layout == "NHWC" else x
    g.add_input("x", np.float32, ("N", *feed.shape[1:]))
    g.add_node("SpaceToDepth", ["x"], ["y"], {"blocksize": 2, "mode": "CRD", "layout": layout})
    g.outputs = ["y"]
    normalize(g, validate=True)
    want = to_channels_last(ref) if layout == "NHWC" else ref
    np.testing.assert_array_equal(run(g, {"x": feed})["y"], want)
    exported = to_model(g, opset)
    onnx.checker.check_model(exported, full_check=True)
    got = ort_run(exported, {"x": feed})[0]
    np.testing.assert_array_equal(got, want)
    back = ort_run(make_model("DepthToSpace", xin(ref), blocksize=2, mode="CRD"),
                   {"x": to_channels_first(got) if layout == "NHWC" else got})[0]
    np.testing.assert_array_equal(back, x)


# ------------------------------------------------------------------------------- a small CNN
def test_mobilenet_like_at_96():
    """A MobileNet-v1-style stack (depthwise + pointwise blocks, pools) at 96x96: the kernels are fast
    enough for real models and match onnxruntime end to end."""
    nodes, inits = [], {}

    def conv(x, cin, cout, k, stride, group=1):
        name = f"c{len(nodes)}"
        inits[name + "_w"] = randn(cout, cin // group, k, k) * np.sqrt(2.0 / (cin // group * k * k))
        inits[name + "_b"] = randn(cout) * 0.1
        nodes.append(helper.make_node("Conv", [x, name + "_w", name + "_b"], [name], group=group,
                                      strides=[stride, stride], pads=[k // 2] * 4))
        return name
    x, c = conv("x", 3, 16, 3, 2), 16
    for cout, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2)):
        x, c = conv(conv(x, c, c, 3, stride, group=c), c, cout, 1, 1), cout     # depthwise, pointwise
    nodes += [helper.make_node("MaxPool", [x], ["mp"], kernel_shape=[3, 3], pads=[1] * 4),
              helper.make_node("GlobalAveragePool", ["mp"], ["y"])]
    graph = helper.make_graph(nodes, "mnet", [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 96, 96])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v.astype(np.float32), k)
                                           for k, v in inits.items()])
    ops = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    check_onnx_model(model, {"x": randn(2, 3, 96, 96)}, rtol=1e-4, atol=1e-4)


def test_kernels_reject_bad_geometry():
    m = make_model("MaxPool", xin((1, 1, 2, 2)), kernel_shape=[3, 3])
    with pytest.raises(ConvertError, match="does not fit"):
        normalize(from_model(m))
    g = normalize(from_model(make_model("Conv", xin((1, 4, 5, 5)), inits={"w": randn(2, 4, 3, 3)})))
    assert g.tensor("y0").shape == (1, 2, 3, 3)
    bad = make_model("Conv", xin((1, 3, 5, 5)), inits={"w": randn(2, 4, 3, 3)})
    with pytest.raises(ConvertError, match="channels"):
        normalize(from_model(bad))




# ------------------------------------------------------------------------------------- Resize
def resize_model(x: np.ndarray, *, scales=None, sizes=None, roi=None, opset: int = OPSET, **attrs):
    inits, names = {}, ["x", "", "", ""]
    for port, (key, v, dt) in enumerate((("roi", roi, np.float32), ("scales", scales, np.float32),
                                         ("sizes", sizes, np.int64)), start=1):
        if v is not None:
            inits[key] = np.asarray(v, dt)
            names[port] = key
    while names[-1] == "":
        names.pop()
    return make_model("Resize", xin(x), opset=opset, inits=inits, input_names=names, **attrs)


def check_resize(x, *, export_opset=None, rtol=1e-5, atol=1e-5, **kw):
    check_onnx_model(resize_model(x, **kw), {"x": x}, rtol=rtol, atol=atol, opset=export_opset)


COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]
SCALES = [[1, 1, 2.5, 1.7], [1, 1, 0.6, 0.45], [1, 1, 3, 2], [1, 1, 1, 0.5]]


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("scales", SCALES)
def test_resize_nearest(coord, nearest_mode, scales):
    check_resize(randn(2, 3, 5, 7), scales=scales, mode="nearest", coordinate_transformation_mode=coord,
                 nearest_mode=nearest_mode)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("scales", SCALES)
def test_resize_interpolating(mode, coord, scales):
    check_resize(randn(2, 3, 5, 7), scales=scales, mode=mode, coordinate_transformation_mode=coord)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("sizes", [[2, 3, 9, 4], [2, 3, 3, 11]])
def test_resize_sizes(mode, sizes):
    check_resize(randn(2, 3, 5, 7), sizes=sizes, mode=mode)
    check_resize(randn(2, 3, 5, 7), sizes=sizes, mode="nearest",
                 coordinate_transformation_mode="align_corners")


@pytest.mark.parametrize("a,exclude", [(-0.5, 1), (-0.75, 1), (-0.5, 0)])
def test_resize_cubic_options(a, exclude):
    for scales in ([1, 1, 2.2, 0.7], [1, 1, 0.5, 1.5]):
        check_resize(randn(1, 2, 6, 8), scales=scales, mode="cubic", cubic_coeff_a=a, exclude_outside=exclude)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_tf_crop_and_resize(mode):
    roi = [0, 0, 0.2, 0.4, 1, 1, 0.9, 1.3]
    check_resize(randn(1, 2, 6, 8), sizes=[1, 2, 5, 7], roi=roi, mode=mode,
                 coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-7.5)
    check_resize(randn(1, 2, 6, 8), sizes=[1, 1], roi=[0.3, 0.2, 0.7, 0.9], axes=[2, 3], mode=mode,
                 coordinate_transformation_mode="tf_crop_and_resize")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("exclude", [0, 1])
def test_resize_antialias(mode, exclude):
    x = randn(2, 2, 12, 10)
    for kw in ({"scales": [1, 1, 0.4, 0.75]}, {"sizes": [2, 2, 5, 3]}, {"scales": [1, 1, 0.5, 1.6]}):
        check_resize(x, mode=mode, antialias=1, exclude_outside=exclude, **kw)
    check_resize(to_channels_last(x), mode=mode, antialias=1, scales=[1, 0.4, 0.75, 1])


def test_resize_axes_and_aspect_policy():
    x = randn(1, 2, 6, 9)
    check_resize(x, scales=[2.0, 0.5], axes=[2, 3], mode="linear")
    check_resize(x, scales=[0.5, 2.0], axes=[3, -2], mode="nearest")
    for policy in ("not_larger", "not_smaller"):
        check_resize(x, sizes=[5, 5], axes=[2, 3], mode="linear", keep_aspect_ratio_policy=policy)
        check_resize(x, sizes=[1, 2, 4, 7], mode="nearest", keep_aspect_ratio_policy=policy)


def test_resize_channels_last_and_other_ranks():
    check_resize(randn(2, 6, 5, 3), scales=[1, 1.5, 0.6, 1], mode="linear")    # NHWC-shaped
    check_resize(randn(5, 7), scales=[2, 1.5], mode="cubic")
    check_resize(randn(2, 3, 4, 5, 6), scales=[1, 1, 2, 0.5, 1.5], mode="linear")
    check_resize(randn(3, 9), scales=[1, 0.4], mode="nearest")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_resize_integers_nearest(dtype):
    x = RNG.integers(-100 if dtype != np.uint8 else 0, 100, (1, 2, 4, 5)).astype(dtype)
    check_resize(x, scales=[1, 1, 1.5, 0.6], mode="nearest")


def test_resize_symbolic_batch():
    m = make_model("Resize", xin(("N", 3, 4, 6)), inits={"scales": np.array([1, 1, 2, 0.5], np.float32)},
                   input_names=["x", "", "scales"], mode="linear")
    g = normalize(from_model(m))
    assert g.tensor("y0").shape == ("N", 3, 8, 3)


def test_resize_output_size_is_onnx_shape_inference():
    """floor(10 * 0.7f) is 6 for ONNX's shape inference (onnxruntime's float32 product gives 7): the IR
    follows ONNX, so exported value_info passes the checker."""
    m = resize_model(randn(1, 1, 10, 10), scales=[1, 1, 0.7, 0.7], mode="linear")
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output[0].type.tensor_type.shape
    assert [d.dim_value for d in inferred.dim] == [1, 1, 6, 6]
    g = normalize(from_model(m))
    assert g.tensor("y0").shape == (1, 1, 6, 6)
    onnx.checker.check_model(to_model(g, OPSET), full_check=True)


def test_resize_opset11_model():
    """Resize-11: required roi/scales (empty), tf_half_pixel_for_nn; written back at 11, 13 and 17."""
    x = randn(1, 2, 4, 5)
    for attrs in ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn",
                   "nearest_mode": "floor"},
                  {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
                  {"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "exclude_outside": 1}):
        m = resize_model(x, roi=[], scales=[], sizes=[1, 2, 7, 3], opset=11, **attrs)
        for target in (11, 13, 17):
            check_onnx_model(m, {"x": x}, rtol=1e-5, atol=1e-5, opset=target)
    m = resize_model(x, roi=[], scales=[], sizes=[1, 2, 7, 3], opset=11, mode="linear",
                     coordinate_transformation_mode="tf_half_pixel_for_nn")
    g = normalize(from_model(m))
    with pytest.raises(ConvertError, match="opsets 11-12"):
        to_model(g, 13)


def test_resize_older_opsets():
    x = randn(1, 2, 6, 9)
    check_resize(x, scales=[2.0, 0.5], axes=[2, 3], mode="linear", export_opset=13)
    check_resize(x, sizes=[3, 5], axes=[3, 2], mode="nearest", export_opset=11)
    check_resize(x, roi=[0.1, 0.2, 0.8, 0.9], sizes=[4, 4], axes=[2, 3], mode="linear", export_opset=11,
                 coordinate_transformation_mode="tf_crop_and_resize")
    for kw in ({"scales": [1, 1, 2, 3]}, {"sizes": [1, 2, 7, 4]}):
        check_resize(x, mode="linear", export_opset=18, coordinate_transformation_mode="half_pixel_symmetric",
                     **kw)
    for kw, opset in (({"scales": [1, 1, 0.5, 0.5], "antialias": 1, "mode": "linear"}, 18),
                      ({"sizes": [4, 4], "axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, 18),
                      ({"scales": [1, 1, 0.7, 0.7],
                        "coordinate_transformation_mode": "half_pixel_symmetric"}, 19)):
        g = normalize(from_model(resize_model(x, **kw)))
        with pytest.raises(ConvertError, match=f"opset {opset}"):
            to_model(g, opset - 1)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("legacy", [("Upsample", 9), ("Upsample", 7), ("Resize", 10)])
def test_legacy_upsample(mode, legacy):
    """Upsample (and Resize-10) mean asymmetric coordinates; onnx's version converter forgets that."""
    from convertkit.frontends.onnx.handlers.nn import apply_legacy_resize_modes, legacy_resize_modes

    op, opset = legacy
    x = randn(1, 2, 3, 4)
    scales = [1.0, 1.0, 2.0, 1.5] if op == "Upsample" else [1.0, 1.0, 0.5, 0.75]
    if opset < 9:
        m = make_model(op, xin(x), opset=opset, mode=mode, scales=scales)
    else:
        m = make_model(op, xin(x), opset=opset, mode=mode, inits={"s": np.array(scales, np.float32)})
    expected = ort_run(m, {"x": x})[0]
    modes = legacy_resize_modes(m)
    upgraded = version_converter.convert_version(m, 11)
    apply_legacy_resize_modes(upgraded, modes)
    g = normalize(from_model(upgraded))
    np.testing.assert_allclose(run(g, {"x": x})["y0"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ort_run(to_model(g, 11), {"x": x})[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_handler(mode):
    """An Upsample met in an opset >= 11 model (no upgrade) converts to the Resize it means."""
    x = randn(1, 2, 3, 4)
    models = [make_model("Upsample", xin(x), opset=opset, mode=mode,
                         inits={"s": np.array([1, 1, 2, 3], np.float32)}) for opset in (9, 11)]
    expected = ort_run(models[0], {"x": x})[0]
    np.testing.assert_allclose(run(normalize(from_model(models[1])), {"x": x})["y0"], expected, rtol=1e-5,
                               atol=1e-6)


# ------------------------------------------------------------------------- other resampling ops
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample(mode, padding_mode, align_corners):
    x = randn(2, 3, 5, 6)
    grid = (RNG.random((2, 4, 7, 2)) * 3 - 1.5).astype(np.float32)     # reaches well outside [-1, 1]
    inputs = xin(x) + [("grid", list(grid.shape), TP.FLOAT)]
    old = {"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode)
    for opset, spelled in ((OPSET, mode), (16, old)):
        m = make_model("GridSample", inputs, opset=opset, mode=spelled, padding_mode=padding_mode,
                       align_corners=align_corners)
        check_onnx_model(m, {"x": x, "grid": grid}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_3d(mode):
    x, grid = randn(1, 2, 4, 5, 3), (RNG.random((1, 3, 2, 4, 3)) * 2.4 - 1.2).astype(np.float32)
    m = make_model("GridSample", xin(x) + [("grid", list(grid.shape), TP.FLOAT)], mode=mode,
                   padding_mode="border")
    check_onnx_model(m, {"x": x, "grid": grid}, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConvertError, match="opset 20"):
        to_model(normalize(from_model(m)), 19)


@pytest.mark.parametrize("shape,axes", [([4, 9], [2, 3]), ([7, 3, 4], None), ([5], [-1]), ([2, 2], [3, 1])])
def test_center_crop_pad(shape, axes):
    x = randn(2, 3, 6, 5)
    full = shape if axes is not None else [2] + shape
    attrs = {"axes": axes} if axes is not None else {}
    m = make_model("CenterCropPad", xin(x), inits={"shape": np.array(full, np.int64)}, **attrs)
    expected = ReferenceEvaluator(m).run(None, {"x": x})[0]
    check_onnx_model(m, {"x": x})
    np.testing.assert_array_equal(run(normalize(from_model(m)), {"x": x})["y0"], expected)


@pytest.mark.parametrize("size,attrs", [(6, {"kernel_shape": [2, 2], "strides": [2, 2]}),
                                        (5, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4})])
def test_max_unpool(size, attrs):
    """MaxPool's Indices unpooled (default and explicit output shape), against onnxruntime."""
    x = randn(2, 3, size, size)
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "i"], **attrs),
             helper.make_node("MaxUnpool", ["p", "i"], ["y"], **attrs),
             helper.make_node("MaxUnpool", ["p", "i", "shape"], ["y2"], **attrs)]
    graph = helper.make_graph(nodes, "unpool", [helper.make_tensor_value_info("x", TP.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in ("y", "y2")],
                              initializer=[numpy_helper.from_array(np.array(x.shape, np.int64), "shape")])
    ops = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    check_onnx_model(model, {"x": x})


@pytest.mark.parametrize("attrs", [{}, {"strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2]}])
def test_col2im(attrs):
    image, block = np.array([6, 7], np.int64), np.array([2, 3], np.int64)
    n = len(block)
    st, dl = attrs.get("strides", [1] * n), attrs.get("dilations", [1] * n)
    pd = attrs.get("pads", [0] * 2 * n)
    blocks = [(image[i] + pd[i] + pd[n + i] - dl[i] * (block[i] - 1) - 1) // st[i] + 1 for i in range(n)]
    x = randn(2, 3 * int(np.prod(block)), int(np.prod(blocks)))
    m = make_model("Col2Im", xin(x), inits={"image": image, "block": block}, **attrs)
    check_onnx_model(m, {"x": x})


@pytest.mark.parametrize("op,attrs", [("Conv", {"pads": [1, 1, 1, 1]}), ("MaxPool", {"kernel_shape": [3, 3]}),
                                      ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
                                      ("GlobalAveragePool", {})])
def test_float16(op, attrs):
    x = randn(1, 4, 6, 6).astype(np.float16)
    inits = {"w": randn(3, 4, 3, 3).astype(np.float16)} if op == "Conv" else None
    check_x(op, x, inits=inits, rtol=2e-3, atol=2e-3, **attrs)


def test_integer_average_pool_rounds_like_tflite():
    """int8 AveragePool (quantized, shared in/out params) rounds half away from zero like TFLite's
    reference kernel: (sum +- count/2) / count truncated. ONNX has no integer AveragePool."""
    x = np.array([[[[1, 2], [3, 4]], [[-1, -2], [-3, -4]], [[1, 2], [2, 2]], [[127, 127], [127, 126]]]],
                 np.int8)                                        # sums 10, -10, 7, 507 over 4
    g = Graph("avg")
    g.add_input("x", np.int8, x.shape)
    g.add_node("AveragePool", ["x"], ["y"], {"kernel_shape": [2, 2]})
    g.add_node("GlobalAveragePool", ["x"], ["z"])
    g.outputs = ["y", "z"]
    normalize(g, validate=True)
    out = run(g, {"x": x})
    want = np.array([3, -3, 2, 127], np.int8).reshape(1, 4, 1, 1)   # 2.5->3, -2.5->-3, 1.75->2, 126.75->127
    np.testing.assert_array_equal(out["y"], want)
    np.testing.assert_array_equal(out["z"], want)
    with pytest.raises(ConvertError, match="does not take int8"):
        to_model(g, OPSET)
