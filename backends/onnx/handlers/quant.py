"""IR -> ONNX handlers for the quant family (see canonical_ir/ops/quant.py).

QuantizeLinear/DequantizeLinear grew features opset by opset (per-axis at 13, half scales at 19,
int16 and blocks at 21, mixed scale types, ``precision`` and ``output_dtype`` at 23). Each node is
checked against that table, and one that needs a newer opset is refused naming the opset and why.
Redundant attributes are left out, so files stay clean.
"""
from __future__ import annotations

import numpy as np

from convertkit.backends.onnx.handlers.linalg import check_types, register_checked
from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir import dtypes

F32, F16 = np.dtype(np.float32), np.dtype(np.float16)
INT16S = (np.dtype(np.int16), np.dtype(np.uint16))


def _dtype(ctx: ExportContext, i: int) -> np.dtype:
    return ctx.graph.tensor(ctx.input(i)).dtype


def _shape(ctx: ExportContext, i: int) -> tuple:
    return ctx.graph.tensor(ctx.input(i)).shape


def _per_tensor(ctx: ExportContext) -> bool:
    """A scalar (or one-element) scale; a symbolic dim counts as possibly more."""
    return all(d == 1 for d in _shape(ctx, 1))


def _granularity(ctx: ExportContext) -> list[tuple[int, str]]:
    """(opset needed, why) for the per-axis / blocked forms."""
    if ctx.attrs.get("block_size", 0):
        return [(21, "blocked quantization")]
    if not _per_tensor(ctx):
        return [(13, "per-axis quantization")]
    return []


def _require(ctx: ExportContext, needs: list[tuple[int, str]]) -> None:
    missing = [(v, why) for v, why in needs if ctx.opset < v]
    if missing:
        v = max(v for v, _ in missing)
        raise ctx.error(f"{ctx.node.op} with {', '.join(why for _, why in missing)} needs opset {v}",
                        hint=f"choose --opset {v} or newer")


def _axis_attrs(ctx: ExportContext) -> dict:
    """axis (13+) and block_size (21+), left out where they are defaults or meaningless."""
    attrs = {}
    block = int(ctx.attrs.get("block_size", 0))
    if ctx.opset >= 13 and (block or not _per_tensor(ctx)):
        attrs["axis"] = int(ctx.attrs.get("axis", 1))
    if block:
        attrs["block_size"] = block
    return attrs


@exporter("QuantizeLinear")
def quantize_linear(ctx: ExportContext) -> None:
    x_dt, s_dt = _dtype(ctx, 0), _dtype(ctx, 1)
    out = ctx.graph.tensor(ctx.outputs[0]).dtype
    if out not in (np.dtype(np.int8), np.dtype(np.uint8)) + INT16S:
        raise ctx.error(f"QuantizeLinear to {out} has no ONNX form (ONNX quantizes to 8 and 16 bits)")
    if ctx.attrs.get("rounding", "half_to_even") != "half_to_even":
        raise ctx.error("QuantizeLinear rounding half away from zero (TFLite's QUANTIZE) has no ONNX form: "
                        "ONNX rounds half to even", hint="values exactly halfway between steps would differ")
    needs = _granularity(ctx)
    if out in INT16S:
        needs.append((21, f"{out} output"))
    if x_dt == F16 or s_dt == F16:
        needs.append((19, "float16 input or scale"))
    if s_dt != x_dt and x_dt.kind == "f":
        needs.append((23, f"{x_dt} input with a {s_dt} scale"))
    if ctx.attrs.get("precision", 0):
        needs.append((23, "the precision attribute"))
    _require(ctx, needs)
    check_types(ctx)
    attrs = _axis_attrs(ctx)
    if ctx.attrs.get("precision", 0):
        attrs["precision"] = int(ctx.attrs["precision"])
    zp = ctx.input(2) if ctx.has_input(2) else ""
    if not zp and out != np.dtype(np.uint8):
        if ctx.opset >= 21:
            attrs["output_dtype"] = dtypes.to_onnx(out)
        else:  # the zero point's type is the only way to name the output type
            zp = ctx.const(np.zeros(_shape(ctx, 1), out), name="zero_point")
    ctx.make_node("QuantizeLinear", [ctx.input(0), ctx.input(1), zp], **attrs)


@exporter("DequantizeLinear")
def dequantize_linear(ctx: ExportContext) -> None:
    x_dt, s_dt = _dtype(ctx, 0), _dtype(ctx, 1)
    out = ctx.graph.tensor(ctx.outputs[0]).dtype
    needs = _granularity(ctx)
    if x_dt in INT16S:
        needs.append((21, f"{x_dt} input"))
    if s_dt != F32:
        needs.append((19, f"{s_dt} scale"))
    if out != s_dt:
        needs.append((23, f"{out} output from a {s_dt} scale"))
    _require(ctx, needs)
    check_types(ctx)
    attrs = _axis_attrs(ctx)
    if out != s_dt:
        attrs["output_dtype"] = dtypes.to_onnx(out)
    ctx.make_node("DequantizeLinear", [ctx.input(i) for i in range(len(ctx.inputs))], **attrs)


@exporter("QLinearMatMul")
def qlinear_matmul(ctx: ExportContext) -> None:
    scale_types = {_dtype(ctx, i) for i in (1, 4, 6)}
    if scale_types != {F32}:
        _require(ctx, [(21, f"{'/'.join(sorted(map(str, scale_types)))} scales")])
    check_types(ctx)
    ctx.make_node("QLinearMatMul", [ctx.input(i) for i in range(len(ctx.inputs))])


register_checked("DynamicQuantizeLinear", "QLinearConv", "MatMulInteger")
