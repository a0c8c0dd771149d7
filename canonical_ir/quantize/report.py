"""The error quantization introduced: the float graph and its quantized version on the same inputs.

Inputs of an int8-io quantized graph are quantized as TFLite's QUANTIZE does (half away from zero) and
its int8 outputs dequantized, so both graphs are compared in real values. Per output: the largest and
mean absolute error, the RMS error relative to the float output's RMS, the signal-to-quantization-noise
ratio in dB, and, for outputs with a class axis (the last, of size > 1), how often the arg-max agrees.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.canonical_ir.quantize.base import QType
from convertkit.canonical_ir.quantize import fixedpoint as fx


@dataclass
class OutputError:
    """Error figures of one graph output over all the samples given."""

    name: str
    max_abs: float
    mean_abs: float
    rel_rms: float
    sqnr_db: float
    top1_agreement: float | None
    quant_step: float

    def __str__(self) -> str:
        top1 = "" if self.top1_agreement is None else f", top-1 agreement {100 * self.top1_agreement:.1f}%"
        steps = self.max_abs / self.quant_step
        return (f"{self.name}: max |err| {self.max_abs:.4g} ({steps:.2f} steps), "
                f"mean |err| {self.mean_abs:.4g}, "
                f"rel. RMS {100 * self.rel_rms:.2f}%, SQNR {self.sqnr_db:.1f} dB{top1}")


def _quantize_feed(q_graph: Graph, name: str, x: np.ndarray) -> np.ndarray:
    t = q_graph.tensor(name)
    q = QType.of(t)
    if q is None or x.dtype.kind != "f":
        return x
    v = fx.round_half_away(x.astype(np.float32) / q.s) + q.zp
    return np.clip(v, q.qmin, q.qmax).astype(q.dtype)


def quantization_report(float_graph: Graph, q_graph: Graph,
                        feeds: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]]
                        ) -> dict[str, OutputError]:
    """Per-output error of ``q_graph`` against ``float_graph`` over ``feeds`` (one mapping of float
    inputs, or several). Outputs are matched by position."""
    from convertkit.canonical_ir.interpreter import run

    batches = [feeds] if isinstance(feeds, Mapping) else list(feeds)
    ref: dict[int, list[np.ndarray]] = {}
    got: dict[int, list[np.ndarray]] = {}
    for f in batches:
        fo = run(float_graph, f)
        qf = {qn: _quantize_feed(q_graph, qn, f[fn]) for fn, qn in zip(float_graph.inputs, q_graph.inputs)}
        qo = run(q_graph, qf)
        for i, (fn, qn) in enumerate(zip(float_graph.outputs, q_graph.outputs)):
            q = QType.of(q_graph.tensor(qn))
            ref.setdefault(i, []).append(np.asarray(fo[fn], np.float64))
            real = q.dequantize(qo[qn]) if q is not None else np.asarray(qo[qn], np.float64)
            got.setdefault(i, []).append(real)
    report = {}
    for i, name in enumerate(float_graph.outputs):
        r = np.concatenate([a.reshape(-1) for a in ref[i]])
        g = np.concatenate([a.reshape(-1) for a in got[i]])
        err = g - r
        signal = float(np.sqrt(np.mean(r ** 2))) if r.size else 0.0
        noise = float(np.sqrt(np.mean(err ** 2))) if err.size else 0.0
        top1 = None
        if ref[i][0].ndim >= 1 and ref[i][0].shape[-1] > 1:
            agree = [np.argmax(a, -1) == np.argmax(b, -1) for a, b in zip(ref[i], got[i])]
            top1 = float(np.mean(np.concatenate([a.reshape(-1) for a in agree])))
        q = QType.of(q_graph.tensor(q_graph.outputs[i]))
        if q is None:                       # float io: the step of the quantized tensor before dequantizing
            prod = q_graph.producer(q_graph.outputs[i])
            src = q_graph.inputs_of(prod)[0] if prod is not None and prod.op == "DequantizeLinear" else None
            q = QType.of(q_graph.tensor(src)) if src is not None else None
        report[name] = OutputError(
            name=name, max_abs=float(np.max(np.abs(err), initial=0.0)), mean_abs=float(np.mean(np.abs(err))),
            rel_rms=noise / signal if signal > 0 else 0.0,
            sqnr_db=float(20 * np.log10(signal / noise)) if noise > 0 and signal > 0 else float("inf"),
            top1_agreement=top1,
            quant_step=float(q.s) if q is not None and not q.per_channel else float("nan"))
    return report
