"""Dimension arithmetic for shape inference over int and symbolic dims, and symbolic shape values.

Exported models compute shapes at run time (``Shape -> Gather -> Concat -> Reshape``). When the batch
is symbolic those chains cannot be folded, but their *values* are still known symbolically: ``Shape``
of an ``("N", 3, 4)`` tensor is ``["N", 3, 4]``. :func:`shape_value` follows such chains back to
their source so Reshape, Expand, ConstantOfShape and friends infer ``("N", 12)`` rather than two
unknown dims. Unknown entries are ``None``; :func:`fill_unknown` names them with fresh symbols that
stay the same from one inference round to the next (so inference reaches a fixed point).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from convertkit.canonical_ir.ops.registry import InferContext, get_schema

Dim = int | str
MaybeDim = int | str | None
SymValue = list[MaybeDim]
"""Elements of a 0-D/1-D integer (or bool, as 0/1) tensor: an int, a symbolic dim name, or None."""

MAX_NODES = 256
"""A symbolic-value query looks at no more than this many tensors."""
MAX_EVAL_ELEMENTS = 1 << 16
"""Constant inputs larger than this are not evaluated during inference (folding handles them)."""


# --------------------------------------------------------------------------------- dim arithmetic
def product(ctx: InferContext, dims: Sequence[Dim]) -> MaybeDim:
    """Product of dims: an int, the one symbol when every other factor is 1, else None."""
    ints = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
    syms = [d for d in dims if not isinstance(d, int)]
    if not syms:
        return ints
    if ints == 0:
        return 0
    if len(syms) == 1 and ints == 1:
        return syms[0]
    return None


def total(dims: Sequence[Dim]) -> MaybeDim:
    """Sum of dims: an int, the one symbol when every other term is 0, else None."""
    syms = [d for d in dims if not isinstance(d, int)]
    ints = sum(d for d in dims if isinstance(d, int))
    if not syms:
        return ints
    if len(syms) == 1 and ints == 0:
        return syms[0]
    return None


def merge(ctx: InferContext, a: Dim, b: Dim, what: str) -> Dim:
    """Two dims that must be equal: the int one if either is an int; error if two ints differ."""
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ctx.error(f"{what}: dimension {a} does not match {b}")
        return a
    return a if isinstance(a, int) else b


def divide_out(ctx: InferContext, numer: Sequence[Dim], denom: Sequence[MaybeDim]) -> MaybeDim:
    """``prod(numer) / prod(denom)`` cancelling symbols, as Reshape's -1 needs; None if unknown."""
    if any(d is None for d in denom):
        return None
    n_syms = Counter(d for d in numer if not isinstance(d, int))
    d_syms = Counter(d for d in denom if not isinstance(d, int))
    n_int = int(np.prod([d for d in numer if isinstance(d, int)], dtype=np.int64))
    d_int = int(np.prod([d for d in denom if isinstance(d, int)], dtype=np.int64))
    if d_syms - n_syms:
        return None
    rest = n_syms - d_syms
    if d_int == 0:
        return None
    if not rest:
        if n_int % d_int:
            raise ctx.error(f"cannot infer -1: {n_int} elements do not divide by {d_int}")
        return n_int // d_int
    if sum(rest.values()) == 1 and n_int == d_int:
        return next(iter(rest))
    return None


def fill_unknown(ctx: InferContext, dims: Sequence[MaybeDim], out: int = 0) -> tuple:
    """Replace None dims by symbols: the ones output ``out`` already carries, else fresh ones."""
    prev = None
    outs = ctx.graph.outputs_of(ctx.node)
    if out < len(outs):
        prev = ctx.graph.tensor(outs[out]).shape
    if prev is not None and len(prev) != len(dims):
        prev = None
    result = []
    for i, d in enumerate(dims):
        if d is None:
            d = prev[i] if prev is not None and isinstance(prev[i], str) else ctx.new_dim()
        result.append(d)
    return tuple(result)


def clamp_index(i: int, dim: int, lo: int, hi: int) -> int:
    """ONNX index normalisation: negative counts from the end, then clamp to [lo, hi]."""
    if i < 0:
        i += dim
    return max(lo, min(hi, i))


# ----------------------------------------------------------------------------- symbolic values
def shape_value(ctx: InferContext, i: int) -> SymValue | None:
    """The elements of integer input ``i`` as far as they are known, or None if nothing is."""
    if not ctx.has(i):
        return None
    return _value(ctx.graph, ctx.input_names[i], {})


