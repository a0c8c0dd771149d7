"""The activations family against onnxruntime.

Every case runs the ONNX model in onnxruntime, the IR in the reference interpreter and the re-exported
model in onnxruntime (``check_onnx_model``), at the model's opset and at older target opsets where the
exporter has to write a decomposition or an older spelling. Cases the ONNX format cannot express for
onnxruntime (float16 Celu) build the IR directly and compare with onnxruntime on float32.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.errors import ConvertError, ExportError, ShapeError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, make_model, ort_run

RNG = np.random.default_rng(0)
F16 = dict(rtol=2e-3, atol=2e-3)





def randn(*shape: int, dtype=np.float32, scale: float = 2.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def check_x(op: str, x: np.ndarray, *, opset: int, shape: list | None = None, export_opset: int | None = None,
            tol: dict | None = None, before: str | None = None, **attrs) -> None:
    """``op`` on one input; ``shape`` (e.g. with a symbolic batch) overrides the declared input shape."""
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    m = make_model(op, [("x", shape or list(x.shape), elem)], opset=opset, before=before, **attrs)
    check_onnx_model(m, {"x": x}, opset=export_opset, **(tol or {}))


# ----------------------------------------------------------------------------- pointwise
POINTWISE = [
    ("Relu", 14, {}), ("LeakyRelu", 16, {}), ("LeakyRelu", 16, {"alpha": 0.3}),
    ("Elu", 22, {}), ("Elu", 22, {"alpha": 0.5}),
    ("Selu", 22, {}), ("Selu", 22, {"alpha": 2.0, "gamma": 0.7}),
    ("Celu", 12, {}), ("Celu", 12, {"alpha": 2.5}), ("Celu", 22, {"alpha": 0.5}),
    ("Sigmoid", 13, {}), ("HardSigmoid", 22, {}), ("HardSigmoid", 22, {"alpha": 0.4, "beta": 0.3}),
    ("HardSwish", 22, {}), ("Tanh", 13, {}), ("Gelu", 20, {}), ("Gelu", 20, {"approximate": "tanh"}),
    ("Softplus", 22, {}), ("Softsign", 22, {}), ("Mish", 22, {}), ("ThresholdedRelu", 22, {}),
    ("ThresholdedRelu", 22, {"alpha": -0.5}), ("Shrink", 9, {}), ("Shrink", 9, {"bias": 1.5, "lambd": 0.8}),
    ("Swish", 24, {}), ("Swish", 24, {"alpha": 1.7}),
]


def _id(case) -> str:
    op, opset, attrs = case
    return f"{op}{opset}" + "".join(f"-{k}={v}" for k, v in attrs.items())


@pytest.mark.parametrize("case", POINTWISE, ids=[_id(c) for c in POINTWISE])
def test_pointwise_float32(case):
    op, opset, attrs = case
    x = randn(3, 4, 5)
    x.flat[:4] = [0.0, -0.0, 1e-8, -50.0]  # zero, tiny and saturating values
    check_x(op, x, opset=opset, **attrs)


@pytest.mark.parametrize("case", POINTWISE, ids=[_id(c) for c in POINTWISE])
def test_pointwise_symbolic_batch(case):
    op, opset, attrs = case
    check_x(op, randn(2, 7), opset=opset, shape=["N", 7], **attrs)


FP16_OPS = [c for c in POINTWISE if c[0] != "Celu"]  # Celu takes float16 only from opset 28


@pytest.mark.parametrize("case", FP16_OPS, ids=[_id(c) for c in FP16_OPS])
def test_pointwise_float16(case):
    op, opset, attrs = case
    check_x(op, randn(4, 6, dtype=np.float16), opset=opset, tol=F16, **attrs)


@pytest.mark.parametrize("dtype", [np.float64, np.int8, np.int32])  # onnxruntime has no int64 Relu
def test_relu_other_dtypes(dtype):
    check_x("Relu", (RNG.standard_normal((3, 5)) * 50).astype(dtype), opset=14)


@pytest.mark.parametrize("dtype", [np.int8, np.int32])
def test_shrink_integers_truncate(dtype):
    x = np.arange(-6, 6, dtype=dtype).reshape(3, 4)
    check_x("Shrink", x, opset=9, bias=1.5, lambd=0.5)


# ------------------------------------------------------------------------------------ Clip
CLIPS = {"both": (-0.5, 0.7), "min": (-0.5, None), "max": (None, 0.7), "none": (None, None),
         "crossed": (1.0, -1.0)}


@pytest.mark.parametrize("bounds", CLIPS.values(), ids=CLIPS.keys())
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.int32])
def test_clip(bounds, dtype):
    x = (randn(3, 8) * (40 if np.dtype(dtype).kind == "i" else 1)).astype(dtype)
    scale = 40 if np.dtype(dtype).kind == "i" else 1
    names, inits = [], {}
    for name, b in zip(("lo", "hi"), bounds):
        if b is not None:
            inits[name] = np.array(b * scale, dtype=dtype)
        names.append(name if b is not None else "")
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    m = make_model("Clip", [("x", ["N", 8], elem)], opset=13, inits=inits, input_names=["x", *names])
    check_onnx_model(m, {"x": x})


def test_clip_bounds_as_graph_inputs():
    scalar = []
    m = make_model("Clip", [("x", [4, 5], TP.FLOAT), ("lo", scalar, TP.FLOAT), ("hi", scalar, TP.FLOAT)],
                   opset=13)
    check_onnx_model(m, {"x": randn(4, 5), "lo": np.array(-0.3, np.float32), "hi": np.array(0.4, np.float32)})


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32, np.float64])
def test_clip_exported_at_opset_11(dtype):
    """Clip-11 takes floats only (onnxruntime: float16/float32): others are Max/Min on doubles."""
    x = (randn(3, 8) * 40).astype(dtype)
    inits = {"lo": np.array(-20, dtype), "hi": np.array(30, dtype)}
    m = make_model("Clip", [("x", [3, 8], helper.np_dtype_to_tensor_dtype(x.dtype))], opset=13, inits=inits)
    check_onnx_model(m, {"x": x}, opset=11)


def test_clip_int64_at_opset_11_names_opset_12():
    m = make_model("Clip", [("x", [3], TP.INT64)], opset=13, inits={"lo": np.array(0, np.int64)})
    with pytest.raises(ExportError, match="opset 12"):
        to_model(normalize(from_model(m)), opset=11)


# ----------------------------------------------------------------------------------- PRelu
SLOPES = {"per_channel": (3, 1, 1), "last_axis": (5,), "scalar": (1,), "full": (3, 4, 5), "rank2": (4, 5)}


@pytest.mark.parametrize("slope_shape", SLOPES.values(), ids=SLOPES.keys())
def test_prelu_slope_broadcast(slope_shape):
    m = make_model("PRelu", [("x", ["N", 3, 4, 5], TP.FLOAT)], opset=16,
                   inits={"slope": randn(*slope_shape)})
    check_onnx_model(m, {"x": randn(2, 3, 4, 5)})


def test_prelu_slope_as_input_and_float16():
    m = make_model("PRelu", [("x", [2, 3, 4], TP.FLOAT16), ("slope", [3, 1], TP.FLOAT16)], opset=16)
    feeds = {"x": randn(2, 3, 4, dtype=np.float16), "slope": randn(3, 1, dtype=np.float16)}
    check_onnx_model(m, feeds, **F16)


def test_prelu_int32_and_older_opset_refusal():
    m = make_model("PRelu", [("x", [2, 6], TP.INT32)], opset=16, inits={"slope": np.array([3], np.int32)})
    check_onnx_model(m, {"x": np.arange(-6, 6, dtype=np.int32).reshape(2, 6)})
    with pytest.raises(ExportError, match="opset 16"):
        to_model(normalize(from_model(m)), opset=13)


def test_prelu_bad_slope_shape():
    m = make_model("PRelu", [("x", [2, 6], TP.FLOAT)], opset=16, inits={"slope": randn(2, 6, 1)})
    with pytest.raises(ShapeError, match="broadcast"):
        normalize(from_model(m))


# --------------------------------------------------------------------------- softmax family
FAMILY = ["Softmax", "LogSoftmax", "Hardmax"]


@pytest.mark.parametrize("op", FAMILY)
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -2])
def test_softmax_family_opset13(op, axis):
    attrs = {} if axis is None else {"axis": axis}
    x = randn(3, 4, 5)
    x[0, 0, :2] = x[0, 0, 2]  # ties: Hardmax picks the first
    x[1] *= 40  # large logits
    check_x(op, x, opset=13, shape=["N", 4, 5], **attrs)


@pytest.mark.parametrize("op", FAMILY)
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("before", [None, "Relu"], ids=["input", "computed"])
def test_softmax_family_opset11_coerces_to_2d(op, axis, before):
    """Before opset 13 the op ran over all axes from ``axis`` on. Whether or not the input's rank is
    known up front (graph input vs. computed), the import matches; export at 11 and at 13 too."""
    attrs = {} if axis is None else {"axis": axis}
    x = randn(2, 3, 4)
    check_x(op, x, opset=11, before=before, **attrs)
    check_x(op, x, opset=11, before=before, export_opset=13, **attrs)


@pytest.mark.parametrize("op", FAMILY)
@pytest.mark.parametrize("axis", [1, 2])
def test_softmax_family_opset11_lowering(op, axis):
    """Over the last axis (the rank found by inferring the graph converted so far) the old op is the
    canonical one; over more axes it is Flatten at ``axis``, the op, and a Reshape back."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["r"]),
             helper.make_node(op, ["r"], ["y"], axis=axis)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    ops = [helper.make_opsetid("", 11)]
    m = helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    assert ("Flatten" in from_model(m).ops_histogram()) == (axis == 1)
    check_onnx_model(m, {"x": randn(2, 3, 4)})


