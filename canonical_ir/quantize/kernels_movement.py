"""Integer data movement (Reshape, Transpose, Slice, Concat, Pad, ...), the graph-edge ops
QuantizeLinear/DequantizeLinear, and ONNX's explicit-parameter integer ops.

Moving values does not change them, so a movement op runs its ordinary kernel on the stored integers.
Where a node's output is quantized differently from its input, the moved values are then requantized
exactly as TFLite's int-to-int QUANTIZE does (:func:`base.requantize`): TFLite's own movement kernels
require equal parameters, so an exporter writes that case as the op followed by a QUANTIZE, which is
this semantics. Concat requantizes each input to the output's parameters first (TFLite's int8
CONCATENATION requires them equal); Pad fills with the pad value quantized to the input's parameters
(TFLite's PAD fills with the zero point, PADV2 with its quantized constant).
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.quantize.base import (
    QType, activation_range, float_attrs, quantize_value, quantized, require, requantize, saturate)

MOVEMENT_OPS = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Slice",
                "Split", "Gather", "GatherND", "GatherElements", "Tile", "Expand", "DepthToSpace",
                "SpaceToDepth", "Shape", "Size")
"""Ops that only move, copy or drop values (or, for Shape/Size, look at the shape alone)."""

EXPLICIT_PARAMETER_OPS = ("DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv",
                          "MatMulInteger")
"""ONNX ops that take their scales and zero points as inputs and define their own (ONNX) arithmetic;
their kernels ignore ``Tensor.quant``, which on them only records what the inputs already say."""


def _outputs(result) -> list[np.ndarray]:
    return [np.asarray(o) for o in (result if isinstance(result, (tuple, list)) else [result])]


def _movement_kernel(op: str):
    kernel = get_schema(op).kernel

    def run(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        outs = _outputs(kernel(*inputs, **float_attrs(attrs)))
        src = in_q[0] if in_q else None
        result = []
        for o, q in zip(outs, out_q):
            if q is not None:
                require(src is not None, f"{op} output is quantized but its data input is not")
                o = requantize(o, src, q)
            result.append(o)
        return result
    run.__name__ = f"{op.lower()}_int"
    run.__doc__ = f"{op} on the stored integers, then requantized if the output's parameters differ."
    return run


for _op in MOVEMENT_OPS:
    quantized(_op)(_movement_kernel(_op))


@quantized("Concat")
def concat_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """CONCATENATION: every input requantized to the output's parameters, then joined (and clamped to
    a fused activation's range)."""
    y_q = out_q[0]
    require(y_q is not None and all(q is not None for q in in_q), "an integer Concat needs every input "
                                                                   "and the output quantized")
    parts = [requantize(x, q, y_q) for x, q in zip(inputs, in_q)]
    lo, hi = activation_range(attrs, y_q)
    return [saturate(np.concatenate(parts, axis=int(attrs["axis"]) % parts[0].ndim), y_q.dtype, lo, hi)]


@quantized("Pad")
def pad_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """PAD / PADV2 / MIRROR_PAD: a constant pad value is the real value given (float), or a quantized
    constant, stored in the input's parameters; then requantized to the output's."""
    x, pads, value, axes = (inputs + [None] * 4)[:4]
    x_q = in_q[0]
    require(x_q is not None and out_q[0] is not None, "an integer Pad needs its data quantized")
    fill = None
    if attrs["mode"] == "constant":
        if value is None or np.asarray(value).size == 0:
            fill = x_q.zp
        elif len(in_q) > 2 and in_q[2] is not None:
            fill = int(requantize(np.asarray(value).reshape(-1)[:1], in_q[2], x_q)[0])
        else:
            fill = int(saturate(np.asarray(quantize_value(float(np.asarray(value).reshape(-1)[0]), x_q)),
                                x_q.dtype))
    kernel = get_schema("Pad").kernel
    y = kernel(x, pads, None if fill is None else np.asarray(fill, x.dtype), axes, mode=attrs["mode"])
    return [requantize(np.asarray(y), x_q, out_q[0])]


def _explicit_kernel(op: str):
    schema = get_schema(op)

    def run(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        return _outputs(schema.kernel(*inputs, **attrs))
    run.__name__ = f"{op.lower()}_int"
    run.__doc__ = f"{op}: ONNX's arithmetic on its explicit scale and zero-point inputs."
    return run


for _op in EXPLICIT_PARAMETER_OPS:
    quantized(_op, real_valued_infer=False)(_explicit_kernel(_op))


@quantized("QuantizeLinear", real_valued_infer=False)
def quantize_linear_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """From float: the op's own kernel (ONNX's ties-to-even, or TFLite's QUANTIZE with
    ``rounding="half_away_from_zero"``). From a quantized tensor: TFLite's int-to-int QUANTIZE, a
    requantization to the parameters the node's scale and zero-point inputs give."""
    x, scale, zp = (inputs + [None] * 3)[:3]
    if in_q[0] is None:
        return _outputs(get_schema("QuantizeLinear").kernel(x, scale, zp, **attrs))
    require(np.asarray(scale).size == 1, "requantizing to per-channel parameters has no TFLite form")
    dt = zp.dtype if zp is not None else (out_q[0].dtype if out_q[0] is not None else np.dtype(np.uint8))
    target = QType.make(dt, np.asarray(scale).reshape(()), 0 if zp is None else np.asarray(zp).reshape(()))
    return [requantize(x, in_q[0], target)]
