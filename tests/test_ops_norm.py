"""The norm family against onnxruntime.

Every case runs the ONNX model in onnxruntime, the IR in the reference interpreter and the re-exported
model in onnxruntime (``check_onnx_model``), at the model's opset and at older target opsets where the
exporter writes a decomposition. Channels-last cases build an NHWC IR graph and compare the interpreter
and its ONNX export (Mul/Add or Transposes) with onnxruntime on the NCHW model.
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
from convertkit.canonical_ir.ops import has_op
from convertkit.errors import ConvertError, ModelFileError, ShapeError
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize
from tests.onnx_check import check_onnx_model, make_model, ort_run

RNG = np.random.default_rng(0)
TOL = dict(rtol=1e-5, atol=1e-5)
F16 = dict(rtol=5e-3, atol=5e-3)





def randn(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def elem(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def check_x(op: str, x: np.ndarray, *, opset: int, inits: dict | None = None, shape: list | None = None,
            n_out: int = 1, out_types: list[int] | None = None, export_opsets=(None,), tol=None,
            **attrs) -> None:
    """``op`` on input ``x`` (declared with ``shape``, e.g. a symbolic batch) plus initializers,
    checked at the model's opset and each of ``export_opsets``."""
    m = make_model(op, [("x", shape or list(x.shape), elem(x.dtype))], opset=opset, n_out=n_out,
                   inits=inits, out_types=out_types, **attrs)
    for target in export_opsets:
        check_onnx_model(m, {"x": x}, opset=target, **(tol or TOL))


def per_channel(c: int, dtype=np.float32, var: bool = False) -> np.ndarray:
    return (RNG.random(c) + 0.5).astype(dtype) if var else randn(c, dtype=dtype)


def bn_params(c: int, dtype=np.float32) -> dict[str, np.ndarray]:
    return {"scale": per_channel(c, dtype), "B": per_channel(c, dtype), "mean": per_channel(c, dtype),
            "var": per_channel(c, dtype, var=True)}


# --------------------------------------------------------------------------- channels-last
def to_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def check_nhwc(op: str, x: np.ndarray, params: dict[str, np.ndarray], *, opset: int,
               params_as_inputs: bool = False, targets=(11, 17), tol=None, **attrs) -> None:
    """NHWC IR node == onnxruntime on the NCHW node, in the interpreter and exported to ONNX."""
    tol = tol or TOL
    m = make_model(op, [("x", list(x.shape), elem(x.dtype))], opset=opset, inits=params, **attrs)
    expected = to_last(ort_run(m, {"x": x})[0])
    xl = to_last(x)
    g = Graph("nhwc")
    g.add_input("x", xl.dtype, ("N", *xl.shape[1:]))
    feeds = {"x": xl}
    names = ["x"]
    for k, v in params.items():
        if params_as_inputs:
            names.append(g.add_input(k, v.dtype, v.shape))
            feeds[k] = v
        else:
            names.append(g.add_const(v, k))
    g.add_node(op, names, ["y"], {**attrs, "layout": "NHWC"})
    g.outputs.append("y")
    g = normalize(g, validate=True)
    np.testing.assert_allclose(run(g, feeds)["y"], expected, err_msg="interpreter", **tol)
    for target in targets:
        model = to_model(g, opset=target)
        onnx.checker.check_model(model, full_check=True)
        np.testing.assert_allclose(ort_run(model, feeds)[0], expected, err_msg=f"opset {target}", **tol)


# ------------------------------------------------------------------------- BatchNormalization
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2)])
@pytest.mark.parametrize("opset", [11, 14, 15])
def test_batchnorm(shape, opset):
    x = randn(*shape)
    check_x("BatchNormalization", x, opset=opset, inits=bn_params(shape[1]), shape=["N", *shape[1:]],
            epsilon=1e-3, export_opsets=(None, 11))


def test_batchnorm_opset11_attributes_and_default_epsilon():
    """momentum (training only) is accepted and dropped; epsilon defaults to 1e-5."""
    check_x("BatchNormalization", randn(2, 4, 3, 3), opset=11, inits=bn_params(4), momentum=0.7)


