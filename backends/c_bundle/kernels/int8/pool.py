"""int8 pooling and reductions, as the IR's ``kernels_pool`` computes them (TFLite's reference kernels).

- MaxPool: the largest in-bounds tap (out-of-bounds taps skipped, which is what padding with -128
  does), then clamped to the fused activation's range at the input's parameters and requantized
  (a 256-entry table) if the output's parameters differ.
- AveragePool: the sum of the in-bounds taps divided by their count, rounded half away from zero
  (``reference_integer_ops::AveragePool``), then as MaxPool.
- ReduceMean / GlobalAveragePool: TFLite's MEAN: (sum - count * zp_x) times one quantized multiplier
  for s_x / (s_y * count) (``kernels_pool.mean_multiplier``, the IR's), plus zp_y, saturated. The sum
  runs over the input in memory order into an int32 accumulator per output element (for the spatial
  mean of NHWC: a vectorizable loop over channels), starting from -count * zp_x.
- ReduceMax / ReduceMin / GlobalMaxPool: the extreme stored value, then clamped and requantized.

Pools are channels-last (NWC / NHWC) with one or two spatial axes and no dilation.
"""
from __future__ import annotations

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.int8.movement import (
    int8_per_tensor,
    lut_fn,
    qtype,
    requant_table,
)
from convertkit.backends.c_bundle.kernels.movement_maps import loop_nest
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import Window, channels_last
from convertkit.canonical_ir.quantize.base import activation_range
from convertkit.canonical_ir.quantize.kernels_pool import reduce_axes, mean_multiplier


# --------------------------------------------------------------------------------- windowed pools
def _window(graph: Graph, node: Node) -> tuple[dict, Window]:
    attrs = get_schema(node.op).resolve_attrs(node.attrs)
    x = graph.tensor(graph.inputs_of(node)[0])
    spatial = [int(d) for d in x.shape[1:-1]]
    return attrs, Window(spatial, attrs["kernel_shape"], attrs, bool(attrs["ceil_mode"]))


