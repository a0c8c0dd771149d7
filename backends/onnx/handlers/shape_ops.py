"""IR -> ONNX handlers for the shape_ops and indexing families (see canonical_ir/ops/shape_ops.py).

Older opsets spell several of these ops differently: axes/split as attributes (< 13), no Split
num_outputs (< 18), no Pad axes (< 18) or wrap mode (< 19), no Shape start/end (< 15), no Reshape
allowzero (< 14), no Trilu (< 14), no min/max scatter reductions (< 18). Each handler writes the
op's exact meaning at the target opset or refuses, naming the opset that has it.
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir.ops.shape_ops import even_split, pad_widths

INT64_MAX = np.iinfo(np.int64).max


def _axes_const(ctx: ExportContext, axes: list[int], name: str = "axes") -> dict | str:
    """Axes for Squeeze/Unsqueeze written by this node: an attribute (< 13) or a constant input."""
    return {"axes": axes} if ctx.opset < 13 else ctx.const(np.array(axes, np.int64), name=name)


def _axes_op(ctx: ExportContext, x: str, axes: list[int], op: str = "Squeeze") -> str:
    """A Squeeze or Unsqueeze of ``x`` in the target opset's form; returns its output."""
    out = ctx.tmp(op.lower())
    form = _axes_const(ctx, axes)
    if isinstance(form, dict):
        ctx.make_node(op, [x], [out], name=f"{ctx.node.name}_{op.lower()}", **form)
    else:
        ctx.make_node(op, [x, form], [out], name=f"{ctx.node.name}_{op.lower()}")
    return out


@exporter("Squeeze", until=12)
@exporter("Unsqueeze", until=12)
def axes_attribute(ctx: ExportContext) -> None:
    ctx.make_node(ctx.node.op, [ctx.input(0)], axes=ctx.const_ints(1))


# ------------------------------------------------------------------------------------------ Split
def _static_split(ctx: ExportContext) -> list[int] | None:
    """Explicit sizes for a count-only Split, when the axis is static (uneven splits need them)."""
    shape = ctx.graph.tensor(ctx.input(0)).shape
    axis = ctx.attrs.get("axis", 0)
    dim = shape[axis] if shape is not None else None
    if not isinstance(dim, int):
        return None
    return even_split(dim, len(ctx.outputs))


@exporter("Split", until=12)
def split_attribute(ctx: ExportContext) -> None:
    split = ctx.const_ints(1) if ctx.has_input(1) else _static_split(ctx)
    ctx.make_node("Split", [ctx.input(0)], axis=ctx.attrs.get("axis", 0), split=split)


@exporter("Split", since=13, until=17)
def split_input(ctx: ExportContext) -> None:
    split = ctx.input(1)
    if not ctx.has_input(1):
        sizes = _static_split(ctx)
        split = "" if sizes is None else ctx.const(np.array(sizes, np.int64), name="split")
    ctx.make_node("Split", [ctx.input(0), split], axis=ctx.attrs.get("axis", 0))


@exporter("Split", since=18)
def split_num_outputs(ctx: ExportContext) -> None:
    n = None if ctx.has_input(1) else len(ctx.outputs)
    ctx.make_node("Split", [ctx.input(0), ctx.input(1)], axis=ctx.attrs.get("axis", 0), num_outputs=n)


# -------------------------------------------------------------------------------- Pad, Reshape
@exporter("Pad", until=18)
def pad_old(ctx: ExportContext) -> None:
    """Pad without axes (< 18) and without wrap mode (< 19)."""
    mode = ctx.attrs.get("mode", "constant")
    if mode == "wrap":
        raise ctx.error(f"Pad mode 'wrap' needs opset 19 (target is {ctx.opset})", hint="choose --opset 19+")
    pads = ctx.input(1)
    if ctx.has_input(3) and ctx.opset < 18:
        axes, raw = ctx.const_value(3), ctx.const_value(1)
        if axes is None or raw is None:
            raise ctx.error(f"Pad with axes needs constant pads and axes at opset {ctx.opset}",
                            hint="choose --opset 18+")
        rank = len(ctx.graph.tensor(ctx.input(0)).shape)
        widths = pad_widths(None, rank, raw, axes)
        pads = ctx.const(np.array([b for b, _ in widths] + [e for _, e in widths], np.int64), name="pads")
        ctx.make_node("Pad", [ctx.input(0), pads, ctx.input(2)], mode=mode)
        return
    ctx.make_node("Pad", [ctx.input(i) for i in range(len(ctx.inputs))], mode=mode)


@exporter("Reshape", until=13)
def reshape_no_allowzero(ctx: ExportContext) -> None:
    """Before opset 14 a 0 in the shape always copied the input dim; allowzero=1 is only writable
    when the shape has no 0, or the output shape is static."""
    shape = ctx.input(1)
    if ctx.attrs.get("allowzero", 0):
        value = ctx.const_value(1)
        if value is None or 0 in np.asarray(value):
            dims = _old_reshape_dims(ctx.graph.tensor(ctx.input(0)).shape, ctx.graph.tensor(ctx.outputs[0]).shape)
            if dims is None:
                raise ctx.error(f"Reshape allowzero=1 with a zero in the shape needs opset 14 "
                                f"(target is {ctx.opset})", hint="choose --opset 14+")
            shape = ctx.const(np.array(dims, np.int64), name="shape")
    ctx.make_node("Reshape", [ctx.input(0), shape])


