"""The rule engine, the shape-simplification rules and common subexpression elimination."""
from __future__ import annotations


import numpy as np
import pytest

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes import eliminate_common_subexpressions, infer_shapes
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules, explain
from convertkit.canonical_ir.passes.simplify import (
    CollapseReshapes, DropNoopReshape, MergeTransposes, ShuffleToGather, TransposeAsReshape, reshape_spec)
from convertkit.canonical_ir.passes.transpose import (
    PUSH_RULES, PushTransposeDown, PushTransposeFanOut, unsqueeze_plan)
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


class _CountingMerge(MergeTransposes):
    """MergeTransposes that counts how often the engine asks it to look at a node."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def check(self, rw: Rewriter, node) -> str | None:
        self.checks += 1
        return super().check(rw, node)


def test_apply_rules_is_linear_in_the_graph_size() -> None:
    """Work, not time (timings belong in bench/): the number of rule checks per node stays the same
    when the graph grows, so the engine revisits only the neighbourhood of each rewrite."""
    per_node = {}
    for n in (200, 800):
        g = _transpose_chain(n)
        rule = _CountingMerge()
        assert apply_rules(g, [rule]) == n
        assert ops(g) == ["Relu"] * n
        per_node[n] = rule.checks / n
    assert per_node[800] <= per_node[200] * 1.01, per_node


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


# ------------------------------------------------------------------------------- transposes
def _hard_swish(g, t):
    """tf2onnx's hard-swish: t * relu6(t + 3) / 6 (t read by both the Add and the Mul)."""
    def f(v: float) -> str:
        return g.add_const(np.array(v, np.float32))
    r6 = node(g, "Clip", [node(g, "Add", [t, f(3.0)]), f(0.0), f(6.0)])
    return node(g, "Mul", [t, node(g, "Div", [r6, f(6.0)])])


def test_transpose_read_by_a_hard_swish_moves_below_the_whole_fan_out() -> None:
    def build(g, x):
        t = node(g, "Transpose", [x], perm=[0, 3, 1, 2])
        return node(g, "Relu", [node(g, "Transpose", [_hard_swish(g, t)], perm=[0, 2, 3, 1])])
    g, feeds = graph_of((2, 4, 5, 3), build)
    t = next(n for n in g.nodes if n.op == "Transpose")
    add = next(n for n in g.nodes if n.op == "Add")
    assert explain(g, PUSH_RULES, add)["PushTransposeDown"].startswith("moving it would not reduce")
    assert explain(g, PUSH_RULES, t)["PushTransposeFanOut"] is None
    after = check_pass(g, feeds, lambda h: apply_rules(h, PUSH_RULES))
    assert "Transpose" not in ops(after)


def test_squeeze_excite_fan_out_with_a_per_channel_constant_is_pushed() -> None:
    def build(g, x):  # x + x: not a graph input's Transpose (those stay at the interface)
        t = node(g, "Transpose", [node(g, "Add", [x, x])], perm=[0, 3, 1, 2])
        t = node(g, "Mul", [t, g.add_const(RNG.standard_normal((3, 1, 1)).astype(np.float32))])
        t2 = node(g, "Relu", [t])
        se = node(g, "Sigmoid", [node(g, "ReduceMean", [t2, const(g, [2, 3])], keepdims=1)])
        return node(g, "Transpose", [node(g, "Mul", [t2, se])], perm=[0, 2, 3, 1])
    g, feeds = graph_of((2, 4, 5, 3), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, PUSH_RULES))
    assert "Transpose" not in ops(after)


def test_fan_out_is_not_pushed_into_an_op_that_needs_the_layout_or_when_it_adds_transposes() -> None:
    def build(g, x):
        t = node(g, "Transpose", [x], perm=[0, 2, 1])
        w = g.add_const(RNG.standard_normal((4, 4)).astype(np.float32))
        return [node(g, "MatMul", [t, w]), node(g, "Relu", [t])]
    g, feeds = graph_of((2, 4, 4), build)
    t = next(n for n in g.nodes if n.op == "Transpose")
    assert explain(g, [PushTransposeFanOut()], t)["PushTransposeFanOut"] == "not every consumer can take the Transpose"

    def build2(g, x):  # two separate consumers: two Transposes after instead of one before
        t = node(g, "Transpose", [x], perm=[0, 2, 1])
        return [node(g, "Relu", [t]), node(g, "Sigmoid", [t])]
    g, feeds = graph_of((2, 3, 4), build2)
    t = next(n for n in g.nodes if n.op == "Transpose")
    assert explain(g, [PushTransposeFanOut()], t)["PushTransposeFanOut"].startswith("moving it would not")
    after = check_pass(g, feeds, lambda h: apply_rules(h, PUSH_RULES))
    assert ops(after).count("Transpose") == 1


@pytest.mark.parametrize("seed", range(12))
def test_unsqueeze_plan_commutes_with_the_transpose(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rank, k = int(rng.integers(1, 5)), int(rng.integers(1, 3))
    p = [int(i) for i in rng.permutation(rank)]
    axes = sorted(int(a) for a in rng.choice(rank + k, k, replace=False))
    x = rng.standard_normal(rng.integers(1, 4, rank))
    axes2, q = unsqueeze_plan(p, axes)
    np.testing.assert_array_equal(np.expand_dims(np.transpose(x, p), axes),
                                  np.transpose(np.expand_dims(x, axes2), q))


def test_transposes_around_tf2onnx_nearest_upsampling_cancel() -> None:
    """NHWC x -> to NCHW -> Unsqueeze -> Tile (repeat H) -> to [N, H, 2, W, C] -> Reshape: the
    Transposes move through Unsqueeze and Tile, keep the repeat axis next to H, and cancel."""
    def build(g, x):
        t = node(g, "Transpose", [node(g, "Add", [x, x])], perm=[0, 3, 1, 2])
        y = node(g, "Tile", [node(g, "Unsqueeze", [t, const(g, [3])]), const(g, [1, 1, 1, 2, 1])])
        y = node(g, "Transpose", [y], perm=[0, 2, 3, 4, 1])
        return node(g, "Relu", [node(g, "Reshape", [y, const(g, [2, 8, 5, 3])])])
    g, feeds = graph_of((2, 4, 5, 3), build)
    unsq = next(n for n in g.nodes if n.op == "Unsqueeze")
    assert explain(g, [PushTransposeDown()], unsq)["PushTransposeDown"] is None
    after = check_pass(g, feeds, lambda h: apply_rules(h, PUSH_RULES))
    assert "Transpose" not in ops(after)


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
