"""What the TFLite backend accepts, for legalization: the ops it has a builder for (``ops.py``,
``ops_shape.py``), NHWC, TFLite's fused activations, float32/int8/int32 tensors (int64 and bool only
in shape arithmetic), and each builder's constraint."""
from __future__ import annotations

from functools import cache

import numpy as np
from convertkit.backends.tflite import ops_elementwise, ops_shape  # noqa: F401  (register their builders)
from convertkit.backends.tflite.ops import BUILDERS, CHECKS, _is_q
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.canonical_ir.passes.legalize import Capabilities, Constraint

DTYPES = frozenset(np.dtype(t) for t in (np.float32, np.int8, np.int32, np.int64, np.bool_))
INT64_OPS = frozenset({"Shape", "Gather", "Concat", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Slice",
                       "Expand", "Add", "Sub", "Mul"})
"""Ops that may carry int64/bool tensors (shape arithmetic); TFLite has int64 kernels for these."""
FUSED = frozenset({"Relu", "Relu6", "ReluN1To1"})
FUSABLE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "AveragePool",
                     "MaxPool"})
"""Ops written with TFLite's fused_activation_function (CONCATENATION is not: LiteRT refuses one there)."""


def _generic(op: str) -> Constraint:
    specific = CHECKS.get(op)
    schema = get_schema(op)

    def check(graph: Graph, node: Node) -> str | None:
        names = [n for n in graph.inputs_of(node) + graph.outputs_of(node) if n is not None]
        if schema.qkernel is None and any(_is_q(graph, n) for n in names):
            return "int8 tensors, and the IR has no integer kernel for it"
        wide = [n for n in names if graph.tensor(n).dtype in (np.dtype(np.int64), np.dtype(np.bool_))
                and not graph.tensor(n).is_const]
        if wide and op not in INT64_OPS:
            return f"dtype {graph.tensor(wide[0]).dtype}"
        if any(graph.tensor(n).dtype == np.dtype(np.int8) and graph.tensor(n).quant is None
               and not graph.tensor(n).is_const for n in names):
            return "int8 tensor without quantization parameters"
        if (op == "MatMul" and node.attrs.get(FUSED_ACTIVATION) is not None
                and graph.const_value(graph.inputs_of(node)[1]) is None):
            return "fused activation on a MatMul of two run-time tensors"
        return specific(graph, node) if specific is not None else None
    return check


@cache
def capabilities() -> Capabilities:
    ops = frozenset(BUILDERS)
    return Capabilities(name="TFLite", ops=ops, layouts=("NHWC",), dtypes=DTYPES, fused_activations=FUSED,
                        fusable_ops=FUSABLE, constraints={op: _generic(op) for op in ops}, integer_ops=True,
                        hint="TFLite has no builtin operator for these (or not with these types/attributes)")
