"""ONNX -> IR handlers for the activations family (see canonical_ir/ops/activations.py).

Every activation maps by name onto its canonical op except the softmax family before opset 13, which
coerced its input to 2D at ``axis`` (default 1): the op then ran over all the axes from ``axis`` on.
When the input's rank is known and ``axis`` is the last axis that is the canonical op itself; otherwise
it becomes Flatten, the canonical op over the flattened axis, and a Reshape back to the input's shape.
"""
from __future__ import annotations

from convertkit.canonical_ir.ops.registry import normalize_axis
from convertkit.errors import ConvertError
from convertkit.frontends.onnx.registry import ConvertContext, converter


def known_shape(ctx: ConvertContext, name: str) -> tuple | None:
    """The shape of IR tensor ``name`` if it can be known while the graph is still being built.

    Graph inputs and constants have theirs; a computed tensor gets one by running shape inference
    over what has been converted so far (None when that fails, e.g. on a data-dependent Reshape;
    any failure only means "unknown", since the caller has a lowering that needs no shape).
    """
    t = ctx.graph.tensor(name)
    if t.shape is None:
        from convertkit.canonical_ir.passes.infer import infer_shapes

        try:
            infer_shapes(ctx.graph)
        except Exception:  # noqa: BLE001  (a probe: the caller falls back)
            return None
    return ctx.graph.tensor(name).shape


def _coerced_2d(ctx: ConvertContext) -> None:
    """Softmax/LogSoftmax/Hardmax at opsets 1..12: the op over all axes from ``axis`` on."""
    op = ctx.node.op_type
    axis = int(ctx.attrs.pop("axis", 1))
    if ctx.attrs:
        raise ctx.error(f"attribute(s) {sorted(ctx.attrs)} of {op} are not supported")
    x = ctx.input(0)
    shape = known_shape(ctx, x)
    if shape is not None:
        try:
            last = normalize_axis(axis, len(shape)) == len(shape) - 1
        except ConvertError:
            raise ctx.error(f"axis {axis} is out of range for an input of rank {len(shape)}") from None
        if last:
            ctx.emit(op, [x], attrs={"axis": -1})
            return
    flat = ctx.emit("Flatten", [x], [ctx.tmp("flat")], {"axis": axis}, name=f"{ctx.name}_flatten")[0]
    out = ctx.emit(op, [flat], [ctx.tmp(op.lower())], {"axis": 1})[0]
    shape_t = ctx.emit("Shape", [x], [ctx.tmp("shape")], name=f"{ctx.name}_shape")[0]
    ctx.emit("Reshape", [out, shape_t], name=f"{ctx.name}_reshape")


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    converter(_op, until=12)(_coerced_2d)
