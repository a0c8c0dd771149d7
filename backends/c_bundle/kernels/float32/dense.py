"""float32 MatMul (numpy semantics: batched, broadcast batch dims, 1-D operands) and Gemm.

Both accumulate each output row in place, one A element times one B row at a time (the loop over N
is innermost and contiguous, so it vectorizes without reassociating sums). A constant Gemm B is
stored as [K, N] (transposed at export when transB); alpha is applied after the sum, beta * C is
folded into a constant C. A fused Relu/Clip clamps the finished row."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.float32.common import (
    attrs_of,
    broadcast_strides,
    clamp_assign,
    clamp_expr,
    contiguous_strides,
    float_check,
    has_activation,
    indent,
    loop_nest,
)


def _row_code(m: int, k: int, n: int, a_idx: str, b_row: str, init: str, finish: str | None) -> str:
    """One batch: o[m][n] = init; o[m][n] += a(m, k) * b(k)[n]; then the statement ``finish``."""
    lines = ["int32_t m, k, n;",
             f"for (m = 0; m < {m}; ++m) {{",
             f"    float *orow = o + m * {n};",
             f"    for (n = 0; n < {n}; ++n) {{",
             f"        orow[n] = {init};",
             "    }",
             f"    for (k = 0; k < {k}; ++k) {{",
             f"        const float av = {a_idx};",
             f"        const float *brow = {b_row};",
             f"        for (n = 0; n < {n}; ++n) {{",
             "            orow[n] += av * brow[n];",
             "        }",
             "    }"]
    if finish is not None:
        lines += [f"    for (n = 0; n < {n}; ++n) {{", indent(finish, 2), "    }"]
    lines.append("}")
    return "\n".join(lines)


BLOCK = 4
"""Output columns accumulated together in registers when B is a constant (see ``_blocked_rows``)."""


def _blocked_rows(ctx: EmitContext, m: int, k: int, n: int, a_idx: str, bkn: np.ndarray,
                  init: Callable[[str], str], finish: Callable[[str, str], str]) -> str:
    """out0[m][n] for a constant B [K, N]: per row, blocks of BLOCK columns accumulate in registers
    (B reordered at export to [N/BLOCK][K][BLOCK], the last columns [K][rest]), so each A element is
    loaded once per block and nothing is stored until the block is done (Cortex-M: 2 loads and a
    multiply-add per MAC). ``a_idx`` addresses A with ``m`` and ``k``; ``init(col)`` is the
    accumulator's start (bias), ``finish(acc, col)`` the statement storing it."""
    nfull, rest = divmod(n, BLOCK)
    lines = ["int32_t m, k;"]
    if nfull > 1:
        lines.append("int32_t nb;")
    lines.append(f"for (m = 0; m < {m}; ++m) {{")
    blocks = []
    if nfull:
        wf = bkn[:, :nfull * BLOCK].reshape(k, nfull, BLOCK).transpose(1, 0, 2)
        blocks.append((BLOCK, nfull, ctx.weight(np.ascontiguousarray(wf), "b")))
    if rest:
        blocks.append((rest, 1, ctx.weight(np.ascontiguousarray(bkn[:, nfull * BLOCK:]), "bt")))
    for acc, count, sym in blocks:
        col0 = ("nb * 4" if count > 1 else "0") if acc == BLOCK else str(nfull * BLOCK)
        body = [f"const float *wp = {sym}" + (f" + nb * {k * BLOCK};" if count > 1 else ";")]
        body += [f"float a{j} = {init(f'{col0} + {j}')};" for j in range(acc)]
        body += [f"for (k = 0; k < {k}; ++k) {{", f"    const float av = {a_idx};"]
        body += [f"    a{j} += av * wp[{j}];" for j in range(acc)]
        body += [f"    wp += {acc};", "}"]
        body += [finish(f"a{j}", f"{col0} + {j}") for j in range(acc)]
        text = "{\n" + indent("\n".join(body)) + "\n}"
        if count > 1:
            text = f"for (nb = 0; nb < {count}; ++nb) {{\n" + indent(text) + "\n}"
        lines.append(indent(text))
    lines.append("}")
    return "\n".join(lines)


