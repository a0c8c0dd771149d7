"""Layout conversion and transpose cancelling.

NHWC graphs (caffe2/nhwc and synthetic TF-style nets: conv, depthwise, pooling, residual add, concat,
global pooling, dense) exported to ONNX keep no Transpose inside the graph, and run in onnxruntime as
the reference interpreter runs the source graph. NCHW fixtures legalized for an NHWC target keep none
either. A fixed interface keeps exactly one Transpose per image-like input/output.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import convertkit
from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.passes import count_transposes, infer_shapes
from convertkit.canonical_ir.passes.layout import convert_layout, set_io_layouts, traced_layout
from convertkit.canonical_ir.passes.manager import PassManager
from convertkit.errors import UsageError
from convertkit.pipeline import make_manager, normalize, stages_for_capabilities
from tests.conftest import FIXTURES
from tests.onnx_check import ort_run
from tests.test_passes_equivalence import NHWC_TARGET, assert_same, load_fixture

RNG = np.random.default_rng(7)
NHWC, NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


# ------------------------------------------------------------------------ synthetic NHWC nets
class Net:
    """Builds TF-style NHWC graphs: OHWI conv weights, SAME pads, per-channel constants last."""

    def __init__(self, name: str, channels: int = 4, size: int = 8) -> None:
        self.g = Graph(name)
        self.x = self.g.add_input("x", np.float32, ("N", size, size, channels))

    def w(self, *shape: int) -> str:
        return self.g.add_const((RNG.standard_normal(shape) * 0.3).astype(np.float32), "w")

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.g.unique_name(op.lower())
        self.g.add_node(op, inputs, [out], attrs)
        infer_shapes(self.g)
        return out

    def conv(self, x: str, cout: int, k: int = 3, group: int = 1, stride: int = 1,
             act: str | None = "Relu") -> str:
        cin = self.g.tensor(x).shape[-1]
        y = self.op("Conv", [x, self.w(cout, k, k, cin // group), self.w(cout)], kernel_shape=[k, k],
                    pads=[k // 2] * 4, strides=[stride, stride], group=group, layout="NHWC")
        if act == "Relu6":
            return self.op("Clip", [y, self.g.add_const(np.float32(0)), self.g.add_const(np.float32(6))])
        return self.op(act, [y]) if act else y

    def pool(self, x: str, op: str = "MaxPool") -> str:
        return self.op(op, [x], kernel_shape=[2, 2], strides=[2, 2], layout="NHWC")

    def dense(self, x: str, n: int, flatten: bool = False) -> str:
        if flatten:
            feat = int(np.prod([d for d in self.g.tensor(x).shape[1:]]))
            x = self.op("Reshape", [x, self.g.add_const(np.array([-1, feat], np.int64))])
        else:
            feat = self.g.tensor(x).shape[-1]
            x = self.op("ReduceMean", [x, self.g.add_const(np.array([1, 2], np.int64))], keepdims=0)
        logits = self.op("Add", [self.op("MatMul", [x, self.w(feat, n)]), self.w(n)])
        return self.op("Softmax", [logits], axis=-1)

    def done(self, *outs: str) -> Graph:
        self.g.outputs = list(outs)
        infer_shapes(self.g)
        self.g.validate()
        return self.g


def nhwc_net(kind: str) -> Graph:
    n = Net(kind)
    x = n.x
    if kind == "conv":
        return n.done(n.conv(n.conv(x, 8), 8))
    if kind == "depthwise":
        return n.done(n.conv(n.conv(x, 8, k=1), 8, group=8, act="Relu6"))
    if kind == "pooling":
        return n.done(n.pool(n.conv(n.pool(n.conv(x, 8)), 8), "AveragePool"))
    if kind == "residual":
        a = n.conv(x, 4)
        return n.done(n.op("Relu", [n.op("Add", [n.conv(a, 4, act=None), a])]))
    if kind == "concat":
        a = n.conv(x, 4)
        b, c = n.conv(a, 3), n.conv(a, 5, k=1)
        return n.done(n.conv(n.op("Concat", [b, c], axis=3), 6))
    if kind == "global_pool":
        y = n.op("GlobalAveragePool", [n.conv(x, 8)], layout="NHWC")
        return n.done(n.op("Squeeze", [y, n.g.add_const(np.array([1, 2], np.int64))]))
    if kind == "dense":
        return n.done(n.dense(n.conv(x, 8), 10))
    if kind == "dense_flatten":
        return n.done(n.dense(n.pool(n.conv(x, 8)), 10, flatten=True))
    if kind == "cnn":
        a = n.pool(n.conv(x, 8))
        b = n.conv(n.conv(a, 8, k=1), 8, group=8, act="Relu6")
        r = n.op("Add", [b, a])
        c1, c2 = n.conv(r, 4, k=1), n.conv(r, 4)
        cat = n.op("Concat", [c1, c2], axis=-1)
        return n.done(n.dense(n.op("AveragePool", [cat], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                    layout="NHWC"), 5), cat)
    raise ValueError(kind)


KINDS = ["conv", "depthwise", "pooling", "residual", "concat", "global_pool", "dense", "dense_flatten", "cnn"]


def onnx_transposes(model: onnx.ModelProto) -> tuple[int, int]:
    """(inside, at the boundary) Transposes of an ONNX model."""
    ins = {i.name for i in model.graph.input}
    outs = {o.name for o in model.graph.output}
    edge = [n.input[0] in ins or n.output[0] in outs for n in model.graph.node if n.op_type == "Transpose"]
    return edge.count(False), edge.count(True)


def _feed(graph: Graph, batch: int = 2) -> dict[str, np.ndarray]:
    return {i: RNG.standard_normal([d if isinstance(d, int) else batch for d in graph.tensor(i).shape])
            .astype(np.float32) for i in graph.inputs}


def _export(graph: Graph, **layouts) -> onnx.ModelProto:
    g = make_manager("onnx", validate=True, **layouts).run(graph.copy())
    model = to_model(g, opset=17)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_nhwc_net_exports_to_onnx_without_inner_transposes(kind: str) -> None:
    graph = nhwc_net(kind)
    feeds = _feed(graph)
    expected = run(graph, feeds)
    model = _export(graph)
    inside, edge = onnx_transposes(model)
    image_outs = sum(1 for o in graph.outputs if len(graph.tensor(o).shape) == 4)
    print(f"{kind}: {inside} inside, {edge} at the interface")
    assert inside == 0
    assert edge == 1 + image_outs  # the NHWC input, and each NHWC output
    assert_same(expected, dict(zip(graph.outputs, ort_run(model, feeds))))


@pytest.mark.parametrize("kind", KINDS)
def test_nchw_interface_removes_the_boundary_transposes(kind: str) -> None:
    graph = nhwc_net(kind)
    feeds = _feed(graph)
    expected = run(graph, feeds)
    model = _export(graph, input_layout="NCHW", output_layout="NCHW")
    assert onnx_transposes(model) == (0, 0)
    got = dict(zip(graph.outputs, ort_run(model, {"x": feeds["x"].transpose(NCHW)})))
    for name, value in got.items():
        if value.ndim == 4:
            got[name] = value.transpose(NHWC)
    assert_same(expected, got)


def test_caffe2_nhwc_to_onnx_keeps_transposes_only_at_its_nhwc_boundary(tmp_path) -> None:
    graph, feeds = load_fixture(FIXTURES / "caffe2" / "nhwc")
    expected = run(graph, feeds)
    out = convertkit.convert(FIXTURES / "caffe2" / "nhwc", to="onnx", output=tmp_path / "m.onnx")
    model = onnx.load(out)
    print("caffe2/nhwc -> onnx:", onnx_transposes(model))
    assert onnx_transposes(model) == (0, 2)  # the NHWC input and the NHWC output "lrn"
    assert_same(expected, dict(zip([o.name for o in model.graph.output], ort_run(model, feeds))))
    out = convertkit.convert(FIXTURES / "caffe2" / "nhwc", to="onnx", output=tmp_path / "c.onnx",
                             input_layout="NCHW", output_layout="NCHW")
    model = onnx.load(out)
    assert onnx_transposes(model) == (0, 0)
    got = ort_run(model, {"data": feeds["data"].transpose(NCHW)})
    got = dict(zip([o.name for o in model.graph.output], got))
    got["lrn"] = got["lrn"].transpose(NHWC)
    assert_same(expected, got)


CNN_FIXTURES = ["onnx/small_cnn.onnx", "onnx/mobilenet_block.onnx", "onnx/unet_tiny.onnx",
                "onnx/audio_conv1d.onnx", "caffe2/cnn_nchw", "caffe2/legacy_args_static",
                "mxnet/resnet_v1_thin", "mxnet/resnet_v2_thin", "mxnet/mobilenet_v1_thin",
                "mxnet/mobilenet_v2_thin", "mxnet/squeezenet_thin"]


def static_spatial(graph: Graph, feeds: dict[str, np.ndarray]) -> Graph:
    """The graph with its inputs' non-batch dims fixed to the feeds' (as ``--inputs`` does): a
    flatten into a dense layer needs them to fold a layout change into the weights."""
    for name, value in feeds.items():
        t = graph.tensor(name)
        t.shape = (t.shape[0], *value.shape[1:])
    return normalize(graph)


@pytest.mark.parametrize("name", CNN_FIXTURES)
def test_nchw_cnn_legalized_to_nhwc_has_no_inner_transposes(name: str) -> None:
    graph, feeds = load_fixture(FIXTURES / name)
    graph = static_spatial(graph, feeds)
    expected = run(graph, feeds)
    kept = PassManager(stages_for_capabilities(NHWC_TARGET), validate=True).run(graph.copy())
    print(f"{name} -> NHWC: {count_transposes(kept)} (inside, boundary)")
    assert count_transposes(kept)[0] == 0
    assert_same(expected, run(kept, feeds))
    moved = PassManager(stages_for_capabilities(NHWC_TARGET, "NHWC", "NHWC"), validate=True).run(graph.copy())
    assert count_transposes(moved) == (0, 0)
    feeds = {k: v.transpose([0, *range(2, v.ndim), 1]) if v.ndim >= 3 else v for k, v in feeds.items()}
    got = run(moved, feeds)
    back = {o: v.transpose([0, v.ndim - 1, *range(1, v.ndim - 1)]) if v.ndim >= 3 else v
            for o, v in ((o, got[o]) for o in moved.outputs)}
    assert_same(expected, back)


# ----------------------------------------------------------------------------- the interface
def test_traced_layout_and_io_metadata() -> None:
    graph = nhwc_net("cnn")
    assert traced_layout(graph, "x", forward=True) == "NHWC"
    assert traced_layout(graph, graph.outputs[1], forward=False) == "NHWC"
    assert set_io_layouts(graph, "NCHW", None)
    assert graph.tensor("x").shape == ("N", 4, 8, 8)
    assert graph.metadata["io_layout"] == {"input:x": "NCHW", f"output:{graph.outputs[1]}": "NHWC"}
    assert not set_io_layouts(graph, "NCHW", None)  # once per graph, however often the stage repeats


def test_bad_layout_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="NCHW or NHWC"):
        make_manager("onnx", input_layout="NWHC")


def test_user_transpose_is_kept_and_conversion_is_idempotent() -> None:
    n = Net("user")
    y = n.conv(n.x, 4)
    t = n.op("Transpose", [y], perm=[0, 2, 1, 3])  # the model's own: swaps H and W
    graph = n.done(n.conv(t, 4))
    feeds = _feed(graph)
    expected = run(graph, feeds)
    g = graph.copy()
    assert convert_layout(g, "NCHW")
    g.validate()
    assert count_transposes(g) == (1, 2)
    assert not convert_layout(g, "NCHW")
    assert_same(expected, run(g, feeds))
