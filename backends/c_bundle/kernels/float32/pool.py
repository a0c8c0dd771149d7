"""float32 pooling and reductions, channels-last: MaxPool, AveragePool (count_include_pad as the IR
counts it: explicit pads count, the extra end positions of ceil_mode never do), GlobalAveragePool,
GlobalMaxPool, and ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare over any axes.

Window geometry is the IR's ``ops.nn.Window``. Pools walk the valid taps of each output pixel and
combine whole channel rows (contiguous inner loop). Reductions initialise the output with the
identity, then run over the input in memory order, combining each element into its output slot
(reduced axes have output stride 0), then finish (mean: divide by the group size)."""
from __future__ import annotations

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.float32.common import (
    attrs_of,
    clamp_expr,
    contiguous_strides,
    float_check,
    spatial_check,
    has_activation,
    loop_nest,
)
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops.nn import Window, channels_last
from convertkit.canonical_ir.ops.registry import normalize_axis


_pool_check = spatial_check()


def _emit_pool(ctx: EmitContext, is_max: bool) -> str:
    attrs = attrs_of(ctx)
    x = ctx.inputs[0]
    one_d = len(x.shape) == 3
    n, h, wd, c = (x.shape[0], 1, x.shape[1], x.shape[2]) if one_d else x.shape
    win = Window(x.shape[1:-1], attrs["kernel_shape"], attrs, bool(attrs["ceil_mode"]))
    if one_d:
        kh, kw, sh, sw, dh, dw, ph, pw, oh, ow = (1, win.kernel[0], 1, win.strides[0], 1, win.dilations[0],
                                                  0, win.pads_begin[0], 1, win.out[0])
    else:
        (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow) = (win.kernel, win.strides, win.dilations,
                                                            win.pads_begin, win.out)
    init = "-INFINITY" if is_max else "0.0f"
    comb = "o[c] = x[c] > o[c] ? x[c] : o[c];" if is_max else "o[c] += x[c];"
    lines = ["int32_t nb, oh, ow, ky, kx, c;", f"for (nb = 0; nb < {n}; ++nb) {{",
             f"for (oh = 0; oh < {oh}; ++oh) {{", f"for (ow = 0; ow < {ow}; ++ow) {{",
             f"    float *o = out0 + ((nb * {oh} + oh) * {ow} + ow) * {c};",
             f"    for (c = 0; c < {c}; ++c) {{\n        o[c] = {init};\n    }}",
             f"    for (ky = 0; ky < {kh}; ++ky) {{",
             f"        const int32_t ih = oh * {sh} - {ph} + ky * {dh};",
             f"        if (ih < 0 || ih >= {h}) continue;",
             f"        for (kx = 0; kx < {kw}; ++kx) {{",
             f"            const int32_t iw = ow * {sw} - {pw} + kx * {dw};",
             f"            const float *x = in0 + ((nb * {h} + ih) * {wd} + iw) * {c};",
             f"            if (iw < 0 || iw >= {wd}) continue;",
             f"            for (c = 0; c < {c}; ++c) {{\n                {comb}\n            }}",
             "        }", "    }"]
    fin = "o[c]"
    if not is_max:
        counts = np.asarray(win.counts(bool(attrs["count_include_pad"])), np.int64)
        counts = counts.reshape(oh, ow)
        if np.all(counts == counts.flat[0]):
            fin = f"o[c] / {flit(float(counts.flat[0]))}"
        else:
            sym = ctx.weight(counts.astype(np.float32).reshape(-1), "count")
            fin = f"o[c] / {sym}[oh * {ow} + ow]"
    if fin != "o[c]" or has_activation(attrs):
        lines.append(f"    for (c = 0; c < {c}; ++c) {{\n        o[c] = {clamp_expr(fin, attrs)};\n    }}")
    lines += ["}", "}", "}"]
    return "\n".join(lines)


@kernel("MaxPool", precision="float", check=_pool_check)
def emit_max_pool(ctx: EmitContext) -> str:
    return _emit_pool(ctx, True)


@kernel("AveragePool", precision="float", check=_pool_check)
def emit_average_pool(ctx: EmitContext) -> str:
    return _emit_pool(ctx, False)


