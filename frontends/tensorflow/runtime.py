"""Running a TensorFlow model file in TensorFlow itself, fed and named the way the converted graph is.

This is the reference side of ``--verify`` and of the tests: outputs come back in the order and under
the names of the converted graph's outputs (signature keys, Keras output names, or ``node:index``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from convertkit.errors import UsageError
from convertkit.frontends.tensorflow import loaders
from convertkit.frontends.tensorflow.tfgraph import ref


def run(path: str | os.PathLike, fmt: str, feeds: Mapping[str, np.ndarray], *,
        outputs: list[str] | None = None, signature: str | None = None,
        tag: str | None = None) -> dict[str, np.ndarray]:
    """Outputs of the model at ``path`` (format ``fmt``) on ``feeds`` (input name -> array)."""
    path = Path(path)
    if fmt == "tf-saved-model":
        return run_saved_model(path, feeds, signature=signature, tag=tag, outputs=outputs)
    if fmt in ("keras", "keras-h5"):
        return run_keras(path, fmt, feeds)
    if fmt == "tf-graphdef":
        return run_graph_def(path, feeds, outputs)
    raise UsageError(f"cannot run {fmt!r} models in TensorFlow")


def run_saved_model(path: Path, feeds: Mapping[str, np.ndarray], *, signature: str | None = None,
                    tag: str | None = None, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    tf = loaders.import_tf()
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    tags = [t for t in (tag or "serve").split(",") if t]
    meta = next(m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags))
    sig_name = loaders.choose_signature(meta, signature, path)
    if not len(meta.object_graph_def.nodes):
        sig = meta.signature_def[sig_name]
        fetch = {k: v.name for k, v in sorted(sig.outputs.items())}
        feed = {sig.inputs[k].name if k in sig.inputs else ref(k): v for k, v in feeds.items()}
        graph = tf.Graph()
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            tf.compat.v1.saved_model.loader.load(sess, tags, str(path))
            return _pick(sess.run(fetch, feed), outputs)
    with loaders.without_slot_variables(path, sm) as folder:
        fn = tf.saved_model.load(str(folder), tags=tags).signatures[sig_name]
        result = fn(**{k: tf.constant(v) for k, v in feeds.items()})
    return _pick({k: np.asarray(result[k]) for k in sorted(result)}, outputs)


def run_keras(path: Path, fmt: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    tf = loaders.import_tf()
    source_model = _keras_model(path, fmt)
    names = [loaders.clean_name(t.name) for t in source_model.inputs]
    xs = [tf.constant(feeds[n]) for n in names]
    result = source_model(xs[0] if len(xs) == 1 else xs, training=False)
    flat = tf.nest.flatten(result)
    out_names = loaders.output_names(source_model, len(flat))
    return {n: np.asarray(v) for n, v in zip(out_names, flat)}


def _keras_model(path: Path, fmt: str):
    import keras

    bad = loaders.unsafe_objects(loaders.read_keras_config(path, fmt))
    if bad:
        raise UsageError(f"refusing to run a Keras model holding code: {bad[0]}", where=str(path))
    with loaders.with_suffix(path, ".keras" if fmt == "keras" else ".h5") as p:
        return keras.saving.load_model(str(p), compile=False, safe_mode=True,
                                       custom_objects=loaders.legacy_objects())


def run_graph_def(path: Path, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None
                  ) -> dict[str, np.ndarray]:
    """Run a frozen graph, feeding any tensors (cut points included) and fetching ``outputs``
    (default: the graph's one unconsumed result)."""
    tf = loaders.import_tf()
    gd = loaders.read_graph_def(path)
    graph = loaders.import_graph(gd)
    if graph is None:
        raise UsageError("TensorFlow cannot import this graph", where=str(path))
    if outputs is None:
        from convertkit.frontends.tensorflow.tfgraph import TFGraph

        sinks = TFGraph(gd, str(path)).sinks()
        if len(sinks) != 1:
            raise UsageError("cannot tell the graph's outputs", where=str(path),
                             hint="name them with --outputs")
        outputs = [f"{sinks[0].name}:0"]
    with tf.compat.v1.Session(graph=graph) as sess:
        values = sess.run([ref(o) for o in outputs], {ref(k): v for k, v in feeds.items()})
    return {ref(o): np.asarray(v) for o, v in zip(outputs, values)}


def _pick(values: dict[str, np.ndarray], outputs: list[str] | None) -> dict[str, np.ndarray]:
    return values if outputs is None else {k: values[k] for k in outputs}
