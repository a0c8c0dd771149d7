"""MXNet frontend: the fixtures and the public models in ../shared/models/mxnet against MXNet's own
outputs (saved by fixtures/make_mxnet_fixtures.py; no mxnet needed here), through the reference
interpreter and through the exported ONNX in onnxruntime; the .params reader against mx.nd.load; the
old JSON dialects; and bad input, which must give one clear error naming the file.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from convertkit.backends.onnx import to_model
from convertkit.canonical_ir.interpreter import run
from convertkit.frontends import mxnet as mxfe
from convertkit.frontends.mxnet.params import read_params, split_prefixes
from convertkit.frontends.mxnet.symbol import parse_symbol
from convertkit.frontends.mxnet.tensor_ops import reshape_terms

import convertkit
from convertkit.errors import ModelFileError, UnsupportedOpError
from convertkit.pipeline import normalize
from fixtures.mxnet_seeds import seeded_input, synthetic_weights  # the numbers MXNet was run on
from tests.conftest import FIXTURES, ROOT
from tests.onnx_check import ort_run

MX = FIXTURES / "mxnet"
SHARED = ROOT.parent / "shared" / "models" / "mxnet"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models/mxnet")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/models/mxnet is not here")
MODELS = sorted(p.name for p in MX.iterdir() if (p / "golden.npz").is_file())
NEEDS_OPSET_18 = {"ops_symbol"}   # LpPool in ceil mode on an input of unknown size
RTOL, ATOL = 1e-4, 1e-5


def golden(model: str) -> tuple[dict[str, np.ndarray], list[np.ndarray], dict[str, np.ndarray]]:
    data = np.load(MX / model / "golden.npz")
    feeds = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("input:")}
    outs = [data[f"output:{i}"] for i in range(sum(k.startswith("output:") for k in data.files))]
    params = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("param:")}
    return feeds, outs, params


def check_outputs(got: list[np.ndarray], expected: list[np.ndarray], what: str) -> float:
    """Compare output lists; returns the largest absolute error."""
    assert len(got) == len(expected), what
    worst = 0.0
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape, f"{what} output {i}: shape {g.shape} != {e.shape}"
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=f"{what} output {i}")
        worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - e))) if e.size else 0.0)
    return worst


def interpret(graph, feeds) -> list[np.ndarray]:
    res = run(graph, feeds)
    return [res[o] for o in graph.outputs]


def via_onnx(graph, feeds, opset: int = 17) -> list[np.ndarray]:
    model = to_model(graph, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    return ort_run(model, feeds)


# ------------------------------------------------------------------------------------ fixtures
@pytest.mark.parametrize("model", MODELS)
def test_fixture_matches_mxnet(model):
    """Symbolic input sizes (as loaded by default): interpreter and onnxruntime == MXNet."""
    feeds, expected, _ = golden(model)
    graph = normalize(mxfe.load(MX / model), validate=True)
    assert sorted(graph.inputs) == sorted(feeds)
    check_outputs(interpret(graph, feeds), expected, f"{model} interpreter")
    check_outputs(via_onnx(graph, feeds, 18 if model in NEEDS_OPSET_18 else 17), expected, f"{model} onnx")


@pytest.mark.parametrize("model", MODELS)
def test_fixture_static_shapes(model, tmp_path):
    """With the input shapes given every size is static."""
    feeds, expected, _ = golden(model)
    shapes = {k: v.shape for k, v in feeds.items()}
    graph = normalize(mxfe.load(MX / model, inputs=shapes), validate=True)
    assert all(graph.tensor(o).is_static for o in graph.outputs)
    check_outputs(interpret(graph, feeds), expected, f"{model} interpreter")
    check_outputs(via_onnx(graph, feeds), expected, f"{model} onnx")


@pytest.mark.parametrize("model", ["mobilenet_v1_thin", "mobilenet_v2_thin", "resnet_v1_thin",
                                   "resnet_v2_thin", "squeezenet_thin"])
def test_symbolic_batch(model):
    """The converted graph takes any batch: the first sample alone gives MXNet's first row."""
    feeds, expected, _ = golden(model)
    graph = normalize(mxfe.load(MX / model))
    assert graph.tensor(graph.inputs[0]).shape[0] == "N"
    one = {k: v[:1] for k, v in feeds.items()}
    check_outputs(via_onnx(graph, one), [e[:1] for e in expected], f"{model} batch 1")


