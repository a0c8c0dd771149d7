"""The reduce family (Reduce*, ArgMax/ArgMin, TopK, CumSum/CumProd) against onnxruntime.

Each case runs the ONNX model in onnxruntime, the IR in the reference interpreter and the re-exported
model in onnxruntime (``check_onnx_model``), including exports at older opsets where the Reduce* axes
were attributes.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.passes import infer_shapes
from convertkit.errors import ConvertError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, ort_run

RNG = np.random.default_rng(7)
REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def node_model(op: str, inputs: list[tuple[str, list, int]], outputs: list[tuple[str, int]], *,
               inits: dict | None = None, opset: int = 18, input_names: list[str] | None = None,
               **attrs) -> onnx.ModelProto:
    """One node. ``inputs``: graph inputs (name, shape, elem type); ``inits``: initializers, which
    follow the graph inputs as node inputs unless ``input_names`` orders them."""
    inits = inits or {}
    names = input_names if input_names is not None else [n for n, _, _ in inputs] + list(inits)
    node = helper.make_node(op, names, [n for n, _ in outputs], **attrs)
    graph = helper.make_graph(
        [node], op.lower(), [helper.make_tensor_value_info(n, t, s) for n, s, t in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs if n],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))


def data(shape, dtype=np.float32, lo=-3, hi=4) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(lo, hi, shape).astype(dtype)


def positive(shape) -> np.ndarray:
    return RNG.uniform(0.5, 2.0, shape).astype(np.float32)


def reduce_model(op, shape, elem=TP.FLOAT, axes=None, opset=18, **attrs):
    inits = {} if axes is None else {"axes": np.asarray(axes, np.int64)}
    return node_model(op, [("x", shape, elem)], [("y", elem)], inits=inits, opset=opset, **attrs)


# ---------------------------------------------------------------------------------- Reduce*
@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([1], 0), ([-1, 0], 1), ([0, 2], 0), (None, 1),
                                           (None, 0)])
def test_reduce_float(op, axes, keepdims):
    x = positive([2, 3, 4]) if op == "ReduceLogSum" else data([2, 3, 4])
    check_onnx_model(reduce_model(op, ["N", 3, 4], axes=axes, keepdims=keepdims), {"x": x})


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_noop_with_empty_axes(op):
    x = positive([2, 3]) if op == "ReduceLogSum" else data([2, 3])
    check_onnx_model(reduce_model(op, [2, 3], axes=np.zeros(0, np.int64), noop_with_empty_axes=1), {"x": x})
    check_onnx_model(reduce_model(op, [2, 3], noop_with_empty_axes=1), {"x": x})


INTEGER_CASES = [("ReduceSum", np.int32), ("ReduceSum", np.int64), ("ReduceMax", np.int8),
                 ("ReduceMin", np.uint8), ("ReduceProd", np.int32), ("ReduceMean", np.int32),
                 ("ReduceMax", np.int64), ("ReduceL1", np.int32), ("ReduceSumSquare", np.int64)]


@pytest.mark.parametrize("op,dtype", INTEGER_CASES)
def test_reduce_integer_exact(op, dtype):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    lo = 0 if np.dtype(dtype).kind == "u" else -9
    x = data([3, 4, 5], dtype, lo=lo, hi=10)
    check_onnx_model(reduce_model(op, [3, 4, 5], elem, axes=[1], keepdims=0), {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                                "ReduceLogSum", "ReduceLogSumExp", "ReduceMax"])
@pytest.mark.parametrize("seed", range(3))
def test_reduce_float16_accumulates_like_onnxruntime(op, seed):
    """Long float16 sums: accumulated in float32 and rounded once, they match onnxruntime exactly."""
    x = (np.random.default_rng(seed).standard_normal([4, 300]) * 3).astype(np.float16)
    x = np.abs(x) if op == "ReduceLogSum" else x
    m = reduce_model(op, [4, 300], TP.FLOAT16, axes=[1], keepdims=0)
    check_onnx_model(m, {"x": x}, rtol=0, atol=0)


def test_reduce_max_bool():
    x = RNG.random((3, 4)) > 0.6
    check_onnx_model(reduce_model("ReduceMax", [3, 4], TP.BOOL, axes=[1], opset=20), {"x": x})
    check_onnx_model(reduce_model("ReduceMin", [3, 4], TP.BOOL, axes=[0], opset=20), {"x": x})


def test_reduce_log_sum_exp_large_values_stay_finite():
    x = (data([2, 5]) * 200).astype(np.float32)
    check_onnx_model(reduce_model("ReduceLogSumExp", [2, 5], axes=[1]), {"x": x})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceL2"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_runtime_axes(op, keepdims):
    """Axes fed at run time: inference keeps the rank and names the unknown dims."""
    m = node_model(op, [("x", [2, 3, 4], TP.FLOAT), ("axes", [1], TP.INT64)], [("y", TP.FLOAT)],
                   keepdims=keepdims)
    feeds = {"x": data([2, 3, 4]), "axes": np.array([1], np.int64)}
    check_onnx_model(m, feeds)
    g = normalize(from_model(m))
    assert len(g.tensor("y").shape) == (3 if keepdims else 2)
    assert not infer_shapes(g), "re-running inference must not rename the unknown dims"


@pytest.mark.parametrize("op,opset", [("ReduceSum", 11), ("ReduceSum", 12), ("ReduceMean", 13),
                                      ("ReduceMax", 17), ("ReduceLogSumExp", 11)])
def test_reduce_axes_attribute_opsets(op, opset):
    m = node_model(op, [("x", ["N", 3, 4], TP.FLOAT)], [("y", TP.FLOAT)], opset=opset, axes=[2, 1],
                   keepdims=0)
    check_onnx_model(m, {"x": data([2, 3, 4])})
    m_all = node_model(op, [("x", [2, 3], TP.FLOAT)], [("y", TP.FLOAT)], opset=opset)
    check_onnx_model(m_all, {"x": data([2, 3])})


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL1"])
def test_reduce_export_older_opsets(op, opset):
    m = reduce_model(op, ["N", 3, 4], axes=[-1], keepdims=1)
    check_onnx_model(m, {"x": data([2, 3, 4])}, opset=opset)
    noop = reduce_model(op, [2, 3], noop_with_empty_axes=1)
    check_onnx_model(noop, {"x": data([2, 3])}, opset=opset)  # becomes an Identity


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_over_no_axis_export_at_opset_13(op):
    """noop_with_empty_axes has no spelling before 18: the export writes the elementwise part."""
    x = positive([2, 3]) if op == "ReduceLogSum" else data([2, 3])
    check_onnx_model(reduce_model(op, [2, 3], axes=np.zeros(0, np.int64), noop_with_empty_axes=1), {"x": x},
                     opset=13 if op != "ReduceSum" else 12)


def test_reduce_export_runtime_axes_needs_new_opset():
    m = node_model("ReduceMean", [("x", [2, 3], TP.FLOAT), ("axes", [1], TP.INT64)], [("y", TP.FLOAT)])
    g = normalize(from_model(m))
    with pytest.raises(ConvertError, match="opset 18"):
        to_model(g, opset=17)
    to_model(g, opset=18)


@pytest.mark.parametrize("elem_type,model_opset,target,needed",
                         [(TP.BOOL, 20, 18, 20), (TP.INT8, 18, 11, 12)])
def test_reduce_export_refuses_types_the_opset_lacks(elem_type, model_opset, target, needed):
    g = normalize(from_model(reduce_model("ReduceMax", [3, 4], elem_type, axes=[1], opset=model_opset)))
    with pytest.raises(ConvertError, match=f"opset {needed}"):
        to_model(g, opset=target)
    to_model(g, opset=needed)


def test_reduce_empty_set_identities():
    """Reducing an empty axis gives each reduction's identity (onnxruntime agrees)."""
    for op in ("ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp"):
        m = reduce_model(op, [2, 0, 4], axes=[1], keepdims=1)
        check_onnx_model(m, {"x": np.zeros((2, 0, 4), np.float32)})


