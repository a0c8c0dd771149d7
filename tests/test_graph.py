"""The IR graph: invariants, mutation API, deterministic order, passes. The numbers are checked
against onnxruntime where an op runs, so these tests do not merely compare the IR with itself."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.passes import fold_constants, infer_shapes, remove_dead_code, remove_identities
from convertkit.errors import InternalError, ShapeError, UsageError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import ort_run


def _chain() -> Graph:
    g = Graph("chain")
    g.add_input("x", np.float32, ("N", 4))
    w = g.add_const(np.arange(4, dtype=np.float32), "w")
    g.add_node("Add", ["x", w], ["a"])
    g.add_node("Relu", ["a"], ["b"])
    g.add_node("Identity", ["b"], ["y"])
    g.outputs = ["y"]
    infer_shapes(g)
    return g


def test_validate_accepts_a_well_formed_graph_and_types_flow_with_symbolic_batch():
    g = _chain()
    g.validate()
    assert g.tensor("b").shape == ("N", 4)
    assert g.tensor("b").dtype == np.float32


def test_validate_rejects_a_tensor_used_but_never_produced():
    g = _chain()
    g.add_tensor("ghost", np.float32, (4,))
    g.add_node("Add", ["b", "ghost"], ["z"])
    with pytest.raises(InternalError, match="ghost"):
        g.validate()


def test_validate_rejects_missing_required_input_and_cycles():
    g = _chain()
    node = g.producer("a")
    g.set_input(node, 0, None)
    with pytest.raises(InternalError, match="required input 0"):
        g.validate()
    g = _chain()
    g.set_input(g.producer("a"), 0, "b")  # a -> b -> a
    with pytest.raises(InternalError, match="cycle"):
        g.validate()


def test_second_producer_is_refused():
    g = _chain()
    with pytest.raises(InternalError, match="already has a producer"):
        g.add_node("Relu", ["x"], ["a"])


def test_replace_uses_rewires_consumers_and_graph_outputs():
    g = _chain()
    g.replace_uses("b", "a")
    assert [n.op for n, _ in g.consumers("a")] == ["Relu", "Identity"]
    g.outputs = ["b"]
    g.replace_uses("b", "x")
    assert g.outputs == ["x"]


def test_remove_dead_keeps_inputs_and_drops_unreachable_ops():
    g = _chain()
    g.add_node("Neg", ["x"], ["unused"])
    assert g.remove_dead() == 1
    assert not g.has_tensor("unused")
    assert g.inputs == ["x"]
    g.validate()


def test_topo_order_is_stable_and_follows_insertion_among_independent_ops():
    g = Graph()
    g.add_input("x", np.float32, (2,))
    for i in range(5):
        g.add_node("Neg", ["x"], [f"n{i}"], name=f"neg{i}")
    g.add_node("Sum", [f"n{i}" for i in range(5)], ["y"])
    g.outputs = ["y"]
    assert [n.name for n in g.topo_order()] == ["neg0", "neg1", "neg2", "neg3", "neg4", "Sum"]
    assert [n.name for n in g.copy().topo_order()] == [n.name for n in g.topo_order()]


def test_unique_names_never_collide():
    g = _chain()
    names = {g.add_const(np.float32(i), "w") for i in range(20)}
    assert len(names) == 20 and all(g.has_tensor(n) for n in names)


def test_copy_is_independent():
    g = _chain()
    h = g.copy()
    h.producer("a").attrs["foo"] = 1
    h.remove_node(h.producer("y"), keep_outputs=True)
    assert "foo" not in g.producer("a").attrs
    g.validate()


def test_remove_identities_keeps_the_graph_output_name():
    g = _chain()
    assert remove_identities(g)
    assert g.outputs == ["y"] and g.producer("y").op == "Relu"
    g.validate()


def test_fold_constants_and_shape_folding_unlock_a_dynamic_reshape():
    """Shape of a static tensor folds; the reshape target becomes constant. Checked in onnxruntime."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("v", TensorProto.INT64, [1], [2])),
        helper.make_node("Add", ["two", "two"], ["four"]),  # constant arithmetic to fold
        helper.make_node("Identity", ["x"], ["xi"]),
        helper.make_node("Neg", ["xi"], ["unused"]),
        helper.make_node("Relu", ["xi"], ["y"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    g = from_model(model)
    infer_shapes(g)
    assert fold_constants(g)
    assert g.tensor("four").is_const and g.tensor("four").value.tolist() == [4]
    assert g.tensor("s").value.tolist() == [2, 3, 4]
    remove_identities(g)
    assert remove_dead_code(g)
    assert [n.op for n in g.topo_order()] == ["Relu"]
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)}
    np.testing.assert_array_equal(run(g, feeds)["y"], ort_run(model, feeds)[0])


def test_normalize_validates_after_every_pass_on_a_fixture(fixture_models):
    for path in fixture_models:
        g = normalize(from_model(onnx.load(path), base_dir=path.parent), validate=True)
        g.validate()


def test_interpreter_checks_feeds():
    g = _chain()
    with pytest.raises(UsageError, match="no value fed"):
        run(g, {})
    with pytest.raises(UsageError, match="expects float32"):
        run(g, {"x": np.zeros((1, 4), np.int32)})
    with pytest.raises(UsageError, match="expects shape"):
        run(g, {"x": np.zeros((1, 5), np.float32)})


def test_interpreter_record_keeps_every_intermediate():
    g = _chain()
    x = np.array([[-3, -1, 1, 3]], np.float32)
    values = run(g, {"x": x}, record=True)
    assert set(values) >= {"x", "a", "b", "y"}
    np.testing.assert_array_equal(values["a"], x + np.arange(4))


def test_shape_error_names_the_node():
    g = Graph()
    g.add_input("x", np.float32, (2, 3))
    g.add_input("z", np.float32, (4,))
    g.add_node("Add", ["x", "z"], ["y"], name="bad_add")
    g.outputs = ["y"]
    with pytest.raises(ShapeError, match="bad_add"):
        infer_shapes(g)


def test_same_graph_gives_byte_identical_onnx():
    a = to_model(normalize(_chain())).SerializeToString(deterministic=True)
    b = to_model(normalize(_chain())).SerializeToString(deterministic=True)
    assert a == b
