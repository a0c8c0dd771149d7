"""The float edges of an int8 model (``quantized_io="float"``): QuantizeLinear float32 -> int8 and
DequantizeLinear int8 -> float32, per tensor. These are the only int8-bundle kernels with float
arithmetic (they are the float interface), exactly as the IR's kernels compute them:

- QuantizeLinear (``ops/quant.py``): q = saturate(round(x / scale) + zp) with the division in float32;
  ``rounding="half_away_from_zero"`` is TFLite's QUANTIZE (C's round, done here without libm: the
  float32 quotient's fraction is exact), ``"half_to_even"`` ONNX's. NaN gives the zero point, +-inf
  127 / -128 plus the zero point (numpy's ``nan_to_num`` in the IR), saturated.
- DequantizeLinear: (q - zp) * scale in float32.

An int8 -> int8 QuantizeLinear (a requantization) is the look-up table of ``lut.py``, registered first;
the float edge here is the kernel tried after it.
"""
from __future__ import annotations

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.int8 import lut  # noqa: F401  (its table kernel is tried first)
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema

F32 = np.dtype(np.float32)
I8 = np.dtype(np.int8)


def _params(graph: Graph, node: Node) -> tuple[np.ndarray | None, np.ndarray | None]:
    ins = list(graph.inputs_of(node)) + [None, None]
    scale = graph.const_value(ins[1]) if ins[1] is not None else None
    zp = graph.const_value(ins[2]) if ins[2] is not None else None
    return scale, zp


def _edge_check(graph: Graph, node: Node, src_dt: np.dtype, dst_dt: np.dtype) -> str | None:
    x = graph.tensor(graph.inputs_of(node)[0])
    y = graph.tensor(graph.outputs_of(node)[0])
    if np.dtype(x.dtype) != src_dt or np.dtype(y.dtype) != dst_dt:
        return f"int8 {node.op} edge converts {src_dt} -> {dst_dt} (got {x.dtype} -> {y.dtype})"
    ins = graph.inputs_of(node)
    if len(ins) < 2 or ins[1] is None:
        return f"{node.op} needs a scale"
    scale, zp = _params(graph, node)
    if scale is None or (len(ins) > 2 and ins[2] is not None and zp is None):
        return f"{node.op} needs constant scale and zero point"
    if np.asarray(scale).size != 1 or (zp is not None and np.asarray(zp).size != 1):
        return f"{node.op} per-axis or blocked parameters have no C kernel"
    if np.asarray(scale).dtype != F32:
        return f"{node.op} with a {np.asarray(scale).dtype} scale has no C kernel (float32 only)"
    if zp is not None and np.asarray(zp).dtype != I8:
        return f"{node.op} with a {np.asarray(zp).dtype} zero point has no C kernel (int8 only)"
    attrs = get_schema(node.op).resolve_attrs(node.attrs)
    if node.op == "QuantizeLinear" and attrs["precision"]:
        return "QuantizeLinear with a precision attribute has no C kernel"
    if node.op == "DequantizeLinear" and attrs["output_dtype"] not in (0, 1):
        return "DequantizeLinear to a type other than float32 has no C kernel"
    return None


def _scale_zp(ctx: EmitContext) -> tuple[float, int]:
    """The per-tensor scale and zero point (0 when absent) of a QuantizeLinear/DequantizeLinear."""
    zp_ref = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    zp = int(np.asarray(zp_ref.value).reshape(-1)[0]) if zp_ref is not None else 0
    return float(np.asarray(ctx.inputs[1].value).reshape(-1)[0]), zp


# ------------------------------------------------------------------------------------ QuantizeLinear
def _quantize_check(graph: Graph, node: Node) -> str | None:
    return _edge_check(graph, node, F32, I8)


@kernel("QuantizeLinear", precision="int8", check=_quantize_check)
def emit_quantize(ctx: EmitContext) -> str:
    scale, zp = _scale_zp(ctx)
    rounding = get_schema("QuantizeLinear").resolve_attrs(ctx.attrs)["rounding"]
    if rounding == "half_away_from_zero":
        rnd = """if (f >= 0.5f) {
            q += 1;
        } else if (f <= -0.5f) {
            q -= 1;
        }"""
    else:  # half to even
        rnd = """if (f > 0.5f || (f == 0.5f && (q & 1))) {
            q += 1;
        } else if (f < -0.5f || (f == -0.5f && (q & 1))) {
            q -= 1;
        }"""
    # |r| < 2^22 is converted exactly (its fraction r - trunc(r) is exact in float32); beyond, the
    # result saturates whatever the rounding
    return f"""int32_t i;
for (i = 0; i < {ctx.outputs[0].size}; ++i) {{
    const float r = in0[i] / {flit(scale)};
    int32_t q;
    if (r != r) {{
        q = 0;
    }} else if (r > 0x1.fffffep127f || r < -0x1.fffffep127f) {{   /* +-inf: 127 / -128, then the zero point */
        q = r > 0.0f ? 127 : -128;
    }} else if (r > 4194304.0f) {{
        q = 4194304;
    }} else if (r < -4194304.0f) {{
        q = -4194304;
    }} else {{
        const float f = r - (float)(int32_t)r;
        q = (int32_t)r;
        {rnd}
    }}
    out0[i] = (int8_t)ck_clamp(q + ({zp}), -128, 127);
}}"""


# ---------------------------------------------------------------------------------- DequantizeLinear
def _dequantize_check(graph: Graph, node: Node) -> str | None:
    return _edge_check(graph, node, I8, F32)


@kernel("DequantizeLinear", precision="int8", check=_dequantize_check)
def emit_dequantize(ctx: EmitContext) -> str:
    scale, zp = _scale_zp(ctx)
    return f"""int32_t i;
for (i = 0; i < {ctx.outputs[0].size}; ++i) {{
    out0[i] = (float)((int32_t)in0[i] - ({zp})) * {flit(scale)};
}}"""
