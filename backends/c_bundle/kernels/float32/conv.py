"""float32 Conv (1-D NWC / 2-D NHWC; grouped, depthwise with any channel multiplier; strides,
dilations, explicit/auto pads) and ConvTranspose (same cases), channels-last.

The geometry (pads, output size) is the IR's own (``ops.nn.Window`` / ``conv_t_geometry``). Taps
outside the input are skipped (pads are zeros), so no inner loop has a bounds check.

- Conv (any group) and depthwise with multiplier 1: per output pixel, blocks of 4 output channels are
  accumulated in registers over the valid taps and input channels (weights reordered at export so
  each block reads them contiguously), then clamped by the fused activation and stored once. This is
  the form for scalar FPUs (Cortex-M4: 2 loads and a multiply-add per MAC, nothing stored in the loop).
- Depthwise with a channel multiplier > 1 and ConvTranspose: the output pixel's channel row is
  initialised with the bias and accumulated tap by tap (one input value times a contiguous row of
  weights, [group, kh, kw, ci, og]), then clamped.
"""
from __future__ import annotations

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.float32.common import (
    attrs_of,
    clamp_expr,
    spatial_check,
    has_activation,
    indent,
)
from convertkit.canonical_ir.ops.nn import Window, conv_t_geometry


_conv_check = spatial_check(const_inputs=(1, 2))


