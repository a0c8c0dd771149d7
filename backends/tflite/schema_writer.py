"""Flatbuffer tables of the TFLite schema (v3), written with the ``flatbuffers`` package's Builder.

Field slots follow tensorflow/lite/schema/schema.fbs; the reader's slot tables
(``frontends.tflite.schema``) are not imported because a backend never imports a frontend, so the few
slots the writer needs are spelled here once. Every table is written through :func:`table`, with
defaults forced, so a value equal to the schema default is still explicit.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import number_types as N

# BuiltinOptions union: option table name -> (union type code, {field: (slot, kind)}).
# kinds: b=int8/byte, i=int32, f=float32, ?=bool, vi=vector of int32.
OPTIONS: dict[str, tuple[int, dict[str, tuple[int, str]]]] = {
    "Conv2DOptions": (1, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"), "fused": (3, "b"),
                          "dilation_w": (4, "i"), "dilation_h": (5, "i")}),
    "DepthwiseConv2DOptions": (2, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"),
                                   "depth_multiplier": (3, "i"), "fused": (4, "b"), "dilation_w": (5, "i"),
                                   "dilation_h": (6, "i")}),
    "Pool2DOptions": (5, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"), "filter_w": (3, "i"),
                          "filter_h": (4, "i"), "fused": (5, "b")}),
    "FullyConnectedOptions": (8, {"fused": (0, "b"), "weights_format": (1, "b"), "keep_num_dims": (2, "?")}),
    "SoftmaxOptions": (9, {"beta": (0, "f")}),
    "ConcatenationOptions": (10, {"axis": (0, "i"), "fused": (1, "b")}),
    "AddOptions": (11, {"fused": (0, "b")}),
    "ResizeBilinearOptions": (15, {"align_corners": (2, "?"), "half_pixel": (3, "?")}),
    "ReshapeOptions": (17, {"new_shape": (0, "vi")}),
    "MulOptions": (21, {"fused": (0, "b")}),
    "PadOptions": (22, {}),
    "GatherOptions": (23, {"axis": (0, "i"), "batch_dims": (1, "i")}),
    "TransposeOptions": (26, {}),
    "ReducerOptions": (27, {"keep_dims": (0, "?")}),
    "SubOptions": (28, {"fused": (0, "b")}),
    "DivOptions": (29, {"fused": (0, "b")}),
    "StridedSliceOptions": (32, {"begin_mask": (0, "i"), "end_mask": (1, "i"), "ellipsis_mask": (2, "i"),
                                 "new_axis_mask": (3, "i"), "shrink_axis_mask": (4, "i")}),
    "ExpOptions": (33, {}),
    "SplitOptions": (35, {"num_splits": (0, "i")}),
    "LogSoftmaxOptions": (36, {}),
    "CastOptions": (37, {"in_data_type": (0, "b"), "out_data_type": (1, "b")}),
    "DequantizeOptions": (38, {}),
    "MaximumMinimumOptions": (39, {}),
    "NegOptions": (42, {}),
    "PadV2Options": (43, {}),
    "TransposeConvOptions": (49, {"padding": (0, "b"), "stride_w": (1, "i"), "stride_h": (2, "i"),
                                  "fused": (3, "b")}),
    "ShapeOptions": (55, {"out_type": (0, "b")}),
    "ResizeNearestNeighborOptions": (74, {"align_corners": (0, "?"), "half_pixel": (1, "?")}),
    "LeakyReluOptions": (75, {"alpha": (0, "f")}),
    "MirrorPadOptions": (77, {"mode": (0, "b")}),
    "AbsOptions": (78, {}),
    "SplitVOptions": (79, {"num_splits": (0, "i")}),
    "QuantizeOptions": (89, {}),
    "HardSwishOptions": (91, {}),
    "DepthToSpaceOptions": (94, {"block_size": (0, "i")}),
    "BatchMatMulOptions": (101, {"adj_x": (0, "?"), "adj_y": (1, "?")}),
    "BroadcastToOptions": (104, {}),
    "GeluOptions": (116, {"approximate": (0, "?")}),
}

_SCALAR = {"b": N.Int8Flags, "i": N.Int32Flags, "f": N.Float32Flags, "?": N.BoolFlags, "u8": N.Uint8Flags,
           "u32": N.Uint32Flags, "u64": N.Uint64Flags}


class Writer:
    """A Builder plus helpers for vectors, strings and tables (all offsets are builder offsets)."""

    def __init__(self, size_hint: int = 1 << 16) -> None:
        self.b = flatbuffers.Builder(size_hint)
        self.b.ForceDefaults(True)

    def string(self, s: str) -> int:
        return self.b.CreateString(s)

    def ints(self, values: Sequence[int], kind: str = "i") -> int:
        """A vector of int32 ("i"), int64 ("l") or float32 ("f")."""
        dt = {"i": np.int32, "l": np.int64, "f": np.float32}[kind]
        return self.b.CreateNumpyVector(np.asarray(list(values), dt).reshape(-1))

    def offsets(self, offs: Sequence[int]) -> int:
        self.b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            self.b.PrependUOffsetTRelative(o)
        return self.b.EndVector()

    def data(self, raw: bytes, align: int = 16) -> int:
        """A ubyte vector whose first byte is ``align``-aligned in the finished file (buffers)."""
        b = self.b
        b.StartVector(1, len(raw), align)
        b.head = b.head - len(raw)
        b.Bytes[b.head:b.head + len(raw)] = raw
        return b.EndVector()

    def table(self, fields: Sequence[tuple[int, str, Any]]) -> int:
        """A table from (slot, kind, value) triples; kind "o" is an offset, None values are absent."""
        fields = [f for f in fields if f[2] is not None]
        b = self.b
        b.StartObject(max((f[0] for f in fields), default=-1) + 1)
        for slot, kind, value in fields:
            if kind == "o":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            else:
                flags = _SCALAR[kind]
                b.PrependSlot(flags, slot, flags.py_type(value), None)
        return b.EndObject()

    def options(self, name: str, values: dict[str, Any]) -> tuple[int, int]:
        """(union type code, table offset) of a BuiltinOptions table."""
        code, spec = OPTIONS[name]
        vecs = {k: self.ints(v) for k, v in values.items() if spec[k][1] == "vi"}
        fields = []
        for k, v in values.items():
            slot, kind = spec[k]
            fields.append((slot, "o", vecs[k]) if kind == "vi" else (slot, kind, v))
        return code, self.table(fields)

    def finish(self, root: int) -> bytes:
        self.b.Finish(root, file_identifier=b"TFL3")
        return bytes(self.b.Output())
