"""Data movement by index maps, for every precision: the one mechanism behind the float32 and int8
movement kernels (and the int8 loops of binary ops and reductions).

A selection op (Transpose, Slice, Split, Concat, Pad, Tile, Expand, Gather with constant indices,
DepthToSpace, SpaceToDepth, Resize nearest) only copies elements. Which source element each output
element copies is learned at export time by running the IR's own kernel for the node on index tensors
(:func:`index_maps`), so the semantics (clamping of Slice bounds, negative steps, Gather's negative
indices, DCR/CRD orders, Pad modes and negative pads) are the IR's by construction. Precisions differ
only in how the kernel is run: float32 feeds int64 indices to the op's numpy kernel; int8 feeds them 7
bits at a time as int8 values to the integer kernel (``chunk_bits``).

The maps are written as C (:func:`emit_index_maps`): per output and per source, the source's share is
a box of the output (else the list of its positions), copied by :func:`loop_nest` with an element C
type and an optional per-element transform (int8: a requantization table). :func:`loop_nest` takes
any number of pointers, each with one offset per element: it finds the longest innermost run of
dimensions over which every pointer moves by constant strides and merges contiguous ones (plain
strided loops that compilers turn into block moves); the outer dimensions that are not affine (a
Gather with arbitrary indices, a nearest upscale) get per-axis offset tables when the offsets are
separable, else one table of base offsets.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext

Convert = Callable[[str], str]


def indent(code: str, level: int = 1) -> str:
    pad = "    " * level
    return "\n".join((pad + ln) if ln else ln for ln in code.split("\n"))


# ------------------------------------------------------------------------------------ index maps
def index_maps(ctx: EmitContext, run: Callable[[list[np.ndarray]], Sequence[np.ndarray]],
               shapes: Sequence[Sequence[int]], chunk_bits: int | None = None,
               detect_fill: bool = False) -> list[np.ndarray]:
    """Per output of ``run``, the global index of the source element each output element copies (-1
    where the op writes a fill value instead). ``shapes``: the data inputs; source k's elements are
    numbered on from the sizes of the sources before it. ``run(arrays)`` is the IR kernel of the node
    on one array per data input (the other inputs bound). With ``chunk_bits`` the indices go in that
    many bits at a time (values in [0, 2**chunk_bits)), for kernels of narrow integer types. With
    ``detect_fill`` the kernel also runs on the complement of the indices (never equal to them): an
    element equal in both runs copies nothing."""
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    total = sum(sizes)
    offsets = np.cumsum([0] + sizes[:-1]).tolist()
    ids = [np.arange(o, o + n, dtype=np.int64).reshape(tuple(s)) for o, n, s in zip(offsets, sizes, shapes)]
    if chunk_bits is None:
        n_chunks, mask = 1, None
    else:
        mask = (1 << chunk_bits) - 1
        n_chunks = max(1, -(-max(total - 1, 1).bit_length() // chunk_bits))

    def outputs(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o).astype(np.int64) for o in run(arrays)]

    maps: list[np.ndarray] = []
    fill: list[np.ndarray] = []
    for c in range(n_chunks):
        feed = ids if mask is None else [(a >> (chunk_bits * c)) & mask for a in ids]
        got = outputs(feed)
        if not maps:
            maps = [np.zeros(g.shape, np.int64) for g in got]
            fill = [np.zeros(g.shape, bool) for g in got]
        if detect_fill:
            comp = outputs([~a for a in feed] if mask is None else [mask - a for a in feed])
            for i, (g, h) in enumerate(zip(got, comp)):
                fill[i] |= g == h
        for i, g in enumerate(got):
            maps[i] |= g if mask is None else (g & mask) << (chunk_bits * c)
    result = []
    for m, f in zip(maps, fill):
        m = np.where(f, -1, m)
        if m.size and (m.max() >= total or m.min() < -1):
            raise ctx.fail("the index map of the selection is out of range")
        result.append(m)
    return result


def split_tile(m: np.ndarray, reps: Sequence[int], in_shape: Sequence[int]) -> np.ndarray:
    """A Tile's map with each output axis as (repeat, input extent): then it is affine."""
    return m.reshape([int(d) for r, n in zip(reps, in_shape) for d in (r, n)])


