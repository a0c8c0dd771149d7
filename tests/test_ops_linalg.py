"""The linalg family (MatMul, Gemm, MatMulInteger, Einsum, Det, Attention) against onnxruntime.

Each case runs the ONNX model in onnxruntime, the IR in the reference interpreter and the re-exported
model in onnxruntime (``check_onnx_model``); MAC counts are checked against hand-computed values.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.canonical_ir.passes import infer_shapes
from convertkit.errors import ConvertError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, ort_run
from tests.test_ops_reduce import node_model

RNG = np.random.default_rng(11)


def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def elem(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


# ------------------------------------------------------------------------------------ MatMul
@pytest.mark.parametrize("a,b", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)),
                                 ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 6))])
def test_matmul_shapes(a, b):
    m = node_model("MatMul", [("a", list(a), TP.FLOAT), ("b", list(b), TP.FLOAT)], [("y", TP.FLOAT)],
                   opset=13)
    check_onnx_model(m, {"a": randn(*a), "b": randn(*b)})


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64, np.float16])
def test_matmul_dtypes(dtype):
    m = node_model("MatMul", [("a", [3, 4], elem(dtype)), ("b", [4, 2], elem(dtype))], [("y", elem(dtype))],
                   opset=13)
    mk = (lambda *s: RNG.integers(-50, 50, s).astype(dtype)) if np.dtype(dtype).kind == "i" else \
        (lambda *s: randn(*s, dtype=dtype))
    check_onnx_model(m, {"a": mk(3, 4), "b": mk(4, 2)}, rtol=1e-3 if dtype == np.float16 else 1e-5)


def test_matmul_symbolic_batch_and_weights():
    w = randn(16, 8)
    m = node_model("MatMul", [("x", ["batch", "seq", 16], TP.FLOAT)], [("y", TP.FLOAT)], inits={"w": w})
    check_onnx_model(m, {"x": randn(2, 5, 16)})
    check_onnx_model(m, {"x": randn(2, 5, 16)}, opset=11)
    g = normalize(from_model(m))
    assert g.tensor("y").shape == ("batch", "seq", 8)


def test_matmul_inner_mismatch_is_a_shape_error():
    m = node_model("MatMul", [("a", [3, 4], TP.FLOAT), ("b", [5, 2], TP.FLOAT)], [("y", TP.FLOAT)])
    with pytest.raises(ConvertError, match="inner dimensions"):
        normalize(from_model(m))


# -------------------------------------------------------------------------------------- Gemm
@pytest.mark.parametrize("c_shape", [None, (), (1,), (5,), (3, 1), (3, 5)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(c_shape, trans_a, trans_b):
    a = randn(4, 3) if trans_a else randn(3, 4)
    b = randn(5, 4) if trans_b else randn(4, 5)
    inits = {"b": b} if c_shape is None else {"b": b, "c": randn(*c_shape)}
    m = node_model("Gemm", [("a", list(a.shape), TP.FLOAT)], [("y", TP.FLOAT)], inits=inits, opset=13,
                   transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0)
    check_onnx_model(m, {"a": a})
    check_onnx_model(m, {"a": a}, opset=11)


def test_gemm_defaults_with_runtime_operands_and_batch():
    m = node_model("Gemm", [("a", ["N", 4], TP.FLOAT), ("b", [4, 6], TP.FLOAT), ("c", [6], TP.FLOAT)],
                   [("y", TP.FLOAT)], opset=11)
    check_onnx_model(m, {"a": randn(3, 4), "b": randn(4, 6), "c": randn(6)})


# ----------------------------------------------------------------------------- MatMulInteger
@pytest.mark.parametrize("a_dt,b_dt", [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.int8)])
@pytest.mark.parametrize("zp_kind", ["none", "scalar", "per_row_col"])
def test_matmul_integer(a_dt, b_dt, zp_kind):
    info_a, info_b = np.iinfo(a_dt), np.iinfo(b_dt)
    a = RNG.integers(info_a.min, info_a.max + 1, (2, 3, 8)).astype(a_dt)
    b = RNG.integers(info_b.min, info_b.max + 1, (8, 5)).astype(b_dt)
    inits = {"b": b}
    if zp_kind == "scalar":
        inits.update(azp=np.array(info_a.max // 2, a_dt), bzp=np.array(3, b_dt))
    elif zp_kind == "per_row_col":  # onnxruntime takes a per-column zero point for B
        inits.update(azp=np.array(7, a_dt), bzp=RNG.integers(0, 9, 5).astype(b_dt))
    m = node_model("MatMulInteger", [("a", [2, 3, 8], elem(a_dt))], [("y", TP.INT32)], inits=inits, opset=10)
    check_onnx_model(m, {"a": a}, rtol=0, atol=0, opset=11)


# ------------------------------------------------------------------------------------ Einsum
@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]), ("ii", [(4, 4)]), ("i,i", [(5,), (5,)]), ("i,j->ij", [(3,), (4,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]), ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),
    ("...ii->...i", [(2, 3, 3)]), ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("Ab,bC->AC", [(3, 4), (4, 2)]), ("ba", [(3, 4)]), (" ij , jk -> ik ", [(3, 4), (4, 5)])])
def test_einsum(eq, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    m = node_model("Einsum", [(n, list(s), TP.FLOAT) for n, s in zip(names, shapes)], [("y", TP.FLOAT)],
                   opset=12, equation=eq)
    check_onnx_model(m, {n: randn(*s) for n, s in zip(names, shapes)})


@pytest.mark.parametrize("implicit,explicit",
                         [("bA", "bA->Ab"), ("Ab,bC", "Ab,bC->AC"), ("zA,Az", "zA,Az->")])
def test_einsum_implicit_output_orders_labels_by_ascii(implicit, explicit):
    """onnxruntime rejects implicit equations with upper-case labels; its explicit form is the oracle,
    and the export spells the output out so the re-exported model runs."""
    shapes = {"bA": [(3, 4)], "Ab,bC": [(3, 4), (4, 2)], "zA,Az": [(2, 3), (3, 2)]}[implicit]
    names = [f"x{i}" for i in range(len(shapes))]
    feeds = {n: randn(*s) for n, s in zip(names, shapes)}
    inputs = [(n, list(s), TP.FLOAT) for n, s in zip(names, shapes)]
    expected = ort_run(node_model("Einsum", inputs, [("y", TP.FLOAT)], opset=12, equation=explicit), feeds)
    g = normalize(from_model(node_model("Einsum", inputs, [("y", TP.FLOAT)], opset=12, equation=implicit)))
    np.testing.assert_allclose(run(g, feeds)["y"], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ort_run(to_model(g, 12), feeds)[0], expected[0], rtol=1e-5, atol=1e-6)


def test_einsum_integer_and_symbolic():
    m = node_model("Einsum", [("x", ["N", 3, 4], TP.INT64), ("y", [4, 2], TP.INT64)], [("z", TP.INT64)],
                   opset=12, equation="nij,jk->nki")
    check_onnx_model(m, {"x": RNG.integers(-9, 9, (2, 3, 4)), "y": RNG.integers(-9, 9, (4, 2))}, rtol=0)
    assert normalize(from_model(m)).tensor("z").shape == ("N", 2, 3)


def test_einsum_needs_opset_12():
    m = node_model("Einsum", [("x", [3, 4], TP.FLOAT)], [("y", TP.FLOAT)], opset=12, equation="ij->ji")
    with pytest.raises(ConvertError, match="Einsum"):
        to_model(normalize(from_model(m)), opset=11)


# --------------------------------------------------------------------------------------- Det
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (2, 3, 1, 1)])
def test_det(shape):
    m = node_model("Det", [("x", list(shape), TP.FLOAT)], [("y", TP.FLOAT)], opset=11)
    check_onnx_model(m, {"x": randn(*shape)}, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------- Attention
def attention_model(q, k, v, *, mask=None, past=None, opset=23, outputs=1, **attrs):
    inputs = [("Q", list(q.shape), elem(q.dtype)), ("K", list(k.shape), elem(k.dtype)),
              ("V", list(v.shape), elem(v.dtype))]
    feeds = {"Q": q, "K": k, "V": v}
    names = ["Q", "K", "V"]
    if mask is not None:
        inputs.append(("M", list(mask.shape), elem(mask.dtype)))
        feeds["M"] = mask
    names.append("M" if mask is not None else "")
    if past is not None:
        inputs += [("PK", list(past[0].shape), TP.FLOAT), ("PV", list(past[1].shape), TP.FLOAT)]
        feeds.update(PK=past[0], PV=past[1])
        names += ["PK", "PV"]
    while names[-1] == "":
        names.pop()
    outs = [("Y", elem(q.dtype)), ("present_key", TP.FLOAT), ("present_value", TP.FLOAT)][:outputs]
    return node_model("Attention", inputs, outs, opset=opset, input_names=names, **attrs), feeds


@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"scale": 0.3}, {"softcap": 2.0},
                                   {"is_causal": 1, "softcap": 3.0, "scale": 0.2}])
def test_attention_4d(attrs):
    m, feeds = attention_model(randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5), **attrs)
    check_onnx_model(m, feeds, rtol=1e-4, atol=1e-5)


def test_attention_gqa_3d_and_float_mask():
    q, k, v = randn(2, 4, 6 * 8), randn(2, 5, 2 * 8), randn(2, 5, 2 * 3)
    m, feeds = attention_model(q, k, v, mask=randn(4, 5), q_num_heads=6, kv_num_heads=2)
    check_onnx_model(m, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [0, 1])
def test_attention_bool_mask_and_kv_cache(causal):
    q, k, v = randn(1, 2, 3, 4), randn(1, 2, 3, 4), randn(1, 2, 3, 4)
    mask = RNG.random((1, 1, 3, 8)) > 0.3
    mask[..., 0] = True  # keep one key per row attendable
    past = (randn(1, 2, 5, 4), randn(1, 2, 5, 4))
    m, feeds = attention_model(q, k, v, mask=mask, past=past, outputs=3, is_causal=causal)
    check_onnx_model(m, feeds, rtol=1e-4, atol=1e-5)


def test_attention_symbolic_batch_and_sequence():
    m = node_model("Attention", [("Q", ["B", 2, "S", 4], TP.FLOAT), ("K", ["B", 2, "S", 4], TP.FLOAT),
                                 ("V", ["B", 2, "S", 4], TP.FLOAT)], [("Y", TP.FLOAT)], opset=23, is_causal=1)
    check_onnx_model(m, {n: randn(3, 2, 5, 4) for n in "QKV"}, rtol=1e-4, atol=1e-5)
    assert normalize(from_model(m)).tensor("Y").shape == ("B", 2, "S", 4)


def test_attention_window_before_opset_25_is_decomposed():
    m, feeds = attention_model(randn(1, 1, 4, 4), randn(1, 1, 4, 4), randn(1, 1, 4, 4), opset=25,
                               left_window_size=1)
    g = normalize(from_model(m))
    assert [n.op_type for n in to_model(g, opset=25).graph.node] == ["Attention"]
    lowered = to_model(g, opset=24)
    assert "Attention" not in {n.op_type for n in lowered.graph.node}
    from onnx.reference import ReferenceEvaluator

    expected = ReferenceEvaluator(m).run(None, feeds)[0]
    np.testing.assert_allclose(ort_run(lowered, feeds)[0], expected, rtol=1e-5, atol=1e-6)


def test_attention_window_matches_onnx_reference():
    """onnxruntime lacks the opset-25 window attributes; onnx's reference implementation has them."""
    from onnx.reference import ReferenceEvaluator

    m, feeds = attention_model(randn(2, 2, 5, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4), opset=25,
                               is_causal=1, left_window_size=2)
    expected = ReferenceEvaluator(m).run(None, feeds)[0]
    got = run(normalize(from_model(m)), feeds)["Y"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- Attention written for opsets before 23
@pytest.mark.parametrize("opset", [11, 17, 22])
@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1, "scale": 0.2}, {"softcap": 2.0, "is_causal": 1},
                                   {"softmax_precision": TP.DOUBLE}])
