"""Caffe2 frontend: fixtures against independently built ONNX equivalents, real models, bad input.

Every fixture in ``fixtures/caffe2/`` is a Caffe2 net plus ``reference.onnx`` computing the same
function from the same weights (built by hand in ``fixtures/make_caffe2_fixtures.py``, never through
convertkit). The converted model must agree with it in onnxruntime within 1e-5, and so must the IR in
the reference interpreter. Real models from ``../shared/models/caffe2`` either convert (checked the same
way against the interpreter) or fail with the precise error recorded here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import convertkit
from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.interpreter import run
from convertkit.errors import ConvertError, ModelFileError, UnsupportedOpError
from convertkit.frontends.caffe2 import HANDLERS, from_nets, load, proto
from tests.conftest import FIXTURES, ROOT
from tests.onnx_check import ort_run

C2 = FIXTURES / "caffe2"
FIXTURE_DIRS = sorted(p for p in C2.iterdir() if (p / "reference.onnx").exists())
MODELS = Path(os.environ.get("CONVERTKIT_MODELS", ROOT.parent / "shared" / "models")) / "caffe2"
TOL = {"rtol": 1e-5, "atol": 1e-5}


def feed_for(reference: onnx.ModelProto, seed: int = 0) -> np.ndarray:
    dims = [d.dim_value for d in reference.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


def convert_and_run(graph: convertkit.Graph, tmp_path: Path, x: np.ndarray) -> tuple[dict, dict]:
    """(onnxruntime outputs of the saved model, interpreter outputs), by output name."""
    out = convertkit.save(graph, tmp_path / "model.onnx")  # runs onnx.checker with full_check
    model = onnx.load(out)
    ort = dict(zip([o.name for o in model.graph.output], ort_run(model, {graph.inputs[0]: x})))
    return ort, run(graph, {graph.inputs[0]: x})


# ------------------------------------------------------------------------------------ fixtures
@pytest.mark.parametrize("folder", FIXTURE_DIRS, ids=lambda p: p.name)
def test_fixture_matches_reference(folder: Path, tmp_path: Path) -> None:
    reference = onnx.load(folder / "reference.onnx")
    x = feed_for(reference)
    expected = dict(zip([o.name for o in reference.graph.output], ort_run(reference, {"data": x})))
    graph = convertkit.load(folder)
    graph.validate()
    assert graph.inputs == ["data"]
    got, ir = convert_and_run(graph, tmp_path, x)
    for name, exp in expected.items():
        np.testing.assert_allclose(got[name], exp, **TOL, err_msg=f"onnxruntime: {name}")
        np.testing.assert_allclose(ir[name], exp, **TOL, err_msg=f"interpreter: {name}")


def test_fixture_files_are_reproducible() -> None:
    """The committed files are exactly what the script builds now (so it is deterministic)."""
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_caffe2_fixtures as make
    finally:
        sys.path.remove(str(FIXTURES))
    for name, build in make.FIXTURES.items():
        f = build()
        folder = C2 / name
        assert (folder / "predict_net.pb").read_bytes() == f.predict.SerializeToString(deterministic=True)
        assert (folder / "init_net.pb").read_bytes() == f.init.SerializeToString(deterministic=True)
        assert (folder / "reference.onnx").read_bytes() == f.reference().SerializeToString(deterministic=True)
    assert sum(p.stat().st_size for p in C2.rglob("*") if p.is_file()) < 1_000_000


def test_symbolic_and_declared_input_shapes() -> None:
    """No value_info.json: rank and channels from the first consumer; with one: its static shape."""
    assert load(C2 / "cnn_nchw").tensor("data").shape == ("N", 3, "data_H", "data_W")
    assert load(C2 / "nhwc").tensor("data").shape == ("N", "data_H", "data_W", 6)
    assert load(C2 / "legacy_args_static").tensor("data").shape == (1, 4, 13, 11)


def test_text_form_and_weights_argument(tmp_path: Path) -> None:
    folder = C2 / "cnn_nchw"
    x = feed_for(onnx.load(folder / "reference.onnx"))
    want = run(load(folder), {"data": x})["prob"]
    text = convertkit.load(folder / "predict_net.pbtxt")  # init_net.pbtxt is found beside it
    np.testing.assert_array_equal(run(text, {"data": x})["prob"], want)
    alone = tmp_path / "net" / "my_predict.pb"
    alone.parent.mkdir()
    shutil.copy(folder / "predict_net.pb", alone)
    for weights in (folder / "init_net.pb", folder / "init_net.pbtxt"):
        graph = convertkit.load(alone, format="caffe2", weights=weights)
        np.testing.assert_array_equal(run(graph, {"data": x})["prob"], want)
    shutil.copy(folder / "init_net.pb", alone.parent / "my_init.pb")  # foo_predict.pb -> foo_init.pb
    np.testing.assert_array_equal(run(load(alone), {"data": x})["prob"], want)


def test_in_place_blobs_keep_their_final_name() -> None:
    graph = load(C2 / "cnn_nchw")
    assert graph.outputs == ["prob"]
    assert graph.has_tensor("conv1") and graph.producer("conv1").op == "Relu"
    assert graph.producer("conv1_1").op == "Conv"


def test_constant_output_that_is_also_read(tmp_path: Path) -> None:
    """Reshape's old_shape (a constant once shapes are static) is both a net output and another op's input."""
    folder = _copy_fixture(tmp_path, "misc")
    net = _net(folder / "predict_net.pb")
    net.external_output.append("old_shape")
    (folder / "predict_net.pb").write_bytes(net.SerializeToString())
    graph = convertkit.load(folder)
    got, _ = convert_and_run(graph, tmp_path, np.zeros((2, 8, 6, 6), np.float32))
    np.testing.assert_array_equal(got["old_shape"], [2, 2, 16, 6, 6])


def test_inference_is_stable_with_symbolic_sizes() -> None:
    from convertkit.canonical_ir.passes import infer_shapes

    graph = convertkit.load(C2 / "legacy_args")  # symbolic H and W, and legacy (ceil) pooling
    assert not infer_shapes(graph)


# ------------------------------------------------------------------------------- real models
def _real(rel: str) -> Path:
    path = MODELS / rel
    if not path.exists():
        pytest.skip(f"real model {rel} not present under {MODELS}")
    return path


@pytest.mark.parametrize("rel, shape, extra", [
    ("mnist_pytorch_export", (2, 1, 28, 28), []),
    ("trafficlight_squeezenet", (1, 3, 227, 227), ["pool10", "conv10"]),
])
def test_real_model_converts(rel: str, shape: tuple, extra: list[str], tmp_path: Path) -> None:
    graph = convertkit.load(_real(rel))
    graph.validate()
    graph.outputs += extra  # pre-softmax values make a sharper comparison than saturated probabilities
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got, ir = convert_and_run(graph, tmp_path, x)
    worst = 0.0
    for name in graph.outputs:
        scale = max(1.0, float(np.abs(ir[name]).max()))
        err = float(np.abs(got[name].astype(np.float64) - ir[name]).max())
        assert err <= 1e-5 * scale, f"{rel} {name}: max error {err} (scale {scale})"
        worst = max(worst, err)
    print(f"{rel}: max |onnxruntime - interpreter| = {worst:.3g}")


UNSUPPORTED = {
    "fb_model_zoo/style_transfer_crayon/crayon_predict.pb":
        ["BRGNCHWCToPackedInt8BGRAStylizerDeprocess x1", "PackedInt8BGRANHWCToNCHWCStylizerPreprocess x1"],
    "fb_model_zoo/mask_rcnn_2go_int8/model.pb":
        ["BBoxTransform x1", "BoxWithNMSLimit x1", "GenerateProposals x1", "RoIAlign x2", "Int8Conv x51",
         "Int8ConvRelu x26", "Int8Sum x16", "Int8FC x2", "Int8Quantize x3", "Int8Dequantize x6"],
    "fb_model_zoo/mask_rcnn_2go_fp32/model.pb":
        ["If x1", "IsEmpty x1", "ConstantFill x1", "GenerateProposals x1", "RoIAlign x1"],
    "fb_model_zoo/e2e_faster_rcnn_R-50-C4_1x":
        ["BBoxTransform x1", "BoxWithNMSLimit x1", "GenerateProposals x1", "RoIAlign x1"],
}
"""Models with ops the IR has no equivalent for: detection ops, control flow, custom mobile pre/post-
processing, and QNNPACK Int8 ops. Each is refused with every such op in one error."""

PREDICT_ONLY = ["fb_model_zoo/bvlc_alexnet", "fb_model_zoo/densenet121", "fb_model_zoo/inception_v1",
                "fb_model_zoo/inception_v2", "fb_model_zoo/resnet50", "fb_model_zoo/squeezenet",
                "fb_model_zoo/vgg19", "fb_model_zoo/zfnet512", "squeezenet_aicamera",
                "tiny_yolo_ios/tinyPredict.pb", "tiny_yolo_ios/tinyYoloPredict.pb"]
"""Predict nets whose init nets are not public (Git LFS pointers): every op converts, weights are absent."""


@pytest.mark.parametrize("rel", sorted(UNSUPPORTED))
def test_real_model_with_unsupported_ops(rel: str) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        load(_real(rel))
    message = str(info.value)
    assert "\n" not in message
    for part in UNSUPPORTED[rel]:
        assert part in message, message


@pytest.mark.parametrize("rel", PREDICT_ONLY)
def test_real_predict_net_without_weights(rel: str) -> None:
    path = _real(rel)
    with pytest.raises(ModelFileError, match=r"no init net found, and the predict net needs blobs") as info:
        load(path)
    assert "\n" not in str(info.value)
    files = [path] if path.is_file() else sorted(path.glob("*.pb*"))
    net = proto.NetDef()
    from google.protobuf import text_format
    data = files[0].read_bytes()
    text_format.Parse(data.decode(), net) if files[0].suffix == ".pbtxt" else net.ParseFromString(data)
    assert {op.type for op in net.op} <= set(HANDLERS)


# -------------------------------------------------------------------------------- bad input
def _copy_fixture(tmp_path: Path, name: str = "cnn_nchw") -> Path:
    dst = tmp_path / name
    shutil.copytree(C2 / name, dst)
    for p in dst.glob("*.pbtxt"):
        p.unlink()
    (dst / "reference.onnx").unlink()
    return dst


def _net(path: Path) -> proto.NetDef:
    net = proto.NetDef()
    net.ParseFromString(path.read_bytes())
    return net


def _one_line(err: ConvertError) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_init_net_lacking_a_blob(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    init = _net(folder / "init_net.pb")
    keep = [op for op in init.op if op.output[0] != "conv2_w"]
    del init.op[:]
    init.op.extend(keep)
    (folder / "init_net.pb").write_bytes(init.SerializeToString())
    with pytest.raises(ModelFileError) as info:
        load(folder)
    text = _one_line(info.value)
    assert "does not fill blob(s) 'conv2_w' (read by Conv op #4)" in text and "init_net.pb" in text


def test_truncated_predict_net(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    data = (folder / "predict_net.pb").read_bytes()
    for cut in range(1, len(data), 7):
        (folder / "predict_net.pb").write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as info:
            load(folder)
        assert "predict_net.pb" in _one_line(info.value)
    (folder / "predict_net.pb").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load(folder)


def test_truncated_init_net(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    data = (folder / "init_net.pb").read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 5):
        (folder / "init_net.pb").write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as info:
            load(folder)
        assert "init_net.pb" in _one_line(info.value)


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    b'{"nodes": []}',
    "onnx",
], ids=["binary-junk", "json", "onnx-model"])
def test_not_a_netdef(content: bytes | str, tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    if content == "onnx":
        content = (C2 / "cnn_nchw" / "reference.onnx").read_bytes()
    (folder / "predict_net.pb").write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        load(folder)
    text = _one_line(info.value)
    assert "predict_net.pb" in text and "NetDef" in text


def test_all_unsupported_ops_in_one_error(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    net = _net(folder / "predict_net.pb")
    net.op[1].type = "Int8Conv"
    net.op[2].type = "RoIAlign"
    net.op[3].type = "FancyOp"
    net.op[5].type = "FancyOp"
    (folder / "predict_net.pb").write_bytes(net.SerializeToString())
    with pytest.raises(UnsupportedOpError) as info:
        load(folder)
    assert set(info.value.missing) == {"Int8Conv", "RoIAlign", "FancyOp"}
    assert "FancyOp x2" in _one_line(info.value)


@pytest.mark.parametrize("op_index, arg, value, message", [
    (0, "legacy_pad", 7, "legacy_pad=7 is not a Caffe2 padding mode"),
    (0, "order", "NCDHW", "order='NCDHW' is not supported"),
    (0, "frobnicate", 1, "unsupported argument(s) frobnicate=1"),
    (1, "is_test", 0, "training mode"),
    (0, "kernel_h", 3, "kernel_h given without kernel_w"),
    (3, "kernels", [3, 3], "conflicting kernel arguments"),
])
def test_unsupported_argument_values(op_index: int, arg: str, value: object, message: str,
                                     tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    net = _net(folder / "predict_net.pb")
    op = net.op[op_index]
    for a in list(op.arg):
        if a.name == arg:
            op.arg.remove(a)
    a = op.arg.add(name=arg)
    if isinstance(value, str):
        a.s = value.encode()
    elif isinstance(value, list):
        a.ints.extend(value)
    else:
        a.i = value
    (folder / "predict_net.pb").write_bytes(net.SerializeToString())
    with pytest.raises(ConvertError) as info:
        load(folder)
    text = _one_line(info.value)
    assert message in text and f"op #{op_index}" in text


def test_missing_init_net(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    (folder / "init_net.pb").unlink()
    with pytest.raises(ModelFileError, match="no init net found.*'conv1_w'"):
        load(folder / "predict_net.pb")


def test_input_whose_rank_is_unknowable(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path, "misc")
    (folder / "value_info.json").unlink()
    with pytest.raises(ModelFileError, match="cannot tell the shape of input blob 'data'.*value_info.json"):
        load(folder)


# ------------------------------------------------------------------------------------- CLI
def cli(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "convertkit.cli", *map(str, args)], check=False,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_cli_converts_a_caffe2_folder(tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    proc = cli(C2 / "nhwc", "-o", out)
    assert proc.returncode == 0, proc.stderr
    onnx.checker.check_model(onnx.load(out), full_check=True)


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    lacking = _copy_fixture(tmp_path / "a")
    init = _net(lacking / "init_net.pb")
    del init.op[0]
    (lacking / "init_net.pb").write_bytes(init.SerializeToString())
    truncated = _copy_fixture(tmp_path / "b")
    data = (truncated / "predict_net.pb").read_bytes()
    (truncated / "predict_net.pb").write_bytes(data[: len(data) // 2])
    junk = _copy_fixture(tmp_path / "c")
    (junk / "predict_net.pb").write_bytes(b"\x00\xff" * 100)
    unsupported = _copy_fixture(tmp_path / "d")
    net = _net(unsupported / "predict_net.pb")
    net.op[0].type, net.op[2].type = "Int8Conv", "FancyOp"
    (unsupported / "predict_net.pb").write_bytes(net.SerializeToString())
    cases = [(lacking, "does not fill blob(s) 'conv1_w'"), (truncated, "truncated"),
             (junk, "not a valid Caffe2 NetDef"), (unsupported, "unsupported Caffe2 ops: FancyOp x1 (conv1)")]
    for folder, needle in cases:
        proc = cli(folder, "-o", tmp_path / "out.onnx")
        assert proc.returncode == 2, proc.stderr + proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "out.onnx").exists()


# --------------------------------------------------------------- legacy padding, exhaustively
def _window_net(op_type: str, n: int, args: dict, weight: np.ndarray | None = None
                ) -> tuple[proto.NetDef, proto.NetDef]:
    """A one-op net over a [1, 1, 1, n] input: the window slides along W only."""
    predict, init = proto.NetDef(name="w"), proto.NetDef(name="w_init")
    op = predict.op.add(type=op_type, input=["data"], output=["y"])
    for key, v in args.items():
        a = op.arg.add(name=key)
        if isinstance(v, list):
            a.ints.extend(v)
        else:
            a.i = v
    predict.external_input.append("data")
    if weight is not None:
        op.input.append("w")
        predict.external_input.append("w")
        fill = init.op.add(type="GivenTensorFill", output=["w"])
        fill.arg.add(name="shape").ints.extend(weight.shape)
        fill.arg.add(name="values").floats.extend(weight.reshape(-1).tolist())
    predict.external_output.append("y")
    return predict, init


def _caffe2_pool(x: np.ndarray, k: int, s: int, p: int, average: bool) -> np.ndarray | None:
    """Caffe2's CPU pooling loop (pool_op.cc) for CAFFE_LEGACY_POOLING along one axis; None where a
    window falls wholly outside the input (Caffe2's result there is an artefact of its loop)."""
    n = len(x)
    out = -(-(n + 2 * p - k) // s) + 1
    if p > 0 and (out - 1) * s >= n + p:
        out -= 1
    y = []
    for o in range(out):
        start = o * s - p
        lo, hi = max(start, 0), min(start + k, n)
        if lo >= hi:
            return None
        y.append(x[lo:hi].mean() if average else x[lo:hi].max())
    return np.asarray(y, np.float32)


@pytest.mark.parametrize("average", [False, True], ids=["MaxPool", "AveragePool"])
def test_legacy_pooling_is_exact(average: bool) -> None:
    """Caffe's ceil rounding (legacy_pad=3), static and symbolic, against Caffe2's own loop."""
    checked = 0
    for n, k, s in np.ndindex(12, 4, 3):
        n, k, s = n + 1, k + 1, s + 1
        for p in range(k):
            if n + 2 * p < k:
                continue
            x = np.random.default_rng(n * 100 + k * 10 + s).standard_normal(n).astype(np.float32)
            want = _caffe2_pool(x, k, s, p, average)
            args = {"kernels": [1, k], "strides": [1, s], "pads": [0, p, 0, p], "legacy_pad": 3}
            predict, init = _window_net("AveragePool" if average else "MaxPool", n, args)
            for info in (None, {"data": (np.dtype(np.float32), (1, 1, 1, n))}):
                try:
                    graph = from_nets(predict, init, info)
                except ConvertError as e:  # refused only where the size decides (symbolic) or is undefined
                    assert want is None or (info is None and p == 0 and k < s), str(e)
                    continue
                assert want is not None, f"n={n} k={k} s={s} p={p}: converted a window outside the input"
                got = run(graph, {"data": x.reshape(1, 1, 1, n)})["y"].reshape(-1)
                np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"n={n} k={k} s={s} p={p} {info}")
                node = graph.nodes[0]
                if max(node.attrs["pads"]) < k:  # onnxruntime refuses pads >= kernel
                    res = ort_run(to_model(graph), {"data": x.reshape(1, 1, 1, n)})[0].reshape(-1)
                    np.testing.assert_allclose(res, want, rtol=1e-6, err_msg=f"ort n={n} k={k} s={s} p={p}")
                checked += 1
    assert checked > 300


def test_legacy_same_convolution_is_exact() -> None:
    """legacy_pad=2 (SAME): Caffe2 pads (ceil(n/s)-1)*s + k - n, the head half rounded toward zero."""
    checked = 0
    for n, k, s in np.ndindex(12, 4, 3):
        n, k, s = n + 1, k + 1, s + 1
        rng = np.random.default_rng(n * 100 + k * 10 + s)
        x, w = rng.standard_normal(n).astype(np.float32), rng.standard_normal(k).astype(np.float32)
        needed = ((n + s - 1) // s - 1) * s + k - n
        head = int(needed / 2)
        out = (n + needed - k) // s + 1
        padded = np.concatenate([np.zeros(k * s, np.float32), x, np.zeros(k * s, np.float32)])
        want = [sum(w[j] * padded[k * s + o * s - head + j] for j in range(k)) for o in range(out)]
        args = {"kernels": [1, k], "strides": [1, s], "legacy_pad": 2}
        predict, init = _window_net("Conv", n, args, w.reshape(1, 1, 1, k))
        for info in (None, {"data": (np.dtype(np.float32), (1, 1, 1, n))}):
            try:
                graph = from_nets(predict, init, info)
            except ConvertError as e:
                assert (head < 0 if info else k < s), str(e)
                continue
            got = run(graph, {"data": x.reshape(1, 1, 1, n)})["y"].reshape(-1)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"n={n} k={k} s={s} {info}")
            checked += 1
    assert checked > 100
