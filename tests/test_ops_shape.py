"""Shape and indexing ops against onnxruntime: ONNX model in onnxruntime == IR in the reference
interpreter == re-exported model in onnxruntime, including exports at older opsets (11, 13) and
graphs whose batch dimension is symbolic."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from convertkit.backends.onnx import to_model
from convertkit.errors import ConvertError, ExportError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, ort_run

RNG = np.random.default_rng(0)
I64 = np.int64
BIG = np.iinfo(np.int64).max


def model(nodes, inputs, outputs, inits=None, opset=18) -> onnx.ModelProto:
    """``inputs``: (name, elem type, shape with str for symbolic dims); ``outputs``: (name, elem type)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    ops = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))


def node_model(op, x_shape, inits=None, opset=18, elem=TP.FLOAT, n_out=1, out_elem=None, extra=(),
               **attrs) -> onnx.ModelProto:
    """One op on graph input ``x`` (plus ``extra`` graph inputs, then initializers in order)."""
    inits = inits or {}
    names = ["x"] + [n for n, _, _ in extra] + list(inits)
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **attrs)
    oe = out_elem if out_elem is not None else elem
    return model([node], [("x", elem, x_shape), *extra], [(o, oe) for o in outs], inits, opset)


def randn(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def ir_shapes(m: onnx.ModelProto) -> dict[str, tuple]:
    g = normalize(from_model(m), validate=True)
    return {o: g.tensor(o).shape for o in g.outputs}


# ------------------------------------------------------------------------------------- Reshape
@pytest.mark.parametrize("shape", [[3, 8], [0, -1], [-1], [2, 0, 2, 2], [4, -1, 1, 2], [1, 24]])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_reshape(shape, opset):
    m = node_model("Reshape", [2, 3, 4], {"s": np.array(shape, I64)}, opset=opset)
    check_onnx_model(m, {"x": randn(2, 3, 4)})


def test_reshape_allowzero_exported_at_13():
    m = node_model("Reshape", [0, 3, 4], {"s": np.array([3, 0, 4], I64)}, opset=14, allowzero=1)
    check_onnx_model(m, {"x": randn(0, 3, 4)})
    check_onnx_model(m, {"x": randn(0, 3, 4)}, opset=13)  # static output: written as explicit shape


def test_reshape_symbolic_batch():
    m = node_model("Reshape", ["N", 3, 4], {"s": np.array([0, -1], I64)})
    assert ir_shapes(m) == {"y0": ("N", 12)}
    for batch in (1, 5):
        check_onnx_model(m, {"x": randn(batch, 3, 4)})


def _chain(opset: int, scalar_index: bool) -> onnx.ModelProto:
    """Shape -> Gather -> (Unsqueeze) -> Concat -> Reshape, as exporters write a dynamic flatten."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "idx"], ["b" if scalar_index else "b1"], axis=0)]
    if scalar_index:
        nodes.append(helper.make_node("Unsqueeze", ["b"], ["b1"], axes=[0]) if opset < 13 else
                     helper.make_node("Unsqueeze", ["b", "zero"], ["b1"]))
    nodes += [helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
              helper.make_node("Reshape", ["x", "target"], ["y"]),
              helper.make_node("Relu", ["y"], ["z"])]
    inits = {"idx": np.array(0 if scalar_index else [0], I64), "minus1": np.array([-1], I64)}
    if scalar_index and opset >= 13:
        inits["zero"] = np.array([0], I64)
    return model(nodes, [("x", TP.FLOAT, ["N", 3, 4, 5])], [("z", TP.FLOAT)], inits, opset)


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_shape_gather_concat_reshape_chain(opset):
    m = _chain(opset, scalar_index=False)
    assert ir_shapes(m) == {"z": ("N", 60)}
    for batch in (1, 3):
        check_onnx_model(m, {"x": randn(batch, 3, 4, 5)})
        check_onnx_model(m, {"x": randn(batch, 3, 4, 5)}, opset=11)


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_shape_gather_unsqueeze_concat_reshape_chain(opset):
    """The PyTorch form: a scalar Gather index, then Unsqueeze."""
    m = _chain(opset, scalar_index=True)
    assert ir_shapes(m) == {"z": ("N", 60)}
    for batch in (1, 3):
        check_onnx_model(m, {"x": randn(batch, 3, 4, 5)})


def test_reshape_computed_shape_keeps_rank():
    """A shape only known at run time still gives the output rank (and runs)."""
    nodes = [helper.make_node("Abs", ["s"], ["t"]), helper.make_node("Reshape", ["x", "t"], ["y"])]
    m = model(nodes, [("x", TP.FLOAT, [2, 3, 4]), ("s", TP.INT64, [3])], [("y", TP.FLOAT)])
    shape = ir_shapes(m)["y"]
    assert len(shape) == 3 and all(isinstance(d, str) for d in shape)
    check_onnx_model(m, {"x": randn(2, 3, 4), "s": np.array([4, 3, 2], I64)})


def test_reshape_shape_from_shape_arithmetic():
    """Shape values through Gather, Mul and Slice: [N, 3*4] from the input's own dims."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["h"]),
             helper.make_node("Gather", ["s", "two"], ["w"]),
             helper.make_node("Mul", ["h", "w"], ["p"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
             helper.make_node("Concat", ["n", "p"], ["t"], axis=0),
             helper.make_node("Reshape", ["x", "t"], ["y"])]
    inits = {"zero": np.array([0], I64), "one": np.array([1], I64), "two": np.array([2], I64)}
    m = model(nodes, [("x", TP.FLOAT, ["N", 3, 4])], [("y", TP.FLOAT)], inits)
    assert ir_shapes(m) == {"y": ("N", 12)}
    check_onnx_model(m, {"x": randn(2, 3, 4)})
    check_onnx_model(m, {"x": randn(2, 3, 4)}, opset=11)


# ------------------------------------------------------------------------ Flatten, Transpose
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis):
    check_onnx_model(node_model("Flatten", [2, 3, 4], axis=axis, opset=13), {"x": randn(2, 3, 4)}, opset=11)


def test_flatten_symbolic():
    m = node_model("Flatten", ["N", 3, 4], axis=1)
    assert ir_shapes(m) == {"y0": ("N", 12)}
    check_onnx_model(m, {"x": randn(3, 3, 4)})


@pytest.mark.parametrize("perm", [None, [0, 2, 1, 3], [3, 0, 1, 2], [1, 0, 3, 2]])
def test_transpose(perm):
    attrs = {} if perm is None else {"perm": perm}
    m = node_model("Transpose", ["N", 3, 4, 5], **attrs)
    check_onnx_model(m, {"x": randn(2, 3, 4, 5)})
    check_onnx_model(m, {"x": randn(2, 3, 4, 5)}, opset=11)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int64, np.float64, np.bool_])
