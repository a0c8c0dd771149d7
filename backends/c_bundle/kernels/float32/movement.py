"""float32 data movement: Transpose, Slice, Split, Concat, Pad (constant/reflect/edge/wrap), Tile,
Expand, Gather (constant indices), DepthToSpace, SpaceToDepth, Resize (nearest: a gather; linear and
cubic: separable per-axis weights), Cast between float32 and integers.

The pure gathers are derived from the IR's own kernels by ``movement_maps`` (shared with int8): at
export the op runs on int64 index tensors (``arange`` over each source, offset so sources are told
apart; Pad's fill found as the elements that do not follow the indices), which gives, for every output
element, the element it copies; the map is written as strided C loop nests (dims coalesced, per-axis
offset tables where an axis is not affine). So the semantics (clamping of Slice bounds, negative steps,
Gather's negative indices, DCR/CRD orders, Pad's negative pads) are exactly the IR's, and the copies
are exact. What stays here is float-only: the checks, Gather with run-time indices, Resize linear and
cubic, Cast.
"""
from __future__ import annotations

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.float32.common import (
    attrs_of,
    evaluate,
    float_check,
)
from convertkit.backends.c_bundle.kernels.movement_maps import emit_index_maps, index_maps, split_tile
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import resize as rz

GATHERS = {
    # op: indices of the inputs that are data (moved); the others must be constants
    "Transpose": (0,), "Slice": (0,), "Split": (0,), "Pad": (0,), "Tile": (0,), "Expand": (0,),
    "Gather": (0,), "DepthToSpace": (0,), "SpaceToDepth": (0,), "Concat": None,
}


def _gather_check(graph: Graph, node: Node) -> str | None:
    data = GATHERS[node.op]
    ins = graph.inputs_of(node)
    if node.op == "Gather" and graph.const_value(ins[1]) is None:
        return _runtime_gather_check(graph, node)
    outs = graph.outputs_of(node)
    for t in outs:
        if graph.tensor(t).dtype != np.float32:
            return f"float {node.op} needs float32 tensors (output {graph.tensor(t).dtype})"
    for i, t in enumerate(ins):
        if t is None:
            continue
        if data is None or i in data:
            if graph.tensor(t).dtype != np.float32:
                return f"float {node.op} needs float32 data (input {i} is {graph.tensor(t).dtype})"
        elif graph.const_value(t) is None:
            return f"{node.op} with a run-time input {i} ({t}) has no C kernel"
    if node.op == "Pad" and node.attrs.get("mode", "constant") not in ("constant", "reflect", "edge", "wrap"):
        return f"Pad mode {node.attrs.get('mode')!r}"
    return None


def _runtime_gather_check(graph: Graph, node: Node) -> str | None:
    ins = graph.inputs_of(node)
    if graph.tensor(ins[0]).dtype != np.float32 or graph.tensor(graph.outputs_of(node)[0]).dtype != np.float32:
        return "float Gather needs float32 data"
    if graph.tensor(ins[1]).dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        return f"Gather with {graph.tensor(ins[1]).dtype} indices has no C kernel"
    return None


def _emit_runtime_gather(ctx: EmitContext) -> str:
    """Indices known at run time: negative ones count from the end; out-of-range ones are clamped
    (the IR raises on them; C must not read outside the tensor)."""
    data, ind = ctx.inputs[0], ctx.inputs[1]
    axis = int(attrs_of(ctx)["axis"]) % len(data.shape)
    outer = int(np.prod(data.shape[:axis], dtype=np.int64))
    dim = data.shape[axis]
    inner = int(np.prod(data.shape[axis + 1:], dtype=np.int64))
    n = ind.size
    return ("\n".join([
        "int32_t a, j, q;",
        f"for (a = 0; a < {outer}; ++a) {{",
        f"    for (j = 0; j < {n}; ++j) {{",
        "        int32_t k = (int32_t)in1[j];",
        "        const float *s;",
        f"        float *d = out0 + (a * {n} + j) * {inner};",
        f"        if (k < 0) k += {dim};",
        f"        k = k < 0 ? 0 : k > {dim - 1} ? {dim - 1} : k;",
        f"        s = in0 + (a * {dim} + k) * {inner};",
        f"        for (q = 0; q < {inner}; ++q) {{", "            d[q] = s[q];", "        }",
        "    }", "}"]))


