"""The C bundle beside TFLite Micro on the same int8 models, measured in one run.

For each MLPerf Tiny int8 model in ../shared/models, and the digits CNN fixture quantized by convertkit
(the same int8 graph written as a bundle and as a .tflite for TFLite Micro):
- RAM: the bundle's arena (and its planner's lower bound) vs TFLite Micro's smallest working arena
  (bisection over `arena_size`, TFLM's own allocations included, as an application must provide them);
- flash: weights + code of the bundle for Cortex-M4 (`arm-none-eabi-size` of model.o + model_weights.o,
  -O2), beside the .tflite file size TFLM would hold in flash (its interpreter code comes on top);
- x86-64 instructions of one inference (valgrind callgrind): the bundle's `model_invoke` (copies in and out included) vs TFLite Micro's
  `MicroInterpreter::Invoke` (reference kernels, the `tflite-micro` package), and the ratio;
- Cortex-M4 instructions of one inference under qemu (the bundle; TFLM has no Cortex-M build here).

    .venv/bin/python bench/bench_c_bundle.py [--quick]      # --quick: the two smallest models only

Needs gcc, valgrind, arm-none-eabi-gcc and qemu-system-arm (`make toolchain`).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convertkit import api  # noqa: E402
from convertkit.backends.c_bundle.host import compile_example, read_io  # noqa: E402
from tools.mcu import mcu  # noqa: E402

MODELS = ROOT.parent / "shared" / "models" / "mlperf_tiny"
CASES = [
    ("anomaly detection (ad01)", MODELS / "anomaly_detection" / "ad01_int8.tflite"),
    ("keyword spotting (DS-CNN)", MODELS / "keyword_spotting" / "kws_ref_model.tflite"),
    ("image classification (ResNet-8)", MODELS / "image_classification" / "pretrainedResnet_quant.tflite"),
    ("visual wake words (MobileNetV1)", MODELS / "visual_wake_words" / "vww_96_int8.tflite"),
]


def bench_main(folder: Path, runs: int) -> Path:
    """A driver calling model_invoke ``runs`` times on zero inputs (the difference of two counts is
    one inference)."""
    ins, outs = read_io(folder)
    lines = ['#include "model.h"']
    lines += [f"static MODEL_INPUT{i.index}_TYPE in{i.index}[MODEL_INPUT{i.index}_SIZE];" for i in ins]
    lines += [f"static MODEL_OUTPUT{o.index}_TYPE out{o.index}[MODEL_OUTPUT{o.index}_SIZE];" for o in outs]
    args = ", ".join([f"in{i.index}" for i in ins] + [f"out{o.index}" for o in outs])
    lines += ["int main(void)", "{", "    int k;", f"    for (k = 0; k < {runs}; ++k) model_invoke({args});",
              "    return (int)out0[0] & 0;", "}"]
    path = folder / f"bench_main_{runs}.c"
    path.write_text("\n".join(lines) + "\n")
    return path


def digits_tflite(tmp: Path) -> Path:
    """The digits fixture quantized by convertkit, written as .tflite (the bundle is made from it)."""
    graphs = []
    api.convert(ROOT / "fixtures" / "tf" / "digits_cnn", to="c-bundle", output=tmp / "digits_tmp",
                quantize="int8", calibration=ROOT / "fixtures" / "tf" / "digits_calibration.npz",
                on_graph=graphs.append)
    return api.save(graphs[0], tmp / "digits_cnn_int8.tflite")


def m4_instructions(folder: Path) -> int:
    counts = []
    for runs in (1, 2):
        srcs = [bench_main(folder, runs), folder / "model.c", folder / "model_weights.c"]
        elf = mcu.build(srcs, folder / f"bench_{runs}.elf", cpu="cortex-m4", include_dirs=[folder])
        res = mcu.run(elf, count=True, timeout=1800)
        assert res.exit_code == 0, res.stderr
        counts.append(res.instructions)
    return counts[1] - counts[0]


def flash_bytes(folder: Path) -> tuple[int, int]:
    """(code, weights) bytes for Cortex-M4 -O2."""
    sizes = {}
    for name in ("model", "model_weights"):
        obj = folder / f"{name}.m4.o"
        subprocess.run(["arm-none-eabi-gcc", *mcu.CPU_FLAGS["cortex-m4"], "-std=c99", "-O2", "-c",
                        "-o", str(obj), str(folder / f"{name}.c")], check=True)
        out = subprocess.run(["arm-none-eabi-size", "-B", str(obj)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[1].split()
        sizes[name] = int(out[0]) + int(out[1])
    return sizes["model"], sizes["model_weights"]


def arena_of(folder: Path) -> tuple[int, int]:
    text = (folder / "model.h").read_text()

    def macro(name: str) -> int:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"#define {name} "))
        return int(line.split()[2].rstrip("u"))
    return macro("MODEL_ARENA_SIZE"), macro("MODEL_ARENA_LOWER_BOUND")


def host_instructions(folder: Path) -> int:
    exe = compile_example(folder, folder / "main_bench")
    ins, _ = read_io(folder)
    rec = folder / "one.bin"
    rng = np.random.default_rng(0)
    rec.write_bytes(b"".join(rng.integers(-128, 128, i.shape).astype(i.dtype).tobytes() for i in ins))
    return mcu.host_instructions(exe, [str(rec), str(folder / "out.bin")], toggle="model_invoke")


def tflm_instructions(model: Path, folder: Path) -> int:
    ins, _ = read_io(folder)
    rng = np.random.default_rng(0)
    return mcu.tflm_instructions(model, [rng.integers(-128, 128, i.shape).astype(i.dtype) for i in ins])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the two smallest models only")
    args = ap.parse_args()
    if not (mcu.have_toolchain() and mcu.have_valgrind()):
        print("needs arm-none-eabi-gcc, qemu-system-arm and valgrind: run `make toolchain`")
        return 2
    cases = [(n, p) for n, p in CASES if p.exists()][: 2 if args.quick else None]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ck_bench_") as tmp:
        cases.insert(0, ("digits CNN fixture (convertkit PTQ)", digits_tflite(Path(tmp))))
        for label, model in cases:
            folder = Path(tmp) / model.stem
            api.convert(model, to="c-bundle", output=folder)
            arena, bound = arena_of(folder)
            tflm_arena = mcu.tflm_arena_bytes(model)
            code, weights = flash_bytes(folder)
            ck_x86 = host_instructions(folder)
            tflm_x86 = tflm_instructions(model, folder)
            m4 = m4_instructions(folder)
            rows.append((label, arena, bound, tflm_arena, code, weights, model.stat().st_size, ck_x86, tflm_x86, m4))
            print(f"measured {label}", file=sys.stderr)
    print("\nC bundle vs TFLite Micro (reference kernels), int8, one inference\n")
    hdr = (f"{'model':34} {'arena B':>9} {'bound B':>9} {'TFLM arena':>11} {'ratio':>6} | {'code B':>8} "
           f"{'weights B':>10} {'.tflite B':>10} | {'x86 instr':>11} {'TFLM x86':>11} {'ratio':>6} | {'M4 instr':>11}")
    print(hdr)
    print("-" * len(hdr))
    for label, arena, bound, ta, code, w, fsize, cx, tx, m4 in rows:
        print(f"{label:34} {arena:>9,} {bound:>9,} {ta:>11,} {arena / ta:>6.2f} | {code:>8,} {w:>10,} {fsize:>10,} | "
              f"{cx:>11,} {tx:>11,} {cx / tx:>6.2f} | {m4:>11,}")
    print("\nratio < 1: the bundle needs less than TFLite Micro. TFLM's arena includes its own bookkeeping;"
          " its code (interpreter + kernels) is not counted in the .tflite size.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
