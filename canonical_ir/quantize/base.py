"""What every integer kernel shares: the quantized type of a tensor, activation clamping, requantization.

A quantized tensor is an integer tensor (int8 activations and weights, int32 biases, int16 in TFLite's
16x8 mode) whose ``Tensor.quant`` gives real = scale * (q - zero_point), per tensor or per channel. The
interpreter hands every integer kernel a :class:`QType` per input and output (None where a tensor is not
quantized, such as a Reshape's shape or a float Clip bound).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION, register_quantized
from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.errors import ShapeError

F32 = np.float32
_STORAGE = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32))
QKernel = Callable[[list, list, list, dict], list]
"""``(inputs, in_quants, out_quants, attrs) -> outputs``."""


@dataclass(frozen=True, eq=False)
class QType:
    """The quantization of one tensor: storage dtype, scale(s), zero point(s), channel axis."""

    dtype: np.dtype
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    @classmethod
    def of(cls, tensor: Any) -> "QType | None":
        """The QType of a graph Tensor, or None if it is not a quantized integer tensor (or its storage
        type is not known yet, and its zero point does not tell)."""
        q = getattr(tensor, "quant", None)
        if q is None:
            return None
        dt = tensor.dtype
        if dt is None:                       # not inferred yet: the zero point's type, as in ONNX
            zdt = np.asarray(q.zero_point).dtype
            dt = zdt if zdt in _STORAGE else None
        if dt is None or np.dtype(dt).kind not in "iu":
            return None
        return cls(np.dtype(dt), np.asarray(q.scale, F32), np.asarray(q.zero_point, np.int64), q.axis)

    @classmethod
    def make(cls, dtype: Any, scale: Any, zero_point: Any = 0, axis: int | None = None) -> "QType":
        return cls(np.dtype(dtype), np.asarray(scale, F32), np.asarray(zero_point, np.int64), axis)

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def qmin(self) -> int:
        return int(np.iinfo(self.dtype).min)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(self.dtype).max)

    @property
    def s(self) -> np.float32:
        """The per-tensor scale (a float32, as TFLite stores it)."""
        if self.per_channel:
            raise ShapeError("a per-tensor scale is required here, the tensor is quantized per channel")
        return F32(self.scale.reshape(-1)[0])

    @property
    def zp(self) -> int:
        if self.zero_point.size > 1 and np.any(self.zero_point != self.zero_point.reshape(-1)[0]):
            raise ShapeError("a per-tensor zero point is required here")
        return int(self.zero_point.reshape(-1)[0])

    def same(self, other: "QType | None") -> bool:
        """Same storage type, scale and zero point (so values pass through unchanged)."""
        return (other is not None and self.dtype == other.dtype and self.scale.shape == other.scale.shape
                and bool(np.all(self.scale == other.scale))
                and bool(np.all(self.zero_point == other.zero_point)))

    def channel_param(self, p: np.ndarray, ndim: int, axis: int | None = None) -> np.ndarray:
        """A per-channel parameter shaped to broadcast along ``axis`` (default: the QType's axis)."""
        p = np.asarray(p)
        if p.size == 1:
            return p.reshape(())
        ax = self.axis if axis is None else axis
        return p.reshape([-1 if i == ax % ndim else 1 for i in range(ndim)])

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Real values (float64) of ``q``; for reports and tests, never on an integer inference path."""
        zp = self.channel_param(self.zero_point, q.ndim) if self.zero_point.size > 1 else self.zero_point
        sc = self.channel_param(self.scale, q.ndim) if self.scale.size > 1 else self.scale
        return (q.astype(np.int64) - zp).astype(np.float64) * sc.astype(np.float64)


def saturate(x: np.ndarray, dtype: np.dtype, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Clamp to [lo, hi] (default: the dtype's range) and store as ``dtype``."""
    info = np.iinfo(dtype)
    lo = info.min if lo is None else max(lo, info.min)
    hi = info.max if hi is None else min(hi, info.max)
    return np.clip(x, lo, hi).astype(dtype)


def quantize_value(value: float, q: QType) -> int:
    """TFLite's prepare-time ``zero_point + TfLiteRound(value / scale)`` (float32 division)."""
    return q.zp + int(fx.round_half_away(F32(value) / q.s))


def activation_range(attrs: dict[str, Any], out_q: QType) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized``: the output clamp of a kernel with a fused activation
    (the node's ``fused_activation``, see ``ops/registry.py``): Relu and Clip bounds quantized as
    ``zp + TfLiteRound(bound / scale)``; without one, the output type's range."""
    act = attrs.get(FUSED_ACTIVATION)
    lo, hi = out_q.qmin, out_q.qmax
    if act is None:
        return lo, hi
    op, *params = act
    if op == "Relu":
        bounds = [0.0, None]
    elif op == "Clip":
        bounds = (list(params) + [None, None])[:2]
    else:
        raise ShapeError(f"a fused {op} has no integer form (TFLite fuses Relu, Relu6 and ReluN1To1 into "
                         "integer kernels): unfuse it")
    if bounds[0] is not None:
        lo = max(lo, quantize_value(float(bounds[0]), out_q))
    if bounds[1] is not None:
        hi = min(hi, quantize_value(float(bounds[1]), out_q))
    return lo, hi


def float_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` without the fused activation, for calling an op's own (data-movement) kernel."""
    return {k: v for k, v in attrs.items() if k != FUSED_ACTIVATION}


def requantize(x: np.ndarray, in_q: QType, out_q: QType) -> np.ndarray:
    """TFLite's int-to-int QUANTIZE (``reference_ops::Requantize``): (x - zp_in) rescaled by
    s_in / s_out (computed in double) with MultiplyByQuantizedMultiplier, plus zp_out, saturated.
    Returns ``x`` unchanged (cast) when the quantizations agree."""
    if in_q.same(out_q) or (in_q.dtype == out_q.dtype and not in_q.per_channel and not out_q.per_channel
                            and in_q.s == out_q.s and in_q.zp == out_q.zp):
        return x.astype(out_q.dtype, copy=False)
    m, shift = fx.quantize_multiplier(np.float64(in_q.s) / np.float64(out_q.s))
    v = fx.multiply_by_quantized_multiplier(x.astype(np.int64) - in_q.zp, m, shift) + out_q.zp
    return saturate(v, out_q.dtype)


def require(cond: bool, message: str) -> None:
    """A kernel precondition; raised as a ShapeError, which the interpreter reports with the node."""
    if not cond:
        raise ShapeError(message)


def need_quantized(in_q: Sequence[QType | None], out_q: Sequence[QType | None], ins: Sequence[int] = (0,),
                   outs: Sequence[int] = (0,)) -> None:
    """Raise unless the given inputs and outputs are quantized (mixed float/int nodes are refused)."""
    for i in ins:
        require(i < len(in_q) and in_q[i] is not None, f"input {i} is not quantized (a float input to an "
                                                       "integer kernel; hybrid models are not supported)")
    for i in outs:
        require(i < len(out_q) and out_q[i] is not None, f"output {i} is not quantized")


def quantized(*ops: str, real_valued_infer: bool = True) -> Callable[[QKernel], QKernel]:
    """Register one integer kernel for several canonical ops."""
    def deco(fn: QKernel) -> QKernel:
        for op in ops:
            register_quantized(op, real_valued_infer=real_valued_infer)(fn)
        return fn
    return deco