def test_batchnorm_params_as_inputs():
    c = 3
    p = bn_params(c)
    m = make_model("BatchNormalization", [("x", ["N", c, 4], TP.FLOAT)] +
                   [(k, [c], TP.FLOAT) for k in p], opset=15)
    check_onnx_model(m, {"x": randn(2, c, 4), **p}, **TOL)


def test_batchnorm_float16():
    check_x("BatchNormalization", randn(2, 3, 4, 4, dtype=np.float16), opset=15,
            inits=bn_params(3, np.float16), export_opsets=(None, 11), tol=F16)


def test_batchnorm_float16_input_float32_statistics():
    """BatchNormalization-15 takes float32 parameters for float16 X; before 15 they become float16."""
    check_x("BatchNormalization", randn(2, 3, 4, 4, dtype=np.float16), opset=15, inits=bn_params(3),
            export_opsets=(None, 11, 14), tol=F16)
    m = make_model("BatchNormalization", [("x", [2, 3, 4], TP.FLOAT16)] + [(k, [3], TP.FLOAT) for k in "smbv"],
                   opset=15)
    p = bn_params(3)
    feeds = {"x": randn(2, 3, 4, dtype=np.float16), "s": p["scale"], "m": p["mean"], "b": p["B"], "v": p["var"]}
    for target in (None, 11):
        check_onnx_model(m, feeds, opset=target, **F16)


@pytest.mark.parametrize("training", [dict(training_mode=1, n_out=3, opset=15), dict(n_out=5, opset=11)],
                         ids=["training_mode", "opset11_outputs"])
def test_batchnorm_training_mode_refused(training):
    kw = dict(training)
    m = make_model("BatchNormalization", [("x", [2, 3, 4], TP.FLOAT)], inits=bn_params(3), **kw)
    with pytest.raises(ModelFileError, match="training mode"):
        from_model(m)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 2)])
@pytest.mark.parametrize("params_as_inputs", [False, True], ids=["const", "inputs"])
def test_batchnorm_nhwc(shape, params_as_inputs):
    check_nhwc("BatchNormalization", randn(*shape), bn_params(shape[1]), opset=15,
               params_as_inputs=params_as_inputs, epsilon=1e-2)


def test_batchnorm_nhwc_exports_without_transposes():
    g = Graph("bn")
    g.add_input("x", np.float32, ("N", 4, 4, 3))
    p = bn_params(3)
    g.add_node("BatchNormalization", ["x", *(g.add_const(v, k) for k, v in p.items())], ["y"],
               {"layout": "NHWC"})
    g.outputs.append("y")
    ops = [n.op_type for n in to_model(normalize(g), opset=17).graph.node]
    assert ops == ["Mul", "Add"]


# --------------------------------------------------------------------- InstanceNormalization
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 4)])
@pytest.mark.parametrize("eps", [None, 1e-2])
def test_instancenorm(shape, eps):
    attrs = {} if eps is None else {"epsilon": eps}
    c = shape[1]
    check_x("InstanceNormalization", randn(*shape), opset=22, shape=["N", *shape[1:]],
            inits={"s": per_channel(c), "b": per_channel(c)}, export_opsets=(None, 11), **attrs)


def test_instancenorm_float16():
    check_x("InstanceNormalization", randn(2, 3, 6, 6, dtype=np.float16), opset=22,
            inits={"s": per_channel(3, np.float16), "b": per_channel(3, np.float16)}, tol=F16)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5)])
def test_instancenorm_nhwc(shape):
    c = shape[1]
    check_nhwc("InstanceNormalization", randn(*shape), {"s": per_channel(c), "b": per_channel(c)},
               opset=22, epsilon=1e-3)


# ------------------------------------------------------------------------ LayerNormalization
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_layernorm(axis, with_bias):
    shape = (2, 3, 5)
    norm_shape = shape[axis % 3:]
    inits = {"s": randn(*norm_shape)}
    if with_bias:
        inits["b"] = randn(*norm_shape)
    check_x("LayerNormalization", randn(*shape), opset=17, inits=inits,
            shape=["N", 3, 5] if axis % 3 else None, axis=axis, epsilon=1e-3,
            export_opsets=(None, 11, 13, 16))