def test_attention_decomposed_4d(opset, attrs):
    m, feeds = attention_model(randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5), **attrs)
    check_onnx_model(m, feeds, rtol=1e-4, atol=1e-5, opset=opset)


@pytest.mark.parametrize("opset", [13, 18])
def test_attention_decomposed_gqa_3d_mask_cache_and_all_outputs(opset):
    q, k, v = randn(1, 3, 4 * 8), randn(1, 3, 2 * 8), randn(1, 3, 2 * 5)
    past = (randn(1, 2, 4, 8), randn(1, 2, 4, 5))
    mask = RNG.random((1, 1, 3, 7)) > 0.4
    mask[0, 0, 1] = False  # a query row with no attendable key: zeros, not NaN
    for mode in range(4):
        m, feeds = attention_model(q, k, v, mask=mask, past=past, outputs=3, q_num_heads=4, kv_num_heads=2,
                                   is_causal=1, qk_matmul_output_mode=mode)
        m.graph.node[0].output.append("qk")
        m.graph.output.append(helper.make_tensor_value_info("qk", TP.FLOAT, None))
        if mode != 2:
            check_onnx_model(m, feeds, rtol=1e-4, atol=1e-5, opset=opset)
            continue
        # onnxruntime writes the float minimum where mode 2's masked scores are -inf; onnx's reference
        # implementation follows the spec
        from onnx.reference import ReferenceEvaluator

        expected = ReferenceEvaluator(m).run(None, feeds)
        g = normalize(from_model(m))
        got = run(g, feeds)
        for name, exp, rt in zip(g.outputs, expected, ort_run(to_model(g, opset), feeds)):
            np.testing.assert_allclose(got[name], exp, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(rt, exp, rtol=1e-4, atol=1e-5)


def test_attention_decomposed_pads_a_short_mask():
    """onnxruntime's Attention rejects a mask shorter than the keys; onnx's reference is the oracle."""
    from onnx.reference import ReferenceEvaluator

    m, feeds = attention_model(randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4), mask=randn(3, 3))
    expected = ReferenceEvaluator(m).run(None, feeds)[0]
    exported = to_model(normalize(from_model(m)), opset=17)
    np.testing.assert_allclose(ort_run(exported, feeds)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"is_causal": 1, "left_window_size": 2},
                                   {"left_window_size": 1, "right_window_size": 1}])
