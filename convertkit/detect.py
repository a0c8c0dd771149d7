"""Format detection from what a path holds (folder layout, file magic), not only its extension."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from convertkit.errors import ModelFileError, UnknownFormatError

FORMATS = {
    "onnx": "ONNX model (.onnx)",
    "tf-saved-model": "TensorFlow SavedModel folder",
    "keras": "Keras v3 archive (.keras)",
    "keras-h5": "Keras HDF5 file (.h5)",
    "tf-graphdef": "TensorFlow frozen GraphDef (.pb)",
    "caffe2": "Caffe2 predict_net.pb + init_net.pb",
    "mxnet": "MXNet *-symbol.json + *.params",
    "tflite": "TensorFlow Lite flatbuffer (.tflite)",
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def detect_format(path: str | Path) -> str:
    """Name of the format at ``path`` (a key of FORMATS); raises a ConvertError if unrecognisable."""
    p = Path(path)
    if not p.exists():
        if Path(f"{p}-symbol.json").is_file():  # an MXNet checkpoint prefix
            return "mxnet"
        raise ModelFileError("no such file or folder", where=str(p))
    if p.is_dir():
        return _detect_folder(p)
    return _detect_file(p)


def _detect_folder(p: Path) -> str:
    names = {c.name for c in p.iterdir()}
    if "saved_model.pb" in names or "saved_model.pbtxt" in names:
        return "tf-saved-model"
    if any(_is_caffe2_name(p / n) for n in names):
        return "caffe2"
    if any(n.endswith("-symbol.json") for n in names):
        return "mxnet"
    for ext, fmt in ((".onnx", "onnx"), (".tflite", "tflite"), (".keras", "keras")):
        found = [n for n in names if n.endswith(ext)]
        if len(found) == 1:
            return fmt
    shown = ", ".join(sorted(names)[:6]) + (", ..." if len(names) > 6 else "") if names else "nothing"
    raise UnknownFormatError(f"folder holds no model convertkit recognises (it has: {shown})", where=str(p),
                             hint="expected a SavedModel, a Caffe2 net pair, an MXNet symbol file, "
                                  "or one .onnx/.tflite/.keras file")


def _detect_file(p: Path) -> str:
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise ModelFileError(f"cannot read: {e.strerror}", where=str(p)) from None
    if not head:
        raise ModelFileError("the file is empty", where=str(p))
    if head.startswith(_HDF5_MAGIC):
        return "keras-h5"
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(p) as z:
                if "config.json" in z.namelist():
                    return "keras"
        except zipfile.BadZipFile:
            pass
        raise UnknownFormatError("a zip archive that is not a Keras model", where=str(p))
    if head.lstrip()[:1] == b"{":
        return _detect_json(p)
    if _is_caffe2_name(p):
        return "caffe2"
    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        raise UnknownFormatError("this is the graph file of a TensorFlow SavedModel", where=str(p),
                                 hint=f"pass its folder: {p.parent}")
    if p.suffix == ".onnx" or head[0] == 0x08:  # ModelProto starts with ir_version (field 1, varint)
        return "onnx"
    if p.suffix in (".pb", ".pbtxt"):
        return "tf-graphdef"
    if p.suffix == ".params":
        raise UnknownFormatError("an MXNet .params file alone is not a model", where=str(p),
                                 hint="pass the *-symbol.json file, or the folder holding both")
    raise UnknownFormatError("not a model format convertkit recognises", where=str(p),
                             hint=f"supported: {', '.join(FORMATS.values())}")


def _is_caffe2_name(p: Path) -> bool:
    """Caffe2 nets come in pairs named like predict_net/init_net, foo_predict/foo_init, or
    model/model_init; a GraphDef .pb has no such partner."""
    if p.suffix not in (".pb", ".pbtxt"):
        return False
    stem = p.stem
    if "predict" in stem or stem == "init_net" or stem.endswith("_init"):
        return True
    return (p.parent / f"{stem}_init{p.suffix}").exists()


def _detect_json(p: Path) -> str:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"invalid JSON ({e})", where=str(p)) from None
    if isinstance(doc, dict) and "nodes" in doc and ("heads" in doc or "arg_nodes" in doc):
        return "mxnet"
    raise UnknownFormatError("a JSON file that is not an MXNet symbol file", where=str(p),
                             hint="MXNet symbol files have 'nodes' and 'heads' keys")


TARGET_EXTENSIONS = {".onnx": "onnx", ".tflite": "tflite"}


def target_from_path(path: str | Path) -> str | None:
    """The output format implied by an output path's extension, if any."""
    return TARGET_EXTENSIONS.get(Path(path).suffix)