def test_api_and_cli_convert(tmp_path):
    feeds, expected, _ = golden("resnet_v1_thin")
    out = convertkit.convert(MX / "resnet_v1_thin" / "resnet_v1_thin-symbol.json", output=tmp_path / "a.onnx")
    check_outputs(ort_run(onnx.load(out), feeds), expected, "api")
    proc = subprocess.run([sys.executable, "-m", "convertkit.cli", str(MX / "squeezenet_thin"), "-o",
                           str(tmp_path / "b.onnx"), "--quiet"], check=False, cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    feeds, expected, _ = golden("squeezenet_thin")
    check_outputs(ort_run(onnx.load(tmp_path / "b.onnx"), feeds), expected, "cli")


def test_cli_input_shapes(tmp_path):
    """--inputs fixes MXNet input shapes; with static sizes LpPool needs no ceil mode, so opset 17 does."""
    feeds, expected, _ = golden("ops_symbol")
    out = tmp_path / "ops.onnx"
    proc = subprocess.run([sys.executable, "-m", "convertkit.cli", str(MX / "ops_symbol"), "-o", str(out),
                           "--inputs", "data=2x6x9x9", "--quiet"], check=False, cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(out)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 6, 9, 9]
    check_outputs(ort_run(model, feeds), expected, "cli --inputs")
    graph = convertkit.load(MX / "ops_symbol", inputs={"data": ("batch", 6, 9, 9)})
    assert graph.tensor("data").shape == ("batch", 6, 9, 9)
    with pytest.raises(convertkit.errors.UsageError, match="not an input"):
        convertkit.load(MX / "ops_symbol", inputs={"conv0_output": None})


def test_conversion_is_deterministic():
    a = to_model(normalize(mxfe.load(MX / "ops_gluon"))).SerializeToString(deterministic=True)
    b = to_model(normalize(mxfe.load(MX / "ops_gluon"))).SerializeToString(deterministic=True)
    assert a == b


# ------------------------------------------------------------------------------- params reader
@pytest.mark.parametrize("model", ["resnet_v1_thin", "ops_symbol"])
def test_params_reader_is_exact(model):
    _, _, expected = golden(model)
    got = read_params(MX / model / f"{model}-0000.params")
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert np.array_equal(got[name], value), name


@pytest.mark.parametrize("name", ["params_dtypes", "params_np"])
def test_params_reader_dtypes(name):
    expected = np.load(MX / f"{name}.npz")
    got = read_params(MX / f"{name}.params")
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        assert got[key].dtype == expected[key].dtype and np.array_equal(got[key], expected[key]), key


REAL = np.load(MX / "real_models.npz")
REAL_WITH_PARAMS = ["mtcnn/det1", "mtcnn/det2", "mtcnn/det3", "mtcnn/det4", "mobilefacenet_insightface/model"]


def _real_doc(key: str, what: str) -> dict:
    return json.loads(REAL[f"{key}|{what}"].tobytes())


@needs_shared
@pytest.mark.parametrize("prefix", REAL_WITH_PARAMS)
def test_params_reader_on_real_files(prefix):
    """Pre-0.9 (MTCNN: no per-array magic, u32 dims) and 1.x files read as mx.nd.load reads them."""
    path = next(SHARED.glob(f"{prefix}-*.params"))
    got = read_params(path)
    digest = _real_doc(prefix, "params_digest")
    assert list(got) == list(digest)
    for name, (dtype, shape, sha) in digest.items():
        v = got[name]
        assert (str(v.dtype), list(v.shape)) == (dtype, shape), name
        assert hashlib.sha256(v.tobytes()).hexdigest()[:16] == sha, name


# ------------------------------------------------------------------------------ real models
def _real_case(key: str) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    feeds = {k.split("input_shape:")[1]: seeded_input(key, k.split("input_shape:")[1], tuple(REAL[k]))
             for k in REAL.files if k.startswith(f"{key}|input_shape:")}
    outs = [REAL[f"{key}|output:{i}"] for i in range(sum(k.startswith(f"{key}|output:") for k in REAL.files))]
    return feeds, outs


@needs_shared
@pytest.mark.parametrize("prefix", REAL_WITH_PARAMS)
def test_real_model_with_params(prefix, tmp_path):
    """ONNX passes the full checker and runs in onnxruntime; interpreter == onnxruntime == MXNet."""
    feeds, expected = _real_case(prefix)
    graph = normalize(mxfe.load(SHARED / f"{prefix}-symbol.json"), validate=True)
    ours = interpret(graph, feeds)
    out = convertkit.save(graph, tmp_path / "model.onnx")   # runs onnx.checker (full) itself
    theirs = ort_run(onnx.load(out), feeds)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    check_outputs(ours, expected, f"{prefix} interpreter")
    check_outputs(theirs, expected, f"{prefix} onnx")


REAL_WITHOUT_PARAMS = ["mxnet_test_save_000800/save_000800.json", "squeezenet_v1.2/model-symbol.json",
                       "mobilefacenet_insightface/model-y1-softmax12-symbol.json",
                       "face_backbones_zhuxuhan/FaceFeature80M.json",
                       "face_backbones_zhuxuhan/model-symbol.json",
                       "face_backbones_zhuxuhan/network_train.json", "face_backbones_zhuxuhan/2730.json"]


@needs_shared
@pytest.mark.parametrize("rel", REAL_WITHOUT_PARAMS)
def test_real_symbol_without_params_is_refused(rel):
    path = SHARED / rel
    with pytest.raises(ModelFileError) as info:
        mxfe.load(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text and "-NNNN.params is missing" in text, text


@needs_shared
@pytest.mark.parametrize("rel", REAL_WITHOUT_PARAMS)
def test_real_symbol_with_synthetic_weights(rel):
    """The weightless files (all three JSON dialects) still convert exactly: with weights rebuilt
    from a seed, the result equals what MXNet computed with the same weights."""
    feeds, expected = _real_case(rel)
    symbol = mxfe.read_symbol(SHARED / rel)
    shapes = _real_doc(rel, "param_shapes")
    params = synthetic_weights(list(shapes), [tuple(v) for v in shapes.values()])
    shapes = {k: v.shape for k, v in feeds.items()}
    graph = normalize(mxfe.from_symbol(symbol, params, inputs=shapes), validate=True)
    check_outputs(interpret(graph, feeds), expected, f"{rel} interpreter")
    check_outputs(via_onnx(graph, feeds), expected, f"{rel} onnx")


# ---------------------------------------------------------------------------- JSON dialects
def _to_dialect(doc: dict, dialect: str) -> tuple[dict, dict[str, str]]:
    """Rewrite a 1.x symbol as MXNet 0.9 (``attr``) or 0.8 (``param``, input pairs, BatchNorm's aux
    states implicit, so named ``<node>_moving_mean``/``_moving_var``) wrote it; also returns the
    parameter renames that implies."""
    nodes, remap, out = doc["nodes"], {}, []
    aux = {i for n in nodes if n["op"] == "BatchNorm" for i, _, _ in n["inputs"][3:]}
    renames = {} if dialect != "0.8" else {
        nodes[i]["name"]: f"{n['name']}_{what}" for n in nodes if n["op"] == "BatchNorm"
        for (i, _, _), what in zip(n["inputs"][3:], ("moving_mean", "moving_var"))}
    for i, n in enumerate(nodes):
        if dialect == "0.8" and i in aux:
            continue
        remap[i] = len(out)
        inputs = [[remap[s], k] + ([] if dialect == "0.8" else [0]) for s, k, _ in n["inputs"] if s in remap]
        new = {"op": n["op"], "name": n["name"], "inputs": inputs}
        if dialect == "0.8":
            new.update(param=n.get("attrs", {}), backward_source_id=-1)
        elif n.get("attrs"):
            new["attr"] = n["attrs"]
        out.append(new)
    heads = [[remap[s], k] + ([] if dialect == "0.8" else [0]) for s, k, _ in doc["heads"]]
    return {"nodes": out, "arg_nodes": [], "heads": heads}, renames


@pytest.mark.parametrize("dialect", ["0.9", "0.8"])
@pytest.mark.parametrize("model", ["resnet_v2_thin", "ops_symbol"])
def test_old_json_dialects(model, dialect):
    feeds, expected, _ = golden(model)
    doc = json.loads((MX / model / f"{model}-symbol.json").read_text())
    old_doc, renames = _to_dialect(doc, dialect)
    symbol = parse_symbol(old_doc, f"{model}-{dialect}")
    assert symbol.dialect.startswith(dialect)
    params = split_prefixes(read_params(MX / model / f"{model}-0000.params"))
    params = {renames.get(k, k): v for k, v in params.items()}
    graph = normalize(mxfe.from_symbol(symbol, params), validate=True)
    check_outputs(interpret(graph, feeds), expected, f"{model} as {dialect}")


# ----------------------------------------------------------------------------- finding files
def test_find_files_forms(tmp_path):
    src = MX / "resnet_v1_thin"
    for f in src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    sym = tmp_path / "resnet_v1_thin-symbol.json"
    params = tmp_path / "resnet_v1_thin-0000.params"
    assert mxfe.find_files(sym) == (sym, params)
    assert mxfe.find_files(tmp_path) == (sym, params)
    assert mxfe.find_files(tmp_path / "resnet_v1_thin") == (sym, params)        # checkpoint prefix
    shutil.copy(params, tmp_path / "resnet_v1_thin-0012.params")
    shutil.copy(params, tmp_path / "resnet_v1_thin-0003.params")
    assert mxfe.find_files(sym)[1].name == "resnet_v1_thin-0012.params"        # highest epoch
    other = tmp_path / "weights.bin"
    shutil.copy(params, other)
    assert mxfe.find_files(sym, other) == (sym, other)


def test_folder_with_several_models(tmp_path):
    for model in ("resnet_v1_thin", "mobilenet_v1_thin"):
        for f in (MX / model).glob(f"{model}-*"):
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(ModelFileError, match="several MXNet models"):
        mxfe.find_files(tmp_path)


# ------------------------------------------------------------------------------ Reshape codes
@pytest.mark.parametrize("shape,spec,reverse,expected", [
    ((2, 3, 4, 5), (0, -3, -2), False, (2, 12, 5)),
    ((2, 60, 15), (-4, 1, -1, -2), False, (1, 2, 60, 15)),
    ((1, 2, 60, 15), (-1, 0), True, (120, 15)),
    ((3, 4, 6, 5), (0, 0, -1), True, (4, 6, 15)),
    ((3, 4, 6, 5), (-2,), False, (3, 4, 6, 5)),
    ((6, 4), (-4, -1, 2, 0), False, (3, 2, 4)),
    ((2, 3, 4), (4, 0, -1), False, (4, 3, 2)),
])
def test_reshape_codes(shape, spec, reverse, expected):
    terms = reshape_terms(len(shape), spec, reverse)
    size_of = {"int": lambda t: t[1], "dim": lambda t: shape[t[1]],
               "prod": lambda t: shape[t[1]] * shape[t[2]], "split": lambda t: shape[t[1]] // t[2],
               "infer": lambda t: -1}
    sizes = [size_of[t[0]](t) for t in terms]
    if -1 in sizes:
        sizes[sizes.index(-1)] = int(np.prod(shape)) // -int(np.prod(sizes))
    assert tuple(sizes) == expected


def test_reshape_codes_invalid():
    with pytest.raises(ValueError):
        reshape_terms(4, (-3, -2), True)       # MXNet rejects this too
    with pytest.raises(ValueError):
        reshape_terms(2, (-1, -1), False)


def _symbol(nodes: list[tuple], heads: list[int], name: str = "handmade") -> dict:
    """A 1.x symbol document from (op, name, attrs, [input node ids]) tuples."""
    return {"nodes": [{"op": op, "name": n, "attrs": a, "inputs": [[i, 0, 0] for i in ins]}
                      for op, n, a, ins in nodes],
            "arg_nodes": [i for i, t in enumerate(nodes) if t[0] == "null"],
            "heads": [[h, 0, 0] for h in heads]}


def test_reshape_of_unknown_sizes_at_run_time():
    """(-3, -3) on (N, C, H, W) with every size symbolic needs the run-time Shape."""
    doc = _symbol([("null", "data", {"__shape__": "(0, 0, 0, 0)"}, []),
                   ("Reshape", "r", {"shape": "(-3, -3)"}, [0]),
                   ("Reshape", "r2", {"shape": "(-4, 2, -1, 0)"}, [1])], [2])
    graph = normalize(mxfe.from_symbol(parse_symbol(doc), {}), validate=True)
    for shape in ((2, 3, 4, 5), (4, 1, 2, 2)):
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        want = x.reshape(2, shape[0] * shape[1] // 2, shape[2] * shape[3])
        np.testing.assert_array_equal(interpret(graph, {"data": x})[0], want)
        np.testing.assert_array_equal(via_onnx(graph, {"data": x})[0], want)


@pytest.mark.parametrize("shape", ["(0, 0, 0, 0)", "(2, 6, 3, 2)"])
def test_split_with_unused_parts(shape):
    """Parts nobody uses must not change the others (dead-code removal would drop a Split output)."""
    doc = _symbol([("null", "data", {"__shape__": shape}, []),
                   ("SliceChannel", "s", {"num_outputs": "3", "axis": "1"}, [0]),
                   ("SliceChannel", "q", {"num_outputs": "3", "axis": "2", "squeeze_axis": "True"}, [0]),
                   ("_split_v2", "v", {"indices": "(0, 1, 4)", "axis": "1", "squeeze_axis": "False"}, [0])],
                  [1, 2, 3])
    doc["heads"] = [[1, 2, 0], [2, 1, 0], [3, 2, 0], [3, 0, 0]]
    graph = normalize(mxfe.from_symbol(parse_symbol(doc), {}), validate=True)
    x = np.arange(72, dtype=np.float32).reshape(2, 6, 3, 2)
    want = [x[:, 4:], x[:, :, 1], x[:, 4:], x[:, :1]]
    for got in (interpret(graph, {"data": x}), via_onnx(graph, {"data": x})):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------------- bad input
def _cli(path: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convertkit.cli", str(path), "-o",
                           str(tmp_path / "out.onnx"),
                           *extra], check=False, cwd=ROOT, capture_output=True, text=True)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_json_that_is_not_a_symbol(tmp_path):
    bad = tmp_path / "config-symbol.json"
    bad.write_text(json.dumps({"nodes": "nope", "heads": []}))
    with pytest.raises(ModelFileError, match="not an MXNet symbol file"):
        mxfe.load(bad)
    _assert_one_line_error(_cli(bad, tmp_path), str(bad), "not an MXNet symbol file")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"layers": [1, 2]}))
    _assert_one_line_error(_cli(other, tmp_path), str(other))
    broken = tmp_path / "broken-symbol.json"
    broken.write_text((MX / "resnet_v1_thin" / "resnet_v1_thin-symbol.json").read_text()[:500])
    _assert_one_line_error(_cli(broken, tmp_path), str(broken))


