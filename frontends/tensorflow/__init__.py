"""TensorFlow frontend: SavedModel folders, Keras ``.keras``/``.h5`` files and frozen GraphDefs -> IR.

TensorFlow is imported only when one of these formats is loaded. ``loaders`` turns each format into a
frozen GraphDef with its input and output tensors (variables frozen by TensorFlow's own utilities);
``convert`` maps it op by op onto the canonical IR, keeping TensorFlow's NHWC layout (``layout="NHWC"``
on spatial ops, no Transposes added).

Inputs and outputs:

* SavedModel: the signature's (``serving_default`` unless ``signature=``; tag set ``serve`` unless
  ``tag=``), named by the signature's keys. Keras: the model's inputs and outputs, named after them.
* Frozen GraphDef: ``inputs``/``outputs`` name tensors (``node`` or ``node:index``); without them the
  graph's placeholders and its one unconsumed result are used when that is unambiguous, otherwise the
  error lists the candidates. Graph inputs and outputs are named ``node:index``.
* ``inputs`` may name any tensor, not only a placeholder: the graph is cut there (e.g. at the MFCC
  features of a keyword-spotting graph whose own input is a WAV string), with the shape given as
  ``{name: (dims...)}`` or, if None, TensorFlow's static shape. For a SavedModel or Keras model,
  naming a signature input with a shape fixes that input's shape.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import ConvertError, ModelFileError, UsageError
from convertkit.frontends.tensorflow import loaders
from convertkit.frontends.tensorflow.convert import CONVERTERS, InputSpec, OutputSpec, to_ir
from convertkit.frontends.tensorflow.tfgraph import TFGraph, describe_placeholder, ref, split_ref

__all__ = ["CONVERTERS", "from_function", "load"]

FORMATS = ("tf-saved-model", "keras", "keras-h5", "tf-graphdef")


def load(path: str | os.PathLike, weights: str | os.PathLike | None = None, *, format: str,
         inputs: dict[str, tuple | None] | None = None, outputs: list[str] | None = None,
         signature: str | None = None, tag: str | None = None) -> Graph:
    """Read a TensorFlow model (``format`` is one of FORMATS) into the canonical IR."""
    if weights is not None:
        raise UsageError("TensorFlow models take no separate weights file", where=str(weights),
                         hint="a SavedModel keeps its variables in its folder; Keras and frozen graphs "
                              "in the file")
    if format not in FORMATS:
        raise UsageError(f"the TensorFlow frontend does not read {format!r}",
                         hint=f"formats: {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise ModelFileError("no such file or folder", where=str(path))
    if format != "tf-saved-model" and (signature is not None or tag is not None):
        raise UsageError("--signature and --tag apply to SavedModel folders only")
    if format == "tf-saved-model":
        if not path.is_dir():
            raise ModelFileError("a SavedModel is a folder", where=str(path),
                                 hint="pass the folder holding saved_model.pb")
        source = loaders.load_saved_model(path, signature, tag)
    elif format in ("keras", "keras-h5"):
        source = loaders.load_keras(path, format)
    else:
        if path.is_dir():
            raise ModelFileError("a frozen GraphDef is a file, not a folder", where=str(path))
        source = loaders.load_graph_def(path)
    tfg = TFGraph(source.graph_def, str(path))
    in_specs = _inputs(source, tfg, inputs, str(path))
    out_specs = _outputs(source, tfg, outputs, str(path))
    metadata = {"source_format": format, **source.metadata}
    return to_ir(tfg, in_specs, out_specs, source.name, metadata)


def from_function(fn: Any, name: str = "function") -> Graph:
    """Convert a ``tf.function`` concrete function (traced with its input signature): inputs are named
    after its arguments, outputs ``output_0``, ``output_1``... in ``tf.nest.flatten`` order."""
    tf = loaders.import_tf()
    source = loaders.function_source(tf, fn, name)
    tfg = TFGraph(source.graph_def, name)
    return to_ir(tfg, source.inputs, source.outputs, name, {"source_format": "tf-function"})


# ------------------------------------------------------------------------------- inputs/outputs
def _inputs(source: loaders.Source, tfg: TFGraph, requested: dict[str, tuple | None] | None,
            where: str) -> list[InputSpec]:
    if requested is None:
        return source.inputs if source.inputs is not None else _default_inputs(source, tfg, where)
    specs = []
    for name, dims in requested.items():
        known = next((s for s in source.inputs or [] if name in (s.name, s.ref, split_ref(s.ref)[0])), None)
        if known is not None:
            spec = InputSpec(known.name, known.ref, known.dtype, known.shape)
        else:
            r = _existing_ref(tfg, name, where, "--inputs")
            dtype, shape = loaders.tensor_type(source, tfg, r, where)
            spec = InputSpec(r, r, dtype, shape)
        if dims is not None:
            spec.shape = _checked_shape(spec, tuple(dims), where)
        elif spec.shape is None:
            raise UsageError(f"the shape of input {name!r} is not known", where=where,
                             hint=f"give it: --inputs {name}=DIMS (e.g. 1x49x10)")
        specs.append(spec)
    return specs


def _checked_shape(spec: InputSpec, dims: tuple, where: str) -> tuple:
    if spec.shape is not None:
        if len(spec.shape) != len(dims):
            raise UsageError(f"input {spec.name!r} has rank {len(spec.shape)} (shape {list(spec.shape)}), "
                             f"--inputs gives {len(dims)} dims", where=where)
        for have, want in zip(spec.shape, dims):
            if isinstance(have, int) and isinstance(want, int) and have != want:
                raise UsageError(f"input {spec.name!r} has static shape {list(spec.shape)}, --inputs gives "
                                 f"{list(dims)}", where=where)
    return dims


def _default_inputs(source: loaders.Source, tfg: TFGraph, where: str) -> list[InputSpec]:
    placeholders = tfg.placeholders()
    hint = "name the input tensors with --inputs NAME[=DIMS],... (any tensor: the graph is cut there)"
    if not placeholders:
        raise UsageError("the graph has no placeholders to use as inputs", where=where, hint=hint)
    specs = []
    for p in placeholders:
        r = f"{p.name}:0"
        try:
            dtype, shape = loaders.tensor_type(source, tfg, r, where)
        except ConvertError:  # a string or resource placeholder
            dtype, shape = None, None
        if dtype is None or shape is None:
            listing = ", ".join(describe_placeholder(q) for q in placeholders)
            why = "has an unknown rank" if dtype is not None else "has a type convertkit cannot take"
            raise UsageError(f"placeholder {p.name!r} {why}; the graph's placeholders: {listing}",
                             where=where, hint=hint)
        specs.append(InputSpec(r, r, dtype, shape))
    return specs


def _outputs(source: loaders.Source, tfg: TFGraph, requested: list[str] | None,
             where: str) -> list[OutputSpec]:
    if requested is None:
        if source.outputs is not None:
            return source.outputs
        sinks = tfg.sinks()
        if len(sinks) == 1:
            r = f"{sinks[0].name}:0"
            return [OutputSpec(r, r)]
        listing = ", ".join(f"{n.name} ({n.op})" for n in sinks[:12]) or "none"
        raise UsageError("cannot tell the graph's outputs", where=where,
                         hint=f"name them with --outputs; nodes nothing reads: {listing}")
    specs = []
    for name in requested:
        known = next((s for s in source.outputs or [] if name in (s.name, s.ref, split_ref(s.ref)[0])), None)
        if known is not None:
            specs.append(known)
        else:
            r = _existing_ref(tfg, name, where, "--outputs")
            specs.append(OutputSpec(r, r))
    return specs


def _existing_ref(tfg: TFGraph, name: str, where: str, flag: str) -> str:
    r = ref(name)
    node_name = split_ref(r)[0]
    if node_name not in tfg.nodes:
        close = difflib.get_close_matches(node_name, list(tfg.nodes), n=3)
        placeholders = ", ".join(describe_placeholder(p) for p in tfg.placeholders()[:6]) or "none"
        hint = ((f"did you mean {', '.join(close)}? " if close else "")
                + f"the graph's placeholders: {placeholders}")
        raise UsageError(f"{flag}: the graph has no tensor {name!r}", where=where, hint=hint)
    return r
