"""Backends: one module or package per target, each with ``export(graph, path, **options)``."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import UsageError

BACKENDS: dict[str, str] = {
    "onnx": "convertkit.backends.onnx",
    "tflite": "convertkit.backends.tflite",
    "c-bundle": "convertkit.backends.c_bundle",
}
"""Target name -> module providing ``export(graph, path, **options) -> Path`` and
``target_capabilities(**options) -> Capabilities`` (what legalization must produce for it)."""


def get_exporter(target: str) -> Callable[..., Path]:
    if target not in BACKENDS:
        raise UsageError(f"unknown target {target!r}", hint=f"targets: {', '.join(sorted(BACKENDS))}")
    return importlib.import_module(BACKENDS[target]).export


def export(graph: Graph, path: str | Path, target: str, **options) -> Path:
    return get_exporter(target)(graph, path, **options)
