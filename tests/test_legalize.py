"""Targets that say what they accept: Capabilities, legalization and its one error, ONNX's
capabilities per opset, the pipeline per target, and every fixture through the ONNX pipeline checked
in onnxruntime against the reference interpreter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from convertkit.backends.onnx import to_model
from convertkit.backends.onnx.capabilities import capabilities
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.canonical_ir.passes.legalize import Capabilities, LegalizeError, legalize, rejected
from convertkit.cli import main
from convertkit.canonical_ir.passes.manager import PassManager
from convertkit.pipeline import make_manager, stages_for_capabilities
from tests.conftest import FIXTURES
from tests.onnx_check import ort_run
from tests.test_passes_equivalence import FIXTURE_IDS, FIXTURE_PATHS, NHWC_TARGET, assert_same, load_fixture
from tests.test_passes_rewrite import graph_of, node, ops

RNG = np.random.default_rng(5)


def _activations(g: Graph, x: str) -> list[str]:
    a = node(g, "HardSwish", [x])
    b = node(g, "Gelu", [a])
    c = node(g, "Mish", [b])
    d = node(g, "HardSwish", [c])
    return [node(g, "Swish", [d])]


def test_accepts_says_why_not() -> None:
    caps = Capabilities("tiny", frozenset({"Conv", "Relu", "Add"}), layouts=("NHWC",),
                        dtypes=frozenset({np.dtype(np.float32)}), constraints={
                            "Add": lambda g, n: "no broadcasting"
                            if len({g.tensor(t).shape for t in g.inputs_of(n)}) > 1 else None})
    g, _ = graph_of((1, 2, 4, 4), lambda g, x: [node(g, "Add", [node(g, "Conv", [x, g.add_const(
        np.ones((3, 2, 1, 1), np.float32))], **{"layout": "NCHW", FUSED_ACTIVATION: ("Relu",)}),
        g.add_const(np.ones((3, 1, 1), np.float32))]), node(g, "Sigmoid", [x]),
        node(g, "Cast", [x], to="float64")])
    why = rejected(g, caps)
    assert why["Conv"].startswith("layout NCHW")
    conv = g.node("Conv")
    conv.attrs["layout"] = "NHWC"
    assert caps.accepts(g, conv) == "fused activation Relu on Conv"
    assert why["Add"] == "no broadcasting" and why["Sigmoid"] == "tiny has no Sigmoid"
    assert caps.accepts(g, g.node("Cast")) == "tiny has no Cast"


def test_one_error_names_every_node_that_cannot_be_lowered() -> None:
    caps = Capabilities("no-erf", frozenset({"Mul", "Add", "Tanh", "Softplus", "Sigmoid", "HardSigmoid",
                                             "Relu"}))
    g, _ = graph_of((2, 8), lambda g, x: [node(g, "Erf", [x]), node(g, "Gelu", [x]), node(g, "Gelu", [x]),
                                           node(g, "Cos", [x]), node(g, "Mish", [x])])
    with pytest.raises(LegalizeError) as info:
        legalize(g, caps)
    msg = str(info.value)
    assert info.value.missing == {"Cos": ["Cos"], "Erf": ["Erf"], "Gelu": ["Gelu", "Gelu_1"]}
    for name in ("Erf", "Gelu", "Gelu_1", "Cos"):
        assert f"{name}: no-erf has no" in msg
    assert "GeluErf: it would produce Erf, which no-erf lacks" in msg
    assert "Mish" not in msg  # Mish lowers to Mul/Tanh/Softplus


def test_decompositions_chain_until_the_target_accepts() -> None:
    caps = Capabilities("basic", frozenset({"Mul", "Add", "Clip", "Tanh", "Sigmoid", "Erf", "Relu", "Log",
                                            "Exp",
                                            "Neg", "Abs"}))
    g, feeds = graph_of((2, 16), _activations)
    expected = run(g, feeds)
    legalize(g, caps)
    g.validate()
    assert set(ops(g)) <= caps.ops and not rejected(g, caps)
    assert_same(expected, run(g, feeds))


@pytest.mark.parametrize("opset", [11, 13, 17, 20])
def test_onnx_older_opsets_get_decomposed_activations(opset: int) -> None:
    g, feeds = graph_of((2, 16), _activations)
    expected = run(g, feeds)
    caps = capabilities(opset)
    assert ("HardSwish" in caps.ops) == (opset >= 14) and ("Gelu" in caps.ops) == (opset >= 20)
    model = to_model(g, opset=opset)  # legalizes a copy: the graph itself is untouched
    assert ops(g) == ["HardSwish", "Gelu", "Mish", "HardSwish", "Swish"]
    onnx.checker.check_model(model, full_check=True)
    assert_same(expected, dict(zip(g.outputs, ort_run(model, feeds))))


def test_onnx_export_unfuses_fused_activations() -> None:
    g, feeds = graph_of((1, 2, 5, 5), lambda g, x: node(g, "Conv", [x, g.add_const(
        RNG.standard_normal((3, 2, 3, 3)).astype(np.float32))], **{FUSED_ACTIVATION: ("Clip", 0.0, 6.0)}))
    model = to_model(g, opset=17)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Clip"]
    assert_same(run(g, feeds), dict(zip(g.outputs, ort_run(model, feeds))))


def test_print_passes_names_every_stage(capsys) -> None:
    assert main(["--print-passes", "--to", "onnx", "--opset", "13"]) == 0
    out = capsys.readouterr().out
    for name in ("normalize:", "optimize:", "legalize:", "fold_batch_norms", "convert_layout",
                 "optimize_transposes", "cse", "ONNX opset 13"):
        assert name in out
    assert "fuse_activations" not in out  # ONNX has no fused activations
    assert "fuse_activations" in PassManager(stages_for_capabilities(NHWC_TARGET)).describe()


def test_cli_layout_flags(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    assert main([str(FIXTURES / "caffe2" / "nhwc"), "-o", str(out), "--input-layout", "NCHW", "--quiet"]) == 0
    model = onnx.load(out)
    assert [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim][1] == 6
    assert sum(n.op_type == "Transpose" for n in model.graph.node) == 1  # the NHWC output "lrn"


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=FIXTURE_IDS)
def test_every_fixture_through_the_onnx_pipeline_runs_in_onnxruntime(path: Path) -> None:
    graph, feeds = load_fixture(path)
    expected = run(graph, feeds)
    g = make_manager("onnx", validate=True, opset=18).run(graph.copy())
    assert not rejected(g, capabilities(18))
    assert_same(expected, run(g, feeds))
    model = to_model(g, opset=18)
    onnx.checker.check_model(model, full_check=True)
    got = dict(zip([o.name for o in model.graph.output], ort_run(model, feeds)))
    assert_same(expected, got, rtol=1e-4)
