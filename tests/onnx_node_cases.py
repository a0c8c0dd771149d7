"""The ONNX backend node tests (built in memory by onnx's loader), run two ways:

  ref        ONNX -> IR -> reference interpreter, against the case's expected outputs
  roundtrip  ONNX -> IR -> ONNX (same opset) -> onnxruntime, against the case's expected outputs

As a script it prints the pass counts and why each failing case fails:

    python tests/onnx_node_cases.py                 # counts, and failures grouped by reason
    python tests/onnx_node_cases.py -k conv         # only cases whose name contains "conv"
    python tests/onnx_node_cases.py --write-expected   # refresh tests/onnx_node_expected_failures.txt
"""
from __future__ import annotations

import argparse
import collections
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXPECTED_FILE = Path(__file__).with_name("onnx_node_expected_failures.txt")


@dataclass
class Outcome:
    name: str
    ref: str | None  # None = passed, else the reason it failed
    roundtrip: str | None


def load_cases():
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return load_model_tests(kind="node")


def _reason(e: BaseException) -> str:
    from convertkit.errors import ConvertError, UnsupportedOpError

    if isinstance(e, UnsupportedOpError):
        return "unsupported op: " + ", ".join(e.missing)
    text = e.message if isinstance(e, ConvertError) else str(e)
    text = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"{type(e).__name__}: {text}"[:160]


def _compare(got: list, expected: list, rtol: float, atol: float) -> str | None:
    if len(got) != len(expected):
        return f"wrong result: {len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        if not isinstance(e, np.ndarray):
            return "expected output is not a tensor"
        g = np.asarray(g)
        if g.shape != e.shape:
            return f"wrong result: output {i} shape {list(g.shape)}, expected {list(e.shape)}"
        if g.dtype != e.dtype:
            return f"wrong result: output {i} dtype {g.dtype}, expected {e.dtype}"
        if e.dtype.kind in "fc":
            if not np.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
                return f"wrong result: output {i} max abs error {np.nanmax(np.abs(g - e)):.3g}"
        elif not np.array_equal(g, e):
            return f"wrong result: output {i} differs"
    return None


def _array(x) -> np.ndarray:
    """Case data as an ndarray (the loader gives 0-d values as numpy scalars, some as TensorProto)."""
    import onnx

    if isinstance(x, onnx.TensorProto):
        return onnx.numpy_helper.to_array(x)
    return np.asarray(x)


ORT_MAX_OPSET = 26
"""The newest ai.onnx opset onnxruntime 1.31 runs ("official support ... is till opset 26"); newer
cases are round-tripped to this opset, which is what a user targeting onnxruntime would choose."""


def run_case(case) -> Outcome:
    from convertkit.backends.onnx import to_model
    from convertkit.canonical_ir.interpreter import run
    from convertkit.frontends.onnx import from_model
    from convertkit.pipeline import normalize

    model = case.model
    inits = {t.name for t in model.graph.initializer}
    in_names = [vi.name for vi in model.graph.input if vi.name not in inits]
    ref = rt = None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            graph = normalize(from_model(model))
    except Exception as e:
        reason = _reason(e)
        return Outcome(case.name, reason, reason)
    data_sets = [([_array(x) for x in ins], [_array(y) if not isinstance(y, (list, dict)) else y
                                              for y in outs]) for ins, outs in case.data_sets]
    for inputs, expected in data_sets:
        feeds = dict(zip(in_names, inputs))
        if ref is None:
            try:
                with np.errstate(all="ignore"):
                    out = run(graph, feeds)
                ref = _compare([out[n] for n in graph.outputs], list(expected), case.rtol, case.atol)
            except Exception as e:
                ref = _reason(e)
    try:
        opset = next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
        exported = to_model(graph, opset=min(max(opset, 11), ORT_MAX_OPSET))
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        sess = ort.InferenceSession(exported.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        ort_inputs = [i.name for i in sess.get_inputs()]
        for inputs, expected in data_sets:
            feeds = {k: v for k, v in zip(in_names, inputs) if k in ort_inputs}
            rt = rt or _compare(sess.run(None, feeds), list(expected), case.rtol, case.atol)
    except Exception as e:
        rt = _reason(e)
        if rt.startswith(("Fail", "InvalidGraph", "NotImplemented", "InvalidArgument", "RuntimeException")):
            rt = "onnxruntime: " + rt
            if not _ort_runs(model):
                rt = "onnxruntime gap (it cannot run the original case either): " + rt
    return Outcome(case.name, ref, rt)


def _ort_runs(model) -> bool:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return True
    except Exception:
        return False


def run_all(filter_: str | None = None) -> list[Outcome]:
    return [run_case(c) for c in load_cases() if not filter_ or filter_ in c.name]


def read_expected() -> dict[str, tuple[str, str]]:
    """case name -> (which way fails: ref|roundtrip|both, reason)."""
    expected = {}
    if EXPECTED_FILE.exists():
        for line in EXPECTED_FILE.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, way, reason = line.split("\t", 2)
                expected[name] = (way, reason)
    return expected


def write_expected(outcomes: list[Outcome]) -> None:
    lines = ["# ONNX node test cases that do not yet pass, and why. Generated by",
             "#   python tests/onnx_node_cases.py --write-expected",
             "# A case failing that is not listed here (or listed only for the other way) is a regression.",
             "# columns: case<TAB>ref|roundtrip|both<TAB>reason"]
    for o in sorted(outcomes, key=lambda o: o.name):
        if o.ref is None and o.roundtrip is None:
            continue
        way = "both" if o.ref and o.roundtrip else ("ref" if o.ref else "roundtrip")
        lines.append(f"{o.name}\t{way}\t{o.ref or o.roundtrip}")
    EXPECTED_FILE.write_text("\n".join(lines) + "\n")


def summarize(outcomes: list[Outcome]) -> str:
    n = len(outcomes)
    ref = sum(o.ref is None for o in outcomes)
    rt = sum(o.roundtrip is None for o in outcomes)
    both = sum(o.ref is None and o.roundtrip is None for o in outcomes)
    return (f"ONNX node tests: {n} cases; reference interpreter passes {ref}, round trip in onnxruntime "
            f"passes {rt}, both {both}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", dest="filter", help="only cases whose name contains this")
    ap.add_argument("--write-expected", action="store_true")
    ap.add_argument("-v", action="store_true", help="list every failing case")
    args = ap.parse_args(argv)
    outcomes = run_all(args.filter)
    print(summarize(outcomes))
    reasons = collections.Counter()
    for o in outcomes:
        for way, r in (("ref", o.ref), ("roundtrip", o.roundtrip)):
            if r:
                reasons[(way, r.split(":")[0] + ":" + r.split(":")[1][:60] if ":" in r else r)] += 1
                if args.v:
                    print(f"  {o.name:<60} {way:<9} {r}")
    for (way, r), count in reasons.most_common(60):
        print(f"{count:5d}  {way:<9} {r}")
    if args.write_expected:
        if args.filter:
            print("--write-expected needs the full run (no -k)", file=sys.stderr)
            return 2
        write_expected(outcomes)
        print(f"wrote {EXPECTED_FILE}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
