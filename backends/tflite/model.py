"""The TFLite model being written: tensors, deduplicated buffers, operator codes and operators, then
serialized as one flatbuffer (schema v3, file identifier TFL3).

- Buffer 0 is the empty buffer every non-constant tensor points to; constant data is deduplicated by
  content (same bytes, one buffer) and each buffer's data starts 16-byte aligned in the file.
- A symbolic dimension (the IR's named batch) is written as 1 in ``shape`` and -1 in
  ``shape_signature``.
- One OperatorCode per builtin, at the highest version any of its operators needs (each operator's
  version is the lowest one that supports what it uses; see ``ops.py``).
- One signature, ``serving_default``, mapping the graph's input/output names to tensor indices.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from convertkit.backends.tflite.schema_writer import Writer
from convertkit.canonical_ir.graph import QuantParams
from convertkit.tflite_schema import BUILTIN_CODES, PLACEHOLDER_FOR_GREATER_OP_CODES  # noqa: F401
from convertkit.tflite_schema import TENSOR_TYPES as TFLITE_TYPES

TENSOR_TYPES: dict[np.dtype, int] = {np.dtype(t): code for code, t in TFLITE_TYPES.items()
                                     if np.dtype(t) != np.float64}
"""numpy dtype -> TensorType code."""

DESCRIPTION = "convertkit"
SIGNATURE_KEY = "serving_default"


@dataclass
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple
    buffer: int = 0
    quant: QuantParams | None = None


@dataclass
class OpSpec:
    code: str
    inputs: list[int]
    outputs: list[int]
    options: tuple[str, dict[str, Any]] | None
    version: int


@dataclass
class Model:
    """What the op builders add to; serialized by :meth:`to_bytes`."""

    tensors: list[TensorSpec] = field(default_factory=list)
    ops: list[OpSpec] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])
    by_name: dict[str, int] = field(default_factory=dict)
    _dedup: dict[tuple, int] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)
    _consts: dict[tuple, int] = field(default_factory=dict)

    # ------------------------------------------------------------------------------ tensors
    def _unique(self, name: str) -> str:
        base, n = name, 0
        while name in self._names:
            n += 1
            name = f"{base}_{n}"
        self._names.add(name)
        return name

    def buffer(self, value: np.ndarray) -> int:
        raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
        key = (len(raw), hashlib.sha256(raw).digest())
        if key not in self._dedup:
            self._dedup[key] = len(self.buffers)
            self.buffers.append(raw)
        return self._dedup[key]

    def add_tensor(self, name: str, dtype: Any, shape: Sequence, quant: QuantParams | None = None,
                   value: np.ndarray | None = None) -> int:
        dt = np.dtype(dtype)
        buf = 0
        if value is not None:
            value = np.asarray(value, dt)
            shape = value.shape
            buf = self.buffer(value) if value.size else 0
        self.tensors.append(TensorSpec(self._unique(name), dt, tuple(shape), buf, quant))
        return len(self.tensors) - 1

    def const(self, value: Any, dtype: Any = np.int32, name: str = "const",
              quant: QuantParams | None = None) -> int:
        """A constant tensor made by the exporter (shapes, axes, transformed weights, zero biases): one
        tensor per distinct (dtype, shape, bytes, quantization), shared by every operator using it."""
        v = np.ascontiguousarray(np.asarray(value, dtype))
        qkey = None if quant is None else (np.asarray(quant.scale, np.float32).tobytes(),
                                           np.asarray(quant.zero_point, np.int64).tobytes(), quant.axis)
        key = (v.dtype.str, v.shape, hashlib.sha256(v.tobytes()).digest(), qkey)
        if key not in self._consts:
            self._consts[key] = self.add_tensor(name, v.dtype, v.shape, quant, v)
        return self._consts[key]

    def op(self, code: str, inputs: Sequence[int], outputs: Sequence[int],
           options: tuple[str, dict[str, Any]] | None = None, version: int = 1) -> None:
        self.ops.append(OpSpec(code, list(inputs), list(outputs), options, version))

    def prune(self, keep: Sequence[int]) -> None:
        """Drop operators whose outputs nothing reads (a RESHAPE back to 1-D that the next op skipped)."""
        while True:
            used = set(keep) | {i for op in self.ops for i in op.inputs}
            live = [op for op in self.ops if any(o in used for o in op.outputs)]
            if len(live) == len(self.ops):
                return
            self.ops = live

    # ------------------------------------------------------------------------------ writing
    def to_bytes(self, graph_inputs: list[int], graph_outputs: list[int], input_names: list[str],
                 output_names: list[str], name: str = "main") -> bytes:
        w = Writer(max(1 << 16, sum(len(b) for b in self.buffers) + 64 * len(self.tensors) + 4096))
        # Buffer data first: the Builder writes back to front, so it lands at the end of the file.
        datas = [w.data(raw) if raw else None for raw in self.buffers]
        buffers = [w.table([(0, "o", d)]) for d in datas]
        codes: dict[str, int] = {}
        versions: dict[str, int] = {}
        for op in self.ops:
            if op.code not in codes:
                codes[op.code] = len(codes)
            versions[op.code] = max(versions.get(op.code, 1), op.version)
        opcodes = []
        for code in codes:
            c = BUILTIN_CODES[code]
            opcodes.append(w.table([(0, "b", min(c, PLACEHOLDER_FOR_GREATER_OP_CODES)), (2, "i", versions[code]),
                                    (3, "i", c)]))
        tensors = [self._tensor(w, t) for t in self.tensors]
        operators = []
        for op in self.ops:
            ins, outs = w.ints(op.inputs), w.ints(op.outputs)
            fields = [(0, "u32", codes[op.code]), (1, "o", ins), (2, "o", outs)]
            if op.options is not None:
                kind, table = w.options(*op.options)
                fields += [(3, "u8", kind), (4, "o", table)]
            operators.append(w.table(fields))
        sg_name = w.string(name)
        subgraph = w.table([(0, "o", w.offsets(tensors)), (1, "o", w.ints(graph_inputs)),
                            (2, "o", w.ints(graph_outputs)), (3, "o", w.offsets(operators)), (4, "o", sg_name)])
        signature = self._signature(w, graph_inputs, graph_outputs, input_names, output_names)
        desc = w.string(DESCRIPTION)
        model = w.table([(0, "u32", 3), (1, "o", w.offsets(opcodes)), (2, "o", w.offsets([subgraph])),
                         (3, "o", desc), (4, "o", w.offsets(buffers)), (7, "o", w.offsets([signature]))])
        return w.finish(model)

    @staticmethod
    def _tensor(w: Writer, t: TensorSpec) -> int:
        dims = [d if isinstance(d, int) else 1 for d in t.shape]
        sig = None
        if any(not isinstance(d, int) for d in t.shape):
            sig = w.ints([d if isinstance(d, int) else -1 for d in t.shape])
        quant = None
        if t.quant is not None:
            q = t.quant
            scale = w.ints(np.asarray(q.scale, np.float32).reshape(-1), "f")
            zp = w.ints(np.asarray(q.zero_point, np.int64).reshape(-1), "l")
            quant = w.table([(2, "o", scale), (3, "o", zp), (6, "i", int(q.axis or 0))])
        name = w.string(t.name)
        shape = w.ints(dims)
        return w.table([(0, "o", shape), (1, "b", TENSOR_TYPES[t.dtype]), (2, "u32", t.buffer), (3, "o", name),
                        (4, "o", quant), (7, "o", sig)])

    @staticmethod
    def _signature(w: Writer, ins: list[int], outs: list[int], in_names: list[str],
                   out_names: list[str]) -> int:
        def maps(idx: list[int], names: list[str]) -> int:
            tables = []
            for i, n in zip(idx, names):
                s = w.string(n)
                tables.append(w.table([(0, "o", s), (1, "u32", i)]))
            return w.offsets(tables)
        a, b = maps(ins, in_names), maps(outs, out_names)
        key = w.string(SIGNATURE_KEY)
        return w.table([(0, "o", a), (1, "o", b), (2, "o", key), (4, "u32", 0)])
