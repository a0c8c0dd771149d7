"""IR -> ONNX handlers for the linalg family (see canonical_ir/ops/linalg.py and attention.py).

MatMul, Gemm, MatMulInteger and Det are written as they are (the default). Einsum is written with its
output term spelled out, which means the same and avoids onnxruntime's trouble with implicit equations
using upper-case labels. Attention exists
from opset 23; ``nonpad_kv_seqlen`` needs 24 and the window sizes 25, and the number-of-heads
attributes are written only for 3-D inputs (opset 25 rejects them on 4-D ones).
"""
from __future__ import annotations

from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir.ops.linalg import parse_einsum

ATTENTION_ATTRS_SINCE = {"is_causal": 23, "kv_num_heads": 23, "q_num_heads": 23, "qk_matmul_output_mode": 23,
                         "scale": 23, "softcap": 23, "softmax_precision": 23, "left_window_size": 25,
                         "right_window_size": 25}
ATTENTION_DEFAULTS = {"is_causal": 0, "qk_matmul_output_mode": 0, "softcap": 0.0, "left_window_size": -1,
                      "right_window_size": -1}


@exporter("Attention", since=23)
def attention(ctx: ExportContext) -> None:
    if ctx.has_input(6) and ctx.opset < 24:
        raise ctx.error("Attention with nonpad_kv_seqlen needs opset 24", hint="choose --opset 24 or newer")
    attrs = {k: v for k, v in ctx.attrs.items() if v is not None and ATTENTION_DEFAULTS.get(k) != v}
    if ctx.graph.tensor(ctx.input(0)).rank == 4:
        attrs.pop("q_num_heads", None)
        attrs.pop("kv_num_heads", None)
    too_new = sorted(k for k in attrs if ATTENTION_ATTRS_SINCE.get(k, 10_000) > ctx.opset)
    if too_new:
        need = max(ATTENTION_ATTRS_SINCE.get(k, 10_000) for k in too_new)
        raise ctx.error(f"Attention with {', '.join(f'{k}={attrs[k]}' for k in too_new)} needs opset {need}",
                        hint=f"choose --opset {need} or newer")
    ctx.make_node("Attention", [ctx.input(i) for i in range(len(ctx.inputs))], **attrs)


@exporter("Einsum", since=12)
def einsum(ctx: ExportContext) -> None:
    terms, out = parse_einsum(ctx.attrs["equation"], len(ctx.inputs))
    equation = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    ctx.make_node("Einsum", [ctx.input(i) for i in range(len(ctx.inputs))], equation=equation)
