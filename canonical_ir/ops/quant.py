"""Affine quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul,
QLinearConv.

These are the ONNX ops, kept exact: ``q = saturate(round_half_even(x / scale) + zero_point)`` and
``x = (q - zero_point) * scale``, per tensor (scalar scale), per axis (1-D scale along ``axis``) or
blocked (scale with the input's rank, each entry covering ``block_size`` elements along ``axis``).
The integer ops accumulate exactly in integers and requantize as onnxruntime (MLAS) does: the int32
accumulator times the float32 multiplier ``(s_a * s_b) / s_y``, rounded half to even, plus the output
zero point, saturated. That is ONNX's float requantization, bit-exact with onnxruntime; it is not the
TFLite fixed-point (multiplier and shift) scheme that DESIGN.md prescribes for int8 TFLite/C kernels.
``output_dtype`` and ``precision`` are ONNX TensorProto type codes, 0 meaning unset.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.ops.linalg import exact_product, integer_operand, matmul_shape
from convertkit.canonical_ir.ops.reduce import stable_dims
from convertkit.canonical_ir.ops.registry import (
    InferContext, TensorType, elements, layout_channel_axis, normalize_axis, register)

QUANT_TYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32))
"""Element types a quantized tensor may have (int32: biases and accumulators)."""
F32 = np.dtype(np.float32)


# ----------------------------------------------------------------------------------- helpers
def expand_param(p: np.ndarray, shape: tuple, axis: int, block_size: int) -> np.ndarray:
    """A scale or zero point made broadcastable to ``shape``: per tensor, per axis or blocked."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    axis = normalize_axis(axis, len(shape))
    if block_size > 0:
        if p.ndim != len(shape):
            raise ValueError(f"blocked quantization needs a scale of rank {len(shape)}, got {p.shape}")
        full = np.repeat(p, block_size, axis=axis).take(np.arange(shape[axis]), axis=axis)
        if full.shape != tuple(shape):
            raise ValueError(f"scale {p.shape} with block_size {block_size} does not cover input {shape}")
        return full
    if p.ndim != 1 or p.shape[0] != shape[axis]:
        raise ValueError(f"per-axis scale must be 1-D of length {shape[axis]} (axis {axis}), got {p.shape}")
    return p.reshape([-1 if i == axis else 1 for i in range(len(shape))])


def saturate_cast(v: np.ndarray, dt: np.dtype) -> np.ndarray:
    info = np.iinfo(dt)
    return np.clip(v, info.min, info.max).astype(dt)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: np.ndarray, dt: np.dtype) -> np.ndarray:
    """int accumulator -> quantized ``dt``: float32 multiply, round half to even, add zero point."""
    v = np.rint(acc.astype(np.float32) * np.asarray(multiplier, np.float32))
    return saturate_cast(v.astype(np.int64) + np.asarray(zero_point).astype(np.int64), dt)


