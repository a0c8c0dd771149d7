"""Calibration data from files: an ``.npz``, an ``.npy``, or a folder of them.

- ``.npz``: one array per graph input, named after it (a graph with one input also takes a single array
  of any name);
- ``.npy``: one array, for a graph with one input;
- a folder: every ``.npz``/``.npy`` file in it, in name order.

An array holds samples for its input: either exactly one run's worth (the input's shape), a stack of
runs (one more leading axis), or, for an input with a fixed batch size b, a batch whose first dimension
is a multiple of b (split into runs of b). Float arrays are cast to the input's float type. Anything
else is refused naming the file and the input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import UsageError

Feed = dict[str, np.ndarray]


def _fits(shape: tuple, want: tuple) -> bool:
    return len(shape) == len(want) and all(not isinstance(w, int) or w == s for s, w in zip(shape, want))


def _runs(arr: np.ndarray, graph: Graph, name: str, where: Path) -> list[np.ndarray]:
    t = graph.tensor(name)
    want = tuple(t.shape) if t.shape is not None else None
    if t.dtype is not None and t.dtype.kind == "f" and arr.dtype.kind in "fiu":
        arr = arr.astype(t.dtype)
    elif t.quant is not None and arr.dtype.kind == "f":  # real values for a quantized input: kept float
        arr = arr.astype(np.float32)
    elif t.dtype is not None and arr.dtype != t.dtype:
        raise UsageError(f"{where}: array for input {name!r} is {arr.dtype}, the input is {t.dtype}")
    if want is None or _fits(arr.shape, want):
        return [arr]
    if arr.ndim == len(want) + 1 and _fits(arr.shape[1:], want):
        return list(arr)
    b = want[0] if want else None
    if (isinstance(b, int) and b > 0 and arr.ndim == len(want) and arr.shape[0] % b == 0
            and _fits((b,) + arr.shape[1:], want)):
        return [arr[i:i + b] for i in range(0, arr.shape[0], b)]
    raise UsageError(f"{where}: array of shape {list(arr.shape)} does not fit input {name!r} of shape "
                     f"{list(want)}", hint="give one sample, a stack of samples, or a batch of them")


def _load_file(path: Path, graph: Graph) -> list[Feed]:
    try:
        if path.suffix == ".npy":
            arrays: dict[str, Any] = {"": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not a readable {path.suffix} file ({e})") from None
    inputs = list(graph.inputs)
    if len(arrays) == 1 and len(inputs) == 1:
        by_input = {inputs[0]: next(iter(arrays.values()))}
    else:
        if "" in arrays:
            raise UsageError(f"{path}: an .npy holds one array, the graph has {len(inputs)} inputs",
                             hint="use an .npz with one array per input, named after it")
        missing = [n for n in inputs if n not in arrays]
        extra = [k for k in arrays if k not in inputs]
        if missing or extra:
            detail = (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else "")
            raise UsageError(f"{path}: arrays {sorted(arrays)} do not match the graph inputs "
                             f"{inputs}{detail}")
        by_input = {n: arrays[n] for n in inputs}
    runs = {n: _runs(np.asarray(a), graph, n, path) for n, a in by_input.items()}
    counts = {len(r) for r in runs.values()}
    if len(counts) != 1:
        raise UsageError(f"{path}: inputs hold different numbers of samples "
                         f"({', '.join(f'{n}: {len(r)}' for n, r in runs.items())})")
    return [{n: runs[n][i] for n in inputs} for i in range(counts.pop())]


def load_calibration_data(path: str | Path, graph: Graph) -> list[Feed]:
    """Feeds (graph input name -> array, one mapping per run) for :func:`calibration.calibrate`."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"calibration data {str(p)!r} does not exist",
                         hint="give an .npz, an .npy, or a folder of them")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".npz", ".npy") and f.is_file())
        if not files:
            raise UsageError(f"calibration folder {str(p)!r} holds no .npz or .npy file")
    elif p.suffix in (".npz", ".npy"):
        files = [p]
    else:
        raise UsageError(f"calibration data {str(p)!r} is not an .npz or .npy file or a folder of them")
    feeds: list[Feed] = []
    for f in files:
        feeds.extend(_load_file(f, graph))
    return feeds
