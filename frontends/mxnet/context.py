"""The converter registry and the context a converter works in.

A converter is a function ``fn(ctx)`` registered for one or more MXNet op names in the plain dict
:data:`CONVERTERS`. It reads attributes through ``ctx.attrs`` (typed, and tracked so that an attribute
nobody read is reported), and adds canonical ops with ``ctx.emit``/``ctx.op``. Every op added is
shape-inferred at once, so later converters can look at shapes (MXNet's Reshape codes, Crop, softmax
over flattened dims need them); a symbolic dimension stays a string.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.errors import ModelFileError
from convertkit.frontends.mxnet.symbol import AttrError, Attrs, SymNode

Converter = Callable[["ConvertContext"], None]

CONVERTERS: dict[str, Converter] = {}
"""MXNet op name -> converter."""

Ports = tuple[int, ...] | Callable[[dict[str, str]], tuple[int, ...]]

WEIGHT_PORTS: dict[str, Ports] = {}
"""MXNet op name -> input ports that take learned parameters (must come from the .params file); a
function of the node's raw attributes where that depends on them."""

LABEL_PORTS: dict[str, tuple[int, ...]] = {}
"""MXNet op name -> input ports that take training labels (unused at inference, dropped)."""


def converter(*ops: str, weights: Ports = (),
              labels: tuple[int, ...] = ()) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of each MXNet op in ``ops``."""
    def deco(fn: Converter) -> Converter:
        for op in ops:
            if op in CONVERTERS:
                raise TypeError(f"MXNet op {op} has two converters")
            CONVERTERS[op] = fn
            if weights:
                WEIGHT_PORTS[op] = weights
            if labels:
                LABEL_PORTS[op] = labels
        return fn
    return deco


class Unsupported(Exception):
    """Raised by a converter for a value it cannot convert faithfully; collected per node."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class ConvertContext:
    """One MXNet node being converted."""

    def __init__(self, graph: Graph, node: SymNode, inputs: list[str | None], source: str,
                 used_outputs: set[int]) -> None:
        self.graph = graph
        self.used_outputs = used_outputs
        """Indices of this node's outputs that other nodes (or the graph outputs) use."""
        self.node = node
        self.op_type = node.op
        self.name = node.name
        self.attrs = Attrs(node.attrs)
        self.inputs = inputs
        self.where = f"{source}: node {node.name} ({node.op})"
        self.outputs: list[str] = []

    # ---- inputs
    def input(self, i: int) -> str:
        if i >= len(self.inputs) or self.inputs[i] is None:
            raise self.error(f"needs input {i}, which the symbol does not give")
        return self.inputs[i]  # type: ignore[return-value]

    def shape(self, name: str) -> tuple:
        shape = self.graph.tensor(name).shape
        if shape is None:
            raise self.error(f"the shape of {name!r} is unknown")
        return shape

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def dtype(self, name: str) -> np.dtype:
        return self.graph.tensor(name).dtype or np.dtype(np.float32)

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        shape = self.shape(name)
        return tuple(shape) if all(isinstance(d, int) for d in shape) else None

    def const_value(self, name: str) -> np.ndarray | None:
        return self.graph.const_value(name)

    def weight(self, i: int, what: str) -> np.ndarray:
        """The constant value of a parameter input."""
        value = self.const_value(self.input(i))
        if value is None:
            raise self.unsupported(f"a {what} computed at run time")
        return value

    # ---- building
    def const(self, value: Any, dtype: Any = None, suffix: str = "const") -> str:
        return self.graph.add_const(np.asarray(value, dtype=dtype), f"{self.name}_{suffix}")

    def scalar(self, value: float, like: str, suffix: str = "scalar") -> str:
        """A 0-d constant in the dtype of tensor ``like`` (MXNet casts scalars to the tensor's type)."""
        return self.const(np.asarray(value, dtype=self.dtype(like)), suffix=suffix)

    def out_names(self, n: int) -> list[str]:
        """This node's output tensor names, as MXNet names them."""
        return [self.out_name(i, n) for i in range(n)]

    def out_name(self, i: int, n: int) -> str:
        """A new tensor for output ``i`` of ``n``: ``<node>_output`` or ``<node>_output<i>``."""
        base = f"{self.name}_output" if n == 1 else f"{self.name}_output{i}"
        return self.graph.add_tensor(self.graph.unique_name(base))

    def emit(self, op: str, inputs: Sequence[str | None], attrs: dict[str, Any] | None = None,
             n_out: int = 1, final: bool = True, names: Sequence[str] | None = None) -> list[str]:
        """Add a canonical op. ``final`` ops produce this node's outputs; others a fresh temporary;
        ``names`` gives the output names outright (the caller then declares them with ``done``)."""
        if names is not None:
            outs = list(names)
        elif final:
            outs = self.out_names(n_out)
            self.outputs = outs
        else:
            base = f"{self.name}_{op.lower()}"
            outs = [self.graph.add_tensor(self.graph.unique_name(base)) for _ in range(n_out)]
        ins = list(inputs)
        while ins and ins[-1] is None:
            ins.pop()
        node = self.graph.add_node(op, ins, outs, attrs or {}, name=self.name)
        schema = get_schema(op)
        types = schema.infer(InferContext(self.graph, node, schema))
        for out, (dtype, shape) in zip(outs, types):
            t = self.graph.tensor(out)
            t.dtype, t.shape = np.dtype(dtype), tuple(d if isinstance(d, str) else int(d) for d in shape)
        return outs

    def op(self, op: str, inputs: Sequence[str | None], attrs: dict[str, Any] | None = None) -> str:
        """An intermediate op with one output; returns its tensor name."""
        return self.emit(op, inputs, attrs, final=False)[0]

    def done(self, *names: str) -> None:
        """Declare existing tensors as this node's outputs (a converter that adds no final op)."""
        self.outputs = list(names)

    # ---- errors
    def unsupported(self, what: str) -> Unsupported:
        return Unsupported(what)

    def error(self, message: str, hint: str | None = None) -> ModelFileError:
        return ModelFileError(message, where=self.where, hint=hint)


def run_converter(ctx: ConvertContext) -> None:
    """Run the node's converter; an unparsable, unknown or unsupported attribute becomes Unsupported."""
    fn = CONVERTERS[ctx.op_type]
    try:
        fn(ctx)
    except AttrError as e:
        raise Unsupported(f"{e.key}={e.value}") from None
    unread = ctx.attrs.unread()
    if unread:
        raise Unsupported(", ".join(f"{k}={ctx.attrs.raw[k]}" for k in unread))
    if not ctx.outputs:
        raise ctx.error("converter produced no output (a convertkit bug)")


def weight_ports(op: str, attrs: dict[str, str]) -> tuple[int, ...]:
    """The weight ports of an op node, given its raw attributes."""
    ports = WEIGHT_PORTS.get(op, ())
    return ports(attrs) if callable(ports) else ports


def along_axis(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """Reshape a 1-D per-channel array to broadcast along ``axis`` of a rank-``rank`` tensor."""
    shape = [1] * rank
    shape[axis] = -1
    return np.asarray(values).reshape(shape)


def norm_axis(axis: int, rank: int) -> int:
    """``axis`` in 0..rank-1; one out of range is refused."""
    if not -rank <= axis < rank:
        raise Unsupported(f"axis={axis} (input rank {rank})")
    return axis % rank
