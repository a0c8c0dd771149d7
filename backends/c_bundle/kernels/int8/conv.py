"""int8 Conv (TFLite CONV_2D / DEPTHWISE_CONV_2D, 1-D as a 2-D conv of height 1) and ConvTranspose
(TRANSPOSE_CONV), channels-last, bit-exact with the IR's integer kernels in
``canonical_ir/quantize/kernels_conv.py``.

Arithmetic: acc = bias + sum((x - zp_x) * (w - zp_w)) over the taps inside the input (padding taps
contribute nothing), exact in int32; then MultiplyByQuantizedMultiplier with the multiplier the IR
computes (``conv_real_multiplier`` -> ``fixedpoint.quantize_multiplier``, per output channel), + zp_y,
clamped to the fused activation's range (``activation_range``).

Speed: the weight zero point is subtracted at export time (weights stored as w - zp_w, int8); the input
zero point is folded into the bias (bias - zp_x * sum(w), exact in int32) for every output position whose
window lies inside the input, so the inner loop is a plain int8 dot product. Four output channels share
each pass over the window (``ck_dot4_s8``, then ``ck_dot2_s8`` / ``ck_dot_s8`` for the rest): with the
ARM DSP extension (``CK_USE_DSP``) the input word is loaded and sign-extended (SXTB16) once for four
weight rows, two SMLADs per row and word; elsewhere loops that host compilers vectorize. Windows that
overlap the padding run the same blocks over their valid taps only, with (x - zp_x) (``*_zp`` helpers:
SSUB16 of the packed zero point on the DSP path). A group-1 conv with dilation 1 along the width reads a
window row as one contiguous run of kW * C bytes. Depthwise convs with channel multiplier 1 take four
channels at a time with their accumulators in registers (``ck_mac4_s8``: SXTB16 + SMLABB/SMLATT);
other multipliers accumulate a row of channels in scratch. Every path computes the same int32 sums, so
all builds are bit-identical; int8 C holds no floating point.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops.nn import Window, conv_t_geometry, channels_last
from convertkit.canonical_ir.ops.registry import get_schema
from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.base import QType, activation_range
from convertkit.canonical_ir.quantize.kernels_conv import conv_real_multiplier

I8 = np.dtype(np.int8)


# ------------------------------------------------------------------------------------ shared helpers
def wrap32(v: np.ndarray) -> np.ndarray:
    """int64 -> int32 with two's complement wrap-around (what the C int32 accumulation does)."""
    return np.asarray(fx.wrap(np.asarray(v, np.int64)), np.int64).astype(np.int32)


def check_int8_weighted(graph: Graph, node: Node, w_axis: int | None, what: str) -> str | None:
    """Common checks: int8 per-tensor activations in and out, constant int8 weights (per-channel
    symmetric along ``w_axis`` or per-tensor with a zero point that keeps w - zp in int8), constant
    int32 bias, a fused activation the integer kernels take."""
    ins = graph.inputs_of(node)
    outs = graph.outputs_of(node)
    if len(ins) < 2 or ins[0] is None or ins[1] is None:
        return f"int8 {what} needs an input and weights"
    x, w, y = graph.tensor(ins[0]), graph.tensor(ins[1]), graph.tensor(outs[0])
    xq, wq, yq = QType.of(x), QType.of(w), QType.of(y)
    if xq is None or yq is None or wq is None:
        return f"int8 {what} needs quantized input, weights and output"
    if xq.dtype != I8 or yq.dtype != I8:
        return (f"int8 {what} needs int8 activations (got {xq.dtype} -> {yq.dtype}; TFLite's 16x8 mode has "
                "no C kernel)")
    if xq.per_channel or yq.per_channel:
        return f"int8 {what} needs per-tensor activation quantization"
    if wq.dtype != I8:
        return f"int8 {what} needs int8 weights, got {wq.dtype}"
    wv = graph.const_value(ins[1])
    if wv is None:
        return f"int8 {what} needs constant weights"
    if wq.per_channel:
        if w_axis is None:
            return f"int8 {what} with per-channel weights has no C kernel here"
        if wq.axis is not None and wq.axis % wv.ndim != w_axis % wv.ndim:
            return f"int8 {what} per-channel weights must run along axis {w_axis}, got {wq.axis}"
        if np.any(wq.zero_point != 0):
            return f"per-channel {what} weights must be symmetric"
    else:
        d = wv.astype(np.int64) - wq.zp
        if d.size and (d.min() < -128 or d.max() > 127):
            return f"int8 {what} weights minus their zero point {wq.zp} leave the int8 range"
    if len(ins) > 2 and ins[2] is not None:
        bv = graph.const_value(ins[2])
        if bv is None:
            return f"int8 {what} needs a constant bias"
        if np.dtype(bv.dtype) != np.dtype(np.int32):
            return f"int8 {what} needs an int32 bias, got {bv.dtype}"
    try:
        activation_range(dict(node.attrs), yq)
    except Exception as e:  # noqa: BLE001 - the IR's own message
        return str(e)
    return None