def test_params_that_do_not_match(tmp_path):
    sym = MX / "resnet_v1_thin" / "resnet_v1_thin-symbol.json"
    wrong = MX / "mobilenet_v1_thin" / "mobilenet_v1_thin-0000.params"
    with pytest.raises(ModelFileError, match="do not match the symbol"):
        mxfe.load(sym, weights=wrong)
    _assert_one_line_error(_cli(sym, tmp_path, "--weights", str(wrong)), str(wrong), "do not match")


def test_params_of_wrong_shapes(tmp_path):
    """Same names, other shapes: refused with the node and the file, not a numpy traceback."""
    params = read_params(MX / "resnet_v1_thin" / "resnet_v1_thin-0000.params")
    name = [k for k in params if k.endswith("_weight") and params[k].ndim == 4][2]   # not the first layer
    params[name] = params[name][:, :1]
    sym = MX / "resnet_v1_thin" / "resnet_v1_thin-symbol.json"
    with pytest.raises(convertkit.errors.ShapeError) as info:
        mxfe.from_symbol(mxfe.read_symbol(sym), split_prefixes(params), params_source="x.params")
    text = str(info.value)
    assert str(sym) in text and "channels" in text and "x.params" in text and "\n" not in text, text


@pytest.mark.parametrize("cut", [10, 30, 200, -1])
def test_truncated_params(tmp_path, cut):
    for f in (MX / "resnet_v1_thin").glob("resnet_v1_thin-*"):
        shutil.copy(f, tmp_path / f.name)
    params = tmp_path / "resnet_v1_thin-0000.params"
    data = params.read_bytes()
    params.write_bytes(data[:cut])
    with pytest.raises(ModelFileError) as info:
        mxfe.load(tmp_path)
    assert str(params) in str(info.value) and "\n" not in str(info.value)
    _assert_one_line_error(_cli(tmp_path, tmp_path), str(params))


