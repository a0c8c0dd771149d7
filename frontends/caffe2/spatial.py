"""Caffe2's convolution and pooling ops, whose window arguments come in many spellings.

Caffe2 (``ConvPoolOpBase``) accepts ``kernels`` / ``kernel`` / ``kernel_h``+``kernel_w`` and likewise
for strides, dilations and pads (``pads`` = [heads..., tails...], ``pad``, ``pad_t/l/b/r``), plus a
``legacy_pad`` mode that decides the padding itself:

* NOTSET (0): the explicit pads, output ``floor((in + pads - dilated kernel) / stride) + 1``.
* VALID (1): no padding.
* SAME (2): ``pad_needed = (ceil(in / stride) - 1) * stride + kernel - in``, head ``pad_needed / 2``
  (C++ division) and the rest at the tail, i.e. ONNX ``SAME_UPPER``.
* CAFFE_LEGACY_POOLING (3): old Caffe's ceil rounding: ``out = ceil((in + 2 pad - kernel) / stride) + 1``,
  minus one if ``pad > 0`` and the last window would start in the padding; Caffe2 then pads the tail by
  ``pad + stride * (out - floor_out)``.

With static input sizes every mode becomes exact explicit pads with floor rounding, except that legacy
pooling whose tail pad would reach the kernel size (which onnxruntime refuses) uses ``ceil_mode=1``
with symmetric pads instead. With symbolic sizes (no value_info.json), SAME becomes
``auto_pad=SAME_UPPER`` and legacy pooling ``ceil_mode=1`` with symmetric pads; both are exact where
``kernel >= stride`` (or, for pooling, ``pad > 0``), and any other case is refused, since its padding
depends on the size. Windows that Caffe2 would place wholly outside the input are refused too.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertkit.canonical_ir.ops.nn import conv_transpose_weight_from_nchw
from convertkit.frontends.caffe2.registry import Args, Dims, OpContext

NOTSET, VALID, SAME, LEGACY_POOLING = 0, 1, 2, 3


@dataclass
class Window:
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads: list[int]
    legacy: int
    global_pooling: bool
    adjs: list[int]


def _spelled(a: Args, what: str, plural: str, single: str, parts: Sequence[str], n_single: int = 2
             ) -> list[int] | None:
    """One window argument from whichever spellings are present; conflicting spellings are an error."""
    found: dict[str, list[int]] = {}
    if a.has(plural):
        found[plural] = a.ints(plural)
    if a.has(single):
        found[single] = [a.int(single)] * n_single
    present = [p for p in parts if a.has(p)]
    if present:
        if len(present) != len(parts):
            raise a.error(f"{', '.join(present)} given without {', '.join(p for p in parts if p not in present)}")
        found["/".join(parts)] = [a.int(p) for p in parts]
    values = list(found.values())
    if any(v != values[0] for v in values[1:]):
        raise a.error(f"conflicting {what} arguments: " + ", ".join(f"{k}={v}" for k, v in found.items()))
    return values[0] if values else None


def window(a: Args, transpose: bool = False) -> Window:
    legacy = a.int("legacy_pad", NOTSET)
    if legacy not in (NOTSET, VALID, SAME, LEGACY_POOLING):
        raise a.error(f"legacy_pad={legacy} is not a Caffe2 padding mode (0..3)")
    kernel = _spelled(a, "kernel", "kernels", "kernel", ("kernel_h", "kernel_w")) or []
    strides = _spelled(a, "stride", "strides", "stride", ("stride_h", "stride_w"))
    pads = _spelled(a, "pad", "pads", "pad", ("pad_t", "pad_l", "pad_b", "pad_r"), n_single=4)
    dilations = None if transpose else _spelled(a, "dilation", "dilations", "dilation",
                                                ("dilation_h", "dilation_w"))
    adjs = _spelled(a, "adj", "adjs", "adj", ("adj_h", "adj_w")) if transpose else None
    global_pooling = bool(a.int("global_pooling", 0)) if not transpose else False
    if pads is not None and legacy in (VALID, SAME) and any(pads):
        raise a.error(f"legacy_pad={legacy} (VALID/SAME) does not take explicit pads {pads}")
    n = len(kernel) or len(strides or []) or len(dilations or []) or (len(pads) // 2 if pads else 0) or 2
    w = Window(kernel, strides or [1] * n, dilations or [1] * n, pads or [0] * (2 * n), legacy,
               global_pooling, adjs or [0] * n)
    for name, values, size in (("strides", w.strides, n), ("dilations", w.dilations, n), ("pads", w.pads, 2 * n),
                               ("adjs", w.adjs, n)):
        if len(values) != size:
            raise a.error(f"{name} {values} do not fit a {n}-d window")
    if any(s <= 0 for s in w.strides) or any(d <= 0 for d in w.dilations) or any(p < 0 for p in w.pads):
        raise a.error(f"invalid window: strides {w.strides}, dilations {w.dilations}, pads {w.pads}")
    return w


def _padding(ctx: OpContext, w: Window, spatial: Sequence[Any], pool: bool, include_pad: int = 0
             ) -> dict[str, Any]:
    """ONNX padding attributes (``pads`` and maybe ``auto_pad`` / ``ceil_mode``) for Caffe2's mode."""
    n = len(w.kernel)
    if w.legacy == NOTSET:
        return {"pads": list(w.pads)}
    if w.legacy == VALID:
        return {"pads": [0] * (2 * n)}
    if any(d != 1 for d in w.dilations):
        raise ctx.error(f"legacy_pad={w.legacy} with dilations {w.dilations} (Caffe2 refuses it too)")
    static = all(isinstance(d, int) for d in spatial)
    if w.legacy == SAME:
        return _same(ctx, w, spatial) if static else _same_symbolic(ctx, w)
    heads = w.pads[:n]  # CAFFE_LEGACY_POOLING reads only the head pads; ceil rounding sets the tails
    # ceil_mode with symmetric pads is the same function where the last window cannot start outside
    # the input (pad > 0, or kernel >= stride), except that it does not count ceil's extra tail as pad
    ceil_ok = pool and not include_pad and all(p > 0 or k >= s for p, k, s in zip(heads, w.kernel, w.strides))
    if static:
        tails = [_legacy_tail(ctx, size, k, s, p) for size, k, s, p in zip(spatial, w.kernel, w.strides, heads)]
        if all(t < k for t, k in zip(tails, w.kernel)) or not ceil_ok:
            return {"pads": heads + tails}  # exact; onnxruntime only refuses pads >= kernel
    if ceil_ok:
        return {"pads": heads + heads, "ceil_mode": 1}
    what = "a convolution" if not pool else "count_include_pad" if include_pad else \
        f"kernel {w.kernel} < stride {w.strides} without padding"
    raise ctx.error(f"legacy_pad=3 (Caffe ceil rounding) with {what} needs static input sizes",
                    hint="put a value_info.json with the input shapes beside the net")


