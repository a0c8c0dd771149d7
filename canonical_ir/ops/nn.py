"""Convolution, pooling and depth/space ops: schema, shape/dtype inference and numpy kernels.

Semantics are those of the newest ONNX version of each op. Spatial ops carry ``layout``:

* ``"NCHW"`` (and any layout starting with "NC": "NCW", "NCDHW") is ONNX's channels-first form.
* Any other layout ("NHWC", "NWC", "NDHWC") is channels-last. A channels-last op is *defined* as
  ``Transpose(to channels-last) . op_NCHW . Transpose(to channels-first)``, so every attribute keeps
  its ONNX meaning: ``kernel_shape``, ``strides``, ``dilations``, ``output_padding``, ``output_shape``
  and ``pads`` (``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``) always refer to the spatial
  dims in order (H, W for 2-D), never to N or C.

Weights of channels-last ops are stored the way channels-last runtimes (TFLite) store them:

* Conv: NCHW ``W[O, I/group, k...]`` (ONNX); NHWC ``W[O, k..., I/group]`` (TFLite's OHWI; a depthwise
  conv with channel multiplier M is ``W[C*M, kh, kw, 1]`` with ``group=C``).
* ConvTranspose: NCHW ``W[I, O/group, k...]`` (ONNX); NHWC ``W[O, k..., I/group]`` (TFLite's
  TRANSPOSE_CONV order, the same as Conv's), i.e. per group g the ONNX slice ``W[g*I/G + i, o, k...]``
  sits at ``W[g*O/G + o, k..., i]``. No spatial flip is involved.
* MaxPool's optional Indices always index the NCHW-ordered flattening of the input (row-major, or
  spatially column-major with ``storage_order=1``), whatever the layout, since they are values, not
  positions in the output tensor.
* DepthToSpace/SpaceToDepth: the channel ordering given by ``mode`` (DCR/CRD) is the same in both
  layouts; NHWC DCR DepthToSpace is TFLite's DEPTH_TO_SPACE.

Kernels accumulate in float64 and round once to the input dtype, so they are a tight oracle for
float32 runtimes (onnxruntime agrees to ~1e-6 relative).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from convertkit.canonical_ir.ops.registry import REQUIRED, InferContext, TensorType, elements, register

Dim = int | str
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


# ------------------------------------------------------------------------------------- layout
def channels_last(layout: str) -> bool:
    return not layout.startswith("NC")


def to_channels_first(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, x.ndim - 1, *range(1, x.ndim - 1)))


def to_channels_last(x: np.ndarray) -> np.ndarray:
    return np.transpose(x, (0, *range(2, x.ndim), 1))


def conv_weight_to_nchw(w: np.ndarray, layout: str) -> np.ndarray:
    """Conv weight in ``layout`` -> ONNX's [O, I/group, k...]."""
    return to_channels_first(w) if channels_last(layout) else w


def conv_weight_from_nchw(w: np.ndarray, layout: str) -> np.ndarray:
    """ONNX Conv weight [O, I/group, k...] -> the weight a ``layout`` Conv takes."""
    return to_channels_last(w) if channels_last(layout) else w


