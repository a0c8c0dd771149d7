"""Elementwise math, activations, reductions, matrix products and casts.

Most TensorFlow ops here are a rename of one canonical op (``UNARY``/``BINARY``); the rest lower to a
few canonical ops with the same arithmetic (Rsqrt = 1/Sqrt, SquaredDifference = d*d, Relu6 = Clip...).
"""
from __future__ import annotations

import numpy as np

from convertkit.frontends.tensorflow.context import Context, Converter

UNARY = {
    "Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu", "Selu": "Selu",
    "Softplus": "Softplus", "Softsign": "Softsign", "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt",
    "Abs": "Abs", "Neg": "Neg", "Floor": "Floor", "Ceil": "Ceil", "Round": "Round", "Rint": "Round",
    "Sign": "Sign", "Erf": "Erf", "Sin": "Sin", "Cos": "Cos", "Tan": "Tan", "Asin": "Asin", "Acos": "Acos",
    "Atan": "Atan", "Sinh": "Sinh", "Cosh": "Cosh", "Asinh": "Asinh", "Acosh": "Acosh", "Atanh": "Atanh",
    "Reciprocal": "Reciprocal", "Inv": "Reciprocal", "LogicalNot": "Not", "IsNan": "IsNaN",
}
"""TF op -> canonical op with the same semantics (TF's Elu and Selu constants are ONNX's defaults)."""

BINARY = {
    "Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div", "Maximum": "Max",
    "Minimum": "Min", "Pow": "Pow", "Equal": "Equal", "Less": "Less", "LessEqual": "LessOrEqual",
    "Greater": "Greater", "GreaterEqual": "GreaterOrEqual", "LogicalAnd": "And", "LogicalOr": "Or",
}

REDUCE = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin",
          "Prod": "ReduceProd", "EuclideanNorm": "ReduceL2"}


