"""IR -> ONNX handlers for the reduce family (see canonical_ir/ops/reduce.py).

At opsets where a Reduce* op takes ``axes`` as an attribute (before 13 for ReduceSum, 18 for the rest)
the axes must be a constant, and ``noop_with_empty_axes`` has no spelling: with no axes the node becomes
its elementwise part (Identity, Abs, ...), with axes it is irrelevant. Element types an older opset's
op lacks are refused with the opset that has them.
"""
from __future__ import annotations

from convertkit.backends.onnx.handlers.linalg import check_types, register_checked
from convertkit.backends.onnx.registry import ExportContext, exporter

AXES_INPUT_SINCE = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18,
                    "ReduceL1": 18, "ReduceL2": 18, "ReduceSumSquare": 18, "ReduceLogSum": 18,
                    "ReduceLogSumExp": 18}
"""The opset from which each Reduce* takes ``axes`` as an input rather than an attribute."""

ELEMENTWISE_PART = {"ReduceL1": ("Abs",), "ReduceL2": ("Square", "Sqrt"), "ReduceSumSquare": ("Square",),
                    "ReduceLogSum": ("Log",)}
"""What a Reduce* op computes over no axis (one-element groups); the others give the element itself.
ReduceL2 stays sqrt(x * x) rather than |x|, with the reduction's own overflow and underflow."""


def _reduce_over_no_axis(ctx: ExportContext) -> None:
    """noop_with_empty_axes with no axes, before that attribute existed: the elementwise part alone."""
    steps = ELEMENTWISE_PART.get(ctx.node.op, ("Identity",))
    cur = ctx.input(0)
    for i, step in enumerate(steps):
        out = None if i == len(steps) - 1 else [ctx.tmp(step.lower())]
        cur = ctx.make_node("Mul", [cur, cur], out) if step == "Square" else ctx.make_node(step, [cur], out)
        cur = cur[0]


def _reduce_with_attr(ctx: ExportContext) -> None:
    check_types(ctx)
    op = ctx.node.op
    if ctx.has_input(1) and ctx.const_value(1) is None:
        raise ctx.error(f"{op} with run-time axes needs opset {AXES_INPUT_SINCE[op]} (older opsets take "
                        "axes only as an attribute)", hint=f"choose --opset {AXES_INPUT_SINCE[op]} or newer")
    axes = ctx.const_ints(1) or None
    if axes is None and ctx.attrs.get("noop_with_empty_axes", 0):
        _reduce_over_no_axis(ctx)
        return
    keepdims = int(ctx.attrs.get("keepdims", 1))
    ctx.make_node(op, [ctx.input(0)], axes=axes, keepdims=None if keepdims else 0)


def _reduce_with_input(ctx: ExportContext) -> None:
    check_types(ctx)
    ins = [ctx.input(0)] + ([ctx.input(1)] if ctx.has_input(1) else [])
    keepdims, noop = int(ctx.attrs.get("keepdims", 1)), int(ctx.attrs.get("noop_with_empty_axes", 0))
    ctx.make_node(ctx.node.op, ins, keepdims=None if keepdims else 0, noop_with_empty_axes=noop or None)


for _op, _since in AXES_INPUT_SINCE.items():
    exporter(_op, until=_since - 1)(_reduce_with_attr)
    exporter(_op, since=_since)(_reduce_with_input)


register_checked("ArgMax", "ArgMin", "TopK", "CumSum", "CumProd")
