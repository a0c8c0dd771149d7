"""int8 Add, Sub and Mul with numpy broadcasting: TFLite's ADD, SUB and MUL as the IR's
``kernels_elementwise`` computes them.

ADD/SUB: each input less its zero point, shifted left by 20, scaled by its own multiplier
(MultiplyByQuantizedMultiplierSmallerThanOneExp), summed or subtracted, scaled by the output
multiplier, plus the output zero point, clamped to the fused activation's range. MUL: the product of
the zero-point-free inputs requantized by s_1 s_2 / s_y (MultiplyByQuantizedMultiplier). The
multipliers are the IR's (``fixedpoint.quantize_multiplier*`` on the same double values). A constant
operand is pre-scaled at export time with the IR's own fixed-point functions (an int32 literal for a
scalar, an array otherwise); so is a run-time operand of a large Add/Sub, as a 256-entry int32 table
indexed by its value (one load instead of two high multiplies per element); a broadcast run-time
operand of a small one is rescaled once into scratch. Broadcasting becomes strided loops
(:func:`movement_maps.loop_nest`).
"""
from __future__ import annotations

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.int8.movement import int8_per_tensor, qtype
from convertkit.backends.c_bundle.kernels.movement_maps import loop_nest
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.base import activation_range

LEFT_SHIFT = 20
LUT_MIN_USES = 1024
"""From this many output elements on, a run-time Add/Sub input's rescaling is a 256-entry table."""


def _add_params(qa, qb, qy):
    """The IR's ``_add_sub`` multipliers (double arithmetic, QuantizeMultiplierSmallerThanOneExp)."""
    twice_max = 2.0 * float(max(qa.s, qb.s))
    m1, s1 = fx.quantize_multiplier_smaller_than_one_exp(float(qa.s) / twice_max)
    m2, s2 = fx.quantize_multiplier_smaller_than_one_exp(float(qb.s) / twice_max)
    mo, so = fx.quantize_multiplier_smaller_than_one_exp(twice_max / (float(1 << LEFT_SHIFT) * float(qy.s)))
    return (int(m1), int(s1)), (int(m2), int(s2)), (int(mo), int(so))


def _mul_params(qa, qb, qy):
    real = np.float64(qa.s) * np.float64(qb.s) / np.float64(qy.s)
    m, shift = fx.quantize_multiplier(np.float64(real))
    return int(m), int(shift)


def _check(graph: Graph, node: Node) -> str | None:
    ins, outs = graph.inputs_of(node), graph.outputs_of(node)
    if len(ins) != 2 or any(t is None for t in ins):
        return f"int8 {node.op} takes two inputs"
    why = int8_per_tensor(graph, node, [*ins, outs[0]])
    if why is not None:
        return why
    qa, qb, qy = (qtype(graph, t) for t in (*ins, outs[0]))
    try:
        activation_range(node.attrs, qy)
        if node.op == "Mul":
            _mul_params(qa, qb, qy)
        else:
            _add_params(qa, qb, qy)
    except Exception as e:  # noqa: BLE001  (a multiplier outside TFLite's range, an unfusable activation)
        return f"int8 {node.op}: {e}"
    shapes = [tuple(graph.tensor(t).shape) for t in (*ins, outs[0])]
    try:
        if tuple(np.broadcast_shapes(shapes[0], shapes[1])) != shapes[2]:
            return f"int8 {node.op}: output shape {shapes[2]} is not the broadcast of {shapes[0]} and {shapes[1]}"
    except ValueError as e:
        return f"int8 {node.op}: {e}"
    return None