def _emit_gather(ctx: EmitContext) -> str:
    if ctx.node.op == "Gather" and ctx.input_value(1) is None:
        return _emit_runtime_gather(ctx)
    data = GATHERS[ctx.node.op]
    ports = [i for i, ref in enumerate(ctx.inputs) if ref is not None and (data is None or i in data)]
    args = [None if ref is None or i in ports else ref.value for i, ref in enumerate(ctx.inputs)]
    fill = None
    if ctx.node.op == "Pad":
        cv = ctx.input_value(2) if len(ctx.inputs) > 2 else None
        fill = flit(0.0 if cv is None or np.asarray(cv).size == 0 else float(np.asarray(cv).reshape(-1)[0]))
        if len(args) > 2:
            args[2] = np.array(0, np.int64)      # the padding of the index tensors: told apart by detect_fill

    def run(ids: list[np.ndarray]) -> list[np.ndarray]:
        for i, a in zip(ports, ids):
            args[i] = a
        return evaluate(ctx, args)
    maps = index_maps(ctx, run, [ctx.inputs[i].shape for i in ports], detect_fill=fill is not None)
    if ctx.node.op == "Tile":
        reps = [int(r) for r in np.asarray(ctx.input_value(1)).reshape(-1)]
        maps = [split_tile(maps[0], reps, ctx.inputs[0].shape)]
    sources, off = [], 0
    for i in ports:
        sources.append((f"in{i}", off, ctx.inputs[i].size))
        off += ctx.inputs[i].size
    return emit_index_maps(ctx, maps, sources, "float", fill)


for _op in GATHERS:
    kernel(_op, precision="float", check=_gather_check)(_emit_gather)


# ------------------------------------------------------------------------------------ Resize
def _resize_check(graph: Graph, node: Node) -> str | None:
    why = float_check(n_float_inputs=1, const_inputs=(1, 2, 3))(graph, node)
    if why:
        return why
    if node.attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        return "Resize with tf_crop_and_resize has no C kernel"
    return None


def _axis_weights(x_shape: tuple, roi, scales, sizes, attrs: dict) -> list[tuple[int, np.ndarray]]:
    """(axis, weight matrix [n_out, n_in]) per resampled axis, in the IR kernel's order."""
    mode, coord = attrs["mode"], attrs["coordinate_transformation_mode"]
    out_shape, sc = rz.output_geometry(x_shape, scales, sizes, attrs)
    a = rz.F32(attrs["cubic_coeff_a"])
    result = []
    for ax in range(len(x_shape)):
        n_in, n_out = x_shape[ax], out_shape[ax]
        if n_out == n_in and sc[ax] == 1:
            continue
        src = rz._source_coords(coord, n_in, n_out, rz.F32(sc[ax]), (0.0, 1.0))
        if mode == "nearest":
            idx = np.clip(rz._nearest(src, attrs["nearest_mode"]), 0, n_in - 1).astype(np.int64)
            w = np.zeros((n_out, n_in))
            w[np.arange(n_out), idx] = 1.0
        elif attrs["antialias"]:
            filt, support = (rz._linear_filter, 2.0) if mode == "linear" else (rz._cubic_filter, 4.0)
            w = rz._antialias_weights(src, n_in, rz.F32(sc[ax]), support, filt, a, bool(attrs["exclude_outside"]))
        elif mode == "linear":
            w = rz._linear_weights(src, n_in)
        else:
            w = rz._cubic_weights(src, n_in, a, bool(attrs["exclude_outside"]))
        result.append((ax, w))
    return result


