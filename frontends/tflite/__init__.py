"""TFLite frontend: a ``.tflite`` flatbuffer (schema v3) -> canonical IR.

float32, int8 (full-integer, or float I/O with QUANTIZE/DEQUANTIZE) and int16x8 models. Every tensor
keeps its TFLite dtype and quantization parameters exactly (per-tensor, or per-channel on
``quantized_dimension``), so a quantized model runs bit-exactly in the IR's integer kernels (which
follow TFLite Micro) and goes on to ONNX or C without requantizing. The layout stays NHWC.

The file is read by the hand-written accessor in ``schema.py`` (only the ``flatbuffers`` core
dependency), so no TFLite runtime is needed to load a model. Hybrid models (int8 weights feeding float
activations, "dynamic range quantization") are refused: their kernels quantize activations on the fly
with a scheme the IR does not model, so a dequantized-weight float graph would silently differ.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convertkit.canonical_ir.graph import Graph, QuantParams
from convertkit.canonical_ir.passes.infer import infer_shapes
from convertkit.errors import ModelFileError, UnsupportedOpError
from convertkit.frontends.tflite import schema as S
from convertkit.frontends.tflite.ops import CONVERTERS, Reader, hybrid_reason, unsupported_reason


def load(path: str | os.PathLike, weights: str | os.PathLike | None = None) -> Graph:
    """Read a ``.tflite`` file (or a folder holding exactly one) into the IR. TFLite keeps its
    weights in the file, so ``weights`` must be None."""
    if weights is not None:
        raise ModelFileError("TFLite models take no separate weights file", where=str(weights))
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.tflite"))
        if len(found) != 1:
            raise ModelFileError(f"expected one .tflite file in the folder, found {len(found)}",
                                 where=str(path))
        path = found[0]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read: {e.strerror}", where=str(path)) from None
    return from_bytes(data, source=str(path), name=path.stem)


def from_bytes(data: bytes, source: str = "<tflite>", name: str = "tflite") -> Graph:
    """Convert an in-memory flatbuffer (the first subgraph: the model's main function)."""
    try:
        return _convert(bytes(data), source, name)
    except S.SchemaError as e:
        raise ModelFileError(f"not a valid TFLite flatbuffer ({e})", where=source,
                             hint="the file may be truncated or corrupt; re-export it") from None


def _convert(data: bytes, source: str, name: str) -> Graph:
    model = S.root(data)
    version = model.scalar(S.MODEL["version"], S.N.Uint32Flags)
    if version != 3:
        raise ModelFileError(f"schema version {version}; only version 3 is read", where=source)
    subgraphs = model.tables(S.MODEL["subgraphs"])
    if not subgraphs:
        raise ModelFileError("contains no subgraph", where=source)
    r = Reader(data, model, subgraphs[0], Graph(name), source)
    r.check_ops()
    missing: dict[str, list[str]] = {}
    hybrid: dict[str, list[str]] = {}
    for k, op in enumerate(r.ops):
        code = r.op_code(op)
        label = f"#{k}"
        why = hybrid_reason(r, code, op)
        if why:
            hybrid.setdefault(f"{code} ({why})", []).append(label)
        elif code not in CONVERTERS:
            missing.setdefault(code, []).append(label)
        else:
            why = unsupported_reason(r, code, op)
            if why:
                missing.setdefault(f"{code} ({why})", []).append(label)
    if hybrid:
        raise UnsupportedOpError("hybrid (int8 weights, float activations) model", hybrid, where=source,
                                 hint="convert it with full-integer quantization, or as float32")
    if missing:
        raise UnsupportedOpError("unsupported TFLite ops", missing, where=source,
                                 hint="these ops have no canonical equivalent yet")
    for i in _indices(r.sg, "inputs"):
        r.input(i)
    for k, op in enumerate(r.ops):
        try:
            CONVERTERS[r.op_code(op)](r, op)
        except IndexError:  # a corrupt operand list; the converters index by the schema's arity
            raise S.SchemaError(f"operator #{k} ({r.op_code(op)}) has too few operands") from None
    for i in _indices(r.sg, "outputs"):
        r.g.outputs.append(r.tensor(i))
    r.g.metadata["source_format"] = "tflite"
    infer_shapes(r.g)  # types the few intermediates the converters add (FC flattening, slices)
    return r.g


def _indices(sg: S.Obj, key: str) -> list[int]:
    v = sg.array(S.SUBGRAPH[key], np.int32)
    return [] if v is None else [int(i) for i in v]


__all__ = ["load", "from_bytes", "QuantParams"]
