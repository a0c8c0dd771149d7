"""int8 data movement: Transpose, Slice, Split, Gather, DepthToSpace, SpaceToDepth, Tile, Expand, Pad,
Resize (nearest and bilinear) and Concat, plus the loop-nest writer the other int8 kernels share.

A movement op only selects stored values (then requantizes them when the output's parameters differ,
as the IR's ``kernels_movement``/``kernels_pool`` do). Which input element lands on which output
element is found at export time by running the IR's own integer kernel on the element indices (fed
7 bits at a time as int8 values, with the output parameters set to the input's so nothing is
requantized), so the selection is the IR's by construction; a requantization is a 256-entry table
(``base.requantize`` run on every int8 value). The index map is then written as C loops:
:func:`loop_nest` finds the longest innermost run of dimensions over which every pointer moves by
constant strides, merges contiguous dimensions, and keeps a table of base offsets only for the outer
dimensions that are not affine (a Gather with arbitrary indices, a Tile), so copies become plain
strided loops that compilers turn into block moves.

Resize bilinear is TFLite's ``ResizeBilinearInteger`` (10-bit weights, one rounding) with the per-axis
indices and weights from the IR's ``bilinear_axis``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, kernel
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


def _affine_split(shape: tuple[int, ...], arrays: list[np.ndarray]):
    """The smallest k such that, for every array (one offset per element of ``shape``), each
    position of the first k dimensions has a base offset and the last dimensions move it by constant
    strides. Returns (k, bases per array, strides per array)."""
    n = len(shape)
    for k in range(n + 1):
        outer = int(np.prod(shape[:k], dtype=np.int64))
        inner = tuple(shape[k:])
        bases, strides, ok = [], [], True
        for a in arrays:
            a2 = a.reshape((outer,) + inner)
            base = a2.reshape(outer, -1)[:, 0]
            st = []
            recon = base.reshape((outer,) + (1,) * len(inner)).copy()
            for i, size in enumerate(inner):
                if size > 1:
                    unit = (0,) + tuple(1 if j == i else 0 for j in range(len(inner)))
                    s = int(a2[unit] - a2[(0,) * (len(inner) + 1)])
                else:
                    s = 0
                st.append(s)
                recon = recon + (np.arange(size, dtype=np.int64) * s).reshape(
                    (1,) + tuple(size if j == i else 1 for j in range(len(inner))))
            if not np.array_equal(np.broadcast_to(recon, a2.shape), a2):
                ok = False
                break
            bases.append(base)
            strides.append(st)
        if ok:
            return k, bases, strides
    raise AssertionError("unreachable: k = rank always splits")


def loop_nest(ctx: EmitContext, shape: Sequence[int], maps: Sequence[tuple[str, str, np.ndarray]],
              body: Callable[[dict[str, str]], str], hint: str = "map") -> str:
    """C loops over the elements of ``shape`` (row-major). ``maps``: (pointer name, pointee C type
    with const, int offsets shaped like ``shape``): the element each pointer addresses at every
    position. ``body(refs)`` gets, per pointer name, the C lvalue of its element and returns one
    statement. Affine runs become strided loops, non-affine outer dimensions a table of bases."""
    shape = tuple(int(d) for d in shape)
    arrays = [np.broadcast_to(np.asarray(a, np.int64), shape).reshape(shape) for _, _, a in maps]
    if not shape:
        return body({name: f"{name}[{int(a.reshape(-1)[0])}]" for (name, _, _), a in zip(maps, arrays)})
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return ""
    k, bases, strides = _affine_split(shape, arrays)
    inner = list(shape[k:])
    dims = [(size, [st[i] for st in strides]) for i, size in enumerate(inner) if size > 1]
    merged: list[tuple[int, list[int]]] = []
    for size, sts in reversed(dims):              # innermost first
        if merged and all(so == si * merged[-1][0] for so, si in zip(sts, merged[-1][1])):
            merged[-1] = (merged[-1][0] * size, merged[-1][1])
        else:
            merged.append((size, sts))
    dims = list(reversed(merged))
    outer = int(np.prod(shape[:k], dtype=np.int64))
    counters = (["o"] if outer > 1 else []) + [f"i{j}" for j in range(len(dims))]
    lines = [f"int32_t {', '.join(counters)};"] if counters else []
    cur: dict[str, str] = {}
    indent = ""
    if outer > 1:
        lines.append(f"for (o = 0; o < {outer}; ++o) {{")
        indent = "    "
        for (name, ct, _), base in zip(maps, bases):
            if np.all(base == base[0]):
                expr = f"{name} + {int(base[0])}" if base[0] else name
            else:
                ob = _affine_1d(base)
                if ob is not None:
                    b0, bs = ob
                    expr = f"{name} + {b0} + o * {bs}" if b0 else f"{name} + o * {bs}"
                else:
                    tab_t = np.int16 if base.min() >= -32768 and base.max() < 32768 else np.int32
                    sym = ctx.weight(base.astype(tab_t), f"{hint}_{name}_base")
                    expr = f"{name} + {sym}[o]"
            lines.append(f"{indent}{ct} *{name}_o = {expr};")
            cur[name] = f"{name}_o"
    else:
        for (name, _ct, _), base in zip(maps, bases):
            b0 = int(base[0])
            cur[name] = f"({name} + {b0})" if b0 else name
    for j, (size, sts) in enumerate(dims):
        i = f"i{j}"
        lines.append(f"{indent}for ({i} = 0; {i} < {size}; ++{i}) {{")
        indent += "    "
        last = j == len(dims) - 1
        nxt = {}
        for (name, ct, _), st in zip(maps, sts):
            off = "0" if st == 0 else (i if st == 1 else f"{i} * {st}")
            if last:
                nxt[name] = f"{cur[name]}[{off}]"
            else:
                if st == 0:
                    nxt[name] = cur[name]
                else:
                    lines.append(f"{indent}{ct} *{name}_{j} = {cur[name]} + {off};")
                    nxt[name] = f"{name}_{j}"
        cur = nxt
    if not dims:
        cur = {name: f"{p}[0]" for name, p in cur.items()}
    lines.append(f"{indent}{body(cur)}")
    while indent:
        indent = indent[:-4]
        lines.append(f"{indent}}}")
    return "\n".join(lines)


def _affine_1d(base: np.ndarray) -> tuple[int, int] | None:
    if base.size < 2:
        return None
    s = int(base[1] - base[0])
    return (int(base[0]), s) if np.array_equal(base, base[0] + s * np.arange(base.size)) else None


# ------------------------------------------------------------------------------ selection index maps
def _chunk_runs(n: int) -> int:
    return max(1, -(-max(n - 1, 1).bit_length() // 7))


def selection_maps(ctx: EmitContext, detect_fill: bool = False) -> list[np.ndarray]:
    """Per output, the input element index each output element takes (-1 where the op writes a fill
    value instead), by running the IR's integer kernel on the indices 7 bits at a time with the output
    parameters equal to the input's."""
    graph, node = ctx.graph, ctx.node
    x = ctx.inputs[0]
    qx = x.quant
    n = x.size
    ids = np.arange(n, dtype=np.int64).reshape(x.shape)
    consts = [ref.value if ref is not None else None for ref in ctx.inputs[1:]]
    in_q = [qx] + [QType.of(graph.tensor(t)) if t is not None else None for t in graph.inputs_of(node)[1:]]
    sig = (in_q, [qx] * len(ctx.outputs))

    def run(vals: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o).astype(np.int64) for o in evaluate(node, [vals.astype(np.int8), *consts],
                                                                  len(ctx.outputs), sig)]
    maps = [np.zeros(r.shape, np.int64) for r in ctx.outputs]
    fill = [np.zeros(r.shape, bool) for r in ctx.outputs]
    for c in range(_chunk_runs(n)):
        chunk = (ids >> (7 * c)) & 0x7F
        a = run(chunk)
        if detect_fill:
            b = run(127 - chunk)
            for i in range(len(maps)):
                fill[i] |= a[i] == b[i]
        for i in range(len(maps)):
            maps[i] |= (a[i] & 0x7F) << (7 * c)
    for i in range(len(maps)):
        maps[i] = np.where(fill[i], -1, maps[i])
        if maps[i].size and (maps[i].max() >= n):
            raise ctx.fail("the index map of the selection is out of range")
    return maps


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