def _unary(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        ctx.emit(op, [ctx.input(0)])
    return convert


def _binary(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        ctx.emit(op, [ctx.input(0), ctx.input(1)])
    return convert


def _scalar(ctx: Context, value: float, i: int = 0, name: str = "c") -> str:
    return ctx.const(np.asarray(value, dtype=ctx.dtype(i)), name=name)


def relu6(ctx: Context) -> None:
    ctx.emit("Clip", [ctx.input(0), _scalar(ctx, 0, name="zero"), _scalar(ctx, 6, name="six")])


def leaky_relu(ctx: Context) -> None:
    ctx.emit("LeakyRelu", [ctx.input(0)], attrs={"alpha": float(ctx.attr("alpha", 0.2))})


def rsqrt(ctx: Context) -> None:
    ctx.emit("Reciprocal", [ctx.emit("Sqrt", [ctx.input(0)], "sqrt")])


def square(ctx: Context) -> None:
    ctx.emit("Mul", [ctx.input(0), ctx.input(0)])


def squared_difference(ctx: Context) -> None:
    d = ctx.emit("Sub", [ctx.input(0), ctx.input(1)], "diff")
    ctx.emit("Mul", [d, d])


def erfc(ctx: Context) -> None:
    ctx.emit("Sub", [_scalar(ctx, 1, name="one"), ctx.emit("Erf", [ctx.input(0)], "erf")])


def expm1(ctx: Context) -> None:
    ctx.emit("Sub", [ctx.emit("Exp", [ctx.input(0)], "exp"), _scalar(ctx, 1, name="one")])


def log1p(ctx: Context) -> None:
    ctx.emit("Log", [ctx.emit("Add", [ctx.input(0), _scalar(ctx, 1, name="one")], "plus1")])


def not_equal(ctx: Context) -> None:
    ctx.emit("Not", [ctx.emit("Equal", [ctx.input(0), ctx.input(1)], "eq")])


def div(ctx: Context) -> None:
    """TF Div: true division on floats; on integers it rounds toward zero, like C and ONNX's Div."""
    ctx.emit("Div", [ctx.input(0), ctx.input(1)])


def floor_div(ctx: Context) -> None:
    if ctx.dtype(0).kind == "f":
        ctx.emit("Floor", [ctx.emit("Div", [ctx.input(0), ctx.input(1)], "div")])
        return
    # integers: floor(a / b) computed exactly in float64 (shape arithmetic), then back
    a = ctx.emit("Cast", [ctx.input(0)], "a64", {"to": "float64"})
    b = ctx.emit("Cast", [ctx.input(1)], "b64", {"to": "float64"})
    q = ctx.emit("Floor", [ctx.emit("Div", [a, b], "div")], "floor")
    ctx.emit("Cast", [q], attrs={"to": ctx.dtype(0).name})


def truncate_mod(ctx: Context) -> None:
    """C-style remainder (sign of the dividend): ONNX Mod with fmod=1, for integers and floats."""
    ctx.emit("Mod", [ctx.input(0), ctx.input(1)], attrs={"fmod": 1})


def floor_mod(ctx: Context) -> None:
    """Python-style remainder (sign of the divisor): ONNX Mod(fmod=0) on integers; floats need
    x - floor(x/y)*y, since ONNX's float Mod only does C's fmod."""
    x, y = ctx.input(0), ctx.input(1)
    if ctx.dtype(0).kind in "iu":
        ctx.emit("Mod", [x, y], attrs={"fmod": 0})
        return
    q = ctx.emit("Floor", [ctx.emit("Div", [x, y], "div")], "floor")
    ctx.emit("Sub", [x, ctx.emit("Mul", [q, y], "prod")])


def add_n(ctx: Context) -> None:
    if ctx.n_inputs == 1:
        ctx.alias(0, ctx.input(0))
    else:
        ctx.emit("Sum", list(ctx.inputs))


def clip_by_value(ctx: Context) -> None:
    x, lo, hi = ctx.inputs[:3]
    if ctx.graph.tensor(lo).shape == () and ctx.graph.tensor(hi).shape == ():
        ctx.emit("Clip", [x, lo, hi])
    else:
        ctx.emit("Min", [ctx.emit("Max", [x, lo], "lower"), hi])


def select(ctx: Context) -> None:
    """Select (v1) with a rank-1 condition picks whole rows; SelectV2 broadcasts like Where."""
    cond, a, b = ctx.inputs[:3]
    if ctx.node.op == "Select" and ctx.rank(0) == 1 and ctx.rank(1) > 1:
        axes = ctx.const(np.arange(1, ctx.rank(1), dtype=np.int64), name="axes")
        cond = ctx.emit("Unsqueeze", [cond, axes], "cond")
    ctx.emit("Where", [cond, a, b])


def cast(ctx: Context) -> None:
    dst = ctx.type_attr("DstT")
    if dst == ctx.dtype(0):
        ctx.alias(0, ctx.input(0))
    else:
        ctx.emit("Cast", [ctx.input(0)], attrs={"to": dst.name})


def softmax(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        ctx.emit(op, [ctx.input(0)], attrs={"axis": -1})
    return convert


def bias_add(ctx: Context) -> None:
    x, b = ctx.input(0), ctx.input(1)
    fmt = ctx.attr("data_format", "NHWC")
    if fmt.startswith("NC") and ctx.rank(0) > 2:
        shape = ctx.const(np.array([-1] + [1] * (ctx.rank(0) - 2), np.int64), name="bias_shape")
        b = ctx.emit("Reshape", [b, shape], "bias")
    elif fmt not in ("NHWC", "NCHW"):
        raise ctx.unsupported(f"data_format={fmt!r}")
    ctx.emit("Add", [x, b])


# ------------------------------------------------------------------------------------- products
def _swap_last(ctx: Context, name: str, rank: int, suffix: str) -> str:
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return ctx.emit("Transpose", [name], suffix, {"perm": perm})


def mat_mul(ctx: Context) -> None:
    a, b = ctx.input(0), ctx.input(1)
    if ctx.attr("transpose_a", False):
        a = _swap_last(ctx, a, 2, "a_t")
    if ctx.attr("transpose_b", False):
        b = _swap_last(ctx, b, 2, "b_t")
    ctx.emit("MatMul", [a, b])


def batch_mat_mul(ctx: Context) -> None:
    a, b = ctx.input(0), ctx.input(1)
    if ctx.attr("adj_x", False):
        a = _swap_last(ctx, a, ctx.rank(0), "a_t")
    if ctx.attr("adj_y", False):
        b = _swap_last(ctx, b, ctx.rank(1), "b_t")
    ctx.emit("MatMul", [a, b])


def einsum(ctx: Context) -> None:
    ctx.emit("Einsum", list(ctx.inputs), attrs={"equation": ctx.attr("equation")})


# ----------------------------------------------------------------------------------- reductions
def _reduce(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        axes = ctx.int64(1)
        attrs = {"keepdims": int(bool(ctx.attr("keep_dims", False)))}
        v = ctx.graph.const_value(axes)
        if v is not None and v.size == 0:  # TF reduces nothing over empty axes; ONNX would reduce all
            attrs["noop_with_empty_axes"] = 1
        elif v is not None and v.ndim == 0:
            axes = ctx.const(v.reshape(1), name="axes")
        ctx.emit(op, [ctx.input(0), axes], attrs=attrs)
    return convert


def _reduce_bool(op: str) -> Converter:
    """All/Any: min/max over the values as int32, back to bool."""
    def convert(ctx: Context) -> None:
        x = ctx.emit("Cast", [ctx.input(0)], "as_int", {"to": "int32"})
        axes = ctx.int64(1)
        v = ctx.graph.const_value(axes)
        if v is not None and v.ndim == 0:
            axes = ctx.const(v.reshape(1), name="axes")
        r = ctx.emit(op, [x, axes], "reduced", {"keepdims": int(bool(ctx.attr("keep_dims", False)))})
        ctx.emit("Cast", [r], attrs={"to": "bool"})
    return convert


def _arg(op: str) -> Converter:
    def convert(ctx: Context) -> None:
        axis = ctx.static_ints(1, "axis")
        out_type = ctx.type_attr("output_type", np.dtype(np.int64))
        if out_type == np.int64:
            ctx.emit(op, [ctx.input(0)], attrs={"axis": axis[0], "keepdims": 0})
        else:
            r = ctx.emit(op, [ctx.input(0)], "arg", {"axis": axis[0], "keepdims": 0})
            ctx.emit("Cast", [r], attrs={"to": out_type.name})
    return convert


def cumsum(ctx: Context) -> None:
    ctx.emit("CumSum", [ctx.input(0), ctx.int64(1)],
             attrs={"exclusive": int(bool(ctx.attr("exclusive", False))),
                    "reverse": int(bool(ctx.attr("reverse", False)))})


CONVERTERS: dict[str, Converter] = {
    **{tf: _unary(op) for tf, op in UNARY.items()},
    **{tf: _binary(op) for tf, op in BINARY.items()},
    **{tf: _reduce(op) for tf, op in REDUCE.items()},
    "All": _reduce_bool("ReduceMin"), "Any": _reduce_bool("ReduceMax"),
    "Relu6": relu6, "LeakyRelu": leaky_relu, "Rsqrt": rsqrt, "Square": square,
    "SquaredDifference": squared_difference, "Erfc": erfc, "Expm1": expm1, "Log1p": log1p,
    "NotEqual": not_equal, "Div": div, "TruncateDiv": div, "TruncateMod": truncate_mod,
    "FloorDiv": floor_div, "FloorMod": floor_mod, "AddN": add_n,
    "ClipByValue": clip_by_value, "Select": select, "SelectV2": select, "Cast": cast,
    "Softmax": softmax("Softmax"), "LogSoftmax": softmax("LogSoftmax"), "BiasAdd": bias_add,
    "BiasAddV1": bias_add, "MatMul": mat_mul, "BatchMatMul": batch_mat_mul,
    "BatchMatMulV2": batch_mat_mul, "BatchMatMulV3": batch_mat_mul, "Einsum": einsum,
    "ArgMax": _arg("ArgMax"), "ArgMin": _arg("ArgMin"), "Cumsum": cumsum,
}
