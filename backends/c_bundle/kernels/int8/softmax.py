"""int8 Softmax: TFLite's ``reference_ops::Softmax`` for int8 as the IR's ``kernels_activation``
computes it, bit for bit.

Per row: the maximum; for each element the difference d = max - x (0..255) selects the fixed-point
exp (Q0.31) and its Rescale<12> from two 256-entry tables computed at export time with the IR's own
fixed-point functions (``preprocess_softmax_scaling``, ``exp_on_negative_values``; entries below the
input radius are 0, which gives both the sum's skip and the -128 output); the rest is integer C: the
wrapped int32 sum, GetReciprocal (count leading zeros, gemmlowp's one_over_one_plus_x), and the
rounding shift of the product to Q0.8 less 128, saturated. Any axis: rows are strided.
"""
from __future__ import annotations

import math

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.int8.movement import int8_per_tensor, qtype
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.quantize import fixedpoint as fx

INTEGER_BITS, ACCUMULATION_BITS = 5, 12


def exp_tables(input_scale) -> tuple[np.ndarray, np.ndarray]:
    """(exp, exp rescaled to Q12.19) for d = max - x in 0..255, 0 where the IR's ``softmax_int8``
    leaves the element out (d beyond the input radius)."""
    mult, left_shift = fx.preprocess_softmax_scaling(1.0, float(input_scale), INTEGER_BITS)
    diff_min = -fx.calculate_input_radius(INTEGER_BITS, left_shift)
    diff = -np.arange(256, dtype=np.int64)
    live = diff >= diff_min
    scaled = fx.multiply_by_quantized_multiplier_greater_than_one(diff, mult, left_shift)
    exp = fx.exp_on_negative_values(scaled, INTEGER_BITS)
    exp_acc = fx.saturating_rounding_multiply_by_pot(exp, -ACCUMULATION_BITS)
    return (np.where(live, exp, 0).astype(np.int32), np.where(live, exp_acc, 0).astype(np.int32))


def _check(graph: Graph, node: Node) -> str | None:
    x, y = graph.inputs_of(node)[0], graph.outputs_of(node)[0]
    why = int8_per_tensor(graph, node, [x, y])
    if why is not None:
        return why
    qy = qtype(graph, y)
    if not (math.isclose(float(qy.s), 1 / 256, rel_tol=1e-3) and qy.zp == -128):
        return ("TFLite's int8 Softmax output is quantized with scale 1/256 (0.00390625) and zero point "
                f"-128, got {float(qy.s):g} and {qy.zp}")
    shape = graph.tensor(x).shape
    axis = int(node.attrs.get("axis", -1)) % len(shape)
    if shape[axis] >= 4096:
        return f"int8 Softmax rows of {shape[axis]} elements would overflow the int32 sum"
    return None


@kernel("Softmax", precision="int8", check=_check)
def emit_softmax(ctx: EmitContext) -> str:
    x = ctx.inputs[0]
    shape = x.shape
    axis = int(ctx.attrs.get("axis", -1)) % len(shape)
    n = shape[axis]
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    exp, exp_acc = exp_tables(x.quant.s)
    t_exp = ctx.weight(exp, "exp")
    t_acc = ctx.weight(exp_acc, "exp_acc")
    st = "" if inner == 1 else f" * {inner}"
    rdbpot = "ck_rdbpot" if n < 512 else "ck_rdbpot64"   # n < 512: the sum < 2^28, the shift <= 31
    return f"""int32_t o, i, j;
for (o = 0; o < {outer}; ++o) {{
    for (i = 0; i < {inner}; ++i) {{
        const int8_t *row = in0 + o * {n * inner} + i;
        int8_t *dst = out0 + o * {n * inner} + i;
        int32_t mx = -128;
        uint32_t sum = 0u;
        int32_t total, shifted, recip, exponent;
        int headroom;
        for (j = 0; j < {n}; ++j) {{
            mx = row[j{st}] > mx ? row[j{st}] : mx;
        }}
        for (j = 0; j < {n}; ++j) {{
            sum += (uint32_t){t_acc}[mx - row[j{st}]];
        }}
        total = (int32_t)sum;
        headroom = ck_clz32((uint32_t)total);
        shifted = (int32_t)(((uint32_t)total << headroom) - 0x80000000u);
        recip = ck_one_over_one_plus_x(shifted);
        exponent = {ACCUMULATION_BITS} - headroom + 31 - 8;
        for (j = 0; j < {n}; ++j) {{
            const int32_t e = {t_exp}[mx - row[j{st}]];
            dst[j{st}] = (int8_t)ck_clamp({rdbpot}(ck_srdhm(recip, e), exponent) - 128, -128, 127);
        }}
    }}
}}"""