def _old_reshape_dims(in_shape, out_shape) -> list[int] | None:
    """A pre-14 shape giving the static ``out_shape``: a 0 there copies the input dim, so an output
    0 must sit where the input has 0 too, or be the one -1 among otherwise non-zero dims."""
    if out_shape is None or in_shape is None or not all(isinstance(d, int) for d in out_shape):
        return None
    dims = list(out_shape)
    copied = [i for i, d in enumerate(dims) if d == 0 and i < len(in_shape) and in_shape[i] == 0]
    other = [i for i, d in enumerate(dims) if d == 0 and i not in copied]
    if not other:
        return dims
    if len(other) == 1 and not copied:
        dims[other[0]] = -1
        return dims
    return None


# ---------------------------------------------------------------------------------------- Shape
@exporter("Shape", until=14)
def shape_slice(ctx: ExportContext) -> None:
    """Shape start/end (opset 15) as Shape then Slice, whose clamping is the same."""
    start, end = ctx.attrs.get("start", 0), ctx.attrs.get("end")
    if start == 0 and end is None:
        ctx.make_node("Shape", [ctx.input(0)])
        return
    full = ctx.tmp("shape")
    ctx.make_node("Shape", [ctx.input(0)], [full], name=f"{ctx.node.name}_full")
    ctx.make_node("Slice", [full, ctx.const(np.array([start], np.int64), name="start"),
                            ctx.const(np.array([INT64_MAX if end is None else end], np.int64), name="end"),
                            ctx.const(np.array([0], np.int64), name="axis")])


# -------------------------------------------------------------------------------------- Dropout
@exporter("Dropout", until=11)
def dropout_v10(ctx: ExportContext) -> None:
    """Dropout at inference before opset 12: Identity, and the all-true mask as ConstantOfShape
    (onnxruntime's Dropout-10 returns an all-false mask, against the spec)."""
    ctx.make_node("Identity", [ctx.input(0)], ctx.outputs[:1])
    if len(ctx.outputs) > 1:
        shape = ctx.tmp("shape")
        ctx.make_node("Shape", [ctx.input(0)], [shape], name=f"{ctx.node.name}_shape")
        ctx.make_node("ConstantOfShape", [shape], ctx.outputs[1:2], name=f"{ctx.node.name}_mask",
                      value=numpy_helper.from_array(np.ones(1, bool)))


# ------------------------------------------------------------------------------------- Scatters
@exporter("ScatterElements", since=16, until=17)
@exporter("ScatterND", since=16, until=17)
def scatter_reduction(ctx: ExportContext) -> None:
    reduction = ctx.attrs.get("reduction", "none")
    if reduction in ("max", "min"):
        raise ctx.error(f"{ctx.node.op} reduction '{reduction}' needs opset 18 (target is {ctx.opset})",
                        hint="choose --opset 18+")
    ctx.make_node(ctx.node.op, [ctx.input(i) for i in range(3)], **ctx.attrs)


# ---------------------------------------------------------------------------------------- Trilu
@exporter("Trilu", until=13)
def trilu_as_where(ctx: ExportContext) -> None:
    """Trilu (opset 14) as Where(mask, x, 0); mask compares column - row with k. The mask is a
    constant when the matrix dims and k are, else it is built with Shape/Range at run time."""
    x = ctx.input(0)
    t = ctx.graph.tensor(x)
    upper = bool(ctx.attrs.get("upper", 1))
    zero = ctx.const(np.zeros((), t.dtype), name="zero")
    h, w = t.shape[-2], t.shape[-1]
    k_val = ctx.const_value(1) if ctx.has_input(1) else np.zeros((), np.int64)
    if isinstance(h, int) and isinstance(w, int) and k_val is not None:
        k = int(np.asarray(k_val).reshape(-1)[0])
        ones = np.ones((h, w), bool)
        mask = ctx.const(np.triu(ones, k) if upper else np.tril(ones, k), name="mask")
        ctx.make_node("Where", [mask, x, zero])
        return
    k = ctx.input(1) if ctx.has_input(1) else ctx.const(np.zeros((), np.int64), name="k")
    if isinstance(h, int) and isinstance(w, int):
        diff = ctx.const(np.arange(w)[None, :] - np.arange(h)[:, None], np.int64, name="diff")
    else:
        diff = _dynamic_diff(ctx, x)
    cmp, out = ctx.tmp("cmp"), ctx.tmp("mask")
    ctx.make_node("Less" if upper else "Greater", [diff, k], [cmp], name=f"{ctx.node.name}_cmp")
    ctx.make_node("Not", [cmp], [out], name=f"{ctx.node.name}_not")
    ctx.make_node("Where", [out, x, zero])


def _dynamic_diff(ctx: ExportContext, x: str) -> str:
    """column - row over the input's last two dims, computed at run time: an int64 [H, W]."""
    name = ctx.node.name
    shape = ctx.tmp("shape")
    ctx.make_node("Shape", [x], [shape], name=f"{name}_shape")
    ranges = []
    for label, start, end in (("rows", -2, -1), ("cols", -1, INT64_MAX)):
        dim = ctx.tmp(label)
        ctx.make_node("Slice", [shape, ctx.const(np.array([start], np.int64), name=f"{label}_start"),
                                ctx.const(np.array([end], np.int64), name=f"{label}_end")],
                      [dim], name=f"{name}_{label}_dim")
        count = _axes_op(ctx, dim, [0])
        seq = ctx.tmp(f"{label}_range")
        ctx.make_node("Range", [ctx.const(np.zeros((), np.int64), name="r0"), count,
                                ctx.const(np.ones((), np.int64), name="r1")], [seq], name=f"{name}_{label}")
        ranges.append(seq)
    rows = _axes_op(ctx, ranges[0], [1], op="Unsqueeze")
    diff = ctx.tmp("diff")
    ctx.make_node("Sub", [ranges[1], rows], [diff], name=f"{name}_diff")
    return diff
