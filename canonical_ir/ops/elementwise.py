"""Elementwise math, comparison, logic and bitwise ops, with numpy broadcasting."""
from __future__ import annotations

import math

import numpy as np

from convertkit.canonical_ir.ops.registry import broadcast, register, same_as

BOOL = np.dtype(bool)


def _same_dtype(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.asarray(out).astype(like.dtype, copy=False)


# ------------------------------------------------------------------------------ unary math
def _unary(name: str, fn, doc: str = "") -> None:
    def kernel(x):
        with np.errstate(all="ignore"):
            return _same_dtype(fn(x), x)
    kernel.__doc__ = doc or f"{name}: elementwise."
    kernel.__name__ = name.lower()
    register(name, infer=same_as(0))(kernel)


_erf = np.vectorize(math.erf, otypes=[np.float64])

for _name, _fn in {
    "Abs": np.abs, "Neg": np.negative, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt,
    "Floor": np.floor, "Ceil": np.ceil, "Sign": np.sign,
    "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
    "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh,
    "Reciprocal": lambda x: np.reciprocal(x.astype(np.float64) if x.dtype.kind != "f" else x),
    "Round": np.round,  # numpy rounds half to even, as ONNX specifies
    "Erf": lambda x: _erf(x.astype(np.float64)) if x.size else x,
}.items():
    _unary(_name, _fn)


@register("Not", infer=same_as(0))
def not_(x):
    return np.logical_not(x)


@register("BitwiseNot", infer=same_as(0))
def bitwise_not(x):
    return np.invert(x)


def _bool_of(i: int = 0):
    def infer(ctx):
        return [(BOOL, ctx.shape(i))]
    return infer


@register("IsNaN", infer=_bool_of(0))
def is_nan(x):
    return np.isnan(x)


@register("IsInf", attrs={"detect_negative": 1, "detect_positive": 1}, infer=_bool_of(0))
def is_inf(x, detect_negative, detect_positive):
    return ((np.isneginf(x) & bool(detect_negative)) | (np.isposinf(x) & bool(detect_positive)))


# ----------------------------------------------------------------------------- binary math
def _binary(name: str, fn, doc: str = "") -> None:
    def kernel(a, b):
        with np.errstate(all="ignore"):
            return _same_dtype(fn(a, b), a)
    kernel.__doc__ = doc or f"{name}: elementwise with numpy broadcasting."
    kernel.__name__ = name.lower()
    register(name, inputs=["A", "B"], outputs=["C"], infer=broadcast(0))(kernel)


def _int_div(a, b):
    """Integer division truncating toward zero, as C and ONNX runtimes do."""
    if a.dtype.kind not in "iu":
        return a / b
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


_binary("Add", np.add)
_binary("Sub", np.subtract)
_binary("Mul", np.multiply)
_binary("Div", _int_div, "Div: true division for floats, truncation toward zero for integers.")


@register("Pow", inputs=["X", "Y"], outputs=["Z"], infer=broadcast(0))
def pow_(x, y):
    """Pow: the result has the base's dtype (the exponent may have another)."""
    with np.errstate(all="ignore"):
        if x.dtype.kind in "iu":
            return np.power(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype)
        return np.power(x, y.astype(x.dtype)).astype(x.dtype)


@register("Mod", inputs=["A", "B"], outputs=["C"], attrs={"fmod": 0}, infer=broadcast(0))
def mod(a, b, fmod):
    """Mod: fmod=0 takes the divisor's sign (integers only), fmod=1 the dividend's (C fmod)."""
    with np.errstate(all="ignore"):
        return _same_dtype(np.fmod(a, b) if fmod else np.mod(a, b), a)


def _variadic(name: str, fn) -> None:
    def kernel(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return _same_dtype(out, xs[0])
    kernel.__doc__ = f"{name}: elementwise over any number of broadcast inputs."
    kernel.__name__ = name.lower()
    register(name, inputs=["data_0*"], outputs=["result"], infer=broadcast(0))(kernel)


_variadic("Max", np.maximum)
_variadic("Min", np.minimum)
_variadic("Sum", np.add)


@register("Mean", inputs=["data_0*"], outputs=["result"], infer=broadcast(0))
def mean(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return _same_dtype(out / len(xs), xs[0])


@register("BitShift", inputs=["X", "Y"], outputs=["Z"], attrs={"direction": "LEFT"}, infer=broadcast(0))
def bit_shift(x, y, direction):
    return _same_dtype(np.left_shift(x, y) if direction == "LEFT" else np.right_shift(x, y), x)


for _name, _fn in {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
                   "BitwiseXor": np.bitwise_xor}.items():
    _binary(_name, _fn)


# ------------------------------------------------------------------------- comparison, logic
def _predicate(name: str, fn) -> None:
    def kernel(a, b):
        return fn(a, b)
    kernel.__doc__ = f"{name}: elementwise, boolean result."
    kernel.__name__ = name.lower()
    register(name, inputs=["A", "B"], outputs=["C"], infer=broadcast(BOOL))(kernel)


for _name, _fn in {
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
    "Xor": np.logical_xor,
}.items():
    _predicate(_name, _fn)


@register("Where", inputs=["condition", "X", "Y"], outputs=["output"], infer=broadcast(1))
def where(cond, x, y):
    return np.where(cond, x, y).astype(x.dtype, copy=False)

