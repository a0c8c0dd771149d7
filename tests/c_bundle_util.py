"""Compile a C bundle on this host and run it on given inputs, for the C bundle tests (thin wrappers
over ``convertkit.backends.c_bundle.host``, which ``--verify`` uses too)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from convertkit.backends.c_bundle.host import CFLAGS, compile_example, run_example

STRICT = list(CFLAGS)


def compilers() -> list[str]:
    """gcc always; clang when installed (CI installs it)."""
    return [cc for cc in ("gcc", "clang") if shutil.which(cc)]


def compile_bundle(folder: Path, cc: str = "gcc", extra: Sequence[str] = ()) -> Path:
    """Build the bundle's example program with the strict flags (-Wall -Wextra -Werror -pedantic)."""
    try:
        return compile_example(folder, folder / f"main_{cc}", cc, extra)
    except RuntimeError as e:
        raise AssertionError(str(e)) from None


def run_bundle(exe: Path, feeds: Sequence[Sequence[np.ndarray]], out_specs: Sequence[tuple[np.dtype, tuple]]
               ) -> list[list[np.ndarray]]:
    """Run ``exe`` on each feed (one array per model input, in order, already in the input's type);
    returns one list of outputs per feed, shaped and typed by ``out_specs`` [(dtype, shape), ...]."""
    return run_example(exe, feeds, out_specs=out_specs)


def graph_out_specs(graph) -> list[tuple[np.dtype, tuple]]:
    return [(np.dtype(graph.tensor(o).dtype), tuple(graph.tensor(o).shape)) for o in graph.outputs]