def conv_transpose_weight_to_nchw(w: np.ndarray, group: int, layout: str) -> np.ndarray:
    """ConvTranspose weight in ``layout`` -> ONNX's [I, O/group, k...]."""
    if not channels_last(layout):
        return w
    o, ks, i_g = w.shape[0], w.shape[1:-1], w.shape[-1]
    r = w.reshape(group, o // group, *ks, i_g)                      # [G, O/G, k..., I/G]
    r = np.moveaxis(r, -1, 1)                                        # [G, I/G, O/G, k...]
    return np.ascontiguousarray(r.reshape(group * i_g, o // group, *ks))


def conv_transpose_weight_from_nchw(w: np.ndarray, group: int, layout: str) -> np.ndarray:
    """ONNX ConvTranspose weight [I, O/group, k...] -> the weight a ``layout`` ConvTranspose takes."""
    if not channels_last(layout):
        return w
    i, o_g, ks = w.shape[0], w.shape[1], w.shape[2:]
    r = w.reshape(group, i // group, o_g, *ks)                      # [G, I/G, O/G, k...]
    r = np.moveaxis(r, 1, -1)                                        # [G, O/G, k..., I/G]
    return np.ascontiguousarray(r.reshape(group * o_g, *ks, i // group))


def _nc_shape(shape: tuple, layout: str) -> tuple:
    return (shape[0], shape[-1], *shape[1:-1]) if channels_last(layout) else tuple(shape)


def _from_nc_shape(shape: Sequence, layout: str) -> tuple:
    return (shape[0], *shape[2:], shape[1]) if channels_last(layout) else tuple(shape)


def _layout_wrapped(fn):
    """Run an NCHW kernel for any layout: transpose the activation in and every output back."""
    def kernel(x: np.ndarray, *args: Any, layout: str = "NCHW", **attrs: Any):
        if not channels_last(layout):
            return fn(x, *args, **attrs)
        out = fn(to_channels_first(x), *args, **attrs)
        return tuple(map(to_channels_last, out)) if isinstance(out, tuple) else to_channels_last(out)
    kernel.__doc__, kernel.__name__ = fn.__doc__, fn.__name__
    return kernel


# ------------------------------------------------------------------------------------ geometry
def _ints(v: Sequence[int] | None, n: int, default: int) -> list[int]:
    return [default] * n if v is None or len(v) == 0 else [int(a) for a in v]


def _axis_geometry(n: int, k: int, s: int, d: int, pb: int, pe: int, auto_pad: str,
                   ceil_mode: bool) -> tuple[int, int, int]:
    """(pad_begin, pad_end, out) along one spatial axis of size ``n``, per the ONNX formulas."""
    ek = (k - 1) * d + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-n // s)
        total = max(0, (out - 1) * s + ek - n)
        pb = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return pb, total - pb, out
    if auto_pad == "VALID":
        pb = pe = 0
    span = n + pb + pe - ek
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + pb:   # a window starting in the end padding is dropped
            out -= 1
    else:
        out = span // s + 1
    return pb, pe, out


class Window:
    """Sliding-window geometry of a conv or pool over the spatial dims of an NC... tensor."""

    def __init__(self, spatial: Sequence[int], kernel: Sequence[int], attrs: dict[str, Any],
                 ceil_mode: bool = False) -> None:
        n = len(kernel)
        auto_pad = attrs.get("auto_pad") or "NOTSET"
        if auto_pad not in AUTO_PADS:
            raise ValueError(f"auto_pad {auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
        self.kernel = [int(k) for k in kernel]
        self.strides = _ints(attrs.get("strides"), n, 1)
        self.dilations = _ints(attrs.get("dilations"), n, 1)
        pads = _ints(attrs.get("pads"), 2 * n, 0)
        geo = [_axis_geometry(int(sp), k, s, d, pb, pe, auto_pad, ceil_mode) for sp, k, s, d, pb, pe in
               zip(spatial, self.kernel, self.strides, self.dilations, pads[:n], pads[n:])]
        self.pads_begin = [g[0] for g in geo]
        self.pads_end = [g[1] for g in geo]
        self.out = [g[2] for g in geo]
        self.spatial = [int(s) for s in spatial]
        if any(o <= 0 for o in self.out):
            raise ValueError(f"the window does not fit: output spatial size {self.out}")

    def padded(self, x: np.ndarray, value: Any = 0) -> np.ndarray:
        """x padded at the start and, at the end, exactly as far as the last window reaches."""
        widths = [(0, 0)] * (x.ndim - len(self.kernel))
        for n, k, s, d, pb, o in zip(self.spatial, self.kernel, self.strides, self.dilations,
                                     self.pads_begin, self.out):
            widths.append((pb, max(0, (o - 1) * s + (k - 1) * d + 1 - pb - n)))
        return np.pad(x, widths, constant_values=value) if any(w != (0, 0) for w in widths) else x

    def offsets(self) -> Iterator[tuple[int, ...]]:
        return itertools.product(*(range(k) for k in self.kernel))

    def taps(self, xp: np.ndarray) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """(kernel offset, the strided view of ``xp`` that offset sees for every output position)."""
        lead = (slice(None),) * (xp.ndim - len(self.kernel))
        for off in self.offsets():
            sl = tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                       for o, d, s, n in zip(off, self.dilations, self.strides, self.out))
            yield off, xp[lead + sl]

    def counts(self, include_pad: bool) -> np.ndarray:
        """Per output position, how many window taps fall on the input (or its explicit pads)."""
        total = np.ones((), dtype=np.int64)
        for n, k, s, d, pb, pe, o in zip(self.spatial, self.kernel, self.strides, self.dilations,
                                         self.pads_begin, self.pads_end, self.out):
            lo, hi = (-pb, n + pe) if include_pad else (0, n)
            pos = np.arange(o)[:, None] * s - pb + np.arange(k)[None, :] * d
            cnt = ((pos >= lo) & (pos < hi)).sum(axis=1)
            total = np.multiply.outer(total, cnt)
        return total


def _infer_spatial(ctx: InferContext, spatial: Sequence[Dim], kernel: Sequence[int],
                   ceil_mode: bool = False) -> list[Dim]:
    """Output spatial dims; a symbolic input dim stays symbolic (the same one where the size is kept)."""
    a = ctx.attrs
    n = len(kernel)
    if len(spatial) != n:
        raise ctx.error(f"kernel has {n} spatial dims, input has {len(spatial)}")
    for key, size in (("strides", n), ("dilations", n), ("pads", 2 * n)):
        if a.get(key) is not None and len(a[key]) not in (0, size):
            raise ctx.error(f"{key} has {len(a[key])} values, expected {size}")
    strides, dil = _ints(a.get("strides"), n, 1), _ints(a.get("dilations"), n, 1)
    pads = _ints(a.get("pads"), 2 * n, 0)
    auto_pad = a.get("auto_pad") or "NOTSET"
    if auto_pad not in AUTO_PADS:
        raise ctx.error(f"auto_pad {auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    out: list[Dim] = []
    for i, dim in enumerate(spatial):
        k, s, d = kernel[i], strides[i], dil[i]
        if isinstance(dim, int):
            o = _axis_geometry(dim, k, s, d, pads[i], pads[n + i], auto_pad, ceil_mode)[2]
            if o <= 0:
                raise ctx.error(f"window {list(kernel)} does not fit spatial dims {list(spatial)}")
            out.append(o)
        else:
            same = s == 1 and (auto_pad.startswith("SAME") or (
                (k - 1) * d == (0 if auto_pad == "VALID" else pads[i] + pads[n + i])))
            out.append(dim if same else ctx.new_dim())
    return out


def _acc_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dt.kind in "fc" else np.dtype(np.int64)


# ---------------------------------------------------------------------------------------- Conv
CONV_ATTRS = {"auto_pad": "NOTSET", "dilations": None, "group": 1, "kernel_shape": None, "pads": None,
              "strides": None}


def _conv_infer(ctx: InferContext) -> list[TensorType]:
    layout = ctx.attrs["layout"]
    x = _nc_shape(ctx.shape(0), layout)
    wt = ctx.shape(1)
    if len(x) < 3 or len(wt) != len(x):
        raise ctx.error(f"input rank {len(x)} and weight rank {len(wt)} do not fit a convolution")
    w = _nc_shape(wt, layout)
    group = int(ctx.attrs["group"])
    kernel = ctx.attrs["kernel_shape"] or w[2:]
    if not all(isinstance(k, int) for k in kernel):
        raise ctx.error("the kernel shape must be static")
    if isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * group:
        raise ctx.error(f"input has {x[1]} channels, weight expects {w[1]} x group {group}")
    out = (x[0], w[0], *_infer_spatial(ctx, x[2:], kernel))
    return [(ctx.dtype(0), _from_nc_shape(out, layout))]


def _conv_macs(ctx: InferContext) -> int:
    """N * O * prod(output spatial) * (I/group) * prod(kernel)."""
    layout = ctx.attrs["layout"]
    y = ctx.graph.tensor(ctx.graph.outputs_of(ctx.node)[0]).shape or _conv_infer(ctx)[0][1]
    return elements(y) * elements(_nc_shape(ctx.shape(1), layout)[1:])


def _conv_nc(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: dict[str, Any]) -> np.ndarray:
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    group = int(attrs["group"])
    if c != cg * group or o % group:
        raise ValueError(f"input has {c} channels; weight {list(w.shape)} with group {group} does not fit")
    win = Window(x.shape[2:], attrs["kernel_shape"] or w.shape[2:], attrs)
    acc = _acc_dtype(x.dtype)
    xp = win.padded(x.astype(acc, copy=False))
    wa = w.astype(acc, copy=False)
    k = int(np.prod(win.kernel))
    if cg == 1 and group == c:                                   # depthwise: one tap at a time
        src = xp[:, np.arange(o) // (o // c)] if o != c else xp
        y = np.zeros((n, o, *win.out), acc)
        wk = wa.reshape(o, k)
        bshape = (1, o) + (1,) * len(win.out)
        for t, (_, view) in enumerate(win.taps(src)):
            y += view * wk[:, t].reshape(bshape)
    else:
        cols = np.empty((n, c, k, *win.out), acc)
        for t, (_, view) in enumerate(win.taps(xp)):
            cols[:, :, t] = view
        p = int(np.prod(win.out))
        cols = cols.reshape(n, group, cg * k, p)
        y = np.matmul(wa.reshape(group, o // group, cg * k), cols).reshape(n, o, *win.out)
    if b is not None:
        y = y + b.astype(acc).reshape((1, o) + (1,) * len(win.out))
    return y.astype(x.dtype)


@register("Conv", inputs=["X", "W", "B?"], attrs=CONV_ATTRS, infer=_conv_infer, macs=_conv_macs,
          spatial=True)
def conv(x, w, b=None, *, layout="NCHW", **attrs):
    """Conv: N-d grouped/depthwise convolution (cross-correlation), ONNX semantics."""
    if channels_last(layout):
        return to_channels_last(_conv_nc(to_channels_first(x), conv_weight_to_nchw(w, layout), b, attrs))
    return _conv_nc(x, w, b, attrs)


# ------------------------------------------------------------------------------- ConvTranspose
CONV_T_ATTRS = dict(CONV_ATTRS, output_padding=None, output_shape=None)


def conv_t_geometry(spatial: Sequence[Dim], kernel: Sequence[int], attrs: dict[str, Any],
                     new_dim=None) -> tuple[list[int], list[int], list[Dim]]:
    """(pads_begin, pads_end, output spatial size) of ConvTranspose, per the ONNX formulas."""
    n = len(kernel)
    strides, dil = _ints(attrs.get("strides"), n, 1), _ints(attrs.get("dilations"), n, 1)
    out_pad = _ints(attrs.get("output_padding"), n, 0)
    pads = _ints(attrs.get("pads"), 2 * n, 0)
    auto_pad = attrs.get("auto_pad") or "NOTSET"
    shape = attrs.get("output_shape")
    if shape is not None and len(shape):
        shape = [int(v) for v in shape][-n:]
    pb, pe, out = [], [], []
    for i, size in enumerate(spatial):
        s, full_extra = strides[i], out_pad[i] + (kernel[i] - 1) * dil[i] + 1
        if not isinstance(size, int):
            pb.append(0), pe.append(0)
            out.append(shape[i] if shape else size if s == 1 and (
                auto_pad.startswith("SAME") or full_extra - pads[i] - pads[n + i] == 1) else new_dim())
            continue
        if shape or auto_pad.startswith("SAME"):
            target = shape[i] if shape else size * s
            total = s * (size - 1) + full_extra - target
            head = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            pb.append(head), pe.append(total - head), out.append(target)
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (pads[i], pads[n + i])
            pb.append(b), pe.append(e), out.append(s * (size - 1) + full_extra - b - e)
    return pb, pe, out


def _conv_t_infer(ctx: InferContext) -> list[TensorType]:
    layout = ctx.attrs["layout"]
    x = _nc_shape(ctx.shape(0), layout)
    wt = ctx.shape(1)
    if len(x) < 3 or len(wt) != len(x):
        raise ctx.error(f"input rank {len(x)} and weight rank {len(wt)} do not fit a transposed convolution")
    group = int(ctx.attrs["group"])
    if channels_last(layout):
        kernel, out_ch, in_w = wt[1:-1], wt[0], wt[-1] * group
    else:
        kernel, out_ch, in_w = wt[2:], wt[1] * group, wt[0]
    kernel = ctx.attrs["kernel_shape"] or kernel
    if isinstance(x[1], int) and isinstance(in_w, int) and x[1] != in_w:
        raise ctx.error(f"input has {x[1]} channels, weight expects {in_w}")
    out = conv_t_geometry(x[2:], kernel, ctx.attrs, ctx.new_dim)[2]
    if any(isinstance(o, int) and o <= 0 for o in out):
        raise ctx.error(f"output spatial size {out} is not positive")
    return [(ctx.dtype(0), _from_nc_shape((x[0], out_ch, *out), layout))]


def _conv_t_macs(ctx: InferContext) -> int:
    """N * I * prod(input spatial) * (O/group) * prod(kernel)."""
    layout = ctx.attrs["layout"]
    x = _nc_shape(ctx.shape(0), layout)
    w = ctx.shape(1)
    per_input = elements(w[:-1]) if channels_last(layout) else elements(w[1:])  # (O/G) * prod(k)
    return elements(x) * per_input


def _conv_transpose_nc(x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                       attrs: dict[str, Any]) -> np.ndarray:
    n, c = x.shape[:2]
    group = int(attrs["group"])
    og = w.shape[1]
    o = og * group
    if w.shape[0] != c or c % group:
        raise ValueError(f"input has {c} channels; weight {list(w.shape)} with group {group} does not fit")
    kernel = [int(k) for k in (attrs["kernel_shape"] or w.shape[2:])]
    nd = len(kernel)
    strides, dil = _ints(attrs.get("strides"), nd, 1), _ints(attrs.get("dilations"), nd, 1)
    pb, _, out = conv_t_geometry(x.shape[2:], kernel, attrs)
    acc = _acc_dtype(x.dtype)
    k = int(np.prod(kernel))
    p = int(np.prod(x.shape[2:]))
    xg = x.astype(acc, copy=False).reshape(n, group, c // group, p)
    wg = w.astype(acc, copy=False).reshape(group, c // group, og * k)
    cols = np.matmul(np.swapaxes(wg, 1, 2), xg).reshape(n, o, k, *x.shape[2:])
    full = [(sz - 1) * s + (kk - 1) * d + 1 for sz, s, kk, d in zip(x.shape[2:], strides, kernel, dil)]
    # scatter the taps into a buffer holding the full result and the output window [pb, pb + out),
    # which reaches past it where pads are negative (an output_shape larger than the full result)
    shift = [max(0, -b_) for b_ in pb]
    y = np.zeros((n, o, *[sh + max(f, b_ + ou) for sh, f, b_, ou in zip(shift, full, pb, out)]), acc)
    for t, off in enumerate(itertools.product(*(range(kk) for kk in kernel))):
        sl = tuple(slice(sh + of * d, sh + of * d + (sz - 1) * s + 1, s)
                   for of, d, sh, sz, s in zip(off, dil, shift, x.shape[2:], strides))
        y[(slice(None), slice(None)) + sl] += cols[:, :, t]
    y = y[(slice(None), slice(None)) + tuple(slice(sh + b_, sh + b_ + ou)
                                            for sh, b_, ou in zip(shift, pb, out))]
    if b is not None:
        y = y + b.astype(acc).reshape((1, o) + (1,) * nd)
    return y.astype(x.dtype)


@register("ConvTranspose", inputs=["X", "W", "B?"], attrs=CONV_T_ATTRS, infer=_conv_t_infer,
          macs=_conv_t_macs, spatial=True)
def conv_transpose(x, w, b=None, *, layout="NCHW", **attrs):
    """ConvTranspose: the gradient of Conv (fractionally strided convolution), ONNX semantics."""
    if channels_last(layout):
        wn = conv_transpose_weight_to_nchw(w, int(attrs["group"]), layout)
        return to_channels_last(_conv_transpose_nc(to_channels_first(x), wn, b, attrs))
    return _conv_transpose_nc(x, w, b, attrs)


# ------------------------------------------------------------------------------------- pooling
POOL_ATTRS = {"auto_pad": "NOTSET", "ceil_mode": 0, "dilations": None, "kernel_shape": REQUIRED,
              "pads": None, "strides": None}


def _pool_infer(ctx: InferContext) -> list[TensorType]:
    layout = ctx.attrs["layout"]
    x = _nc_shape(ctx.shape(0), layout)
    kernel = [int(k) for k in ctx.attrs["kernel_shape"]]
    out = (x[0], x[1], *_infer_spatial(ctx, x[2:], kernel, bool(ctx.attrs["ceil_mode"])))
    types = [(ctx.dtype(0), _from_nc_shape(out, layout))]
    if ctx.n_outputs > 1:                                       # MaxPool's Indices
        types.append((np.dtype(np.int64), _from_nc_shape(out, layout)))
    return types


def _lowest(dt: np.dtype) -> Any:
    return -np.inf if dt.kind == "f" else np.iinfo(dt).min


def _max_pool_nc(x: np.ndarray, attrs: dict[str, Any], with_indices: bool):
    win = Window(x.shape[2:], attrs["kernel_shape"], attrs, bool(attrs["ceil_mode"]))
    xp = win.padded(x, _lowest(x.dtype))
    if not with_indices:
        y = None
        for _, view in win.taps(xp):
            y = view.copy() if y is None else np.maximum(y, view, out=y)
        return y
    # Indices: first maximum in kernel scan order, as a flat index into the NC... input
    nd = len(win.kernel)
    sizes = win.spatial
    order = attrs.get("storage_order", 0)
    strides_flat = (np.cumprod([1] + sizes[:-1]) if order else np.cumprod([1] + sizes[::-1][:-1])[::-1])
    y = np.full((*x.shape[:2], *win.out), _lowest(x.dtype), x.dtype)
    idx = np.full(y.shape, -1, np.int64)
    grids = np.meshgrid(*[np.arange(o) * s - pb for o, s, pb in zip(win.out, win.strides, win.pads_begin)],
                        indexing="ij")
    for off, view in win.taps(xp):
        pos = [g + o * d for g, o, d in zip(grids, off, win.dilations)]
        inside = np.logical_and.reduce([(p >= 0) & (p < n) for p, n in zip(pos, sizes)])
        take = inside & ((view > y) | (idx < 0))
        flat = sum(p * int(st) for p, st in zip(pos, strides_flat))
        y = np.where(take, view, y)
        idx = np.where(take, flat, idx)
    base = (np.arange(x.shape[0] * x.shape[1]) * int(np.prod(sizes))).reshape(x.shape[0], x.shape[1],
                                                                              *([1] * nd))
    return y, idx + base


@register("MaxPool", outputs=["Y", "Indices?"], attrs=dict(POOL_ATTRS, storage_order=0),
          infer=_pool_infer, spatial=True, pass_num_outputs=True)
@_layout_wrapped
def max_pool(x, *, num_outputs=1, **attrs):
    """MaxPool: window maximum; the optional Indices are flat indices into the NCHW-ordered input."""
    return _max_pool_nc(x, attrs, num_outputs > 1)


@register("AveragePool", attrs=dict(POOL_ATTRS, count_include_pad=0), infer=_pool_infer, spatial=True)
@_layout_wrapped
def average_pool(x, **attrs):
    """AveragePool: window mean; ``count_include_pad`` counts explicit pads (never the extra end
    positions that ``ceil_mode`` adds), as onnxruntime does. On integers (quantized tensors, whose
    input and output share scale and zero point) the mean rounds half away from zero, as TFLite's
    reference int8 AVERAGE_POOL_2D does."""
    win = Window(x.shape[2:], attrs["kernel_shape"], attrs, bool(attrs["ceil_mode"]))
    acc = _acc_dtype(x.dtype)
    xp = win.padded(x.astype(acc, copy=False))
    y = np.zeros((*x.shape[:2], *win.out), acc)
    for _, view in win.taps(xp):
        y += view
    return _mean(y, win.counts(bool(attrs["count_include_pad"])), x.dtype)


def _mean(total: np.ndarray, count: np.ndarray | int, dtype: np.dtype) -> np.ndarray:
    """total / count in ``dtype``; integers round half away from zero (TFLite) and saturate."""
    if dtype.kind not in "iu":
        return (total / count).astype(dtype)
    q = (np.abs(total) + count // 2) // count * np.sign(total)
    return np.clip(q, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


@register("LpPool", attrs=dict(POOL_ATTRS, p=2), infer=_pool_infer, spatial=True)
@_layout_wrapped
def lp_pool(x, **attrs):
    """LpPool: (sum over the window of |x|^p)^(1/p); pads contribute zero."""
    win = Window(x.shape[2:], attrs["kernel_shape"], attrs, bool(attrs["ceil_mode"]))
    p = float(attrs["p"])
    xp = win.padded(np.abs(x.astype(np.float64)) ** p)
    y = np.zeros((*x.shape[:2], *win.out))
    for _, view in win.taps(xp):
        y += view
    return (y ** (1.0 / p)).astype(x.dtype)


def _global_infer(ctx: InferContext) -> list[TensorType]:
    layout = ctx.attrs["layout"]
    x = _nc_shape(ctx.shape(0), layout)
    if len(x) < 3:
        raise ctx.error(f"global pooling needs a rank >= 3 input, got rank {len(x)}")
    return [(ctx.dtype(0), _from_nc_shape((x[0], x[1]) + (1,) * (len(x) - 2), layout))]


def _spatial_axes(x: np.ndarray, layout: str) -> tuple[int, ...]:
    return tuple(range(1, x.ndim - 1)) if channels_last(layout) else tuple(range(2, x.ndim))


@register("GlobalAveragePool", infer=_global_infer, spatial=True)
def global_average_pool(x, *, layout="NCHW"):
    """GlobalAveragePool: the spatial mean (integers round as in AveragePool)."""
    axes = _spatial_axes(x, layout)
    total = np.sum(x, axis=axes, keepdims=True, dtype=_acc_dtype(x.dtype))
    return _mean(total, int(np.prod([x.shape[a] for a in axes])), x.dtype)


@register("GlobalMaxPool", infer=_global_infer, spatial=True)
def global_max_pool(x, *, layout="NCHW"):
    return np.max(x, axis=_spatial_axes(x, layout), keepdims=True)


@register("GlobalLpPool", attrs={"p": 2}, infer=_global_infer, spatial=True)
def global_lp_pool(x, *, p=2, layout="NCHW"):
    s = np.sum(np.abs(x.astype(np.float64)) ** float(p), axis=_spatial_axes(x, layout), keepdims=True)
    return (s ** (1.0 / float(p))).astype(x.dtype)


# ----------------------------------------------------------------------- depth <-> space
def _depth_space_infer(to_space: bool):
    def infer(ctx: InferContext) -> list[TensorType]:
        layout = ctx.attrs["layout"]
        x = _nc_shape(ctx.shape(0), layout)
        b = int(ctx.attrs["blocksize"])
        if len(x) != 4:
            raise ctx.error(f"needs a rank-4 input, got rank {len(x)}")
        if ctx.attrs["mode"] not in ("DCR", "CRD"):
            raise ctx.error(f"mode {ctx.attrs['mode']!r} is not DCR or CRD")

        def mul(d: Dim, by: int) -> Dim:
            return d * by if isinstance(d, int) else ctx.new_dim()

        def div(d: Dim, by: int) -> Dim:
            if isinstance(d, int) and d % by:
                raise ctx.error(f"dim {d} is not divisible by {by} (blocksize {b})")
            return d // by if isinstance(d, int) else ctx.new_dim()
        if to_space:
            out = (x[0], div(x[1], b * b), mul(x[2], b), mul(x[3], b))
        else:
            out = (x[0], mul(x[1], b * b), div(x[2], b), div(x[3], b))
        return [(ctx.dtype(0), _from_nc_shape(out, layout))]
    return infer


@register("DepthToSpace", inputs=["input"], outputs=["output"], attrs={"blocksize": REQUIRED, "mode": "DCR"},
          infer=_depth_space_infer(True), spatial=True)
@_layout_wrapped
def depth_to_space(x, *, blocksize, mode="DCR"):
    """DepthToSpace: DCR takes channel (i*b + j)*C' + c to pixel (i, j) of each block; CRD c*b*b + i*b + j."""
    n, c, h, w = x.shape
    b = int(blocksize)
    if mode == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return t.reshape(n, c // (b * b), h * b, w * b)


@register("SpaceToDepth", inputs=["input"], outputs=["output"], attrs={"blocksize": REQUIRED, "mode": "DCR"},
          infer=_depth_space_infer(False), spatial=True)
@_layout_wrapped
def space_to_depth(x, *, blocksize, mode="DCR"):
    """SpaceToDepth: the inverse of DepthToSpace with the same ``mode``."""
    n, c, h, w = x.shape
    b = int(blocksize)
    t = x.reshape(n, c, h // b, b, w // b, b)
    t = t.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else t.transpose(0, 1, 3, 5, 2, 4)
    return t.reshape(n, c * b * b, h // b, w // b)


# ------------------------------------------------------------------------ inverses: scatter ops
def _scatter_taps(y: np.ndarray, cols: np.ndarray, win: Window) -> None:
    """Add ``cols[:, :, t]`` (one slab per kernel tap, over the window grid) into padded ``y``."""
    for t, off in enumerate(win.offsets()):
        sl = tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                   for o, d, s, n in zip(off, win.dilations, win.strides, win.out))
        y[(slice(None), slice(None)) + sl] += cols[:, :, t]


def _max_unpool_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.shape(0)
    if ctx.has(2):
        v = ctx.value(2)
        shape = tuple(int(d) for d in v) if v is not None else tuple(ctx.new_dim() for _ in x)
        return [(ctx.dtype(0), shape)]
    kernel = [int(k) for k in ctx.attrs["kernel_shape"]]
    n = len(kernel)
    strides, pads = _ints(ctx.attrs["strides"], n, 1), _ints(ctx.attrs["pads"], 2 * n, 0)
    sp = [(d - 1) * s - pads[i] - pads[n + i] + k if isinstance(d, int) else ctx.new_dim()
          for i, (d, s, k) in enumerate(zip(x[2:], strides, kernel))]
    return [(ctx.dtype(0), (*x[:2], *sp))]


@register("MaxUnpool", inputs=["X", "I", "output_shape?"], outputs=["output"], infer=_max_unpool_infer,
          attrs={"kernel_shape": REQUIRED, "pads": None, "strides": None})
def max_unpool(x, indices, output_shape=None, *, kernel_shape, pads=None, strides=None):
    """MaxUnpool: zeros with X scattered to the flat NCHW positions in I (onnxruntime's reading when
    ``output_shape`` differs from the default size: I indexes the output as shaped)."""
    n = len(kernel_shape)
    if output_shape is None:
        st, pd = _ints(strides, n, 1), _ints(pads, 2 * n, 0)
        output_shape = [*x.shape[:2], *[(d - 1) * s - pd[i] - pd[n + i] + k for i, (d, s, k) in
                                        enumerate(zip(x.shape[2:], st, kernel_shape))]]
    y = np.zeros(int(np.prod(output_shape)), x.dtype)
    y[indices.reshape(-1)] = x.reshape(-1)
    return y.reshape([int(d) for d in output_shape])


def _col2im_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.shape(0)
    image, block = ctx.value(1), ctx.value(2)
    n_sp = ctx.shape(1)[0] if isinstance(ctx.shape(1)[0], int) else len(block)
    ch: Dim = ctx.new_dim()
    if block is not None and isinstance(x[1], int):
        ch = x[1] // int(np.prod(block))
    sp = [int(d) for d in image] if image is not None else [ctx.new_dim() for _ in range(n_sp)]
    return [(ctx.dtype(0), (x[0], ch, *sp))]


@register("Col2Im", inputs=["input", "image_shape", "block_shape"], outputs=["output"],
          attrs={"dilations": None, "pads": None, "strides": None}, infer=_col2im_infer)
def col2im(x, image_shape, block_shape, *, dilations=None, pads=None, strides=None):
    """Col2Im: sums sliding blocks [N, C*prod(block), L] back into an image [N, C, *image_shape]."""
    image = [int(d) for d in image_shape]
    block = [int(d) for d in block_shape]
    win = Window(image, block, {"dilations": dilations, "pads": pads, "strides": strides})
    n, k = x.shape[0], int(np.prod(block))
    c = x.shape[1] // k
    acc = _acc_dtype(x.dtype)
    y = np.zeros((n, c, *[pb + d + pe for pb, d, pe in zip(win.pads_begin, image, win.pads_end)]), acc)
    _scatter_taps(y, x.astype(acc).reshape(n, c, k, *win.out), win)
    crop = tuple(slice(pb, pb + d) for pb, d in zip(win.pads_begin, image))
    return y[(slice(None), slice(None)) + crop].astype(x.dtype)