def _pool_check(graph: Graph, node: Node) -> str | None:
    outs = graph.outputs_of(node)
    if len(outs) > 1 and outs[1]:
        return "int8 MaxPool with Indices has no C kernel"
    why = int8_per_tensor(graph, node, [graph.inputs_of(node)[0], outs[0]])
    if why is not None:
        return why
    try:
        attrs, win = _window(graph, node)
    except Exception as e:  # noqa: BLE001
        return f"int8 {node.op}: {e}"
    if not channels_last(attrs["layout"]):
        return f"int8 {node.op} needs a channels-last layout (got {attrs['layout']})"
    if len(win.kernel) not in (1, 2):
        return f"int8 {node.op} has C kernels for 1-D and 2-D windows, not {len(win.kernel)}-D"
    if any(d != 1 for d in win.dilations):
        return f"int8 {node.op} with dilations has no C kernel"
    if node.op == "AveragePool":
        if attrs["count_include_pad"] and (any(attrs.get("pads") or []) or
                                           attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")):
            return ("integer AveragePool counts only in-bounds taps (TFLite); count_include_pad=1 with "
                    "padding has no integer form")
        if np.any(win.counts(False) == 0):
            return "int8 AveragePool has a window without any input tap"
    try:
        activation_range(node.attrs, qtype(graph, graph.inputs_of(node)[0]))
    except Exception as e:  # noqa: BLE001
        return f"int8 {node.op}: {e}"
    return None


@kernel("MaxPool", "AveragePool", precision="int8", check=_pool_check)
def emit_pool(ctx: EmitContext) -> str:
    _attrs, win = _window(ctx.graph, ctx.node)
    x, y = ctx.inputs[0], ctx.outputs[0]
    lo, hi = activation_range(ctx.attrs, x.quant)
    table = requant_table(x.quant, y.quant)
    conv = lut_fn(ctx, table, "lut")
    n, c = x.shape[0], x.shape[-1]
    if len(win.kernel) == 2:
        (h, w), (oh, ow) = win.spatial, win.out
        (kh, kw), (sh, sw), (ph, pw) = win.kernel, win.strides, win.pads_begin
    else:
        h, oh, kh, sh, ph = 1, 1, 1, 1, 0
        (w,), (ow,), (kw,), (sw,), (pw,) = win.spatial, win.out, win.kernel, win.strides, win.pads_begin
    clamp = "" if (lo, hi) == (-128, 127) else f"v = ck_clamp(v, {lo}, {hi});\n"
    head = f"""int32_t b, oy, ox, ky, kx, ch;
for (b = 0; b < {n}; ++b) {{
    for (oy = 0; oy < {oh}; ++oy) {{
        const int32_t iy0 = oy * {sh} - {ph};
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0;
        const int32_t ky1 = {h} - iy0 < {kh} ? {h} - iy0 : {kh};
        for (ox = 0; ox < {ow}; ++ox) {{
            const int32_t ix0 = ox * {sw} - {pw};
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t kx1 = {w} - ix0 < {kw} ? {w} - ix0 : {kw};
            int8_t *dst = out0 + ((b * {oh} + oy) * {ow} + ox) * {c};
"""
    tail = """        }
    }
}"""
    if ctx.node.op == "MaxPool":
        core = f"""            for (ch = 0; ch < {c}; ++ch) {{
                dst[ch] = -128;
            }}
            for (ky = ky0; ky < ky1; ++ky) {{
                for (kx = kx0; kx < kx1; ++kx) {{
                    const int8_t *src = in0 + ((b * {h} + iy0 + ky) * {w} + ix0 + kx) * {c};
                    for (ch = 0; ch < {c}; ++ch) {{
                        dst[ch] = src[ch] > dst[ch] ? src[ch] : dst[ch];
                    }}
                }}
            }}
"""
        if clamp or table is not None:
            core += f"""            for (ch = 0; ch < {c}; ++ch) {{
                int32_t v = dst[ch];
                {clamp}                dst[ch] = {conv("(int8_t)v")};
            }}
"""
        return head + core + tail
    acc = ctx.scratch(4 * c)
    core = f"""            int32_t *acc = (int32_t *){acc};
            int32_t count = (ky1 - ky0) * (kx1 - kx0);
            for (ch = 0; ch < {c}; ++ch) {{
                acc[ch] = 0;
            }}
            for (ky = ky0; ky < ky1; ++ky) {{
                for (kx = kx0; kx < kx1; ++kx) {{
                    const int8_t *src = in0 + ((b * {h} + iy0 + ky) * {w} + ix0 + kx) * {c};
                    for (ch = 0; ch < {c}; ++ch) {{
                        acc[ch] += src[ch];
                    }}
                }}
            }}
            for (ch = 0; ch < {c}; ++ch) {{
                const int32_t t = acc[ch];
                int32_t v = t >= 0 ? (t + count / 2) / count : -((-t + count / 2) / count);
                v = ck_clamp(v, {lo}, {hi});
                dst[ch] = {conv("(int8_t)v")};
            }}
"""
    return head + core + tail


# ------------------------------------------------------------------------------------- reductions
def _axes_keep(graph: Graph, node: Node) -> tuple[tuple[int, ...], dict]:
    attrs = get_schema(node.op).resolve_attrs(node.attrs)
    x = graph.tensor(graph.inputs_of(node)[0])
    ndim = len(x.shape)
    if node.op.startswith("Global"):
        axes = tuple(range(1, ndim - 1)) if channels_last(attrs["layout"]) else tuple(range(2, ndim))
        return axes, attrs
    ins = graph.inputs_of(node)
    axes_v = graph.const_value(ins[1]) if len(ins) > 1 and ins[1] is not None else None
    dummy = np.empty(tuple(int(d) for d in x.shape), np.int8)
    return reduce_axes(dummy, axes_v, attrs["noop_with_empty_axes"]), attrs


def _reduce_check(graph: Graph, node: Node) -> str | None:
    ins, outs = graph.inputs_of(node), graph.outputs_of(node)
    why = int8_per_tensor(graph, node, [ins[0], outs[0]])
    if why is not None:
        return why
    if len(ins) > 1 and ins[1] is not None and graph.const_value(ins[1]) is None:
        return f"int8 {node.op} needs constant axes"
    try:
        axes, _ = _axes_keep(graph, node)
        activation_range(node.attrs, qtype(graph, ins[0]))
    except Exception as e:  # noqa: BLE001
        return f"int8 {node.op}: {e}"
    shape = graph.tensor(ins[0]).shape
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64)) if axes else 1
    if count >= 1 << 23:
        return f"int8 {node.op} over {count} elements could overflow the int32 sum"
    return None


