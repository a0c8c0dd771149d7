"""int8 data movement: Transpose, Slice, Split, Gather, DepthToSpace, SpaceToDepth, Tile, Expand, Pad,
Resize (nearest and bilinear) and Concat, plus the int8 helpers the other int8 kernels share (checks,
requantization tables).

A movement op only selects stored values (then requantizes them when the output's parameters differ,
as the IR's ``kernels_movement``/``kernels_pool`` do). Which input element lands on which output
element is found by ``movement_maps`` (shared with float32): the IR's own integer kernel runs on the
element indices, fed 7 bits at a time as int8 values with the output parameters set to the input's so
nothing is requantized; so the selection is the IR's by construction. ``movement_maps`` also writes
the map as strided C loops; what is int8 here is the element transform, a 256-entry requantization
table (``base.requantize`` run on every int8 value), the fill value of Pad (the IR's output at a
padded position), and Concat's per-input requantization.

Resize bilinear is TFLite's ``ResizeBilinearInteger`` (10-bit weights, one rounding) with the per-axis
indices and weights from the IR's ``bilinear_axis``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.movement_maps import (
    blocks,
    emit_index_maps,
    index_maps,
    map_copies,
    split_tile,
)
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.interpreter import evaluate, evaluate_node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.quantize.base import QType, activation_range, requantize, saturate

I8 = np.dtype(np.int8)


# ------------------------------------------------------------------------------------ shared helpers
def qtype(graph: Graph, name: str) -> QType | None:
    return QType.of(graph.tensor(name))


def int8_per_tensor(graph: Graph, node: Node, names: Sequence[str], what: str = "") -> str | None:
    """None if every tensor named is int8 quantized per tensor, else why not."""
    for t in names:
        q = qtype(graph, t)
        if q is None or q.dtype != I8:
            return (f"int8 {node.op} needs int8 quantized tensors{what} (tensor {t!r} is "
                    f"{graph.tensor(t).dtype}{'' if q is None else ' quantized'})")
        if q.per_channel or q.zero_point.size > 1:
            return f"int8 {node.op} needs per-tensor quantization (tensor {t!r} is per channel)"
    return None


def const_inputs(graph: Graph, node: Node, start: int = 1) -> str | None:
    """None if every input from ``start`` on is absent or constant, else why the C kernel needs it."""
    ports = get_schema(node.op).inputs
    for i, t in enumerate(graph.inputs_of(node)[start:], start):
        if t is not None and graph.const_value(t) is None:
            port = ports[min(i, len(ports) - 1)].rstrip("?*")
            return (f"int8 {node.op} needs a constant {port!r} input (tensor {t!r} is computed at run "
                    "time)")
    return None


def requant_table(qx: QType, qy: QType, lo: int = -128, hi: int = 127) -> np.ndarray | None:
    """The 256 outputs of clamping every int8 value to [lo, hi] then requantizing it from ``qx`` to
    ``qy`` (``base.requantize``, TFLite's int-to-int QUANTIZE); None when that is the identity."""
    xs = np.arange(-128, 128, dtype=np.int64)
    t = requantize(saturate(xs, I8, lo, hi), qx, qy).astype(np.int8)
    return None if np.array_equal(t, xs.astype(np.int8)) else t


def lut_fn(ctx: EmitContext, table: np.ndarray | None, hint: str = "lut") -> Callable[[str], str]:
    """expr -> C expression of ``table[expr]`` (identity without a table)."""
    if table is None:
        return lambda e: e
    sym = ctx.weight(np.asarray(table, np.int8), hint)
    return lambda e: f"{sym}[(uint8_t)({e} + 128)]"


# ------------------------------------------------------------------------------ selection index maps
def selection_maps(ctx: EmitContext, detect_fill: bool = False) -> list[np.ndarray]:
    """Per output, the input element index each output element takes (-1 where the op writes a fill
    value instead): the IR's integer kernel run on the indices 7 bits at a time, with the output
    parameters equal to the input's so nothing is requantized."""
    graph, node = ctx.graph, ctx.node
    qx = ctx.inputs[0].quant
    consts = [ref.value if ref is not None else None for ref in ctx.inputs[1:]]
    in_q = [qx] + [QType.of(graph.tensor(t)) if t is not None else None for t in graph.inputs_of(node)[1:]]
    sig = (in_q, [qx] * len(ctx.outputs))

    def run(ids: list[np.ndarray]) -> list[np.ndarray]:
        return evaluate(node, [ids[0].astype(np.int8), *consts], len(ctx.outputs), sig)
    return index_maps(ctx, run, [ctx.inputs[0].shape], chunk_bits=7, detect_fill=detect_fill)


def _selection_check(graph: Graph, node: Node) -> str | None:
    ins, outs = graph.inputs_of(node), graph.outputs_of(node)
    why = int8_per_tensor(graph, node, [ins[0], *outs])
    if why is None and node.op not in ("Pad", "Resize"):
        why = const_inputs(graph, node)
    if why is None and node.op == "Pad":
        for t in ins[1:]:
            if t is not None and graph.const_value(t) is None:
                return "int8 Pad needs constant pads, value and axes"
    return why


def _emit_copy(ctx: EmitContext, src: np.ndarray, out: str, table: np.ndarray | None, hint: str,
               fill: int | None = None) -> list[str]:
    return map_copies(ctx, out, src, [("in0", 0, ctx.inputs[0].size)], "int8_t",
                      None if fill is None else str(fill), lut_fn(ctx, table, f"{hint}_lut"), hint)


SELECT_OPS = ("Transpose", "Slice", "Split", "Gather", "DepthToSpace", "SpaceToDepth", "Tile", "Expand")


@kernel(*SELECT_OPS, precision="int8", check=_selection_check)
def emit_select(ctx: EmitContext) -> str:
    maps = selection_maps(ctx)
    qx = ctx.inputs[0].quant
    if ctx.node.op == "Tile":
        reps = [int(r) for r in np.asarray(ctx.input_value(1)).reshape(-1)]
        maps = [split_tile(maps[0], reps, ctx.inputs[0].shape)]
    return blocks([p for i, (ref, src) in enumerate(zip(ctx.outputs, maps))
                   for p in _emit_copy(ctx, src, f"out{i}", requant_table(qx, ref.quant), f"o{i}")])


# ---------------------------------------------------------------------------------------------- Pad
@kernel("Pad", precision="int8", check=_selection_check)
def emit_pad(ctx: EmitContext) -> str:
    src = selection_maps(ctx, detect_fill=True)[0]
    x, y = ctx.inputs[0], ctx.outputs[0]
    table = requant_table(x.quant, y.quant)
    fill = None
    if (src < 0).any():
        # the fill value: the IR's own output at a padded position
        probe = evaluate_node(ctx.graph, ctx.node, [np.zeros(x.shape, np.int8)] +
                              [r.value if r is not None else None for r in ctx.inputs[1:]])[0]
        fill = int(np.asarray(probe).reshape(-1)[int(np.argmin(src.reshape(-1)))])
    return blocks(_emit_copy(ctx, src, "out0", table, "pad", fill))


# ------------------------------------------------------------------------------------------- Concat
def _concat_check(graph: Graph, node: Node) -> str | None:
    ins = graph.inputs_of(node)
    if any(t is None for t in ins):
        return "int8 Concat with a missing input"
    why = int8_per_tensor(graph, node, [*ins, *graph.outputs_of(node)])
    if why is None:
        try:
            activation_range(node.attrs, qtype(graph, graph.outputs_of(node)[0]))
        except Exception as e:  # noqa: BLE001
            return str(e)
    return why


@kernel("Concat", precision="int8", check=_concat_check)
def emit_concat(ctx: EmitContext) -> str:
    """CONCATENATION: every input requantized to the output's parameters (and clamped to a fused
    activation's range) then placed; each input is one strided copy."""
    y = ctx.outputs[0]
    axis = int(ctx.attrs["axis"]) % len(y.shape)
    lo, hi = activation_range(ctx.attrs, y.quant)
    xs = np.arange(-128, 128, dtype=np.int64)
    converts, sources, ids, off = [], [], [], 0
    for i, ref in enumerate(ctx.inputs):
        t = saturate(requantize(xs.astype(np.int8), ref.quant, y.quant), I8, lo, hi)
        table = None if np.array_equal(t, xs.astype(np.int8)) else t
        converts.append(lut_fn(ctx, table, f"in{i}_lut") if ref.size else None)
        sources.append((f"in{i}", off, ref.size))
        ids.append(np.arange(off, off + ref.size, dtype=np.int64).reshape(ref.shape))
        off += ref.size
    return emit_index_maps(ctx, [np.concatenate(ids, axis=axis)], sources, "int8_t", None, converts, "cat")


# ------------------------------------------------------------------------------------------- Resize
def _resize_geometry(graph: Graph, node: Node):
    """(mode, hw, n_out, align, half) of an int8 Resize, as the IR's ``resize_int`` decides them."""
    from convertkit.canonical_ir.ops.resize import output_geometry
    from convertkit.canonical_ir.quantize.kernels_pool import F32, tflite_nearest_or_none

    attrs = get_schema("Resize").resolve_attrs(node.attrs)
    ins = (list(graph.inputs_of(node)) + [None] * 4)[:4]
    x = graph.tensor(ins[0])
    vals = [graph.const_value(t) if t is not None else None for t in ins[1:]]
    shape = tuple(int(d) for d in x.shape)
    out_shape, sc = output_geometry(shape, vals[1], vals[2], attrs)
    changed = [a for a in range(len(shape)) if out_shape[a] != shape[a] or sc[a] != 1]
    hw = None
    if len(shape) == 4:
        hw = (1, 2) if set(changed) <= {1, 2} else (2, 3) if set(changed) <= {2, 3} else None
    exact = hw is not None and all(F32(sc[a]) == F32(out_shape[a]) / F32(shape[a]) for a in hw)
    flags = tflite_nearest_or_none(attrs, (out_shape[hw[0]], out_shape[hw[1]])) if exact else None
    return attrs, hw, out_shape, exact, flags


def _resize_check(graph: Graph, node: Node) -> str | None:
    why = _selection_check(graph, node)
    if why is not None:
        return why
    for t in graph.inputs_of(node)[1:]:
        if t is not None and graph.const_value(t) is None:
            return "int8 Resize needs constant roi, scales and sizes"
    try:
        attrs, hw, _out_shape, exact, flags = _resize_geometry(graph, node)
    except Exception as e:  # noqa: BLE001
        return f"int8 Resize: {e}"
    if attrs["mode"] == "nearest":
        return None
    if attrs["mode"] != "linear":
        return f"int8 Resize mode {attrs['mode']!r} has no integer kernel (nearest and linear do)"
    if hw != (1, 2) or not exact or flags is None:
        return ("int8 Resize linear needs an NHWC tensor resized on H and W by sizes (or exact size "
                "ratios) in a coordinate mode TFLite has")
    return None


@kernel("Resize", precision="int8", check=_resize_check)
def emit_resize(ctx: EmitContext) -> str:
    attrs, _hw, out_shape, _exact, flags = _resize_geometry(ctx.graph, ctx.node)
    x, y = ctx.inputs[0], ctx.outputs[0]
    table = requant_table(x.quant, y.quant)
    if attrs["mode"] == "nearest":
        return blocks(_emit_copy(ctx, selection_maps(ctx)[0], "out0", table, "resize"))
    from convertkit.canonical_ir.quantize.kernels_pool import bilinear_axis

    align, half = flags
    n, h, w, c = x.shape
    oh, ow = out_shape[1], out_shape[2]
    iy, y0, y1 = bilinear_axis(h, oh, align, half)
    ix, x0, x1 = bilinear_axis(w, ow, align, half)
    dy = (iy - (y0 << 10)).astype(np.int64)
    dx = (ix - (x0 << 10)).astype(np.int64)
    # export-time proof that these tables are the IR's arithmetic: simulate and compare
    rng = np.random.default_rng(0)
    probe = rng.integers(-128, 128, x.shape).astype(np.int8)
    want = evaluate_node(ctx.graph, ctx.node, [probe] + [r.value if r is not None else None
                                                         for r in ctx.inputs[1:]])[0]
    v = probe.astype(np.int64)
    tot = (v[:, y0][:, :, x0] * ((1024 - dy)[None, :, None, None] * (1024 - dx)[None, None, :, None])
           + v[:, y1][:, :, x0] * (dy[None, :, None, None] * (1024 - dx)[None, None, :, None])
           + v[:, y0][:, :, x1] * ((1024 - dy)[None, :, None, None] * dx[None, None, :, None])
           + v[:, y1][:, :, x1] * (dy[None, :, None, None] * dx[None, None, :, None]))
    r = np.where(tot > 0, tot + (1 << 19), tot - (1 << 19))
    r = np.sign(r) * (np.abs(r) >> 20)
    sim = saturate(r, I8)
    sim = sim if table is None else table[sim.astype(np.int64) + 128]
    if not np.array_equal(sim, np.asarray(want)):
        raise ctx.fail("the integer bilinear plan does not reproduce the IR's Resize")
    conv = lut_fn(ctx, table, "resize_lut")
    row = w * c
    ty = ctx.weight(np.stack([y0 * row, y1 * row, dy]).T.astype(np.int32).reshape(-1), "ytab")
    tx = ctx.weight(np.stack([x0 * c, x1 * c, dx]).T.astype(np.int32).reshape(-1), "xtab")
    return f"""int32_t b, oy, ox, ch;
for (b = 0; b < {n}; ++b) {{
    const int8_t *img = in0 + b * {h * row};
    int8_t *dst = out0 + b * {oh * ow * c};
    for (oy = 0; oy < {oh}; ++oy) {{
        const int8_t *r0 = img + {ty}[3 * oy];
        const int8_t *r1 = img + {ty}[3 * oy + 1];
        const int32_t wy1 = {ty}[3 * oy + 2];
        const int32_t wy0 = 1024 - wy1;
        for (ox = 0; ox < {ow}; ++ox) {{
            const int32_t c0 = {tx}[3 * ox], c1 = {tx}[3 * ox + 1];
            const int32_t wx1 = {tx}[3 * ox + 2];
            const int32_t wx0 = 1024 - wx1;
            const int32_t w00 = wy0 * wx0, w10 = wy1 * wx0, w01 = wy0 * wx1, w11 = wy1 * wx1;
            for (ch = 0; ch < {c}; ++ch) {{
                const int32_t t = r0[c0 + ch] * w00 + r1[c0 + ch] * w10 + r0[c1 + ch] * w01 + r1[c1 + ch] * w11;
                const int32_t q = (t > 0 ? t + (1 << 19) : t - (1 << 19)) / (1 << 20);
                *dst++ = {conv("(int8_t)ck_clamp(q, -128, 127)")};
            }}
        }}
    }}
}}"""
