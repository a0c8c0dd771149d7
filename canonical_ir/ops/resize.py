"""Spatial resampling: Resize, GridSample, CenterCropPad (ONNX semantics, newest versions).

None of these has a ``layout`` attribute: Resize's scales/sizes/roi/axes and CenterCropPad's
shape/axes name dimensions of the actual tensor, so the same op is right in any layout (the layout
pass permutes those values instead); GridSample is defined on NC... tensors only, as in ONNX.

Resize is separable: each resized axis is one 1-D resampling, an index gather for ``nearest`` and a
weight matrix for ``linear``/``cubic`` (with or without ``antialias``), applied in float64. Source
coordinates, rounding and filter weights are computed in float32 with onnxruntime's formulas, so the
chosen pixels and weights are the ones onnxruntime uses. Where implementations disagree:

* output size from ``scales`` is floor(size * scale) computed exactly, as ONNX's shape inference does
  (onnxruntime's float32 product gives 7 for 10 * 0.7f, ONNX 6);
* ``align_corners`` divides by the integer output length minus one, as the spec and onnxruntime do
  (onnx's reference and two of its downsampling test cases use the fractional scale * size);
* interpolated integer results are rounded half to even and saturated, as onnx's reference does
  (onnxruntime truncates toward zero, so it can differ by one).

``tf_half_pixel_for_nn`` (Resize-11 only) is kept as an extra coordinate mode so opset 11/12 models
import unchanged.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from convertkit.canonical_ir.ops.registry import InferContext, TensorType, normalize_axis, register

F32 = np.float32
COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_crop_and_resize", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


# ----------------------------------------------------------------------------------- geometry
def _present(v: np.ndarray | None) -> np.ndarray | None:
    return None if v is None or np.asarray(v).size == 0 else np.asarray(v)


def _axes(attrs: dict[str, Any], rank: int) -> list[int]:
    axes = attrs.get("axes")
    return list(range(rank)) if not axes else [normalize_axis(int(a), rank) for a in axes]


def _scaled(n: int, scale: float) -> int:
    """floor(n * scale) exactly, as ONNX's shape inference computes it (onnxruntime multiplies in
    float32 and can get one more, e.g. 10 * 0.7f)."""
    return int(np.floor(float(F32(scale)) * n))


def output_geometry(in_shape: tuple, scales: Any, sizes: Any, attrs: dict[str, Any]) -> tuple[list[int], list[float]]:
    """(output shape, per-axis float32 scale) of a Resize from its ``scales`` or, if those are absent
    or empty, its ``sizes``; for every exporter and kernel that must resize exactly as the IR does."""
    scales, sizes = _present(scales), _present(sizes)
    return _plan(in_shape, scales, None if scales is not None else sizes, attrs)


def _plan(in_shape: tuple, scales: np.ndarray | None, sizes: np.ndarray | None,
          attrs: dict[str, Any]) -> tuple[list[int], list[float]]:
    """(output shape, per-axis float32 scale) as onnxruntime computes them."""
    rank = len(in_shape)
    axes = _axes(attrs, rank)
    out, sc = list(in_shape), [F32(1.0)] * rank
    if scales is not None:
        if len(scales) != len(axes):
            raise ValueError(f"{len(scales)} scales for {len(axes)} axes")
        for a, s in zip(axes, scales.astype(F32)):
            if not s > 0:
                raise ValueError(f"scale {s} is not positive")
            sc[a], out[a] = s, _scaled(in_shape[a], s)
        return out, sc
    if sizes is None:
        raise ValueError("Resize needs scales or sizes")
    if len(sizes) != len(axes):
        raise ValueError(f"{len(sizes)} sizes for {len(axes)} axes")
    for a, n in zip(axes, sizes):
        out[a] = int(n)
        sc[a] = F32(1.0) if in_shape[a] == 0 else F32(n) / F32(in_shape[a])
    policy = attrs.get("keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        if policy not in ("not_larger", "not_smaller"):
            raise ValueError(f"keep_aspect_ratio_policy {policy!r} is not stretch/not_larger/not_smaller")
        pick = min if policy == "not_larger" else max
        s = pick(sc[a] for a in axes)
        for a in axes:
            v = F32(s) * F32(in_shape[a])
            sc[a], out[a] = s, int(np.floor(v + 0.5)) if v >= 0 else int(np.ceil(v - 0.5))
    return out, sc


def _source_coords(mode: str, n_in: int, n_out: int, scale: np.float32,
                   roi: tuple[float, float]) -> np.ndarray:
    """Input coordinate of every output index along one axis (float32, onnxruntime's formulas)."""
    x = np.arange(n_out, dtype=F32)
    half, one = F32(0.5), F32(1.0)
    if mode == "half_pixel":
        return (x + half) / scale - half
    if mode == "asymmetric":
        return x / scale
    if mode == "pytorch_half_pixel":
        return (x + half) / scale - half if n_out > 1 else np.zeros(n_out, F32)
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / scale
    if mode == "align_corners":
        return x * F32(n_in - 1) / F32(n_out - 1) if n_out != 1 else np.zeros(n_out, F32)
    if mode == "tf_crop_and_resize":
        start, end = F32(roi[0]), F32(roi[1])
        if n_out > 1:
            return start * F32(n_in - 1) + x * (end - start) * F32(n_in - 1) / F32(n_out - 1)
        return np.full(n_out, 0.5 * (float(start) + float(end)) * (n_in - 1), F32)
    if mode == "half_pixel_symmetric":
        width = scale * F32(n_in)
        offset = F32(n_in) / F32(2) * (one - F32(n_out) / width)
        return (float(offset) + (x.astype(np.float64) + 0.5) / float(scale) - 0.5).astype(F32)
    raise ValueError(f"coordinate_transformation_mode {mode!r} is not one of {', '.join(COORD_MODES)}")


def _nearest(x: np.ndarray, mode: str) -> np.ndarray:
    # C's round(), half away from 0; in float64, where |x| + 0.5 is exact (in float32, 0.49999997
    # + 0.5 rounds up to 1 and would pick the wrong pixel)
    away = (np.sign(x) * np.floor(np.abs(x).astype(np.float64) + 0.5)).astype(x.dtype)
    if mode == "round_prefer_floor":
        return np.where(x == np.trunc(x) + F32(0.5), np.floor(x), away)
    if mode == "round_prefer_ceil":
        return away
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    raise ValueError(f"nearest_mode {mode!r} is not one of {', '.join(NEAREST_MODES)}")


def _linear_weights(src: np.ndarray, n_in: int) -> np.ndarray:
    xc = np.clip(src, F32(0), F32(n_in - 1))
    x1 = np.minimum(xc.astype(np.int64), n_in - 1)
    x2 = np.minimum(x1 + 1, n_in - 1)
    d1, d2 = np.abs(xc - x1.astype(F32)), np.abs(xc - x2.astype(F32))
    same = x1 == x2
    d1, d2 = np.where(same, F32(0.5), d1), np.where(same, F32(0.5), d2)
    w = np.zeros((len(src), n_in))
    rows = np.arange(len(src))
    np.add.at(w, (rows, x1), d2)
    np.add.at(w, (rows, x2), d1)
    return w


def _cubic_coeffs(s: np.ndarray, a: np.float32) -> np.ndarray:
    s = np.abs(s)
    one, two = F32(1), F32(2)
    return np.stack([((a * (s + one) - 5 * a) * (s + one) + 8 * a) * (s + one) - 4 * a,
                     ((a + 2) * s - (a + 3)) * s * s + one,
                     ((a + 2) * (one - s) - (a + 3)) * (one - s) * (one - s) + one,
                     ((a * (two - s) - 5 * a) * (two - s) + 8 * a) * (two - s) - 4 * a], axis=1).astype(F32)


def _cubic_weights(src: np.ndarray, n_in: int, a: np.float32, exclude_outside: bool) -> np.ndarray:
    base = np.floor(src)
    coeffs = _cubic_coeffs(src - base, a)
    taps = base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
    if exclude_outside:
        coeffs = np.where((taps < 0) | (taps >= n_in), F32(0), coeffs)
        coeffs = coeffs / coeffs.sum(axis=1, keepdims=True)
    w = np.zeros((len(src), n_in))
    np.add.at(w, (np.repeat(np.arange(len(src)), 4), np.clip(taps, 0, n_in - 1).reshape(-1)),
              coeffs.reshape(-1))
    return w


def _linear_filter(x: np.ndarray, a: np.float32) -> np.ndarray:
    return np.where(x < 1, F32(1) - x, F32(0))


def _cubic_filter(x: np.ndarray, a: np.float32) -> np.ndarray:
    near = ((a + F32(2)) * x - (a + F32(3))) * x * x + F32(1)
    far = (((x - F32(5)) * x + F32(8)) * x - F32(4)) * a
    return np.where(x < 1, near, np.where(x < 2, far, F32(0)))


def _antialias_weights(src: np.ndarray, n_in: int, scale: np.float32, support_size: float,
                       filt: Callable, a: np.float32, exclude_outside: bool) -> np.ndarray:
    """onnxruntime's (Pillow's) antialiasing filter: a kernel stretched by 1/scale when shrinking."""
    inv = F32(1.0) / scale
    support = F32(support_size * 0.5) * inv if inv >= 1 else F32(support_size * 0.5)
    window = int(np.ceil(support)) * 2 + 1
    inv_scale = F32(1.0) / inv if inv >= 1 else F32(1.0)
    center = F32(0.5) + (np.arange(len(src), dtype=F32) if inv == 1 else src)
    xmin = np.floor(center - support + F32(0.5)).astype(np.int64)
    xmax = np.floor(center + support + F32(0.5)).astype(np.int64)
    xmax = xmin + np.clip(xmax - xmin, 0, window)
    if exclude_outside:
        xmin, xmax = np.clip(xmin, 0, n_in), np.clip(xmax, 0, n_in)
    taps = xmin[:, None] + np.arange(window)[None, :]
    valid = taps < xmax[:, None]
    dist = np.abs((taps.astype(F32) - center[:, None] + F32(0.5)) * inv_scale)
    wts = np.where(valid, filt(dist, a), F32(0))
    total = wts.sum(axis=1, keepdims=True, dtype=F32)
    wts = wts * (F32(1) / np.where(total == 0, F32(1), total))
    w = np.zeros((len(src), n_in))
    rows = np.repeat(np.arange(len(src)), window)
    np.add.at(w, (rows, np.clip(taps, 0, n_in - 1).reshape(-1)), np.where(valid, wts, 0).reshape(-1))
    return w


# -------------------------------------------------------------------------------------- Resize
RESIZE_ATTRS = {"antialias": 0, "axes": None, "coordinate_transformation_mode": "half_pixel",
                "cubic_coeff_a": -0.75, "exclude_outside": 0, "extrapolation_value": 0.0,
                "keep_aspect_ratio_policy": "stretch", "mode": "nearest",
                "nearest_mode": "round_prefer_floor"}


def _resize_infer(ctx: InferContext) -> list[TensorType]:
    a = ctx.attrs
    if a["mode"] not in ("nearest", "linear", "cubic"):
        raise ctx.error(f"mode {a['mode']!r} is not nearest, linear or cubic")
    if a["coordinate_transformation_mode"] not in COORD_MODES:
        raise ctx.error(f"coordinate_transformation_mode {a['coordinate_transformation_mode']!r} is unknown")
    x = ctx.shape(0)
    axes = _axes(a, len(x))
    scales, sizes = _present(ctx.value(2)), _present(ctx.value(3))
    if scales is None and sizes is None and not (ctx.has(2) or ctx.has(3)):
        raise ctx.error("Resize needs scales or sizes")
    if scales is not None and all(isinstance(d, int) for d in x):
        return [(ctx.dtype(0), tuple(_plan(x, scales, None, a)[0]))]
    if sizes is not None and (a["keep_aspect_ratio_policy"] == "stretch" or all(isinstance(x[i], int)
                                                                                for i in axes)):
        static = tuple(d if isinstance(d, int) else 1 for d in x)
        out = _plan(static, None, sizes, a)[0]
        return [(ctx.dtype(0), tuple(out[i] if i in axes else x[i] for i in range(len(x))))]
    out = list(x)
    for k, i in enumerate(axes):
        keep = scales is not None and float(scales[k]) == 1.0
        if scales is not None and isinstance(x[i], int):
            out[i] = _scaled(x[i], scales[k])
        elif not keep:
            out[i] = ctx.new_dim()
    return [(ctx.dtype(0), tuple(out))]


@register("Resize", inputs=["X", "roi?", "scales?", "sizes?"], attrs=RESIZE_ATTRS, infer=_resize_infer)
def resize(x, roi=None, scales=None, sizes=None, **attrs):
    """Resize: nearest/linear/cubic resampling of any axes; roi matters only for tf_crop_and_resize."""
    mode, coord = attrs["mode"], attrs["coordinate_transformation_mode"]
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"mode {mode!r} is not nearest, linear or cubic")
    if attrs["antialias"] and mode == "nearest":
        raise ValueError("antialias applies to linear and cubic modes only")
    roi, scales, sizes = _present(roi), _present(scales), _present(sizes)
    rank = x.ndim
    axes = _axes(attrs, rank)
    out_shape, sc = _plan(x.shape, scales, None if scales is not None else sizes, attrs)
    rois = [(0.0, 1.0)] * rank
    if coord == "tf_crop_and_resize":
        if roi is None:
            raise ValueError("tf_crop_and_resize needs roi")
        k = len(roi) // 2
        names = axes if k == len(axes) else list(range(rank))
        for j, ax in enumerate(names):
            rois[ax] = (float(roi[j]), float(roi[k + j]))
    a = F32(attrs["cubic_coeff_a"])
    y = x if mode == "nearest" else x.astype(np.float64)
    outside = np.zeros((), bool)
    for ax in range(rank):
        n_in, n_out = x.shape[ax], out_shape[ax]
        if n_out == n_in and sc[ax] == 1 and rois[ax] == (0.0, 1.0):
            continue
        src = _source_coords(coord, n_in, n_out, F32(sc[ax]), rois[ax])
        if coord == "tf_crop_and_resize":
            out_ax = (src < 0) | (src > n_in - 1)
            outside = outside | out_ax.reshape((n_out,) + (1,) * (rank - ax - 1))
        if mode == "nearest":
            idx = np.clip(_nearest(src, attrs["nearest_mode"]), 0, n_in - 1).astype(np.intp)
            y = np.take(y, idx, axis=ax)
            continue
        if attrs["antialias"]:
            filt, support = (_linear_filter, 2.0) if mode == "linear" else (_cubic_filter, 4.0)
            w = _antialias_weights(src, n_in, F32(sc[ax]), support, filt, a, bool(attrs["exclude_outside"]))
        elif mode == "linear":
            w = _linear_weights(src, n_in)
        else:
            w = _cubic_weights(src, n_in, a, bool(attrs["exclude_outside"]))
        y = np.moveaxis(np.tensordot(w, y, axes=([1], [ax])), 0, ax)
    if outside.any():
        y = np.where(outside, attrs["extrapolation_value"], y)
    return _to_dtype(y, x.dtype)


