"""Finding and reading the files of a Caffe2 model: predict net, init net and optional value_info.json.

A Caffe2 model is two NetDefs: the predict net (the computation) and the init net, whose fill ops
(GivenTensorFill and friends) hold the trained weights. Either may be binary (``.pb``) or protobuf text
(``.pbtxt``). Nets carry no input shapes; the model zoo puts them in a ``value_info.json`` beside the
net (``{"data": [1, [1, 3, 224, 224]]}``: blob -> [Caffe2 data type, shape]).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from convertkit.canonical_ir.graph import QuantParams
from convertkit.errors import ModelFileError, UnsupportedOpError
from convertkit.frontends.caffe2 import proto

TEXT_SUFFIXES = (".pbtxt", ".prototxt", ".txt")

CAFFE2_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.int32), 3: np.dtype(np.uint8), 5: np.dtype(np.bool_),
    6: np.dtype(np.uint8), 7: np.dtype(np.int8), 8: np.dtype(np.uint16), 9: np.dtype(np.int16),
    10: np.dtype(np.int64), 12: np.dtype(np.float16), 13: np.dtype(np.float64),
}
"""Caffe2 TensorProto.DataType number -> numpy dtype (STRING and the hash/buffer types have none)."""


# ------------------------------------------------------------------------------------ locating
@dataclass
class ModelFiles:
    predict: Path
    init: Path | None
    value_info: Path | None


def locate(path: str | os.PathLike, weights: str | os.PathLike | None) -> ModelFiles:
    """The predict net, its init net and value_info.json for a folder or a predict-net path."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError("no such file or folder", where=str(p))
    predict = _predict_in(p) if p.is_dir() else p
    if weights is not None:
        init: Path | None = Path(weights)
        if not init.is_file():
            raise ModelFileError("init_net (weights) file not found", where=str(init))
    else:
        init = next((c for c in _init_candidates(predict) if c.is_file() and c != predict), None)
    vi = predict.parent / "value_info.json"
    return ModelFiles(predict, init, vi if vi.is_file() else None)


def _predict_in(folder: Path) -> Path:
    names = sorted(c.name for c in folder.iterdir() if c.is_file())
    for exact in ("predict_net.pb", "predict_net.pbtxt"):
        if exact in names:
            return folder / exact
    nets = [n for n in names if n.endswith((".pb",) + TEXT_SUFFIXES) and "init" not in n.lower()]
    preferred = [n for n in nets if re.search("predict|run_net", n, re.IGNORECASE)] or nets
    binary = [n for n in preferred if n.endswith(".pb")]
    chosen = binary or preferred
    if len(chosen) != 1:
        found = ", ".join(names[:8]) or "nothing"
        raise ModelFileError(f"cannot tell which file is the predict net (the folder has: {found})",
                             where=str(folder), hint="pass the predict net's path instead of the folder")
    return folder / chosen[0]


def _init_candidates(predict: Path) -> list[Path]:
    """Names an init net goes by next to its predict net, most conventional first."""
    stem, parent = predict.stem, predict.parent
    stems = [re.sub("predict", lambda m: "Init" if m.group(0)[0] == "P" else "init", stem, flags=re.IGNORECASE),
             stem.replace("run_net", "init_net"), "init_net", f"{stem}_init", f"{stem}Init"]
    suffixes = [predict.suffix] + [s for s in (".pb", ".pbtxt") if s != predict.suffix]
    out: list[Path] = []
    for s in dict.fromkeys(stems):
        if s == stem:
            continue
        out.extend(parent / f"{s}{suffix}" for suffix in suffixes)
    return out


