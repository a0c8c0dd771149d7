"""``--verify``: run the source model and the converted one in their own runtimes on the same seeded
inputs, and report how far apart their outputs are."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from convertkit.errors import UsageError

Runner = Callable[[Path, dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class OutputDiff:
    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    source: np.ndarray
    converted: np.ndarray


def _onnxruntime_session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError("--verify needs onnxruntime", hint='pip install "convertkit[verify]"') from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # e.g. an IR version newer than this onnxruntime reads: say so, in one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"onnxruntime cannot run {path} for --verify: {reason[-300:]}",
                         hint="the installed onnxruntime may be older than the model") from None


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = _onnxruntime_session(path)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def _onnx_inputs(path: Path) -> list[tuple[str, np.dtype, list]]:
    sess = _onnxruntime_session(path)
    specs = []
    for i in sess.get_inputs():
        dtype = np.dtype(_ORT_TYPES.get(i.type, "float32"))
        # symbolic dims: 1 for the batch, 32 elsewhere (an image side or a sequence length that
        # every pooling window fits)
        specs.append((i.name, dtype, [d if isinstance(d, int) else (1 if k == 0 else 32)
                                      for k, d in enumerate(i.shape)]))
    return specs


_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8", "tensor(bool)": "bool"}

TF_FORMATS = ("tf-saved-model", "keras", "keras-h5", "tf-graphdef")


def _tf_runner(fmt: str) -> Runner:
    """Run a TensorFlow model in TensorFlow. Keyword options (``signature``, ``tag``, ``outputs``) are
    the frontend options the model was converted with; without them the defaults the frontend uses."""
    def run(path: Path, feeds: dict[str, np.ndarray], **options) -> dict[str, np.ndarray]:
        from convertkit.frontends.tensorflow import runtime

        return runtime.run(path, fmt, feeds, **options)
    return run


def _tf_inputs(fmt: str) -> Callable[[Path], list[tuple[str, np.dtype, list]]]:
    """Input names, dtypes and shapes of a TensorFlow model as convertkit reads it (symbolic dims as
    for ONNX: 1 for the batch, 32 elsewhere)."""
    def specs(path: Path) -> list[tuple[str, np.dtype, list]]:
        from convertkit.frontends import load

        graph = load(path, fmt)
        out = []
        for name in graph.inputs:
            t = graph.tensor(name)
            out.append((name, t.dtype, [d if isinstance(d, int) else (1 if k == 0 else 32)
                                        for k, d in enumerate(t.shape)]))
        return out
    return specs


def _litert_interpreter(path: Path):
    """LiteRT with its reference kernels: the optimized default kernels differ from TFLite's integer
    reference by a few steps, so they would hide or fake int8 mismatches."""
    try:
        from ai_edge_litert import interpreter as lite
    except ImportError:
        raise UsageError("--verify of .tflite models needs ai-edge-litert",
                         hint='pip install "convertkit[verify]"') from None
    try:
        it = lite.Interpreter(model_path=str(path), experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    except ValueError as e:  # an op the reference resolver lacks (ELU): LiteRT's own builtin kernels
        if "Didn't find op" not in str(e):
            raise
        it = lite.Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def _run_tflite(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    it = _litert_interpreter(path)
    for d, x in zip(it.get_input_details(), feeds.values()):
        it.set_tensor(d["index"], np.asarray(x, d["dtype"]).reshape(d["shape"]))
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def _tflite_inputs(path: Path) -> list[tuple[str, np.dtype, list]]:
    return [(d["name"], np.dtype(d["dtype"]), [int(v) for v in d["shape"]])
            for d in _litert_interpreter(path).get_input_details()]


RUNNERS: dict[str, Runner] = {"onnx": _run_onnx, "tflite": _run_tflite,
                              **{f: _tf_runner(f) for f in TF_FORMATS}}
"""Format -> function running a model file on feeds in that format's own runtime."""
INPUT_SPECS = {"onnx": _onnx_inputs, "tflite": _tflite_inputs, **{f: _tf_inputs(f) for f in TF_FORMATS}}