def test_transpose_dtypes(dtype):
    x = (RNG.integers(0, 2, (2, 3, 4))).astype(dtype)
    m = node_model("Transpose", [2, 3, 4], elem=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), perm=[2, 0, 1])
    check_onnx_model(m, {"x": x})


# -------------------------------------------------------------------------- Squeeze/Unsqueeze
@pytest.mark.parametrize("axes", [None, [0], [-1], [0, 3]])
@pytest.mark.parametrize("opset,export", [(11, 11), (11, 13), (13, 11), (18, 13)])
def test_squeeze(axes, opset, export):
    if opset < 13:
        m = node_model("Squeeze", [1, 3, 4, 1], opset=opset, **({} if axes is None else {"axes": axes}))
    else:
        m = node_model("Squeeze", [1, 3, 4, 1], {} if axes is None else {"a": np.array(axes, I64)}, opset=opset)
    check_onnx_model(m, {"x": randn(1, 3, 4, 1)}, opset=export)


@pytest.mark.parametrize("axes", [[0], [-1], [1, 3], [4, 0, 2]])
@pytest.mark.parametrize("opset,export", [(11, 11), (11, 13), (13, 11), (18, 18)])
def test_unsqueeze(axes, opset, export):
    if opset < 13:
        m = node_model("Unsqueeze", ["N", 4], opset=opset, axes=axes)
    else:
        m = node_model("Unsqueeze", ["N", 4], {"a": np.array(axes, I64)}, opset=opset)
    check_onnx_model(m, {"x": randn(2, 4)}, opset=export)


