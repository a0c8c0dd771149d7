"""ONNX -> IR handlers for the quant family (see canonical_ir/ops/quant.py).

The ops map one to one (older opsets just lack attributes whose defaults apply). What the handlers add
is the bookkeeping DESIGN.md asks for: an imported quantized model keeps its parameters, so the
quantized tensor of each QuantizeLinear/DequantizeLinear/QLinear* node with constant scale and zero
point gets them as its ``quant`` (per tensor or per channel; blocked parameters are left on the op).
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.graph import QuantParams
from convertkit.frontends.onnx.registry import ConvertContext, converter, default_handler


def _annotate(ctx: ConvertContext, tensor: str | None, scale_port: int, zp_port: int | None,
              axis: int | None = None) -> None:
    """Record constant (scale, zero point) on ``tensor`` unless it already has parameters.

    ``axis``: the channel axis of a 1-D scale (default: the node's ``axis`` attribute); negative stays
    negative (from the end) when the tensor's rank is not known yet.
    """
    if tensor is None or ctx.graph.tensor(tensor).quant is not None or ctx.attrs.get("block_size", 0):
        return
    scale = ctx.const_value(scale_port)
    zp = ctx.const_value(zp_port) if zp_port is not None and ctx.input(zp_port) else None
    if scale is None or (zp_port is not None and ctx.input(zp_port) and zp is None):
        return
    if zp is None:  # no zero point: 0, in the quantized type where it is known already
        dt = ctx.graph.tensor(tensor).dtype
        zp = np.zeros(scale.shape, np.int32 if dt is None else dt)
    if scale.size > 1:
        rank = ctx.graph.tensor(tensor).rank
        axis = int(ctx.attrs.get("axis", 1)) if axis is None else axis
        if rank is not None and axis < 0:
            axis += rank
    else:
        axis = None
    ctx.graph.tensor(tensor).quant = QuantParams(scale.reshape(-1) if axis is not None else scale,
                                                 zp.reshape(-1) if axis is not None else zp, axis)


@converter("QuantizeLinear")
def quantize_linear(ctx: ConvertContext) -> None:
    default_handler(ctx)
    _annotate(ctx, ctx.outputs[0], 1, 2)


@converter("DequantizeLinear")
def dequantize_linear(ctx: ConvertContext) -> None:
    default_handler(ctx)
    _annotate(ctx, ctx.input(0), 1, 2)


@converter("QLinearMatMul")
def qlinear_matmul(ctx: ConvertContext) -> None:
    default_handler(ctx)
    _annotate(ctx, ctx.input(0), 1, 2, axis=-2)  # per row of a
    _annotate(ctx, ctx.input(3), 4, 5, axis=-1)  # per column of b
    _annotate(ctx, ctx.outputs[0], 6, 7)


@converter("QLinearConv")
def qlinear_conv(ctx: ConvertContext) -> None:
    default_handler(ctx)
    _annotate(ctx, ctx.input(0), 1, 2)
    _annotate(ctx, ctx.input(3), 4, 5, axis=0)  # per output channel of w
    _annotate(ctx, ctx.outputs[0], 6, 7)