def seeded_inputs(specs: list[tuple[str, np.dtype, list]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, dtype, shape in specs:
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.random(shape) > 0.5
        else:
            feeds[name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def _run_reference(source: Path, source_format: str, weights: Path | None, feeds: dict[str, np.ndarray],
                   options: dict) -> dict[str, np.ndarray]:
    """The source model in convertkit's reference interpreter, for formats with no runtime here."""
    from convertkit.api import load
    from convertkit.canonical_ir.interpreter import run

    return run(load(source, format=source_format, weights=weights, **options), feeds)


def run_source(source: Path, source_format: str, feeds: dict[str, np.ndarray], weights: Path | None = None,
               frontend_options: dict | None = None) -> dict[str, np.ndarray]:
    """The source model on ``feeds`` in its own runtime (the reference interpreter for formats with
    none here). ``frontend_options`` are those it was converted with, so the same function runs."""
    options = {k: v for k, v in (frontend_options or {}).items() if v is not None}
    if source_format in TF_FORMATS:  # feeds already name any cut points; these choose the function
        tf_options = {k: v for k, v in options.items() if k in ("outputs", "signature", "tag")}
        return RUNNERS[source_format](Path(source), feeds, **tf_options)
    if source_format in RUNNERS:
        return RUNNERS[source_format](Path(source), feeds)
    return _run_reference(Path(source), source_format, weights, feeds, options)


def source_label(source_format: str) -> str:
    return source_format if source_format in RUNNERS else f"{source_format} (reference interpreter)"


def verify(source: Path, source_format: str, output: Path, target: str, seed: int = 0,
           weights: Path | None = None, frontend_options: dict | None = None) -> list[OutputDiff]:
    """Outputs of both models on the same seeded inputs, paired by position. A source format with no
    runtime installable here (Caffe2, MXNet) is run in convertkit's reference interpreter instead.
    ``frontend_options`` are those the model was converted with (signature, outputs, input shapes...),
    so the source runs the same function."""
    if target not in RUNNERS:
        raise UsageError(f"--verify cannot run {target} models yet", hint=f"it runs: {', '.join(sorted(RUNNERS))}")
    feeds = seeded_inputs(INPUT_SPECS[target](Path(output)), seed)
    ref = run_source(source, source_format, feeds, weights, frontend_options)
    got = RUNNERS[target](Path(output), feeds)
    diffs = []
    for (name, a), b in zip(ref.items(), got.values()):
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        err = np.abs(a64 - b64) if a64.shape == b64.shape else np.array([np.inf])
        rel = err / np.maximum(np.abs(a64), 1e-6) if a64.shape == b64.shape else err
        diffs.append(OutputDiff(name, tuple(np.shape(a)), float(err.max(initial=0)),
                                float(rel.max(initial=0)), np.asarray(a), np.asarray(b)))
    return diffs


def format_diffs(diffs: list[OutputDiff], source_label: str, converted_label: str, n: int = 6) -> str:
    lines = []
    w = max(len(source_label), len(converted_label))
    for d in diffs:
        lines.append(f"output {d.name} {list(d.shape)}: max abs error {d.max_abs:.3g}, "
                     f"max rel error {d.max_rel:.3g}")
        a, b = d.source.reshape(-1)[:n], d.converted.reshape(-1)[:n]
        lines.append(f"  {source_label:>{w}}: " + " ".join(f"{v: .6f}" for v in a.astype(np.float64)))
        lines.append(f"  {converted_label:>{w}}: " + " ".join(f"{v: .6f}" for v in b.astype(np.float64)))
    return "\n".join(lines)


def verify_c_bundle(source: Path, source_format: str, bundle: Path, graph, *, feeds: dict | None = None,
                    seed: int = 0, weights: Path | None = None, frontend_options: dict | None = None
                    ) -> tuple[list[OutputDiff], str, bool]:
    """Compile the C bundle, run it on ``feeds`` (default: seeded inputs) and compare with the source
    model in its runtime; an int8 bundle is also compared with convertkit's int8 reference interpreter on
    ``graph`` (the graph the bundle was written from), which it must match bit for bit. Returns the
    diffs against the source (dequantized), a line about the reference check, and whether it passed."""
    from convertkit.backends.c_bundle.host import read_io, run_bundle
    from convertkit.canonical_ir.interpreter import run

    ins, outs = read_io(bundle)
    if feeds is None:
        feeds = seeded_inputs([(i.name, np.dtype(np.float32) if i.scale is not None else i.dtype, list(i.shape))
                               for i in ins], seed)
    ref = run_source(source, source_format, feeds, weights, frontend_options)
    raw = run_bundle(bundle, [feeds])[0]
    diffs = []
    for (name, a), spec, r in zip(ref.items(), outs, raw):
        a64 = np.asarray(a, np.float64).reshape(spec.shape)
        b64 = spec.dequantize(r).astype(np.float64)
        err = np.abs(a64 - b64)
        diffs.append(OutputDiff(name, spec.shape, float(err.max(initial=0)),
                                float((err / np.maximum(np.abs(a64), 1e-6)).max(initial=0)), a64, b64))
    quantized = any(o.scale is not None for o in outs) or any(i.scale is not None for i in ins)
    if not quantized:
        worst = max((d.max_abs / (1e-5 + 1e-4 * float(np.abs(d.source).max(initial=0))) for d in diffs), default=0)
        ok = worst <= 1
        return diffs, ("C bundle (float32) vs source: " + ("within" if ok else "NOT within") + " 1e-4 relative"), ok
    q_feeds = {i.name: i.quantize(feeds[i.name]) for i in ins}
    expect = run(graph, q_feeds)
    same = [np.array_equal(np.asarray(expect[o]).reshape(spec.shape), r)
            for o, spec, r in zip(graph.outputs, outs, raw)]
    n = sum(int(np.prod(spec.shape)) for spec in outs)
    steps = ", ".join(f"{d.max_abs / o.scale:.1f}" for d, o in zip(diffs, outs) if o.scale)
    line = (f"C bundle (int8) vs convertkit's int8 reference: {'bit-exact' if all(same) else 'DIFFERENT'} "
            f"({n} values); vs the float source: max error {steps or '-'} quantization step(s)")
    return diffs, line, all(same)