def test_squeeze_symbolic_without_axes_is_refused():
    with pytest.raises(ConvertError, match="symbolic"):
        ir_shapes(node_model("Squeeze", ["N", 1, 4]))


def test_squeeze_runtime_axes_needs_newer_opset():
    nodes = [helper.make_node("Squeeze", ["x", "a"], ["y"])]
    m = model(nodes, [("x", TP.FLOAT, [1, 3, 1]), ("a", TP.INT64, [1])], [("y", TP.FLOAT)], opset=13)
    check_onnx_model(m, {"x": randn(1, 3, 1), "a": np.array([0], I64)})
    with pytest.raises(ExportError, match="opset 11"):
        to_model(normalize(from_model(m)), opset=11)


# ------------------------------------------------------------------------------ Concat, Split
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shape = [2, 3, 4]
    ins = [(f"i{k}", TP.INT32, shape) for k in range(3)]
    m = model([helper.make_node("Concat", [n for n, _, _ in ins], ["y"], axis=axis)], ins, [("y", TP.INT32)])
    feeds = {n: RNG.integers(-9, 9, shape).astype(np.int32) for n, _, _ in ins}
    check_onnx_model(m, feeds)
    check_onnx_model(m, feeds, opset=11)


def test_concat_symbolic_batch():
    ins = [("a", TP.FLOAT, ["N", 3]), ("b", TP.FLOAT, ["N", 5])]
    m = model([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)], ins, [("y", TP.FLOAT)])
    assert ir_shapes(m) == {"y": ("N", 8)}
    check_onnx_model(m, {"a": randn(4, 3), "b": randn(4, 5)})


@pytest.mark.parametrize("export", [11, 13, 18])
@pytest.mark.parametrize("split,axis", [([2, 4], 1), ([1, 1, 4], -1), ([6], 1), ([3, 0, 3], 1)])
def test_split_sizes(split, axis, export):
    m = node_model("Split", [3, 6], {"s": np.array(split, I64)}, n_out=len(split), opset=13, axis=axis)
    check_onnx_model(m, {"x": randn(3, 6)}, opset=export)


@pytest.mark.parametrize("export", [11, 13, 18])
@pytest.mark.parametrize("n,dim", [(2, 6), (3, 7), (4, 7), (3, 3)])
def test_split_num_outputs(n, dim, export):
    """num_outputs (opset 18) with uneven parts, written with explicit sizes before 18."""
    m = node_model("Split", [2, dim], n_out=n, opset=18, axis=1, num_outputs=n)
    check_onnx_model(m, {"x": randn(2, dim)}, opset=export)


def test_split_attribute_form_opset11():
    m = node_model("Split", [5, 2], n_out=2, opset=11, split=[2, 3])
    check_onnx_model(m, {"x": randn(5, 2)})
    m = node_model("Split", ["N", 6], n_out=3, opset=11, axis=1)
    check_onnx_model(m, {"x": randn(2, 6)})
    check_onnx_model(m, {"x": randn(2, 6)}, opset=18)


def test_split_symbolic_axis_equal_parts():
    m = node_model("Split", ["N", 4], n_out=2, opset=13, axis=0)
    check_onnx_model(m, {"x": randn(6, 4)})
    check_onnx_model(m, {"x": randn(6, 4)}, opset=11)


