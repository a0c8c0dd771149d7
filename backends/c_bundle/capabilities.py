"""What the C bundle accepts: the ops that have a C kernel (``emit.KERNELS``), channels-last, static
shapes, and Relu/Relu6/ReluN1To1 fused into the kernels that take them (as TFLite does)."""
from __future__ import annotations

from typing import Any

from convertkit.backends.c_bundle import kernels  # noqa: F401  (registers the C kernels)
from convertkit.backends.c_bundle.emit import KERNELS, find_kernel
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.passes.legalize import Capabilities

FUSABLE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "AveragePool", "MaxPool"})
"""Ops whose C kernels clamp their output by a fused activation (both precisions)."""


def _has_kernel(graph: Graph, node: Node) -> str | None:
    return find_kernel(graph, node)[1]


def target_capabilities(**_: Any) -> Capabilities:
    ops = frozenset(op for op, _p in KERNELS)
    return Capabilities(name="the C bundle", ops=ops, layouts=("NHWC",), dtypes=None,
                        fused_activations=frozenset({"Relu", "Relu6", "ReluN1To1"}),
                        fusable_ops=FUSABLE & ops, constraints={op: _has_kernel for op in ops},
                        static_shapes=True, integer_ops=True,
                        hint="the C bundle has kernels for the ops small models use; see "
                             "backends/c_bundle/kernels/")