# ------------------------------------------------------------------------------ ArgMax/ArgMin
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (2, 0, 1)])
def test_arg_extreme_with_ties(op, axis, keepdims, last):
    x = data([3, 4, 5], np.float32).round()  # many ties
    m = node_model(op, [("x", ["N", 4, 5], TP.FLOAT)], [("y", TP.INT64)], opset=13, axis=axis,
                   keepdims=keepdims, select_last_index=last)
    check_onnx_model(m, {"x": x})
    if not last:
        check_onnx_model(m, {"x": x}, opset=11)


def test_arg_select_last_index_needs_opset_12():
    m = node_model("ArgMax", [("x", [3, 4], TP.FLOAT)], [("y", TP.INT64)], opset=13, select_last_index=1)
    g = normalize(from_model(m))
    with pytest.raises(ConvertError, match="select_last_index"):
        to_model(g, opset=11)


# ------------------------------------------------------------------------------------- TopK
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_top_k_ties_lower_index_first(largest, axis, dtype):
    x = data([4, 6, 5], dtype, lo=0, hi=3)  # heavy ties
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    m = node_model("TopK", [("x", [4, 6, 5], elem)], [("v", elem), ("i", TP.INT64)], opset=11,
                   inits={"k": np.array([3], np.int64)}, axis=axis, largest=largest)
    check_onnx_model(m, {"x": x}, rtol=0, atol=0)