def _legacy_tail(ctx: OpContext, size: int, k: int, s: int, p: int) -> int:
    span = size + 2 * p - k
    if span < 0:
        raise ctx.error(f"window of {k} with pad {p} does not fit size {size}")
    out = -(-span // s) + 1
    if p > 0 and (out - 1) * s >= size + p:  # the last window would start in the padding
        out -= 1
    if (out - 1) * s - p >= size:
        raise ctx.error(f"legacy_pad=3 rounding gives a window outside the input (size {size}, kernel {k}, "
                        f"stride {s}), whose value Caffe2 leaves undefined")
    return p + s * (out - (span // s + 1))


def _same(ctx: OpContext, w: Window, spatial: Sequence[int]) -> dict[str, Any]:
    heads, tails = [], []
    for size, k, s in zip(spatial, w.kernel, w.strides):
        needed = (-(-size // s) - 1) * s + k - size
        head = int(needed / 2)  # C++ division truncates toward zero
        if head < 0:
            raise ctx.error(f"legacy_pad=SAME gives a negative head pad ({head}) for size {size}, "
                            f"kernel {k}, stride {s}")
        heads.append(head)
        tails.append(max(needed - head, 0))  # a negative tail only cuts off data no window reads
    return {"pads": heads + tails}


def _same_symbolic(ctx: OpContext, w: Window) -> dict[str, Any]:
    for k, s in zip(w.kernel, w.strides):
        if k < s:
            raise ctx.error(f"legacy_pad=SAME with kernel {k} < stride {s} pads by input size",
                            hint="put a value_info.json with the input shapes beside the net")
    return {"auto_pad": "SAME_UPPER"}


def _spatial(ctx: OpContext, layout: str, n: int) -> list[Any]:
    shape = ctx.shape(0)
    if len(shape) != n + 2:
        raise ctx.error(f"a {n}-d window needs a rank-{n + 2} input, got shape {list(shape)}")
    return list(shape[1:-1] if layout == "NHWC" else shape[2:])


# ------------------------------------------------------------------------------------ converters
def _kernel_from_filter(ctx: OpContext, w, layout: str) -> list[int]:
    """The kernel size, read off the filter (a kernel argument, if given, must agree with it)."""
    weight = ctx.param(1, "filter")
    wk = list(weight.shape[1:-1] if layout == "NHWC" else weight.shape[2:])
    if w.kernel and w.kernel != wk:
        raise ctx.error(f"kernel {w.kernel} does not match the filter's shape {list(weight.shape)}")
    w.kernel = wk
    _fit_rank(ctx, w)
    return wk


def conv(ctx: OpContext) -> None:
    layout = ctx.order()
    group = ctx.int("group", 1)
    w = window(ctx)
    if w.global_pooling:
        raise ctx.error("global_pooling is a pooling argument, not a convolution's")
    wk = _kernel_from_filter(ctx, w, layout)
    attrs = {"kernel_shape": wk, "strides": w.strides, "dilations": w.dilations, "group": group,
             "layout": layout, **_padding(ctx, w, _spatial(ctx, layout, len(wk)), pool=False)}
    ctx.emit("Conv", ctx.inputs[:3], attrs=attrs)


def conv_transpose(ctx: OpContext) -> None:
    layout = ctx.order()
    group = ctx.int("group", 1)
    w = window(ctx, transpose=True)
    wk = _kernel_from_filter(ctx, w, layout)
    if w.legacy == LEGACY_POOLING:
        raise ctx.error("legacy_pad=3 is not supported by ConvTranspose (Caffe2 refuses it too)")
    if any(a >= s for a, s in zip(w.adjs, w.strides)):
        raise ctx.error(f"adj {w.adjs} must be smaller than the stride {w.strides}")
    filt = ctx.input(1)
    if layout == "NHWC":  # Caffe2 [C_in, k..., C_out/G] -> ONNX [C_in, C_out/G, k...] -> the IR's NHWC form
        onnx_w = np.moveaxis(ctx.param(1, "filter"), -1, 1)
        filt = ctx.const(conv_transpose_weight_from_nchw(onnx_w, group, "NHWC"), name="filter")
    pads = [0] * (2 * len(wk)) if w.legacy in (VALID, SAME) else w.pads
    attrs = {"kernel_shape": wk, "strides": w.strides, "pads": pads, "output_padding": w.adjs,
             "group": group, "layout": layout}
    ctx.emit("ConvTranspose", [ctx.input(0), filt] + ctx.inputs[2:3], attrs=attrs)


def _fit_rank(ctx: OpContext, w: Window) -> None:
    """Window lists defaulted for 2-d must match the filter's spatial rank."""
    n = len(w.kernel)
    for name in ("strides", "dilations", "adjs"):
        values = getattr(w, name)
        if len(values) != n:
            if set(values) == {1 if name != "adjs" else 0} and not ctx.has(name):
                setattr(w, name, [values[0]] * n)
            else:
                raise ctx.error(f"{name} {values} do not fit a {n}-d filter")
    if len(w.pads) != 2 * n:
        if set(w.pads) == {0}:
            w.pads = [0] * (2 * n)
        else:
            raise ctx.error(f"pads {w.pads} do not fit a {n}-d filter")


def _pool(op: str) -> Any:
    def convert(ctx: OpContext) -> None:
        layout = ctx.order()
        w = window(ctx)
        include_pad = ctx.int("count_include_pad", 0) if op == "AveragePool" else 0
        if w.global_pooling:
            if any(w.pads) or any(s != 1 for s in w.strides) or any(d != 1 for d in w.dilations):
                raise ctx.error("global_pooling with pads, strides or dilations (Caffe2 refuses it too)")
            ctx.emit("Global" + op, [ctx.input(0)], attrs={"layout": layout})
            return
        if not w.kernel or any(k <= 0 for k in w.kernel):
            raise ctx.error(f"pooling needs a positive kernel, got {w.kernel}")
        if any(d != 1 for d in w.dilations):
            raise ctx.error(f"dilated pooling (dilations {w.dilations}) is not supported")
        _fit_rank(ctx, w)
        pads = _padding(ctx, w, _spatial(ctx, layout, len(w.kernel)), pool=True, include_pad=include_pad)
        attrs = {"kernel_shape": w.kernel, "strides": w.strides, "layout": layout, **pads}
        if op == "AveragePool":
            attrs["count_include_pad"] = include_pad
        ctx.emit(op, [ctx.input(0)], attrs=attrs)
    return convert


max_pool = _pool("MaxPool")
average_pool = _pool("AveragePool")


def pad_image(ctx: OpContext) -> None:
    """PadImage: constant/reflect/edge padding of the spatial dims."""
    layout = ctx.order()
    mode = ctx.choice("mode", "constant", ("constant", "reflect", "edge"))
    value = ctx.float("value", 0.0)
    w = window(ctx)
    if w.legacy != NOTSET:
        raise ctx.error(f"legacy_pad={w.legacy} is not supported by PadImage")
    n = len(w.pads) // 2
    rank = ctx.rank(0)
    if rank != n + 2:
        raise ctx.error(f"pads {w.pads} do not fit an input of rank {rank}")
    first = 1 if layout == "NHWC" else 2
    pads = [0] * (2 * rank)
    for i in range(n):
        pads[first + i], pads[rank + first + i] = w.pads[i], w.pads[n + i]
    ins = [ctx.input(0), ctx.const(np.asarray(pads, np.int64), name="pads")]
    if mode == "constant":
        ins.append(ctx.const(np.asarray(value, ctx.dtype(0)), name="value"))
    ctx.emit("Pad", ins, attrs={"mode": mode})


# ------------------------------------------------------------------------- input shape guesses
def guess_conv(a: Args, consts: Sequence[np.ndarray | None], port: int) -> Dims | None:
    """A conv's data input: the filter's rank, channels from the filter, the rest symbolic."""
    w = consts[1] if len(consts) > 1 else None
    if port != 0 or w is None or w.ndim < 3:
        return None
    group = a.values.get("group", 1)
    channels = int(w.shape[-1] * group if _nhwc(a) else w.shape[1] * group)
    return _image(channels, w.ndim - 2, a)


def guess_conv_transpose(a: Args, consts: Sequence[np.ndarray | None], port: int) -> Dims | None:
    w = consts[1] if len(consts) > 1 else None
    if port != 0 or w is None or w.ndim < 3:
        return None
    return _image(int(w.shape[0]), w.ndim - 2, a)


def guess_pool(a: Args, consts: Sequence[np.ndarray | None], port: int) -> Dims | None:
    kernels = a.values.get("kernels")
    n = len(kernels) if isinstance(kernels, list) and kernels else 2
    return _image("C", n, a) if port == 0 else None


def _image(channels: int | str, n: int, a: Args) -> Dims:
    spatial: list[int | str] = ["H", "W"] if n == 2 else ["D", "H", "W"][3 - n:] if n <= 3 else \
        [f"S{i}" for i in range(n)]
    if _nhwc(a):
        return ["N", *spatial, channels]
    return ["N", channels, *spatial]


def _nhwc(a: Args) -> bool:
    """The order argument, peeked at without marking it read (guesses run before conversion)."""
    return a.values.get("order") in (b"NHWC", "NHWC")
