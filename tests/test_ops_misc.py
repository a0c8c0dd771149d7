"""Cast, CastLike, ConstantOfShape, Range, EyeLike, OneHot and Unique against onnxruntime: ONNX model in
onnxruntime == IR in the reference interpreter == re-exported model in onnxruntime, including exports
at older opsets."""
from __future__ import annotations

import platform

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.interpreter import run
from convertkit.errors import ModelFileError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, ort_run
from tests.test_ops_shape import ir_shapes, model, node_model

RNG = np.random.default_rng(1)
I64 = np.int64
IR_DTYPES = [np.dtype(d) for d in dtypes.ALL]


def elem(dt) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dt))


def sample(dt: np.dtype, shape=(3, 5)) -> np.ndarray:
    """Values every IR dtype can hold exactly (so any cast between them is well defined)."""
    if dt.kind == "b":
        return RNG.random(shape) > 0.5
    if dt.kind == "f":
        return (RNG.integers(0, 100, shape) + RNG.choice([0, 0.25, 0.5, 0.75], shape)).astype(dt)
    return RNG.integers(0, 100, shape).astype(dt)


# ------------------------------------------------------------------------------------------- Cast
@pytest.mark.parametrize("src", IR_DTYPES, ids=str)
@pytest.mark.parametrize("dst", IR_DTYPES, ids=str)
def test_cast_all_pairs(src, dst):
    m = node_model("Cast", ["N", 5], opset=13, elem=elem(src), out_elem=elem(dst), to=elem(dst))
    check_onnx_model(m, {"x": sample(src)}, rtol=0, atol=0)


@pytest.mark.parametrize("dst", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                                 np.bool_, np.float16])
@pytest.mark.parametrize("src", [np.float32, np.float64])
def test_cast_float_edge_values(src, dst):
    """Truncation toward zero, negatives into unsigned types, out-of-range, inf and NaN. The last three
    are undefined in C++; onnxruntime gives what the x86 conversion instructions give."""
    x = np.array([0.0, -0.0, 0.5, -0.5, 1.7, -1.7, 127.6, 128.4, -129.0, 255.9, 256.0, 300.0, -200.0, 65535.5,
                  65536.0, 3e9, -3e9, 1e20, -1e20, np.inf, -np.inf, np.nan], dtype=src)
    if np.dtype(dst).kind in "iu" and platform.machine() not in ("x86_64", "AMD64"):
        x = x[np.isfinite(x) & (np.abs(x) < 127)]
    m = node_model("Cast", [x.size], opset=19, elem=elem(src), out_elem=elem(dst), to=elem(dst), saturate=1)
    check_onnx_model(m, {"x": x}, rtol=0, atol=0)
    check_onnx_model(m, {"x": x}, rtol=0, atol=0, opset=11)


@pytest.mark.parametrize("src", [np.int64, np.int32, np.uint64, np.int8])
def test_cast_int_wraparound_and_to_float(src):
    info = np.iinfo(src)
    x = np.array([info.min, info.max, 0, 1, info.max // 3] + [v for v in (255, 256, 65537) if v <= info.max],
                 dtype=src)
    for dst in (np.int8, np.uint8, np.int16, np.uint32, np.float16, np.float32, np.float64, np.bool_):
        m = node_model("Cast", [x.size], opset=13, elem=elem(src), out_elem=elem(dst), to=elem(dst))
        check_onnx_model(m, {"x": x}, rtol=0, atol=0)


def test_cast_ir_attribute_is_a_dtype_name():
    g = from_model(node_model("Cast", [2], opset=13, out_elem=TP.INT32, to=TP.INT32))
    assert [n.attrs["to"] for n in g.nodes] == ["int32"]


@pytest.mark.parametrize("to", [TP.BFLOAT16, TP.FLOAT8E4M3FN, TP.STRING, TP.INT4])
def test_cast_to_unsupported_type_is_refused(to):
    m = node_model("Cast", [2], opset=21, out_elem=to, to=to)
    with pytest.raises(ModelFileError, match=TP.DataType.Name(to)):
        from_model(m)


@pytest.mark.parametrize("opset,export", [(15, 15), (19, 19), (19, 13), (21, 11)])
@pytest.mark.parametrize("dst", [np.float16, np.int32, np.bool_, np.float64])
def test_cast_like(opset, export, dst):
    attrs = {"saturate": 1} if opset >= 19 else {}
    extra = [("t", elem(dst), [1])]
    m = node_model("CastLike", ["N", 4], opset=opset, extra=extra, out_elem=elem(dst), **attrs)
    feeds = {"x": sample(np.dtype(np.float32), (2, 4)), "t": np.zeros(1, dst)}
    check_onnx_model(m, feeds, rtol=0, atol=0, opset=export)


# ------------------------------------------------------------------------------ ConstantOfShape
@pytest.mark.parametrize("value", [None, np.array([7], np.int32), np.array([1.5], np.float64),
                                   np.array([True])])
@pytest.mark.parametrize("export", [11, 20])
def test_constant_of_shape_like_symbolic_input(value, export):
    """ConstantOfShape(Shape(x)): inference reads x's symbolic shape through the Shape op."""
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    out = TP.FLOAT if value is None else elem(value.dtype)
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["y"], **attrs)]
    m = model(nodes, [("x", TP.FLOAT, ["N", 3])], [("y", out)], opset=20)
    assert ir_shapes(m) == {"y": ("N", 3)}
    check_onnx_model(m, {"x": np.zeros((4, 3), np.float32)}, opset=export)