def test_top_k_runtime_k_and_symbolic_batch():
    m = node_model("TopK", [("x", ["N", 7], TP.FLOAT), ("k", [1], TP.INT64)], [("v", TP.FLOAT),
                                                                              ("i", TP.INT64)])
    check_onnx_model(m, {"x": data([3, 7]), "k": np.array([4], np.int64)})
    g = normalize(from_model(m))
    assert g.tensor("v").shape[0] == "N" and isinstance(g.tensor("v").shape[1], str)
    assert not infer_shapes(g)


def test_top_k_unsorted_selects_the_same_set():
    """sorted=0 leaves the order open: compare the selected (index, value) sets with onnxruntime."""
    x = RNG.permutation(40).reshape(4, 10).astype(np.float32)
    m = node_model("TopK", [("x", [4, 10], TP.FLOAT)], [("v", TP.FLOAT), ("i", TP.INT64)],
                   inits={"k": np.array([4], np.int64)}, sorted=0)
    ort_v, ort_i = ort_run(m, {"x": x})
    g = normalize(from_model(m))
    out = run(g, {"x": x})
    for got_i, got_v in ((out["i"], out["v"]), tuple(ort_run(to_model(g, 18), {"x": x}))[::-1]):
        order, ref = np.argsort(got_i, axis=1), np.argsort(ort_i, axis=1)
        np.testing.assert_array_equal(np.take_along_axis(got_i, order, 1), np.take_along_axis(ort_i, ref, 1))
        np.testing.assert_array_equal(np.take_along_axis(got_v, order, 1), np.take_along_axis(ort_v, ref, 1))


# ----------------------------------------------------------------------------- CumSum/CumProd
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_cumsum(exclusive, reverse, axis, dtype):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    m = node_model("CumSum", [("x", ["N", 5], elem)], [("y", elem)], opset=14,
                   inits={"axis": np.array(axis, np.int32)}, exclusive=exclusive, reverse=reverse)
    check_onnx_model(m, {"x": data([3, 5], dtype)})
    check_onnx_model(m, {"x": data([3, 5], dtype)}, opset=11)


def test_cumsum_runtime_axis():
    m = node_model("CumSum", [("x", [3, 4], TP.FLOAT), ("axis", [], TP.INT64)], [("y", TP.FLOAT)], opset=14)
    check_onnx_model(m, {"x": data([3, 4]), "axis": np.array(1, np.int64)})


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_cumprod(exclusive, reverse, dtype):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    m = node_model("CumProd", [("x", [3, 5], elem)], [("y", elem)], opset=26,
                   inits={"axis": np.array(1, np.int64)}, exclusive=exclusive, reverse=reverse)
    x = data([3, 5], dtype, lo=-3, hi=4) if dtype != np.float32 else positive([3, 5])
    check_onnx_model(m, {"x": x})


def test_cumprod_export_needs_opset_26():
    m = node_model("CumProd", [("x", [3], TP.FLOAT)], [("y", TP.FLOAT)], opset=26,
                   inits={"axis": np.array(0, np.int64)})
    with pytest.raises(ConvertError, match="CumProd"):
        to_model(normalize(from_model(m)), opset=25)


# ------------------------------------------------------------------------------------ inference
def test_symbolic_dims_pass_through():
    g = Graph("g")
    g.add_input("x", np.float32, ("batch", "seq", 8))
    g.add_node("ReduceMean", ["x", g.add_const(np.array([-1], np.int64), "axes")], ["y"], {"keepdims": 1})
    g.add_node("ArgMax", ["x"], ["a"], {"axis": 2, "keepdims": 0})
    g.add_node("CumSum", ["x", g.add_const(np.array(1, np.int64), "ax")], ["c"])
    g.outputs = ["y", "a", "c"]
    infer_shapes(g)
    assert g.tensor("y").shape == ("batch", "seq", 1)
    assert g.tensor("a").shape == ("batch", "seq") and g.tensor("a").dtype == np.int64
    assert g.tensor("c").shape == ("batch", "seq", 8)


def test_runtime_axes_without_keepdims_needs_known_count():
    g = Graph("g")
    g.add_input("x", np.float32, (2, 3))
    g.add_input("axes", np.int64, ("n",))
    g.add_node("ReduceSum", ["x", "axes"], ["y"], {"keepdims": 0})
    g.outputs = ["y"]
    with pytest.raises(ConvertError, match="output rank is unknown"):
        infer_shapes(g)


def test_reduce_out_of_range_axis_is_a_shape_error():
    with pytest.raises(ConvertError, match="out of range"):
        normalize(from_model(reduce_model("ReduceSum", [2, 3], axes=[2])))
