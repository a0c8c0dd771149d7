"""int8 Gemm and constant-B MatMul: TFLite FULLY_CONNECTED, bit-exact with the IR's integer kernels
(``gemm_int`` / ``matmul_int`` in ``canonical_ir/quantize/kernels_conv.py``).

acc = bias + sum((a - zp_a) * (b - zp_b)) in int32, MultiplyByQuantizedMultiplier, + zp_y, clamp. The
multiplier is the IR's ``fc_real_multiplier``: per channel s_a * s_b[n] / s_y in double, per tensor
float32(s_a * s_b) / s_y (TFLite's ``GetQuantizedConvolutionMultipler``), so the two differ in the last
bit for some scales, as in TFLite.

The weights are stored one output channel per row ([N, K], zero point subtracted); the input zero point is
folded into the bias at export time, so each output is a dot product over a contiguous row plus one
requantization. Four output channels share each pass over the input row (``ck_dot4_s8``: with the ARM DSP
extension the input word is sign-extended once for four weight rows, two 16-bit MACs per SMLAD), then a
pair and a single for the rest. Rows of A (Gemm's M, MatMul's batch and row dims) run one after another
over the same weights.
"""
from __future__ import annotations

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.int8.conv import (
    Requant,
    check_int8_weighted,
    weights_minus_zp,
    wrap32,
)
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops.registry import get_schema
from convertkit.canonical_ir.quantize.kernels_conv import fc_real_multiplier


def _gemm_check(graph: Graph, node: Node) -> str | None:
    attrs = get_schema("Gemm").resolve_attrs(node.attrs)
    ins = graph.inputs_of(node)
    c = ins[2] if len(ins) > 2 else None
    if float(attrs["alpha"]) != 1.0 or (c is not None and float(attrs["beta"]) != 1.0):
        return "an int8 Gemm needs alpha = beta = 1"
    why = check_int8_weighted(graph, node, 0 if attrs["transB"] else 1, "Gemm")
    if why:
        return why
    b = graph.const_value(ins[1])
    if b.ndim != 2:
        return "an int8 Gemm needs 2-D weights"
    n = b.shape[0] if attrs["transB"] else b.shape[1]
    if c is not None and graph.const_value(c).size not in (1, n):
        return f"an int8 Gemm bias needs 1 or {n} values"
    return None


def _matmul_check(graph: Graph, node: Node) -> str | None:
    ins = graph.inputs_of(node)
    b = graph.const_value(ins[1]) if len(ins) > 1 else None
    if b is None:
        return "the C bundle's int8 MatMul needs a constant B (FULLY_CONNECTED)"
    if b.ndim < 2 or any(d != 1 for d in b.shape[:-2]):
        return "the C bundle's int8 MatMul needs a 2-D constant B"
    a = graph.tensor(ins[0])
    if a.shape is None or len(a.shape) < 1:
        return "the C bundle's int8 MatMul needs A of rank >= 1"
    return check_int8_weighted(graph, node, b.ndim - 1, "MatMul")


def _dense(ctx: EmitContext, wt: np.ndarray, bias: np.ndarray | None, rows: int, trans_a: bool) -> str:
    """Y[r, n] = requant(bias[n] + sum_k (A[r, k] - zp_a) * wt[n, k]); A row-major [rows, K] (or
    [K, rows] when ``trans_a``)."""
    a, w, y = ctx.inputs[0], ctx.inputs[1], ctx.outputs[0]
    n_out, k = wt.shape
    za = int(a.quant.zp)
    b64 = np.zeros(n_out, np.int64) if bias is None else np.broadcast_to(bias.astype(np.int64).reshape(-1),
                                                                          (n_out,))
    bias_f = wrap32(b64 - za * wt.astype(np.int64).sum(axis=1))
    wsym = ctx.weight(np.ascontiguousarray(wt), "w")
    bsym = ctx.weight(bias_f, "bias_zp")
    rq = Requant(ctx, fc_real_multiplier(a.quant, w.quant, y.quant), n_out)
    lines = ["int32_t r;", "const int8_t *xp = in0;", "int8_t *yp = out0;"]
    if n_out >= 4:
        lines[0] = "int32_t r, o;"
    if trans_a:
        ctx.scratch(k)
        lines += ["int32_t i;", "int8_t *col = (int8_t *)scratch;"]
    lines.append(f"for (r = 0; r < {rows}; ++r) {{")
    if trans_a:
        lines += [f"    for (i = 0; i < {k}; ++i) {{", f"        col[i] = in0[i * {rows} + r];", "    }",
                  "    xp = col;"]
    # four output channels per pass over the input row (shared loads), then two, then one
    n4 = n_out - n_out % 4
    if n4:
        lines += [f"    for (o = 0; o < {n4}; o += 4) {{",
                  (f"        int32_t acc0 = {bsym}[o], acc1 = {bsym}[o + 1], acc2 = {bsym}[o + 2], "
                   f"acc3 = {bsym}[o + 3];"),
                  f"        ck_dot4_s8(xp, {wsym} + o * {k}, {k}, {k}, &acc0, &acc1, &acc2, &acc3);"]
        lines += [f"        yp[o + {j}] = {rq.expr(f'acc{j}', f'(o + {j})')};" for j in range(4)]
        lines.append("    }")
    if n_out % 4 >= 2:
        o = n4
        lines += ["    {",
                  f"        int32_t acc0 = {bsym}[{o}], acc1 = {bsym}[{o + 1}];",
                  f"        ck_dot2_s8(xp, {wsym} + {o * k}, {wsym} + {(o + 1) * k}, {k}, &acc0, &acc1);",
                  f"        yp[{o}] = {rq.expr('acc0', str(o))};",
                  f"        yp[{o + 1}] = {rq.expr('acc1', str(o + 1))};",
                  "    }"]
    if n_out % 2:
        o = n_out - 1
        lines += [f"    yp[{o}] = {rq.expr(f'ck_dot_s8(xp, {wsym} + {o * k}, {k}, {bsym}[{o}])', str(o))};"]
    if not trans_a:
        lines.append(f"    xp += {k};")
    lines += [f"    yp += {n_out};", "}"]
    return "\n".join(lines)


@kernel("Gemm", precision="int8", check=_gemm_check)
def emit_gemm(ctx: EmitContext) -> str:
    attrs = get_schema("Gemm").resolve_attrs(ctx.node.attrs)
    wd = weights_minus_zp(ctx.inputs[1])
    wt = wd if attrs["transB"] else wd.T                     # [N, K]
    c = ctx.inputs[2] if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
    rows = ctx.outputs[0].shape[0]
    return _dense(ctx, wt, None if c is None else c.value, rows, bool(attrs["transA"]))


@kernel("MatMul", precision="int8", check=_matmul_check)
def emit_matmul(ctx: EmitContext) -> str:
    wd = weights_minus_zp(ctx.inputs[1])
    wd = wd.reshape(wd.shape[-2:])                           # [K, N]
    k = wd.shape[0]
    rows = ctx.inputs[0].size // k
    return _dense(ctx, np.ascontiguousarray(wd.T), None, rows, False)
