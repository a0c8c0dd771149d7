"""float32 Softmax and LogSoftmax over any axis, numerically stable (the maximum is subtracted
before exp), as the IR's kernels compute them. The tensor is viewed as [outer, L, inner] with L the
softmax axis; when inner == 1 every row is contiguous."""
from __future__ import annotations

import numpy as np
from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.backends.c_bundle.kernels.float32.common import attrs_of, float_check
from convertkit.canonical_ir.ops.registry import normalize_axis


def _emit(ctx: EmitContext, log: bool) -> str:
    shape = ctx.inputs[0].shape
    axis = normalize_axis(int(attrs_of(ctx)["axis"]), len(shape)) if shape else 0
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    length = int(shape[axis]) if shape else 1
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    st = "" if inner == 1 else f" * {inner}"
    write = ("o[l" + st + "] = (x[l" + st + "] - mx) - ls;" if log else "o[l" + st + "] *= inv;")
    lines = [
        "int32_t r, q, l;",
        f"for (r = 0; r < {outer}; ++r) {{",
        f"    for (q = 0; q < {inner}; ++q) {{",
        f"        const float *x = in0 + r * {length * inner} + q;",
        f"        float *o = out0 + r * {length * inner} + q;",
        "        float mx = x[0];",
        "        float sum = 0.0f;",
        f"        for (l = 1; l < {length}; ++l) {{",
        f"            mx = x[l{st}] > mx ? x[l{st}] : mx;",
        "        }",
        f"        for (l = 0; l < {length}; ++l) {{",
    ]
    if log:
        lines += [f"            sum += expf(x[l{st}] - mx);", "        }",
                  "        {", "            const float ls = logf(sum);",
                  f"            for (l = 0; l < {length}; ++l) {{", f"                {write}", "            }",
                  "        }"]
    else:
        lines += [f"            const float e = expf(x[l{st}] - mx);", f"            o[l{st}] = e;",
                  "            sum += e;", "        }",
                  "        {", "            const float inv = 1.0f / sum;",
                  f"            for (l = 0; l < {length}; ++l) {{", f"                {write}", "            }",
                  "        }"]
    lines += ["    }", "}"]
    return "\n".join(lines)


@kernel("Softmax", precision="float", check=float_check())
def emit_softmax(ctx: EmitContext) -> str:
    return _emit(ctx, False)


@kernel("LogSoftmax", precision="float", check=float_check())
def emit_log_softmax(ctx: EmitContext) -> str:
    return _emit(ctx, True)