def weights_minus_zp(ref) -> np.ndarray:
    """Weights as int8 with the (per-tensor) zero point already subtracted."""
    w = ref.value.astype(np.int64)
    if not ref.quant.per_channel:
        w = w - ref.quant.zp
    return w.astype(np.int8)


class Requant:
    """The per-output-channel requantization constants as C: literals when per tensor, else arrays (the
    shift split into its left and right parts, a part that is 0 for every channel as a literal)."""

    def __init__(self, ctx: EmitContext, real: np.ndarray, n_out: int) -> None:
        m, s = fx.quantize_multiplier(np.asarray(real, np.float64).reshape(-1))
        yq = ctx.outputs[0].quant
        self.zp = int(yq.zp)
        self.lo, self.hi = activation_range(ctx.attrs, yq)
        left, right = np.maximum(s, 0), np.maximum(-s, 0)
        if m.size == 1:
            self.m, self.left, self.right = str(int(m[0])), str(int(left[0])), str(int(right[0]))
        else:
            assert m.size == n_out, (m.size, n_out)
            self.m = ctx.weight(m.astype(np.int32), "mult") + "[{o}]"
            self.left = ctx.weight(left.astype(np.int8), "lshift") + "[{o}]" if np.any(left) else "0"
            self.right = ctx.weight(right.astype(np.int8), "rshift") + "[{o}]" if np.any(right) else "0"

    def expr(self, acc: str, o: str) -> str:
        m, left, right = (v.replace("{o}", o) for v in (self.m, self.left, self.right))
        return f"ck_requant_s8({acc}, {m}, {left}, {right}, {self.zp}, {self.lo}, {self.hi})"


def _attrs(ctx: EmitContext) -> dict[str, Any]:
    return get_schema(ctx.node.op).resolve_attrs(ctx.node.attrs)


# ---------------------------------------------------------------------------------------------- Conv
def _spatial_check(graph: Graph, node: Node) -> str | None:
    """Conv / ConvTranspose: channels-last, 1-D or 2-D, int8 with per-channel weights."""
    attrs = get_schema(node.op).resolve_attrs(node.attrs)
    if not channels_last(attrs["layout"]):
        return f"the C bundle's int8 {node.op} needs a channels-last layout, got {attrs['layout']}"
    x = graph.tensor(graph.inputs_of(node)[0])
    if x.shape is None or len(x.shape) not in (3, 4):
        return f"the C bundle's int8 {node.op} handles 1-D and 2-D windows"
    return check_int8_weighted(graph, node, 0, node.op)


_conv_check = _spatial_check


def _geometry(x_shape: tuple, w_shape: tuple, y_shape: tuple, attrs: dict) -> dict[str, int]:
    """NHWC geometry; a 1-D conv (NWC) as height 1."""
    if len(x_shape) == 3:
        n, wd, c = x_shape
        h = 1
        kernel = [1, w_shape[1]]
        one = {"strides": [1] + list(attrs["strides"] or [1]), "dilations": [1] + list(attrs["dilations"] or [1]),
               "pads": ([0] + list(attrs["pads"][:1]) + [0] + list(attrs["pads"][1:])) if attrs["pads"] else None,
               "auto_pad": attrs["auto_pad"]}
        win = Window([1, wd], kernel, one)
    else:
        n, h, wd, c = x_shape
        kernel = list(attrs["kernel_shape"] or w_shape[1:3])
        win = Window([h, wd], kernel, attrs)
    oh, ow = win.out
    want = (y_shape[0], 1, y_shape[1]) if len(y_shape) == 3 else tuple(y_shape[:3])
    if (n, oh, ow) != tuple(want):
        raise ValueError(f"Conv geometry {(n, oh, ow)} does not match the output shape {list(y_shape)}")
    return {"N": n, "H": h, "W": wd, "C": c, "KH": kernel[0], "KW": kernel[1], "SH": win.strides[0],
            "SW": win.strides[1], "DH": win.dilations[0], "DW": win.dilations[1], "PT": win.pads_begin[0],
            "PL": win.pads_begin[1], "OH": oh, "OW": ow, "O": y_shape[-1]}