# ----------------------------------------------------------------------------------------- Slice
SLICES = [
    ([0, 1], [3, 10], None, None),
    ([1], [-1], [1], None),
    ([-1], [-BIG], [1], [-1]),  # full reverse
    ([BIG], [-BIG], [0], [-2]),
    ([10], [-10], [2], [-1]),
    ([-100, 2], [100, 3], [0, 2], [1, 1]),
    ([3, 1], [0, 4], [1, 2], [-1, 2]),
    ([5], [1], [-1], [1]),  # empty
    ([0, 0], [BIG, BIG], [-2, -1], [3, 2]),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
@pytest.mark.parametrize("export", [11, 18])
def test_slice(starts, ends, axes, steps, export):
    inits = {"st": np.array(starts, I64), "en": np.array(ends, I64)}
    if axes is not None:
        inits["ax"] = np.array(axes, I64)
    if steps is not None:
        inits["sp"] = np.array(steps, I64)
    m = node_model("Slice", [4, 5, 6], inits, opset=13)
    check_onnx_model(m, {"x": randn(4, 5, 6)}, opset=export)


def test_slice_keeps_symbolic_batch():
    inits = {"st": np.array([0, 1], I64), "en": np.array([BIG, 3], I64), "ax": np.array([0, 1], I64)}
    m = node_model("Slice", ["N", 5], inits, opset=13)
    assert ir_shapes(m) == {"y0": ("N", 2)}
    check_onnx_model(m, {"x": randn(3, 5)})


def test_slice_runtime_bounds():
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])]
    m = model(nodes, [("x", TP.FLOAT, [4, 5]), ("s", TP.INT64, [1]), ("e", TP.INT64, [1])], [("y", TP.FLOAT)],
              {"a": np.array([1], I64)}, opset=13)
    assert ir_shapes(m)["y"][0] == 4
    check_onnx_model(m, {"x": randn(4, 5), "s": np.array([1], I64), "e": np.array([-1], I64)})


# ---------------------------------------------------------------------------------------- Gathers
@pytest.mark.parametrize("axis,indices", [
    (0, [[0, 1], [3, -1]]), (1, [2, -3, 0]), (-1, 1), (2, [[[0]]])])
def test_gather(axis, indices):
    if axis == 0:  # int32 indices into a static axis
        m = node_model("Gather", [4, 3, 4], {"i": np.array(indices, np.int32)}, opset=13, axis=axis)
    else:
        m = node_model("Gather", ["N", 3, 4], {"i": np.array(indices, I64)}, opset=13, axis=axis)
    x = randn(4, 3, 4)
    check_onnx_model(m, {"x": x})
    check_onnx_model(m, {"x": x}, opset=11)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    idx = RNG.integers(-3, 3, (3, 2, 3))
    m = node_model("GatherElements", [3, 3, 3], {"i": idx.astype(I64)}, opset=13, axis=axis)
    check_onnx_model(m, {"x": randn(3, 3, 3)}, opset=11)


@pytest.mark.parametrize("batch_dims,idx", [
    (0, [[0, 1], [1, 0]]), (0, [[[1]], [[0]]]), (0, [[1, 2, 3], [-1, 0, -2]]),
    (1, [[1], [0]]), (1, [[[0, 1]], [[2, 3]]]), (2, [[[1], [2], [0]], [[3], [3], [-1]]]),
])
def test_gather_nd(batch_dims, idx):
    x = randn(2, 3, 4, 5)
    m = node_model("GatherND", [2, 3, 4, 5], {"i": np.array(idx, I64)}, opset=13, batch_dims=batch_dims)
    check_onnx_model(m, {"x": x})
    if batch_dims == 0:
        check_onnx_model(m, {"x": x}, opset=11)


def test_gather_nd_batch_dims_needs_opset_12():
    m = node_model("GatherND", [2, 3], {"i": np.array([[1], [0]], I64)}, opset=13, batch_dims=1)
    with pytest.raises(ExportError, match="batch_dims"):
        to_model(normalize(from_model(m)), opset=11)


