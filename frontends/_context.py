"""Tensor accessors shared by the frontends' converter contexts."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.infer import infer_node
from convertkit.errors import ModelFileError


class NodeInputs:
    """A converter's view of its node's IR inputs. Needs ``graph``, ``inputs`` (IR tensor names by
    port), ``name`` (for the IR ops it adds) and ``error(message)``."""

    graph: Graph
    inputs: list[str]
    name: str
    error: Callable[..., ModelFileError]
    STATIC_HINT = "give the model input a static shape"
    """What to suggest when a converter needs sizes the model leaves symbolic (per frontend)."""

    def input(self, i: int) -> str:
        if i >= len(self.inputs):
            raise self.error(f"needs at least {i + 1} inputs, has {len(self.inputs)}")
        return self.inputs[i]

    def shape(self, i: int) -> tuple:
        return self.graph.tensor(self.input(i)).shape

    def rank(self, i: int) -> int:
        return len(self.shape(i))

    def dtype(self, i: int) -> np.dtype:
        return self.graph.tensor(self.input(i)).dtype

    def static_dims(self, i: int, axes: Sequence[int], why: str) -> list[int]:
        """Input i's sizes along ``axes``, which ``why`` needs known at conversion time."""
        shape = self.shape(i)
        dims = [shape[a] for a in axes]
        if any(not isinstance(d, int) for d in dims):
            raise self.error(f"{why} needs static sizes, but input {i} has shape {list(shape)}",
                             hint=self.STATIC_HINT)
        return dims

    def add_op(self, op: str, inputs: Sequence[str | None], outs: list[str],
               attrs: dict | None = None) -> str:
        """Add an IR op named after the node being converted (trailing absent inputs dropped), infer its
        types, and return its first output."""
        ins = list(inputs)
        while ins and ins[-1] is None:
            ins.pop()
        node = self.graph.add_node(op, ins, outs, attrs or {}, name=self.name)
        infer_node(self.graph, node)
        return outs[0]

    def value(self, i: int) -> np.ndarray | None:
        """Constant value of input i, or None if computed at run time."""
        return self.graph.const_value(self.input(i))