# ------------------------------------------------------------------------------------- parsing
def read_net(path: Path, role: str) -> Any:
    """Parse a NetDef (binary or text) and check that it is one; ``role`` names it in errors."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read the {role}: {e.strerror}", where=str(path)) from None
    if not data:
        raise ModelFileError(f"the {role} file is empty", where=str(path))
    net = proto.NetDef()
    text = path.suffix in TEXT_SUFFIXES
    if text:
        _parse_text(data, net, path, role)
    else:
        try:
            net.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError):
            raise ModelFileError(f"the {role} is not a valid Caffe2 NetDef (truncated or corrupt protobuf)",
                                 where=str(path), hint="re-export the model, or check the download") from None
    _check_netdef(net, path, role)
    return net


def _parse_text(data: bytes, net: Any, path: Path, role: str) -> None:
    try:
        # DeviceOption's field 2 was called cuda_gpu_id / hip_gpu_id before it became device_id
        text = re.sub(r"\b(?:cuda|hip)_gpu_id(\s*:)", r"device_id\1", data.decode("utf-8"))
        text_format.Parse(text, net)
    except (UnicodeDecodeError, text_format.ParseError) as e:
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ModelFileError(f"the {role} is not a valid Caffe2 NetDef in protobuf text form ({first})",
                             where=str(path)) from None


def _check_netdef(net: Any, path: Path, role: str) -> None:
    """Arbitrary bytes often parse as a protobuf of unknown fields: require the shape of a NetDef."""
    if _has_unknown_fields(net) or not net.op or any(not op.type for op in net.op):
        raise ModelFileError(f"not a Caffe2 NetDef (expected the {role})", where=str(path),
                             hint="a Caffe2 model is a predict_net.pb with its init_net.pb")


def _has_unknown_fields(msg: Any) -> bool:
    try:
        from google.protobuf import unknown_fields  # protobuf >= 4.24
    except ImportError:
        return len(msg.UnknownFields()) > 0
    return len(unknown_fields.UnknownFieldSet(msg)) > 0


def read_value_info(path: Path) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """value_info.json: blob -> (dtype, shape)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"unreadable value_info.json ({e})", where=str(path)) from None
    out = {}
    if not isinstance(doc, dict):
        raise ModelFileError("value_info.json must map blob names to [data type, shape]", where=str(path))
    for name, entry in doc.items():
        try:
            code, shape = entry
            dtype = CAFFE2_DTYPES[int(code)]
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError, KeyError):
            raise ModelFileError(f"entry {name!r} is not [data type, shape] with a known data type",
                                 where=str(path)) from None
        out[name] = (dtype, dims)
    return out


# ---------------------------------------------------------------------------------- init values
@dataclass
class InitValue:
    array: np.ndarray
    op_type: str
    quant: QuantParams | None = None
    placeholder: bool = False
    """A ConstantFill of shape [1] or less: how exporters reserve a workspace blob for a fed input."""


@dataclass
class InitNet:
    values: dict[str, InitValue] = field(default_factory=dict)


def op_args(op: Any, where: str) -> dict[str, Any]:
    """An OperatorDef's arguments as Python values (str for bytes fields, lists for repeated ones)."""
    out: dict[str, Any] = {}
    for a in op.arg:
        if a.HasField("i"):
            v: Any = int(a.i)
        elif a.HasField("f"):
            v = float(a.f)
        elif a.HasField("s"):
            v = bytes(a.s)
        elif a.ints:
            v = [int(x) for x in a.ints]
        elif a.floats:
            v = [float(x) for x in a.floats]
        elif a.strings:
            v = [bytes(s) for s in a.strings]
        elif a.HasField("n") or a.nets or a.HasField("t") or a.tensors or a.qtensors:
            v = _NESTED
        else:
            v = []  # a repeated argument given empty
        if a.name in out:
            raise ModelFileError(f"argument {a.name!r} is given twice", where=where)
        out[a.name] = v
    return out


_NESTED = object()
"""Marks an argument holding a nested net or tensor, which no supported op takes."""


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _shape_of(args: dict[str, Any], where: str) -> tuple[int, ...]:
    shape = args.get("shape", [])
    if isinstance(shape, int):
        shape = [shape]
    if not isinstance(shape, list) or any(not isinstance(d, int) or d < 0 for d in shape):
        raise ModelFileError(f"invalid shape argument {shape!r}", where=where)
    return tuple(shape)


def _values(args: dict[str, Any], kind: type, where: str) -> list:
    v = args.get("values", [])
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list):
        raise ModelFileError("the values argument is missing or of the wrong type", where=where)
    if kind is int and any(isinstance(x, float) for x in v):
        raise ModelFileError("integer fill with float values", where=where)
    return v


def _given(dtype: Any) -> Callable[[dict[str, Any], str], InitValue]:
    def fill(args: dict[str, Any], where: str) -> InitValue:
        # GivenTensorFill may name its element type; integer types read the ints field
        dt = _dtype_arg(args["dtype"], where) if "dtype" in args else np.dtype(dtype)
        values = _values(args, float if dt.kind == "f" else int, where)
        return InitValue(_fit(np.asarray(values, dtype=dt), _shape_of(args, where), where), "")
    return fill


