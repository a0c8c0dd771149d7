"""A compact read-only accessor for the parts of the TFLite flatbuffer schema the frontend uses.

Hand-written over ``flatbuffers.table.Table`` (a core dependency) rather than importing the generated
``schema_py_generated`` module: that module ships only inside ai-edge-litert / tflite-micro /
TensorFlow, and reading a model file must not need a runtime. Field slots follow
tensorflow/lite/schema/schema.fbs (schema v3); every offset read is bounds-checked so a corrupt or
truncated file raises ``SchemaError`` instead of returning garbage.
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table

from convertkit.tflite_schema import BUILTIN_NAMES, TENSOR_TYPES, TYPE_NAMES, op_name  # noqa: F401


class SchemaError(Exception):
    """The buffer is not a well-formed TFLite flatbuffer (reported as ModelFileError by the loader)."""


class Obj:
    """One flatbuffer table: scalar, string, vector and sub-table fields by slot number."""

    def __init__(self, buf: bytes, pos: int) -> None:
        if not 0 <= pos <= len(buf) - 4:
            raise SchemaError(f"table offset {pos} out of range")
        self.buf = buf
        self.t = Table(buf, pos)
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        if not 0 <= vt <= len(buf) - 4:
            raise SchemaError(f"vtable offset {vt} out of range")

    def _off(self, slot: int) -> int:
        try:
            return self.t.Offset(4 + 2 * slot)
        except (struct.error, IndexError):
            raise SchemaError("truncated table") from None

    def scalar(self, slot: int, kind: Any, default: Any = 0) -> Any:
        o = self._off(slot)
        if not o:
            return default
        if self.t.Pos + o + kind.bytewidth > len(self.buf):
            raise SchemaError("field out of range")
        return self.t.Get(kind, self.t.Pos + o)

    def table(self, slot: int) -> "Obj | None":
        o = self._off(slot)
        return Obj(self.buf, self._indirect(self.t.Pos + o)) if o else None

    def _indirect(self, at: int) -> int:
        if at + 4 > len(self.buf):
            raise SchemaError("offset out of range")
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def _vec(self, slot: int) -> tuple[int, int] | None:
        o = self._off(slot)
        if not o:
            return None
        start = self._indirect(self.t.Pos + o)
        if start + 4 > len(self.buf):
            raise SchemaError("vector out of range")
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def array(self, slot: int, dtype: Any) -> np.ndarray | None:
        v = self._vec(slot)
        if v is None:
            return None
        start, n = v
        nbytes = n * np.dtype(dtype).itemsize
        if start + nbytes > len(self.buf):
            raise SchemaError("vector data out of range")
        return np.frombuffer(self.buf, np.dtype(dtype).newbyteorder("<"), n, start)

    def tables(self, slot: int) -> list["Obj"]:
        v = self._vec(slot)
        if v is None:
            return []
        start, n = v
        if start + 4 * n > len(self.buf):
            raise SchemaError("vector out of range")
        return [Obj(self.buf, self._indirect(start + 4 * i)) for i in range(n)]

    def string(self, slot: int) -> str:
        raw = self.array(slot, np.uint8)
        return "" if raw is None else raw.tobytes().decode("utf-8", "replace")


# Slots (schema.fbs field order) of the tables and option tables read by the frontend.
MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "buffers": 4}
OPCODE = {"deprecated_builtin_code": 0, "custom_code": 1, "version": 2, "builtin_code": 3}
SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3, "name": 4}
TENSOR = {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4, "is_variable": 5,
          "sparsity": 6, "shape_signature": 7}
QUANT = {"scale": 2, "zero_point": 3, "quantized_dimension": 6}
OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options": 4}
BUFFER = {"data": 0, "offset": 1, "size": 2}

_B, _I, _F = N.Int8Flags, N.Int32Flags, N.Float32Flags
OPTIONS: dict[str, dict[str, tuple[int, Any, Any]]] = {
    "conv": {"padding": (0, _B, 0), "stride_w": (1, _I, 0), "stride_h": (2, _I, 0),
             "fused": (3, _B, 0), "dilation_w": (4, _I, 1), "dilation_h": (5, _I, 1)},
    "depthwise": {"padding": (0, _B, 0), "stride_w": (1, _I, 0), "stride_h": (2, _I, 0),
                  "depth_multiplier": (3, _I, 0), "fused": (4, _B, 0), "dilation_w": (5, _I, 1),
                  "dilation_h": (6, _I, 1)},
    "fc": {"fused": (0, _B, 0), "weights_format": (1, _B, 0), "keep_num_dims": (2, N.BoolFlags, False)},
    "pool": {"padding": (0, _B, 0), "stride_w": (1, _I, 0), "stride_h": (2, _I, 0),
             "filter_w": (3, _I, 0), "filter_h": (4, _I, 0), "fused": (5, _B, 0)},
    "fused": {"fused": (0, _B, 0)},
    "softmax": {"beta": (0, _F, 0.0)},
    "concat": {"axis": (0, _I, 0), "fused": (1, _B, 0)},
    "reducer": {"keep_dims": (0, N.BoolFlags, False)},
    "leaky_relu": {"alpha": (0, _F, 0.0)},
    "strided_slice": {"begin_mask": (0, _I, 0), "end_mask": (1, _I, 0), "ellipsis_mask": (2, _I, 0),
                      "new_axis_mask": (3, _I, 0), "shrink_axis_mask": (4, _I, 0),
                      "offset": (5, N.BoolFlags, False)},
    "resize_bilinear": {"align_corners": (2, N.BoolFlags, False), "half_pixel": (3, N.BoolFlags, False)},
    "resize_nearest": {"align_corners": (0, N.BoolFlags, False), "half_pixel": (1, N.BoolFlags, False)},
    "transpose_conv": {"padding": (0, _B, 0), "stride_w": (1, _I, 0), "stride_h": (2, _I, 0),
                       "fused": (3, _B, 0)},
    "gelu": {"approximate": (0, N.BoolFlags, False)},
}


def options(op: Obj, kind: str) -> dict[str, Any]:
    """The builtin options of ``op`` read as option table ``kind`` (absent table: schema defaults)."""
    t = op.table(OPERATOR["builtin_options"])
    spec = OPTIONS[kind]
    if t is None:
        return {k: d for k, (_, _, d) in spec.items()}
    return {k: t.scalar(slot, kind_, d) for k, (slot, kind_, d) in spec.items()}


def root(buf: bytes) -> Obj:
    """The Model table, after checking the size and the TFL3 file identifier."""
    if len(buf) < 8:
        raise SchemaError(f"only {len(buf)} bytes")
    if buf[4:8] != b"TFL3":
        raise SchemaError(f"file identifier is {bytes(buf[4:8])!r}, not b'TFL3'")
    return Obj(buf, struct.unpack_from("<I", buf, 0)[0])
