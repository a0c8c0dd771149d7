"""ONNX -> IR handlers for the reduce family (see canonical_ir/ops/reduce.py).

Before opset 13 (ReduceSum) and 18 (the other Reduce* ops) ``axes`` was an attribute, and there was no
``noop_with_empty_axes``; the canonical op takes axes as a constant second input.
"""
from __future__ import annotations

import numpy as np

from convertkit.frontends.onnx.registry import ConvertContext, converter

AXES_INPUT_SINCE = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18,
                    "ReduceL1": 18, "ReduceL2": 18, "ReduceSumSquare": 18, "ReduceLogSum": 18,
                    "ReduceLogSumExp": 18}
"""The opset from which each Reduce* takes ``axes`` as an input rather than an attribute."""


def reduce_axes_attr(ctx: ConvertContext) -> None:
    """Axes attribute -> constant axes input (absent stays absent: reduce over all axes)."""
    attrs = dict(ctx.attrs)
    axes = attrs.pop("axes", None)
    unknown = set(attrs) - {"keepdims"}
    if unknown:
        raise ctx.error(f"attribute(s) {sorted(unknown)} of {ctx.node.op_type} are not supported")
    axes_name = ctx.const(np.asarray(axes, np.int64), name=f"{ctx.name}_axes") if axes else None
    ctx.emit(ctx.node.op_type, [ctx.input(0), axes_name], attrs=attrs)


for _op, _since in AXES_INPUT_SINCE.items():
    converter(_op, until=_since - 1)(reduce_axes_attr)