# ------------------------------------------------------------------------------- reductions
REDUCE = {
    # op: (identity, combine(acc, x), finish(acc, count) or None)
    "ReduceSum": ("0.0f", "{a} + {x}", None),
    "ReduceMean": ("0.0f", "{a} + {x}", "{a} / {n}"),
    "ReduceMax": ("-INFINITY", "({x} > {a} ? {x} : {a})", None),
    "ReduceMin": ("INFINITY", "({x} < {a} ? {x} : {a})", None),
    "ReduceProd": ("1.0f", "{a} * {x}", None),
    "ReduceL1": ("0.0f", "{a} + fabsf({x})", None),
    "ReduceL2": ("0.0f", "{a} + {x} * {x}", "sqrtf({a})"),
    "ReduceSumSquare": ("0.0f", "{a} + {x} * {x}", None),
    "GlobalAveragePool": ("0.0f", "{a} + {x}", "{a} / {n}"),
    "GlobalMaxPool": ("-INFINITY", "({x} > {a} ? {x} : {a})", None),
}


def _reduce_axes(ctx: EmitContext) -> list[int]:
    x = ctx.inputs[0]
    rank = len(x.shape)
    op = ctx.node.op
    if op.startswith("Global"):
        layout = ctx.attrs.get("layout", "NCHW")
        return list(range(1, rank - 1)) if channels_last(layout) else list(range(2, rank))
    attrs = attrs_of(ctx)
    axes_v = ctx.input_value(1) if len(ctx.inputs) > 1 else None
    axes = [] if axes_v is None else [int(a) for a in np.asarray(axes_v).reshape(-1)]
    if not axes:
        if attrs["noop_with_empty_axes"]:
            return []
        axes = list(range(rank))
    return sorted({normalize_axis(a, rank) for a in axes})


def _reduce_check(graph: Graph, node: Node) -> str | None:
    return float_check(n_float_inputs=1, const_inputs=(1,))(graph, node)


def _emit_reduce(ctx: EmitContext) -> str:
    identity, comb, fin = REDUCE[ctx.node.op]
    x = ctx.inputs[0]
    axes = _reduce_axes(ctx)
    kept = [1 if a in axes else d for a, d in enumerate(x.shape)]
    ostr = [0 if a in axes else s for a, s in enumerate(contiguous_strides(kept))]
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) if axes else 1
    size = ctx.outputs[0].size
    lines = [f"int32_t j;\nfor (j = 0; j < {size}; ++j) {{\n    out0[j] = {identity};\n}}"]
    lines.append(loop_nest(x.shape, [(ostr, 0), (contiguous_strides(x.shape), 0)],
                           lambda e: f"out0[{e[0]}] = {comb.format(a=f'out0[{e[0]}]', x=f'in0[{e[1]}]')};"))
    if fin is not None:
        lines.append(f"for (j = 0; j < {size}; ++j) {{\n"
                     f"    out0[j] = {fin.format(a='out0[j]', n=flit(float(count)))};\n}}")
    return "\n".join(lines)


for _op in REDUCE:
    kernel(_op, precision="float", check=_pool_check if _op.startswith("Global") else _reduce_check)(
        _emit_reduce)


# --------------------------------------------------------------------------------- ArgMax/ArgMin
def _arg_check(graph: Graph, node: Node) -> str | None:
    x = graph.tensor(graph.inputs_of(node)[0])
    if x.dtype != np.float32:
        return f"float {node.op} needs a float32 input (got {x.dtype})"
    return None


def _emit_arg(ctx: EmitContext, better: str) -> str:
    """The first (or with select_last_index the last) extreme along the axis, as the IR's kernel."""
    attrs = attrs_of(ctx)
    x = ctx.inputs[0]
    axis = normalize_axis(int(attrs["axis"]), len(x.shape))
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    length = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    cmp = f"v {better}= best" if attrs["select_last_index"] else f"v {better} best"
    return ("\n".join([
        "int32_t a, q, l;",
        f"for (a = 0; a < {outer}; ++a) {{",
        f"    for (q = 0; q < {inner}; ++q) {{",
        f"        const float *x = in0 + a * {length * inner} + q;",
        "        float best = x[0];",
        "        int32_t at = 0;",
        f"        for (l = 1; l < {length}; ++l) {{",
        f"            const float v = x[l * {inner}];",
        f"            if ({cmp}) {{", "                best = v;", "                at = l;", "            }",
        "        }",
        f"        out0[a * {inner} + q] = ({ctx.outputs[0].ctype})at;",
        "    }", "}"]))


@kernel("ArgMax", precision="float", check=_arg_check)
def emit_arg_max(ctx: EmitContext) -> str:
    return _emit_arg(ctx, ">")


@kernel("ArgMin", precision="float", check=_arg_check)
def emit_arg_min(ctx: EmitContext) -> str:
    return _emit_arg(ctx, "<")