# ----------------------------------------------------------------------------------- map -> C
def _box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of ``mask`` if the mask fills it, else None."""
    where = np.nonzero(mask)
    box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
    return box if mask[box].all() else None


def map_copies(ctx: EmitContext, dst: str, m: np.ndarray, sources: Sequence[tuple[str, int, int]],
               ctype: str, fill: str | None = None,
               convert: Convert | Sequence[Convert | None] | None = None, hint: str = "map") -> list[str]:
    """The C blocks writing ``dst`` from the map ``m`` (global source indices, -1 = ``fill``, a C
    expression); ``sources`` are (C array, first global index, size); elements are ``ctype``, each
    copied through ``convert`` (expr -> C expr; one per source, or one for all; None: as is)."""
    m = np.asarray(m, np.int64)
    m = m.reshape(1) if m.ndim == 0 else m
    if m.size == 0:
        return []
    parts = []
    if (m < 0).any():
        if fill is None:
            raise ctx.fail("a gather map has holes and no fill value")
        parts.append(f"int32_t j;\nfor (j = 0; j < {m.size}; ++j) {{\n    {dst}[j] = {fill};\n}}")
    pos = np.arange(m.size, dtype=np.int64).reshape(m.shape)
    for k, (arr, off, size) in enumerate(sources):
        conv = (convert[k] if isinstance(convert, Sequence) else convert) or (lambda e: e)
        mask = (m >= off) & (m < off + size)
        if not mask.any():
            continue
        region = _box(mask)
        src, out = (m[region] - off, pos[region]) if region is not None else (m[mask] - off, pos[mask])
        parts.append(loop_nest(ctx, src.shape, [(dst, ctype, out), (arr, f"const {ctype}", src)],
                               lambda r, arr=arr, conv=conv: f"{r[dst]} = {conv(r[arr])};", hint))
    return parts


def blocks(parts: Sequence[str]) -> str:
    """Statements one after the other, each in its own scope when there are several."""
    if len(parts) == 1:
        return parts[0]
    return "\n".join("{\n" + indent(p) + "\n}" for p in parts)


def emit_index_maps(ctx: EmitContext, maps: Sequence[np.ndarray], sources: Sequence[tuple[str, int, int]],
                    ctype: str, fill: str | None = None,
                    convert: Convert | Sequence[Convert | None] | None = None, hint: str = "map") -> str:
    """Every output j (``outj``) from ``maps[j]``, as :func:`map_copies`."""
    return blocks([p for j, m in enumerate(maps)
                   for p in map_copies(ctx, f"out{j}", m, sources, ctype, fill, convert, f"{hint}{j}")])


# ------------------------------------------------------------------------------------ loop nests
def _affine_split(shape: tuple[int, ...], arrays: list[np.ndarray]):
    """The smallest k such that, for every array (one offset per element of ``shape``), each
    position of the first k dimensions has a base offset and the last dimensions move it by constant
    strides. Returns (k, bases per array, strides per array)."""
    for k in range(len(shape) + 1):
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


def _separable(base: np.ndarray) -> list[np.ndarray] | None:
    """Per-axis offset tables ``t_d`` with ``base[i...] == base[0...] + sum(t_d[i_d])``, else None."""
    b0 = int(base.flat[0])
    tables = []
    recon = np.full(base.shape, b0, np.int64)
    for d, n in enumerate(base.shape):
        idx = [0] * base.ndim
        idx[d] = slice(None)
        t = base[tuple(idx)].astype(np.int64) - b0
        tables.append(t)
        recon = recon + t.reshape([n if e == d else 1 for e in range(base.ndim)])
    return tables if np.array_equal(recon, base) else None


def _affine_1d(t: np.ndarray) -> int | None:
    """s if ``t == t[0] + s * arange``, else None."""
    s = int(t[1] - t[0]) if t.size > 1 else 0
    return s if np.array_equal(t, t[0] + s * np.arange(t.size, dtype=np.int64)) else None


def _table(ctx: EmitContext, values: np.ndarray, hint: str) -> str:
    tab_t = np.int16 if values.min() >= -32768 and values.max() < 32768 else np.int32
    return ctx.weight(values.astype(tab_t), hint)


def loop_nest(ctx: EmitContext, shape: Sequence[int], maps: Sequence[tuple[str, str, np.ndarray]],
              body: Callable[[dict[str, str]], str], hint: str = "map") -> str:
    """C loops over the elements of ``shape`` (row-major). ``maps``: (pointer name, pointee C type
    with const, int offsets shaped like ``shape``): the element each pointer addresses at every
    position. ``body(refs)`` gets, per pointer name, the C lvalue of its element and returns one
    statement. Affine runs become strided loops; non-affine outer dimensions per-axis offset tables
    (or one table of bases when the offsets are not separable)."""
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
    outer_shape = shape[:k]
    seps = [_separable(b.reshape(outer_shape)) for b in bases] if k else []
    if k and all(s is not None for s in seps):
        # one loop per outer axis that moves some pointer, each pointer by i * stride or a table
        outer = [(d, outer_shape[d]) for d in range(k) if any(t[d].any() for t in seps)]
    else:
        outer = [(None, int(np.prod(outer_shape, dtype=np.int64)))] if k else []
    counters = [f"o{d}" if d is not None else "o" for d, _ in outer] + [f"i{j}" for j in range(len(dims))]
    lines = [f"int32_t {', '.join(counters)};"] if counters else []
    cur: dict[str, str] = {}
    pad = ""
    flat = bool(outer) and outer[0][0] is None    # the flat outer loop adds the whole base
    for (name, _ct, _), base in zip(maps, bases):
        b0 = 0 if flat else int(base[0])
        cur[name] = f"({name} + {b0})" if b0 else name
    for d, size in outer:
        o = "o" if d is None else f"o{d}"
        lines.append(f"{pad}for ({o} = 0; {o} < {size}; ++{o}) {{")
        pad += "    "
        for n, ((name, ct, _), base) in enumerate(zip(maps, bases)):
            t = base if d is None else seps[n][d]
            if d is not None and not t.any():
                continue
            s = _affine_1d(t)
            if s is not None:
                first = int(t[0])
                term = f"{o} * {s}" if s != 1 else o
                expr = (f"{cur[name]} + {first}" if first else cur[name]) + (f" + {term}" if s else "")
            else:
                expr = f"{cur[name]} + {_table(ctx, t, f'{hint}_{name}_{o}')}[{o}]"
            lines.append(f"{pad}{ct} *{name}_{o} = {expr};")
            cur[name] = f"{name}_{o}"
    for j, (size, sts) in enumerate(dims):
        i = f"i{j}"
        lines.append(f"{pad}for ({i} = 0; {i} < {size}; ++{i}) {{")
        pad += "    "
        last = j == len(dims) - 1
        nxt = {}
        for (name, ct, _), st in zip(maps, sts):
            off = "0" if st == 0 else (i if st == 1 else f"{i} * {st}")
            if last:
                nxt[name] = f"{cur[name]}[{off}]"
            elif st == 0:
                nxt[name] = cur[name]
            else:
                lines.append(f"{pad}{ct} *{name}_{j} = {cur[name]} + {off};")
                nxt[name] = f"{name}_{j}"
        cur = nxt
    if not dims:
        cur = {name: f"{p}[0]" for name, p in cur.items()}
    lines.append(f"{pad}{body(cur)}")
    while pad:
        pad = pad[:-4]
        lines.append(f"{pad}}}")
    return "\n".join(lines)
