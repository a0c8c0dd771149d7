"""The command line.

    convertkit MODEL --to onnx -o OUT [--opset 17] [--input-layout NHWC] [--verify]
    convertkit MODEL --to c-bundle -o DIR [--quantize int8 --calibration DATA] [--budget ram=256K]
    convertkit MODEL --to tflite -o OUT.tflite [--quantize int8 --calibration DATA]
    convertkit inspect MODEL [--json]
    convertkit --print-passes [--to onnx]

Bad input prints one line and a hint and exits 2; an internal error exits 1; tracebacks only with --debug.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from convertkit import __version__
from convertkit.detect import FORMATS
from convertkit.errors import ConvertError, UsageError

TARGETS = ("onnx", "tflite", "c-bundle")

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2 as well
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def _convert_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="convertkit", description="Convert a trained model to another format.",
                epilog="Also: 'convertkit inspect MODEL' prints ops, parameters, MACs and memory per node.")
    p.add_argument("model", nargs="?", help="model file or folder (format detected from its contents)")
    p.add_argument("--to", choices=TARGETS, help="output format (default: from the -o extension)")
    p.add_argument("-o", "--output", help="output path")
    p.add_argument("--format", choices=sorted(FORMATS), help="input format, if detection should be skipped")
    p.add_argument("--weights", metavar="FILE",
                   help="separate weights file (Caffe2 init_net.pb, MXNet .params); default: found beside MODEL")
    tf = p.add_argument_group("inputs and outputs (TensorFlow; --inputs shapes also for MXNet)")
    tf.add_argument("--inputs", metavar="NAME[=DIMS],...", type=_parse_inputs,
                    help="graph inputs and their shapes, e.g. 'Mfcc:0=1x49x10' to cut a frozen graph there, or "
                         "'data=1x3x112x112' to fix an MXNet input (DIMS: x-separated, '?' or a name for a "
                         "symbolic dim)")
    tf.add_argument("--outputs", metavar="NAME,...", type=lambda s: [n for n in s.split(",") if n],
                    help="graph outputs (frozen GraphDef; default: the SavedModel signature's)")
    tf.add_argument("--signature", help="SavedModel signature (default: serving_default)")
    tf.add_argument("--tag", help="SavedModel tag set, comma-separated (default: serve)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset to write (default 17)")
    p.add_argument("--input-layout", choices=("NCHW", "NHWC"),
                   help="layout of the written model's image inputs (default: the source model's)")
    p.add_argument("--output-layout", choices=("NCHW", "NHWC"),
                   help="layout of the written model's image outputs (default: the source model's)")
    q = p.add_argument_group("int8 quantization (--to tflite, --to c-bundle)")
    q.add_argument("--quantize", choices=("int8",), help="quantize a float model after legalization "
                   "(per-channel int8 weights, per-tensor int8 activations, int32 bias: TFLite's scheme)")
    q.add_argument("--calibration", metavar="DATA",
                   help="samples of the model's inputs: an .npz (one array per input), an .npy, or a folder")
    q.add_argument("--calibration-method", choices=("minmax", "percentile"), default="minmax",
                   help="activation ranges: min/max over the data (default), or a percentile of it")
    q.add_argument("--percentile", type=float, default=99.99, help="for --calibration-method percentile")
    q.add_argument("--quantized-io", choices=("int8", "float"), default="int8",
                   help="int8 inputs/outputs (default), or float ones quantized inside the model")
    p.add_argument("--budget", metavar="ram=SIZE,flash=SIZE",
                   help="C bundle: fail unless the arena fits RAM and weights + code fit flash (e.g. ram=256K,flash=1M)")
    p.add_argument("--external-data", action="store_true",
                   help="ONNX: write weights to OUT.data beside the model (automatic above 2 GB)")
    p.add_argument("--verify", action="store_true",
                   help="run source and result in their runtimes on seeded inputs and compare")
    p.add_argument("--print-passes", action="store_true", help="list the pipeline's passes and exit")
    p.add_argument("--dump-after", metavar="PASS", help="print the graph after pass PASS")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"convertkit {__version__}")
    return p


def _parse_inputs(text: str) -> dict[str, tuple | None]:
    """'a:0=1x49x10,b' -> {'a:0': (1, 49, 10), 'b': None}; '?' or a name is a symbolic dim."""
    out: dict[str, tuple | None] = {}
    for item in filter(None, text.split(",")):
        name, _, dims = item.partition("=")
        shape = None
        if dims:
            shape = tuple(int(d) if d.isdigit() else (f"{name.split(':')[0]}_d{i}" if d == "?" else d)
                          for i, d in enumerate(dims.split("x")))
        out[name] = shape
    return out


def _frontend_options(args: argparse.Namespace) -> dict:
    return {"inputs": args.inputs, "outputs": args.outputs, "signature": args.signature, "tag": args.tag}


def _inspect_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="convertkit inspect", description="Ops, parameters, MACs and tensor memory per node.")
    p.add_argument("model")
    p.add_argument("--format", choices=sorted(FORMATS))
    p.add_argument("--weights", metavar="FILE", help="separate weights file, as for conversion")
    p.add_argument("--inputs", type=_parse_inputs, help="as for conversion")
    p.add_argument("--outputs", type=lambda s: [n for n in s.split(",") if n], help="as for conversion")
    p.add_argument("--signature", help="as for conversion")
    p.add_argument("--tag", help="as for conversion")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--debug", action="store_true")
    return p


def _cmd_convert(args: argparse.Namespace) -> int:
    from convertkit import api
    from convertkit.pipeline import make_manager

    layouts = {"input_layout": args.input_layout, "output_layout": args.output_layout}
    if args.print_passes:
        print(make_manager(args.to, opset=args.opset, **layouts).describe())
        return 0
    if not args.model:
        raise UsageError("no model given", hint="convertkit MODEL --to onnx -o OUT")
    if not args.output:
        raise UsageError("no output path given", hint="add -o OUT")
    options = {}
    if args.opset is not None:
        if (args.to or Path(args.output).suffix.lstrip(".")) != "onnx":
            raise UsageError("--opset applies to ONNX output only")
        options["opset"] = args.opset
    if args.external_data:
        options["external_data"] = True
    target_name = args.to or Path(args.output).suffix.lstrip(".")
    if args.budget is not None:
        if target_name != "c-bundle":
            raise UsageError("--budget applies to --to c-bundle only")
        options["budget"] = args.budget
    quant = {"quantize": args.quantize, "calibration": args.calibration,
             "calibration_method": args.calibration_method, "percentile": args.percentile,
             "quantized_io": args.quantized_io}

    def dump(name: str, graph) -> None:
        print(f"--- after {name} ---\n{graph.summary()}")

    written = []
    out = api.convert(args.model, to=args.to, output=args.output, format=args.format, weights=args.weights,
                      dump_after=args.dump_after, on_dump=dump, frontend_options=_frontend_options(args),
                      log=None if args.quiet else print, quiet=args.quiet, on_graph=written.append,
                      **quant, **layouts, **options)
    if not args.quiet:
        print(f"wrote {out}")
    if args.verify:
        return _verify(args, out, written[0])
    return 0


def _verify(args: argparse.Namespace, out: Path, graph) -> int:
    from convertkit.detect import detect_format, target_from_path
    from convertkit.verify import format_diffs, source_label, verify, verify_c_bundle

    src_fmt = args.format or detect_format(args.model)
    target = args.to or target_from_path(out)
    weights = Path(args.weights) if args.weights else None
    if target == "c-bundle":
        import numpy as np

        feeds = None
        if args.calibration:  # in-distribution inputs for a quantized model: the first calibration sample
            from convertkit.canonical_ir.quantize import load_calibration_data

            feeds = load_calibration_data(args.calibration, graph)[0]
            feeds = {k: np.asarray(v, np.float32) for k, v in feeds.items()}
        diffs, line, ok = verify_c_bundle(Path(args.model), src_fmt, out, graph, feeds=feeds, weights=weights,
                                          frontend_options=_frontend_options(args))
        print(format_diffs(diffs, source_label(src_fmt), "C bundle"))
        print(line)
        if not ok:
            print("convertkit: verification FAILED", file=sys.stderr)
            return EXIT_INTERNAL
        if not args.quiet:
            print("verification passed")
        return 0
    diffs = verify(Path(args.model), src_fmt, out, target, weights=weights,
                   frontend_options=_frontend_options(args))
    print(format_diffs(diffs, source_label(src_fmt), f"{target} out"))
    worst = max((d.max_abs / (1e-5 + 1e-4 * float(abs(d.source).max(initial=0))) for d in diffs), default=0)
    if worst > 1:
        print("convertkit: verification FAILED: outputs differ beyond 1e-4 relative", file=sys.stderr)
        return EXIT_INTERNAL
    if not args.quiet:
        print("verification passed: outputs agree within 1e-4 relative")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from convertkit import api
    from convertkit.report import format_report, inspect_graph

    report = inspect_graph(api.load(args.model, format=args.format, weights=args.weights,
                                    **_frontend_options(args)))
    print(json.dumps(report.to_dict(), indent=1) if args.json else format_report(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        if argv and argv[0] == "inspect":
            return _cmd_inspect(_inspect_parser().parse_args(argv[1:]))
        if argv and argv[0] == "convert":
            argv = argv[1:]
        return _cmd_convert(_convert_parser().parse_args(argv))
    except ConvertError as e:
        if debug:
            raise
        print(f"convertkit: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"convertkit: internal error: {type(e).__name__}: {first} "
              "(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
