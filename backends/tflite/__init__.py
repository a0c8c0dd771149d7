"""TFLite backend: canonical IR -> a ``.tflite`` flatbuffer (schema v3) that LiteRT and TFLite Micro run.

float32, and int8 with TFLite's quantization scheme exactly as the IR carries it (per-channel
symmetric weights on ``quantized_dimension``, int32 biases, int8 or float I/O with QUANTIZE/DEQUANTIZE
at the edges). NHWC, TFLite's fused activations, each builtin at the lowest version supporting what it
uses, deduplicated 16-byte-aligned buffers, a ``serving_default`` signature, and a symbolic batch as
``shape_signature`` -1.

A Reshape whose target is computed at run time from the batch (Keras' Flatten) is written with a
constant shape holding -1. A graph whose shapes still depend on its symbolic batch through run-time
shape arithmetic (``Shape`` ops, as in Keras RNNs' zero states) is written with the batch bound to 1
and that arithmetic folded: a static model, as TFLite Micro needs anyway.

Modules: ``capabilities`` (what legalization must produce), ``ops``/``ops_elementwise``/``ops_shape``
(one builder per canonical op, with its constraint and version rule), ``model`` (tensors, buffers,
operator codes, signature), ``schema_writer`` (flatbuffer tables of the TFLite schema).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from convertkit.backends.tflite.capabilities import capabilities
from convertkit.backends.tflite.model import Model
from convertkit.backends.tflite.ops import BUILDERS, Ctx
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.legalize import Capabilities, LegalizeError, legalized, rejected


def target_capabilities(**options: Any) -> Capabilities:
    """What legalization must produce for TFLite (options such as ``quantize`` do not change it)."""
    return capabilities()


def to_bytes(graph: Graph, **options: Any) -> bytes:
    """The flatbuffer for ``graph``; raises one LegalizeError listing every node TFLite cannot take."""
    return _build(graph)[0]


def _build(graph: Graph) -> tuple[bytes, Model]:
    caps = capabilities()
    g = legalized(graph, caps)
    if g is graph:
        g = graph.copy()  # _prepare changes it
    _prepare(g)
    left = rejected(g, caps)
    if left:
        raise LegalizeError(caps.name, {n: (g.node(n).op, why) for n, why in left.items()}, caps.hint)
    model = Model()
    ctx = Ctx(g, model)
    ins = [ctx.t(n) for n in g.inputs]
    for node in g.topo_order():
        BUILDERS[node.op](ctx, node)
        ctx.flush()
    outs = [ctx.t(n) for n in g.outputs]
    model.prune(outs)
    return model.to_bytes(ins, outs, list(g.inputs), list(g.outputs), name=g.name or "main"), model


def export(graph: Graph, path: str | os.PathLike, *, log: Callable[[str], None] | None = None,
           **options: Any) -> Path:
    """Write ``graph`` to ``path`` atomically (temp file in the same folder, then rename); ``log`` gets a
    one-line summary (operators, file and weight bytes)."""
    path = Path(path)
    data, model = _build(graph)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".convertkit-", suffix=".tflite", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; the model gets a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if log is not None:
        log(f"TFLite: {len(model.ops)} operators, {len(data)} bytes ({sum(map(len, model.buffers))} bytes of "
            f"constant data in {len(model.buffers) - 1} buffers)")
    return path


def _prepare(g: Graph) -> None:
    """Reshapes whose target shape is computed at run time get it as a constant (the symbolic dim as -1);
    if shape arithmetic is still left, the symbolic batch is bound to 1 and the arithmetic folded."""
    from convertkit.canonical_ir.passes import fold_constants, infer_shapes, remove_dead_code
    from convertkit.canonical_ir.passes.infer import bind_symbolic_dims

    changed = False
    for node in g.topo_order():
        if node.op != "Reshape" or g.const_value(g.inputs_of(node)[1]) is not None:
            continue
        shape = g.tensor(g.outputs_of(node)[0]).shape
        if shape is not None and sum(1 for d in shape if not isinstance(d, int)) <= 1:
            dims = np.asarray([d if isinstance(d, int) else -1 for d in shape], np.int64)
            g.set_input(node, 1, g.add_const(dims, f"{node.name}_shape"))
            changed = True
    if changed:
        remove_dead_code(g)
    if any(n.op == "Shape" for n in g.nodes):
        bind_symbolic_dims(g)
        for _ in range(4):
            infer_shapes(g)
            if not fold_constants(g):
                break
        remove_dead_code(g)


__all__ = ["export", "target_capabilities", "to_bytes"]