# --------------------------------------------------------------------------------------- Scatters
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    idx = np.array([[1, 0, -1], [0, 2, 1]], I64)
    upd = randn(2, 3)
    m = node_model("ScatterElements", [3, 3], {"i": idx, "u": upd}, opset=18, axis=axis, reduction=reduction)
    check_onnx_model(m, {"x": randn(3, 3)})
    if reduction in ("none", "add", "mul"):
        check_onnx_model(m, {"x": randn(3, 3)}, opset=16)
    if reduction == "none":
        check_onnx_model(m, {"x": randn(3, 3)}, opset=11)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(reduction):
    idx = np.array([[0], [2], [-1]], I64) if reduction == "none" else np.array([[0], [2], [0]], I64)
    upd = randn(3, 4, 4)
    m = node_model("ScatterND", [4, 4, 4], {"i": idx, "u": upd}, opset=18, reduction=reduction)
    check_onnx_model(m, {"x": randn(4, 4, 4)})
    idx2 = np.array([[0, 1], [3, 3]], I64)
    m = node_model("ScatterND", [4, 4, 4], {"i": idx2, "u": randn(2, 4)}, opset=18, reduction=reduction)
    check_onnx_model(m, {"x": randn(4, 4, 4)})


def test_scatter_max_needs_opset_18():
    m = node_model("ScatterElements", [3], {"i": np.array([0], I64), "u": randn(1)}, opset=18, reduction="max")
    for opset in (11, 16):
        with pytest.raises(ExportError, match="reduction"):
            to_model(normalize(from_model(m)), opset=opset)


def test_deprecated_scatter():
    m = node_model("Scatter", [3, 3], {"i": np.array([[1, 0, 2]], I64), "u": randn(1, 3)}, opset=10, axis=0)
    x = randn(3, 3)
    got = normalize(from_model(m))
    assert [n.op for n in got.nodes] == ["ScatterElements"]
    expected = x.copy()
    expected[[1, 0, 2], [0, 1, 2]] = numpy_helper.to_array(m.graph.initializer[1])[0]
    np.testing.assert_array_equal(ort_run(to_model(got, opset=11), {"x": x})[0], expected)


# -------------------------------------------------------------------------------------------- Pad
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [[0, 1, 2, 0, 2, 1], [1, 0, 0, 1, 0, 0], [0, -1, 1, 0, 1, -2]])
@pytest.mark.parametrize("opset", [11, 18])
def test_pad(mode, pads, opset):
    inits = {"p": np.array(pads, I64)}
    if mode == "constant":
        inits["v"] = np.array(1.5, np.float32)
    m = node_model("Pad", [2, 3, 4], inits, opset=opset, mode=mode)
    check_onnx_model(m, {"x": randn(2, 3, 4)})


def test_pad_wrap_needs_opset_19():
    m = node_model("Pad", [3, 4], {"p": np.array([1, 2, 2, 1], I64)}, opset=19, mode="wrap")
    check_onnx_model(m, {"x": randn(3, 4)})
    with pytest.raises(ExportError, match="wrap"):
        to_model(normalize(from_model(m)), opset=18)


@pytest.mark.parametrize("export", [11, 13, 18])
@pytest.mark.parametrize("axes", [[1], [-1, 0], [2, 0]])
def test_pad_axes_exported_without_axes(axes, export):
    pads = np.array(list(range(1, len(axes) + 1)) * 2, I64)
    m = node_model("Pad", ["N", 3, 4], {"p": pads, "v": np.array(-2.0, np.float32), "a": np.array(axes, I64)},
                   opset=18)
    check_onnx_model(m, {"x": randn(2, 3, 4)}, opset=export)


def test_pad_int_symbolic():
    m = node_model("Pad", ["N", 4], {"p": np.array([0, 1, 0, 1], I64)}, opset=13, elem=TP.INT32)
    assert ir_shapes(m) == {"y0": ("N", 6)}
    check_onnx_model(m, {"x": RNG.integers(-5, 5, (3, 4)).astype(np.int32)})