@kernel("Conv", precision="int8", check=_conv_check)
def emit_conv(ctx: EmitContext) -> str:
    attrs = _attrs(ctx)
    x, w, y = ctx.inputs[0], ctx.inputs[1], ctx.outputs[0]
    b = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    g = _geometry(x.shape, w.shape, y.shape, attrs)
    group = int(attrs["group"])
    O, C = g["O"], g["C"]
    cg = C // group
    wd = weights_minus_zp(w).reshape(O, g["KH"], g["KW"], cg)
    bias = (b.value.astype(np.int64).reshape(-1) if b is not None else np.zeros(O, np.int64))
    bias = np.broadcast_to(bias, (O,))
    zx = int(x.quant.zp)
    bias_f = wrap32(bias - zx * wd.reshape(O, -1).astype(np.int64).sum(axis=1))
    rq = Requant(ctx, conv_real_multiplier(x.quant, w.quant, y.quant), O)
    if cg == 1 and group == C:
        return _depthwise(ctx, g, wd, bias, bias_f, zx, rq)
    return _regular(ctx, g, group, cg, wd, bias, bias_f, zx, rq)


def _window_prologue(g: dict[str, int]) -> tuple[str, str]:
    """C computing, per output row / column, the first input coordinate and the valid tap range."""
    H, W, KH, KW = g["H"], g["W"], g["KH"], g["KW"]
    SH, SW, DH, DW, PT, PL = g["SH"], g["SW"], g["DH"], g["DW"], g["PT"], g["PL"]
    row = (f"iy0 = oy * {SH} - {PT};\n"
           f"ky0 = iy0 < 0 ? (-iy0 + {DH - 1}) / {DH} : 0;\n"
           f"ky1 = {H} - iy0 <= 0 ? 0 : ({H} - iy0 + {DH - 1}) / {DH};\n"
           f"if (ky1 > {KH}) ky1 = {KH};\n")
    col = (f"ix0 = ox * {SW} - {PL};\n"
           f"kx0 = ix0 < 0 ? (-ix0 + {DW - 1}) / {DW} : 0;\n"
           f"kx1 = {W} - ix0 <= 0 ? 0 : ({W} - ix0 + {DW - 1}) / {DW};\n"
           f"if (kx1 > {KW}) kx1 = {KW};\n")
    return row, col


def _window_loops(g: dict[str, int], interior: str, border: str, *, step: int, group_open: str = "",
                  after: str = "") -> str:
    """The loop nest every windowed kernel shares: batch, output rows, output columns; per position the
    valid tap range, then ``interior`` where the window lies wholly inside the input (the input zero
    point folded into the bias) or ``border`` where it overlaps the padding (valid taps only, x - zp),
    inside ``group_open`` (a block opener, for grouped convs) if given, then ``after``; ``yp`` (the
    output pointer) advances by ``step``."""
    N, H, W, C, KH, KW, OH, OW = (g[k] for k in ("N", "H", "W", "C", "KH", "KW", "OH", "OW"))
    row, col = _window_prologue(g)
    body = (f"if (ky0 == 0 && ky1 == {KH} && kx0 == 0 && kx1 == {KW}) {{\n{_indent(interior, 4)}\n"
            f"}} else {{\n{_indent(border, 4)}\n}}")
    if group_open:
        body = f"{group_open.rstrip()}\n{_indent(body, 4)}\n}}"
    if after:
        body += "\n" + after.rstrip("\n")
    return ("const int8_t *xb;\nint8_t *yp = out0;\n"
            f"for (n = 0; n < {N}; ++n) {{\n"
            f"    xb = in0 + n * {H * W * C};\n"
            f"    for (oy = 0; oy < {OH}; ++oy) {{\n"
            f"{_indent(row, 8)}\n"
            f"        for (ox = 0; ox < {OW}; ++ox) {{\n"
            f"{_indent(col, 12)}\n"
            f"{_indent(body, 12)}\n"
            f"            yp += {step};\n"
            f"        }}\n"
            f"    }}\n"
            f"}}")


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + ln if ln else ln for ln in text.split("\n"))


