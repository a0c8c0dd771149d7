"""Activation ops: pointwise nonlinearities and the softmax family, with ONNX's newest semantics.

Float kernels compute in float64 and round once to the input's dtype, so float32 results are the
correctly rounded value (onnxruntime's float32 arithmetic stays within a few ulps of it) and float16
inputs keep float16 outputs. Attribute defaults are ONNX's float32 values, read back as Python floats,
so a default and an explicit ``alpha=0.01`` from an ONNX file are the same number.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from convertkit.canonical_ir.ops.registry import (
    InferContext, TensorType, broadcast_shapes, normalize_axis, register)

F64 = np.float64


def f32(value: float) -> float:
    """An attribute default as ONNX stores it (a float32), as a Python float."""
    return float(np.float32(value))


# ------------------------------------------------------------------------------ inference
def _typed_same(kinds: str, what: str) -> Callable[[InferContext], list[TensorType]]:
    """Output has input 0's type; the input dtype's kind must be one of ``kinds``."""
    def infer(ctx: InferContext) -> list[TensorType]:
        dt = ctx.dtype(0)
        if dt.kind not in kinds:
            raise ctx.error(f"{ctx.schema.name} takes {what} input, got {dt}")
        return [(dt, ctx.shape(0))]
    return infer


float_same = _typed_same("f", "float")
numeric_same = _typed_same("fiu", "numeric")


def _axis_same(ctx: InferContext) -> list[TensorType]:
    """Softmax family: output like the input, after checking the axis against the rank."""
    out = float_same(ctx)
    normalize_axis(ctx.attrs["axis"], ctx.rank(0), ctx)
    return out


def _clip_infer(ctx: InferContext) -> list[TensorType]:
    out = numeric_same(ctx)
    for i, name in ((1, "min"), (2, "max")):
        if not ctx.has(i):
            continue
        if ctx.dtype(i) != ctx.dtype(0):
            raise ctx.error(f"Clip {name} has dtype {ctx.dtype(i)}, input has {ctx.dtype(0)}")
        shape = ctx.shape(i)
        if any(isinstance(d, int) and d != 1 for d in shape) or len(shape) > 1:
            raise ctx.error(f"Clip {name} must be a scalar, got shape {list(shape)}")
    return out


def _prelu_infer(ctx: InferContext) -> list[TensorType]:
    """PRelu: the slope broadcasts one way, onto X; Y has X's type."""
    out = numeric_same(ctx)
    x, slope = ctx.shape(0), ctx.shape(1)
    if len(slope) > len(x) or broadcast_shapes(ctx, x, slope) != tuple(x):
        raise ctx.error(f"slope shape {list(slope)} does not broadcast onto input shape {list(x)}")
    if ctx.dtype(1) != ctx.dtype(0):
        raise ctx.error(f"PRelu slope has dtype {ctx.dtype(1)}, input has {ctx.dtype(0)}")
    return out


# ------------------------------------------------------------------------ pointwise floats
def _pointwise(name: str, fn: Callable[..., np.ndarray], attrs: dict | None = None,
               doc: str = "") -> None:
    """Register a float-only pointwise op whose formula ``fn(x64, **attrs)`` runs in float64."""
    def kernel(x: np.ndarray, **kw: float) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x.astype(F64), **kw)).astype(x.dtype, copy=False)
    kernel.__doc__ = doc or f"{name}: elementwise, computed in float64."
    kernel.__name__ = name.lower()
    register(name, attrs=attrs or {}, infer=float_same)(kernel)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1/(1+e^-x), in the form that neither overflows nor loses tiny results for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)  # log(1+e^x) without overflow: onnxruntime is stable here too


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "none":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(F64))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    raise ValueError(f"Gelu approximate={approximate!r} is not one of 'none', 'tanh'")


_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875

_pointwise("LeakyRelu", lambda x, alpha: np.where(x < 0, alpha * x, x), {"alpha": f32(0.01)})
_pointwise("Elu", lambda x, alpha: np.where(x < 0, alpha * np.expm1(x), x), {"alpha": 1.0})
_pointwise("Selu", lambda x, alpha, gamma: gamma * np.where(x > 0, x, alpha * np.expm1(x)),
           {"alpha": _SELU_ALPHA, "gamma": _SELU_GAMMA})
_pointwise("Celu", lambda x, alpha: np.maximum(0.0, x) + np.minimum(0.0, alpha * np.expm1(x / alpha)),
           {"alpha": 1.0})
_pointwise("Sigmoid", _sigmoid)
_pointwise("HardSigmoid", lambda x, alpha, beta: np.clip(alpha * x + beta, 0.0, 1.0),
           {"alpha": f32(0.2), "beta": 0.5})
_pointwise("HardSwish", lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
           doc="HardSwish: x * HardSigmoid(x) with alpha=1/6, beta=0.5.")
_pointwise("Tanh", np.tanh)
_pointwise("Gelu", _gelu, {"approximate": "none"},
           doc="Gelu: exact (erf, per element in float64) or the tanh approximation.")
_pointwise("Softplus", _softplus)
_pointwise("Softsign", lambda x: x / (1.0 + np.abs(x)))
_pointwise("Mish", lambda x: x * np.tanh(_softplus(x)))
_pointwise("ThresholdedRelu", lambda x, alpha: np.where(x > alpha, x, 0.0), {"alpha": 1.0})
_pointwise("Swish", lambda x, alpha: x * _sigmoid(alpha * x), {"alpha": 1.0})


# ---------------------------------------------------------------- ops that take integers too
@register("Relu", infer=numeric_same)
def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, x.dtype.type(0))


@register("Clip", inputs=["input", "min?", "max?"], outputs=["output"], infer=_clip_infer)
def clip(x: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """Clip: min(max(x, min), max), so min > max gives max everywhere, as ONNX specifies."""
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo).reshape(()))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi).reshape(()))
    return out.astype(x.dtype, copy=False)


@register("PRelu", inputs=["X", "slope"], infer=_prelu_infer)
def prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)


@register("Shrink", inputs=["input"], outputs=["output"], attrs={"bias": 0.0, "lambd": 0.5},
          infer=numeric_same)
def shrink(x: np.ndarray, bias: float, lambd: float) -> np.ndarray:
    """Shrink: integer results are truncated toward zero, as onnxruntime's cast does."""
    x64 = x.astype(F64)
    out = np.where(x64 < -lambd, x64 + bias, np.where(x64 > lambd, x64 - bias, 0.0))
    return out.astype(x.dtype)


# ----------------------------------------------------------------------------- softmax family
@register("Softmax", inputs=["input"], outputs=["output"], attrs={"axis": -1}, infer=_axis_same)
def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x64 = x.astype(F64)
    with np.errstate(all="ignore"):
        e = np.exp(x64 - np.max(x64, axis=axis, keepdims=True)) if x.size else x64
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


@register("LogSoftmax", inputs=["input"], outputs=["output"], attrs={"axis": -1}, infer=_axis_same)
def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x64 = x.astype(F64)
    if not x.size:
        return x.copy()
    with np.errstate(all="ignore"):
        shifted = x64 - np.max(x64, axis=axis, keepdims=True)
        return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(x.dtype)


@register("Hardmax", inputs=["input"], outputs=["output"], attrs={"axis": -1}, infer=_axis_same)
def hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Hardmax: 1 at the first maximum along ``axis``, 0 elsewhere."""
    out = np.zeros_like(x)
    if x.size:
        idx = np.expand_dims(np.argmax(x, axis=axis), axis)
        np.put_along_axis(out, idx, x.dtype.type(1), axis=axis)
    return out
