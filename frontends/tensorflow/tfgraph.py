"""A frozen TensorFlow GraphDef as plain Python objects, and the part of it a conversion needs.

``TFGraph`` decodes every NodeDef once (attributes into Python values, inputs into ``node:index``
tensor references without control edges). :func:`select` cuts the graph at the requested inputs
(any tensor, not only a Placeholder) and keeps what the outputs depend on; :func:`check_supported`
then names every op the frontend cannot convert, in one error, with TF1 while loops and TF2 control
flow reported as the constructs they are rather than as their dozen primitive ops.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convertkit.errors import ModelFileError, UnsupportedOpError, UsageError

# DataType enum values (tensorflow/core/framework/types.proto), so decoding needs no TF import.
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32), 4: np.dtype(np.uint8),
    5: np.dtype(np.int16), 6: np.dtype(np.int8), 9: np.dtype(np.int64), 10: np.dtype(np.bool_),
    17: np.dtype(np.uint16), 19: np.dtype(np.float16), 22: np.dtype(np.uint32), 23: np.dtype(np.uint64),
}
TF_TYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource",
                 21: "variant", 11: "qint8", 12: "quint8", 13: "qint32"}


def np_dtype(code: int, where: str = "") -> np.dtype:
    """The numpy dtype of a TF DataType code; types the IR lacks (string, resource...) raise."""
    code = int(code) % 100  # *_REF types are the value type + 100
    if code in TF_DTYPES:
        return TF_DTYPES[code]
    raise ModelFileError(f"tensors of type {TF_TYPE_NAMES.get(code, code)} are not supported",
                         where=where or None,
                         hint="convertkit takes numeric tensors; cut the graph after the string or resource "
                              "processing with --inputs TENSOR=DIMS")


def type_name(code: int) -> str:
    code = int(code) % 100
    return TF_DTYPES[code].name if code in TF_DTYPES else TF_TYPE_NAMES.get(code, f"type{code}")


@dataclass(frozen=True)
class TFType:
    """A ``type`` attribute (kept distinct from an int attribute)."""

    code: int


@dataclass
class TFNode:
    name: str
    op: str
    inputs: list[str]
    """Data inputs as tensor references ``node:index``; control inputs (``^node``) are dropped."""
    attrs: dict[str, Any] = field(default_factory=dict)


def ref(name: str) -> str:
    """Normalise a tensor name: ``x`` -> ``x:0``; ``x:1`` unchanged."""
    name = name.lstrip("^")
    node, sep, idx = name.rpartition(":")
    if sep and idx.isdigit():
        return name
    return f"{name}:0"


def split_ref(r: str) -> tuple[str, int]:
    node, _, idx = r.rpartition(":")
    return node, int(idx)


def _shape(proto: Any) -> list[int | None] | None:
    if proto.unknown_rank:
        return None
    return [int(d.size) if d.size >= 0 else None for d in proto.dim]


def decode_attr(value: Any) -> Any:
    """An AttrValue as a Python value: str, int, float, bool, TFType, shape list, ndarray or list."""
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode("utf-8", "replace")
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "type":
        return TFType(int(value.type))
    if kind == "shape":
        return _shape(value.shape)
    if kind == "tensor":
        return tensor_value(value.tensor)
    if kind == "func":
        return value.func.name
    if kind == "list":
        lst = value.list
        for name in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
            items = getattr(lst, name)
            if len(items):
                if name == "s":
                    return [x.decode("utf-8", "replace") for x in items]
                if name == "type":
                    return [TFType(int(x)) for x in items]
                if name == "shape":
                    return [_shape(x) for x in items]
                if name == "tensor":
                    return [tensor_value(x) for x in items]
                if name == "func":
                    return [x.name for x in items]
                return list(items)
        return []
    return None


def tensor_value(proto: Any) -> np.ndarray:
    """A TensorProto as a numpy array (TensorFlow's own decoder: it knows every packing)."""
    import tensorflow as tf

    return np.asarray(tf.make_ndarray(proto))


CALLS = ("PartitionedCall", "StatefulPartitionedCall")


def inline_functions(graph_def: Any) -> Any:
    """Inline the function calls that TensorFlow's own inliner leaves in a frozen graph (those marked
    for XLA, such as Keras 3's grouped convolution on CPU). Each call's body is copied in under the
    call's name, its arguments wired to the call's inputs and its results to the call's consumers."""
    lib = {f.signature.name: f for f in graph_def.library.function}
    if not any(n.op in CALLS and n.attr["f"].func.name in lib for n in graph_def.node):
        return graph_def
    from tensorflow.core.framework import graph_pb2
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    for _ in range(16):  # nested calls: one level per round
        out = graph_pb2.GraphDef()
        out.versions.CopyFrom(graph_def.versions)
        out.library.CopyFrom(graph_def.library)
        results: dict[str, str] = {}
        inlined = False
        for node in graph_def.node:
            fname = node.attr["f"].func.name if node.op in CALLS else ""
            if fname not in lib:
                out.node.add().CopyFrom(node)
                continue
            inlined = True
            fdef = lib[fname]
            body, flat = function_def_to_graph_def(fdef)
            args = {a.name: i for i, a in enumerate(fdef.signature.input_arg)}
            data = [i for i in node.input if not i.startswith("^")]
            prefix = f"{node.name}/"

            def wire(name: str) -> str:
                if name.startswith("^"):
                    return "^" + prefix + name[1:]
                src = name.split(":")[0]
                return data[args[src]] if src in args else prefix + name

            for bn in body.node:
                if bn.op == "Placeholder" and bn.name in args:
                    continue
                copy = out.node.add()
                copy.CopyFrom(bn)
                copy.name = prefix + bn.name
                del copy.input[:]
                copy.input.extend(wire(i) for i in bn.input if not (i.startswith("^") and i[1:] in args))
            for k, arg in enumerate(fdef.signature.output_arg):
                inner = flat.get(fdef.ret[arg.name], fdef.ret[arg.name])
                results[f"{node.name}:{k}"] = wire(inner)
        for n in out.node:
            fixed = [results.get(ref(i), i) if not i.startswith("^") else i for i in n.input]
            fixed = [i for i in fixed if not (i.startswith("^") and f"{i[1:]}:0" in results)]
            del n.input[:]
            n.input.extend(fixed)
        graph_def = out
        if not inlined:
            break
    return graph_def


class TFGraph:
    """The nodes of a GraphDef, by name and in file order."""

    def __init__(self, graph_def: Any, source: str) -> None:
        self.source = source
        self.nodes: dict[str, TFNode] = {}
        graph_def = inline_functions(graph_def)
        for nd in graph_def.node:
            attrs = {k: decode_attr(v) for k, v in nd.attr.items() if not k.startswith("_")}
            inputs = [ref(i) for i in nd.input if not i.startswith("^")]
            self.nodes[nd.name] = TFNode(nd.name, nd.op, inputs, attrs)

    def node_of(self, r: str) -> TFNode | None:
        return self.nodes.get(split_ref(r)[0])

    def consumers(self) -> dict[str, list[TFNode]]:
        out: dict[str, list[TFNode]] = {}
        for n in self.nodes.values():
            for r in n.inputs:
                out.setdefault(r, []).append(n)
        return out

    def placeholders(self) -> list[TFNode]:
        return [n for n in self.nodes.values() if n.op == "Placeholder"]

    def sinks(self) -> list[TFNode]:
        """Nodes whose outputs nothing reads (candidate outputs), minus bookkeeping ops."""
        used = {split_ref(r)[0] for n in self.nodes.values() for r in n.inputs}
        skip = {"NoOp", "Const", "Placeholder", "Assert", "SaveV2", "RestoreV2", "VarHandleOp"}
        return [n for n in self.nodes.values() if n.name not in used and n.op not in skip]


def describe_placeholder(n: TFNode) -> str:
    dt = n.attrs.get("dtype")
    shape = n.attrs.get("shape")
    dims = "?" if shape is None else "x".join("?" if d is None else str(d) for d in shape) or "scalar"
    return f"{n.name}:0 ({type_name(dt.code) if isinstance(dt, TFType) else '?'} {dims})"


# ---------------------------------------------------------------------------------- selection
def select(g: TFGraph, input_refs: Iterable[str], output_refs: Iterable[str]) -> list[TFNode]:
    """The nodes the outputs depend on when the graph is cut at ``input_refs``, in file order.

    A Placeholder reached without being cut is an error naming every such placeholder, and a reference
    to a node the graph lacks is a truncated-file error."""
    cut = set(input_refs)
    needed: dict[str, TFNode] = {}
    stack = [r for r in output_refs if r not in cut]
    missing_nodes: list[str] = []
    while stack:
        r = stack.pop()
        name, _ = split_ref(r)
        if name in needed:
            continue
        node = g.nodes.get(name)
        if node is None:
            missing_nodes.append(name)
            continue
        needed[name] = node
        stack.extend(i for i in node.inputs if i not in cut)
    if missing_nodes:
        raise ModelFileError(f"the graph refers to node(s) {sorted(set(missing_nodes))[:5]} that it does not "
                             "contain", where=g.source, hint="the file may be truncated")
    uncut = [n for n in needed.values() if n.op == "Placeholder"]
    if uncut:
        names = ", ".join(describe_placeholder(n) for n in uncut)
        raise UsageError(f"the outputs depend on placeholder(s) not given as inputs: {names}",
                         where=g.source, hint="name every placeholder the outputs need in --inputs")
    order = {name: i for i, name in enumerate(g.nodes)}
    return sorted(needed.values(), key=lambda n: order[n.name])


def dependency_order(nodes: list[TFNode], cut: Iterable[str]) -> list[TFNode]:
    """Kahn's order over ``nodes``, ties in file order (GraphDefs need not be sorted). Run after
    :func:`check_supported`, which reports the loops that would make this fail."""
    cut = set(cut)
    needed = {n.name: n for n in nodes}
    deps = {name: {split_ref(r)[0] for r in n.inputs if r not in cut and split_ref(r)[0] in needed}
            for name, n in needed.items()}
    users: dict[str, list[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(name)
    position = {name: i for i, name in enumerate(needed)}
    ready = [(position[n], n) for n, ds in deps.items() if not ds]
    heapq.heapify(ready)
    order: list[TFNode] = []
    remaining = {n: len(ds) for n, ds in deps.items()}
    while ready:
        _, name = heapq.heappop(ready)
        order.append(needed[name])
        for u in users.get(name, []):
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready, (position[u], u))
    if len(order) != len(needed):
        cyclic = sorted(n for n, k in remaining.items() if k > 0)
        raise ModelFileError(f"the graph has a cycle through {', '.join(cyclic[:4])}")
    return order


# ------------------------------------------------------------------------------ support check
TF1_LOOP_OPS = frozenset({"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "RefEnter",
                          "RefExit", "RefMerge", "RefSwitch", "RefNextIteration"})
TF2_CONTROL_FLOW = {
    "While": "While (TF2 while loop; a Keras RNN layer saves as one unless built with unroll=True)",
    "StatelessWhile": "StatelessWhile (TF2 while loop; a Keras RNN layer saves as one unless built "
                      "with unroll=True)",
    "If": "If (TF2 conditional)", "StatelessIf": "StatelessIf (TF2 conditional)",
    "Case": "Case (TF2 conditional)", "StatelessCase": "StatelessCase (TF2 conditional)",
    "PartitionedCall": "PartitionedCall (function call that could not be inlined)",
    "StatefulPartitionedCall": "StatefulPartitionedCall (function call that could not be inlined)",
}
STATEFUL = {
    "VariableV2": "VariableV2 (unfrozen TF1 variable)", "VarHandleOp": "VarHandleOp (unfrozen variable)",
    "ReadVariableOp": "ReadVariableOp (unfrozen variable)",
    "Assign": "Assign (variable update)", "AssignAdd": "AssignAdd (variable update)",
    "AssignSub": "AssignSub (variable update)", "AssignVariableOp": "AssignVariableOp (variable update)",
    "AssignAddVariableOp": "AssignAddVariableOp (variable update)",
}


def _constructs(nodes: list[TFNode]) -> dict[str, list[str]]:
    """TF1 control flow as constructs: one entry per while-loop frame, one for tf.cond."""
    frames = sorted({n.attrs.get("frame_name", "?") for n in nodes if n.op in ("Enter", "RefEnter")})
    out: dict[str, list[str]] = {}
    if frames:
        out["TF1 while loop (Enter/Merge/Switch/NextIteration/Exit; tf.nn.dynamic_rnn and tf.while_loop "
            "save as one)"] = frames
    elif nodes:
        merges = [n.name for n in nodes if n.op in ("Merge", "RefMerge")] or [nodes[0].name]
        out["TF1 cond (Switch/Merge)"] = merges
    return out


def check_supported(nodes: list[TFNode], supported: Callable[[str], bool], source: str) -> None:
    """One error naming every node that cannot be converted (counts and names per op or construct)."""
    missing: dict[str, list[str]] = {}
    flow = [n for n in nodes if n.op in TF1_LOOP_OPS]
    missing.update(_constructs(flow))
    in_loop = any(n.op in ("Enter", "RefEnter", "While", "StatelessWhile") for n in nodes)
    for n in nodes:
        if n.op in TF1_LOOP_OPS:
            continue
        if n.op in TF2_CONTROL_FLOW:
            missing.setdefault(TF2_CONTROL_FLOW[n.op], []).append(n.name)
        elif n.op in STATEFUL:
            missing.setdefault(STATEFUL[n.op], []).append(n.name)
        elif not supported(n.op):
            in_loop_op = in_loop and n.op.startswith(("TensorArray", "TensorList"))
            key = f"{n.op} (the while loop's tensor list)" if in_loop_op else n.op
            missing.setdefault(key, []).append(n.name)
    if missing:
        raise UnsupportedOpError("unsupported TensorFlow ops", missing, where=source,
                                 hint=_hint(missing))


def _hint(missing: dict[str, list[str]]) -> str:
    keys = " ".join(missing)
    if "while loop" in keys and "TF1" in keys:
        return "convertkit converts loop-free graphs: export the RNN unrolled (tf.nn.static_rnn, or Keras " \
               "with unroll=True), or cut the graph before the loop with --inputs/--outputs"
    if "While" in keys:
        return "rebuild the Keras RNN layers with unroll=True (and a fixed sequence length) and save again"
    return "these ops have no canonical equivalent yet; --inputs/--outputs can cut them off the graph"