@needs_shared
def test_symbol_without_params_via_cli(tmp_path):
    _assert_one_line_error(_cli(SHARED / "squeezenet_v1.2" / "model-symbol.json", tmp_path),
                           "model-NNNN.params is missing")


def test_every_unsupported_op_listed_at_once():
    doc = _symbol([("null", "data", {"__shape__": "(1, 3, 7, 7)"}, []),
                   ("_contrib_MultiBoxPrior", "prior", {}, [0]),
                   ("Pooling", "lp3", {"kernel": "(2, 2)", "pool_type": "lp", "p_value": "3"}, [0]),
                   ("Dropout", "drop", {"p": "0.5", "mode": "always"}, [0]),
                   ("Activation", "act", {"act_type": "relu", "frobnicate": "7"}, [0]),
                   ("Pooling", "pool_after", {"kernel": "(2, 2)"}, [1]),
                   ("Crop", "crop", {"num_args": "1", "h_w": "(4, 4)"}, [3]),
                   ("Pooling", "edge", {"kernel": "(2, 2)", "stride": "(2, 2)", "pad": "(1, 1)",
                                        "pooling_convention": "full"}, [0])], [5, 6, 2, 4, 7])
    with pytest.raises(UnsupportedOpError) as info:
        mxfe.from_symbol(parse_symbol(doc, "handmade.json"), {})
    text = str(info.value)
    for needle in ("handmade.json", "_contrib_MultiBoxPrior", "p_value=3", "mode=always", "frobnicate=7",
                   "last window lies in the padding"):
        assert needle in text, text
    assert "pool_after" not in text and "\n" not in text  # downstream of a failed op: not reported twice
    assert set(info.value.missing) == {
        "_contrib_MultiBoxPrior", "Pooling (pool_type=lp with p_value=3)", "Dropout (mode=always)",
        "Activation (frobnicate=7)",
        ("Pooling (pooling_convention=full whose last window lies in the padding (size 7, kernel 2, "
         "stride 2, pad 1))")}


@needs_shared
def test_input_shape_hints():
    graph = mxfe.load(SHARED / "mtcnn" / "det4-symbol.json")
    assert graph.tensor("data").shape == ("N", 15, "data_d2", "data_d3")   # 5 crops sliced on channels
    graph = mxfe.load(MX / "ops_sequence")
    assert graph.tensor("tokens").shape == ("N", "tokens_d1")
    assert graph.tensor("feats").shape == graph.tensor("embed_output").shape    # elemwise partner
