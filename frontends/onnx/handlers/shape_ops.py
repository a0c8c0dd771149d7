"""ONNX -> IR handlers for the shape_ops and indexing families (see canonical_ir/ops/shape_ops.py).

Only older spellings need a handler: axes and split as attributes before opset 13, Split's
num_outputs attribute (the IR takes the count from the node's outputs), Dropout's ratio attribute
(opset 10 form, read at 11 after upgrade), and the deprecated Scatter.
"""
from __future__ import annotations

import numpy as np

from convertkit.frontends.onnx.registry import ConvertContext, converter


def _only(ctx: ConvertContext, allowed: set[str]) -> None:
    unknown = set(ctx.attrs) - allowed
    if unknown:
        raise ctx.error(f"attribute(s) {sorted(unknown)} of {ctx.node.op_type} are not supported")


@converter("Squeeze", until=12)
@converter("Unsqueeze", until=12)
def axes_attribute(ctx: ConvertContext) -> None:
    """Opsets < 13 carried axes as an attribute; the IR takes them as a constant input."""
    _only(ctx, {"axes"})
    axes = ctx.attrs.get("axes")
    if axes is None and ctx.node.op_type == "Unsqueeze":
        raise ctx.error("Unsqueeze needs the axes attribute")
    ctx.emit(ctx.node.op_type, [ctx.input(0), ctx.const_or_none(axes, np.int64)])


@converter("Split", until=12)
def split_attribute(ctx: ConvertContext) -> None:
    """Opsets < 13 carried the split sizes as an attribute."""
    _only(ctx, {"axis", "split"})
    split = ctx.attrs.get("split")
    ctx.emit("Split", [ctx.input(0), ctx.const_or_none(split, np.int64)],
             attrs={"axis": ctx.attrs.get("axis", 0)})


@converter("Split", since=18)
def split_num_outputs(ctx: ConvertContext) -> None:
    """num_outputs (opset 18) must agree with the node's output count, which the IR uses."""
    attrs = dict(ctx.attrs)
    n = attrs.pop("num_outputs", None)
    if n is not None and ctx.input(1) is not None:
        raise ctx.error("Split has both a split input and num_outputs")
    if n is not None and n != len(ctx.outputs):
        raise ctx.error(f"Split has num_outputs={n} but {len(ctx.outputs)} outputs")
    _only(ctx, {"axis", "num_outputs"})
    ctx.emit("Split", ctx.inputs, attrs=attrs)


@converter("Dropout", until=11)
def dropout_ratio_attribute(ctx: ConvertContext) -> None:
    """Dropout-10 had a ratio attribute and no training mode: at inference it is the identity."""
    _only(ctx, {"ratio"})
    ctx.emit("Dropout", [ctx.input(0)])


@converter("Dropout", since=12)
def dropout(ctx: ConvertContext) -> None:
    """The seed only matters in training mode, which the IR refuses; it is not kept."""
    _only(ctx, {"seed"})
    ctx.emit("Dropout", ctx.inputs)


@converter("Scatter")
def scatter(ctx: ConvertContext) -> None:
    """Scatter (deprecated at opset 11) is ScatterElements without reduction."""
    _only(ctx, {"axis"})
    ctx.emit("ScatterElements", ctx.inputs, attrs={"axis": ctx.attrs.get("axis", 0)})

