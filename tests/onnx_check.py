"""Shared test helper: prove an ONNX model's conversion against onnxruntime.

``check_onnx_model`` runs the original model in onnxruntime, the IR in the reference interpreter, and
the re-exported model (ONNX -> IR -> ONNX, full checker) in onnxruntime, and compares all three.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.interpreter import run
from convertkit.frontends.onnx import from_model
from convertkit.pipeline import normalize


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_feeds(model: onnx.ModelProto, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input that is not an initializer (symbolic dims -> ``batch``)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = rng.random(shape) > 0.5
        else:
            feeds[vi.name] = rng.integers(0, 5, shape).astype(dtype)
    return feeds


def check_onnx_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray] | None = None, *,
                     rtol: float = 1e-5, atol: float = 1e-6, opset: int | None = None) -> None:
    """Original in ORT == IR in the reference interpreter == re-exported model in ORT."""
    feeds = feeds if feeds is not None else random_feeds(model)
    expected = ort_run(model, feeds)
    graph = normalize(from_model(model), validate=True)
    got = run(graph, feeds)
    for name, exp in zip(graph.outputs, expected):
        np.testing.assert_allclose(got[name], exp, rtol=rtol, atol=atol, err_msg=f"interpreter: {name}")
    if opset is None:
        opset = max(11, next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")))
    out_model = to_model(graph, opset=opset)
    onnx.checker.check_model(out_model, full_check=True)
    for exp, res in zip(expected, ort_run(out_model, feeds)):
        np.testing.assert_allclose(res, exp, rtol=rtol, atol=atol, err_msg="round trip in onnxruntime")


def make_model(op: str, inputs: list[tuple[str, list, int]], n_out: int = 1, *, opset: int = 17,
               inits: dict[str, np.ndarray] | None = None, out_types: list[int] | None = None,
               input_names: list[str] | None = None, before: str | None = None, **attrs) -> onnx.ModelProto:
    """A one-op model: ``inputs`` are graph inputs (name, shape, elem type), ``inits`` initializers,
    ``input_names`` the node's inputs if not those in order; outputs y0, y1... of ``out_types``
    (default: the first input's type). ``before`` feeds the first input through that op first, so the
    op's input is not a graph input."""
    from onnx import helper, numpy_helper

    inits = inits or {}
    names = input_names if input_names is not None else [n for n, _, _ in inputs] + list(inits)
    nodes = []
    if before:
        nodes.append(helper.make_node(before, [names[0]], ["pre"]))
        names = ["pre"] + names[1:]
    nodes.append(helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **attrs))
    out_types = out_types or [inputs[0][2]] * n_out
    graph = helper.make_graph(
        nodes, op.lower(), [helper.make_tensor_value_info(n, t, s) for n, s, t in inputs],
        [helper.make_tensor_value_info(f"y{i}", t, None) for i, t in enumerate(out_types)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