@pytest.mark.parametrize("op", FAMILY)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family_exported_at_opset_11(op, axis):
    """An opset-13 op over one axis, written where the op coerced to 2D: Transposes when not last."""
    check_x(op, randn(3, 4, 5), opset=13, shape=["N", 4, 5], export_opset=11, axis=axis)


@pytest.mark.parametrize("op", FAMILY)
def test_softmax_family_float16(op):
    check_x(op, randn(3, 7, dtype=np.float16), opset=13, tol=F16, axis=0)


def test_softmax_axis_out_of_range():
    m = make_model("Softmax", [("x", [2, 3], TP.FLOAT)], opset=13, axis=2)
    with pytest.raises(ShapeError, match="out of range"):
        normalize(from_model(m))


# -------------------------------------------------------------- decompositions at older opsets
DECOMPOSED = [
    ("HardSwish", 14, {}, [11, 13]),
    ("Gelu", 20, {}, [11, 13, 17, 19]),
    ("Gelu", 20, {"approximate": "tanh"}, [11, 13, 17]),
    ("Mish", 18, {}, [11, 13, 17]),
    ("Celu", 12, {}, [11]),
    ("Celu", 12, {"alpha": 0.4}, [11]),
    ("Swish", 24, {}, [11, 13, 17, 23]),
    ("Swish", 24, {"alpha": 0.6}, [13, 23]),
]


