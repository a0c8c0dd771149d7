"""A tiny rule engine: local rewrites applied to a fixed point in time linear in the graph size.

A rule is a small class::

    class DropIdentityTranspose(Rule):
        ops = frozenset({"Transpose"})                # the pattern's root op(s)
        def check(self, rw, node):                    # None if it applies, else why not
            return None if is_identity(rw.attrs(node)["perm"]) else "perm is not the identity"
        def rewrite(self, rw, node):
            rw.bypass(node)

:func:`apply_rules` visits every node once, in topological order, and after each rewrite revisits only
the nodes next to what changed (the new nodes, their consumers and producers, and the other consumers
of their inputs). Each rewrite touches a bounded neighbourhood, so the whole run is linear in the graph
size; a rule set that keeps rewriting (a cycle between two rules) is stopped and reported as a bug.
``check`` returning a reason instead of False is what :func:`explain` prints when a rule did not fire.
"""
from __future__ import annotations

from collections import deque
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import InferContext, get_schema
from convertkit.errors import InternalError


class Rule:
    """One local rewrite. Subclasses set ``ops`` and implement ``check`` and ``rewrite``."""

    ops: ClassVar[frozenset[str]] = frozenset()
    """Op types the pattern is rooted at; the engine offers the rule only nodes of these types."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def check(self, rw: "Rewriter", node: Node) -> str | None:
        """None if the rule applies to ``node``, else a short reason why it does not."""
        raise NotImplementedError

    def rewrite(self, rw: "Rewriter", node: Node) -> None:
        """Apply the rule (only called after ``check`` returned None)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class Rewriter:
    """The graph as rules see it: mutation helpers that keep types inferred and record what changed."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._touched: list[str] = []

    # ------------------------------------------------------------------ reading
    def attrs(self, node: Node) -> dict[str, Any]:
        """The node's attributes with schema defaults filled in."""
        return get_schema(node.op).resolve_attrs(node.attrs, where=f"node {node.name}")

    def input(self, node: Node, port: int) -> str | None:
        ins = self.graph.inputs_of(node)
        return ins[port] if port < len(ins) else None

    def const(self, node: Node, port: int) -> np.ndarray | None:
        return self.graph.const_value(self.input(node, port))

    def shape(self, tensor: str) -> tuple | None:
        return self.graph.tensor(tensor).shape

    def producer_op(self, tensor: str | None) -> Node | None:
        return None if tensor is None else self.graph.producer(tensor)

    def single_use(self, tensor: str) -> bool:
        """Used by exactly one node input and not a graph output (so its producer may be changed)."""
        return len(self.graph.consumers(tensor)) == 1 and not self.graph.is_graph_output(tensor)

    def is_internal(self, tensor: str) -> bool:
        """Produced by a node, and neither a graph input, a graph output nor a constant."""
        g = self.graph
        return (g.producer(tensor) is not None and not g.is_graph_output(tensor)
                and tensor not in g.inputs)

    # ----------------------------------------------------------------- writing
    def add(self, op: str, inputs: Sequence[str | None], attrs: dict[str, Any] | None = None, *,
            name: str | None = None, outputs: Sequence[str] | None = None, n_outputs: int = 1) -> list[str]:
        """Add a node (outputs get fresh names unless given) with its output types inferred."""
        base = name or op.lower()
        if outputs is None:  # reserve the names before the node takes its own
            outputs = [self.graph.add_tensor(self.graph.unique_name(f"{base}_out")) for _ in range(n_outputs)]
        outs = list(outputs)
        node = self.graph.add_node(op, inputs, outs, attrs, name=base)
        self.infer(node)
        return outs

    def add1(self, op: str, inputs: Sequence[str | None], attrs: dict[str, Any] | None = None, *,
             name: str | None = None) -> str:
        """Add a single-output node; returns its output name."""
        return self.add(op, inputs, attrs, name=name)[0]

    def constant(self, value: Any, name: str = "const", dtype: Any = None) -> str:
        return self.graph.add_const(np.asarray(value, dtype=dtype), name)

    def replace(self, node: Node, op: str, inputs: Sequence[str | None],
                attrs: dict[str, Any] | None = None) -> Node:
        """Swap ``node`` for another op writing the same output tensors (same name and consumers)."""
        old_inputs = self.graph.inputs_of(node)
        new = self.graph.replace_node(node, op, inputs, attrs)
        self.infer(new)
        for t in old_inputs:
            if t is not None:
                self.drop_if_dead(t)
        return new

    def set_attrs(self, node: Node, attrs: dict[str, Any]) -> None:
        node.attrs = dict(attrs)
        self.infer(node)

    def set_input(self, node: Node, port: int, tensor: str | None) -> None:
        old = self.input(node, port)
        self.graph.set_input(node, port, tensor)
        self.infer(node)
        if old is not None and old != tensor:
            self.drop_if_dead(old)

    def infer(self, node: Node) -> None:
        """Infer the output types of ``node`` now, so later checks see them; marks it touched."""
        schema = get_schema(node.op)
        types = schema.infer(InferContext(self.graph, node, schema))
        for name, (dtype, shape) in zip(self.graph.outputs_of(node), types):
            t = self.graph.tensor(name)
            t.dtype = dtype
            t.shape = tuple(int(d) if not isinstance(d, str) else d for d in shape)
        self._touched.append(node.name)

    def fold(self, node: Node, values: Sequence[np.ndarray]) -> None:
        """Replace ``node`` by constants: its output tensors keep their names and take ``values``."""
        g = self.graph
        outs, ins = g.outputs_of(node), g.inputs_of(node)
        for o in outs:
            self._touched.extend(c.name for c, _ in g.consumers(o))
        g.remove_node(node, keep_outputs=True)
        for name, value in zip(outs, values):
            arr = np.asarray(value)
            t = g.tensor(name)
            t.value, t.dtype, t.shape = arr, arr.dtype, arr.shape
            self.drop_if_dead(name)
        for i in ins:
            if i is not None:
                self.drop_if_dead(i)

    def can_substitute(self, old: str, new: str) -> bool:
        """Whether :meth:`substitute` can make ``old``'s uses read ``new`` without an Identity."""
        g = self.graph
        if not g.is_graph_output(old):
            return True
        producer = g.producer(old)
        others_unused = producer is None or all(
            not g.consumers(o) and not g.is_graph_output(o) for o in g.outputs_of(producer) if o != old)
        return self.is_internal(new) and others_unused

    def substitute(self, old: str, new: str) -> None:
        """Every use of ``old`` now reads ``new``; a graph output keeps its name (``new`` takes it)."""
        g = self.graph
        for node, _ in g.consumers(old):
            self._touched.append(node.name)
        if not g.is_graph_output(old):
            g.replace_uses(old, new)
            self.drop_if_dead(old)
            return
        if not self.is_internal(new):
            raise InternalError(f"cannot substitute graph output {old!r} by {new!r}")
        g.replace_uses(old, new)          # graph outputs now list ``new``
        self.drop_if_dead(old)
        g.rename_tensor(new, old, replace_isolated=True)
        self._touched.append(g.producer(old).name)

    def bypass(self, node: Node, port: int = 0) -> None:
        """Remove a node whose output 0 equals its input ``port``."""
        self.substitute(self.graph.outputs_of(node)[0], self.graph.inputs_of(node)[port])

    def drop_if_dead(self, tensor: str) -> None:
        """Remove ``tensor`` if nothing uses it, and its producer (recursively) once no output is used."""
        g = self.graph
        stack = [tensor]
        while stack:
            name = stack.pop()
            if not g.has_tensor(name) or self._used(name) or name in g.inputs:
                continue
            node = g.producer(name)
            if node is None:
                g.remove_tensor(name)
                continue
            outs = g.outputs_of(node)
            if any(self._used(o) for o in outs):
                continue
            ins = [i for i in g.inputs_of(node) if i is not None]
            for i in ins:
                if not g.tensor(i).is_const:  # a shared constant's users are not affected
                    self._touched.extend(other.name for other, _ in g.consumers(i) if other is not node)
            g.remove_node(node)
            stack.extend(ins)

    def _used(self, tensor: str) -> bool:
        """Read by a node or a graph output (O(1), unlike listing the consumers of a shared constant)."""
        return bool(self.graph.nx._succ[("t", tensor)]) or self.graph.is_graph_output(tensor)

    # ------------------------------------------------------------ bookkeeping
    def take_touched(self) -> list[str]:
        """Nodes to revisit: those changed since the last call and their neighbours."""
        g = self.graph
        seen: dict[str, None] = {}
        for name in self._touched:
            if not g.has_node(name):
                continue
            node = g.node(name)
            seen[name] = None
            for t in g.outputs_of(node):
                for c, _ in g.consumers(t):
                    seen[c.name] = None
            for t in g.inputs_of(node):
                if t is None or g.tensor(t).is_const:
                    continue
                p = g.producer(t)
                if p is not None:
                    seen[p.name] = None
                for c, _ in g.consumers(t):
                    seen[c.name] = None
        self._touched.clear()
        return list(seen)


