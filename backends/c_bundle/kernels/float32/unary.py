"""float32 elementwise unary ops: one C expression of ``x`` per op (attributes baked in as literals)."""
from __future__ import annotations

from collections.abc import Callable

from convertkit.backends.c_bundle.emit import EmitContext, flit, kernel
from convertkit.backends.c_bundle.kernels.float32.common import clamp_value
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema

F = flit
UNARY: dict[str, Callable[[dict], str | tuple[str, str]]] = {
    "Relu": lambda a: "x > 0.0f ? x : 0.0f",
    "Neg": lambda a: "-x",
    "Abs": lambda a: "fabsf(x)",
    "Exp": lambda a: "expf(x)",
    "Log": lambda a: "logf(x)",
    "Sqrt": lambda a: "sqrtf(x)",
    "Reciprocal": lambda a: "1.0f / x",
    "Floor": lambda a: "floorf(x)",
    "Ceil": lambda a: "ceilf(x)",
    "Erf": lambda a: "erff(x)",
    "Sin": lambda a: "sinf(x)",
    "Cos": lambda a: "cosf(x)",
    "Tanh": lambda a: "tanhf(x)",
    "Sigmoid": lambda a: "1.0f / (1.0f + expf(-x))",
    "Softplus": lambda a: "(x > 20.0f ? x : log1pf(expf(x)))",
    "Softsign": lambda a: "x / (1.0f + fabsf(x))",
    "Elu": lambda a: f"x > 0.0f ? x : {F(a['alpha'])} * expm1f(x)",
    "Selu": lambda a: f"{F(a['gamma'])} * (x > 0.0f ? x : {F(a['alpha'])} * expm1f(x))",
    "Celu": lambda a: f"(x > 0.0f ? x : 0.0f) + {F(a['alpha'])} * (x < 0.0f ? expm1f(x / {F(a['alpha'])}) : 0.0f)",
    "LeakyRelu": lambda a: f"x >= 0.0f ? x : {F(a['alpha'])} * x",
    "ThresholdedRelu": lambda a: f"x > {F(a['alpha'])} ? x : 0.0f",
    "HardSigmoid": lambda a: (f"{F(a['alpha'])} * x + {F(a['beta'])}", "(t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f)"),
    "HardSwish": lambda a: ("x * 0x1.555556p-3f + 0.5f", "x * (t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f)"),
    "Swish": lambda a: f"x / (1.0f + expf(-{F(a['alpha'])} * x))",
    "Mish": lambda a: "x * tanhf(x > 20.0f ? x : log1pf(expf(x)))",
    "Gelu": lambda a: ("0.5f * x * (1.0f + tanhf(0x1.9884b2p-1f * (x + 0x1.6e4c14p-5f * x * x * x)))"
                       if a.get("approximate") == "tanh" else "0.5f * x * (1.0f + erff(x * 0x1.6a09e6p-1f))"),
    "Sign": lambda a: "(float)((x > 0.0f) - (x < 0.0f))",
    "Round": lambda a: "nearbyintf(x)",
}


def _float_io(graph: Graph, node: Node) -> str | None:
    x = graph.tensor(graph.inputs_of(node)[0])
    y = graph.tensor(graph.outputs_of(node)[0])
    if str(x.dtype) != "float32" or str(y.dtype) != "float32":
        return f"float {node.op} needs float32 tensors (got {x.dtype} -> {y.dtype})"
    return None


def _clip_check(graph: Graph, node: Node) -> str | None:
    why = _float_io(graph, node)
    if why is None and any(t is not None and graph.const_value(t) is None for t in graph.inputs_of(node)[1:]):
        return "Clip with run-time bounds has no C kernel"
    return why


def _loop(ctx: EmitContext, expr: str | tuple[str, str]) -> str:
    """``out0[i] = expr(x)``; a pair (pre, expr) first binds ``t = pre(x)`` (the clamps of the hard
    activations are comparisons: fmaxf/fminf are library calls on Cortex-M4 and on x86 without
    -ffast-math)."""
    pre = ""
    if isinstance(expr, tuple):
        pre, expr = f"    const float t = {expr[0]};\n", expr[1]
    return (f"int32_t i;\nfor (i = 0; i < {ctx.outputs[0].size}; ++i) {{\n"
            f"    const float x = in0[i];\n{pre}    out0[i] = {expr};\n}}")


for _op, _expr in UNARY.items():
    def _emit(ctx: EmitContext, _e=_expr) -> str:
        return _loop(ctx, _e(get_schema(ctx.node.op).resolve_attrs(dict(ctx.node.attrs))))
    kernel(_op, precision="float", check=_float_io, inplace=True)(_emit)


@kernel("Clip", precision="float", check=_clip_check, inplace=True)
def emit_clip(ctx: EmitContext) -> str:
    lo, hi = ctx.input_value(1), ctx.input_value(2)
    return _loop(ctx, clamp_value("x", None if lo is None else float(lo), None if hi is None else float(hi)))
