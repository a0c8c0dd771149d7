"""The library API: load any supported model into the IR, write it in another format, or both."""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable

from convertkit import backends, frontends
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.quantize.base import QType
from convertkit.detect import detect_format, target_from_path
from convertkit.errors import UsageError
from convertkit.pipeline import make_manager

PathLike = str | os.PathLike


def load(path: PathLike, *, format: str | None = None, weights: PathLike | None = None,
         normalize: bool = True, **frontend_options: Any) -> Graph:
    """Read a model into the canonical IR.

    ``format`` overrides detection (see ``convertkit.detect.FORMATS``). ``weights`` names the separate
    weights file of formats that keep one (Caffe2 init_net, MXNet .params); by default it is found
    beside the model. With ``normalize`` (the default) shapes are inferred, constants folded and
    Identity/Dropout/dead nodes removed. ``frontend_options`` go to the frontend: for TensorFlow,
    ``inputs`` ({name: shape or None}, to cut the graph there), ``outputs`` ([name]), ``signature``, ``tag``.
    """
    fmt = format or detect_format(path)
    graph = frontends.load(path, fmt, weights=weights, **frontend_options)
    if normalize:
        make_manager(None).run(graph)
    return graph


def save(graph: Graph, path: PathLike, *, format: str | None = None, **options: Any) -> Path:
    """Write ``graph`` to ``path`` in ``format`` (default: from the extension). Atomic: on error no
    file is left behind. Options go to the backend, e.g. ``opset=13`` or ``external_data=True`` for ONNX."""
    target = format or target_from_path(path)
    if target is None:
        raise UsageError(f"cannot tell the output format from {str(path)!r}", hint="pass format=...")
    from convertkit import __version__

    if target == "onnx":
        options.setdefault("producer_version", __version__)
    return backends.export(graph, path, target, **options)


def convert(src: PathLike, *, to: str | None = None, output: PathLike, format: str | None = None,
            weights: PathLike | None = None, dump_after: str | None = None,
            on_dump: Callable[[str, Graph], None] | None = None,
            frontend_options: dict[str, Any] | None = None, input_layout: str | None = None,
            output_layout: str | None = None, quantize: str | None = None, calibration: Any = None,
            calibration_method: str = "minmax", percentile: float = 99.99, quantized_io: str = "int8",
            log: Callable[[str], None] | None = None, quiet: bool = True,
            on_graph: Callable[[Graph], None] | None = None, **options: Any) -> Path:
    """Convert the model at ``src`` into ``to`` at ``output``; returns the written path.

    ``dump_after`` names a pipeline pass after which ``on_dump(pass_name, graph)`` is called.
    ``frontend_options`` go to the frontend (see :func:`load`); other options go to the backend
    (``opset=...`` for ONNX, ``budget=...`` for the C bundle) and to the pipeline, which legalizes for
    that target. ``input_layout``/``output_layout`` ("NCHW" or "NHWC") set the layout of the written
    model's image-like inputs/outputs; by default they keep the source model's.

    ``quantize="int8"`` quantizes a float model after legalization from ``calibration`` (a .npz/.npy
    path, a folder of them, or a list of {input name: array} feeds) with ``calibration_method``
    ("minmax" or "percentile"); ``quantized_io`` "int8" makes the inputs/outputs int8, "float" keeps
    them float with quantize/dequantize steps inside. ``log`` receives one-line summaries (the
    quantization error, the backend's sizes); ``quiet=False`` shows progress bars on a terminal.
    ``on_graph`` is called with the graph as it is written (legalized, quantized).
    """
    target = to or target_from_path(output)
    if target is None:
        raise UsageError("no target format", hint="pass to='onnx' (or an output path ending in .onnx)")
    exporter = backends.get_exporter(target)  # fail on an unknown target before the (possibly slow) load
    if quantize not in (None, "int8"):
        raise UsageError(f"--quantize {quantize!r} is not supported", hint="--quantize int8")
    if quantize is None and calibration is not None:
        raise UsageError("--calibration is given but --quantize is not", hint="add --quantize int8")
    manager = make_manager(target, dump_after=dump_after, on_dump=on_dump, input_layout=input_layout,
                           output_layout=output_layout, **options)
    graph = load(src, format=format, weights=weights, normalize=False, **(frontend_options or {}))
    manager.run(graph)
    if quantize is not None:
        from convertkit.pipeline import quantize as ptq

        if any(QType.of(t) is not None for t in graph.tensors if not t.is_const):
            raise UsageError("the model is already quantized", hint="drop --quantize: its parameters are kept")
        graph, report = ptq(graph, calibration, method=calibration_method, percentile=percentile,
                            io=quantized_io, quiet=quiet)
        if log is not None:
            for err in report.values():
                log(f"int8 quantization error on the calibration data: {err}")
    if on_graph is not None:
        on_graph(graph)
    params = inspect.signature(exporter).parameters
    if log is not None and "log" in params:
        options["log"] = log
    if "quiet" in params:
        options["quiet"] = quiet
    return save(graph, output, format=target, **options)