REWRITES_PER_NODE = 64
"""A rule set that rewrites more often than this per node is cycling: a bug, reported as such."""


def apply_rules(graph: Graph, rules: Iterable[Rule], *, trace: list[str] | None = None) -> int:
    """Apply ``rules`` until none matches; returns the number of rewrites.

    Rules are tried in the given order on each visited node; the first that applies rewrites it.
    ``trace`` (a list) collects "rule: node" for every rewrite, for debugging.
    """
    by_op: dict[str, list[Rule]] = {}
    for rule in rules:
        for op in rule.ops:
            by_op.setdefault(op, []).append(rule)
    rw = Rewriter(graph)
    queue: deque[str] = deque(n.name for n in graph.topo_order() if n.op in by_op)
    queued = set(queue)
    budget = REWRITES_PER_NODE * (len(queue) + 16)
    count = 0
    while queue:
        name = queue.popleft()
        queued.discard(name)
        if not graph.has_node(name):
            continue
        node = graph.node(name)
        for rule in by_op.get(node.op, ()):
            if rule.check(rw, node) is not None:
                continue
            rule.rewrite(rw, node)
            count += 1
            if trace is not None:
                trace.append(f"{rule.name}: {name}")
            if count > budget:
                raise InternalError(f"rules do not converge (last: {rule.name} on {name})")
            for other in rw.take_touched():
                if other not in queued and graph.node(other).op in by_op:
                    queue.append(other)
                    queued.add(other)
            break
        else:
            rw.take_touched()
    return count


def explain(graph: Graph, rules: Iterable[Rule], node: Node | str) -> dict[str, str | None]:
    """Why each rule rooted at ``node``'s op does (None) or does not apply to it."""
    node = graph.node(node) if isinstance(node, str) else node
    rw = Rewriter(graph)
    return {r.name: r.check(rw, node) for r in rules if node.op in r.ops}