def _value(graph, name: str, memo: dict) -> SymValue | None:
    """Value of tensor ``name``; ``memo`` holds the tensors already looked at in this query (shared
    subexpressions are walked once, and a query gives up after MAX_NODES tensors)."""
    if name in memo:
        return memo[name]
    if len(memo) >= MAX_NODES:
        return None
    memo[name] = None
    memo[name] = out = _compute(graph, name, memo)
    return out


def _compute(graph, name: str, memo: dict) -> SymValue | None:
    t = graph.tensor(name)
    if t.value is not None:
        v = np.asarray(t.value)
        if v.ndim > 1 or v.dtype.kind not in "biu":
            return None
        return [int(x) for x in v.reshape(-1)]
    if t.shape is None or len(t.shape) > 1:
        return None
    node = graph.producer(name)
    if node is None:
        return None
    ins = graph.inputs_of(node)
    try:
        schema = get_schema(node.op)
        attrs = schema.resolve_attrs(node.attrs)
        rule = _RULES.get(node.op)
        if rule is not None:
            out = rule(graph, node, ins, attrs, memo)
        else:
            out = _evaluate(graph, node, name, ins, schema, attrs, memo)
    except Exception:  # noqa: BLE001  (a malformed chain: the op's own inference reports it)
        return None
    if out is not None and t.shape and isinstance(t.shape[0], int) and len(out) != t.shape[0]:
        return None
    return out


def _evaluate(graph, node, name: str, ins, schema, attrs, memo: dict) -> SymValue | None:
    """Run the op's kernel when every input is known exactly (constants, or fully known values):
    the constant folding that inference needs before the folding pass has run."""
    args = []
    for n in ins:
        if n is None:
            args.append(None)
            continue
        t = graph.tensor(n)
        if t.value is not None:
            if t.value.size > MAX_EVAL_ELEMENTS:
                return None
            args.append(t.value)
            continue
        v = _value(graph, n, memo)
        if v is None or not all(isinstance(x, int) for x in v) or t.dtype is None or t.shape is None:
            return None
        args.append(np.array(v, dtype=t.dtype).reshape(t.shape))
    outs = graph.outputs_of(node)
    if schema.pass_num_outputs:
        attrs = dict(attrs, num_outputs=len(outs))
    with np.errstate(all="ignore"):
        result = schema.kernel(*args, **attrs)
    result = result[outs.index(name)] if isinstance(result, (tuple, list)) else result
    arr = np.asarray(result)
    if arr.ndim > 1 or arr.dtype.kind not in "biu":
        return None
    return [int(x) for x in arr.reshape(-1)]


def _in(graph, ins, k: int, memo: dict) -> SymValue | None:
    return _value(graph, ins[k], memo) if k < len(ins) and ins[k] is not None else None


def _consts(graph, ins, k: int) -> list[int] | None:
    v = graph.const_value(ins[k]) if k < len(ins) else None
    return None if v is None else [int(x) for x in np.asarray(v).reshape(-1)]


def _shape_rule(graph, node, ins, attrs, memo):
    shape = graph.tensor(ins[0]).shape
    if shape is None:
        return None
    r = len(shape)
    start = clamp_index(attrs["start"], r, 0, r)
    end = r if attrs["end"] is None else clamp_index(attrs["end"], r, 0, r)
    return list(shape[start:end])


def _size_rule(graph, node, ins, attrs, memo):
    shape = graph.tensor(ins[0]).shape
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return [int(np.prod(shape, dtype=np.int64))]


def _pass_rule(graph, node, ins, attrs, memo):
    return _in(graph, ins, 0, memo)


def _cast_rule(graph, node, ins, attrs, memo):
    if np.dtype(attrs["to"]).kind not in "iu":
        return None
    return _in(graph, ins, 0, memo)


def _gather_rule(graph, node, ins, attrs, memo):
    src = _in(graph, ins, 0, memo)
    idx = _consts(graph, ins, 1)
    if src is None or idx is None:
        return None
    n = len(src)
    if any(not -n <= j < n for j in idx):
        return None
    return [src[j] for j in idx]


def _concat_rule(graph, node, ins, attrs, memo):
    out: SymValue = []
    for k in range(len(ins)):
        part = _in(graph, ins, k, memo)
        if part is None:
            t = graph.tensor(ins[k])
            if t.shape is None or len(t.shape) != 1 or not isinstance(t.shape[0], int):
                return None
            part = [None] * t.shape[0]
        out.extend(part)
    return out


