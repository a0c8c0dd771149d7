"""Frontends: one module per source format, each with ``load(path) -> Graph``.

Imported lazily by format name, so reading ONNX never imports TensorFlow.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import UnknownFormatError

FRONTENDS: dict[str, str] = {
    "onnx": "convertkit.frontends.onnx",
    "caffe2": "convertkit.frontends.caffe2",
    "mxnet": "convertkit.frontends.mxnet",
}
"""Format name -> module providing ``load(path, weights=None) -> Graph``; ``weights`` is the separate
weights file of formats that keep one (Caffe2 init_net, MXNet .params), found beside the model if None."""


def get_loader(fmt: str) -> Callable[..., Graph]:
    if fmt not in FRONTENDS:
        raise UnknownFormatError(f"no frontend reads {fmt!r} models in this version of convertkit",
                                 hint=f"readable formats: {', '.join(sorted(FRONTENDS))}")
    return importlib.import_module(FRONTENDS[fmt]).load


def load(path: str | Path, fmt: str, weights: str | Path | None = None) -> Graph:
    return get_loader(fmt)(path, weights=weights)