@pytest.mark.parametrize("target", [None, 11, 16])
def test_layernorm_mean_and_invstddev_outputs(target):
    check_x("LayerNormalization", randn(2, 4, 6), opset=17, inits={"s": randn(6), "b": randn(6)}, n_out=3,
            out_types=[TP.FLOAT] * 3, axis=-1, export_opsets=(target,))


def test_layernorm_scale_broadcasts():
    check_x("LayerNormalization", randn(2, 4, 6), opset=17, inits={"s": randn(1, 6)}, axis=-2,
            export_opsets=(None, 13))


@pytest.mark.parametrize("target", [None, 13])
def test_layernorm_float16(target):
    """Stage one runs in float32 (the stash type), also in the decomposition."""
    x = randn(3, 16, dtype=np.float16) * 4 + 3
    check_x("LayerNormalization", x, opset=17, inits={"s": randn(16, dtype=np.float16),
            "b": randn(16, dtype=np.float16)}, n_out=3, out_types=[TP.FLOAT16, TP.FLOAT, TP.FLOAT],
            export_opsets=(target,), tol=F16)


@pytest.mark.parametrize("target", [None, 13])
def test_layernorm_float64(target):
    check_x("LayerNormalization", randn(3, 8, dtype=np.float64), opset=17,
            inits={"s": randn(8, dtype=np.float64)}, export_opsets=(target,))


def test_layernorm_unsupported_stash_type():
    m = make_model("LayerNormalization", [("x", [2, 3], TP.FLOAT)], opset=17, inits={"s": randn(3)},
                   stash_type=16)
    with pytest.raises(ShapeError, match="stash_type"):
        normalize(from_model(m))


# ------------------------------------------------------------------------ GroupNormalization
@pytest.mark.parametrize("groups", [1, 2, 6])
@pytest.mark.parametrize("shape", [(2, 6, 5), (2, 6, 3, 4), (2, 6)])
def test_groupnorm(groups, shape):
    c = shape[1]
    check_x("GroupNormalization", randn(*shape), opset=21, shape=["N", *shape[1:]],
            inits={"s": per_channel(c), "b": per_channel(c)}, num_groups=groups,
            export_opsets=(None, 11, 18, 20))


def test_groupnorm_epsilon_and_float16():
    x = randn(2, 4, 3, 3, dtype=np.float16) * 3 + 1
    check_x("GroupNormalization", x, opset=21, inits={"s": per_channel(4, np.float16),
            "b": per_channel(4, np.float16)}, num_groups=2, epsilon=1e-2, export_opsets=(None, 13), tol=F16)


def test_groupnorm_scale_as_input_exported_before_21():
    m = make_model("GroupNormalization", [("x", ["N", 4, 5], TP.FLOAT), ("s", [4], TP.FLOAT),
                                          ("b", [4], TP.FLOAT)], opset=21, num_groups=2)
    feeds = {"x": randn(2, 4, 5), "s": per_channel(4), "b": per_channel(4)}
    for target in (None, 17, 20):
        check_onnx_model(m, feeds, opset=target, **TOL)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_groupnorm_opset18_per_group_scale(groups):
    """Opsets 18-20 took scale and bias per group: imported as per channel, exported either way."""
    check_x("GroupNormalization", randn(2, 4, 3, 3), opset=18, shape=["N", 4, 3, 3],
            inits={"s": per_channel(groups), "b": per_channel(groups)}, num_groups=groups,
            export_opsets=(None, 13, 21))


@pytest.mark.skipif(not has_op("Gather"), reason="needs the shape_ops family's Gather")
def test_groupnorm_opset18_per_group_scale_as_input():
    m = make_model("GroupNormalization", [("x", [2, 6, 5], TP.FLOAT), ("s", [3], TP.FLOAT),
                                          ("b", [3], TP.FLOAT)], opset=18, num_groups=3)
    check_onnx_model(m, {"x": randn(2, 6, 5), "s": per_channel(3), "b": per_channel(3)}, **TOL)


