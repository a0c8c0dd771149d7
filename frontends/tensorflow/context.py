"""What a TensorFlow op converter sees: the node's attributes, its inputs as IR tensors, and helpers.

Converters live in plain dicts (``TF op name -> function(ctx)``) in the ``ops_*`` modules. Each
emitted IR node is shape-inferred at once, so a converter can read the shapes of its inputs (for
SAME padding, group counts, StridedSlice masks...). Attribute values a converter does not implement
raise an error naming the node; they are never ignored.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.infer import infer_node  # noqa: F401  (re-exported)
from convertkit.frontends._context import NodeInputs
from convertkit.errors import ModelFileError, UnsupportedOpError
from convertkit.frontends.tensorflow.tfgraph import TFNode, TFType, np_dtype

_REQUIRED = object()
INT64 = np.dtype(np.int64)


class Context(NodeInputs):
    """One TF node being converted."""

    STATIC_HINT = "give the model input a static shape with --inputs NAME=DIMS"

    def __init__(self, graph: Graph, node: TFNode, inputs: list[str], outputs: list[str], where: str) -> None:
        self.graph = graph
        self.node = node
        self.inputs = inputs
        self.outputs = outputs
        """IR names for the node's outputs 0..k (every output some consumer reads, and those before it)."""
        self.aliases: dict[int, str] = {}
        self.where = where
        self.name = node.name

    # ---- attributes
    def attr(self, key: str, default: Any = _REQUIRED) -> Any:
        if key in self.node.attrs:
            return self.node.attrs[key]
        if default is _REQUIRED:
            raise self.error(f"has no attribute {key!r}")
        return default

    def type_attr(self, key: str, default: Any = _REQUIRED) -> np.dtype:
        v = self.attr(key, default)
        if isinstance(v, TFType):
            return np_dtype(v.code, self.where)
        if isinstance(v, np.dtype):
            return v
        raise self.error(f"attribute {key!r} is not a type")

    def choice(self, key: str, allowed: Sequence[Any], default: Any = _REQUIRED) -> Any:
        v = self.attr(key, default)
        if v not in allowed:
            raise self.unsupported(f"{key}={v!r}", f"supported: {', '.join(map(repr, allowed))}")
        return v

    def data_format(self) -> str:
        fmt = self.attr("data_format", "NHWC")
        if fmt not in ("NHWC", "NCHW", "NDHWC", "NCDHW", "NWC", "NCW"):
            raise self.unsupported(f"data_format={fmt!r}")
        return fmt

    # ---- inputs
    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def ints(self, i: int, what: str) -> list[int | str]:
        """The elements of an integer input that must be known when converting: constants, or shape
        computations whose value inference can follow (a symbolic batch stays a name)."""
        v = self.value(i)
        if v is not None:
            return [int(x) for x in np.asarray(v).reshape(-1)]
        vals = _sym_value(self.graph, self.input(i))
        if vals is None or any(x is None for x in vals):
            raise self.unsupported(f"a {what} computed at run time (input {i})",
                                   "convertkit needs it constant, or derived from static shapes")
        return vals

    def static_ints(self, i: int, what: str) -> list[int]:
        vals = self.ints(i, what)
        if any(not isinstance(x, int) for x in vals):
            raise self.unsupported(f"a {what} that depends on a symbolic dimension ({vals})",
                                   "give the input a static shape with --inputs NAME=DIMS")
        return vals  # type: ignore[return-value]

    # ---- building
    def out(self, k: int = 0) -> str:
        return self.outputs[k]

    def alias(self, k: int, tensor: str) -> None:
        """Output k of the TF node is the existing IR tensor ``tensor`` (Identity and friends)."""
        self.aliases[k] = tensor

    def const(self, value: Any, dtype: Any = None, name: str = "const") -> str:
        return self.graph.add_const(np.asarray(value, dtype=dtype), f"{self.name}/{name}")

    def tmp(self, suffix: str = "tmp") -> str:
        return self.graph.add_tensor(self.graph.unique_name(f"{self.name}/{suffix}"))

    def emit(self, op: str, inputs: Sequence[str | None], outputs: Sequence[str] | str | None = None,
             attrs: dict[str, Any] | None = None) -> str:
        """Add an IR op (by default producing output 0), infer its types, return its first output.
        ``outputs`` may be a suffix for one fresh intermediate tensor."""
        if outputs is None:
            outs = [self.out(0)]
        elif isinstance(outputs, str):
            outs = [self.tmp(outputs)]
        else:
            outs = list(outputs)
        return self.add_op(op, inputs, outs, attrs)

    def int64(self, i: int) -> str:
        """Input i as int64 (ONNX wants int64 shapes, axes, repeats; TF uses int32)."""
        v = self.value(i)
        if v is not None:
            return self.const(np.asarray(v).astype(np.int64), name=f"in{i}_i64")
        if self.dtype(i) == INT64:
            return self.input(i)
        return self.emit("Cast", [self.input(i)], f"in{i}_i64", {"to": "int64"})

    # ---- errors
    def error(self, message: str, hint: str | None = None) -> ModelFileError:
        return ModelFileError(message, where=self.where, hint=hint)

    def unsupported(self, what: str, hint: str | None = None) -> UnsupportedOpError:
        """An attribute value or form of the op that convertkit does not implement."""
        return UnsupportedOpError("unsupported TensorFlow op form",
                                  {f"{self.node.op} with {what}": [self.name]},
                                  where=self.where.split(": node")[0], hint=hint)


def _sym_value(graph: Graph, name: str) -> list | None:
    """Symbolic value of a 1-D/0-D int tensor, as shape inference reads it (canonical_ir.ops.dims;
    its public ``shape_value`` takes a consumer node, which a converter does not have yet)."""
    from convertkit.canonical_ir.ops import dims

    return dims._value(graph, name, {})


Converter = Callable[[Context], None]
