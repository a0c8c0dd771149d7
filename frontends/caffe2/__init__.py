"""Caffe2 frontend: predict net + init net (NetDef protobufs, binary or text) -> canonical IR.

Reads the files directly with message classes built at run time (``proto``), so neither Caffe2 nor
protoc is needed. ``load`` takes a folder, or the predict net's path with the init net found beside it
(``init_net.pb`` for ``predict_net.pb``, ``foo_init.pb`` for ``foo_predict.pb``, ``model_init.pb`` for
``model.pb``), or ``weights=`` naming the init net.

Blobs and inputs:

* Caffe2 overwrites blobs in place (``Relu(conv1) -> conv1``); each write becomes a new IR tensor, and
  the last write of a blob keeps the blob's name, so the net's outputs keep theirs.
* A blob filled by the init net is a constant. Graph inputs are the blobs of ``value_info.json`` (beside
  the predict net) if there is one, else the external inputs that the init net does not fill or only
  reserves with a ``ConstantFill`` of shape [1] (how Caffe2 exporters make room for fed inputs). A weight
  (conv filter, FC weight, BN statistics...) missing from the init net is an error naming the blobs.
* Caffe2 nets store no input shapes. ``value_info.json`` gives them when present; otherwise an input
  gets a symbolic shape whose rank and known dims come from its first consumer: a Conv input is
  ``[N, C, H, W]`` (NCHW) with C from the filter and N, H, W symbolic (``N``, ``<blob>_H``...), a pool
  or LRN input is rank 4, an FC input ``[N, K]``. An input whose first consumer cannot tell its rank
  needs a value_info.json.

Every op without a converter (see ``handlers.HANDLERS``) is listed in one error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import ConvertError, ModelFileError, UnsupportedOpError
from convertkit.frontends.caffe2 import reader
from convertkit.frontends.caffe2.handlers import HANDLERS
from convertkit.frontends.caffe2.registry import Args, OpContext

__all__ = ["HANDLERS", "from_nets", "load"]


def load(path: str | os.PathLike, weights: str | os.PathLike | None = None) -> Graph:
    """Read a Caffe2 model (folder, or predict net path) into the IR; ``weights`` names the init net."""
    files = reader.locate(path, weights)
    predict = reader.read_net(files.predict, "predict net")
    init = reader.read_net(files.init, "init net") if files.init is not None else None
    value_info = reader.read_value_info(files.value_info) if files.value_info is not None else None
    return from_nets(predict, init, value_info, source=str(files.predict),
                     init_source=str(files.init) if files.init is not None else None)


def from_nets(predict: Any, init: Any | None, value_info: dict[str, tuple[np.dtype, tuple]] | None = None,
              source: str = "<predict_net>", init_source: str | None = None) -> Graph:
    """Convert in-memory NetDefs. ``value_info``: input blob -> (dtype, shape), as value_info.json."""
    _check_ops(predict, source)
    values = reader.read_init(init, init_source or "<init_net>").values if init is not None else {}
    plan = _Plan(predict, values, value_info, source, init_source)
    g = Graph(predict.name or Path(source).stem)
    g.metadata["source_format"] = "caffe2"
    for blob in plan.consts:
        iv = values[blob]
        g.add_tensor(blob, value=iv.array, quant=iv.quant)
    for blob, (dtype, shape) in plan.inputs.items():
        g.add_input(blob, dtype, shape)
    current = {b: b for b in list(plan.consts) + list(plan.inputs)}
    for i, op in enumerate(predict.op):
        where = f"{source}: op #{i} {op.type}" + (f" {op.name!r}" if op.name else f" -> {op.output[0]!r}"
                                                   if op.output else "")
        outs = [plan.ir_name(blob) for blob in op.output]
        ctx = OpContext(g, op, reader.op_args(op, where), [current[b] for b in op.input], outs,
                        plan.used[i], where, plan.taken)
        try:
            HANDLERS[op.type].fn(ctx)
        except ConvertError as e:
            if e.where == where or isinstance(e, UnsupportedOpError):
                raise
            raise type(e)(e.message if e.where is None else f"{e.message} (at {e.where})",
                          where=where, hint=e.hint) from None
        unread = ctx.unread()
        if unread:
            shown = ", ".join(f"{k}={reader.arg_text(ctx.values[k])}" for k in unread)
            raise ModelFileError(f"unsupported argument(s) {shown}", where=where,
                                 hint="convertkit refuses arguments it does not implement rather than "
                                      "ignore them")
        for blob, name, used in zip(op.output, outs, plan.used[i]):
            if used and (not g.has_tensor(name) or g.producer(name) is None):
                raise ModelFileError(f"output {blob!r} was not produced by the converter", where=where)
            current[blob] = name
    g.outputs = [current[b] for b in predict.external_output]
    return g


def _check_ops(predict: Any, source: str) -> None:
    if all(op.type in reader.FILLS for op in predict.op):
        raise ModelFileError("this is an init net (it only fills blobs), not a predict net", where=source,
                             hint="pass the predict net, with the init net beside it or as weights")
    missing: dict[str, list[str]] = {}
    for i, op in enumerate(predict.op):
        if op.type not in HANDLERS:
            missing.setdefault(op.type, []).append(op.name or (op.output[0] if op.output else f"#{i}"))
    if missing:
        raise UnsupportedOpError("unsupported Caffe2 ops", missing, where=source,
                                 hint="these ops have no canonical equivalent yet")


class _Plan:
    """Which blobs are constants and inputs, what each write is named, and which outputs are read."""

    def __init__(self, net: Any, values: dict[str, Any], value_info: dict | None, source: str,
                 init_source: str | None) -> None:
        self.net, self.values, self.source = net, values, source
        external = set(net.external_input)
        declared = set(value_info or ()) | {
            b for b in external if b not in values or (not value_info and values[b].placeholder)}
        self.consts: dict[str, None] = {}
        self.inputs: dict[str, Any] = {}
        missing: dict[str, str] = {}
        produced: set[str] = set()
        writers: dict[str, tuple[int, int]] = {}
        self.used = [[False] * len(op.output) for op in net.op]
        if not net.external_output:
            raise ModelFileError("the predict net declares no external outputs", where=source,
                                 hint="the file may be truncated")
        self.writes: dict[str, int] = {}
        for i, op in enumerate(net.op):
            spec = HANDLERS[op.type]
            for port, blob in enumerate(op.input):
                if blob in writers:
                    w_op, w_port = writers[blob]
                    self.used[w_op][w_port] = True
                    continue
                if blob in produced or blob in self.consts or blob in self.inputs:
                    continue
                is_param = port in spec.params
                if blob in declared and not (is_param and blob in values):
                    if is_param:
                        missing.setdefault(blob, f"{op.type} op #{i}")
                        continue
                    self.inputs[blob] = (i, port)  # typed below, once every blob is accounted for
                elif blob in values:
                    self.consts[blob] = None
                elif blob in external:
                    missing.setdefault(blob, f"{op.type} op #{i}")
                else:
                    raise ModelFileError(f"op #{i} {op.type} reads blob {blob!r}, which no earlier op produces, "
                                         "the net does not declare as an input and the init net does not fill",
                                         where=source, hint="the file may be truncated")
            for port, blob in enumerate(op.output):
                writers[blob] = (i, port)
                produced.add(blob)
                self.writes[blob] = self.writes.get(blob, 0) + 1
        if missing:
            raise self._missing_error(missing, init_source)
        self.inputs = {b: self._input_type(b, i, port, value_info) for b, (i, port) in self.inputs.items()}
        for blob in net.external_output:
            if blob in writers:
                w_op, w_port = writers[blob]
                self.used[w_op][w_port] = True
            elif blob not in self.consts and blob not in self.inputs:
                raise ModelFileError(f"external output {blob!r} is never produced", where=source,
                                     hint="the file may be truncated")
        self._seen: dict[str, int] = {}
        self.taken = set(self.writes) | set(self.consts) | set(self.inputs) | set(external)

    def _missing_error(self, missing: dict[str, str], init_source: str | None) -> ModelFileError:
        items = list(missing.items())
        shown = ", ".join(f"{b!r} (read by {where})" for b, where in items[:4])
        more = f", and {len(items) - 4} more" if len(items) > 4 else ""
        if init_source is None:
            return ModelFileError(f"no init net found, and the predict net needs blobs {shown}{more}",
                                  where=self.source, hint="pass the init net with --weights / weights=")
        return ModelFileError(f"the init net does not fill blob(s) {shown}{more}", where=init_source,
                              hint="the init net does not belong to this predict net, or is incomplete")

    def _input_type(self, blob: str, op_index: int, port: int, value_info: dict | None
                    ) -> tuple[np.dtype, tuple]:
        if value_info and blob in value_info:
            return value_info[blob]
        op = self.net.op[op_index]
        where = f"{self.source}: op #{op_index} {op.type}"
        spec = HANDLERS[op.type]
        consts = [self.values[b].array if b in self.values and b not in (value_info or {}) else None
                  for b in op.input]
        dims = spec.guess(Args(reader.op_args(op, where), op.type, where), consts, port) if spec.guess else None
        if dims is None:
            raise ModelFileError(f"cannot tell the shape of input blob {blob!r}: its first reader, {op.type} "
                                 f"op #{op_index}, does not fix its rank", where=self.source,
                                 hint="put a value_info.json ({\"blob\": [1, [dims...]]}) beside the net")
        shape = tuple(d if isinstance(d, int) else d if d == "N" else f"{blob}_{d}" for d in dims)
        return np.dtype(np.float32), shape

    def ir_name(self, blob: str) -> str:
        """The IR tensor of this write of ``blob``: the last write keeps the blob's name."""
        k = self._seen.get(blob, 0) + 1
        self._seen[blob] = k
        if k == self.writes[blob] and blob not in self.consts and blob not in self.inputs:
            return blob
        n = k
        while f"{blob}_{n}" in self.taken:
            n += 1
        name = f"{blob}_{n}"
        self.taken.add(name)
        return name
