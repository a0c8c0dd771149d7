"""The canonical IR: op nodes and tensor nodes in one networkx multigraph.

Edges run tensor -> op (key and ``port`` = input index) and op -> tensor (output index), so input order
is part of the graph. Constants are tensors holding a numpy array. Passes change the graph only through
the mutation methods below, which keep the networkx structure and the name tables in step.
"""
from __future__ import annotations

import copy as _copy
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import networkx as nx
import numpy as np

from convertkit.errors import InternalError

Dim = int | str
"""A dimension: a non-negative int, or a name for a symbolic one (such as the batch)."""
Shape = tuple[Dim, ...]


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point). ``axis`` set means per-channel."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        self.scale = np.asarray(self.scale, dtype=np.float32)
        self.zero_point = np.asarray(self.zero_point)


@dataclass(eq=False)
class Tensor:
    """A value in the graph: an edge in a dataflow sense, a node in the networkx sense."""

    name: str
    dtype: np.dtype | None = None
    shape: Shape | None = None
    value: np.ndarray | None = None
    quant: QuantParams | None = None

    @property
    def is_const(self) -> bool:
        return self.value is not None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def size(self) -> int | None:
        """Number of elements, or None if any dimension is symbolic."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.is_static else None

    def __repr__(self) -> str:
        kind = "const " if self.is_const else ""
        return f"<{kind}{self.name}: {self.dtype} {list(self.shape) if self.shape is not None else '?'}>"


@dataclass(eq=False)
class Node:
    """One operation. ``op`` names a schema in the op registry; ``attrs`` hold its attributes."""

    name: str
    op: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<{self.op} {self.name}>"


def _t(name: str) -> tuple[str, str]:
    return ("t", name)


def _o(name: str) -> tuple[str, str]:
    return ("op", name)


class Graph:
    """A dataflow graph with ordered inputs and outputs.

    Tensors are addressed by name (``str``), ops by their :class:`Node`. Iteration order is always
    deterministic: insertion order, and :meth:`topo_order` breaks ties by insertion order too, so the
    same model always produces byte-identical files.
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.nx = nx.MultiDiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, Any] = {}
        self._seq = itertools.count()
        self._names: dict[str, int] = {}
        self._topo: list[Node] | None = None

    # ---------------------------------------------------------------- lookup
    def tensor(self, name: str) -> Tensor:
        try:
            return self.nx._node[_t(name)]["obj"]
        except KeyError:
            raise KeyError(f"no tensor named {name!r}") from None

    def has_tensor(self, name: str) -> bool:
        return _t(name) in self.nx

    def node(self, name: str) -> Node:
        try:
            return self.nx._node[_o(name)]["obj"]
        except KeyError:
            raise KeyError(f"no node named {name!r}") from None

    def has_node(self, name: str) -> bool:
        return _o(name) in self.nx

    @property
    def nodes(self) -> list[Node]:
        """Op nodes in topological order."""
        return self.topo_order()

    @property
    def tensors(self) -> Iterator[Tensor]:
        for key, data in self.nx.nodes(data=True):
            if key[0] == "t":
                yield data["obj"]

    # The accessors below read networkx's adjacency dicts (``_pred``/``_succ``: node -> neighbour ->
    # {edge key: data}) directly: its view objects cost ~10x more, and these run for every node.
    def inputs_of(self, node: Node) -> list[str | None]:
        """Input tensor names by port; None marks an absent optional input."""
        pred = self.nx._pred[_o(node.name)]
        if not pred:
            return []
        by_port = {k: u[1] for u, keys in pred.items() for k in keys}
        return [by_port.get(p) for p in range(max(by_port) + 1)]

    def outputs_of(self, node: Node) -> list[str]:
        pairs = sorted((k, v[1]) for v, keys in self.nx._succ[_o(node.name)].items() for k in keys)
        return [name for _, name in pairs]

    def producer(self, tensor: str) -> Node | None:
        for key in self.nx._pred[_t(tensor)]:
            return self.nx._node[key]["obj"]
        return None

    def consumers(self, tensor: str) -> list[tuple[Node, int]]:
        """(node, input port) for every use, in insertion order of the consuming nodes."""
        nodes = self.nx._node
        uses = [(nodes[v]["seq"], k, v) for v, keys in self.nx._succ[_t(tensor)].items() for k in keys]
        uses.sort()
        return [(nodes[v]["obj"], k) for _, k, v in uses]

    def is_graph_output(self, tensor: str) -> bool:
        return tensor in self.outputs

    def const_value(self, tensor: str | None) -> np.ndarray | None:
        """The constant value of a tensor, or None if it is absent or computed at run time."""
        if tensor is None or not self.has_tensor(tensor):
            return None
        return self.tensor(tensor).value

    # -------------------------------------------------------------- naming
    def unique_name(self, base: str) -> str:
        """A name no tensor or node uses yet, derived from ``base``."""
        if not self.has_tensor(base) and not self.has_node(base):
            return base
        n = self._names.get(base, 0)
        while True:
            n += 1
            cand = f"{base}_{n}"
            if not self.has_tensor(cand) and not self.has_node(cand):
                self._names[base] = n
                return cand

    # ------------------------------------------------------------ mutation
    def _changed(self) -> None:
        self._topo = None

    def add_tensor(self, name: str, dtype: Any = None, shape: Sequence[Dim] | None = None,
                   value: np.ndarray | None = None, quant: QuantParams | None = None) -> str:
        if self.has_tensor(name):
            raise InternalError(f"tensor {name!r} already exists")
        if value is not None:
            value = np.asarray(value)
            dtype, shape = value.dtype, value.shape
        t = Tensor(name, np.dtype(dtype) if dtype is not None else None,
                   tuple(shape) if shape is not None else None, value, quant)
        self.nx.add_node(_t(name), obj=t, seq=next(self._seq))
        return name

    def add_const(self, value: Any, name: str = "const", dtype: Any = None) -> str:
        """Add a constant tensor under a fresh name derived from ``name``; returns that name."""
        arr = np.asarray(value, dtype=dtype)
        return self.add_tensor(self.unique_name(name), value=arr)

    def add_input(self, name: str, dtype: Any, shape: Sequence[Dim] | None) -> str:
        self.add_tensor(name, dtype, shape)
        self.inputs.append(name)
        return name

    def add_node(self, op: str, inputs: Sequence[str | None], outputs: Sequence[str],
                 attrs: dict[str, Any] | None = None, name: str | None = None) -> Node:
        """Add an op. Inputs must exist (None = absent optional input); missing outputs are created
        with unknown type, for shape inference to fill in."""
        node = Node(self.unique_name(name or op), op, dict(attrs or {}))
        key = _o(node.name)
        self.nx.add_node(key, obj=node, seq=next(self._seq))
        for port, tname in enumerate(inputs):
            if tname is None:
                continue
            if not self.has_tensor(tname):
                raise InternalError(f"node {node.name}: input tensor {tname!r} does not exist")
            self.nx.add_edge(_t(tname), key, key=port)
        for port, tname in enumerate(outputs):
            if not self.has_tensor(tname):
                self.add_tensor(tname)
            elif self.producer(tname) is not None:
                raise InternalError(f"node {node.name}: tensor {tname!r} already has a producer")
            self.nx.add_edge(key, _t(tname), key=port)
        self._changed()
        return node

    def remove_node(self, node: Node, keep_outputs: bool = False) -> None:
        """Remove an op and (unless ``keep_outputs``) the tensors it produced."""
        outs = self.outputs_of(node)
        self.nx.remove_node(_o(node.name))
        if not keep_outputs:
            for t in outs:
                if self.nx.out_degree(_t(t)) or t in self.outputs:
                    raise InternalError(f"removing {node.name}: its output {t!r} is still used")
                self.nx.remove_node(_t(t))
        self._changed()

    def remove_tensor(self, name: str) -> None:
        if self.nx.degree(_t(name)) or name in self.outputs or name in self.inputs:
            raise InternalError(f"tensor {name!r} is still connected")
        self.nx.remove_node(_t(name))

    def set_input(self, node: Node, port: int, tensor: str | None) -> None:
        """Connect ``tensor`` to input ``port`` of ``node`` (None disconnects it)."""
        key = _o(node.name)
        for u, _, k in list(self.nx.in_edges(key, keys=True)):
            if k == port:
                self.nx.remove_edge(u, key, key=k)
        if tensor is not None:
            self.nx.add_edge(_t(tensor), key, key=port)
        self._changed()

    def set_inputs(self, node: Node, inputs: Sequence[str | None]) -> None:
        key = _o(node.name)
        self.nx.remove_edges_from(list(self.nx.in_edges(key, keys=True)))
        for port, t in enumerate(inputs):
            if t is not None:
                self.nx.add_edge(_t(t), key, key=port)
        self._changed()

    def replace_uses(self, old: str, new: str) -> None:
        """Rewire every consumer of ``old`` (and graph outputs naming it) to ``new``."""
        for _, v, k in list(self.nx.out_edges(_t(old), keys=True)):
            self.nx.remove_edge(_t(old), v, key=k)
            self.nx.add_edge(_t(new), v, key=k)
        self.outputs = [new if o == old else o for o in self.outputs]
        self._changed()

    def rename_tensor(self, old: str, new: str, *, replace_isolated: bool = False) -> None:
        """Give a tensor a new name, keeping every connection.

        With ``replace_isolated``, an existing tensor ``new`` that nothing produces or consumes
        (say, a graph output whose producer was just removed) gives up its name.
        """
        if old == new:
            return
        if self.has_tensor(new):
            if not replace_isolated or self.nx.degree(_t(new)):
                raise InternalError(f"cannot rename {old!r}: {new!r} exists")
            self.nx.remove_node(_t(new))
        t = self.tensor(old)
        data = self.nx.nodes[_t(old)]
        self.nx.add_node(_t(new), obj=t, seq=data["seq"])
        for u, _, k in list(self.nx.in_edges(_t(old), keys=True)):
            self.nx.add_edge(u, _t(new), key=k)
        for _, v, k in list(self.nx.out_edges(_t(old), keys=True)):
            self.nx.add_edge(_t(new), v, key=k)
        self.nx.remove_node(_t(old))
        t.name = new
        self.inputs = [new if i == old else i for i in self.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]
        self._changed()

    def replace_node(self, old: Node, op: str, inputs: Sequence[str | None],
                     attrs: dict[str, Any] | None = None) -> Node:
        """Swap an op for another producing the same output tensors (same names, same consumers)."""
        outs = self.outputs_of(old)
        name = old.name
        self.remove_node(old, keep_outputs=True)
        return self.add_node(op, inputs, outs, attrs, name=name)

    def remove_dead(self) -> int:
        """Remove ops and tensors that no graph output depends on. Returns how many ops went."""
        live: set = set()
        stack = [_t(o) for o in self.outputs]
        while stack:
            key = stack.pop()
            if key in live:
                continue
            live.add(key)
            stack.extend(self.nx.predecessors(key))
            if key[0] == "op":  # a live op keeps all its outputs, so its output ports stay dense
                live.update(self.nx.successors(key))
        keep_inputs = {_t(i) for i in self.inputs}
        dead = [k for k in self.nx.nodes if k not in live and k not in keep_inputs]
        n_ops = sum(1 for k in dead if k[0] == "op")
        self.nx.remove_nodes_from(dead)
        if dead:
            self._changed()
        return n_ops

    # ---------------------------------------------------------- traversal
    def topo_order(self) -> list[Node]:
        """Ops in dependency order; ties broken by insertion order, so the order is stable."""
        if self._topo is not None:
            return list(self._topo)
        g = self.nx
        indeg: dict = {}
        heap: list = []
        for key, data in g.nodes(data=True):
            if key[0] != "op":
                continue
            preds = {p for t in g.predecessors(key) for p in g.predecessors(t)}
            indeg[key] = len(preds)
            if not preds:
                heap.append((data["seq"], key))
        heapq.heapify(heap)
        order: list[Node] = []
        while heap:
            _, key = heapq.heappop(heap)
            order.append(g.nodes[key]["obj"])
            succ = {c for t in g.successors(key) for c in g.successors(t)}
            for c in succ:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(heap, (g.nodes[c]["seq"], c))
        if len(order) != len(indeg):
            stuck = sorted(k[1] for k, d in indeg.items() if d > 0)[:5]
            raise InternalError(f"graph has a cycle through {', '.join(stuck)}")
        self._topo = order
        return list(order)

    def __len__(self) -> int:
        return sum(1 for k in self.nx.nodes if k[0] == "op")

    def ops_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self.topo_order():
            hist[n.op] = hist.get(n.op, 0) + 1
        return dict(sorted(hist.items()))

    def copy(self) -> "Graph":
        """A deep copy (constant arrays are shared: passes never mutate arrays in place)."""
        g = Graph(self.name)
        g.nx = nx.MultiDiGraph()
        for key, data in self.nx.nodes(data=True):
            obj = _copy.copy(data["obj"])
            if isinstance(obj, Node):
                obj.attrs = _copy.deepcopy(obj.attrs)
            g.nx.add_node(key, obj=obj, seq=data["seq"])
        g.nx.add_edges_from(self.nx.edges(keys=True))
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.metadata = _copy.deepcopy(self.metadata)
        g._seq = itertools.count(next(_copy.copy(self._seq)))
        g._names = dict(self._names)
        return g

    # ---------------------------------------------------------- validation
    def validate(self, require_types: bool = True) -> None:
        """Check the IR invariants; raises InternalError naming the first broken one.

        Acyclic; every tensor has at most one producer; input ports unique and within the schema's
        arity, absent ones optional; output ports dense; graph inputs have no producer; every used
        tensor is produced, a constant or a graph input; with ``require_types``, dtypes and ranks known.
        """
        from convertkit.canonical_ir.ops import get_schema

        self.topo_order()
        g = self.nx
        for name in self.inputs:
            if not self.has_tensor(name) or g.in_degree(_t(name)):
                raise InternalError(f"graph input {name!r} is missing or produced by a node")
            if self.tensor(name).is_const:
                raise InternalError(f"graph input {name!r} is a constant")
        for name in self.outputs:
            if not self.has_tensor(name):
                raise InternalError(f"graph output {name!r} does not exist")
        inputs = set(self.inputs)
        for key, data in g.nodes(data=True):
            obj = data["obj"]
            if key[0] == "t":
                if g.in_degree(key) > 1:
                    raise InternalError(f"tensor {obj.name!r} has {g.in_degree(key)} producers")
                used = g.out_degree(key) or obj.name in self.outputs
                if used and not g.in_degree(key) and not obj.is_const and obj.name not in inputs:
                    raise InternalError(f"tensor {obj.name!r} is used but never produced")
                if require_types and used and (obj.dtype is None or obj.shape is None):
                    raise InternalError(f"tensor {obj.name!r} has no inferred dtype/shape")
                if obj.is_const and (obj.shape != obj.value.shape or obj.dtype != obj.value.dtype):
                    raise InternalError(f"constant {obj.name!r}: type does not match its value")
                continue
            schema = get_schema(obj.op)
            ins = self.inputs_of(obj)
            in_ports = [k for _, _, k in g.in_edges(key, keys=True)]
            if len(set(in_ports)) != len(in_ports):
                raise InternalError(f"node {obj.name}: an input port is connected twice")
            problem = schema.check_arity(ins, len(self.outputs_of(obj)))
            if problem:
                raise InternalError(f"node {obj.name} ({obj.op}): {problem}")
            out_ports = sorted(k for _, _, k in g.out_edges(key, keys=True))
            if out_ports != list(range(len(out_ports))):
                raise InternalError(f"node {obj.name}: output ports {out_ports} are not dense")

    # ------------------------------------------------------------- display
    def summary(self) -> str:
        """A readable listing of the graph, one op a line (used by --dump-after)."""
        lines = [f"graph {self.name}"]
        for name in self.inputs:
            lines.append(f"  input  {self.tensor(name)!r}")
        n_const = sum(1 for t in self.tensors if t.is_const)
        lines.append(f"  ({n_const} constants)")
        for node in self.topo_order():
            ins = ", ".join(i if i is not None else "-" for i in self.inputs_of(node))
            outs = ", ".join(repr(self.tensor(o)) for o in self.outputs_of(node))
            attrs = ", ".join(f"{k}={_short(v)}" for k, v in node.attrs.items())
            lines.append(f"  {node.name}: {node.op}({ins}){' {' + attrs + '}' if attrs else ''} -> {outs}")
        for name in self.outputs:
            lines.append(f"  output {self.tensor(name)!r}")
        return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"array{list(v.shape)}" if v.size > 8 else repr(v.tolist())
    return repr(v)


def iter_const_inputs(graph: Graph, node: Node) -> Iterable[tuple[int, np.ndarray]]:
    for port, name in enumerate(graph.inputs_of(node)):
        value = graph.const_value(name)
        if value is not None:
            yield port, value