def _to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu" and y.dtype.kind == "f":
        info = np.iinfo(dtype)
        return np.clip(np.round(y), info.min, info.max).astype(dtype)
    return y.astype(dtype, copy=False)


# ------------------------------------------------------------------------------- CenterCropPad
def _crop_pad_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.shape(0)
    axes = _axes(ctx.attrs, len(x))
    shape = ctx.value(1)
    out = list(x)
    for k, ax in enumerate(axes):
        out[ax] = int(shape[k]) if shape is not None else ctx.new_dim()
    return [(ctx.dtype(0), tuple(out))]


@register("CenterCropPad", inputs=["input_data", "shape"], outputs=["output_data"], attrs={"axes": None},
          infer=_crop_pad_infer)
def center_crop_pad(x, shape, *, axes=None):
    """CenterCropPad: centre crop or zero-pad each axis to ``shape``; odd remainders go to the end."""
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    out = list(x.shape)
    for ax, n in zip(_axes({"axes": axes}, x.ndim), (int(s) for s in shape)):
        d = x.shape[ax]
        out[ax] = n
        if n < d:
            src[ax] = slice((d - n) // 2, (d - n) // 2 + n)
        elif n > d:
            dst[ax] = slice((n - d) // 2, (n - d) // 2 + d)
    y = np.zeros(out, x.dtype)
    y[tuple(dst)] = x[tuple(src)]
    return y


# --------------------------------------------------------------------------------- GridSample
def _grid_infer(ctx: InferContext) -> list[TensorType]:
    x, g = ctx.shape(0), ctx.shape(1)
    if len(g) != len(x) or (isinstance(g[-1], int) and g[-1] != len(x) - 2):
        raise ctx.error(f"grid shape {list(g)} does not fit input shape {list(x)}")
    if ctx.attrs["mode"] not in ("linear", "nearest", "cubic"):
        raise ctx.error(f"mode {ctx.attrs['mode']!r} is not linear, nearest or cubic")
    return [(ctx.dtype(0), (x[0], x[1], *g[1:-1]))]


def _reflect(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    rng = hi - lo
    below, above = v < lo, v > hi
    dx = np.where(below, lo - v, v - hi)
    n = np.trunc(dx / rng)
    r = dx - n * rng
    even = n % 2 == 0
    return np.where(below, np.where(even, lo + r, hi - r), np.where(above, np.where(even, hi - r, lo + r), v))


@register("GridSample", inputs=["X", "grid"], attrs={"align_corners": 0, "mode": "linear",
                                                     "padding_mode": "zeros"}, infer=_grid_infer)
def grid_sample(x, grid, *, align_corners=0, mode="linear", padding_mode="zeros"):
    """GridSample: samples X at normalized grid coordinates (grid[..., 0] is the last axis)."""
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"padding_mode {padding_mode!r} is not zeros, border or reflection")
    dims = x.shape[2:]
    nd = len(dims)
    ct = np.float64 if x.dtype == np.float64 else F32
    coords, borders = [], []
    for i, d in enumerate(dims):
        g = grid[..., nd - 1 - i].astype(ct)
        v = (g + 1) / ct(2) * ct(d - 1) if align_corners else ((g + 1) * ct(d) - 1) / ct(2)
        lo, hi = (0.0, d - 1.0) if align_corners else (-0.5, d - 0.5)
        if mode == "nearest":
            v = np.rint(v)
        if padding_mode == "border" and mode != "cubic":      # cubic clamps each tap instead
            v = np.where((v < lo) | (v > hi), np.clip(v, 0, d - 1), v)
        elif padding_mode == "reflection":
            v = _reflect(v, lo, hi).astype(ct)
        coords.append(v)
        borders.append((lo, hi))
    xt = np.moveaxis(x, 1, -1)                                    # [N, *in, C]
    batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))

    def pixel(idx: list[np.ndarray]) -> np.ndarray:
        ok = np.ones(idx[0].shape, bool)
        fixed = []
        for i, (d, (lo, hi)) in enumerate(zip(dims, borders)):
            j = idx[i]
            if padding_mode == "zeros":
                ok &= (j >= 0) & (j < d)
            elif padding_mode == "reflection":
                j = _reflect(j.astype(np.float64), lo, hi).astype(np.int64)
            fixed.append(np.clip(j, 0, d - 1))
        vals = xt[(batch, *fixed)].astype(np.float64)
        return vals * ok[..., None]
    if mode == "nearest":
        y = pixel([c.astype(np.int64) for c in coords])
    else:
        taps = (0, 1) if mode == "linear" else (-1, 0, 1, 2)
        base = [np.floor(c) for c in coords]
        if mode == "linear":
            wts = [np.stack([1 - (c - b), c - b]).astype(np.float64) for c, b in zip(coords, base)]
        else:
            wts = [np.moveaxis(_cubic_coeffs((c - b).reshape(-1), F32(-0.75)).astype(np.float64), 0, 1)
                   .reshape((4, *c.shape)) for c, b in zip(coords, base)]
        y = 0.0
        for combo in itertools.product(range(len(taps)), repeat=nd):
            w = np.prod([wts[i][t] for i, t in enumerate(combo)], axis=0)
            y = y + pixel([b.astype(np.int64) + taps[t] for b, t in zip(base, combo)]) * w[..., None]
    return _to_dtype(np.moveaxis(np.asarray(y), -1, 1), x.dtype)
