"""float32 normalizations: BatchNormalization (inference form, any layout: a per-channel scale and
shift computed at export in float64), LayerNormalization (over axes axis..rank-1, two passes: mean,
then variance of the centred values; scale and bias broadcast over the normalized block) and
InstanceNormalization (per sample and channel over the spatial axes)."""
from __future__ import annotations

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.float32.common import (
    attrs_of,
    broadcast_strides,
    contiguous_strides,
    float_check,
    loop_nest,
)
from convertkit.canonical_ir.ops.registry import layout_channel_axis, normalize_axis


@kernel("BatchNormalization", precision="float", check=float_check(n_float_inputs=1,
                                                                    const_inputs=(1, 2, 3, 4)),
        inplace=True)
def emit_batch_norm(ctx: EmitContext) -> str:
    attrs = attrs_of(ctx)
    x = ctx.inputs[0]
    axis = layout_channel_axis(attrs.get("layout", "NCHW"), len(x.shape))
    scale, bias, mean, var = (np.asarray(ctx.input_value(i), np.float64).reshape(-1) for i in (1, 2, 3, 4))
    mul = scale / np.sqrt(var + float(attrs["epsilon"]))
    add = bias - mean * mul
    ms = ctx.weight(mul.astype(np.float32), "mul")
    as_ = ctx.weight(add.astype(np.float32), "add")
    cshape = [1] * len(x.shape)
    cshape[axis] = x.shape[axis]
    cst = broadcast_strides(cshape, x.shape)
    st = contiguous_strides(x.shape)
    return loop_nest(x.shape, [(st, 0), (st, 0), (cst, 0)],
                     lambda e: f"out0[{e[0]}] = in0[{e[1]}] * {ms}[{e[2]}] + {as_}[{e[2]}];")


def _ln_check(graph, node):
    why = float_check(const_inputs=(1, 2), max_outputs=None)(graph, node)
    if why:
        return why
    outs = graph.outputs_of(node)
    if any(graph.consumers(o) or graph.is_graph_output(o) for o in outs[1:] if o):
        return "LayerNormalization's Mean/InvStdDev outputs have no C kernel"
    return None


def _norm_rows(rows: int, length: int, eps: float, scale_idx, bias_idx, x_off: str, o_off: str) -> list[str]:
    return [
        f"const float *x = in0 + {x_off};",
        f"float *o = out0 + {o_off};",
        "float mean = 0.0f, var = 0.0f, inv;",
        f"for (l = 0; l < {length}; ++l) {{", "    mean += x[l];", "}",
        f"mean /= {flit(float(length))};",
        f"for (l = 0; l < {length}; ++l) {{", "    const float d = x[l] - mean;", "    var += d * d;", "}",
        f"inv = 1.0f / sqrtf(var / {flit(float(length))} + {flit(eps)});",
        f"for (l = 0; l < {length}; ++l) {{",
        f"    o[l] = (x[l] - mean) * inv{scale_idx}{bias_idx};", "}",
    ]


@kernel("LayerNormalization", precision="float", check=_ln_check)
def emit_layer_norm(ctx: EmitContext) -> str:
    attrs = attrs_of(ctx)
    x = ctx.inputs[0]
    axis = normalize_axis(int(attrs["axis"]), len(x.shape))
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    block = x.shape[axis:]
    length = int(np.prod(block, dtype=np.int64))
    s_val = np.broadcast_to(np.asarray(ctx.input_value(1), np.float32), block).reshape(-1)
    s = ctx.weight(np.ascontiguousarray(s_val), "scale")
    b_idx = ""
    if len(ctx.inputs) > 2 and ctx.inputs[2] is not None:
        b_val = np.broadcast_to(np.asarray(ctx.input_value(2), np.float32), block).reshape(-1)
        b_idx = f" + {ctx.weight(np.ascontiguousarray(b_val), 'bias')}[l]"
    body = _norm_rows(rows, length, float(attrs["epsilon"]), f" * {s}[l]", b_idx,
                      f"r * {length}", f"r * {length}")
    return ("int32_t r, l;\n" + f"for (r = 0; r < {rows}; ++r) {{\n"
            + "\n".join("    " + ln for ln in body) + "\n}")


@kernel("InstanceNormalization", precision="float", check=float_check(const_inputs=(1, 2)))
def emit_instance_norm(ctx: EmitContext) -> str:
    attrs = attrs_of(ctx)
    x = ctx.inputs[0]
    layout = attrs.get("layout", "NCHW")
    axis = layout_channel_axis(layout, len(x.shape))
    n, c = x.shape[0], x.shape[axis]
    sp = int(np.prod(x.shape, dtype=np.int64)) // (n * c)
    scale = ctx.weight(np.asarray(ctx.input_value(1), np.float32).reshape(-1), "scale")
    bias = ctx.weight(np.asarray(ctx.input_value(2), np.float32).reshape(-1), "bias")
    eps = flit(float(attrs["epsilon"]))
    cl = axis != 1
    xi = (lambda v: f"x[{v} * {c}]") if cl else (lambda v: f"x[{v}]")
    base = f"nb * {sp * c} + ch" if cl else f"(nb * {c} + ch) * {sp}"
    return "\n".join([
        "int32_t nb, ch, l;",
        f"for (nb = 0; nb < {n}; ++nb) {{", f"for (ch = 0; ch < {c}; ++ch) {{",
        f"    const float *x = in0 + {base};", f"    float *o = out0 + {base};",
        "    float mean = 0.0f, var = 0.0f, inv;",
        f"    for (l = 0; l < {sp}; ++l) {{", f"        mean += {xi('l')};", "    }",
        f"    mean /= {flit(float(sp))};",
        f"    for (l = 0; l < {sp}; ++l) {{", f"        const float d = {xi('l')} - mean;", "        var += d * d;",
        "    }",
        f"    inv = {scale}[ch] / sqrtf(var / {flit(float(sp))} + {eps});",
        f"    for (l = 0; l < {sp}; ++l) {{",
        f"        o[l{' * ' + str(c) if cl else ''}] = ({xi('l')} - mean) * inv + {bias}[ch];", "    }",
        "}", "}"])
