"""Reading TensorFlow model files into a frozen GraphDef plus its input and output tensors.

* SavedModel, TF2 (an object graph): ``tf.saved_model.load``, the chosen signature's concrete function,
  frozen with ``convert_variables_to_constants_v2`` (its only grappler pass is function inlining; control
  flow is kept as While/If so it can be named in errors). Optimizer slot variables, which TF 2.3-era
  files reference in a way TF 2.16+ cannot restore (``'_UserObject' object has no attribute
  'add_slot'``), are dropped from a temporary copy of ``saved_model.pb`` first.
* SavedModel, TF1 (no object graph): the v1 loader in a session, frozen with
  ``graph_util.convert_variables_to_constants``; signature inputs may be inner tensors (a
  ``tf.Example`` parser sits before them), which is simply where the graph is cut.
* Keras ``.keras``/``.h5``: the stored config is checked first, so a Lambda layer or custom object is
  refused before Keras sees the file (Keras safe mode is on as well); Keras 2.4 DepthwiseConv2D configs
  carry a ``groups`` key Keras 3 rejects, which the loader's own subclass drops. The model is traced at
  ``training=False`` and frozen like a SavedModel.
* Frozen GraphDef ``.pb`` (binary) or ``.pbtxt`` (text).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convertkit.errors import ModelFileError, UnsafePathError, UsageError
from convertkit.frontends.tensorflow.convert import InputSpec, OutputSpec
from convertkit.frontends.tensorflow.tfgraph import TFGraph, np_dtype, ref

DEFAULT_SIGNATURE = "serving_default"
BATCH = "N"


@dataclass
class Source:
    """A frozen graph and what the model file says its inputs and outputs are."""

    graph_def: Any
    inputs: list[InputSpec] | None
    """None when the file names no inputs (a frozen GraphDef); [] for a signature without inputs."""
    outputs: list[OutputSpec] | None
    name: str
    tf_graph: Any = None
    """A tf.Graph holding graph_def (for the dtype and static shape of any tensor), if it imports."""
    metadata: dict[str, Any] = field(default_factory=dict)


def import_tf() -> Any:
    """TensorFlow, imported on first use only (and told to keep its C++ start-up chatter quiet)."""
    # quiet start-up (C++ INFO logs, the oneDNN notice) and oneDNN's reordered float arithmetic off, so
    # TensorFlow as a reference gives the same digits on every machine; a user's own setting wins
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
    except ImportError:
        raise UsageError("reading TensorFlow models needs TensorFlow",
                         hint='pip install "convertkit[tf]"') from None
    tf.get_logger().setLevel("ERROR")
    return tf


def _dims(shape: Any, name: str) -> tuple | None:
    """A TF static shape as IR dims: the unknown first dim is the batch ``N``, others get names."""
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    dims = list(shape) if not hasattr(shape, "as_list") else shape.as_list()
    base = name.split(":")[0].replace("/", "_")
    return tuple(d if d is not None and d >= 0 else (BATCH if i == 0 else f"{base}_d{i}")
                 for i, d in enumerate(dims))


def _spec(name: str, tensor: Any, where: str = "") -> InputSpec:
    what = f"{where}: input {name!r}" if where else f"input {name!r}"
    dtype = np_dtype(tensor.dtype.as_datatype_enum, what)
    shape = _dims(tensor.shape, name)
    if shape is None:
        raise UsageError(f"input {name!r} has an unknown rank", where=where or None,
                         hint=f"give its shape: --inputs {name}=DIMS")
    return InputSpec(name, ref(tensor.name), dtype, shape)


# ------------------------------------------------------------------------------------ SavedModel
def load_saved_model(path: Path, signature: str | None, tag: str | None) -> Source:
    pb = path / "saved_model.pb"
    if not pb.is_file():
        hint = "a SavedModel folder holds saved_model.pb and variables/"
        if (path / "saved_model.pbtxt").is_file():
            raise ModelFileError("text SavedModels (saved_model.pbtxt) are not supported", where=str(path),
                                 hint=hint)
        raise ModelFileError("not a SavedModel folder (no saved_model.pb)", where=str(path), hint=hint)
    tf = import_tf()
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(pb.read_bytes())
    except Exception:
        raise ModelFileError("saved_model.pb is not a valid SavedModel protobuf", where=str(pb),
                             hint="the file may be truncated") from None
    tags = [t for t in (tag or "serve").split(",") if t]
    meta = next((m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags)), None)
    if meta is None:
        have = "; ".join(",".join(m.meta_info_def.tags) or "(none)" for m in sm.meta_graphs)
        raise UsageError(f"the SavedModel has no meta graph tagged {','.join(tags)!r}", where=str(path),
                         hint=f"its tag sets: {have} (choose with --tag)")
    sig_name = choose_signature(meta, signature, path)
    metadata = {"tf_version": meta.meta_info_def.tensorflow_version, "signature": sig_name}
    if len(meta.object_graph_def.nodes):
        return _saved_model_v2(tf, path, sm, meta, tags, sig_name, metadata)
    return _saved_model_v1(tf, path, meta, tags, sig_name, metadata)


def choose_signature(meta: Any, signature: str | None, path: Path) -> str:
    names = [k for k in meta.signature_def if not k.startswith("__")]
    if signature is not None:
        if signature not in meta.signature_def:
            raise UsageError(f"the SavedModel has no signature {signature!r}", where=str(path),
                             hint=f"its signatures: {', '.join(sorted(names)) or 'none'}")
        return signature
    if DEFAULT_SIGNATURE in names:
        return DEFAULT_SIGNATURE
    if len(names) == 1:
        return names[0]
    raise UsageError(f"the SavedModel has no {DEFAULT_SIGNATURE!r} signature", where=str(path),
                     hint=f"choose one with --signature: {', '.join(sorted(names)) or 'none'}")


@contextmanager
def without_slot_variables(path: Path, sm: Any) -> Iterator[Path]:
    """The SavedModel folder, or a temporary copy whose object graph has no optimizer slot variables
    (the model file is never modified; the copy links to the original variables and assets)."""
    if not any(len(n.slot_variables) for m in sm.meta_graphs for n in m.object_graph_def.nodes):
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="convertkit-savedmodel-"))
    try:
        for m in sm.meta_graphs:
            for n in m.object_graph_def.nodes:
                del n.slot_variables[:]
        (tmp / "saved_model.pb").write_bytes(sm.SerializeToString())
        for entry in path.iterdir():
            if entry.name not in ("saved_model.pb", "fingerprint.pb"):
                os.symlink(entry.resolve(), tmp / entry.name)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _saved_model_v2(tf: Any, path: Path, sm: Any, meta: Any, tags: list[str], sig_name: str,
                    metadata: dict) -> Source:
    with without_slot_variables(path, sm) as folder:
        try:
            obj = tf.saved_model.load(str(folder), tags=tags)
        except Exception as e:
            raise ModelFileError(f"TensorFlow cannot load this SavedModel: {_first_line(e)}",
                                 where=str(path)) from None
        fn = obj.signatures[sig_name]
        frozen = freeze(tf, fn, str(path))
    in_specs = tf.nest.flatten(fn.structured_input_signature)
    placeholders = [t for t in frozen.inputs if t.dtype != tf.resource]
    if len(in_specs) != len(placeholders):
        raise ModelFileError(f"signature {sig_name!r} has {len(in_specs)} inputs but its function takes "
                             f"{len(placeholders)}", where=str(path))
    args, kwargs = fn.structured_input_signature
    keys = sorted(kwargs) if isinstance(kwargs, dict) and not args else [s.name for s in in_specs]
    inputs = [_spec(k, t, str(path)) for k, t in zip(keys, placeholders)]
    outs = fn.structured_outputs
    out_keys = sorted(outs) if isinstance(outs, dict) else [f"output_{i}" for i in range(len(frozen.outputs))]
    outputs = [OutputSpec(k, ref(t.name)) for k, t in zip(out_keys, frozen.outputs)]
    return Source(frozen.graph.as_graph_def(), inputs, outputs, path.name, frozen.graph, metadata)


def freeze(tf: Any, fn: Any, source: str) -> Any:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        return convert_variables_to_constants_v2(fn, lower_control_flow=False)
    except Exception as e:
        raise ModelFileError(f"TensorFlow could not freeze the model's variables: {_first_line(e)}",
                             where=source) from None


def _saved_model_v1(tf: Any, path: Path, meta: Any, tags: list[str], sig_name: str, metadata: dict) -> Source:
    sig = meta.signature_def[sig_name]
    out_items = sorted(sig.outputs.items())
    _refuse_variable_updates(meta.graph_def, [v.name for v in sig.inputs.values()],
                             [v.name for _, v in out_items], str(path))
    graph = tf.Graph()
    try:
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            tf.compat.v1.saved_model.loader.load(sess, tags, str(path))
            names = sorted({v.name.split(":")[0] for _, v in out_items})
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), names)
    except Exception as e:
        raise ModelFileError(f"TensorFlow cannot load this TF1 SavedModel: {_first_line(e)}",
                             where=str(path)) from None
    frozen = tf.Graph()
    with frozen.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    inputs = []
    for key, info in sorted(sig.inputs.items()):
        t = (frozen if _has_tensor(frozen, info.name) else graph).get_tensor_by_name(info.name)
        inputs.append(_spec(key, t, str(path)))
    outputs = [OutputSpec(k, ref(v.name)) for k, v in out_items]
    metadata["tf1"] = True
    name = path.parent.name if path.name.isdigit() else path.name  # serving layout: <model>/<version>/
    return Source(gd, inputs, outputs, name, frozen, metadata)


UPDATES = frozenset({"Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp",
                     "AssignSubVariableOp", "ScatterUpdate", "ScatterAdd", "ResourceScatterUpdate"})


def _refuse_variable_updates(graph_def: Any, inputs: list[str], outputs: list[str], source: str) -> None:
    """A signature whose outputs are variable updates (TF1 counters, training steps) cannot be frozen:
    name those ops in the usual unsupported-op error rather than fail inside TensorFlow."""
    from convertkit.frontends.tensorflow.tfgraph import STATEFUL, check_supported, select

    tfg = TFGraph(graph_def, source)
    try:
        nodes = select(tfg, {ref(i) for i in inputs}, [ref(o) for o in outputs])
    except Exception:
        return
    updates = [n for n in nodes if n.op in UPDATES]
    if updates:
        check_supported(updates, lambda op: op not in STATEFUL, source)


def _has_tensor(g: Any, name: str) -> bool:
    try:
        g.get_tensor_by_name(name)
        return True
    except (KeyError, ValueError):
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


# ----------------------------------------------------------------------------------------- Keras
SERIALIZATION_MARKERS = {"__keras_tensor__", "__tensor__", "__numpy__", "__tuple__", "__typespec__",
                         "__bytes__", "__ellipsis__", "__slice__", "__list__"}
"""Class names Keras 3 uses for plain data in configs (not classes to instantiate)."""
CODE_CLASSES = {"Lambda": "a Lambda layer (its Python code would run when loading)",
                "__lambda__": "a serialized Python lambda",
                "TFOpLambda": "a TFOpLambda layer (Keras 2 wrapped TensorFlow function)",
                "SlicingOpLambda": "a SlicingOpLambda layer (Keras 2 wrapped TensorFlow function)"}


def read_keras_config(path: Path, fmt: str) -> dict:
    """The model config stored in a .keras archive or an HDF5 file, without running Keras."""
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise ModelFileError("the HDF5 file holds weights only, no model config", where=str(path),
                                     hint="save the whole model (model.save), not save_weights")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ModelFileError:
        raise
    except Exception as e:
        raise ModelFileError(f"not a readable Keras model file: {_first_line(e)}", where=str(path)) from None


def unsafe_objects(config: Any) -> list[str]:
    """Every Lambda layer, serialized function or custom (non-Keras) class in a model config."""
    import_tf()
    import keras

    found: list[str] = []
    builtin_modules = [keras.layers, keras.initializers, keras.regularizers, keras.constraints,
                       keras.activations, keras.models, keras.losses, keras.metrics, keras.optimizers,
                       keras.dtype_policies]

    def is_builtin(cls: str) -> bool:
        return cls in ("Functional", "Sequential", "Model", "function") or any(
            callable(getattr(m, cls, None)) for m in builtin_modules)

    def walk(obj: Any) -> None:
        if isinstance(obj, list):
            for x in obj:
                walk(x)
            return
        if not isinstance(obj, dict):
            return
        cls = obj.get("class_name")
        if isinstance(cls, str):
            name = obj.get("config", {}).get("name") if isinstance(obj.get("config"), dict) else None
            label = f"{cls} {name!r}" if name else cls
            module = obj.get("module")
            registered = obj.get("registered_name")
            if cls in CODE_CLASSES:
                found.append(f"{label}: {CODE_CLASSES[cls]}")
            elif cls not in SERIALIZATION_MARKERS:
                if module is not None and not str(module).startswith("keras"):
                    found.append(f"{label} (custom object from module {module!r})")
                elif isinstance(registered, str) and ">" in registered:
                    found.append(f"{label} (custom object registered as {registered!r})")
                elif module is None and not is_builtin(cls):
                    found.append(f"{label} (not a built-in Keras class)")
                elif cls == "function" and module is not None and not str(module).startswith("keras"):
                    found.append(f"function {obj.get('config')!r} from module {module!r}")
        for key, value in obj.items():
            if key != "class_name":
                walk(value)

    walk(config)
    return found


def legacy_objects() -> dict[str, Any]:
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        """Keras 2.4 wrote ``groups: 1`` into DepthwiseConv2D configs; Keras 3 rejects the key."""

        def __init__(self, *args: Any, groups: int = 1, **kwargs: Any) -> None:
            if groups != 1:
                raise ValueError(f"DepthwiseConv2D with groups={groups}")
            super().__init__(*args, **kwargs)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def load_keras(path: Path, fmt: str) -> Source:
    config = read_keras_config(path, fmt)
    bad = unsafe_objects(config)
    if bad:
        shown = "; ".join(bad[:4]) + (f"; and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise UnsafePathError(f"refusing to load a Keras model holding code: {shown}", where=str(path),
                              hint="convertkit loads Keras files in safe mode and never runs code from a "
                                   "model file; replace Lambda layers and custom objects with built-in "
                                   "layers")
    tf = import_tf()
    import keras

    suffix = ".keras" if fmt == "keras" else ".h5"
    with with_suffix(path, suffix) as p:
        try:
            model = keras.saving.load_model(str(p), compile=False, safe_mode=True,
                                            custom_objects=legacy_objects())
        except Exception as e:
            raise ModelFileError(f"Keras cannot load this model: {_first_line(e)}", where=str(path)) from None
    return keras_source(tf, model, path.stem, str(path))


@contextmanager
def with_suffix(path: Path, suffix: str) -> Iterator[Path]:
    """Keras picks its reader by file extension; link a differently named file under the right one."""
    if path.suffix == suffix or (suffix == ".h5" and path.suffix == ".hdf5"):
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="convertkit-keras-"))
    try:
        link = tmp / f"model{suffix}"
        os.symlink(path.resolve(), link)
        yield link
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def keras_source(tf: Any, model: Any, name: str, source: str) -> Source:
    """Trace a Keras model at inference (training=False) and freeze it."""
    specs = [tf.TensorSpec(t.shape, t.dtype, name=clean_name(t.name)) for t in model.inputs]

    def call(*xs: Any) -> Any:
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)

    try:
        fn = tf.function(call).get_concrete_function(*specs)
    except Exception as e:
        raise ModelFileError(f"TensorFlow could not trace the Keras model: {_first_line(e)}",
                             where=source) from None
    frozen = freeze(tf, fn, source)
    placeholders = [t for t in frozen.inputs if t.dtype != tf.resource]
    inputs = [_spec(clean_name(t.name), p, source) for t, p in zip(model.inputs, placeholders)]
    names = output_names(model, len(frozen.outputs))
    outputs = [OutputSpec(n, ref(t.name)) for n, t in zip(names, frozen.outputs)]
    return Source(frozen.graph.as_graph_def(), inputs, outputs, getattr(model, "name", name) or name,
                  frozen.graph, {"keras_params": int(model.count_params())})


def function_source(tf: Any, fn: Any, name: str) -> Source:
    """A concrete function, frozen; inputs named after its placeholders, outputs ``output_<i>``."""
    frozen = freeze(tf, fn, name)
    placeholders = [t for t in frozen.inputs if t.dtype != tf.resource]
    inputs = [_spec(clean_name(t.name), t) for t in placeholders]
    outputs = [OutputSpec(f"output_{i}", ref(t.name)) for i, t in enumerate(frozen.outputs)]
    return Source(frozen.graph.as_graph_def(), inputs, outputs, name, frozen.graph)


def clean_name(name: str) -> str:
    return name.split(":")[0]


def output_names(model: Any, n: int) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != n:
        names = []
        for t in model.outputs:
            history = getattr(t, "_keras_history", None)
            names.append(history[0].name if history else "")
    if len(set(names)) != n or not all(names):
        names = [f"output_{i}" for i in range(n)]
    return names


# -------------------------------------------------------------------------------------- GraphDef
def read_graph_def(path: Path) -> Any:
    tf = import_tf()
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    data = path.read_bytes()
    if path.name == "saved_model.pb" or (path.parent / "variables").is_dir():
        sm = saved_model_pb2.SavedModel()
        try:
            sm.ParseFromString(data)
            if sm.meta_graphs:
                raise UsageError("this is a SavedModel's saved_model.pb, not a frozen GraphDef",
                                 where=str(path), hint=f"pass the folder: convertkit {path.parent} ...")
        except UsageError:
            raise
        except Exception:
            pass
    gd = tf.compat.v1.GraphDef()
    try:
        if path.suffix == ".pbtxt":
            text_format.Parse(data.decode("utf-8"), gd)
        else:
            gd.ParseFromString(data)
    except Exception:
        raise ModelFileError("not a TensorFlow GraphDef (the protobuf does not parse)", where=str(path),
                             hint="expected a frozen graph written by tf.io.write_graph or freeze_graph"
                             ) from None
    if not gd.node or any(not n.op or not n.name for n in gd.node):
        raise ModelFileError("not a TensorFlow GraphDef (no nodes with names and ops)", where=str(path),
                             hint="expected a frozen graph written by tf.io.write_graph or freeze_graph")
    return gd


def import_graph(gd: Any) -> Any | None:
    """gd in a tf.Graph (for tensor dtypes and static shapes), or None if TF cannot import it."""
    tf = import_tf()
    g = tf.Graph()
    try:
        with g.as_default():
            tf.graph_util.import_graph_def(gd, name="")
    except Exception:
        return None
    return g


def load_graph_def(path: Path) -> Source:
    gd = read_graph_def(path)
    g = import_graph(gd)
    return Source(gd, None, None, path.stem, g)


def tensor_type(source: Source, tfg: TFGraph, r: str, where: str) -> tuple[np.dtype, tuple | None]:
    """dtype and static IR shape of the tensor ``r`` of the source graph."""
    if source.tf_graph is not None:
        try:
            t = source.tf_graph.get_tensor_by_name(r)
        except (KeyError, ValueError):
            t = None
        if t is not None:
            return np_dtype(t.dtype.as_datatype_enum, where), _dims(t.shape, r)
    node = tfg.node_of(r)
    for key in ("dtype", "T", "out_type"):
        v = node.attrs.get(key) if node is not None else None
        if v is not None and hasattr(v, "code"):
            shape = node.attrs.get("shape") if node.op == "Placeholder" else None
            return np_dtype(v.code, where), (_dims(shape, r) if shape is not None else None)
    raise UsageError(f"cannot tell the type of tensor {r}", where=where)
