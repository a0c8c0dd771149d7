"""Format detection looks at what a path holds, not only at its name."""
from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from convertkit.detect import detect_format
from convertkit.errors import ModelFileError, UnknownFormatError
from tests.conftest import FIXTURES


def test_onnx_by_content_even_without_the_extension(tmp_path):
    renamed = tmp_path / "model.bin"
    shutil.copy(FIXTURES / "onnx" / "small_cnn.onnx", renamed)
    assert detect_format(renamed) == "onnx"


def test_folder_with_one_onnx_file():
    assert detect_format(FIXTURES / "onnx" / "mlp_external") == "onnx"


@pytest.mark.parametrize("name,content,fmt", [
    ("m.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 32, "keras-h5"),
    ("m.weird", b"\x1c\0\0\0TFL3" + b"\0" * 32, "tflite"),
    ("net-symbol.json", json.dumps({"nodes": [], "arg_nodes": [], "heads": []}).encode(), "mxnet"),
    ("graph.pb", b"\x0a\x05input\x12\x0bPlaceholder", "tf-graphdef"),
])
def test_file_magic(tmp_path, name, content, fmt):
    p = tmp_path / name
    p.write_bytes(content)
    assert detect_format(p) == fmt


def test_keras_archive(tmp_path):
    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", "{}")
    assert detect_format(p) == "keras"


@pytest.mark.parametrize("files,fmt", [
    (["saved_model.pb", "variables"], "tf-saved-model"),
    (["predict_net.pb", "init_net.pb"], "caffe2"),
    (["resnet-symbol.json", "resnet-0000.params"], "mxnet"),
])
def test_folders(tmp_path, files, fmt):
    for f in files:
        (tmp_path / f).write_bytes(b"x")
    assert detect_format(tmp_path) == fmt


def test_unrecognised_inputs(tmp_path):
    with pytest.raises(ModelFileError, match="empty"):
        (tmp_path / "empty.onnx").write_bytes(b"")
        detect_format(tmp_path / "empty.onnx")
    with pytest.raises(UnknownFormatError, match="not an MXNet symbol"):
        (tmp_path / "x.json").write_text('{"a": 1}')
        detect_format(tmp_path / "x.json")
    with pytest.raises(UnknownFormatError, match="params file alone"):
        (tmp_path / "w.params").write_bytes(b"\x12\x01")
        detect_format(tmp_path / "w.params")