def _as_2d(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """[N, W, C] -> [N, 1, W, C]; [N, H, W, C] unchanged."""
    return (shape[0], 1, shape[1], shape[2]) if len(shape) == 3 else tuple(shape)


def _pix_loops(oh: int, ow: int, header: str, body: str) -> str:
    return (f"for (oh = 0; oh < {oh}; ++oh) {{\n"
            f"    for (ow = 0; ow < {ow}; ++ow) {{\n"
            + indent(header + "\n" + body, 2) + "\n    }\n}")


def _finish(o_ch: int, attrs: dict) -> str:
    if not has_activation(attrs):
        return ""
    return (f"for (c = 0; c < {o_ch}; ++c) {{\n"
            f"    o[c] = {clamp_expr('o[c]', attrs)};\n}}")


def _init(o_ch: int, bias_sym: str | None) -> str:
    src = f"{bias_sym}[c]" if bias_sym else "0.0f"
    return f"for (c = 0; c < {o_ch}; ++c) {{\n    o[c] = {src};\n}}"


def _reorder_groups(w: np.ndarray, group: int) -> np.ndarray:
    """[O, kh, kw, Cg] -> [G, kh, kw, Cg, Og]."""
    o, kh, kw, cg = w.shape
    og = o // group
    return np.ascontiguousarray(w.reshape(group, og, kh, kw, cg).transpose(0, 2, 3, 4, 1))


def _operands(ctx: EmitContext):
    """What both convolutions start from: attributes, input and weight refs, whether 1-D, the input as
    N, H, W, C (H = 1 for 1-D), the weights as [O, kh, kw, I/g] float32, and the bias array's name."""
    attrs = attrs_of(ctx)
    x, w = ctx.inputs[0], ctx.inputs[1]
    b = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    one_d = len(x.shape) == 3
    wv = np.asarray(w.value, np.float32)
    if one_d:
        wv = wv[:, None, :, :]
    bias_sym = ctx.weight(np.asarray(b.value, np.float32).reshape(-1), "bias") if b is not None else None
    return attrs, x, w, one_d, _as_2d(x.shape), wv, bias_sym


@kernel("Conv", precision="float", check=_conv_check)
def emit_conv(ctx: EmitContext) -> str:
    attrs, x, w, one_d, (n, h, wd, c), wv, bias_sym = _operands(ctx)
    o_ch, kh, kw, cg = wv.shape
    group = int(attrs["group"])
    kernel_shape = list(attrs["kernel_shape"] or w.shape[1:-1])
    win = Window(x.shape[1:-1], kernel_shape, attrs)
    if one_d:
        sh, sw, dh, dw, ph, pw = 1, win.strides[0], 1, win.dilations[0], 0, win.pads_begin[0]
        oh, ow = 1, win.out[0]
    else:
        (sh, sw), (dh, dw), (ph, pw), (oh, ow) = win.strides, win.dilations, win.pads_begin, win.out
    depthwise = cg == 1 and group == c
    if depthwise and o_ch == c:
        return _blocked_depthwise(ctx, wv, bias_sym, (n, h, wd, c), (sh, sw, dh, dw, ph, pw, oh, ow), attrs)
    if depthwise:
        mult = o_ch // c
        wt = ctx.weight(np.ascontiguousarray(wv.reshape(o_ch, kh * kw).T), "w")
        xv = "x[c]" if mult == 1 else f"x[c / {mult}]"
        taps = (f"const float *x = in0 + ((nb * {h} + ih) * {wd} + iw) * {c};\n"
                f"const float *wp = {wt} + (ky * {kw} + kx) * {o_ch};\n"
                f"for (c = 0; c < {o_ch}; ++c) {{\n    o[c] += {xv} * wp[c];\n}}")
    else:
        return _blocked_conv(ctx, wv, group, bias_sym, (n, h, wd, c), (sh, sw, dh, dw, ph, pw, oh, ow), attrs)
    tap_loops = (f"for (ky = 0; ky < {kh}; ++ky) {{\n"
                 f"    const int32_t ih = oh * {sh} - {ph} + ky * {dh};\n"
                 f"    if (ih < 0 || ih >= {h}) continue;\n"
                 f"    for (kx = 0; kx < {kw}; ++kx) {{\n"
                 f"        const int32_t iw = ow * {sw} - {pw} + kx * {dw};\n"
                 f"        if (iw < 0 || iw >= {wd}) continue;\n"
                 + indent("{\n" + indent(taps) + "\n}", 2) + "\n    }\n}")
    header = f"float *o = out0 + ((nb * {oh} + oh) * {ow} + ow) * {o_ch};"
    body = "\n".join(s for s in (_init(o_ch, bias_sym), tap_loops, _finish(o_ch, attrs)) if s)
    decls = ["int32_t nb, oh, ow, ky, kx, c;"]
    code = "\n".join(decls) + f"\nfor (nb = 0; nb < {n}; ++nb) {{\n" + indent(_pix_loops(oh, ow, header, body)) + "\n}"
    return code


BLOCK = 4
"""Output channels accumulated together in registers by a (grouped) conv: each input value is loaded
once per block, each weight once, and nothing is stored until the block is done (the scalar inner
loop of a Cortex-M; gcc's SLP turns the block into one vector on hosts with SIMD)."""


def _blocked_conv(ctx: EmitContext, wv: np.ndarray, group: int, bias_sym: str | None, dims: tuple,
                  geo: tuple, attrs: dict) -> str:
    n, h, wd, c = dims
    sh, sw, dh, dw, ph, pw, oh, ow = geo
    o_ch, kh, kw, cg = wv.shape
    og = o_ch // group
    nfull, rest = divmod(og, BLOCK)
    wg = wv.reshape(group, og, kh, kw, cg)
    blocks = []                                    # (accumulators, blocks per group, weights)
    if nfull:
        wf = wg[:, :nfull * BLOCK].reshape(group, nfull, BLOCK, kh, kw, cg).transpose(0, 1, 3, 4, 5, 2)
        blocks.append((BLOCK, nfull, ctx.weight(np.ascontiguousarray(wf), "w")))
    if rest:
        wr = wg[:, nfull * BLOCK:].transpose(0, 2, 3, 4, 1)     # [G, kh, kw, cg, rest]
        blocks.append((rest, 1, ctx.weight(np.ascontiguousarray(wr), "wt")))
    g_expr = "g" if group > 1 else "0"
    lines = ["int32_t nb, oh, ow, ky, kx, ci;"]
    if group > 1:
        lines.append("int32_t g;")
    if nfull > 1:
        lines.append("int32_t ob;")
    lines += [f"for (nb = 0; nb < {n}; ++nb) {{", f"for (oh = 0; oh < {oh}; ++oh) {{",
              f"for (ow = 0; ow < {ow}; ++ow) {{",
              f"    float *o = out0 + ((nb * {oh} + oh) * {ow} + ow) * {o_ch};"]
    inner = []
    if group > 1:
        inner.append(f"for (g = 0; g < {group}; ++g) {{")
    for acc, count, sym in blocks:
        if acc == BLOCK:           # the full blocks
            first = f"{g_expr} * {og} + ob * {BLOCK}" if count > 1 else f"{g_expr} * {og}"
        else:                      # the last channels of each group
            first = f"{g_expr} * {og} + {nfull * BLOCK}"
        blk = "ob" if count > 1 else "0"
        body = []
        if count > 1:
            body.append(f"for (ob = 0; ob < {count}; ++ob) {{")
        body.append("{")
        body.append(f"    const float *wb = {sym} + ({g_expr} * {count} + {blk}) * {kh * kw * cg * acc};")
        for j in range(acc):
            init = f"{bias_sym}[{first} + {j}]" if bias_sym else "0.0f"
            body.append(f"    float a{j} = {init};")
        body += [f"    for (ky = 0; ky < {kh}; ++ky) {{",
                 f"        const int32_t ih = oh * {sh} - {ph} + ky * {dh};",
                 f"        if (ih < 0 || ih >= {h}) continue;",
                 f"        for (kx = 0; kx < {kw}; ++kx) {{",
                 f"            const int32_t iw = ow * {sw} - {pw} + kx * {dw};",
                 f"            const float *x = in0 + ((nb * {h} + ih) * {wd} + iw) * {c} + {g_expr} * {cg};",
                 f"            const float *wp = wb + (ky * {kw} + kx) * {cg * acc};",
                 f"            if (iw < 0 || iw >= {wd}) continue;",
                 f"            for (ci = 0; ci < {cg}; ++ci) {{",
                 "                const float xv = x[ci];"]
        body += [f"                a{j} += xv * wp[{j}];" for j in range(acc)]
        body += [f"                wp += {acc};", "            }", "        }", "    }"]
        body += [f"    o[{first} + {j}] = {clamp_expr(f'a{j}', attrs)};" for j in range(acc)]
        body.append("}")
        if count > 1:
            body.append("}")
        inner += body
    if group > 1:
        inner.append("}")
    lines += [indent("\n".join(inner))]
    lines += ["}", "}", "}"]
    return "\n".join(lines)


def _blocked_depthwise(ctx: EmitContext, wv: np.ndarray, bias_sym: str | None, dims: tuple, geo: tuple,
                       attrs: dict) -> str:
    """Depthwise, multiplier 1: BLOCK channels accumulated in registers over the valid taps."""
    n, h, wd, c = dims
    sh, sw, dh, dw, ph, pw, oh, ow = geo
    _, kh, kw, _ = wv.shape
    wt = ctx.weight(np.ascontiguousarray(wv.reshape(c, kh * kw).T), "w")        # [tap, C]
    nfull, rest = divmod(c, BLOCK)
    lines = ["int32_t nb, oh, ow, ky, kx;"]
    if nfull:
        lines.append("int32_t cb;")
    lines += [f"for (nb = 0; nb < {n}; ++nb) {{", f"for (oh = 0; oh < {oh}; ++oh) {{",
              f"for (ow = 0; ow < {ow}; ++ow) {{",
              f"    float *o = out0 + ((nb * {oh} + oh) * {ow} + ow) * {c};"]

    def block(acc: int, first: str) -> list[str]:
        body = ["{"]
        for j in range(acc):
            body.append(f"    float a{j} = {f'{bias_sym}[{first} + {j}]' if bias_sym else '0.0f'};")
        body += [f"    for (ky = 0; ky < {kh}; ++ky) {{",
                 f"        const int32_t ih = oh * {sh} - {ph} + ky * {dh};",
                 f"        if (ih < 0 || ih >= {h}) continue;",
                 f"        for (kx = 0; kx < {kw}; ++kx) {{",
                 f"            const int32_t iw = ow * {sw} - {pw} + kx * {dw};",
                 f"            const float *x = in0 + ((nb * {h} + ih) * {wd} + iw) * {c} + {first};",
                 f"            const float *wp = {wt} + (ky * {kw} + kx) * {c} + {first};",
                 f"            if (iw < 0 || iw >= {wd}) continue;"]
        body += [f"            a{j} += x[{j}] * wp[{j}];" for j in range(acc)]
        body += ["        }", "    }"]
        body += [f"    o[{first} + {j}] = {clamp_expr(f'a{j}', attrs)};" for j in range(acc)]
        return body + ["}"]

    inner = []
    if nfull:
        inner += [f"for (cb = 0; cb < {nfull * BLOCK}; cb += {BLOCK}) {{"] + [indent(ln) for ln in block(BLOCK, "cb")]
        inner.append("}")
    if rest:
        inner += block(rest, str(nfull * BLOCK))
    lines.append(indent("\n".join(inner)))
    lines += ["}", "}", "}"]
    return "\n".join(lines)


@kernel("ConvTranspose", precision="float", check=_conv_check)
def emit_conv_transpose(ctx: EmitContext) -> str:
    attrs, x, w, one_d, (n, h, wd, c), wv, bias_sym = _operands(ctx)
    o_ch, kh, kw, cg = wv.shape
    group = int(attrs["group"])
    og = o_ch // group
    kernel_shape = [int(k) for k in (attrs["kernel_shape"] or w.shape[1:-1])]
    nd = len(kernel_shape)
    strides = list(attrs.get("strides") or [1] * nd)
    dil = list(attrs.get("dilations") or [1] * nd)
    pb, _, out = conv_t_geometry(list(x.shape[1:-1]), kernel_shape, attrs)
    if one_d:
        sh, sw, dh, dw, ph, pw, oh, ow = 1, strides[0], 1, dil[0], 0, pb[0], 1, out[0]
    else:
        (sh, sw), (dh, dw), (ph, pw), (oh, ow) = strides, dil, pb, out
    wt = ctx.weight(_reorder_groups(wv, group), "w")
    taps = (f"const float *x = in0 + ((nb * {h} + ih) * {wd} + iw) * {c};\n"
            f"for (g = 0; g < {group}; ++g) {{\n"
            f"    const float *wp = {wt} + ((g * {kh} + ky) * {kw} + kx) * {cg * og};\n"
            f"    float *og_ = o + g * {og};\n"
            f"    for (ci = 0; ci < {cg}; ++ci) {{\n"
            f"        const float xv = x[g * {cg} + ci];\n"
            f"        const float *wr = wp + ci * {og};\n"
            f"        for (c = 0; c < {og}; ++c) {{\n            og_[c] += xv * wr[c];\n        }}\n"
            f"    }}\n}}")

    def axis(var: str, o: str, k: str, s: int, d: int, p: int, size: int, name: str) -> str:
        # output position o takes input i where i * s + k * d == o + p
        lines = [f"const int32_t t{name} = {o} + {p} - {k} * {d};",
                 f"int32_t {var};",
                 f"if (t{name} < 0) continue;"]
        if s != 1:
            lines.append(f"if (t{name} % {s} != 0) continue;")
        lines += [f"{var} = t{name} / {s};" if s != 1 else f"{var} = t{name};",
                  f"if ({var} >= {size}) continue;"]
        return "\n".join(lines)

    tap_loops = (f"for (ky = 0; ky < {kh}; ++ky) {{\n"
                 + indent(axis("ih", "oh", "ky", sh, dh, ph, h, "h")) + "\n"
                 f"    for (kx = 0; kx < {kw}; ++kx) {{\n"
                 + indent(axis("iw", "ow", "kx", sw, dw, pw, wd, "w"), 2) + "\n"
                 + indent("{\n" + indent(taps) + "\n}", 2) + "\n    }\n}")
    header = f"float *o = out0 + ((nb * {oh} + oh) * {ow} + ow) * {o_ch};"
    body = "\n".join(s for s in (_init(o_ch, bias_sym), tap_loops, _finish(o_ch, attrs)) if s)
    code = ("int32_t nb, oh, ow, ky, kx, c, ci, g;\n"
            f"for (nb = 0; nb < {n}; ++nb) {{\n" + indent(_pix_loops(oh, ow, header, body)) + "\n}")
    return code
