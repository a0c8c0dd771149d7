"""ONNX op converters: one handler per (op_type, opset range), registered with a decorator.

Most ONNX ops map one-to-one onto the canonical op of the same name (the canonical op set follows the
newest ONNX semantics), and need no handler: the default copies inputs and attributes. A handler is
written only where an older opset spelled the op differently (an attribute that later became an input,
a changed default) or where the op lowers to several canonical ops::

    @converter("Squeeze", until=12)        # opsets 1..12 carried axes as an attribute
    def squeeze_axes_attr(ctx):
        axes = ctx.attrs.pop("axes", None)
        ctx.emit("Squeeze", [ctx.input(0), ctx.const_or_none(axes, np.int64)])
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.ops import get_schema, has_op
from convertkit.errors import ModelFileError

Handler = Callable[["ConvertContext"], None]

_HANDLERS: dict[str, list[tuple[int, int, Handler]]] = {}


def converter(op_type: str, since: int = 1, until: int = 10_000) -> Callable[[Handler], Handler]:
    """Register a handler for ONNX ``op_type`` at default-domain opsets ``since..until`` inclusive."""
    def deco(fn: Handler) -> Handler:
        _HANDLERS.setdefault(op_type, []).append((since, until, fn))
        return fn
    return deco


def find_handler(op_type: str, opset: int) -> Handler | None:
    for since, until, fn in _HANDLERS.get(op_type, []):
        if since <= opset <= until:
            return fn
    return None


def is_supported(op_type: str, opset: int) -> bool:
    return find_handler(op_type, opset) is not None or has_op(op_type)


class ConvertContext:
    """One ONNX node being converted: its parsed attributes, IR input names and output names."""

    def __init__(self, graph: Graph, node: Any, attrs: dict[str, Any], inputs: list[str | None],
                 outputs: list[str], opset: int, where: str) -> None:
        self.graph = graph
        self.node = node
        self.attrs = attrs
        self.inputs = inputs
        self.outputs = outputs
        self.opset = opset
        self.where = where
        self.name = node.name or (outputs[0] if outputs else node.op_type)

    def input(self, i: int) -> str | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def const_value(self, i: int) -> np.ndarray | None:
        return self.graph.const_value(self.input(i))

    def const(self, value: Any, dtype: Any = None, name: str | None = None) -> str:
        return self.graph.add_const(np.asarray(value, dtype=dtype), name or f"{self.name}_const")

    def const_or_none(self, value: Any, dtype: Any = None) -> str | None:
        return None if value is None else self.const(value, dtype)

    def tmp(self, suffix: str = "tmp") -> str:
        """A fresh tensor name for an intermediate result."""
        return self.graph.add_tensor(self.graph.unique_name(f"{self.name}_{suffix}"))

    def emit(self, op: str, inputs: Sequence[str | None], outputs: Sequence[str] | None = None,
             attrs: dict[str, Any] | None = None, name: str | None = None) -> list[str]:
        """Add a canonical op; by default it produces this ONNX node's outputs."""
        outs = list(self.outputs if outputs is None else outputs)
        ins = list(inputs)
        while ins and ins[-1] is None:
            ins.pop()
        self.graph.add_node(op, ins, outs, attrs if attrs is not None else {}, name=name or self.name)
        return outs

    def error(self, message: str, hint: str | None = None) -> ModelFileError:
        return ModelFileError(message, where=self.where, hint=hint)


def default_handler(ctx: ConvertContext) -> None:
    """Same-named canonical op, inputs and attributes unchanged."""
    schema = get_schema(ctx.node.op_type)
    unknown = set(ctx.attrs) - set(schema.attrs)
    if unknown:
        raise ctx.error(f"attribute(s) {sorted(unknown)} of {ctx.node.op_type} are not supported",
                        hint="the canonical op has no such option")
    ctx.emit(ctx.node.op_type, ctx.inputs, attrs=dict(ctx.attrs))