def test_groupnorm_channels_not_divisible():
    m = make_model("GroupNormalization", [("x", [2, 6, 5], TP.FLOAT)], opset=21,
                   inits={"s": per_channel(6), "b": per_channel(6)}, num_groups=4)
    with pytest.raises(ShapeError, match="groups"):
        normalize(from_model(m))


# -------------------------------------------------------------------------- RMSNormalization
@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_rmsnorm(axis):
    shape = (2, 3, 5)
    check_x("RMSNormalization", randn(*shape) + 1, opset=23, inits={"s": randn(*shape[axis % 3:])},
            shape=["N", 3, 5] if axis % 3 else None, axis=axis, epsilon=1e-3,
            export_opsets=(None, 11, 17, 22))


def test_rmsnorm_float16_and_broadcast_scale():
    check_x("RMSNormalization", randn(3, 4, 8, dtype=np.float16), opset=23,
            inits={"s": randn(1, 8, dtype=np.float16)}, axis=1, export_opsets=(None, 13), tol=F16)


# ------------------------------------------------------------------------------------- LRN
@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn_sizes(size):
    check_x("LRN", randn(2, 6, 3, 4), opset=13, shape=["N", 6, 3, 4], size=size, export_opsets=(None, 11))


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_sizes(size):
    """onnxruntime refuses even sizes; the oracle is the ONNX node test's own loop: the window around c
    is c - floor((size-1)/2) .. c + ceil((size-1)/2)."""
    x = randn(2, 5, 2, 3)
    alpha, beta, bias = 0.3, 0.75, 1.0
    square_sum = np.zeros_like(x)
    for n, c, h, w in np.ndindex(x.shape):
        lo, hi = max(0, c - (size - 1) // 2), min(5, c + -(-(size - 1) // 2) + 1)
        square_sum[n, c, h, w] = np.sum(x[n, lo:hi, h, w] ** 2)
    expected = x / (bias + alpha / size * square_sum) ** beta
    m = make_model("LRN", [("x", [2, 5, 2, 3], TP.FLOAT)], opset=13, size=size, alpha=alpha)
    g = normalize(from_model(m), validate=True)
    np.testing.assert_allclose(run(g, {"x": x})["y0"], expected, **TOL)
    onnx.checker.check_model(to_model(g, opset=13), full_check=True)


def test_lrn_attributes_and_float16():
    check_x("LRN", randn(1, 5, 4, 4), opset=13, size=3, alpha=0.02, beta=0.5, bias=2.0)
    check_x("LRN", randn(1, 5, 4, 4, dtype=np.float16), opset=13, size=3, alpha=0.02, tol=F16)


def test_lrn_nhwc():
    check_nhwc("LRN", randn(2, 6, 3, 4), {}, opset=13, size=3, alpha=0.01)


# ------------------------------------------------------------------------ LpNormalization
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lpnorm(p, axis):
    x = randn(3, 4, 5)
    x[1, :, 2] = 0.0
    x[:, 1, :] = 0.0  # zero norms along every axis: the output is 0 there
    x[..., 0] = 0.0
    check_x("LpNormalization", x, opset=22, p=p, axis=axis, export_opsets=(None, 11))


def test_lpnorm_refuses_other_p():
    m = make_model("LpNormalization", [("x", [2, 3], TP.FLOAT)], opset=22, p=3)
    with pytest.raises(ShapeError, match="p=3"):
        normalize(from_model(m))


# -------------------------------------------------------------- MeanVarianceNormalization
@pytest.mark.parametrize("axes", [None, [1], [2, 3], [0, 1, 2, 3], [-1]])
def test_mvn(axes):
    attrs = {} if axes is None else {"axes": axes}
    check_x("MeanVarianceNormalization", randn(2, 3, 4, 5) * 3 + 1, opset=13, shape=["N", 3, 4, 5],
            export_opsets=(None, 11), **attrs)


def test_mvn_repeated_axes_refused():
    m = make_model("MeanVarianceNormalization", [("x", [2, 3], TP.FLOAT)], opset=13, axes=[1, -1])
    with pytest.raises(ConvertError, match="repeat"):
        normalize(from_model(m))