def _acc_map(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """For every input element (row-major), the index of the output element it reduces into."""
    kept = [d if a not in axes else 1 for a, d in enumerate(shape)]
    out_ids = np.arange(int(np.prod(kept, dtype=np.int64)), dtype=np.int64).reshape(kept)
    return np.broadcast_to(out_ids, shape)


@kernel("ReduceMean", "GlobalAveragePool", precision="int8", check=_reduce_check)
def emit_mean(ctx: EmitContext) -> str:
    axes, _ = _axes_keep(ctx.graph, ctx.node)
    x, y = ctx.inputs[0], ctx.outputs[0]
    qx, qy = x.quant, y.quant
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) if axes else 1
    m, shift = mean_multiplier(qx, qy, count)
    n_out = y.size
    acc = ctx.scratch(4 * n_out)
    init = -qx.zp * count
    loops = loop_nest(ctx, x.shape, [("acc", "int32_t", _acc_map(x.shape, axes)),
                                     ("in0", "const int8_t", np.arange(x.size).reshape(x.shape))],
                      lambda r: f"{r['acc']} += {r['in0']};", "mean")
    return f"""int32_t *acc = (int32_t *){acc};
int32_t j;
for (j = 0; j < {n_out}; ++j) {{
    acc[j] = {init};
}}
{{
{_indent(loops)}
}}
for (j = 0; j < {n_out}; ++j) {{
    out0[j] = (int8_t)ck_clamp(ck_mbqm(acc[j], {m}, {shift}) + ({qy.zp}), -128, 127);
}}"""


@kernel("ReduceMax", "ReduceMin", "GlobalMaxPool", precision="int8", check=_reduce_check)
def emit_extreme(ctx: EmitContext) -> str:
    axes, _ = _axes_keep(ctx.graph, ctx.node)
    x, y = ctx.inputs[0], ctx.outputs[0]
    lo, hi = activation_range(ctx.attrs, x.quant)
    table = requant_table(x.quant, y.quant, lo, hi)
    conv = lut_fn(ctx, table, "lut")
    is_min = ctx.node.op == "ReduceMin"
    start, cmp = (127, "<") if is_min else (-128, ">")
    loops = loop_nest(ctx, x.shape, [("out0", "int8_t", _acc_map(x.shape, axes)),
                                     ("in0", "const int8_t", np.arange(x.size).reshape(x.shape))],
                      lambda r: f"{r['out0']} = {r['in0']} {cmp} {r['out0']} ? {r['in0']} : {r['out0']};",
                      "ext")
    code = f"""int32_t j;
for (j = 0; j < {y.size}; ++j) {{
    out0[j] = {start};
}}
{{
{_indent(loops)}
}}"""
    if table is not None:
        code += f"""
for (j = 0; j < {y.size}; ++j) {{
    out0[j] = {conv("out0[j]")};
}}"""
    return code


def _indent(code: str) -> str:
    return "\n".join(("    " + ln) if ln else ln for ln in code.split("\n"))
