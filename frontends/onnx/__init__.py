"""ONNX frontend: ModelProto -> canonical IR.

Reads opsets 11 to the newest the installed onnx knows (older models are first upgraded with onnx's
version converter). External data is read only from inside the model's folder. Every op the IR cannot
take is listed in one error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.graph import Graph
from convertkit.errors import ModelFileError, UnsafePathError, UnsupportedOpError
from convertkit.frontends.onnx.registry import ConvertContext, default_handler, find_handler, is_supported
from convertkit.frontends.onnx import handlers  # noqa: F401  (registers the op handlers)

MIN_OPSET = 11
DEFAULT_DOMAINS = ("", "ai.onnx")


def load(path: str | os.PathLike, weights: str | os.PathLike | None = None) -> Graph:
    """Read an ``.onnx`` file (or a folder holding exactly one) into the IR. ONNX keeps its weights in
    the file or in external data beside it, so ``weights`` must be None."""
    if weights is not None:
        raise ModelFileError("ONNX models take no separate weights file", where=str(weights),
                             hint="external data is found beside the model automatically")
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        if len(found) != 1:
            raise ModelFileError(f"expected one .onnx file in the folder, found {len(found)}", where=str(path))
        path = found[0]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read: {e.strerror}", where=str(path)) from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception:
        raise ModelFileError("not a valid ONNX model (truncated or corrupt protobuf)", where=str(path),
                             hint="re-export the model, or check the download") from None
    return from_model(model, base_dir=path.parent, source=str(path))


def from_model(model: onnx.ModelProto, base_dir: str | os.PathLike | None = None,
               source: str = "<model>") -> Graph:
    """Convert an in-memory ModelProto. ``base_dir`` is where external data files are looked up."""
    _check_structure(model, source)
    opset = _default_opset(model, source)
    if opset < MIN_OPSET:
        model = _upgrade(model, source, opset)
        opset = MIN_OPSET
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ModelFileError(f"opset {opset} is newer than {newest}, the newest the installed onnx knows",
                             where=source, hint="upgrade the onnx package")
    _check_ops(model.graph, opset, source)

    reader = _TensorReader(Path(base_dir) if base_dir is not None else None, source)
    g = Graph(model.graph.name or Path(source).stem)
    g.metadata["onnx_opset"] = opset
    g.metadata["producer"] = model.producer_name
    init_names = {t.name for t in model.graph.initializer}
    for t in model.graph.initializer:
        g.add_tensor(t.name, value=reader.array(t))
    for vi in model.graph.input:
        if vi.name in init_names:
            continue  # IR < 4 models list initializers as inputs too
        dtype, shape = _value_type(vi, source, g)
        g.add_input(vi.name, dtype, shape)
    for i, node in enumerate(model.graph.node):
        _convert_node(g, node, i, opset, reader, source)
    for vi in model.graph.output:
        if not g.has_tensor(vi.name):
            raise ModelFileError(f"graph output {vi.name!r} is never produced", where=source,
                                 hint="the file may be truncated")
        g.outputs.append(vi.name)
    return g


# ---------------------------------------------------------------------------------- checks
def _check_structure(model: onnx.ModelProto, source: str) -> None:
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelFileError("contains no ONNX graph", where=source,
                             hint="is this an ONNX file? it may be truncated")
    known = {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input} | {""}
    for node in model.graph.node:
        for name in node.input:
            if name not in known:
                raise ModelFileError(f"node {node.name or node.op_type!r} uses {name!r}, which nothing "
                                     "defines before it", where=source,
                                     hint="the file may be truncated or its nodes out of order")
        known.update(node.output)


def _default_opset(model: onnx.ModelProto, source: str) -> int:
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return int(imp.version)
    if model.ir_version and model.ir_version < 3:
        return 1
    raise ModelFileError("declares no ai.onnx opset", where=source)


def _upgrade(model: onnx.ModelProto, source: str, opset: int) -> onnx.ModelProto:
    """Upgrade with onnx's version converter, then restore what it gets wrong: it writes Upsample and
    Resize-10 as Resize-11 with half_pixel coordinates, where they meant asymmetric ones."""
    from onnx import version_converter

    from convertkit.frontends.onnx.handlers.nn import apply_legacy_resize_modes, legacy_resize_modes

    modes = legacy_resize_modes(model)
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
        apply_legacy_resize_modes(upgraded, modes)
        return upgraded
    except Exception as e:
        raise ModelFileError(f"opset {opset} is older than {MIN_OPSET} and onnx's version converter "
                             f"could not upgrade it ({str(e).splitlines()[0][:120]})", where=source,
                             hint=f"re-export the model at opset {MIN_OPSET} or newer") from None


def _check_ops(graph: onnx.GraphProto, opset: int, source: str) -> None:
    missing: dict[str, list[str]] = {}
    for i, node in enumerate(graph.node):
        name = node.name or f"#{i}"
        if node.domain not in DEFAULT_DOMAINS:
            missing.setdefault(f"{node.domain}::{node.op_type}", []).append(name)
        elif any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            missing.setdefault(f"{node.op_type} (with subgraphs)", []).append(name)
        elif not is_supported(node.op_type, opset):
            missing.setdefault(node.op_type, []).append(name)
    if missing:
        raise UnsupportedOpError("unsupported ONNX ops", missing, where=source,
                                 hint="these ops have no canonical equivalent yet")


# ------------------------------------------------------------------------------- conversion
def _convert_node(g: Graph, node: onnx.NodeProto, index: int, opset: int, reader: "_TensorReader",
                  source: str) -> None:
    where = f"{source}: node {node.name or '#' + str(index)} ({node.op_type})"
    attrs = {a.name: _attr_value(a, reader) for a in node.attribute}
    inputs = [n if n else None for n in node.input]
    outputs = list(node.output)
    for i, name in enumerate(outputs):
        if not name:  # an unused optional output: give it a private name
            outputs[i] = g.unique_name(f"{node.name or node.op_type}_unused{i}")
    ctx = ConvertContext(g, node, attrs, inputs, outputs, opset, where)
    handler = find_handler(node.op_type, opset) or default_handler
    handler(ctx)


def _attr_value(attr: onnx.AttributeProto, reader: "_TensorReader") -> Any:
    if attr.type == onnx.AttributeProto.TENSOR:
        return reader.array(attr.t)
    if attr.type == onnx.AttributeProto.TENSORS:
        return [reader.array(t) for t in attr.tensors]
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


def _value_type(vi: onnx.ValueInfoProto, source: str, g: Graph) -> tuple[np.dtype, tuple]:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise ModelFileError(f"input {vi.name!r} is not a tensor (sequences and maps are not supported)",
                             where=source)
    dtype = dtypes.from_onnx(tt.elem_type)
    if dtype is None:
        raise ModelFileError(f"input {vi.name!r} has element type "
                             f"{TensorProto.DataType.Name(tt.elem_type)}, which convertkit does not support",
                             where=source)
    if not tt.HasField("shape"):
        raise ModelFileError(f"input {vi.name!r} has no shape (not even a rank)", where=source,
                             hint="give the input a shape when exporting")
    shape = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            shape.append(int(d.dim_value))
        elif d.dim_param:
            shape.append(d.dim_param)
        else:
            shape.append(f"{vi.name}_dim{i}")
    return dtype, tuple(shape)


class _TensorReader:
    """TensorProto -> numpy, reading external data only from inside the model's folder."""

    def __init__(self, base_dir: Path | None, source: str) -> None:
        self.base_dir = base_dir
        self.source = source

    def array(self, t: onnx.TensorProto) -> np.ndarray:
        dtype = dtypes.from_onnx(t.data_type)
        if dtype is None:
            raise ModelFileError(f"tensor {t.name!r} has element type "
                                 f"{TensorProto.DataType.Name(t.data_type)}, which convertkit does not support",
                                 where=self.source)
        if t.data_location == TensorProto.EXTERNAL:
            return self._external(t, dtype)
        try:
            arr = onnx.numpy_helper.to_array(t)
        except Exception as e:
            raise ModelFileError(f"tensor {t.name!r} is corrupt ({e})", where=self.source) from None
        return np.require(arr, requirements="C")  # keeps 0-d arrays 0-d

    def _external(self, t: onnx.TensorProto, dtype: np.dtype) -> np.ndarray:
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if self.base_dir is None:
            raise ModelFileError(f"tensor {t.name!r} has external data but no folder to read it from",
                                 where=self.source, hint="load the model from its file path")
        base = self.base_dir.resolve()
        target = (base / location).resolve()
        if os.path.isabs(location) or base not in target.parents:
            raise UnsafePathError(f"tensor {t.name!r} refers to external data {location!r} outside the "
                                  "model's folder", where=self.source,
                                  hint="external data files must sit next to the model")
        if not target.is_file():
            raise ModelFileError(f"external data file {location!r} of tensor {t.name!r} is missing",
                                 where=self.source)
        offset = int(info.get("offset", 0))
        count = int(np.prod(t.dims, dtype=np.int64))
        nbytes = count * dtype.itemsize
        length = int(info.get("length", nbytes))
        with open(target, "rb") as f:
            f.seek(offset)
            raw = f.read(length)
        if len(raw) != nbytes or length != nbytes:
            raise ModelFileError(f"external data of tensor {t.name!r} has {len(raw)} bytes, expected {nbytes}",
                                 where=self.source, hint=f"{location} may be truncated")
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(tuple(t.dims))