def _bcast_index(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    idx = np.arange(n, dtype=np.int64).reshape((1,) * (len(out_shape) - len(shape)) + tuple(shape))
    return np.broadcast_to(idx, out_shape)


@kernel("Add", "Sub", "Mul", precision="int8", check=_check, inplace=True)
def emit_binary(ctx: EmitContext) -> str:
    a, b, y = ctx.inputs[0], ctx.inputs[1], ctx.outputs[0]
    qa, qb, qy = a.quant, b.quant, y.quant
    lo, hi = activation_range(ctx.attrs, qy)
    out_shape = tuple(y.shape)
    refs = [("out0", "int8_t", np.arange(y.size, dtype=np.int64).reshape(out_shape))]
    terms: list[str] = []
    pre_lines: list[str] = []
    scratch_off = 0
    if ctx.node.op == "Mul":
        m, shift = _mul_params(qa, qb, qy)
        for i, (ref, q) in enumerate(((a, qa), (b, qb))):
            if ref.value is not None and ref.size == 1:
                terms.append(str(int(np.asarray(ref.value).reshape(-1)[0]) - q.zp))
                continue
            if ref.value is not None:
                sym = ctx.weight((ref.value.astype(np.int64) - q.zp).astype(np.int16).reshape(-1), f"in{i}_term")
                refs.append((sym, "const int16_t", _bcast_index(ref.shape, out_shape)))
                terms.append(f"(int32_t){{{sym}}}")
            else:
                refs.append((f"in{i}", "const int8_t", _bcast_index(ref.shape, out_shape)))
                terms.append(f"((int32_t){{in{i}}} - ({q.zp}))")
        expr_tmpl = f"ck_mbqm({terms[0]} * {terms[1]}, {m}, {shift}) + ({qy.zp})"
    else:
        (m1, s1), (m2, s2), (mo, so) = _add_params(qa, qb, qy)
        for i, (ref, q, m, s) in enumerate(((a, qa, m1, s1), (b, qb, m2, s2))):
            if ref.value is not None:
                pre = fx.multiply_by_quantized_multiplier_smaller_than_one_exp(
                    fx.wrap((ref.value.astype(np.int64) - q.zp) << LEFT_SHIFT), m, s).astype(np.int32)
                if ref.size == 1:
                    terms.append(f"({int(pre.reshape(-1)[0])})")
                    continue
                sym = ctx.weight(pre.reshape(-1), f"in{i}_term")
                refs.append((sym, "const int32_t", _bcast_index(ref.shape, out_shape)))
                terms.append(f"{{{sym}}}")
            elif y.size >= LUT_MIN_USES:
                # a large run-time input: its rescaled term as a 256-entry int32 table (flash), computed
                # with the IR's fixed-point functions, instead of two high multiplies per element
                xs = np.arange(-128, 128, dtype=np.int64)
                tab = fx.multiply_by_quantized_multiplier_smaller_than_one_exp(
                    fx.wrap((xs - q.zp) << LEFT_SHIFT), m, s).astype(np.int32)
                sym = ctx.weight(tab, f"in{i}_lut")
                refs.append((f"in{i}", "const int8_t", _bcast_index(ref.shape, out_shape)))
                terms.append(f"{sym}[{{in{i}}} + 128]")
            elif ref.size < y.size:
                # a broadcast run-time input: its rescaled terms once into scratch, not per output
                pre_lines += [f"int32_t *t{i} = (int32_t *)({ctx.scratch(4 * ref.size)} + {scratch_off});",
                              f"for (k = 0; k < {ref.size}; ++k) {{",
                              (f"    t{i}[k] = ck_rdbpot(ck_srdhm(((int32_t)in{i}[k] - ({q.zp})) * "
                               f"{1 << LEFT_SHIFT}, {m}), {-s});"),
                              "}"]
                scratch_off += 4 * ref.size
                refs.append((f"t{i}", "const int32_t", _bcast_index(ref.shape, out_shape)))
                terms.append(f"{{t{i}}}")
            else:
                refs.append((f"in{i}", "const int8_t", _bcast_index(ref.shape, out_shape)))
                terms.append(f"ck_rdbpot(ck_srdhm(((int32_t){{in{i}}} - ({q.zp})) * {1 << LEFT_SHIFT}, {m}), {-s})")
        if scratch_off:
            ctx.scratch(scratch_off)
            pre_lines.insert(0, "int32_t k;")
        op = "+" if ctx.node.op == "Add" else "-"
        expr_tmpl = f"ck_rdbpot(ck_srdhm({terms[0]} {op} {terms[1]}, {mo}), {-so}) + ({qy.zp})"

    def body(r: dict[str, str]) -> str:
        e = expr_tmpl
        for name, _, _ in refs[1:]:
            e = e.replace(f"{{{name}}}", r[name])
        return f"{r['out0']} = (int8_t)ck_clamp({e}, {lo}, {hi});"
    # in-place on input 0 is safe: every output element is written after reading its own inputs,
    # and input 0's element for output i is element i (same shape) when the planner shares them
    loops = loop_nest(ctx, out_shape, refs, body, ctx.node.op.lower())
    if not pre_lines:
        return loops
    return "\n".join(pre_lines) + "\n{\n" + "\n".join("    " + ln if ln else ln for ln in loops.split("\n")) + "\n}"
