"""ONNX -> IR handlers for the norm family (see canonical_ir/ops/norm.py).

BatchNormalization becomes the canonical inference-form op at every opset: ``momentum`` only matters
when training, and training mode (``training_mode=1``, or the extra outputs that opsets 9..13 produce
only in training) is refused. GroupNormalization at opsets 18..20 took one scale and bias per group;
the canonical op (opset 21) takes one per channel, so they are repeated over each group's channels.
"""
from __future__ import annotations

import numpy as np

from convertkit.frontends.onnx.handlers.activations import known_shape
from convertkit.frontends.onnx.registry import ConvertContext, converter


@converter("BatchNormalization")
def batch_normalization(ctx: ConvertContext) -> None:
    attrs = dict(ctx.attrs)
    attrs.pop("momentum", None)
    training = int(attrs.pop("training_mode", 0))
    extra = [o for o in ctx.node.output[1:] if o]
    if training or extra:
        raise ctx.error("BatchNormalization in training mode (batch statistics, running-statistic "
                        "outputs) is not supported", hint="export the model in inference (eval) mode")
    if int(attrs.pop("spatial", 1)) != 1:
        raise ctx.error("BatchNormalization with spatial=0 is not supported",
                        hint="flatten the input to [N, C*D1*...] before the op instead")
    unknown = set(attrs) - {"epsilon"}
    if unknown:
        raise ctx.error(f"attribute(s) {sorted(unknown)} of BatchNormalization are not supported")
    ctx.emit("BatchNormalization", ctx.inputs[:5], ctx.outputs[:1], attrs)


@converter("GroupNormalization", since=18, until=20)
def group_normalization_per_group(ctx: ConvertContext) -> None:
    """Scale and bias of shape [groups] become [channels] (each group's value over its channels)."""
    groups = int(ctx.attrs.get("num_groups", 0))
    if groups < 1:
        raise ctx.error("GroupNormalization needs a positive num_groups")
    shape = known_shape(ctx, ctx.input(0))
    channels = shape[1] if shape is not None and len(shape) > 1 else None
    if not isinstance(channels, int):
        raise ctx.error("GroupNormalization before opset 21 needs a known channel count (its scale "
                        "and bias are per group and must be expanded per channel)",
                        hint="give the input a static channel dimension")
    if channels % groups:
        raise ctx.error(f"{channels} channels do not split into {groups} groups")
    per_group = channels // groups
    ins = [ctx.input(0)]
    for i, what in ((1, "scale"), (2, "bias")):
        value = ctx.const_value(i)
        if value is not None:
            ins.append(ctx.const(np.repeat(value.reshape(-1), per_group), name=f"{ctx.name}_{what}"))
        else:
            index = ctx.const(np.arange(channels, dtype=np.int64) // per_group, name=f"{ctx.name}_groups")
            ins.append(ctx.emit("Gather", [ctx.input(i), index], [ctx.tmp(what)], {"axis": 0},
                                name=f"{ctx.name}_{what}")[0])
    attrs = dict(ctx.attrs)
    ctx.emit("GroupNormalization", ins, attrs=attrs)