def _regular(ctx: EmitContext, g: dict[str, int], group: int, cg: int, wd: np.ndarray, bias: np.ndarray,
             bias_f: np.ndarray, zx: int, rq: Requant) -> str:
    W, C, KH, KW = g["W"], g["C"], g["KH"], g["KW"]
    DH, DW, O = g["DH"], g["DW"], g["O"]
    og = O // group
    wsym = ctx.weight(wd, "w")
    bf = ctx.weight(bias_f, "bias_zp")
    braw = ctx.weight(wrap32(bias), "bias") if np.any(bias != 0) else None
    contiguous = DW == 1 and group == 1

    # pointers to a window row's first valid tap; the offset is summed as an integer first (the row's
    # start may lie before the input when the window overlaps the top-left padding)
    def xrow(extra: str) -> str:
        return f"xb + (((iy0 + ky * {DH}) * {W} + ix0) * {C} + cin + {extra})"

    def wrow(extra: str) -> str:
        return f"{wsym} + ((o * {KH} + ky) * {KW * cg} + {extra})"

    def blocked(full: bool) -> str:
        """Four output channels per pass over the window (ck_dot4_s8), then a pair (ck_dot2_s8), then
        one. Interior windows (``full``): the whole window, the bias with the input zero point folded in;
        border windows: the valid taps only, (x - zp_x) and the plain bias."""
        nxt = KH * KW * cg                                     # the next output channel's weights
        o4 = og - og % 4
        ky = f"ky = 0; ky < {KH}" if full else "ky = ky0; ky < ky1"
        kx_lo, kx_hi = ("0", str(KW)) if full else ("kx0", "kx1")
        zp = "" if full else "_zp"
        zarg = "" if full else f"{zx}, "

        def init(j: str) -> str:
            if full:
                return f"{bf}[o + {j}]"
            return f"{braw}[o + {j}]" if braw else "0"

        def loop(first: str, step: int, bound: str, call: str, accs: list[str]) -> str:
            inits = "".join(f"    {a} = {init(str(j))};\n" for j, a in enumerate(accs))
            outs = "".join(f"    yp[o + {j}] = {rq.expr(a, f'(o + {j})')};\n" for j, a in enumerate(accs))
            return (f"for (o = {first}; o < {bound}; o += {step}) {{\n{inits}"
                    f"    for ({ky}; ++ky) {{\n{_indent(call, 8)}\n    }}\n{outs}}}")

        def call(fn: str, weights: str, accs: str) -> str:
            if contiguous:
                n = str(KW * C) if full else f"(kx1 - kx0) * {C}"
                return (f"{fn}({xrow(f'{kx_lo} * {C}')}, {zarg}{weights.format(kx=f'{kx_lo} * {cg}')}, {n}, "
                        f"{accs});")
            return (f"for (kx = {kx_lo}; kx < {kx_hi}; ++kx) {{\n"
                    f"    {fn}({xrow(f'kx * {DW * C}')}, {zarg}{weights.format(kx=f'kx * {cg}')}, {cg}, {accs});\n}}")
        parts = []
        if o4:
            c4 = call(f"ck_dot4_s8{zp}", f"{wrow('{kx}')}, {nxt}", "&acc, &acc1, &acc2, &acc3")
            parts.append(loop("o0", 4, f"o0 + {o4}", c4, ["acc", "acc1", "acc2", "acc3"]))
        if og % 4 >= 2:
            c2 = call(f"ck_dot2_s8{zp}", f"{wrow('{kx}')}, {wrow(f'{nxt} + {{kx}}')}", "&acc, &acc1")
            parts.append(loop(f"o0 + {o4}", 2, f"o0 + {o4 + 2}", c2, ["acc", "acc1"]))
        if og % 2:
            parts.append(body(full, f"o0 + {og - 1}"))
        return "\n".join(parts)

    def body(full: bool, first: str) -> str:
        """One output channel at a time (the channel left over after the blocks)."""
        ky = "ky = 0; ky < " + str(KH) if full else "ky = ky0; ky < ky1"
        kx_lo = "0" if full else "kx0"
        kx_hi = str(KW) if full else "kx1"
        dot = (lambda xp, wp, n: f"acc = ck_dot_s8({xp}, {wp}, {n}, acc);") if full else \
              (lambda xp, wp, n: f"acc = ck_dot_s8_zp({xp}, {zx}, {wp}, {n}, acc);")
        if contiguous:
            n = str(KW * C) if full else f"(kx1 - kx0) * {C}"
            inner = dot(xrow(f"{kx_lo} * {C}"), wrow(f"{kx_lo} * {cg}"), n)
        else:
            inner = (f"for (kx = {kx_lo}; kx < {kx_hi}; ++kx) {{\n"
                     f"    {dot(xrow(f'kx * {DW * C}'), wrow(f'kx * {cg}'), str(cg))}\n}}")
        init = f"{bf}[o]" if full else (f"{braw}[o]" if braw else "0")
        return (f"for (o = {first}; o < o0 + {og}; ++o) {{\n"
                f"    acc = {init};\n"
                f"    for ({ky}; ++ky) {{\n"
                f"{_indent(inner, 8)}\n"
                f"    }}\n"
                f"    yp[o] = {rq.expr('acc', 'o')};\n"
                f"}}")

    grp = (f"for (o0 = 0, cin = 0; o0 < {O}; o0 += {og}, cin += {cg}) {{\n" if group > 1 else
           "o0 = 0;\ncin = 0;\n{\n")
    decls = "int32_t n, oy, ox, o, o0, cin, ky, iy0, ix0, ky0, ky1, kx0, kx1, acc;\n"
    if og >= 2:
        decls = decls.replace("acc;", "acc, acc1;" if og < 4 else "acc, acc1, acc2, acc3;")
    if not contiguous:
        decls = decls.replace("ky, ", "ky, kx, ")
    return decls + _window_loops(g, blocked(True), blocked(False), step=O, group_open=grp)


