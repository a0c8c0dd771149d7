"""Fusion and decomposition rules, each on its own: it fires where it should, says why where it
does not, and the graph computes the same before and after (reference interpreter, seeded inputs)."""
from __future__ import annotations

import numpy as np
import pytest

from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.canonical_ir.passes import fold_batch_norms
from convertkit.canonical_ir.passes.decompose import (
    BatchNormToMulAdd, GeluErf, GeluTanh, GemmToMatMul, GroupedConvSplit, HardSigmoidToClip,
    HardSwishToHardSigmoid, LayerNormDecompose, MishToSoftplus, ReduceMeanToGlobalPool, SoftplusStable,
    SwishToSigmoid)
from convertkit.canonical_ir.passes.fusion import FoldPad, FuseActivation, MatMulAddToGemm, UnfuseActivation
from convertkit.canonical_ir.passes.rewrite import apply_rules, explain
from tests.test_passes_equivalence import NHWC_TARGET, assert_same, check_pass
from tests.test_passes_rewrite import const, graph_of, node, ops

RNG = np.random.default_rng(11)


def w(*shape: int, scale: float = 0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def bn(g, x, c: int, layout: str = "NCHW") -> str:
    params = [g.add_const(v) for v in (w(c) + 1, w(c), w(c), np.abs(w(c)) + 0.5)]
    return node(g, "BatchNormalization", [x, *params], layout=layout)


# ------------------------------------------------------------------------------ BN folding
@pytest.mark.parametrize("layer", ["conv", "conv_nhwc", "depthwise", "convT", "convT_nhwc", "gemm", "gemm_tb",
                                   "matmul"])
def test_batchnorm_folds_into_the_layer_before(layer: str) -> None:
    nhwc = layer.endswith("nhwc")
    layout = "NHWC" if nhwc else "NCHW"

    def build(g, x):
        if layer in ("conv", "conv_nhwc", "depthwise"):
            group = 4 if layer == "depthwise" else 1
            wt = w(6 if group == 1 else 4, 4 // group, 3, 3)
            if nhwc:
                wt = wt.transpose(0, 2, 3, 1)
            y = node(g, "Conv", [x, g.add_const(wt), g.add_const(w(wt.shape[0]))], group=group, pads=[1] * 4,
                     layout=layout)
        elif layer.startswith("convT"):
            wt = w(4, 3, 2, 2) if not nhwc else w(6, 2, 2, 2)  # NCHW [I, O/g, k, k]; NHWC [O, k, k, I/g]
            y = node(g, "ConvTranspose", [x, g.add_const(wt)], group=2, strides=[2, 2], layout=layout)
        elif layer.startswith("gemm"):
            tb = layer == "gemm_tb"
            b = g.add_const(w(5, 4) if tb else w(4, 5))
            y = node(g, "Gemm", [x, b, g.add_const(w(5))], transB=int(tb), alpha=0.5, beta=2.0)
        else:
            y = node(g, "MatMul", [x, g.add_const(w(4, 5))])
        graph_infer(g)
        c = g.tensor(y).shape[-1] if nhwc or layer in ("gemm", "gemm_tb", "matmul") else g.tensor(y).shape[1]
        return bn(g, y, c, layout)
    shape = (2, 4) if layer in ("gemm", "gemm_tb", "matmul") else ((2, 5, 5, 4) if nhwc else (2, 4, 5, 5))
    g, feeds = graph_of(shape, build)
    after = check_pass(g, feeds, fold_batch_norms)
    assert "BatchNormalization" not in ops(after)


def graph_infer(g):
    """Shape inference while building (the builders read shapes)."""
    from convertkit.canonical_ir.passes import infer_shapes
    infer_shapes(g)


def test_per_channel_add_joins_the_conv_bias_but_a_shared_output_does_not() -> None:
    def build(g, x):
        y = node(g, "Conv", [x, g.add_const(w(3, 2, 1, 1))])
        return node(g, "Add", [y, g.add_const(w(3, 1, 1))])
    g, feeds = graph_of((1, 2, 4, 4), build)
    assert ops(check_pass(g, feeds, fold_batch_norms)) == ["Conv"]

    def shared(g, x):
        y = node(g, "Conv", [x, g.add_const(w(3, 2, 1, 1))])
        return [node(g, "Add", [y, g.add_const(w(3, 1, 1))]), y]
    g, feeds = graph_of((1, 2, 4, 4), shared)
    assert ops(check_pass(g, feeds, fold_batch_norms)) == ["Conv", "Add"]


def test_matmul_plus_bias_becomes_gemm_and_says_why_not_otherwise() -> None:
    def build(g, x):
        return node(g, "Add", [g.add_const(w(5)), node(g, "MatMul", [x, g.add_const(w(4, 5))])])
    g, feeds = graph_of((3, 4), build)
    after = check_pass(g, feeds, lambda gr: apply_rules(gr, [MatMulAddToGemm()]))
    assert ops(after) == ["Gemm"]

    def batched(g, x):  # 3-D input: Gemm takes 2-D only
        return node(g, "Add", [node(g, "MatMul", [x, g.add_const(w(4, 5))]), g.add_const(w(5))])
    g, _ = graph_of((2, 3, 4), batched)
    assert "not a 2-D input" in explain(g, [MatMulAddToGemm()], g.producer(g.outputs[0]))["MatMulAddToGemm"]
    assert ops(g) == ["MatMul", "Add"]


# ----------------------------------------------------------------------------- Pad folding
@pytest.mark.parametrize("consumer,value", [("Conv", 0.0), ("AveragePool", 0.0), ("MaxPool", -np.inf)])
def test_pad_folds_into_the_next_conv_or_pool(consumer: str, value: float) -> None:
    def build(g, x):
        p = node(g, "Pad", [x, const(g, [0, 1, 2, 0, 0, 2, 1, 0]), g.add_const(np.float32(value))])
        if consumer == "Conv":
            return node(g, "Conv", [p, g.add_const(w(3, 3, 3, 2))], layout="NHWC", pads=[1, 0, 0, 1])
        return node(g, consumer, [p], kernel_shape=[3, 3], layout="NHWC")
    g, feeds = graph_of((1, 6, 6, 2), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, [FoldPad()]))
    assert ops(after) == [consumer]


def test_pad_with_a_value_or_on_channels_is_kept_and_says_why() -> None:
    g, _ = graph_of((1, 2, 6, 6), lambda g, x: node(g, "Conv", [
        node(g, "Pad", [x, const(g, [0, 0, 1, 1, 0, 0, 1, 1]), g.add_const(np.float32(1))]),
        g.add_const(w(3, 2, 3, 3))]))
    pad = next(n for n in g.nodes if n.op == "Pad")
    assert explain(g, [FoldPad()], pad) == {"FoldPad": "non-zero pad value"}
    g, _ = graph_of((1, 2, 6, 6), lambda g, x: node(g, "Conv", [
        node(g, "Pad", [x, const(g, [0, 1, 1, 1, 0, 0, 1, 1])]), g.add_const(w(3, 3, 3, 3))]))
    pad = next(n for n in g.nodes if n.op == "Pad")
    assert explain(g, [FoldPad()], pad) == {"FoldPad": "it pads the batch or channel axis"}


# --------------------------------------------------------------------- activation fusion
def test_activation_fuses_into_its_producer_and_unfuses_back() -> None:
    def build(g, x):
        y = node(g, "Conv", [x, g.add_const(w(4, 3, 3, 2))], layout="NHWC", pads=[1] * 4)
        y = node(g, "Clip", [y, g.add_const(np.float32(0)), g.add_const(np.float32(6))])
        z = node(g, "Add", [y, g.add_const(w(4))])
        return node(g, "Relu", [z]), node(g, "Sigmoid", [z])
    g, feeds = graph_of((1, 5, 5, 2), lambda g, x: list(build(g, x)))
    fused = check_pass(g, feeds, lambda h: apply_rules(h, [FuseActivation(NHWC_TARGET)]))
    assert ops(fused) == ["Conv", "Add", "Relu", "Sigmoid"]  # Add's output feeds two ops: not fused
    assert fused.nodes[0].attrs[FUSED_ACTIVATION] == ("Clip", 0.0, 6.0)
    unfused = check_pass(fused, feeds, lambda h: apply_rules(h, [UnfuseActivation()]))
    assert ops(unfused) == ["Conv", "Clip", "Add", "Relu", "Sigmoid"]


# ------------------------------------------------------------------------- decompositions
ACTIVATIONS = [(HardSwishToHardSigmoid(), "HardSwish", {}),
               (HardSigmoidToClip(), "HardSigmoid", {"alpha": 0.3}),
               (GeluErf(), "Gelu", {}), (GeluTanh(), "Gelu", {"approximate": "tanh"}),
               (MishToSoftplus(), "Mish", {}), (SoftplusStable(), "Softplus", {}),
               (SwishToSigmoid(), "Swish", {"alpha": 1.5})]


@pytest.mark.parametrize("rule,op,attrs", ACTIVATIONS, ids=[a[0].name for a in ACTIVATIONS])
def test_activation_decomposes_exactly(rule, op: str, attrs: dict) -> None:
    g, feeds = graph_of((3, 50), lambda g, x: node(g, op, [x], **attrs))
    feeds["x"] = (feeds["x"] * 4).astype(np.float32)
    feeds["x"][0, :4] = [-100.0, 100.0, 0.0, 1e-3]  # far tails too: no overflow in the decomposition
    after = check_pass(g, feeds, lambda h: apply_rules(h, [rule]))
    assert op not in ops(after)


@pytest.mark.parametrize("dtype,stats", [(np.float32, True), (np.float16, True), (np.float32, False)])
def test_layer_norm_decomposes_with_its_statistics(dtype, stats: bool) -> None:
    from convertkit.canonical_ir.graph import Graph
    g = Graph("ln")
    g.add_input("x", dtype, (2, 3, 8))
    outs = ["y", "mean", "inv"] if stats else ["y"]
    g.add_node("LayerNormalization", ["x", g.add_const(w(8).astype(dtype)), g.add_const(w(8).astype(dtype))],
               outs, {"axis": -1})
    g.outputs = outs
    graph_infer(g)
    feeds = {"x": RNG.standard_normal((2, 3, 8)).astype(dtype)}
    expected = run(g, feeds)
    h = g.copy()
    apply_rules(h, [LayerNormDecompose()])
    h.validate()
    assert "LayerNormalization" not in ops(h)
    assert_same(expected, run(h, feeds), rtol=1e-5 if dtype == np.float32 else 2e-3)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_batchnorm_becomes_mul_add_along_the_channel_axis(layout: str) -> None:
    shape = (2, 3, 4, 4) if layout == "NCHW" else (2, 4, 4, 3)
    g, feeds = graph_of(shape, lambda g, x: bn(g, x, 3, layout))
    assert ops(check_pass(g, feeds, lambda h: apply_rules(h, [BatchNormToMulAdd()]))) == ["Mul", "Add"]


@pytest.mark.parametrize("ta,tb,alpha,beta,const_b", [(0, 0, 1.0, 1.0, True), (1, 1, 0.5, 2.0, True),
                                                       (0, 1, 2.0, 0.5, False)])
def test_gemm_becomes_matmul(ta, tb, alpha, beta, const_b) -> None:
    def build(g, x):
        b = g.add_const(w(5, 4) if tb else w(4, 5))
        if not const_b:
            b = node(g, "Relu", [b])
        return node(g, "Gemm", [x, b, g.add_const(w(5))], transA=ta, transB=tb, alpha=alpha, beta=beta)
    g, feeds = graph_of((4, 3) if ta else (3, 4), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, [GemmToMatMul()]))
    assert "Gemm" not in ops(after) and "MatMul" in ops(after)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_grouped_conv_splits_into_plain_convs(layout: str) -> None:
    def build(g, x):
        wt = w(6, 2, 3, 3) if layout == "NCHW" else w(6, 3, 3, 2)
        return node(g, "Conv", [x, g.add_const(wt), g.add_const(w(6))], group=2, pads=[1] * 4, layout=layout)
    g, feeds = graph_of((1, 4, 5, 5) if layout == "NCHW" else (1, 5, 5, 4), build)
    after = check_pass(g, feeds, lambda h: apply_rules(h, [GroupedConvSplit()]))
    assert ops(after) == ["Split", "Conv", "Conv", "Concat"]
    dw, _ = graph_of((1, 4, 5, 5), lambda g, x: node(g, "Conv", [x, g.add_const(w(4, 1, 3, 3))], group=4))
    assert explain(dw, [GroupedConvSplit()], dw.nodes[0]) == {"GroupedConvSplit": "not a grouped convolution"}


@pytest.mark.parametrize("layout,axes,keep", [("NHWC", [1, 2], 0), ("NHWC", [1, 2], 1), ("NCHW", [2, 3], 0),
                                              ("NCHW", [-1, -2], 1)])
def test_reduce_mean_over_space_is_global_pooling(layout: str, axes: list, keep: int) -> None:
    g, feeds = graph_of(("N", 4, 4, 3),
                        lambda g, x: node(g, "ReduceMean", [x, const(g, axes)], keepdims=keep))
    after = check_pass(g, feeds, lambda h: apply_rules(h, [ReduceMeanToGlobalPool(layout)]))
    assert after.nodes[0].op == "GlobalAveragePool"
    other = "NCHW" if layout == "NHWC" else "NHWC"
    why = explain(g, [ReduceMeanToGlobalPool(other)], g.nodes[0])
    assert "not the spatial axes" in why["ReduceMeanToGlobalPool"]
