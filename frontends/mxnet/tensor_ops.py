"""Converters for MXNet's tensor ops: arithmetic (elementwise, broadcast, scalar), reductions and
shape manipulation (Reshape with its special codes, slicing, splitting, concatenation, Crop).

MXNet has no 0-d arrays: a reduction over every axis without ``keepdims`` gives shape (1,), and the
converters reproduce that.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from convertkit.frontends.mxnet.context import ConvertContext, converter, norm_axis

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


# ------------------------------------------------------------------------------- arithmetic
UNARY = {
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
    "abs": "Abs", "negative": "Neg", "reciprocal": "Reciprocal", "floor": "Floor", "ceil": "Ceil",
    "rint": "Round", "sign": "Sign", "sin": "Sin", "cos": "Cos", "tan": "Tan", "arcsin": "Asin",
    "arccos": "Acos", "arctan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "arcsinh": "Asinh",
    "arccosh": "Acosh", "arctanh": "Atanh", "erf": "Erf", "softsign": "Softsign",
    "_copy": "Identity", "BlockGrad": "Identity", "stop_gradient": "Identity", "identity": "Identity",
    "_identity_with_attr_like_rhs": "Identity",
}
"""Ops that are a single canonical op of one input (MXNet's ``rint`` rounds half to even, as Round does)."""

BINARY = {
    **dict.fromkeys(("elemwise_add", "_plus", "_Plus", "_add", "broadcast_add", "broadcast_plus"), "Add"),
    **dict.fromkeys(("elemwise_sub", "_minus", "_Minus", "_sub", "broadcast_sub", "broadcast_minus"), "Sub"),
    **dict.fromkeys(("elemwise_mul", "_mul", "_Mul", "broadcast_mul"), "Mul"),
    **dict.fromkeys(("elemwise_div", "_div", "_Div", "broadcast_div"), "Div"),
    **dict.fromkeys(("_maximum", "_Maximum", "broadcast_maximum"), "Max"),
    **dict.fromkeys(("_minimum", "_Minimum", "broadcast_minimum"), "Min"),
    **dict.fromkeys(("_power", "_Power", "broadcast_power"), "Pow"),
}
"""Binary arithmetic; MXNet's broadcast rules are numpy's, as the canonical ops'."""

COMPARE = {
    **dict.fromkeys(("_equal", "broadcast_equal"), ("Equal", False)),
    **dict.fromkeys(("_not_equal", "broadcast_not_equal"), ("Equal", True)),
    **dict.fromkeys(("_greater", "broadcast_greater"), ("Greater", False)),
    **dict.fromkeys(("_greater_equal", "broadcast_greater_equal"), ("GreaterOrEqual", False)),
    **dict.fromkeys(("_lesser", "broadcast_lesser"), ("Less", False)),
    **dict.fromkeys(("_lesser_equal", "broadcast_lesser_equal"), ("LessOrEqual", False)),
}
"""Comparisons: (canonical op, negate). MXNet returns 0/1 in the input's dtype, not booleans."""

SCALAR = {
    **dict.fromkeys(("_plus_scalar", "_PlusScalar"), ("Add", False)),
    **dict.fromkeys(("_minus_scalar", "_MinusScalar"), ("Sub", False)),
    **dict.fromkeys(("_rminus_scalar", "_RMinusScalar"), ("Sub", True)),
    **dict.fromkeys(("_mul_scalar", "_MulScalar"), ("Mul", False)),
    **dict.fromkeys(("_div_scalar", "_DivScalar"), ("Div", False)),
    **dict.fromkeys(("_rdiv_scalar", "_RDivScalar"), ("Div", True)),
    **dict.fromkeys(("_power_scalar", "_PowerScalar"), ("Pow", False)),
    **dict.fromkeys(("_rpower_scalar", "_RPowerScalar"), ("Pow", True)),
    **dict.fromkeys(("_maximum_scalar", "_MaximumScalar"), ("Max", False)),
    **dict.fromkeys(("_minimum_scalar", "_MinimumScalar"), ("Min", False)),
}
"""Tensor-scalar ops: (canonical op, scalar on the left). The scalar takes the tensor's dtype."""

SCALAR_COMPARE = {
    "_equal_scalar": ("Equal", False), "_not_equal_scalar": ("Equal", True),
    "_greater_scalar": ("Greater", False), "_greater_equal_scalar": ("GreaterOrEqual", False),
    "_lesser_scalar": ("Less", False), "_lesser_equal_scalar": ("LessOrEqual", False),
}


@converter(*UNARY)
def unary(ctx: ConvertContext) -> None:
    ctx.emit(UNARY[ctx.op_type], [ctx.input(0)])


@converter("square")
def square(ctx: ConvertContext) -> None:
    ctx.emit("Mul", [ctx.input(0), ctx.input(0)])


@converter("rsqrt")
def rsqrt(ctx: ConvertContext) -> None:
    ctx.emit("Reciprocal", [ctx.op("Sqrt", [ctx.input(0)])])


@converter(*BINARY)
def binary(ctx: ConvertContext) -> None:
    ctx.emit(BINARY[ctx.op_type], [ctx.input(0), ctx.input(1)])


def _as_numbers(ctx: ConvertContext, flag: str, like: str, negate: bool) -> None:
    if negate:
        flag = ctx.op("Not", [flag])
    ctx.emit("Cast", [flag], {"to": ctx.dtype(like).name})


@converter(*COMPARE)
def compare(ctx: ConvertContext) -> None:
    op, negate = COMPARE[ctx.op_type]
    x = ctx.input(0)
    _as_numbers(ctx, ctx.op(op, [x, ctx.input(1)]), x, negate)


def _scalar_value(ctx: ConvertContext, x: str) -> str:
    ctx.attrs.ignore("is_int")
    value = ctx.attrs.float("scalar", None)
    if value is None:
        raise ctx.error("has no scalar attribute")
    return ctx.scalar(value, x)


@converter(*SCALAR)
def scalar_op(ctx: ConvertContext) -> None:
    op, reverse = SCALAR[ctx.op_type]
    x = ctx.input(0)
    s = _scalar_value(ctx, x)
    ctx.emit(op, [s, x] if reverse else [x, s])


@converter(*SCALAR_COMPARE)
def scalar_compare(ctx: ConvertContext) -> None:
    op, negate = SCALAR_COMPARE[ctx.op_type]
    x = ctx.input(0)
    _as_numbers(ctx, ctx.op(op, [x, _scalar_value(ctx, x)]), x, negate)


@converter("zeros_like", "ones_like")
def fill_like(ctx: ConvertContext) -> None:
    """A constant broadcast to the input's run-time shape (multiplying by 0 would keep NaN and inf)."""
    x = ctx.input(0)
    value = ctx.scalar(0.0 if ctx.op_type == "zeros_like" else 1.0, x, "fill")
    ctx.emit("Expand", [value, ctx.op("Shape", [x])])


@converter("add_n", "ElementWiseSum")
def add_n(ctx: ConvertContext) -> None:
    ctx.attrs.ignore("num_args")
    ctx.emit("Sum", [ctx.input(i) for i in range(len(ctx.inputs))])


@converter("clip")
def clip(ctx: ConvertContext) -> None:
    a = ctx.attrs
    x = ctx.input(0)
    lo, hi = a.float("a_min"), a.float("a_max")
    if lo is None or hi is None:
        raise ctx.error("needs a_min and a_max")
    ctx.emit("Clip", [x, ctx.scalar(lo, x, "min"), ctx.scalar(hi, x, "max")])


@converter("where")
def where(ctx: ConvertContext) -> None:
    cond = ctx.op("Cast", [ctx.input(0)], {"to": "bool"})
    ctx.emit("Where", [cond, ctx.input(1), ctx.input(2)])


@converter("Cast", "cast", "amp_cast")
def cast(ctx: ConvertContext) -> None:
    ctx.emit("Cast", [ctx.input(0)], {"to": ctx.attrs.str("dtype")})


@converter("dot", "batch_dot")
def dot(ctx: ConvertContext) -> None:
    """MatMul with optional transposes of the last two axes. ``dot`` of N-D arrays contracts the last
    axis of a with the first of b, which is MatMul only when b is 2-D."""
    a = ctx.attrs
    x, y = ctx.input(0), ctx.input(1)
    if a.str("forward_stype") not in (None, "default"):
        raise ctx.unsupported(f"forward_stype={a.raw['forward_stype']}")
    ta, tb = a.bool("transpose_a", False), a.bool("transpose_b", False)
    rx, ry = ctx.rank(x), ctx.rank(y)
    if ctx.op_type == "dot" and (ry != 2 or (ta and rx != 2)):
        raise ctx.unsupported(f"dot of rank-{rx} and rank-{ry} arrays")
    if ta:
        x = ctx.op("Transpose", [x], {"perm": [*range(rx - 2), rx - 1, rx - 2]})
    if tb:
        y = ctx.op("Transpose", [y], {"perm": [*range(ry - 2), ry - 1, ry - 2]})
    ctx.emit("MatMul", [x, y])


# ------------------------------------------------------------------------------- reductions
REDUCE = {"sum": "ReduceSum", "sum_axis": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax",
          "max_axis": "ReduceMax", "min": "ReduceMin", "min_axis": "ReduceMin", "prod": "ReduceProd"}


def _reduce_axes(ctx: ConvertContext, rank: int) -> list[int]:
    axes = ctx.attrs.opt_ints("axis")
    chosen = set(range(rank)) if not axes else {norm_axis(int(ax), rank) for ax in axes}
    if ctx.attrs.bool("exclude", False):
        chosen = set(range(rank)) - chosen
    return sorted(chosen)


def _reduce(ctx: ConvertContext, op: str, axes: list[int], rank: int, attrs: dict | None = None) -> None:
    x = ctx.input(0)
    keep = ctx.attrs.bool("keepdims", False)
    args = [x, ctx.const(axes, np.int64, "axes")]
    if keep or len(axes) < rank:
        ctx.emit(op, args, {"keepdims": int(keep), **(attrs or {})})
    else:  # MXNet gives shape (1,) where ONNX gives a scalar
        ctx.emit("Reshape", [ctx.op(op, args, {"keepdims": 0}), ctx.const([1], np.int64, "shape")])


@converter(*REDUCE)
def reduce(ctx: ConvertContext) -> None:
    rank = ctx.rank(ctx.input(0))
    _reduce(ctx, REDUCE[ctx.op_type], _reduce_axes(ctx, rank), rank)


@converter("norm")
def norm(ctx: ConvertContext) -> None:
    a = ctx.attrs
    order = a.int("ord", 2)
    if order not in (1, 2):
        raise ctx.unsupported(f"ord={order}")
    if a.str("out_dtype") not in (None, ctx.dtype(ctx.input(0)).name):
        raise ctx.unsupported(f"out_dtype={a.raw['out_dtype']}")
    rank = ctx.rank(ctx.input(0))
    _reduce(ctx, "ReduceL2" if order == 2 else "ReduceL1", _reduce_axes(ctx, rank), rank)


@converter("argmax", "argmin")
def argmax(ctx: ConvertContext) -> None:
    """MXNet returns the index as a float of the input's dtype."""
    a = ctx.attrs
    x = ctx.input(0)
    axis = a.int("axis", None)
    if axis is None:
        raise ctx.unsupported("axis=None (argmax of the flattened array)")
    op = "ArgMax" if ctx.op_type == "argmax" else "ArgMin"
    idx = ctx.op(op, [x], {"axis": axis, "keepdims": int(a.bool("keepdims", False))})
    ctx.emit("Cast", [idx], {"to": ctx.dtype(x).name})


# ------------------------------------------------------------------------------------ shape
@converter("Flatten", "flatten")
def flatten(ctx: ConvertContext) -> None:
    ctx.emit("Flatten", [ctx.input(0)], {"axis": 1})


@converter("transpose")
def transpose(ctx: ConvertContext) -> None:
    axes = ctx.attrs.ints("axes", ())
    ctx.emit("Transpose", [ctx.input(0)], {"perm": list(axes)} if axes else {})


@converter("expand_dims")
def expand_dims(ctx: ConvertContext) -> None:
    ctx.emit("Unsqueeze", [ctx.input(0), ctx.const([ctx.attrs.int("axis")], np.int64, "axes")])


@converter("squeeze")
def squeeze(ctx: ConvertContext) -> None:
    axes = ctx.attrs.ints("axis", ())
    ctx.emit("Squeeze", [ctx.input(0), ctx.const(list(axes), np.int64, "axes") if axes else None])


@converter("Concat", "concat")
def concat(ctx: ConvertContext) -> None:
    ctx.attrs.ignore("num_args")
    ctx.emit("Concat", [ctx.input(i) for i in range(len(ctx.inputs))], {"axis": ctx.attrs.int("dim", 1)})


@converter("broadcast_to")
def broadcast_to(ctx: ConvertContext) -> None:
    """A 0 in ``shape`` keeps the input's size, which Expand spells 1."""
    shape = [d if d else 1 for d in ctx.attrs.ints("shape", ())]
    ctx.emit("Expand", [ctx.input(0), ctx.const(shape, np.int64, "shape")])


@converter("broadcast_axis", "broadcast_axes")
def broadcast_axis(ctx: ConvertContext) -> None:
    x = ctx.input(0)
    rank = ctx.rank(x)
    shape = [1] * rank
    for ax, size in zip(ctx.attrs.ints("axis", ()), ctx.attrs.ints("size", ())):
        shape[norm_axis(ax, rank)] = size
    ctx.emit("Expand", [x, ctx.const(shape, np.int64, "shape")])


@converter("Pad", "pad")
def pad(ctx: ConvertContext) -> None:
    """MXNet's pad_width interleaves (before, after) per axis; ONNX lists all befores, then afters."""
    a = ctx.attrs
    x = ctx.input(0)
    mode = a.choice("mode", "constant", ("constant", "edge", "reflect"))
    widths = a.ints("pad_width", ())
    if len(widths) != 2 * ctx.rank(x):
        raise ctx.error(f"pad_width {list(widths)} does not fit a rank-{ctx.rank(x)} input")
    pads = ctx.const(list(widths[0::2]) + list(widths[1::2]), np.int64, "pads")
    value = ctx.scalar(a.float("constant_value", 0.0), x, "value") if mode == "constant" else None
    ctx.emit("Pad", [x, pads, value], {"mode": mode})


# ------------------------------------------------------------------------------------ Reshape
def reshape_terms(rank: int, spec: tuple[int, ...], reverse: bool) -> list[tuple]:
    """MXNet's reshape rules (``InferReshapeShape``) on source positions instead of sizes.

    Each output dimension becomes ("int", v), ("dim", i), ("prod", i, j), ("split", i, by) (input dim i
    divided by ``by``) or ("infer",). ``reverse`` runs the rules right to left, as MXNet does.
    """
    src_dims = list(range(rank))[::-1] if reverse else list(range(rank))
    spec = list(spec)[::-1] if reverse else list(spec)
    terms: list[tuple] = []
    src = 0
    i = 0
    while i < len(spec):
        v = spec[i]
        if v == 0 or v == -1 or v > 0:
            if src >= rank and v in (0, -1):
                raise ValueError(f"shape code {v} at position {i} runs past the input's rank {rank}")
            terms.append(("dim", src_dims[src]) if v == 0 else ("infer",) if v == -1 else ("int", v))
            src += 1
        elif v == -2:
            terms.extend(("dim", d) for d in src_dims[src:])
            src = rank
        elif v == -3:
            if src + 1 >= rank:
                raise ValueError("shape code -3 needs two input dimensions to merge")
            terms.append(("prod", src_dims[src], src_dims[src + 1]))
            src += 2
        elif v == -4:
            if i + 2 >= len(spec) or src >= rank:
                raise ValueError("shape code -4 needs two sizes after it and an input dimension to split")
            d1, d2 = spec[i + 1], spec[i + 2]
            i += 2
            if d1 == -1 and d2 == -1:
                raise ValueError("shape code -4 cannot split into -1 and -1")
            if d1 < -1 or d2 < -1 or 0 in (d1, d2):
                raise ValueError(f"shape code -4 cannot split into {d1} and {d2}")
            d0 = src_dims[src]
            src += 1
            terms.append(("split", d0, d2) if d1 == -1 else ("int", d1))
            terms.append(("split", d0, d1) if d2 == -1 else ("int", d2))
        else:
            raise ValueError(f"shape code {v} is not one of MXNet's (0, -1, -2, -3, -4)")
        i += 1
    if sum(1 for t in terms if t[0] == "infer") > 1:
        raise ValueError("more than one -1 in the shape")
    return terms[::-1] if reverse else terms


def _term_value(term: tuple, shape: tuple) -> Any:
    """The size a term stands for: an int, or None where it depends on a symbolic dimension."""
    kind = term[0]
    if kind == "int":
        return term[1]
    if kind == "dim":
        return shape[term[1]] if isinstance(shape[term[1]], int) else None
    if kind == "prod":
        a, b = shape[term[1]], shape[term[2]]
        return a * b if isinstance(a, int) and isinstance(b, int) else None
    if kind == "split":
        d = shape[term[1]]
        return d // term[2] if isinstance(d, int) else None
    return None


@converter("Reshape", "reshape")
def reshape(ctx: ConvertContext) -> None:
    """A constant target shape wherever the sizes are known (or ONNX's own 0 and -1 can say it);
    otherwise the target is assembled from the input's run-time Shape."""
    a = ctx.attrs
    x = ctx.input(0)
    shape = ctx.shape(x)
    spec = a.ints("shape", ())
    legacy = a.ints("target_shape", ())
    if not spec and legacy:  # deprecated form: one 0 to infer, optionally keeping the first dim
        spec = tuple(-1 if d == 0 else d for d in legacy)
        if a.bool("keep_highest", False):
            spec = (0, *spec)
    else:
        a.ignore("target_shape", "keep_highest")
    if not spec:
        raise ctx.error("has no target shape")
    try:
        terms = reshape_terms(len(shape), spec, a.bool("reverse", False))
    except ValueError as e:
        raise ctx.error(f"shape {list(spec)} on an input of shape {list(shape)}: {e}") from None
    values = [_term_value(t, shape) for t in terms]
    if all(isinstance(d, int) for d in shape) and all(v is not None or t[0] == "infer"
                                                       for t, v in zip(terms, values)):
        ctx.emit("Reshape", [x, ctx.const([-1 if v is None else v for v in values], np.int64, "shape")])
        return
    onnx_dims: list[Any] = []
    for k, (t, v) in enumerate(zip(terms, values)):
        if v is not None:
            onnx_dims.append(v)
        elif t[0] == "dim" and t[1] == k:
            onnx_dims.append(0)           # ONNX's 0 copies the input size at the same position
        else:
            onnx_dims.append(None if t[0] != "infer" else -1)
    if sum(1 for d in onnx_dims if d is None or d == -1) <= 1:
        dims = [-1 if d is None else d for d in onnx_dims]
        ctx.emit("Reshape", [x, ctx.const(dims, np.int64, "shape")])
        return
    parts = [_shape_part(ctx, x, t, v) for t, v in zip(terms, values)]
    ctx.emit("Reshape", [x, ctx.op("Concat", parts, {"axis": 0})])


def _shape_part(ctx: ConvertContext, x: str, term: tuple, value: Any) -> str:
    if value is not None:
        return ctx.const([value], np.int64, "dim")
    if term[0] == "infer":
        return ctx.const([-1], np.int64, "dim")

    def dim(i: int) -> str:
        return ctx.op("Shape", [x], {"start": i, "end": i + 1})

    if term[0] == "dim":
        return dim(term[1])
    if term[0] == "prod":
        return ctx.op("Mul", [dim(term[1]), dim(term[2])])
    return ctx.op("Div", [dim(term[1]), ctx.const([term[2]], np.int64, "by")])


# ---------------------------------------------------------------------------- slicing, splits
@converter("slice_axis")
def slice_axis(ctx: ConvertContext) -> None:
    a = ctx.attrs
    x = ctx.input(0)
    axis = norm_axis(a.int("axis"), ctx.rank(x))
    begin, end = a.int("begin", 0), a.int("end", None)
    ctx.emit("Slice", [x, ctx.const([begin], np.int64, "starts"),
                       ctx.const([INT64_MAX if end is None else end], np.int64, "ends"),
                       ctx.const([axis], np.int64, "axes")])


@converter("slice", "crop")
def slice_(ctx: ConvertContext) -> None:
    """``begin``/``end``/``step`` per leading axis; None means the whole axis in the step's direction."""
    a = ctx.attrs
    x = ctx.input(0)
    begin, end = a.opt_ints("begin") or (), a.opt_ints("end") or ()
    step = a.opt_ints("step") or ()
    if len(begin) != len(end) or len(step) not in (0, len(begin)) or len(begin) > ctx.rank(x):
        raise ctx.error(f"begin {list(begin)}, end {list(end)} and step {list(step)} do not fit the input")
    steps = [1 if s is None else s for s in step] or [1] * len(begin)
    if 0 in steps:
        raise ctx.error("step 0 is invalid")
    starts = [(0 if s > 0 else INT64_MAX) if b is None else b for b, s in zip(begin, steps)]
    ends = [(INT64_MAX if s > 0 else INT64_MIN) if e is None else e for e, s in zip(end, steps)]
    n = len(begin)
    ctx.emit("Slice", [x, ctx.const(starts, np.int64, "starts"), ctx.const(ends, np.int64, "ends"),
                       ctx.const(list(range(n)), np.int64, "axes"), ctx.const(steps, np.int64, "steps")])


def _split_outputs(ctx: ConvertContext, x: str, n: int, axis: int, squeeze: bool,
                   bounds: list[tuple[int, int]] | None = None) -> None:
    """``n`` parts along ``axis``, equal or [start, end) ``bounds``. One Split when every part is
    used; otherwise a Slice per used part, since dead-code removal would drop an unused Split output
    and with it the op's arity."""
    names = [ctx.out_name(i, n) if i in ctx.used_outputs else "" for i in range(n)]
    if bounds is None and len(ctx.used_outputs) == n:
        parts = ctx.emit("Split", [x], {"axis": axis}, n_out=n, final=False, names=None if squeeze else names)
    else:
        parts = [_part(ctx, x, axis, i, n, bounds, None if squeeze else name) if name else ""
                 for i, name in enumerate(names)]
    if squeeze:
        axes = ctx.const([axis], np.int64, "axes")
        for part, name in zip(parts, names):
            if name:
                ctx.emit("Squeeze", [part, axes], names=[name])
    ctx.done(*names)


def _part(ctx: ConvertContext, x: str, axis: int, i: int, n: int, bounds: list[tuple[int, int]] | None,
          name: str | None) -> str:
    dim = ctx.shape(x)[axis]
    if bounds is None and isinstance(dim, int):
        bounds = [(k * dim // n, (k + 1) * dim // n) for k in range(n)]
    axes = ctx.const([axis], np.int64, "axes")
    if bounds is not None:
        start, end = ctx.const([bounds[i][0]], np.int64, "start"), ctx.const([bounds[i][1]], np.int64, "end")
    else:                           # equal parts of an axis whose size is known at run time only
        chunk = ctx.op("Div", [ctx.op("Shape", [x], {"start": axis, "end": axis + 1}),
                               ctx.const([n], np.int64, "parts")])
        start = ctx.op("Mul", [chunk, ctx.const([i], np.int64, "index")])
        end = ctx.op("Add", [start, chunk])
    if name is None:
        return ctx.op("Slice", [x, start, end, axes])
    return ctx.emit("Slice", [x, start, end, axes], names=[name])[0]


@converter("SliceChannel", "split")
def slice_channel(ctx: ConvertContext) -> None:
    a = ctx.attrs
    x = ctx.input(0)
    n = a.int("num_outputs")
    axis = norm_axis(a.int("axis", 1), ctx.rank(x))
    size = ctx.shape(x)[axis]
    if isinstance(size, int) and size % n:
        raise ctx.error(f"cannot split an axis of size {size} into {n} equal parts")
    squeeze = a.bool("squeeze_axis", False)
    if squeeze and isinstance(size, int) and size != n:
        raise ctx.error(f"squeeze_axis needs parts of size 1, got {size // n}")
    _split_outputs(ctx, x, n, axis, squeeze)


@converter("_split_v2")
def split_v2(ctx: ConvertContext) -> None:
    """``sections`` equal parts, or parts starting at ``indices`` (the first is 0; the last part runs
    to the end of the axis, whatever its size)."""
    a = ctx.attrs
    x = ctx.input(0)
    axis = norm_axis(a.int("axis", 0), ctx.rank(x))
    sections = a.int("sections", 0)
    squeeze = a.bool("squeeze_axis", False)
    if sections:
        a.ignore("indices")
        _split_outputs(ctx, x, sections, axis, squeeze)
        return
    starts = list(a.ints("indices", ()))
    if not starts or starts[0] != 0 or any(e < b for b, e in itertools.pairwise(starts)):
        raise ctx.error(f"indices {starts} do not split an axis")
    bounds = list(zip(starts, [*starts[1:], INT64_MAX]))
    _split_outputs(ctx, x, len(bounds), axis, squeeze, bounds)


@converter("Crop")
def crop(ctx: ConvertContext) -> None:
    """The legacy Crop: a window of the size of ``h_w`` (or of the second input) at ``offset`` or at
    the centre (offset rounded down, as MXNet does)."""
    a = ctx.attrs
    x = ctx.input(0)
    if ctx.rank(x) != 4:
        raise ctx.error(f"needs a rank-4 input, got rank {ctx.rank(x)}")
    num_args = a.int("num_args", 1)
    offset = a.ints("offset", (0, 0))
    center = a.bool("center_crop", False)
    size: Any = a.ints("h_w", (0, 0))
    size_t = None
    if num_args == 2:
        like = ctx.shape(ctx.input(1))[2:]
        size = like if all(isinstance(d, int) for d in like) else None
        size_t = ctx.op("Shape", [ctx.input(1)], {"start": 2, "end": 4}) if size is None else None
    elif num_args != 1:
        raise ctx.error(f"num_args={num_args} (Crop takes 1 or 2 inputs)")
    spatial = ctx.shape(x)[2:]
    if size is not None and (not center or all(isinstance(d, int) for d in spatial)):
        starts = [(d - s) // 2 for d, s in zip(spatial, size)] if center else list(offset)
        ends = [b + s for b, s in zip(starts, size)]
        if all(isinstance(d, int) for d in spatial) and any(e > d for e, d in zip(ends, spatial)):
            raise ctx.error(f"crop window {ends} exceeds the input's size {list(spatial)}")
        starts_t, ends_t = ctx.const(starts, np.int64, "starts"), ctx.const(ends, np.int64, "ends")
    else:  # sizes known only at run time
        if size_t is None:
            size_t = ctx.const(list(size), np.int64, "size")
        if center:
            gap = ctx.op("Sub", [ctx.op("Shape", [x], {"start": 2, "end": 4}), size_t])
            starts_t = ctx.op("Div", [gap, ctx.const([2, 2], np.int64, "two")])
        else:
            starts_t = ctx.const(list(offset), np.int64, "starts")
        ends_t = ctx.op("Add", [starts_t, size_t])
    ctx.emit("Slice", [x, starts_t, ends_t, ctx.const([2, 3], np.int64, "axes")])