def test_constant_of_shape_runtime_shape():
    m = model([helper.make_node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([3], I64)))],
              [("s", TP.INT64, [3])], [("y", TP.INT64)], opset=13)
    assert len(ir_shapes(m)["y"]) == 3
    check_onnx_model(m, {"s": np.array([2, 0, 3], I64)})
    check_onnx_model(m, {"s": np.array([1, 2, 3], I64)}, opset=11)


# ------------------------------------------------------------------------------------------ Range
RANGES = [
    (np.int32, 0, 10, 3), (np.int32, 10, -7, -3), (np.int64, -5, 5, 1), (np.int64, 3, 3, 1),
    (np.int64, 5, 0, 1), (np.float32, 0.1, 100.3, 0.7), (np.float32, 1.0, -2.0, -0.3), (np.float64, 0.0, 1.0, 0.1),
    (np.int16, 2, 40, 5),
]


@pytest.mark.parametrize("dt,start,limit,delta", RANGES)
@pytest.mark.parametrize("export", [11, 26])
def test_range_runtime_inputs(dt, start, limit, delta, export):
    """Scalars fed at run time; results must match onnxruntime bit for bit (values accumulate)."""
    ins = [(n, elem(dt), []) for n in ("a", "b", "c")]
    m = model([helper.make_node("Range", ["a", "b", "c"], ["y"])], ins, [("y", elem(dt))], opset=11)
    feeds = {n: np.array(v, dt) for n, v in zip("abc", (start, limit, delta))}
    check_onnx_model(m, feeds, rtol=0, atol=0, opset=export)
    np.testing.assert_array_equal(run(normalize(from_model(m)), feeds)["y"], ort_run(m, feeds)[0])


def test_range_constant_inputs_fold():
    inits = {"a": np.array(2, I64), "b": np.array(11, I64), "c": np.array(3, I64)}
    nodes = [helper.make_node("Range", ["a", "b", "c"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])]
    m = model(nodes, [("x", TP.INT64, ["N", 3])], [("y", TP.INT64)], inits, opset=11)
    assert ir_shapes(m) == {"y": ("N", 3)}
    check_onnx_model(m, {"x": np.arange(6, dtype=I64).reshape(2, 3)})