# -------------------------------------------------------------------------------- Tile, Expand
@pytest.mark.parametrize("reps", [[1, 1], [2, 3], [3, 1]])
def test_tile(reps):
    m = node_model("Tile", ["N", 3], {"r": np.array(reps, I64)}, opset=13)
    check_onnx_model(m, {"x": randn(2, 3)}, opset=11)


@pytest.mark.parametrize("in_shape,target", [([3, 1], [2, 3, 4]), ([1, 4], [3, 1]), ([2, 1, 4], [1, 1]),
                                             ([3, 4], [3, 4])])
def test_expand(in_shape, target):
    m = node_model("Expand", in_shape, {"s": np.array(target, I64)}, opset=13)
    check_onnx_model(m, {"x": randn(*in_shape)}, opset=11)


def test_expand_to_input_shape_symbolic():
    """Expand(y, Shape(x)): the shape value is x's symbolic shape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Expand", ["b", "s"], ["y"])]
    m = model(nodes, [("x", TP.FLOAT, ["N", 3]), ("b", TP.FLOAT, [1, 3])], [("y", TP.FLOAT)], opset=13)
    assert ir_shapes(m) == {"y": ("N", 3)}
    check_onnx_model(m, {"x": randn(4, 3), "b": randn(1, 3)})


def test_expand_pytorch_where_equal_pattern():
    """PyTorch writes x.expand(N, 3) as Expand(x, Where(Equal(target, -1), ones, target))."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"]),
             helper.make_node("Concat", ["n", "three"], ["target"], axis=0),
             helper.make_node("ConstantOfShape", ["two"], ["ones"], value=numpy_helper.from_array(np.ones(1, I64))),
             helper.make_node("Equal", ["target", "minus1"], ["eq"]),
             helper.make_node("Where", ["eq", "ones", "target"], ["t2"]),
             helper.make_node("Expand", ["b", "t2"], ["y"])]
    inits = {"zero": np.array([0], I64), "three": np.array([3], I64), "two": np.array([2], I64),
             "minus1": np.array([-1, -1], I64)}
    m = model(nodes, [("x", TP.FLOAT, ["N", 5]), ("b", TP.FLOAT, [1, 3])], [("y", TP.FLOAT)], inits, opset=13)
    assert ir_shapes(m) == {"y": ("N", 3)}
    check_onnx_model(m, {"x": randn(4, 5), "b": randn(1, 3)})
    check_onnx_model(m, {"x": randn(4, 5), "b": randn(1, 3)}, opset=11)


# ------------------------------------------------------------------ Identity, Dropout, Shape, Size
def test_identity_chain():
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Identity", ["b"], ["y"])]
    m = model(nodes, [("x", TP.FLOAT, ["N", 2])], [("y", TP.FLOAT)])
    check_onnx_model(m, {"x": randn(3, 2)}, opset=11)


@pytest.mark.parametrize("opset", [12, 13, 22])
@pytest.mark.parametrize("export", [11, 13])
def test_dropout_inference(opset, export):
    """Identity and an all-true mask; ratio and training_mode fed at run time (training off)."""
    extra = [("r", TP.FLOAT, []), ("t", TP.BOOL, [])]
    m = node_model("Dropout", [2, 3], n_out=2, opset=opset, extra=extra, seed=3)
    m.graph.output[1].type.tensor_type.elem_type = TP.BOOL
    feeds = {"x": randn(2, 3), "r": np.array(0.3, np.float32), "t": np.array(False)}
    check_onnx_model(m, feeds)
    check_onnx_model(m, feeds, opset=export)


def test_dropout_opset11_ratio_attribute():
    m = node_model("Dropout", ["N", 3], opset=11, ratio=0.3)
    check_onnx_model(m, {"x": randn(2, 3)})


