"""ONNX exporters: one handler per (canonical op, target opset range), registered with a decorator.

The default writes the canonical op as the ONNX op of the same name with its attributes, which is
right whenever the target opset has that op in its newest form. A handler is needed where an older
opset spells the op differently, or lacks it and the op must be written as a small subgraph::

    @exporter("Squeeze", until=12)       # axes were an attribute before opset 13
    def squeeze_axes_attr(ctx):
        ctx.make_node("Squeeze", [ctx.input(0)], axes=ctx.const_ints(1))
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.errors import ExportError

Handler = Callable[["ExportContext"], None]

_HANDLERS: dict[str, list[tuple[int, int, Handler]]] = {}


def exporter(op: str, since: int = 1, until: int = 10_000) -> Callable[[Handler], Handler]:
    """Register a handler writing canonical ``op`` for target opsets ``since..until`` inclusive."""
    def deco(fn: Handler) -> Handler:
        _HANDLERS.setdefault(op, []).append((since, until, fn))
        return fn
    return deco


def find_handler(op: str, opset: int) -> Handler | None:
    for since, until, fn in _HANDLERS.get(op, []):
        if since <= opset <= until:
            return fn
    return None


class ExportContext:
    """One canonical node being written: collects the ONNX nodes and initializers it becomes."""

    def __init__(self, graph: Graph, node: Node, attrs: dict[str, Any], opset: int, writer: Any) -> None:
        self.graph = graph
        self.node = node
        self.attrs = attrs
        self.opset = opset
        self.inputs: list[str | None] = graph.inputs_of(node)
        self.outputs: list[str] = graph.outputs_of(node)
        self._writer = writer

    def input(self, i: int) -> str:
        name = self.inputs[i] if i < len(self.inputs) else None
        return "" if name is None else name

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def const_value(self, i: int) -> np.ndarray | None:
        return self.graph.const_value(self.inputs[i]) if self.has_input(i) else None

    def const_ints(self, i: int) -> list[int] | None:
        """A constant int input as a list (for opsets that take it as an attribute)."""
        if not self.has_input(i):
            return None
        v = self.const_value(i)
        if v is None:
            raise self.error(f"input {i} must be a constant to be written as an attribute at opset "
                             f"{self.opset}", hint="choose a newer --opset")
        return [int(x) for x in np.asarray(v).reshape(-1)]

    def const(self, value: Any, dtype: Any = None, name: str = "const") -> str:
        """An initializer holding ``value``; returns its name."""
        return self._writer.add_initializer(np.asarray(value, dtype=dtype), f"{self.node.name}_{name}")

    def tmp(self, suffix: str = "tmp") -> str:
        return self._writer.fresh_name(f"{self.node.name}_{suffix}")

    def make_node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | None = None,
                  name: str | None = None, **attrs: Any) -> list[str]:
        """Write one ONNX node (by default producing this node's outputs); None attributes are dropped."""
        outs = list(self.outputs if outputs is None else outputs)
        ins = list(inputs)
        while ins and ins[-1] == "":
            ins.pop()
        self._writer.add_node(op_type, ins, outs, name or self.node.name,
                              {k: v for k, v in attrs.items() if v is not None})
        return outs

    def error(self, message: str, hint: str | None = None) -> ExportError:
        return ExportError(message, where=f"node {self.node.name} ({self.node.op})", hint=hint)