def _emit_copy(ctx: EmitContext, src: np.ndarray, out: str, table: np.ndarray | None, hint: str) -> str:
    conv = lut_fn(ctx, table, f"{hint}_lut")
    dst = np.arange(src.size, dtype=np.int64).reshape(src.shape)
    return loop_nest(ctx, src.shape, [(out, "int8_t", dst), ("in0", "const int8_t", src)],
                     lambda r: f"{r[out]} = {conv(r['in0'])};", hint)


SELECT_OPS = ("Transpose", "Slice", "Split", "Gather", "DepthToSpace", "SpaceToDepth", "Tile", "Expand")


@kernel(*SELECT_OPS, precision="int8", check=_selection_check)
def emit_select(ctx: EmitContext) -> str:
    maps = selection_maps(ctx)
    qx = ctx.inputs[0].quant
    parts = []
    if ctx.node.op == "Tile":             # each output axis as (repeat, input extent): then affine
        reps = [int(r) for r in np.asarray(ctx.input_value(1)).reshape(-1)]
        split = [d for r, n in zip(reps, ctx.inputs[0].shape) for d in (r, n)]
        maps = [maps[0].reshape(split)]
    for i, (ref, src) in enumerate(zip(ctx.outputs, maps)):
        if src.size == 0:
            continue
        code = _emit_copy(ctx, src, f"out{i}", requant_table(qx, ref.quant), f"o{i}")
        parts.append("{\n" + _indent(code) + "\n}" if len(maps) > 1 else code)
    return "\n".join(parts)