def _slice_rule(graph, node, ins, attrs, memo):
    src = _in(graph, ins, 0, memo)
    starts, ends = _consts(graph, ins, 1), _consts(graph, ins, 2)
    axes = _consts(graph, ins, 3) if len(ins) > 3 and ins[3] else [0]
    steps = _consts(graph, ins, 4) if len(ins) > 4 and ins[4] else [1]
    if src is None or starts is None or ends is None or axes is None or steps is None:
        return None
    if len(starts) != 1 or axes[0] not in (0, -1) or steps[0] == 0:
        return None
    n = len(src)
    lo, hi = (0, n) if steps[0] > 0 else (0, n - 1)
    e_lo, e_hi = (0, n) if steps[0] > 0 else (-1, n - 1)
    s, e = clamp_index(starts[0], n, lo, hi), clamp_index(ends[0], n, e_lo, e_hi)
    return src[slice(s, None if e < 0 else e, steps[0])]


def _arith_rule(fn: Callable[[int, int], int | None]) -> Callable:
    def rule(graph, node, ins, attrs, memo):
        def op(x: MaybeDim, y: MaybeDim) -> MaybeDim:
            return fn(x, y) if isinstance(x, int) and isinstance(y, int) else _sym_arith(fn, x, y)
        return _broadcast2(_in(graph, ins, 0, memo), _in(graph, ins, 1, memo), op)
    return rule


def _sym_arith(fn, x: MaybeDim, y: MaybeDim) -> MaybeDim:
    """x op y with a symbol: only the identities (N*1, N+0, N-0, N/1) keep the symbol."""
    if isinstance(x, str) and y in (1, 0):
        return x if fn(7, y) == 7 else None
    if isinstance(y, str) and x in (1, 0):
        return y if fn(x, 7) == 7 else None
    return None


def _div(a: int, b: int) -> int | None:
    if b == 0:
        return None
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _sub(a: int, b: int) -> int:
    return a - b


def _equal_rule(graph, node, ins, attrs, memo):
    """Equal on shape values: a dim is never negative, so ``N == -1`` is known to be false (the
    test PyTorch exports put before Expand and Reshape)."""
    def eq(x: MaybeDim, y: MaybeDim) -> int | None:
        if x is None or y is None:
            return None
        if isinstance(x, int) and isinstance(y, int):
            return int(x == y)
        if x == y:
            return 1
        other = x if isinstance(x, int) else y
        return 0 if isinstance(other, int) and other < 0 else None
    return _broadcast2(_in(graph, ins, 0, memo), _in(graph, ins, 1, memo), eq)


def _where_rule(graph, node, ins, attrs, memo):
    cond, a, b = (_in(graph, ins, k, memo) for k in range(3))
    if cond is None or a is None or b is None:
        return None
    n = max(len(cond), len(a), len(b))
    if any(len(v) not in (1, n) for v in (cond, a, b)):
        return None
    cond, a, b = (v * n if len(v) == 1 else v for v in (cond, a, b))
    return [x if c == 1 else y if c == 0 else (x if x == y else None) for c, x, y in zip(cond, a, b)]


def _broadcast2(a, b, fn):
    if a is None or b is None:
        return None
    if len(a) == 1 and len(b) != 1:
        a = a * len(b)
    if len(b) == 1 and len(a) != 1:
        b = b * len(a)
    if len(a) != len(b):
        return None
    return [fn(x, y) for x, y in zip(a, b)]


_RULES: dict[str, Callable] = {
    "Shape": _shape_rule, "Size": _size_rule, "Identity": _pass_rule, "Cast": _cast_rule,
    "Squeeze": _pass_rule, "Unsqueeze": _pass_rule, "Reshape": _pass_rule, "Flatten": _pass_rule,
    "Gather": _gather_rule, "Concat": _concat_rule, "Slice": _slice_rule,
    "Add": _arith_rule(lambda a, b: a + b), "Sub": _arith_rule(_sub),
    "Mul": _arith_rule(lambda a, b: a * b), "Div": _arith_rule(_div),
    "Equal": _equal_rule, "Where": _where_rule,
}
"""How each op maps symbolic input values to its output value (1-D and 0-D int tensors only)."""