def _depthwise(ctx: EmitContext, g: dict[str, int], wd: np.ndarray, bias: np.ndarray, bias_f: np.ndarray,
               zx: int, rq: Requant) -> str:
    W, C, KH, KW = g["W"], g["C"], g["KH"], g["KW"]
    DH, DW, O = g["DH"], g["DW"], g["O"]
    mult = O // C
    wt = np.ascontiguousarray(wd.reshape(O, KH * KW).T)          # [tap, O]: one row per tap
    wsym = ctx.weight(wt, "w_dw")
    bf = ctx.weight(bias_f, "bias_zp")
    braw = ctx.weight(wrap32(bias), "bias") if np.any(bias != 0) else None

    def taps(full: bool) -> str:
        ky = f"ky = 0; ky < {KH}" if full else "ky = ky0; ky < ky1"
        kx = f"kx = 0; kx < {KW}" if full else "kx = kx0; kx < kx1"
        xv = "(int32_t)xp[c]" if full else f"((int32_t)xp[c] - ({zx}))"
        mac = (f"for (c = 0; c < {C}; ++c) {{\n    const int32_t v = {xv};\n"
               f"    for (m = 0; m < {mult}; ++m) {{\n        acc[c * {mult} + m] += v * wp[c * {mult} + m];\n"
               f"    }}\n}}")
        init = (f"for (o = 0; o < {O}; ++o) {{\n    acc[o] = {bf}[o];\n}}" if full else
                (f"for (o = 0; o < {O}; ++o) {{\n    acc[o] = {braw}[o];\n}}" if braw else
                 f"for (o = 0; o < {O}; ++o) {{\n    acc[o] = 0;\n}}"))
        return (f"{init}\n"
                f"for ({ky}; ++ky) {{\n"
                f"    for ({kx}; ++kx) {{\n"
                f"        const int8_t *xp = xb + ((iy0 + ky * {DH}) * {W} + ix0 + kx * {DW}) * {C};\n"
                f"        const int8_t *wp = {wsym} + (ky * {KW} + kx) * {O};\n"
                f"{_indent(mac, 8)}\n"
                f"    }}\n"
                f"}}")

    if mult == 1:
        return _depthwise_blocks(g, wsym, bf, braw, zx, rq)
    ctx.scratch(4 * O)
    decls = "int32_t n, oy, ox, o, c, m, ky, kx, iy0, ix0, ky0, ky1, kx0, kx1;\n"
    requant = f"for (o = 0; o < {O}; ++o) {{\n    yp[o] = {rq.expr('acc[o]', 'o')};\n}}"
    return (decls + "int32_t *acc = (int32_t *)(void *)scratch;\n"
            + _window_loops(g, taps(True), taps(False), step=O, after=requant))


