"""Every pass on every fixture: the reference interpreter gives the same outputs before and after
(1e-5 relative to each output's magnitude for floats, bit-exact for integers) and ``Graph.validate()``
holds after it. Also the helpers the other pass tests share: fixtures with seeded feeds, the
equivalence check, and a TFLite-like NHWC target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest

import convertkit
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops import all_schemas
from convertkit.canonical_ir.passes import (
    eliminate_common_subexpressions, fold_batch_norms, fold_pads, optimize_transposes, simplify_shapes)
from convertkit.canonical_ir.passes.fusion import fusion_pass
from convertkit.canonical_ir.passes.layout import convert_layout, convert_layout_only
from convertkit.canonical_ir.passes.legalize import Capabilities, legalize
from convertkit.pipeline import stages_for_capabilities
from convertkit.canonical_ir.passes.manager import PassManager
from tests.conftest import FIXTURES

FIXTURE_PATHS = ([*sorted((FIXTURES / "onnx").glob("*.onnx")),
                  FIXTURES / "onnx" / "mlp_external" / "mlp.onnx"]
                 + sorted(p for p in (FIXTURES / "caffe2").iterdir() if (p / "predict_net.pb").exists())
                 + sorted(p for p in (FIXTURES / "mxnet").iterdir() if (p / "golden.npz").exists()))
FIXTURE_IDS = [f"{p.parent.name}/{p.stem if p.suffix else p.name}" for p in FIXTURE_PATHS]


def _conv_groups(graph: Graph, node) -> str | None:
    """A TFLite-like target: plain and depthwise convolutions only."""
    group = int(node.attrs.get("group", 1))
    layout = node.attrs.get("layout", "NCHW")
    x = graph.tensor(graph.inputs_of(node)[0]).shape
    channels = x[-1] if layout.startswith("N") and not layout.startswith("NC") else x[1]
    return None if group in (1, channels) else f"group={group} is neither 1 nor depthwise"


NHWC_OPS = frozenset(all_schemas()) - {"HardSwish", "HardSigmoid", "Gelu", "Mish", "Softplus", "Swish",
                                       "LayerNormalization", "Gemm", "BatchNormalization"}
NHWC_TARGET = Capabilities(
    name="nhwc-test", ops=NHWC_OPS, layouts=("NHWC",),
    fused_activations=frozenset({"Relu", "Relu6", "ReluN1To1", "Tanh"}),
    fusable_ops=frozenset({"Conv", "MatMul", "Add", "Sub", "Mul", "Div", "AveragePool", "MaxPool", "Concat"}),
    constraints={"Conv": _conv_groups})
"""An NHWC target like TFLite or the C bundle: channels-last only, fused activations, plain and depthwise
convolutions only, and without the ops that need decomposing."""


def load_fixture(path: Path) -> tuple[Graph, dict[str, np.ndarray]]:
    """The fixture as a normalized graph, and seeded inputs for it."""
    graph = convertkit.load(path)
    rng = np.random.default_rng(0)
    shapes: dict[str, tuple] = {}
    if (path / "golden.npz").exists():
        data = np.load(path / "golden.npz")
        return graph, {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("input:")}
    if (path / "reference.onnx").exists():
        ref = onnx.load(path / "reference.onnx")
        shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
                  for vi in ref.graph.input}
    feeds = {}
    for name in graph.inputs:
        t = graph.tensor(name)
        shape = shapes.get(name) or tuple(d if isinstance(d, int) else 2 for d in t.shape)
        feeds[name] = (rng.standard_normal(shape).astype(t.dtype) if t.dtype.kind == "f"
                       else rng.integers(0, 4, shape).astype(t.dtype))
    return graph, feeds


def assert_same(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], rtol: float = 1e-5) -> None:
    for name, exp in expected.items():
        res = np.asarray(got[name])
        assert res.shape == exp.shape and res.dtype == exp.dtype, name
        if exp.dtype.kind in "fc":
            scale = float(np.abs(exp).max(initial=0.0))
            np.testing.assert_allclose(res, exp, rtol=rtol, atol=rtol * scale, err_msg=name)
        else:
            np.testing.assert_array_equal(res, exp, err_msg=name)


def check_pass(graph: Graph, feeds: dict[str, np.ndarray], fn: Callable[[Graph], object]) -> Graph:
    """Run ``fn`` on a copy of ``graph``; it must validate and compute what ``graph`` computes."""
    expected = run(graph, feeds)
    after = graph.copy()
    fn(after)
    after.validate()
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    assert_same(expected, run(after, feeds))
    return after


def _nhwc_then(fn: Callable[[Graph], object]) -> Callable[[Graph], object]:
    def both(g: Graph) -> None:
        convert_layout_only(g, "NHWC")
        fn(g)
    return both


PASSES: dict[str, Callable[[Graph], object]] = {
    "simplify_shapes": simplify_shapes,
    "fold_batch_norms": fold_batch_norms,
    "fold_pads": fold_pads,
    "cse": eliminate_common_subexpressions,
    "convert_layout_only_nhwc": lambda g: convert_layout_only(g, "NHWC"),
    "optimize_transposes": _nhwc_then(optimize_transposes),
    "convert_layout_nchw": lambda g: convert_layout(g, "NCHW"),
    "fuse_activations": _nhwc_then(fusion_pass(NHWC_TARGET)),
    "legalize_nhwc": lambda g: legalize(g, NHWC_TARGET),
    "pipeline_nhwc": lambda g: PassManager(stages_for_capabilities(NHWC_TARGET), validate=True).run(g),
}


@pytest.mark.parametrize("name", list(PASSES))
@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=FIXTURE_IDS)
def test_pass_keeps_every_fixture_equivalent(path: Path, name: str) -> None:
    graph, feeds = load_fixture(path)
    check_pass(graph, feeds, PASSES[name])
