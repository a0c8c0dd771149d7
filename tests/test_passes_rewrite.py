"""The rule engine, the shape-simplification rules and common subexpression elimination."""
from __future__ import annotations

import time

import numpy as np
import pytest

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes import eliminate_common_subexpressions, infer_shapes
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules, explain
from convertkit.canonical_ir.passes.simplify import (
    CollapseReshapes, DropNoopReshape, MergeTransposes, ShuffleToGather, TransposeAsReshape, reshape_spec)
from convertkit.errors import InternalError
from tests.test_passes_equivalence import check_pass

RNG = np.random.default_rng(3)


def graph_of(shape: tuple, build) -> tuple[Graph, dict]:
    """A graph with input x of ``shape`` and whatever ``build(g, 'x')`` returns as its outputs."""
    g = Graph("t")
    g.add_input("x", np.float32, shape)
    outs = build(g, "x")
    g.outputs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    infer_shapes(g)
    g.validate()
    feeds = {"x": RNG.standard_normal([d if isinstance(d, int) else 2 for d in shape]).astype(np.float32)}
    return g, feeds


def node(g: Graph, op: str, inputs: list, **attrs) -> str:
    out = g.unique_name(op.lower())
    g.add_node(op, inputs, [out], attrs)
    return out


def const(g: Graph, value, dtype=np.int64) -> str:
    return g.add_const(np.asarray(value, dtype))


def ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


# ----------------------------------------------------------------------------------- engine
def _transpose_chain(n: int) -> Graph:
    def build(g, x):
        for _ in range(n):
            x = node(g, "Relu", [node(g, "Transpose", [node(g, "Transpose", [x], perm=[1, 0])], perm=[1, 0])])
        return x
    return graph_of((3, 4), build)[0]


def test_cancelling_pairs_reach_a_fixed_point_and_keep_the_output_name() -> None:
    def build(g, x):
        return node(g, "Transpose", [node(g, "Transpose", [node(g, "Relu", [x])], perm=[1, 0])], perm=[1, 0])
    g, feeds = graph_of((3, 4), build)
    out = g.outputs[0]
    after = check_pass(g, feeds, lambda h: apply_rules(h, [MergeTransposes()]))
    assert ops(after) == ["Relu"] and after.outputs == [out]


def test_apply_rules_is_linear_in_the_graph_size() -> None:
    times = {}
    for n in (200, 800):
        g = _transpose_chain(n)
        t = time.perf_counter()
        assert apply_rules(g, [MergeTransposes()]) == n
        times[n] = (time.perf_counter() - t) / n
        assert ops(g) == ["Relu"] * n
    assert times[800] < 3 * times[200]  # per node: flat, not growing with n


class _Flip(Rule):
    ops = frozenset({"Relu"})

    def check(self, rw: Rewriter, node) -> str | None:
        return None

    def rewrite(self, rw: Rewriter, node) -> None:
        rw.set_attrs(node, {})


def test_a_rule_set_that_never_settles_is_reported() -> None:
    with pytest.raises(InternalError, match="do not converge"):
        apply_rules(_transpose_chain(2), [_Flip()])


def test_explain_says_why_each_rule_did_not_match() -> None:
    g, _ = graph_of((3, 4), lambda g, x: node(g, "Transpose", [node(g, "Relu", [x])], perm=[1, 0]))
    t = next(n for n in g.nodes if n.op == "Transpose")
    why = explain(g, [MergeTransposes(), TransposeAsReshape(), DropNoopReshape()], t)
    assert why == {"MergeTransposes": "input is not a Transpose or a constant",
                   "TransposeAsReshape": "it reorders axes longer than 1"}


# ---------------------------------------------------------------------------- simplify rules
def test_constant_transposes_fold_even_into_a_graph_output() -> None:
    def build(g, x):
        w = g.add_const(RNG.standard_normal((2, 3)).astype(np.float32))
        return [node(g, "Add", [x, node(g, "Transpose", [w], perm=[1, 0])]),
                node(g, "Transpose", [w], perm=[1, 0])]
    g, feeds = graph_of((3, 2), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, [MergeTransposes()]))
    assert ops(after) == ["Add"] and after.tensor(after.outputs[1]).is_const


def test_reshape_chains_collapse_into_one() -> None:
    def build(g, x):
        y = node(g, "Unsqueeze", [x, const(g, [1])])
        y = node(g, "Reshape", [y, const(g, [0, 4, 3])])
        y = node(g, "Squeeze", [node(g, "Unsqueeze", [y, const(g, [3])]), const(g, [3])])
        return node(g, "Flatten", [y], axis=1)
    g, feeds = graph_of(("N", 3, 4), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, [CollapseReshapes(), DropNoopReshape()]))
    assert ops(after) == ["Flatten"]
    assert after.tensor(after.outputs[0]).shape == ("N", 12)


def test_noop_reshape_is_dropped_and_symbolic_specs_copy_dims() -> None:
    g, feeds = graph_of(("N", 3), lambda g, x: node(g, "Relu", [node(g, "Reshape", [x, const(g, [0, 3])])]))
    assert ops(check_pass(g, feeds, lambda h: apply_rules(h, [DropNoopReshape()]))) == ["Relu"]
    assert reshape_spec(("N", 8, 1, 1), ("N", 1, 1, 8)) == [0, 1, 1, 8]
    assert reshape_spec(("N", "H"), ("H", "N")) is None


def test_transpose_of_size_one_axes_is_a_reshape() -> None:
    g, feeds = graph_of(("N", 6, 1, 1), lambda g, x: node(g, "Transpose", [x], perm=[0, 2, 3, 1]))
    after = check_pass(g, feeds, lambda h: apply_rules(h, [TransposeAsReshape()]))
    assert ops(after) == ["Reshape"]


def test_channel_shuffle_becomes_a_gather() -> None:
    def build(g, x):
        y = node(g, "Reshape", [x, const(g, [0, 0, 0, 2, 3])])
        y = node(g, "Transpose", [y], perm=[0, 1, 2, 4, 3])
        return node(g, "Reshape", [y, const(g, [0, 0, 0, 6])])
    g, feeds = graph_of(("N", 4, 4, 6), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, [ShuffleToGather()]))
    assert ops(after) == ["Gather"]


# ------------------------------------------------------------------------------------- CSE
def test_cse_merges_duplicate_ops_and_constants_but_not_outputs() -> None:
    def build(g, x):
        a = node(g, "Add", [x, g.add_const(np.ones(4, np.float32))])
        b = node(g, "Add", [x, g.add_const(np.ones(4, np.float32))])
        c, d = node(g, "Relu", [a]), node(g, "Relu", [b])
        return [node(g, "Mul", [c, d]), node(g, "Sigmoid", [x]), node(g, "Sigmoid", [x])]
    g, feeds = graph_of((2, 4), build)
    after = check_pass(g, feeds, eliminate_common_subexpressions)
    assert sorted(ops(after)) == ["Add", "Mul", "Relu", "Sigmoid", "Sigmoid"]
    assert not eliminate_common_subexpressions(after)