@pytest.mark.parametrize("case", DECOMPOSED, ids=[_id(c[:3]) for c in DECOMPOSED])
def test_exported_below_the_ops_opset(case):
    """The decomposition at each older opset matches onnxruntime running the op itself."""
    op, opset, attrs, targets = case
    x = randn(2, 3, 8)
    x.flat[:3] = [-30.0, 30.0, 0.0]
    for target in targets:
        check_x(op, x, opset=opset, shape=["N", 3, 8], export_opset=target, **attrs)
        model = to_model(normalize(from_model(make_model(op, [("x", [2, 3, 8], TP.FLOAT)], opset=opset,
                                                         **attrs))), opset=target)
        assert op not in {n.op_type for n in model.graph.node}


@pytest.mark.parametrize("case", [c for c in DECOMPOSED if c[0] != "Celu"],
                         ids=[_id(c[:3]) for c in DECOMPOSED if c[0] != "Celu"])
def test_decompositions_float16(case):
    op, opset, attrs, _ = case
    target = 13 if op != "HardSwish" else 11
    check_x(op, randn(4, 6, dtype=np.float16), opset=opset, export_opset=target, tol=F16, **attrs)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("target", [11, 17])
def test_celu_other_float_types(dtype, target):
    """Celu-12 is float32 only: float16 and float64 are written as its formula. The ONNX format has
    no Celu on them that onnxruntime runs, so the reference is onnxruntime's float32 Celu."""
    x = randn(3, 5, dtype=dtype)
    ref = make_model("Celu", [("x", [3, 5], TP.FLOAT)], opset=12, alpha=0.7)
    expected = ort_run(ref, {"x": x.astype(np.float32)})[0]
    g = Graph("celu")
    g.add_input("x", dtype, ("N", 5))
    g.add_node("Celu", ["x"], ["y"], {"alpha": float(np.float32(0.7))})
    g.outputs.append("y")
    g = normalize(g, validate=True)
    tol = F16 if dtype == np.float16 else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run(g, {"x": x})["y"], expected, **tol)
    model = to_model(g, opset=target)
    onnx.checker.check_model(model, full_check=True)
    got = ort_run(model, {"x": x})[0]
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float16])
@pytest.mark.parametrize("target", [11, 12, 13])
def test_relu_below_opset_14(dtype, target):
    """Relu takes integers from 14: Max(x, 0) at 12-13, Relu on doubles at 11."""
    x = (randn(3, 5) * 40).astype(dtype)
    m = make_model("Relu", [("x", [3, 5], helper.np_dtype_to_tensor_dtype(x.dtype))], opset=14)
    check_onnx_model(m, {"x": x}, opset=target)


def test_relu_int64_at_opset_11_names_opset_12():
    """Doubles cannot hold every int64 (and onnxruntime has no int64 Relu to compare with)."""
    m = make_model("Relu", [("x", [3, 5], TP.INT64)], opset=14)
    with pytest.raises(ExportError, match="opset 12"):
        to_model(normalize(from_model(m)), opset=11)


# ------------------------------------------------------------------------------------ errors
def test_float_only_ops_refuse_integers():
    m = make_model("Sigmoid", [("x", [3], TP.INT32)], opset=13)
    with pytest.raises(ConvertError):
        normalize(from_model(m))


def test_gelu_unknown_approximation():
    g = Graph("gelu")
    g.add_input("x", np.float32, (3,))
    g.add_node("Gelu", ["x"], ["y"], {"approximate": "sigmoid"})
    g.outputs.append("y")
    g = normalize(g)
    with pytest.raises(ConvertError, match="approximate"):
        run(g, {"x": randn(3)})
    with pytest.raises(ExportError, match="approximate"):
        to_model(g, opset=17)