@kernel("Resize", precision="float", check=_resize_check)
def emit_resize(ctx: EmitContext) -> str:
    attrs = attrs_of(ctx)
    x = ctx.inputs[0]
    vals = [ctx.input_value(i) if i < len(ctx.inputs) else None for i in (1, 2, 3)]
    if attrs["mode"] == "nearest":
        maps = index_maps(ctx, lambda ids: evaluate(ctx, [ids[0], *vals]), [x.shape])
        return emit_index_maps(ctx, maps, [("in0", 0, x.size)], "float")
    passes = _axis_weights(x.shape, *vals, attrs)
    cur = list(x.shape)
    inter = []
    for ax, w in passes:
        nxt = list(cur)
        nxt[ax] = w.shape[0]
        inter.append((ax, w, tuple(cur), tuple(nxt)))
        cur = nxt
    # ping-pong through scratch: pass p reads src_p, writes dst_p; the last writes out0
    n = len(inter)
    sizes = [int(np.prod(t[3])) for t in inter[:-1]]
    half = max(sizes, default=0)
    if n > 1:
        ctx.scratch(4 * half * (2 if n > 2 else 1))
    code = []
    for p, (ax, w, cin, cout) in enumerate(inter):
        src = "in0" if p == 0 else ("((const float *)scratch)" if (p - 1) % 2 == 0 else
                                    f"((const float *)scratch + {half})")
        dst = "out0" if p == n - 1 else ("((float *)scratch)" if p % 2 == 0 else f"((float *)scratch + {half})")
        taps = [np.nonzero(row)[0] for row in w]
        t = max(len(r) for r in taps)
        idx = np.zeros((w.shape[0], t), np.int32)
        wt = np.zeros((w.shape[0], t), np.float32)
        for r, cols in enumerate(taps):
            idx[r, :len(cols)] = cols
            wt[r, :len(cols)] = w[r, cols]
        isym = ctx.weight(idx.reshape(-1), f"idx{p}")
        wsym = ctx.weight(wt.reshape(-1), f"w{p}")
        outer = int(np.prod(cin[:ax], dtype=np.int64))
        inner = int(np.prod(cin[ax + 1:], dtype=np.int64))
        n_in, n_out = cin[ax], cout[ax]
        code.append("\n".join([
            "{", "    int32_t a, r, q, k;",
            f"    for (a = 0; a < {outer}; ++a) {{",
            f"        const float *s = {src} + a * {n_in * inner};",
            f"        float *d = {dst} + a * {n_out * inner};",
            f"        for (r = 0; r < {n_out}; ++r) {{",
            f"            float *dr = d + r * {inner};",
            f"            for (q = 0; q < {inner}; ++q) {{\n                dr[q] = 0.0f;\n            }}",
            f"            for (k = 0; k < {t}; ++k) {{",
            f"                const float wk = {wsym}[r * {t} + k];",
            f"                const float *sr = s + {isym}[r * {t} + k] * {inner};",
            f"                for (q = 0; q < {inner}; ++q) {{",
            "                    dr[q] += wk * sr[q];",
            "                }",
            "            }", "        }", "    }", "}"]))
    if not code:
        code.append(f"{{\n    int32_t j;\n    for (j = 0; j < {x.size}; ++j) {{\n        out0[j] = in0[j];\n    }}\n}}")
    return "\n".join(code)


# -------------------------------------------------------------------------------------- Cast
CAST_OK = {np.dtype(t) for t in (np.float32, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_)}


def _cast_check(graph: Graph, node: Node) -> str | None:
    src = graph.tensor(graph.inputs_of(node)[0]).dtype
    dst = graph.tensor(graph.outputs_of(node)[0]).dtype
    if np.dtype(src) not in CAST_OK or np.dtype(dst) not in CAST_OK:
        return f"Cast {src} -> {dst} has no C kernel"
    if np.float32 not in (np.dtype(src), np.dtype(dst)):
        return f"Cast {src} -> {dst} (the float C kernel casts to or from float32)"
    return None


@kernel("Cast", precision="float", check=_cast_check)
def emit_cast(ctx: EmitContext) -> str:
    src, dst = ctx.inputs[0], ctx.outputs[0]
    if dst.dtype == np.bool_:
        expr = "(uint8_t)(in0[j] != 0)"
    elif src.dtype == np.float32 and dst.dtype != np.float32:
        lo, hi = np.iinfo(dst.dtype).min, np.iinfo(dst.dtype).max
        # truncation toward zero, saturated (C leaves out-of-range conversions undefined)
        lo_s = f"({lo + 1} - 1)" if dst.dtype == np.int64 else str(lo)
        expr = (f"(in0[j] <= {flit(float(lo))} ? ({dst.ctype}){lo_s} : in0[j] >= {flit(float(hi))} ? "
                f"({dst.ctype}){hi} : ({dst.ctype})in0[j])")
        if dst.dtype == np.int64:
            expr = (f"(in0[j] <= {flit(float(lo))} ? ({dst.ctype})(-9223372036854775807LL - 1) : "
                    f"in0[j] >= {flit(float(hi))} ? ({dst.ctype})9223372036854775807LL : ({dst.ctype})in0[j])")
        elif dst.dtype in (np.int32,):
            expr = (f"(in0[j] <= {flit(float(lo))} ? ({dst.ctype})(-2147483647 - 1) : "
                    f"in0[j] >= {flit(float(hi))} ? ({dst.ctype})2147483647 : ({dst.ctype})in0[j])")
    else:
        expr = f"({dst.ctype})in0[j]"
    body = f"int32_t j;\nfor (j = 0; j < {dst.size}; ++j) {{\n    out0[j] = {expr};\n}}"
    return body
