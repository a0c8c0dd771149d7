"""Calibration: the range of every float activation over calibration data, from the reference
interpreter's record mode.

``minmax`` keeps the extreme values seen over all samples (what TensorFlow's converter does);
``percentile`` clips outliers: the range between the (100 - p)th and p-th percentile of each tensor's
values, from a 4096-bin histogram over its min/max range (a second pass over the data).
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import UsageError

Ranges = dict[str, tuple[float, float]]
"""Tensor name -> (min, max) of its real values."""

METHODS = ("minmax", "percentile")
_BINS = 4096


def _float_activations(graph: Graph, values: Mapping[str, np.ndarray]) -> Iterable[tuple[str, np.ndarray]]:
    for name, v in values.items():
        if v.dtype.kind == "f" and not graph.tensor(name).is_const:
            yield name, v


def calibrate(graph: Graph, feeds_iter: Iterable[Mapping[str, np.ndarray]], method: str = "minmax",
              percentile: float = 99.99, *,
              on_batch: Callable[[int], None] | None = None) -> Ranges:
    """Ranges of every float tensor the graph computes (and of its float inputs) over ``feeds_iter``
    (graph input name -> array, one mapping per run). ``on_batch(i)`` is called after each run."""
    from convertkit.canonical_ir.interpreter import run

    if method not in METHODS:
        raise UsageError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    if method == "percentile" and not 50.0 < percentile <= 100.0:
        raise UsageError(f"percentile {percentile} must be in (50, 100]")
    feeds = list(feeds_iter)
    if not feeds:
        raise UsageError("no calibration data: the calibration set is empty")
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for i, f in enumerate(feeds):
        for name, v in _float_activations(graph, run(graph, f, record=True)):
            finite = v[np.isfinite(v)]
            if finite.size == 0:
                continue
            lo[name] = min(lo.get(name, np.inf), float(finite.min()))
            hi[name] = max(hi.get(name, -np.inf), float(finite.max()))
        if on_batch is not None:
            on_batch(i)
    if method == "minmax":
        return {n: (lo[n], hi[n]) for n in lo}
    hist = {n: np.zeros(_BINS, np.int64) for n in lo}
    for f in feeds:
        for name, v in _float_activations(graph, run(graph, f, record=True)):
            if name in hist and hi[name] > lo[name]:
                hist[name] += np.histogram(v[np.isfinite(v)], bins=_BINS, range=(lo[name], hi[name]))[0]
    out: Ranges = {}
    for name, h in hist.items():
        if hi[name] <= lo[name] or h.sum() == 0:
            out[name] = (lo[name], hi[name])
            continue
        edges = np.linspace(lo[name], hi[name], _BINS + 1)
        cdf = np.cumsum(h) / h.sum()
        tail = (100.0 - percentile) / 100.0
        out[name] = (float(edges[int(np.searchsorted(cdf, tail, side="left"))]),
                     float(edges[int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1]))
    return out