def _indent(code: str) -> str:
    return "\n".join(("    " + ln) if ln else ln for ln in code.split("\n"))


# ---------------------------------------------------------------------------------------------- Pad
@kernel("Pad", precision="int8", check=_selection_check)
def emit_pad(ctx: EmitContext) -> str:
    src = selection_maps(ctx, detect_fill=True)[0]
    x, y = ctx.inputs[0], ctx.outputs[0]
    table = requant_table(x.quant, y.quant)
    mask = src >= 0
    if mask.all():                               # reflect / edge, or nothing padded
        return _emit_copy(ctx, src, "out0", table, "pad")
    # the fill value: the IR's own output at a padded position
    probe = evaluate_node(ctx.graph, ctx.node, [np.zeros(x.shape, np.int8)] +
                          [r.value if r is not None else None for r in ctx.inputs[1:]])[0]
    fill = int(np.asarray(probe).reshape(-1)[int(np.argmin(mask.reshape(-1)))])
    lines = ["int32_t i;", f"for (i = 0; i < {y.size}; ++i) {{", f"    out0[i] = {fill};", "}"]
    if not mask.any():
        return "\n".join(lines)
    lo = [int(np.nonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != a)))[0][0])
          for a in range(mask.ndim)]
    hi = [int(np.nonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != a)))[0][-1]) + 1
          for a in range(mask.ndim)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    if not mask[box].all() or int(mask.sum()) != mask[box].size:
        raise ctx.fail("the padded input does not form one box in the output")
    dst = np.arange(y.size, dtype=np.int64).reshape(y.shape)[box]
    conv = lut_fn(ctx, table, "pad_lut")
    copy = loop_nest(ctx, dst.shape, [("out0", "int8_t", dst), ("in0", "const int8_t", src[box])],
                     lambda r: f"{r['out0']} = {conv(r['in0'])};", "pad")
    return "\n".join(lines) + "\n{\n" + _indent(copy) + "\n}"


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
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
    parts, off = [], 0
    for i, ref in enumerate(ctx.inputs):
        n_ax = ref.shape[axis]
        xs = np.arange(-128, 128, dtype=np.int64)
        t = saturate(requantize(xs.astype(np.int8), ref.quant, y.quant), I8, lo, hi)
        table = None if np.array_equal(t, xs.astype(np.int8)) else t
        conv = lut_fn(ctx, table, f"in{i}_lut")
        shape = (outer, n_ax * inner)
        src = np.arange(ref.size, dtype=np.int64).reshape(shape)
        dst = (np.arange(outer, dtype=np.int64)[:, None] * (y.shape[axis] * inner) + off * inner
               + np.arange(n_ax * inner, dtype=np.int64)[None, :])
        if ref.size:
            code = loop_nest(ctx, shape, [("out0", "int8_t", dst), (f"in{i}", "const int8_t", src)],
                             lambda r, i=i, conv=conv: f"{r['out0']} = {conv(r[f'in{i}'])};", f"cat{i}")
            parts.append("{\n" + _indent(code) + "\n}")
        off += n_ax
    return "\n".join(parts)


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
        return _emit_copy(ctx, selection_maps(ctx)[0], "out0", table, "resize")
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