def test_range_size_from_shape_of_symbolic_input():
    """arange(N) for a symbolic batch N, as position-id subgraphs do."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n1"]),
             helper.make_node("Squeeze", ["n1", "zero"], ["n"]),
             helper.make_node("Range", ["start", "n", "step"], ["y"])]
    m = model(nodes, [("x", TP.FLOAT, ["N", 2]), ("start", TP.INT64, []), ("step", TP.INT64, [])],
              [("y", TP.INT64)], {"zero": np.array([0], I64)}, opset=13)
    assert len(ir_shapes(m)["y"]) == 1
    feeds = {"x": np.zeros((5, 2), np.float32), "start": np.array(0, I64), "step": np.array(1, I64)}
    check_onnx_model(m, feeds)
    check_onnx_model(m, feeds, opset=11)


def test_range_float16_stash_type_before_opset_27():
    """stash_type=1 (float32 arithmetic, opset 27) is written as Casts around a float32 Range (ORT 1.31
    stops at opset 26 and has no float16 Range): the same as a float32 Range cast to float16."""
    ins = [(n, TP.FLOAT16, []) for n in ("a", "b", "c")]
    m = model([helper.make_node("Range", ["a", "b", "c"], ["y"])], ins, [("y", TP.FLOAT16)], opset=26)
    g = normalize(from_model(m))
    assert [n.attrs["stash_type"] for n in g.nodes] == [0]  # float16 arithmetic, as before opset 27
    g.nodes[0].attrs["stash_type"] = 1
    feeds = {"a": np.array(1.1, np.float16), "b": np.array(900.0, np.float16), "c": np.array(0.3, np.float16)}
    ins32 = [(n, TP.FLOAT, []) for n in ("a", "b", "c")]
    m32 = model([helper.make_node("Range", ["a", "b", "c"], ["y"])], ins32, [("y", TP.FLOAT)], opset=26)
    want = ort_run(m32, {k: v.astype(np.float32) for k, v in feeds.items()})[0].astype(np.float16)
    np.testing.assert_array_equal(ort_run(to_model(g, opset=26), feeds)[0], want)
    np.testing.assert_array_equal(run(g, feeds)["y"], want)


# ---------------------------------------------------------------------------------------- EyeLike
@pytest.mark.parametrize("k", [0, 1, -2, 9])
@pytest.mark.parametrize("dtype", [None, TP.FLOAT, TP.INT32, TP.DOUBLE])
def test_eye_like(k, dtype):
    attrs = {"k": k} if dtype is None else {"k": k, "dtype": dtype}
    m = node_model("EyeLike", [3, 5], opset=11, out_elem=dtype or TP.FLOAT, **attrs)
    check_onnx_model(m, {"x": np.zeros((3, 5), np.float32)}, rtol=0, atol=0)
    if dtype is not None:
        assert from_model(m).nodes[0].attrs["dtype"] == dtypes.from_onnx(dtype).name


def test_eye_like_int_input():
    m = node_model("EyeLike", [4, 4], opset=22, elem=TP.INT64, k=-1)
    check_onnx_model(m, {"x": np.zeros((4, 4), I64)}, opset=11)


# ----------------------------------------------------------------------------------------- OneHot
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("idx_dt,val_dt,depth_dt", [  # the type combinations onnxruntime implements
    (np.int64, np.float32, np.int64), (np.int64, np.int64, np.int64), (np.int32, np.float32, np.int32),
    (np.float32, np.float32, np.float32), (np.float32, np.int64, np.int64), (np.int64, np.int32, np.float32)])
def test_one_hot(axis, idx_dt, val_dt, depth_dt):
    indices = np.array([[0, 3, -1], [-4, 5, 2]], idx_dt)  # 5 is out of range: an all-off row
    inits = {"d": np.array([4], depth_dt), "v": np.array([2, 9], val_dt)}
    m = node_model("OneHot", [2, 3], inits, opset=11, elem=elem(idx_dt), out_elem=elem(val_dt), axis=axis)
    check_onnx_model(m, {"x": indices}, rtol=0, atol=0)


def test_one_hot_runtime_depth():
    ins = [("d", TP.INT64, [1])]
    m = node_model("OneHot", ["N"], {"v": np.array([0, 1], np.float32)}, opset=11, elem=TP.INT64,
                   out_elem=TP.FLOAT, extra=ins)
    shape = ir_shapes(m)["y0"]
    assert shape[0] == "N" and len(shape) == 2
    check_onnx_model(m, {"x": np.array([1, 0, 2], I64), "d": np.array([3], I64)})


# ----------------------------------------------------------------------------------------- Unique
@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("dt", [np.float32, np.int64])
def test_unique(sorted_, axis, dt):
    x = np.array([[2, 1, 2], [0, 1, 2], [2, 1, 2], [1, 1, 0]], dt)
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    m = node_model("Unique", [4, 3], opset=11, elem=elem(dt), n_out=4, **attrs)
    for o in m.graph.output[1:]:
        o.type.tensor_type.elem_type = TP.INT64
    check_onnx_model(m, {"x": x}, rtol=0, atol=0)


def test_unique_only_values():
    m = node_model("Unique", ["N"], opset=11, elem=TP.INT64, sorted=0)
    check_onnx_model(m, {"x": np.array([3, 1, 3, 0, 1, 7], I64)})