@kernel("MatMul", precision="float", check=float_check())
def emit_matmul(ctx: EmitContext) -> str:
    a, b = ctx.inputs[0], ctx.inputs[1]
    attrs = attrs_of(ctx)
    a2 = (1,) + a.shape if len(a.shape) == 1 else a.shape
    b2 = b.shape + (1,) if len(b.shape) == 1 else b.shape
    m, k, n = a2[-2], a2[-1], b2[-1]
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    sa = [s * m * k for s in broadcast_strides(a2[:-2], batch)]
    sb = [s * k * n for s in broadcast_strides(b2[:-2], batch)]
    so = [s * m * n for s in contiguous_strides(batch)]
    if b.value is not None and len(b.shape) == 2 and not any(st == 0 for st in sa):
        # constant weights: the batch folds into the rows of A
        rows = int(np.prod(batch, dtype=np.int64)) * m
        return _blocked_rows(ctx, rows, k, n, f"in0[m * {k} + k]", np.asarray(b.value, np.float32),
                             lambda col: "0.0f",
                             lambda acc, col: f"out0[m * {n} + {col}] = {clamp_expr(acc, attrs)};")
    finish = f"orow[n] = {clamp_expr('orow[n]', attrs)};" if has_activation(attrs) else None
    row = _row_code(m, k, n, f"a[m * {k} + k]", f"b + k * {n}", "0.0f", finish)

    def body(exprs: list[str]) -> str:
        return (f"const float *a = in0 + {exprs[0]};\nconst float *b = in1 + {exprs[1]};\n"
                f"float *o = out0 + {exprs[2]};\n" + row)
    return loop_nest(batch, [(sa, 0), (sb, 0), (so, 0)], body, var="t")


@kernel("Gemm", precision="float", check=float_check())
def emit_gemm(ctx: EmitContext) -> str:
    attrs = attrs_of(ctx)
    a, b = ctx.inputs[0], ctx.inputs[1]
    c = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    alpha, beta = float(attrs["alpha"]), float(attrs["beta"])
    ta, tb = int(attrs["transA"]), int(attrs["transB"])
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    n = b.shape[0] if tb else b.shape[1]
    a_idx = f"in0[k * {m} + m]" if ta else f"in0[m * {k} + k]"
    lines = []
    if b.value is not None:
        b_row = ""               # constant B: _blocked_rows below
        inner_b = None
    elif tb:
        b_row = ""               # B[n][k] known at run time: dot products below
        inner_b = True
    else:
        b_row = f"in1 + k * {n}"
        inner_b = None
    c_at: Callable[[str], str] | None = None
    if c is not None and beta != 0.0:
        cs = broadcast_strides(c.shape, (m, n))
        if c.value is not None:
            cv = np.asarray(c.value, np.float32)
            if beta != 1.0:
                cv = (cv * np.float32(beta)).astype(np.float32)
            c_arr, c_scale = ctx.weight(np.ascontiguousarray(cv.reshape(-1)), "c"), ""
        else:
            c_arr, c_scale = "in2", (f" * {flit(beta)}" if beta != 1.0 else "")

        def c_at(col: str) -> str:
            idx = " + ".join(t for t in (f"m * {cs[0]}" if cs[0] else "",
                                         f"({col}) * {cs[1]}" if cs[1] else "") if t) or "0"
            return f"{c_arr}[{idx}]{c_scale}"
    c_term = c_at("n") if c_at else None
    if alpha == 1.0:
        init, fin = c_term or "0.0f", "orow[n]"
    else:
        init, fin = "0.0f", f"orow[n] * {flit(alpha)}" + (f" + {c_term}" if c_term else "")
    post = clamp_assign("orow[n]", fin, attrs) if (has_activation(attrs) or fin != "orow[n]") else None
    if inner_b:
        # B transposed and known only at run time: a dot product per output
        if alpha == 1.0 and c_term:
            post = clamp_assign("orow[n]", f"orow[n] + {c_term}", attrs)
        body = ["int32_t m, k, n;", f"for (m = 0; m < {m}; ++m) {{", f"    float *orow = out0 + m * {n};",
                f"    for (n = 0; n < {n}; ++n) {{", "        float acc = 0.0f;",
                f"        for (k = 0; k < {k}; ++k) {{", f"            acc += {a_idx} * in1[n * {k} + k];",
                "        }", "        orow[n] = acc;", "    }"]
        if post is not None:
            body += [f"    for (n = 0; n < {n}; ++n) {{", indent(post, 2), "    }"]
        return "\n".join(body + ["}"])
    if b.value is not None:
        def start(col: str) -> str:
            return c_at(col) if (alpha == 1.0 and c_at) else "0.0f"

        def store(acc: str, col: str) -> str:
            val = acc if alpha == 1.0 else f"{acc} * {flit(alpha)}" + (f" + {c_at(col)}" if c_at else "")
            return clamp_assign(f"out0[m * {n} + {col}]", val, attrs)
        bkn = np.ascontiguousarray((b.value.T if tb else b.value).astype(np.float32))
        return _blocked_rows(ctx, m, k, n, a_idx, bkn, start, store)
    lines.append("float *o = out0;")
    lines.append(_row_code(m, k, n, a_idx, b_row, init, post))
    return "{\n" + indent("\n".join(lines)) + "\n}"