def _depthwise_blocks(g: dict[str, int], wsym: str, bf: str, braw: str | None, zx: int, rq: Requant) -> str:
    """Depthwise with channel multiplier 1: per output position, four channels at a time with their
    accumulators in registers (``ck_mac4_s8``: word loads, SXTB16 + SMLABB/SMLATT under the DSP
    extension) over the window's taps; the channels left over one at a time."""
    W, C, KH, KW = g["W"], g["C"], g["KH"], g["KW"]
    DH, DW = g["DH"], g["DW"]
    c4 = C - C % 4

    def xp(c: str) -> str:
        return f"xb + (((iy0 + ky * {DH}) * {W} + ix0 + kx * {DW}) * {C} + {c})"

    def wp(c: str) -> str:
        return f"{wsym} + ((ky * {KW} + kx) * {C} + {c})"

    def block(full: bool) -> str:
        ky = f"ky = 0; ky < {KH}" if full else "ky = ky0; ky < ky1"
        kx = f"kx = 0; kx < {KW}" if full else "kx = kx0; kx < kx1"
        b = bf if full else braw

        def init(c: str) -> str:
            return f"{b}[{c}]" if b else "0"
        text = ""
        if c4:
            mac = (f"ck_mac4_s8({xp('c')}, {wp('c')}, &a0, &a1, &a2, &a3);" if full else
                   f"ck_mac4_s8_zp({xp('c')}, {zx}, {wp('c')}, &a0, &a1, &a2, &a3);")
            text += (f"for (c = 0; c < {c4}; c += 4) {{\n"
                     f"    int32_t a0 = {init('c')}, a1 = {init('c + 1')}, a2 = {init('c + 2')}, "
                     f"a3 = {init('c + 3')};\n"
                     f"    for ({ky}; ++ky) {{\n"
                     f"        for ({kx}; ++kx) {{\n"
                     f"            {mac}\n"
                     f"        }}\n"
                     f"    }}\n"
                     f"    yp[c] = {rq.expr('a0', 'c')};\n"
                     f"    yp[c + 1] = {rq.expr('a1', '(c + 1)')};\n"
                     f"    yp[c + 2] = {rq.expr('a2', '(c + 2)')};\n"
                     f"    yp[c + 3] = {rq.expr('a3', '(c + 3)')};\n"
                     f"}}\n")
        if C % 4:
            xv = f"(int32_t)*({xp('c')})" if full else f"((int32_t)*({xp('c')}) - ({zx}))"
            text += (f"for (c = {c4}; c < {C}; ++c) {{\n"
                     f"    int32_t a0 = {init('c')};\n"
                     f"    for ({ky}; ++ky) {{\n"
                     f"        for ({kx}; ++kx) {{\n"
                     f"            a0 += {xv} * *({wp('c')});\n"
                     f"        }}\n"
                     f"    }}\n"
                     f"    yp[c] = {rq.expr('a0', 'c')};\n"
                     f"}}\n")
        return text.rstrip("\n")

    return ("int32_t n, oy, ox, c, ky, kx, iy0, ix0, ky0, ky1, kx0, kx1;\n"
            + _window_loops(g, block(True), block(False), step=C))


# ------------------------------------------------------------------------------------- ConvTranspose
_conv_t_check = _spatial_check


