"""What a Caffe2 op converter sees: the op's arguments and its inputs and outputs as IR tensors.

Converters live in a plain dict (``handlers.HANDLERS``: op type -> :class:`Converter`). A converter
reads arguments through :class:`Args`, which remembers which ones it read: an argument no converter
read is reported as unsupported rather than silently ignored, since Caffe2 ops change meaning with
their arguments (``legacy_pad``, ``broadcast``, ``order``...). Every emitted IR node is shape-inferred
at once, so a converter can look at the shapes of what it has built so far.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.infer import infer_node  # noqa: F401  (re-exported)
from convertkit.frontends._context import NodeInputs
from convertkit.errors import ModelFileError
from convertkit.frontends.caffe2.reader import _NESTED, arg_text

IGNORED_ARGS = frozenset({
    "shared_buffer", "ws_nbytes_limit", "exhaustive_search", "cudnn_exhaustive_search", "float16_compute",
    "use_cudnn", "deterministic", "init_params", "momentum", "num_batches",
})
"""Performance and training hints that do not change what an op computes at inference."""

_MISSING = object()


class Args:
    """Typed access to an OperatorDef's arguments, remembering which were read."""

    def __init__(self, values: dict[str, Any], op_type: str, where: str) -> None:
        self.values = values
        self.op_type = op_type
        self.where = where
        self.read: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.values

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        v = self.values.get(key, _MISSING)
        if v is _NESTED:
            raise self.error(f"argument {key!r} holds a nested net or tensor, which is not supported")
        return default if v is _MISSING else v

    def int(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            raise self.error(f"needs the argument {key!r}")
        if v is not default and not isinstance(v, int):
            raise self.error(f"argument {key}={arg_text(v)} should be an integer")
        return v

    def float(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            raise self.error(f"needs the argument {key!r}")
        if v is not default and not isinstance(v, (int, float)):
            raise self.error(f"argument {key}={arg_text(v)} should be a number")
        return float(v) if v is not None else v

    def ints(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            raise self.error(f"needs the argument {key!r}")
        if isinstance(v, int):
            return [v]
        if v is not default and (not isinstance(v, list) or any(not isinstance(x, int) for x in v)):
            raise self.error(f"argument {key}={arg_text(v)} should be a list of integers")
        return v

    def str(self, key: str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            raise self.error(f"needs the argument {key!r}")
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if v is not default:
            raise self.error(f"argument {key}={arg_text(v)} should be a string")
        return v

    def choice(self, key: str, default: str, allowed: Sequence[str]) -> str:
        v = self.str(key, default)
        if v not in allowed:
            raise self.error(f"argument {key}={v!r} is not supported", hint=f"supported: {', '.join(allowed)}")
        return v

    def order(self) -> str:
        """The ``order`` argument as an IR layout: "NCHW" or "NHWC" (for any spatial rank)."""
        return self.choice("order", "NCHW", ("NCHW", "NHWC"))

    def unread(self) -> list[str]:
        return sorted(set(self.values) - self.read - IGNORED_ARGS)

    def error(self, message: str, hint: str | None = None) -> ModelFileError:
        return ModelFileError(message, where=self.where, hint=hint)


class OpContext(NodeInputs, Args):
    """One Caffe2 op being converted: its arguments, IR input names and IR output names."""

    STATIC_HINT = "put a value_info.json with the input shapes beside the net"

    def __init__(self, graph: Graph, op: Any, args: dict[str, Any], inputs: list[str], outputs: list[str],
                 used: list[bool], where: str, reserved: set[str] | None = None) -> None:
        super().__init__(args, op.type, where)
        self.graph = graph
        self.reserved = reserved if reserved is not None else set()
        """Names of blobs (and their versions) still to come: helper tensors must not take them."""
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.used = used
        """Per output: whether a later op or the net's external outputs read it."""
        self.name = op.name or (op.output[0] if op.output else op.type)

    # ---- tensors
    def n_inputs(self) -> int:
        return len(self.inputs)

    def param(self, i: int, what: str) -> np.ndarray:
        """The constant value of a weight input (the loader checked that weights come from the init net)."""
        v = self.value(i)
        if v is None:
            raise self.error(f"the {what} (input {i}, {self.inputs[i]!r}) must be a constant from the init net")
        return v

    def const(self, value: Any, dtype: Any = None, name: str = "const") -> str:
        return self.graph.add_tensor(self._fresh(f"{self.name}_{name}"), value=np.asarray(value, dtype=dtype))

    def tmp(self, suffix: str = "tmp") -> str:
        return self.graph.add_tensor(self._fresh(f"{self.name}_{suffix}"))

    def _fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self.reserved or self.graph.has_tensor(name) or self.graph.has_node(name):
            n += 1
            name = f"{base}_{n}"
        self.reserved.add(name)
        return name

    def emit(self, op: str, inputs: Sequence[str | None], outputs: Sequence[str] | None = None,
             attrs: dict[str, Any] | None = None) -> str:
        """Add an IR op (by default producing this op's first output), infer its types, return output 0."""
        outs = list(self.outputs[:1] if outputs is None else outputs)
        return self.add_op(op, inputs, outs, attrs)


Dims = list[int | str]
InputGuess = Callable[[Args, Sequence[np.ndarray | None], int], Dims | None]
"""(args, constant values of the op's inputs, port) -> the shape of a graph input fed at that port,
with "N" for the batch and "C", "H", "W", "D" for other unknown dims; None if the op cannot tell."""


@dataclass(frozen=True)
class Converter:
    fn: Callable[[OpContext], None]
    params: tuple[int, ...] = ()
    """Input ports that take weights: a blob read there must come from the init net."""
    guess: InputGuess | None = None