def test_dropout_training_is_refused():
    m = node_model("Dropout", [2, 3], {"r": np.array(0.5, np.float32), "t": np.array(True)}, opset=13)
    with pytest.raises(ConvertError, match="training"):
        ir_shapes(m)


@pytest.mark.parametrize("start,end", [(0, None), (1, None), (-1, None), (0, -1), (1, 2), (-10, 10), (3, 1)])
@pytest.mark.parametrize("export", [13, 15])
def test_shape_start_end(start, end, export):
    """Shape on a symbolic input (stays an op) feeding a Cast, exported with Slice before opset 15."""
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    nodes = [helper.make_node("Shape", ["x"], ["s"], **attrs), helper.make_node("Cast", ["s"], ["y"], to=TP.FLOAT)]
    m = model(nodes, [("x", TP.FLOAT, ["N", 3, 4])], [("y", TP.FLOAT)], opset=15)
    check_onnx_model(m, {"x": randn(2, 3, 4)}, opset=export)


def test_size():
    nodes = [helper.make_node("Size", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["y"], to=TP.FLOAT)]
    m = model(nodes, [("x", TP.FLOAT, ["N", 3])], [("y", TP.FLOAT)], opset=13)
    check_onnx_model(m, {"x": randn(5, 3)}, opset=11)


# ------------------------------------------------------------------ Compress, NonZero, Trilu, ...
@pytest.mark.parametrize("axis,cond", [(None, [1, 0, 1, 1, 0]), (0, [0, 1, 1]), (1, [1, 0]), (-1, [0, 0, 1, 1])])
def test_compress(axis, cond):
    attrs = {} if axis is None else {"axis": axis}
    m = node_model("Compress", [3, 4], {"c": np.array(cond, bool)}, opset=13, **attrs)
    check_onnx_model(m, {"x": randn(3, 4)}, opset=11)


def test_compress_runtime_condition():
    m = model([helper.make_node("Compress", ["x", "c"], ["y"], axis=0)],
              [("x", TP.FLOAT, [4, 2]), ("c", TP.BOOL, [4])], [("y", TP.FLOAT)], opset=13)
    check_onnx_model(m, {"x": randn(4, 2), "c": np.array([1, 0, 1, 1], bool)})


@pytest.mark.parametrize("shape", [[5], [3, 4], [2, 3, 2]])
def test_nonzero(shape):
    m = node_model("NonZero", shape, opset=13, out_elem=TP.INT64)
    x = (RNG.random(shape) > 0.5).astype(np.float32) * randn(*shape)
    check_onnx_model(m, {"x": x}, opset=11)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -7])
def test_trilu(upper, k):
    inits = {} if k is None else {"k": np.array(k, I64)}
    m = node_model("Trilu", [2, 3, 5], inits, opset=14, upper=upper)
    x = randn(2, 3, 5)
    check_onnx_model(m, {"x": x})
    check_onnx_model(m, {"x": x}, opset=13)  # a constant mask and Where
    check_onnx_model(m, {"x": x}, opset=11)


@pytest.mark.parametrize("export", [11, 13])
def test_trilu_dynamic_before_opset_14(export):
    """Symbolic matrix dims and a run-time k: the mask is built with Shape/Range."""
    ins = [("x", TP.INT64, ["N", "H", "W"]), ("k", TP.INT64, [])]
    for upper in (0, 1):
        m = model([helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)], ins, [("y", TP.INT64)], opset=14)
        for k in (-1, 0, 2):
            feeds = {"x": RNG.integers(1, 9, (2, 4, 3)).astype(I64), "k": np.array(k, I64)}
            check_onnx_model(m, feeds, opset=export)


@pytest.mark.parametrize("batch_axis,time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    shape = [4, 3, 2] if time_axis == 0 else [3, 4, 2]
    m = node_model("ReverseSequence", shape, {"l": np.array([4, 1, 2], I64)}, opset=13,
                   batch_axis=batch_axis, time_axis=time_axis)
    check_onnx_model(m, {"x": randn(*shape)}, opset=11)