@kernel("ConvTranspose", precision="int8", check=_conv_t_check)
def emit_conv_transpose(ctx: EmitContext) -> str:
    """Gather form of TRANSPOSE_CONV: output (oy, ox) channel o sums the input pixels
    iy = (oy + pad_top - ky * dh) / sh (when divisible and inside) over the taps, each a dot product of
    the group's input channels with w[o, ky, kx, :]; the input zero point is taken off per tap with
    zp_x * sum(w[o, ky, kx, :]) precomputed."""
    attrs = _attrs(ctx)
    x, w, y = ctx.inputs[0], ctx.inputs[1], ctx.outputs[0]
    b = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    group = int(attrs["group"])
    if len(x.shape) == 3:
        n, h, wd, c = x.shape[0], 1, x.shape[1], x.shape[2]
        kh, kw = 1, w.shape[1]
        pb, _pe, out = conv_t_geometry([wd], [kw], attrs)
        pt, pl, oh, ow = 0, pb[0], 1, out[0]
        sh, sw = 1, int((attrs["strides"] or [1])[0])
        dh, dw = 1, int((attrs["dilations"] or [1])[0])
    else:
        n, h, wd, c = x.shape
        kh, kw = w.shape[1], w.shape[2]
        pb, _pe, out = conv_t_geometry([h, wd], [kh, kw], attrs)
        pt, pl = pb
        oh, ow = out
        sh, sw = [int(v) for v in (attrs["strides"] or [1, 1])]
        dh, dw = [int(v) for v in (attrs["dilations"] or [1, 1])]
    o_n = y.shape[-1]
    want = (n, 1, y.shape[1]) if len(y.shape) == 3 else tuple(y.shape[:3])
    if (n, oh, ow) != tuple(want):
        raise ctx.fail(f"geometry {(n, oh, ow)} does not match the output shape {list(y.shape)}")
    ig, og = c // group, o_n // group
    wdq = weights_minus_zp(w).reshape(o_n, kh, kw, ig)
    zx = int(x.quant.zp)
    zts = wrap32(zx * wdq.astype(np.int64).sum(axis=3).reshape(-1))      # [O * kh * kw]
    bias = b.value.astype(np.int64).reshape(-1) if b is not None else np.zeros(o_n, np.int64)
    bias = np.broadcast_to(bias, (o_n,))
    wsym, tsym = ctx.weight(wdq, "w"), ctx.weight(zts, "zp_taps")
    bsym = ctx.weight(wrap32(bias), "bias") if np.any(bias != 0) else None
    rq = Requant(ctx, conv_real_multiplier(x.quant, w.quant, y.quant), o_n)
    return (
        "int32_t n, oy, ox, o, ky, kx, ty, tx, iy, ix, acc;\n"
        "const int8_t *xb;\nint8_t *yp = out0;\n"
        f"for (n = 0; n < {n}; ++n) {{\n"
        f"    xb = in0 + n * {h * wd * c};\n"
        f"    for (oy = 0; oy < {oh}; ++oy) {{\n"
        f"        for (ox = 0; ox < {ow}; ++ox) {{\n"
        f"            for (o = 0; o < {o_n}; ++o) {{\n"
        f"                acc = {f'{bsym}[o]' if bsym else '0'};\n"
        f"                for (ky = 0; ky < {kh}; ++ky) {{\n"
        f"                    ty = oy + {pt} - ky * {dh};\n"
        f"                    if (ty < 0 || ty % {sh} != 0 || ty / {sh} >= {h}) continue;\n"
        f"                    iy = ty / {sh};\n"
        f"                    for (kx = 0; kx < {kw}; ++kx) {{\n"
        f"                        tx = ox + {pl} - kx * {dw};\n"
        f"                        if (tx < 0 || tx % {sw} != 0 || tx / {sw} >= {wd}) continue;\n"
        f"                        ix = tx / {sw};\n"
        f"                        acc = ck_dot_s8(xb + (iy * {wd} + ix) * {c} + (o / {og}) * {ig},\n"
        f"                                        {wsym} + ((o * {kh} + ky) * {kw} + kx) * {ig}, {ig}, acc)\n"
        f"                              - {tsym}[(o * {kh} + ky) * {kw} + kx];\n"
        f"                    }}\n"
        f"                }}\n"
        f"                yp[o] = {rq.expr('acc', 'o')};\n"
        f"            }}\n"
        f"            yp += {o_n};\n"
        f"        }}\n"
        f"    }}\n"
        f"}}")
