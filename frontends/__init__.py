"""Frontends: one module per source format, each with ``load(path) -> Graph``.

Imported lazily by format name, so reading ONNX never imports TensorFlow.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import UnknownFormatError, UsageError

FRONTENDS: dict[str, str] = {
    "onnx": "convertkit.frontends.onnx",
    "caffe2": "convertkit.frontends.caffe2",
    "tflite": "convertkit.frontends.tflite",
    "mxnet": "convertkit.frontends.mxnet",
    "tf-saved-model": "convertkit.frontends.tensorflow",
    "keras": "convertkit.frontends.tensorflow",
    "keras-h5": "convertkit.frontends.tensorflow",
    "tf-graphdef": "convertkit.frontends.tensorflow",
}
"""Format name -> module providing ``load(path, weights=None) -> Graph``; ``weights`` is the separate
weights file of formats that keep one (Caffe2 init_net, MXNet .params), found beside the model if None."""


def get_loader(fmt: str) -> Callable[..., Graph]:
    if fmt not in FRONTENDS:
        raise UnknownFormatError(f"no frontend reads {fmt!r} models in this version of convertkit",
                                 hint=f"readable formats: {', '.join(sorted(FRONTENDS))}")
    return importlib.import_module(FRONTENDS[fmt]).load


def load(path: str | Path, fmt: str, weights: str | Path | None = None, **options: Any) -> Graph:
    """Load with the frontend of ``fmt``. ``options`` (None values dropped) are frontend-specific, such
    as ``inputs``/``outputs``/``signature``/``tag`` for TensorFlow; one a frontend lacks is a UsageError."""
    loader = get_loader(fmt)
    options = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(loader).parameters
    for key in options:
        if key not in accepted:
            raise UsageError(f"--{key.replace('_', '-')} does not apply to {fmt} models")
    if fmt in ("tf-saved-model", "keras", "keras-h5", "tf-graphdef"):
        options["format"] = fmt
    return loader(path, weights=weights, **options)