def _dtype_arg(code: Any, where: str) -> np.dtype:
    if not isinstance(code, int) or code not in CAFFE2_DTYPES:
        raise ModelFileError(f"dtype {code!r} is not a supported Caffe2 data type", where=where)
    return CAFFE2_DTYPES[code]


def _fit(arr: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ModelFileError(f"{arr.size} values do not fill shape {list(shape)}", where=where,
                             hint="the init net may be truncated")
    return np.require(arr.reshape(shape), requirements="C")


def _bytes_fill(args: dict[str, Any], where: str) -> InitValue:
    raw = args.get("values", b"")
    if not isinstance(raw, bytes):
        raise ModelFileError("values must be a byte string", where=where)
    return InitValue(_fit(np.frombuffer(raw, np.uint8).copy(), _shape_of(args, where), where), "")


def _constant_fill(args: dict[str, Any], where: str) -> InitValue:
    for bad in ("input_as_shape", "extra_shape"):
        if args.get(bad):
            raise ModelFileError(f"ConstantFill with {bad} is not supported in an init net", where=where)
    dt = _dtype_arg(args.get("dtype", 1), where)
    value = args.get("value", 0)
    shape = _shape_of(args, where)
    arr = np.full(shape, value, dtype=dt)
    return InitValue(arr, "", placeholder=arr.size <= 1 and "value" not in args)


def _int8_fill(kind: str) -> Callable[[dict[str, Any], str], InitValue]:
    """Int8GivenTensorFill (uint8 bytes) and Int8GivenIntTensorFill (int32, biases) with their scale."""
    def fill(args: dict[str, Any], where: str) -> InitValue:
        iv = _bytes_fill(args, where) if kind == "bytes" else _given(np.int32)(args, where)
        scale = args.get("Y_scale", 1.0)
        zero = args.get("Y_zero_point", 0)
        iv.quant = QuantParams(np.asarray(scale, np.float32), np.asarray(zero, iv.array.dtype))
        return iv
    return fill


FILLS: dict[str, Callable[[dict[str, Any], str], InitValue]] = {
    "GivenTensorFill": _given(np.float32),
    "GivenTensorDoubleFill": _given(np.float64),
    "GivenTensorIntFill": _given(np.int32),
    "GivenTensorInt64Fill": _given(np.int64),
    "GivenTensorInt16Fill": _given(np.int16),
    "GivenTensorBoolFill": _given(np.bool_),
    "GivenTensorByteStringToUInt8Fill": _bytes_fill,
    "ConstantFill": _constant_fill,
    "Int8GivenTensorFill": _int8_fill("bytes"),
    "Int8GivenIntTensorFill": _int8_fill("int32"),
}
"""Init-net op -> reader of the blob it fills. Random fills (XavierFill, ...) are training
initialisers, not weights, and are refused."""

_FILL_ARGS = {"shape", "values", "dtype", "value", "Y_scale", "Y_zero_point", "input_as_shape", "extra_shape"}


def read_init(net: Any, source: str) -> InitNet:
    """Every blob the init net fills, as numpy arrays; unknown ops are listed in one error."""
    missing: dict[str, list[str]] = {}
    for i, op in enumerate(net.op):
        if op.type not in FILLS:
            missing.setdefault(op.type, []).append(op.name or (op.output[0] if op.output else f"#{i}"))
    if missing:
        raise UnsupportedOpError("unsupported ops in the init net (only constant fills hold weights)", missing,
                                 where=source, hint="random fills (XavierFill...) are training initialisers")
    init = InitNet()
    for i, op in enumerate(net.op):
        where = f"{source}: op #{i} ({op.type} -> {', '.join(op.output)})"
        if op.input or len(op.output) != 1:
            raise ModelFileError("a fill op must have no inputs and one output", where=where)
        args = op_args(op, where)
        extra = sorted(set(args) - _FILL_ARGS)
        if extra:
            raise ModelFileError(f"unsupported argument(s) {extra}", where=where)
        value = FILLS[op.type](args, where)
        value.op_type = op.type
        init.values[op.output[0]] = value
    return init


def arg_text(v: Any) -> str:
    """An argument value for an error message."""
    if isinstance(v, list):
        return "[" + ", ".join(_text(x) for x in v[:8]) + (", ..." if len(v) > 8 else "") + "]"
    return _text(v)
