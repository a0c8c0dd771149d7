"""C bundle backend: a legalized (and possibly int8-quantized) graph -> a folder of C99 for MCUs.

    model.h            the API: model_invoke / model_run, shapes, types, quantization, arena size
    model.c            one specialized function per node, called in order; no malloc, no stdio
    model_weights.c/h  const arrays (flash), aligned, deduplicated
    ck_runtime.h       TFLite's fixed-point helpers (integer-only)
    main.c, Makefile, CMakeLists.txt, README.md

Kernels live in ``kernels/`` (one module per op family, registered per op and precision in
``emit.KERNELS``); the arena planner in ``planner.py``; assembling the files in ``bundle.py`` and
``files.py``. The folder is written atomically: a temporary sibling renamed into place.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from convertkit.backends.c_bundle.bundle import Bundle, build
from convertkit.backends.c_bundle.capabilities import target_capabilities  # noqa: F401
from convertkit.backends.c_bundle.files import CFLAGS, bundle_files
from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.passes.legalize import legalized
from convertkit.errors import ExportError, UsageError


@dataclass
class Budget:
    ram: int | None = None
    flash: int | None = None


def parse_budget(text: str | None) -> Budget:
    """'ram=256K,flash=1M' -> Budget (K = 1024 bytes, M = 1024 K)."""
    b = Budget()
    if not text:
        return b
    for item in text.split(","):
        key, _, val = item.partition("=")
        key, val = key.strip().lower(), val.strip().upper()
        mult = {"K": 1024, "M": 1024 * 1024}.get(val[-1:], 1)
        digits = val[:-1] if val[-1:] in ("K", "M") else val
        if key not in ("ram", "flash") or not digits.isdigit():
            raise UsageError(f"bad --budget item {item!r}", hint="e.g. --budget ram=256K,flash=1M")
        setattr(b, key, int(digits) * mult)
    return b


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def code_bytes(folder: Path, name: str = "model") -> tuple[int | None, str]:
    """Bytes of machine code of the model (text of model.c), for Cortex-M4 if arm-none-eabi-gcc is
    installed, else for this host; (None, why) without a compiler."""
    for cc, flags, label in (("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"], "Cortex-M4"),
                             ("cc", [], "host")):
        size_tool = "arm-none-eabi-size" if cc.startswith("arm") else "size"
        if shutil.which(cc) is None or shutil.which(size_tool) is None:
            continue
        obj = folder / f".{name}.o"
        try:
            subprocess.run([cc, *flags, "-std=c99", "-O2", "-c", "-o", str(obj), str(folder / f"{name}.c")],
                           check=True, capture_output=True, timeout=300)
            out = subprocess.run([size_tool, str(obj)], check=True, capture_output=True, text=True).stdout
            return int(out.splitlines()[1].split()[0]), label
        except (subprocess.SubprocessError, OSError, ValueError, IndexError):
            return None, "compile failed"
        finally:
            obj.unlink(missing_ok=True)
    return None, "no C compiler"


def summary_text(b: Bundle, code: tuple[int | None, str]) -> str:
    n_ops = sum(1 for c in b.codes if c.kernel.emit is not None)
    n_views = len(b.codes) - n_ops
    precision = "int8 (integer-only)" if not b.uses_float else (
        "float32" if b.precisions == {"float"} else "mixed int8/float32")
    code_txt = f"{code[0]} B ({code[1]}, -O2)" if code[0] is not None else f"unknown ({code[1]})"
    views = f"{n_views} view{'s' if n_views != 1 else ''} without code"
    return (f"C bundle: {n_ops} node functions ({views}), {precision}; "
            f"arena {b.memory.arena_bytes} B (lower bound {b.memory.lower_bound} B); "
            f"weights {b.weights.nbytes} B; code {code_txt}")


def export(graph: Graph, path: str | os.PathLike, *, name: str = "model", budget: str | Budget | None = None,
           log: Callable[[str], None] | None = None, quiet: bool = True, **_: Any) -> Path:
    """Write the C bundle of ``graph`` into the folder ``path`` (replaced if it exists). ``budget``
    ('ram=256K,flash=1M') fails the export, naming the excess, when the model does not fit. ``log``
    receives the summary line; ``quiet=False`` shows a progress bar on a terminal for large models."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder", hint="the C bundle is a folder: -o bundle/")
    if isinstance(budget, str) or budget is None:
        budget = parse_budget(budget)
    from convertkit.progress import Progress

    legal = legalized(graph, target_capabilities())
    with Progress(len(legal.nodes), "writing the C bundle", quiet=quiet) as bar:
        b = build(legal, name, on_node=lambda i: bar.update(i + 1))
    files = bundle_files(b, summary="")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for fname, text in files.items():
            (tmp / fname).write_text(text)
        code = code_bytes(tmp, name)
        summary = summary_text(b, code)
        _check_budget(b, code, budget)
        from convertkit.backends.c_bundle.files import readme

        (tmp / "README.md").write_text(readme(b, summary))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if log is not None:
        log(summary)
    return out


def _check_budget(b: Bundle, code: tuple[int | None, str], budget: Budget) -> None:
    over = []
    if budget.ram is not None and b.memory.arena_bytes > budget.ram:
        over.append(f"RAM: the arena needs {_kib(b.memory.arena_bytes)}, {_kib(b.memory.arena_bytes - budget.ram)} "
                    f"over the {_kib(budget.ram)} budget (lower bound {_kib(b.memory.lower_bound)})")
    flash = b.weights.nbytes + (code[0] or 0)
    if budget.flash is not None and flash > budget.flash:
        what = "weights + code" if code[0] is not None else "weights (code size unknown)"
        over.append(f"flash: {what} need {_kib(flash)}, {_kib(flash - budget.flash)} over the "
                    f"{_kib(budget.flash)} budget")
    if over:
        raise ExportError("the model does not fit the budget: " + "; ".join(over),
                          hint="quantize with --quantize int8, or use a smaller model")


__all__ = ["export", "target_capabilities", "parse_budget", "Budget", "build", "CFLAGS"]
