"""Integer pooling, reductions and resizing: TFLite's MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, REDUCE_MAX,
RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR.

- MaxPool / GlobalMaxPool / ReduceMax / ReduceMin: the extreme stored value (out-of-bounds taps
  skipped), clamped to the activation range.
- AveragePool: ``reference_integer_ops::AveragePool``: the sum of the stored values of the in-bounds
  taps divided by their count, rounded half away from zero (``count_include_pad`` must be 0).
- ReduceMean and GlobalAveragePool: TFLite's MEAN (``reference_ops::QuantizedMeanOrSum``): the sum less
  count * zp_x, scaled by s_x / s_y folded with 1/count into one quantized multiplier, plus zp_y. (TF's
  GlobalAveragePooling2D becomes MEAN in TFLite, so the exporter writes GlobalAveragePool as MEAN.)
- Resize: ``ResizeBilinearInteger`` (10-bit fixed-point weights, one rounding) and
  ``ResizeNearestNeighbor`` (float32 index arithmetic), for the coordinate modes TFLite has.

Ops TFLite runs only with equal input and output parameters run at the input's parameters and are then
requantized (``base.requantize``), which is how an exporter must write them.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import channels_last
from convertkit.canonical_ir.ops.resize import output_geometry
from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.base import (
    F32, QType, activation_range, float_attrs, need_quantized, quantized, require, requantize, saturate)


def _finish(y: np.ndarray, qx: QType, qy: QType, attrs: dict) -> np.ndarray:
    """Clamp to the activation range (TFLite clamps at the input's parameters, which it requires equal
    to the output's), then requantize if the output's parameters differ."""
    lo, hi = activation_range(attrs, qx)
    return requantize(saturate(y, qx.dtype, lo, hi), qx, qy)


@quantized("MaxPool")
def max_pool_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """MAX_POOL_2D (and the optional Indices, which are positions, not quantized)."""
    need_quantized(in_q, out_q)
    outs = get_schema("MaxPool").kernel(inputs[0], **float_attrs(attrs))
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    outs[0] = _finish(outs[0], in_q[0], out_q[0], attrs)
    return outs


@quantized("AveragePool")
def average_pool_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """AVERAGE_POOL_2D: rounded mean of the in-bounds stored values."""
    need_quantized(in_q, out_q)
    require(not attrs["count_include_pad"] or not any(attrs.get("pads") or [])
            and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"),
            "integer AveragePool counts only in-bounds taps (TFLite); count_include_pad=1 with padding has "
            "no integer form")
    y = get_schema("AveragePool").kernel(inputs[0], **float_attrs(attrs))   # integer path: TFLite's rounding
    return [_finish(y, in_q[0], out_q[0], attrs)]


def mean_multiplier(qx: QType, qy: QType, count: int) -> tuple[int, int]:
    """MEAN's one multiplier and shift for s_x / (s_y * count) (the C bundle shares it)."""
    m, shift = fx.quantize_multiplier(np.float64(qx.s) / np.float64(qy.s))
    m, shift = int(m), int(shift)
    if count > 0:
        n_shift = min(count.bit_length() - 1, 32, 31 + shift)
        m = int(((m << n_shift) // count) if n_shift >= 0 else (m >> -n_shift) // count)
        shift -= n_shift
    return m, shift


def quantized_mean(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, qx: QType, qy: QType) -> np.ndarray:
    """TFLite ``QuantizedMeanOrSum`` (mean): one multiplier for s_x / (s_y * count)."""
    require(not qx.per_channel and not qy.per_channel, "integer mean takes per-tensor quantized tensors")
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) if axes else 1
    total = fx.wrap(np.sum(x.astype(np.int64), axis=axes, keepdims=keepdims))
    m, shift = mean_multiplier(qx, qy, count)
    shifted = fx.wrap(total - qx.zp * count)
    out = fx.multiply_by_quantized_multiplier(shifted, m, shift) + qy.zp
    return saturate(out, qy.dtype)


def reduce_axes(x: np.ndarray, axes: np.ndarray | None, noop: int) -> tuple[int, ...]:
    ax = [] if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    if not ax:
        return () if noop else tuple(range(x.ndim))
    return tuple(sorted({a % x.ndim for a in ax}))


@quantized("ReduceMean")
def reduce_mean_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """MEAN."""
    need_quantized(in_q, out_q)
    x = inputs[0]
    axes = reduce_axes(x, inputs[1] if len(inputs) > 1 else None, attrs["noop_with_empty_axes"])
    return [quantized_mean(x, axes, bool(attrs["keepdims"]), in_q[0], out_q[0])]


@quantized("GlobalAveragePool")
def global_average_pool_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """MEAN over the spatial axes, keeping them."""
    need_quantized(in_q, out_q)
    x = inputs[0]
    axes = tuple(range(1, x.ndim - 1)) if channels_last(attrs["layout"]) else tuple(range(2, x.ndim))
    return [quantized_mean(x, axes, True, in_q[0], out_q[0])]


def _extreme_kernel(op: str, fn):
    def run(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
        need_quantized(in_q, out_q)
        x = inputs[0]
        if op.startswith("Global"):
            axes = tuple(range(1, x.ndim - 1)) if channels_last(attrs["layout"]) else tuple(range(2, x.ndim))
            keep = True
        else:
            axes = reduce_axes(x, inputs[1] if len(inputs) > 1 else None, attrs["noop_with_empty_axes"])
            keep = bool(attrs["keepdims"])
        y = fn(x, axis=axes, keepdims=keep) if axes else x
        return [_finish(y, in_q[0], out_q[0], attrs)]
    run.__name__ = f"{op.lower()}_int"
    run.__doc__ = f"{op}: the extreme stored value, requantized if the output's parameters differ."
    return run


quantized("GlobalMaxPool")(_extreme_kernel("GlobalMaxPool", np.max))
quantized("ReduceMax")(_extreme_kernel("ReduceMax", np.max))
quantized("ReduceMin")(_extreme_kernel("ReduceMin", np.min))


# ---------------------------------------------------------------------------------------------- Resize
def _tflite_resize_flags(attrs: dict, n_out: tuple[int, int]) -> tuple[bool, bool]:
    """(align_corners, half_pixel_centers) of the TFLite resize that has this Resize's semantics."""
    mode, coord, nearest = attrs["mode"], attrs["coordinate_transformation_mode"], attrs["nearest_mode"]
    if mode == "linear" and not attrs["antialias"]:
        table = {"half_pixel": (False, True), "asymmetric": (False, False), "align_corners": (True, False)}
        if coord == "pytorch_half_pixel" and min(n_out) > 1:
            coord = "half_pixel"
        if coord in table:
            return table[coord]
    if mode == "nearest":
        table = {("asymmetric", "floor"): (False, False), ("tf_half_pixel_for_nn", "floor"): (False, True),
                 ("half_pixel", "round_prefer_ceil"): (False, True),
                 ("align_corners", "round_prefer_ceil"): (True, False)}
        if (coord, nearest) in table:
            return table[(coord, nearest)]
    nearest_txt = f", nearest_mode={nearest!r}" if mode == "nearest" else ""
    raise ValueError(f"Resize mode={mode!r}, coordinate_transformation_mode={coord!r}{nearest_txt} has no "
                     "TFLite integer "
                     "form (TFLite resizes linear or nearest with half-pixel, asymmetric or align-corners "
                     "coordinates)")


def bilinear_axis(n_in: int, n_out: int, align: bool, half: bool) -> tuple[np.ndarray, ...]:
    """``ComputeInterpolationValuesInteger`` for every output index: (scaled, lower, upper)."""
    scale = ((1 << 10) * n_in + n_out // 2) // n_out
    if align and n_out > 1:
        scale = ((1 << 10) * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    v = np.arange(n_out, dtype=np.int64)
    scaled = v * scale + scale // 2 - (1 << 9) if half else v * scale
    lower = np.maximum(fx.trunc_div(scaled, 1 << 10), 0)
    upper = np.minimum(fx.trunc_div(scaled + (1 << 10) - 1, 1 << 10), n_in - 1)
    return scaled, lower, upper


def _resize_bilinear(x: np.ndarray, out_hw: tuple[int, int], align: bool, half: bool) -> np.ndarray:
    """``ResizeBilinearInteger`` on [N, H, W, C] stored values."""
    (h, w), (oh, ow) = x.shape[1:3], out_hw
    iy, y0, y1 = bilinear_axis(h, oh, align, half)
    ix, x0, x1 = bilinear_axis(w, ow, align, half)
    dy = (iy - (y0 << 10))[None, :, None, None]
    dx = (ix - (x0 << 10))[None, None, :, None]
    v = x.astype(np.int64)

    def at(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return v[:, ys][:, :, xs]
    total = (at(y0, x0) * ((1 << 10) - dy) * ((1 << 10) - dx) + at(y1, x0) * dy * ((1 << 10) - dx)
             + at(y0, x1) * ((1 << 10) - dy) * dx + at(y1, x1) * dy * dx)
    rounded = fx.trunc_div(total + np.where(total > 0, 1 << 19, -(1 << 19)), 1 << 20)
    return rounded


def _nearest_index(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """TFLite ``GetNearestNeighbor`` in float32 for every output index."""
    scale = F32(n_in - 1) / F32(n_out - 1) if align and n_out > 1 else F32(n_in) / F32(n_out)
    pos = ((np.arange(n_out, dtype=F32) + F32(0.5 if half else 0.0)) * scale).astype(F32)
    idx = fx.round_half_away(pos) if align else np.floor(pos)
    idx = np.minimum(idx.astype(np.int64), n_in - 1)
    return np.maximum(idx, 0) if half else idx


def tflite_nearest_or_none(attrs: dict, n_out: tuple[int, int]) -> tuple[bool, bool] | None:
    try:
        return _tflite_resize_flags(attrs, n_out)
    except ValueError:
        return None


@quantized("Resize")
def resize_int(inputs: list, in_q: list, out_q: list, attrs: dict) -> list[np.ndarray]:
    """RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR on the two resized axes of a rank-4 tensor (H, W of
    NHWC or NCHW), on stored values, then requantized if the output's parameters differ. A nearest
    resize in a coordinate mode TFLite lacks still only picks stored values: it picks them by the
    op's own (ONNX) rule, which an exporter must match or refuse."""
    need_quantized(in_q, out_q)
    x, roi, scales, sizes = (inputs + [None] * 4)[:4]
    x_q = in_q[0]
    out_shape, sc = output_geometry(x.shape, scales, sizes, attrs)
    changed = [a for a in range(x.ndim) if out_shape[a] != x.shape[a] or sc[a] != 1]
    hw = None
    if x.ndim == 4:
        hw = (1, 2) if set(changed) <= {1, 2} else (2, 3) if set(changed) <= {2, 3} else None
    exact_ratio = hw is not None and all(F32(sc[a]) == F32(out_shape[a]) / F32(x.shape[a]) for a in hw)
    flags = tflite_nearest_or_none(attrs, (out_shape[hw[0]], out_shape[hw[1]])) if exact_ratio else None
    if attrs["mode"] == "nearest" and flags is None:
        y = get_schema("Resize").kernel(x, roi, scales, sizes, **float_attrs(attrs))
        return [requantize(np.asarray(y), x_q, out_q[0])]
    require(hw is not None, f"integer Resize resizes two adjacent spatial axes of a rank-4 tensor, not "
                            f"axes {changed} of rank {x.ndim}")
    require(exact_ratio, "integer Resize needs sizes (or scales equal to output/input size ratios): TFLite "
                         "derives its coordinates from the sizes")
    n_out = (out_shape[hw[0]], out_shape[hw[1]])
    align, half = _tflite_resize_flags(attrs, n_out)
    nhwc = x if hw == (1, 2) else np.moveaxis(x, 1, -1)
    if attrs["mode"] == "linear":
        y = _resize_bilinear(nhwc, n_out, align, half)
    else:
        ys = _nearest_index(nhwc.shape[1], n_out[0], align, half)
        xs = _nearest_index(nhwc.shape[2], n_out[1], align, half)
        y = nhwc[:, ys][:, :, xs]
    y = y if hw == (1, 2) else np.moveaxis(y, -1, 1)
    return [requantize(saturate(y, x_q.dtype), x_q, out_q[0])]
