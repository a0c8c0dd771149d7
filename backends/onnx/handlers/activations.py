"""IR -> ONNX handlers for the activations family (see canonical_ir/ops/activations.py).

Ops newer than the target opset are lowered before export by the IR's decomposition rules
(``canonical_ir/passes/decompose.py``, run by legalization: HardSwish before 14, Gelu before 20, Mish
before 18, Swish before 24); only dtype-dependent spellings stay here: Celu (12; float32 only until
28). Softmax, LogSoftmax and Hardmax before opset 13 coerced their input to 2D at ``axis``: over the
last axis that is the canonical op, over any other it is wrapped in two Transposes. Relu and
Clip on integers before the opsets that accept them run on doubles (exact for up to 32-bit integers).
Element types an older op lacks and that have no exact detour are refused, naming the opset needed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.registry import normalize_axis


class Nodes:
    """Writes the ONNX nodes of one canonical node's decomposition.

    ``nodes("Mul", a, b)`` adds a node with a fresh output and returns its name; ``out=True`` makes it
    produce the canonical node's first output. ``nodes.c(v)`` is a constant in the computation's dtype.
    """

    def __init__(self, ctx: ExportContext, dtype: np.dtype | None = None) -> None:
        self.ctx = ctx
        self.attrs: dict[str, Any] = get_schema(ctx.node.op).resolve_attrs(ctx.attrs)
        self._dtypes: dict[str, np.dtype] = {}
        self.dtype = np.dtype(dtype) if dtype is not None else self.type_of(ctx.input(0))[0]

    def type_of(self, name: str) -> tuple[np.dtype, tuple]:
        """(dtype, shape) of an IR tensor."""
        t = self.ctx.graph.tensor(name)
        return t.dtype, t.shape

    def dtype_of(self, name: str) -> np.dtype:
        """dtype of an IR tensor or of an intermediate this writer made."""
        return self._dtypes[name] if name in self._dtypes else self.type_of(name)[0]

    def __call__(self, op: str, *inputs: str, out: bool | str = False, **attrs: Any) -> str:
        name = (self.ctx.outputs[0] if out is True else out) if out else self.ctx.tmp(op.lower())
        self.ctx.make_node(op, list(inputs), [name], **attrs)
        # every op written here keeps its first input's dtype, except these two
        self._dtypes[name] = (dtypes.from_onnx(attrs["to"]) if op == "Cast" else
                              np.dtype(np.int64) if op == "Shape" else self.dtype_of(inputs[0]))
        return name

    def c(self, value: Any, dtype: Any = None, name: str = "const") -> str:
        return self.ctx.const(np.asarray(value, dtype=dtype if dtype is not None else self.dtype), name=name)

    def cast(self, name: str, dtype: np.dtype, out: bool | str = False) -> str:
        if self.dtype_of(name) == dtype and not out:
            return name
        return self("Cast", name, out=out, to=dtypes.to_onnx(dtype))

    def reduce_mean(self, x: str, axes: list[int], out: bool | str = False) -> str:
        """ReduceMean keeping dims; ``axes`` became an input at opset 18."""
        if self.ctx.opset >= 18:
            return self("ReduceMean", x, self.c(axes, np.int64, "axes"), out=out, keepdims=1)
        return self("ReduceMean", x, out=out, axes=axes, keepdims=1)


def needs(ctx: ExportContext, opset: int, why: str) -> Exception:
    return ctx.error(f"{why} needs opset {opset}", hint=f"choose --opset {opset} or newer")


# ----------------------------------------------------------------------- decompositions
@exporter("Celu", until=27)
def celu(ctx: ExportContext) -> None:
    """Celu-12 is float32 only (28 widened it): otherwise max(0,x) + min(0, alpha (exp(x/alpha) - 1))."""
    s = Nodes(ctx)
    if ctx.opset >= 12 and s.dtype == np.float32:
        ctx.make_node("Celu", [ctx.input(0)], **ctx.attrs)
        return
    x = ctx.input(0)
    alpha = float(s.attrs["alpha"])
    scaled = x if alpha == 1.0 else s("Div", x, s.c(alpha))
    neg = s("Sub", s("Exp", scaled), s.c(1.0))
    if alpha != 1.0:
        neg = s("Mul", neg, s.c(alpha))
    s("Add", s("Relu", x), s("Min", neg, s.c(0.0)), out=True)


def _coerced_2d(ctx: ExportContext) -> None:
    """Softmax family at opsets 11, 12: over the last axis directly, else moved there by Transposes."""
    s = Nodes(ctx)
    op, x = ctx.node.op, ctx.input(0)
    rank = len(s.type_of(x)[1])
    axis = normalize_axis(int(s.attrs["axis"]), rank)
    if axis == rank - 1:
        ctx.make_node(op, [x], axis=rank - 1)
        return
    perm = [a for a in range(rank) if a != axis] + [axis]
    back = [int(i) for i in np.argsort(perm)]
    moved = s(op, s("Transpose", x, perm=perm), axis=rank - 1)
    s("Transpose", moved, perm=back, out=True)


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    exporter(_op, until=12)(_coerced_2d)


# ------------------------------------------------------------------- integer element types
def _via_double(ctx: ExportContext, op: str, since: int) -> None:
    """Run ``op`` on doubles and cast back: exact for selections on integers of up to 32 bits."""
    s = Nodes(ctx)
    if s.dtype.kind not in "iu":
        ctx.make_node(op, [ctx.input(i) for i in range(len(ctx.inputs))], **ctx.attrs)
        return
    if s.dtype.itemsize > 4:
        raise needs(ctx, since, f"{op} on {s.dtype}")
    f64 = np.dtype(np.float64)
    ins = [s.cast(ctx.input(i), f64) if ctx.has_input(i) else "" for i in range(len(ctx.inputs))]
    s.cast(s(op, *ins, **ctx.attrs), s.dtype, out=ctx.outputs[0])


@exporter("Relu", until=13)
def relu_int(ctx: ExportContext) -> None:
    """Relu takes integers from opset 14; at 12 and 13 it is Max(x, 0), at 11 Relu on doubles."""
    s = Nodes(ctx)
    if s.dtype.kind in "iu" and ctx.opset >= 12:
        s("Max", ctx.input(0), s.c(0), out=True)
        return
    _via_double(ctx, "Relu", 12)


@exporter("Clip", until=11)
def clip_opset11(ctx: ExportContext) -> None:
    """Clip-11 takes floats only, and onnxruntime runs it on float16/float32 only: other types are
    Max and Min on doubles (exact for integers of up to 32 bits)."""
    s = Nodes(ctx)
    if s.dtype in (np.float16, np.float32):
        ctx.make_node("Clip", [ctx.input(i) for i in range(len(ctx.inputs))])
        return
    if s.dtype.itemsize > 4 and s.dtype.kind in "iu":
        raise needs(ctx, 12, f"Clip on {s.dtype}")
    f64 = np.dtype(np.float64)
    y = s.cast(ctx.input(0), f64)
    for port, op in ((1, "Max"), (2, "Min")):
        if ctx.has_input(port):
            y = s(op, y, s.cast(ctx.input(port), f64))
    s.cast(y, s.dtype, out=ctx.outputs[0])


@exporter("PRelu", until=15)
def prelu_int(ctx: ExportContext) -> None:
    """PRelu multiplies, so a double detour would not wrap like integer arithmetic: ints need 16."""
    s = Nodes(ctx)
    if s.dtype.kind in "iu":
        raise needs(ctx, 16, f"PRelu on {s.dtype}")
    ctx.make_node("PRelu", [ctx.input(0), ctx.input(1)])
