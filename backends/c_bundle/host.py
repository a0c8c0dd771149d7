"""Compile a bundle's example program on this machine and run it on inputs, for ``--verify`` and tests.

The example ``main.c`` has a batch mode (``main IN OUT``: raw input records in, raw output records
out), so one process runs any number of inferences.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from convertkit.errors import UsageError

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")
_CTYPES = {"float": np.float32, "int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16,
           "int32_t": np.int32, "int64_t": np.int64}


@dataclass(frozen=True)
class IOSpec:
    """One input or output as ``model.h`` declares it."""

    index: int
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    scale: float | None = None
    zero_point: int | None = None

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float values -> this int8 input (TFLite rounding: half away from zero)."""
        if self.scale is None or np.asarray(x).dtype.kind not in "f":
            return np.asarray(x, self.dtype).reshape(self.shape)
        q = np.asarray(x, np.float32) / np.float32(self.scale)
        q = np.sign(q) * np.floor(np.abs(q) + 0.5) + self.zero_point
        info = np.iinfo(self.dtype)
        return np.clip(q, info.min, info.max).astype(self.dtype).reshape(self.shape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.scale is None:
            return np.asarray(q)
        return (q.astype(np.float64) - self.zero_point) * np.float64(np.float32(self.scale))


def read_io(folder: Path, name: str = "model") -> tuple[list[IOSpec], list[IOSpec]]:
    """The inputs and outputs declared in ``model.h``."""
    text = (Path(folder) / f"{name}.h").read_text()
    P = name.upper()
    out: dict[str, list[IOSpec]] = {"INPUT": [], "OUTPUT": []}
    for m in re.finditer(r"/\* (input|output) (\d+): '(.*)' (\w+) \[([0-9, ]*)\] \*/", text):
        kind, idx, tname, ct, dims = m.groups()
        key = f"{P}_{kind.upper()}{idx}"
        scale = re.search(rf"#define {key}_SCALE (\S+)", text)
        zp = re.search(rf"#define {key}_ZERO_POINT \((-?\d+)\)", text)
        shape = tuple(int(d) for d in dims.split(",") if d.strip())
        out[kind.upper()].append(IOSpec(int(idx), tname, np.dtype(_CTYPES[ct]), shape,
                                        float.fromhex(scale.group(1).rstrip("f")) if scale else None,
                                        int(zp.group(1)) if zp else None))
    return out["INPUT"], out["OUTPUT"]


def find_compiler() -> str:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    raise UsageError("no C compiler found to build the bundle", hint="install gcc, or set CC")


def compile_example(folder: Path, out: Path, cc: str | None = None, extra: Sequence[str] = ()) -> Path:
    """Build ``main.c`` + the model with the strict flags; returns the executable."""
    cc = cc or find_compiler()
    srcs = [str(Path(folder) / f) for f in ("main.c", "model.c", "model_weights.c")]
    r = subprocess.run([cc, *CFLAGS, *extra, "-I", str(folder), "-o", str(out), *srcs, "-lm"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cc} failed on {folder}:\n{r.stderr[:4000]}")
    return out


def run_example(exe: Path, records: Sequence[Sequence[np.ndarray]], outputs: Sequence[IOSpec] | None = None,
                *, out_specs: Sequence[tuple[np.dtype, tuple]] | None = None) -> list[list[np.ndarray]]:
    """Run ``exe`` in batch mode on ``records`` (per record: one array per input, already in the
    input's type); returns per record the outputs (typed and shaped by ``outputs`` or ``out_specs``)."""
    specs = [(o.dtype, o.shape) for o in outputs] if outputs is not None else list(out_specs or [])
    with tempfile.TemporaryDirectory(prefix="ck_run_") as tmp:
        inp, outp = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(inp, "wb") as f:
            for rec in records:
                for a in rec:
                    f.write(np.ascontiguousarray(a).tobytes())
        r = subprocess.run([str(exe), str(inp), str(outp)], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError(f"{exe} exited with {r.returncode}: {r.stderr[:2000]}")
        raw = outp.read_bytes()
    sizes = [int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize for d, s in specs]
    if len(raw) != sum(sizes) * len(records):
        raise RuntimeError(f"{exe} wrote {len(raw)} bytes, expected {sum(sizes) * len(records)}")
    results, pos = [], 0
    for _ in records:
        outs = []
        for (d, s), n in zip(specs, sizes):
            outs.append(np.frombuffer(raw[pos:pos + n], dtype=d).reshape(s).copy())
            pos += n
        results.append(outs)
    return results


def run_bundle(folder: Path, feeds: Sequence[dict[str, np.ndarray] | Sequence[np.ndarray]],
               cc: str | None = None) -> list[list[np.ndarray]]:
    """Compile the bundle in ``folder`` and run it on ``feeds`` (float inputs are quantized with the
    bundle's input parameters). Returns raw outputs (int8 stays int8) per feed."""
    ins, outs = read_io(folder)
    records = []
    for feed in feeds:
        arrays = list(feed.values()) if isinstance(feed, dict) else list(feed)
        records.append([spec.quantize(a) for spec, a in zip(ins, arrays)])
    with tempfile.TemporaryDirectory(prefix="ck_build_") as tmp:
        exe = compile_example(Path(folder), Path(tmp) / "main", cc)
        return run_example(exe, records, outs)
