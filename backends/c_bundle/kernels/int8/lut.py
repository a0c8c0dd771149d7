"""Elementwise int8 -> int8 activations as a 256-entry look-up table.

An int8 activation (Relu, Clip, LeakyRelu, Sigmoid, Tanh, HardSwish, an int8 requantizing
QuantizeLinear) maps each of the 256 input values to one output value, whatever TFLite's arithmetic for
it (fixed-point exp for LOGISTIC, the HARD_SWISH multipliers...). The table is that arithmetic run once
at export time by the IR's own integer kernel, so the C is bit-exact with it by construction and costs
one load per element, integer-only. 256 bytes of flash per node.
"""
from __future__ import annotations

import numpy as np

from convertkit.backends.c_bundle.emit import EmitContext, kernel
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.interpreter import evaluate_node
from convertkit.canonical_ir.quantize.base import QType

LUT_OPS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "QuantizeLinear", "PRelu", "Elu",
           "Gelu", "HardSigmoid")
I8 = np.dtype(np.int8)


def _check(graph: Graph, node: Node) -> str | None:
    ins = graph.inputs_of(node)
    x, y = graph.tensor(ins[0]), graph.tensor(graph.outputs_of(node)[0])
    xq, yq = QType.of(x), QType.of(y)
    if xq is None or yq is None or xq.dtype != I8 or yq.dtype != I8:
        return f"int8 {node.op} needs int8 input and output (got {x.dtype} -> {y.dtype})"
    if xq.per_channel or yq.per_channel:
        return f"int8 {node.op} needs per-tensor quantization"
    for t in ins[1:]:
        if t is None:
            continue
        v = graph.const_value(t)
        if v is None:
            return f"int8 {node.op} needs constant parameters"
        if node.op == "PRelu" and np.asarray(v).size != 1:
            return "int8 PRelu with a per-channel slope has no C kernel"
    return None


def table(ctx: EmitContext) -> np.ndarray:
    """The 256 outputs for inputs -128..127, from the IR's integer kernel."""
    xs = np.arange(-128, 128, dtype=np.int8)
    args = [xs] + [ref.value if ref is not None else None for ref in ctx.inputs[1:]]
    out = evaluate_node(ctx.graph, ctx.node, args)[0]
    return np.asarray(out, np.int8).reshape(256)


@kernel(*LUT_OPS, precision="int8", check=_check, inplace=True)
def emit_lut(ctx: EmitContext) -> str:
    lut = ctx.weight(table(ctx), "lut")
    n = ctx.outputs[0].size
    return (f"int32_t i;\n"
            f"for (i = 0; i < {n}; ++i) {{\n"
            f"    out0[i] = {lut}[(uint8_t)(in0[i] + 128)];\n"
            f"}}")
