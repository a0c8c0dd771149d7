"""ONNX backend: canonical IR -> ModelProto at a chosen opset.

Output is deterministic (topological order with stable tie-breaks, initializers in first-use order),
carries inferred shapes as value_info, and passes ``onnx.checker.check_model(full_check=True)``.
Models whose weights exceed protobuf's 2 GB limit are written with external data beside the file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from convertkit.backends.onnx import handlers  # noqa: F401  (registers the op handlers)
from convertkit.backends.onnx.capabilities import onnx_has
from convertkit.backends.onnx.registry import ExportContext, find_handler
from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.ops import get_schema
from convertkit.errors import ExportError, UnsupportedOpError

DEFAULT_OPSET = 17
MIN_OPSET = 11
EXTERNAL_DATA_THRESHOLD = 2_000_000_000
"""Above this many bytes of weights, data goes to a side file (protobuf cannot exceed 2 GiB)."""


def to_model(graph: Graph, opset: int = DEFAULT_OPSET, producer_version: str = "") -> onnx.ModelProto:
    """Build the ModelProto for ``graph`` at ``opset``; raises one error listing every op it cannot write."""
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset {opset} is not supported", hint=f"choose {MIN_OPSET}..{newest}")
    graph = _legal(graph, opset)  # int8 models travel as QDQ: float ops between (De)QuantizeLinear
    writer = _Writer(graph, opset)
    writer.check_supported()
    writer.write_constant_outputs()
    for node in graph.topo_order():
        writer.write(node)
    return writer.finish(producer_version)


def _legal(graph: Graph, opset: int) -> Graph:
    """``graph`` if ONNX at ``opset`` takes every node, else a legalized copy (NCHW, decomposed)."""
    from convertkit.backends.onnx.capabilities import capabilities
    from convertkit.canonical_ir.passes.legalize import legalized

    return legalized(graph, capabilities(opset))


def export(graph: Graph, path: str | os.PathLike, opset: int = DEFAULT_OPSET, *,
           external_data: bool | None = None, check: bool = True, producer_version: str = "") -> Path:
    """Write ``graph`` to ``path`` atomically (a temp folder, then rename): never a half-written file.

    ``external_data``: None decides by size (over 2 GB of weights), True/False forces it. With external
    data the weights go to ``<name>.data`` beside the model.
    """
    path = Path(path)
    model = to_model(graph, opset, producer_version)
    weights = sum(t.value.nbytes for t in graph.tensors if t.is_const)
    use_external = weights > EXTERNAL_DATA_THRESHOLD if external_data is None else external_data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convertkit-", dir=path.parent))
    try:
        tmp_model = tmp / path.name
        if use_external:
            onnx.save_model(model, tmp_model, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=path.name + ".data", size_threshold=1024)
        else:
            tmp_model.write_bytes(model.SerializeToString(deterministic=True))
        if check:
            try:
                onnx.checker.check_model(str(tmp_model), full_check=True)
            except Exception as e:
                raise ExportError(f"the written model fails onnx.checker: {str(e).splitlines()[0]}",
                                  where=str(path), hint="this is a convertkit bug; please report it") from e
        for f in sorted(tmp.iterdir(), key=lambda p: p.suffix != ".data"):  # data first, model last
            os.replace(f, path.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class _Writer:
    def __init__(self, graph: Graph, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._init_names: set[str] = set()
        self._used: set[str] = set()
        self._node_names: set[str] = set()
        self._const_outputs = {o for o in graph.outputs if graph.tensor(o).is_const}

    # ---- names
    def fresh_name(self, base: str) -> str:
        name, n = base, 0
        while self.graph.has_tensor(name) or name in self._init_names or name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def add_initializer(self, value: np.ndarray, base: str) -> str:
        name = self.fresh_name(base)
        self._add_init(name, value)
        return name

    def _add_init(self, name: str, value: np.ndarray) -> None:
        if name not in self._init_names:
            self.initializers.append(numpy_helper.from_array(np.require(value, requirements="C"), name))
            self._init_names.add(name)

    def add_node(self, op_type: str, inputs: list[str], outputs: list[str], name: str,
                 attrs: dict[str, Any]) -> None:
        for t in inputs:
            if (t and t not in self._const_outputs and self.graph.has_tensor(t)
                    and self.graph.tensor(t).is_const):
                self._add_init(t, self.graph.tensor(t).value)
        unique, n = name, 0
        while unique in self._node_names:
            n += 1
            unique = f"{name}_{n}"
        self._node_names.add(unique)
        attrs = {k: _onnx_attr(v) for k, v in attrs.items()}
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=unique, **attrs))

    # ---- nodes
    def write_constant_outputs(self) -> None:
        """A constant that is a graph output needs a producing node (an initializer is not an output);
        written first, so nodes reading it see it defined, and never also as an initializer."""
        for name in self.graph.outputs:
            if name in self._const_outputs and name not in self._node_names:
                self._node_names.add(name)
                self.nodes.append(helper.make_node("Constant", [], [name], name=name,
                                                   value=numpy_helper.from_array(self.graph.tensor(name).value)))

    def check_supported(self) -> None:
        missing: dict[str, list[str]] = {}
        for node in self.graph.topo_order():
            if find_handler(node.op, self.opset) is None and not onnx_has(node.op, self.opset):
                missing.setdefault(node.op, []).append(node.name)
        if missing:
            raise UnsupportedOpError(f"cannot write these ops at ONNX opset {self.opset}", missing,
                                     hint="a newer --opset may have them")

    def write(self, node: Node) -> None:
        attrs = dict(node.attrs)
        ctx = ExportContext(self.graph, node, attrs, self.opset, self)
        handler = find_handler(node.op, self.opset)
        if handler is not None:
            handler(ctx)
            return
        if attrs.get("layout", "NCHW") != "NCHW":
            raise ctx.error(f"layout {attrs['layout']} has no ONNX form",
                            hint="convert the graph to NCHW first")
        attrs.pop("layout", None)
        _check_attrs(ctx, node.op, attrs, self.opset)
        ctx.make_node(node.op, [ctx.input(i) for i in range(len(ctx.inputs))], **attrs)

    # ---- model
    def finish(self, producer_version: str) -> onnx.ModelProto:
        g = self.graph
        value_info = []
        io = set(g.inputs) | set(g.outputs)
        for node in g.topo_order():
            for name in g.outputs_of(node):
                t = g.tensor(name)
                if name not in io and t.dtype is not None and t.shape is not None:
                    value_info.append(_value_info(name, t.dtype, t.shape))
        outputs = [_value_info(n, g.tensor(n).dtype, g.tensor(n).shape) for n in g.outputs]
        inputs = [_value_info(n, g.tensor(n).dtype, g.tensor(n).shape) for n in g.inputs]
        graph = helper.make_graph(self.nodes, g.name or "graph", inputs, outputs,
                                  initializer=self.initializers, value_info=value_info)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="convertkit",
                                  producer_version=producer_version,
                                  ir_version=helper.find_min_ir_version_for(opsets))
        return model


def _onnx_attr(value: Any) -> Any:
    """IR attribute values (numpy scalars and arrays included) in the types onnx.helper accepts."""
    if isinstance(value, np.ndarray):
        return numpy_helper.from_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_onnx_attr(v) for v in value]
    return value


def _value_info(name: str, dtype: np.dtype | None, shape: tuple | None) -> onnx.ValueInfoProto:
    if dtype is None:
        raise ExportError(f"tensor {name!r} has no known dtype")
    dims = None if shape is None else [d if isinstance(d, str) else int(d) for d in shape]
    return helper.make_tensor_value_info(name, dtypes.to_onnx(dtype), dims)


def _check_attrs(ctx: ExportContext, op: str, attrs: dict[str, Any], opset: int) -> None:
    """Refuse to write an attribute that the target opset's version of the op does not have."""
    known = onnx.defs.get_schema(op, opset, "").attributes
    canonical = get_schema(op).attrs
    for key in list(attrs):
        if key in known:
            continue
        if key in canonical and _equal(attrs[key], canonical[key]):
            del attrs[key]  # a default the older opset implies anyway
            continue
        raise ctx.error(f"attribute {key}={attrs[key]!r} has no form at opset {opset}",
                        hint="choose a newer --opset")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except Exception:
        return a == b


def target_capabilities(opset: int | None = None, **_: Any):
    """What this backend accepts at ``opset`` (for the pipeline's legalization)."""
    from convertkit.backends.onnx.capabilities import capabilities

    return capabilities(int(opset or DEFAULT_OPSET))