def _check_param(ctx: InferContext, i: int, x_shape: tuple, axis: int, block_size: int, what: str) -> None:
    """Statically check that a scale or zero point fits the quantization granularity."""
    if not ctx.has(i):
        return
    p = ctx.shape(i)
    if all(d == 1 for d in p):
        return
    rank = len(x_shape)
    ax = normalize_axis(axis, rank, ctx)
    if block_size > 0:
        ok = len(p) == rank and all(
            not (isinstance(a, int) and isinstance(b, int)) or
            (a == b if j != ax else -(-a // block_size) == b) for j, (a, b) in enumerate(zip(x_shape, p)))
    else:
        n = x_shape[ax]
        ok = len(p) == 1 and (not isinstance(p[0], int) or not isinstance(n, int) or p[0] == n)
    if not ok:
        mode = f"blocked (block_size {block_size})" if block_size > 0 else "per-axis"
        raise ctx.error(f"{what} of shape {list(p)} does not fit {mode} quantization of {list(x_shape)} "
                        f"on axis {axis}")


def _code_dtype(ctx: InferContext, code: int, what: str) -> np.dtype:
    dt = dtypes.from_onnx(code)
    if dt is None:
        raise ctx.error(f"{what}={code} names an element type convertkit does not support "
                        "(float8, int4 and other sub-byte types are not in the IR)")
    return dt


# ------------------------------------------------------------------------------ QuantizeLinear
def quantize_output_dtype(ctx: InferContext) -> np.dtype:
    code = ctx.attrs["output_dtype"]
    dt = _code_dtype(ctx, code, "output_dtype") if code else None
    if ctx.has(2):
        if dt is not None and dt != ctx.dtype(2):
            raise ctx.error(f"output_dtype {dt} differs from the zero point's type {ctx.dtype(2)}")
        dt = ctx.dtype(2)
    dt = np.dtype(np.uint8) if dt is None else dt
    if dt not in QUANT_TYPES:
        raise ctx.error(f"cannot quantize to {dt}; supported: {', '.join(map(str, QUANT_TYPES))}")
    return dt


def _quantize_infer(ctx: InferContext) -> list[TensorType]:
    shape, a = ctx.shape(0), ctx.attrs
    if a["precision"]:
        _code_dtype(ctx, a["precision"], "precision")
    if a["rounding"] not in ROUNDING_MODES:
        raise ctx.error(f"rounding {a['rounding']!r} is not one of {', '.join(ROUNDING_MODES)}")
    for i, what in ((1, "y_scale"), (2, "y_zero_point")):
        _check_param(ctx, i, shape, a["axis"], a["block_size"], what)
    return [(quantize_output_dtype(ctx), shape)]


def _division_dtype(x: np.ndarray, scale: np.ndarray, precision: int) -> np.dtype:
    if precision:
        return dtypes.from_onnx(precision)
    dt = np.result_type(x.dtype, scale.dtype)
    return F32 if dt == np.float16 else dt  # half inputs divide in float32, as onnxruntime does


ROUNDING_MODES = ("half_to_even", "half_away_from_zero")
"""QuantizeLinear's ``rounding``: ONNX rounds x / scale half to even; TFLite's QUANTIZE (and DESIGN.md's
int8 scheme) rounds half away from zero (``TfLiteRound``). The attribute is convertkit's, not ONNX's: the
default is ONNX's, and a TFLite importer or the int8 quantizer sets the other."""


@register("QuantizeLinear", inputs=["x", "y_scale", "y_zero_point?"],
          attrs={"axis": 1, "block_size": 0, "saturate": 1, "output_dtype": 0, "precision": 0,
                 "rounding": "half_to_even"},
          infer=_quantize_infer)
def quantize_linear(x, y_scale, y_zero_point=None, *, axis, block_size, saturate, output_dtype, precision,
                    rounding="half_to_even"):
    """QuantizeLinear: saturate(round(x / y_scale) + y_zero_point).

    ``rounding`` is "half_to_even" (ONNX) or "half_away_from_zero" (TFLite's QUANTIZE; the division
    is then float32, as TFLite's ``val / scale``). Output type: the zero point's, else ``output_dtype``,
    else uint8. ``saturate`` only concerns float8 outputs, which the IR does not have.
    """
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding {rounding!r} is not one of {', '.join(ROUNDING_MODES)}")
    dt = y_zero_point.dtype if y_zero_point is not None else \
        (dtypes.from_onnx(output_dtype) if output_dtype else np.dtype(np.uint8))
    calc = _division_dtype(x, y_scale, precision)
    scale = expand_param(y_scale, x.shape, axis, block_size).astype(calc)
    with np.errstate(all="ignore"):
        r = x.astype(calc) / scale
        if rounding == "half_to_even":
            q = np.rint(r)
        else:  # C's round() on the quotient; float64 keeps float32 quotients' ties exact
            q = np.sign(r) * np.floor(np.abs(r.astype(np.float64)) + 0.5)
    q = np.nan_to_num(q, nan=0.0, posinf=np.iinfo(dt).max, neginf=np.iinfo(dt).min)
    q = np.clip(q, -2.0 ** 62, 2.0 ** 62).astype(np.int64)
    if y_zero_point is not None:
        q = q + expand_param(y_zero_point, x.shape, axis, block_size).astype(np.int64)
    return saturate_cast(q, dt)


# ---------------------------------------------------------------------------- DequantizeLinear
def _dequantize_infer(ctx: InferContext) -> list[TensorType]:
    shape, a = ctx.shape(0), ctx.attrs
    if ctx.dtype(0) not in QUANT_TYPES:
        raise ctx.error(f"cannot dequantize {ctx.dtype(0)}; supported: {', '.join(map(str, QUANT_TYPES))}")
    if ctx.has(2) and ctx.dtype(2) != ctx.dtype(0):
        raise ctx.error(f"zero point type {ctx.dtype(2)} differs from the input's {ctx.dtype(0)}")
    for i, what in ((1, "x_scale"), (2, "x_zero_point")):
        _check_param(ctx, i, shape, a["axis"], a["block_size"], what)
    dt = _code_dtype(ctx, a["output_dtype"], "output_dtype") if a["output_dtype"] else ctx.dtype(1)
    return [(dt, shape)]


@register("DequantizeLinear", inputs=["x", "x_scale", "x_zero_point?"],
          attrs={"axis": 1, "block_size": 0, "output_dtype": 0}, infer=_dequantize_infer)
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis, block_size, output_dtype):
    """DequantizeLinear: (x - x_zero_point) * x_scale, the subtraction exact, the product in float32
    (float64 for double scales) and cast to ``output_dtype`` (default: the scale's type)."""
    out = dtypes.from_onnx(output_dtype) if output_dtype else x_scale.dtype
    v = x.astype(np.int64)
    if x_zero_point is not None:
        v = v - expand_param(x_zero_point, x.shape, axis, block_size).astype(np.int64)
    calc = np.float64 if x_scale.dtype == np.float64 else np.float32
    scale = expand_param(x_scale, x.shape, axis, block_size).astype(calc)
    return (v.astype(calc) * scale).astype(out)


# ------------------------------------------------------------------------ DynamicQuantizeLinear
def _dynamic_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.dtype(0) != F32:
        raise ctx.error(f"DynamicQuantizeLinear takes float32, got {ctx.dtype(0)}")
    return [(np.dtype(np.uint8), ctx.shape(0)), (F32, ()), (np.dtype(np.uint8), ())]


@register("DynamicQuantizeLinear", outputs=["y", "y_scale", "y_zero_point"], infer=_dynamic_infer)
def dynamic_quantize_linear(x):
    """DynamicQuantizeLinear: uint8 over [min(x, 0), max(x, 0)], all arithmetic in float32.

    An all-zero input (an empty range, where the spec divides by zero) gets scale 1, as onnxruntime
    gives it.
    """
    lo = np.float32(min(0.0, float(np.min(x)))) if x.size else np.float32(0)
    hi = np.float32(max(0.0, float(np.max(x)))) if x.size else np.float32(0)
    scale = np.float32(1.0) if hi == lo else np.float32(hi - lo) / np.float32(255)
    zp = np.rint(np.clip(np.float32(0) - lo / scale, 0, 255)).astype(np.uint8)
    y = saturate_cast(np.rint(x / scale).astype(np.int64) + int(zp), np.dtype(np.uint8))
    return y, np.array(scale, np.float32), np.array(zp, np.uint8)


# ------------------------------------------------------------------------------ QLinearMatMul
def _qmatmul_infer(ctx: InferContext) -> list[TensorType]:
    for i in (0, 3, 7):
        if ctx.dtype(i) not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise ctx.error(f"QLinearMatMul takes int8/uint8 tensors, input {i} is {ctx.dtype(i)}")
    return [(ctx.dtype(7), matmul_shape(ctx, ctx.shape(0), ctx.shape(3))[0])]


def _qmatmul_macs(ctx: InferContext) -> int:
    out, k = matmul_shape(ctx, ctx.shape(0), ctx.shape(3))
    return elements(out) * (k if isinstance(k, int) else 1)


def _row_param(p: np.ndarray, ndim: int) -> np.ndarray:
    """A per-row parameter of A ([M]) as a column, so it broadcasts over A @ B's rows."""
    p = np.asarray(p)
    return p.reshape(-1, 1) if p.ndim == 1 and p.size > 1 and ndim > 1 else p


@register("QLinearMatMul", inputs=["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point",
                                   "y_scale", "y_zero_point"], infer=_qmatmul_infer, macs=_qmatmul_macs)
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """QLinearMatMul: exact (a - za) @ (b - zb), requantized by (s_a * s_b) / s_y. A 1-D a_scale is
    per row of a, a 1-D b_scale per column of b."""
    acc = exact_product(np.matmul, integer_operand(a, a_zero_point, row_axis=a.ndim > 1),
                        integer_operand(b, b_zero_point, row_axis=False))
    sa = _row_param(a_scale, a.ndim).astype(np.float32)
    mult = (sa * np.asarray(b_scale, np.float32)) / np.asarray(y_scale, np.float32)
    return requantize(acc, mult, y_zero_point, y_zero_point.dtype)


# -------------------------------------------------------------------------------- QLinearConv
def conv_geometry(spatial: tuple, kernel: tuple, strides: list, dilations: list, pads: list | None,
                  auto_pad: str) -> tuple[list, list[int], list[int]]:
    """Output spatial dims (None where only known at run time) and begin/end pads, as ONNX Conv."""
    n = len(spatial)
    out, begin, end = [], [0] * n, [0] * n
    for i, (d_in, k, s, dil) in enumerate(zip(spatial, kernel, strides, dilations)):
        eff = (k - 1) * dil + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if not isinstance(d_in, int):
                out.append(d_in if s == 1 else None)
                continue
            o = -(-d_in // s)
            total = max((o - 1) * s + eff - d_in, 0)
            small, big = total // 2, total - total // 2
            begin[i], end[i] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
            out.append(o)
        elif auto_pad in ("NOTSET", "VALID"):
            if auto_pad == "NOTSET" and pads:
                begin[i], end[i] = int(pads[i]), int(pads[i + n])
            out.append((d_in + begin[i] + end[i] - eff) // s + 1 if isinstance(d_in, int) else None)
        else:
            raise ValueError(f"auto_pad {auto_pad!r} is not NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    return out, begin, end


def _weight_nc_shape(w: tuple, layout: str) -> tuple:
    """W's shape as [M, C/group, *kernel], whichever layout it is stored in."""
    return tuple(w) if layout.startswith("NC") else (w[0], w[-1], *w[1:-1])


def _conv_params(attrs: dict, w_shape: tuple) -> tuple[tuple, list[int], list[int]]:
    kernel = tuple(attrs["kernel_shape"] or w_shape[2:])
    n = len(kernel)
    return kernel, list(attrs["strides"] or [1] * n), list(attrs["dilations"] or [1] * n)


def _qconv_infer(ctx: InferContext) -> list[TensorType]:
    x, w, a = ctx.shape(0), _weight_nc_shape(ctx.shape(3), ctx.attrs["layout"]), ctx.attrs
    if len(x) < 3 or len(w) != len(x):
        raise ctx.error(f"QLinearConv needs X and W of equal rank >= 3, got {list(x)} and {list(w)}")
    for i in (0, 3, 7):
        if ctx.dtype(i) not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise ctx.error(f"QLinearConv takes int8/uint8 tensors, input {i} is {ctx.dtype(i)}")
    c_axis = layout_channel_axis(a["layout"], len(x))
    spatial = tuple(d for i, d in enumerate(x[1:], 1) if i != c_axis)
    c_in = x[c_axis]
    if isinstance(c_in, int) and isinstance(w[1], int) and c_in != w[1] * a["group"]:
        raise ctx.error(f"X has {c_in} channels, W expects {w[1]} x group {a['group']}")
    kernel, strides, dilations = _conv_params(a, w)
    try:
        out, _, _ = conv_geometry(spatial, kernel, strides, dilations, a["pads"], a["auto_pad"])
    except ValueError as e:
        raise ctx.error(str(e)) from None
    if any(isinstance(o, int) and o <= 0 for o in out):
        raise ctx.error(f"QLinearConv output would be empty (spatial dims {out})")
    dims = [x[0], w[0], *out] if c_axis == 1 else [x[0], *out, w[0]]
    return [(ctx.dtype(7), stable_dims(ctx, 0, dims))]


def _qconv_macs(ctx: InferContext) -> int:
    y = ctx.graph.tensor(ctx.graph.outputs_of(ctx.node)[0]).shape or _qconv_infer(ctx)[0][1]
    return elements(y) * elements(ctx.shape(3)[1:])  # per output: C/group x kernel, in either layout


def int_conv(x: np.ndarray, w: np.ndarray, kernel: tuple, strides: list, dilations: list, begin: list[int],
             end: list[int], group: int) -> np.ndarray:
    """Exact N-d convolution of int64 ``x`` [N, C, ...] with ``w`` [M, C/group, ...] (zero padding)."""
    n = len(kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    win = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=tuple(range(2, 2 + n)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
              + tuple(slice(None, None, d) for d in dilations)]
    cg, mg = x.shape[1] // group, w.shape[0] // group
    k_axes = list(range(2 + n, 2 + 2 * n))
    outs = []
    for g in range(group):
        cols = win[:, g * cg:(g + 1) * cg]
        wg = w[g * mg:(g + 1) * mg]
        r = exact_product(np.tensordot, cols, wg, axes=([1] + k_axes, [1] + list(range(2, 2 + n))))
        outs.append(np.moveaxis(r, -1, 1))  # [N, *out, Mg] -> [N, Mg, *out]
    return np.concatenate(outs, axis=1)


def _per_channel(p: np.ndarray, m: int, n_spatial: int) -> np.ndarray:
    """A weight parameter (scalar or [M]) shaped to broadcast over [N, M, *spatial]."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    if p.ndim != 1 or p.shape[0] != m:
        raise ValueError(f"per-channel weight parameter must have {m} entries, got shape {p.shape}")
    return p.reshape((1, m) + (1,) * n_spatial)


@register("QLinearConv", inputs=["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
                                 "y_zero_point", "B?"],
          attrs={"auto_pad": "NOTSET", "dilations": None, "group": 1, "kernel_shape": None, "pads": None,
                 "strides": None}, spatial=True, infer=_qconv_infer, macs=_qconv_macs)
def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad, dilations, group, kernel_shape, pads, strides, layout):
    """QLinearConv: exact integer convolution of (x - zx) and (w - zw) plus the int32 bias, requantized
    per output channel by (s_x * s_w[m]) / s_y.

    ``layout`` applies to X, Y and W as for Conv: channels-last W is [M, *kernel, C/group].
    """
    nhwc = not layout.startswith("NC")
    if nhwc:
        x, w = np.moveaxis(x, -1, 1), np.moveaxis(w, -1, 1)
    m, n_sp = w.shape[0], x.ndim - 2
    attrs = {"kernel_shape": kernel_shape, "strides": strides, "dilations": dilations}
    kernel, st, dil = _conv_params(attrs, w.shape)
    _, begin, end = conv_geometry(x.shape[2:], kernel, st, dil, pads, auto_pad)
    xv = x.astype(np.int64) - np.asarray(x_zero_point).astype(np.int64)
    wzp = _per_channel(w_zero_point, m, n_sp).astype(np.int64)
    wv = w.astype(np.int64) - (wzp.reshape((m,) + (1,) * (w.ndim - 1)) if wzp.ndim else wzp)
    acc = int_conv(xv, wv, kernel, st, dil, begin, end, group)
    if B is not None:
        acc = acc + B.astype(np.int64).reshape((1, m) + (1,) * n_sp)
    sx = np.asarray(x_scale, np.float32).reshape(())
    mult = (sx * _per_channel(w_scale, m, n_sp).astype(np.float32)) / np.asarray(y_scale, np.float32)
    y = requantize(acc, mult, np.asarray(y_zero_point).reshape(()), y_zero_point.dtype)
    return np.moveaxis(y, 1, -1) if nhwc else y
