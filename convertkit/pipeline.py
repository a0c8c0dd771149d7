"""The conversion pipeline: named stages of passes between a frontend and a backend.

    load ──▶ normalize ──▶ optimize ──▶ legalize ──▶ export

``optimize`` folds BatchNorms, bias Adds and Pads into the layers next to them, collapses reshape
chains, merges common subexpressions, converts every spatial op to the target's layout and cancels the
transposes that meet, and fuses activations where the target runs them fused. ``legalize`` rewrites
what the target still rejects (decompositions) or fails listing every node it cannot lower. The target
declares what it accepts as ``Capabilities``. Each stage is a list of named passes (see
``canonical_ir.passes``); ``--print-passes`` lists them and ``--dump-after NAME`` prints the graph
after one.
"""
from __future__ import annotations

from typing import Any, Callable

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes import (
    NORMALIZE, Pass, PassManager, eliminate_common_subexpressions, fold_batch_norms, fold_constants,
    fold_pads, optimize_transposes, remove_dead_code, simplify_shapes)
from convertkit.canonical_ir.passes.fusion import fusion_pass
from convertkit.canonical_ir.passes.infer import bind_symbolic_dims
from convertkit.canonical_ir.passes.qdq import lower_to_qdq
from convertkit.canonical_ir.passes.layout import check_layout, io_layout_pass, layout_pass
from convertkit.canonical_ir.passes.legalize import Capabilities, legalize_pass
from convertkit.errors import UsageError


def capabilities_for(target: str, **options: Any) -> Capabilities:
    """What ``target`` accepts, given its options (the ONNX opset, the C bundle's precision...):
    the backend module's own ``capabilities(**options)``."""
    import importlib

    from convertkit.backends import BACKENDS

    if target not in BACKENDS:
        raise UsageError(f"unknown target {target!r}", hint=f"targets: {', '.join(sorted(BACKENDS))}")
    return importlib.import_module(BACKENDS[target]).target_capabilities(**options)


def optimize_passes(caps: Capabilities, input_layout: str | None = None,
                    output_layout: str | None = None) -> list[Pass]:
    """The optimize stage for a target with capabilities ``caps``."""
    passes = [Pass.of(simplify_shapes), Pass.of(fold_batch_norms), Pass.of(fold_pads),
              Pass("cse", eliminate_common_subexpressions, "Merge identical constants, and identical ops on "
                   "the same inputs."),
              Pass.of(io_layout_pass(check_layout(input_layout, "--input-layout"),
                                     check_layout(output_layout, "--output-layout"))),
              Pass.of(layout_pass(caps.layout, caps.any_layout)), Pass.of(optimize_transposes)]
    if caps.fused_activations:
        passes.append(Pass.of(fusion_pass(caps)))
    return passes + [Pass.of(fold_constants), Pass.of(remove_dead_code)]


def stages_for(target: str | None, *, input_layout: str | None = None, output_layout: str | None = None,
               **options: Any) -> list[tuple[str, list[Pass]]]:
    """The pass stages run before writing ``target`` (None: just loading). ``options`` are the
    target's (``opset`` for ONNX); the layouts choose the graph interface (None: the source's)."""
    if target is None:
        return [("normalize", list(NORMALIZE))]
    return stages_for_capabilities(capabilities_for(target, **options), input_layout, output_layout)


def stages_for_capabilities(caps: Capabilities, input_layout: str | None = None,
                            output_layout: str | None = None) -> list[tuple[str, list[Pass]]]:
    """normalize -> optimize -> legalize for any target that declares ``caps``."""
    legal = [Pass.of(legalize_pass(caps))]
    if caps.fused_activations:  # what a decomposition exposed (a split grouped conv's activation)
        legal.append(Pass.of(fusion_pass(caps)))
    normalize = list(NORMALIZE)
    if not caps.integer_ops:
        normalize.insert(0, Pass.of(lower_to_qdq))
    if caps.static_shapes:
        normalize.insert(0, Pass.of(bind_symbolic_dims))
    return [("normalize", normalize),
            ("optimize", optimize_passes(caps, input_layout, output_layout)),
            ("legalize", legal)]


def make_manager(target: str | None = None, *, dump_after: str | None = None,
                 on_dump: Callable[[str, Graph], None] | None = None,
                 validate: bool = False, **options: Any) -> PassManager:
    """A PassManager for ``target``; ``options`` as for :func:`stages_for`."""
    return PassManager(stages_for(target, **options), dump_after=dump_after, on_dump=on_dump,
                       validate=validate)


def normalize(graph: Graph, *, validate: bool = False) -> Graph:
    """Shape inference, constant folding, identity and dead-code removal, to a fixed point."""
    return make_manager(None, validate=validate).run(graph)


def quantize(graph: Graph, calibration: Any, *, method: str = "minmax", percentile: float = 99.99,
             io: str = "int8", quiet: bool = True) -> tuple[Graph, dict]:
    """Post-training int8 quantization of a legalized float graph (TFLite's scheme, see
    ``canonical_ir/quantize/ptq.py``) from ``calibration`` (a path: .npz, .npy or a folder of them; or
    a list of feeds). Returns the quantized graph and the error report measured on that data."""
    from convertkit.canonical_ir.quantize import (
        calibrate, load_calibration_data, quantization_report, quantize_graph)
    from convertkit.progress import Progress

    if io not in ("int8", "float"):
        raise UsageError(f"quantized io {io!r} is not int8 or float")
    if calibration is None:
        raise UsageError("--quantize int8 needs calibration data", hint="add --calibration DATA (.npz, .npy "
                         "or a folder of them, holding samples of the model's inputs)")
    feeds = (load_calibration_data(calibration, graph) if isinstance(calibration, (str, bytes)) or
             hasattr(calibration, "__fspath__") else list(calibration))
    with Progress(len(feeds), "calibrating", quiet=quiet) as bar:
        ranges = calibrate(graph, feeds, method, percentile, on_batch=lambda i: bar.update(i + 1))
    q_graph = quantize_graph(graph, ranges, io=io)
    report = quantization_report(graph, q_graph, feeds)
    return q_graph, report