def test_attention_decomposed_external_cache_and_windows(attrs):
    """nonpad_kv_seqlen and windows (opsets 24, 25) at opset 17; onnx's reference is the oracle, as
    onnxruntime lacks the window attributes."""
    from onnx.reference import ReferenceEvaluator

    q, k, v = randn(2, 2, 3, 4), randn(2, 2, 6, 4), randn(2, 2, 6, 4)
    lengths = np.array([4, 6], np.int64)
    inputs = [("Q", [2, 2, 3, 4], TP.FLOAT), ("K", [2, 2, 6, 4], TP.FLOAT), ("V", [2, 2, 6, 4], TP.FLOAT),
              ("L", [2], TP.INT64)]
    m = node_model("Attention", inputs, [("Y", TP.FLOAT)], opset=25,
                   input_names=["Q", "K", "V", "", "", "", "L"], **attrs)
    feeds = {"Q": q, "K": k, "V": v, "L": lengths}
    expected = ReferenceEvaluator(m).run(None, feeds)[0]
    g = normalize(from_model(m))
    np.testing.assert_allclose(run(g, feeds)["Y"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ort_run(to_model(g, opset=17), feeds)[0], expected, rtol=1e-5, atol=1e-6)


def test_attention_decomposed_needs_static_sizes():
    m = node_model("Attention", [("Q", ["B", 2, "S", 4], TP.FLOAT), ("K", ["B", 2, "S", 4], TP.FLOAT),
                                 ("V", ["B", 2, "S", 4], TP.FLOAT)], [("Y", TP.FLOAT)], opset=23, is_causal=1)
    g = normalize(from_model(m))
    with pytest.raises(ConvertError, match="static sequence lengths"):
        to_model(g, opset=17)
    m = node_model("Attention", [("Q", ["B", 2, 5, 4], TP.FLOAT), ("K", ["B", 2, 5, 4], TP.FLOAT),
                                 ("V", ["B", 2, 5, 4], TP.FLOAT)], [("Y", TP.FLOAT)], opset=23, is_causal=1)
    check_onnx_model(m, {n: randn(3, 2, 5, 4) for n in "QKV"}, rtol=1e-4, atol=1e-5, opset=17)


# ------------------------------------------------------------------------------------- MACs
def _macs(op: str, shapes: list[tuple], attrs: dict | None = None) -> int:
    g = Graph("g")
    names = [g.add_input(f"x{i}", np.float32, s) for i, s in enumerate(shapes)]
    node = g.add_node(op, names, ["y"], attrs or {})
    g.outputs = ["y"]
    infer_shapes(g)
    schema = get_schema(op)
    return schema.macs(InferContext(g, node, schema))


def test_macs():
    assert _macs("MatMul", [(2, 3, 4), (4, 5)]) == 2 * 3 * 5 * 4
    assert _macs("MatMul", [("N", 3, 4), (4, 5)]) == 3 * 5 * 4  # symbolic dims count as 1
    assert _macs("Gemm", [(4, 3), (5, 4)], {"transA": 1, "transB": 1}) == 3 * 5 * 4
    assert _macs("Einsum", [(2, 3, 4), (2, 4, 5)], {"equation": "bij,bjk->bik"}) == 2 * 3 * 4 * 5
    assert _macs("Einsum", [(3, 4)], {"equation": "ij->ji"}) == 0
    assert _macs("Attention", [(1, 2, 3, 8), (1, 2, 6, 8), (1, 2, 6, 4)]) == 1 * 2 * 3 * 6 * (8 + 4)
