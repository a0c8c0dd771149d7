"""Post-training quantization: a float graph and calibrated ranges -> the same graph on int8 tensors.

The scheme is TFLite's (what its converter produces, so an exporter writes the result as is):

- activations: per-tensor asymmetric int8; scale (max - min) / 255 over the range widened to include 0,
  the zero point nudged to an integer as TFLite's ``ChooseQuantizationParams`` does;
- weights of Conv / ConvTranspose / Gemm / constant-B MatMul: per-channel symmetric int8 in [-127, 127]
  along the output-channel axis (Conv: axis 0 in both layouts; ConvTranspose: 0 in NHWC, 1 in NCHW;
  Gemm: the output column of B; MatMul: B's last axis); biases int32 at scale s_x * s_w (zero point 0);
- other float constants (an Add's operand, a PRelu slope): per-tensor asymmetric int8 from their own
  range; Clip bounds and Pad values stay real numbers (the integer kernels quantize them);
- fixed output parameters where TFLite's kernels require them: Softmax and Sigmoid (1/256, -128), Tanh
  (1/128, 0); ops that only move or select values (MaxPool, AveragePool, Reshape, Transpose, Pad, Resize,
  ...) keep their input's parameters, as TFLite requires;
- an activation (Relu, Relu6 / ReluN1To1 Clips) that is the only consumer of a Conv/Gemm/MatMul/Add/...
  gives its parameters to that producer's output, so fusing it later (as TFLite does) changes nothing;
  any other Clip keeps its input's parameters (TFLite Micro's RELU6 ignores the output's);
- ``io="int8"``: graph inputs and outputs become int8 tensors; ``io="float"``: they stay float, with a
  QuantizeLinear (TFLite rounding) after each input and a DequantizeLinear before each output.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node, QuantParams
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import channels_last
from convertkit.canonical_ir.ops.registry import FUSABLE, FUSED_ACTIVATION
from convertkit.canonical_ir.passes.infer import infer_shapes
from convertkit.canonical_ir.quantize import fixedpoint as fx
from convertkit.canonical_ir.quantize.calibration import Ranges
from convertkit.errors import UnsupportedOpError, UsageError

I8, I32 = np.dtype(np.int8), np.dtype(np.int32)
F32 = np.float32

FIXED_OUTPUT: dict[str, tuple[float, int]] = {"Softmax": (1.0 / 256, -128), "Sigmoid": (1.0 / 256, -128),
                                              "Tanh": (1.0 / 128, 0)}
"""Ops whose int8 output parameters TFLite fixes."""

SAME_AS_INPUT = frozenset({
    "MaxPool", "AveragePool", "GlobalMaxPool", "ReduceMax", "ReduceMin", "Reshape", "Flatten", "Transpose",
    "Squeeze", "Unsqueeze", "Identity", "Dropout", "Slice", "Split", "Gather", "GatherND", "GatherElements",
    "Tile", "Expand", "DepthToSpace", "SpaceToDepth", "Pad", "Resize"})
"""Ops whose output TFLite requires quantized exactly as their input."""

WEIGHT_AXIS = {"Conv": lambda attrs, w: 0,
               "ConvTranspose": lambda attrs, w: 0 if channels_last(attrs["layout"]) else 1,
               "Gemm": lambda attrs, w: 0 if attrs.get("transB") else 1,
               "MatMul": lambda attrs, w: w.ndim - 1}
"""Per-channel (output-channel) axis of the weight input (port 1) of each op, in the weight's layout."""


def choose_qparams(lo: float, hi: float, dtype: Any = I8,
                   narrow_range: bool = False) -> tuple[np.float32, int]:
    """TFLite's ``ChooseQuantizationParams`` (and the converter's nudging): the range widened to include
    0, scale = (max - min) / (qmax - qmin), the zero point from the end with the smaller error,
    rounded (half away from zero) and clamped. An empty range gives scale 1, zero point 0 ... -128
    shifted to represent 0 exactly."""
    info = np.iinfo(dtype)
    qmin, qmax = info.min + (1 if narrow_range else 0), info.max
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return F32(1.0), 0 if qmin <= 0 <= qmax else qmin
    scale = (hi - lo) / (qmax - qmin)
    zp_from_min, zp_from_max = qmin - lo / scale, qmax - hi / scale
    err_min, err_max = abs(qmin) + abs(lo / scale), abs(qmax) + abs(hi / scale)
    zp = zp_from_min if err_min < err_max else zp_from_max
    zp = qmin if zp < qmin else qmax if zp > qmax else int(fx.round_half_away(zp))
    return F32(scale), int(zp)


def _symmetric(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 in [-127, 127]: per channel along ``axis`` (or per tensor). Returns (q, scales)."""
    w = np.asarray(w, np.float32)
    if axis is None:
        m = np.array([np.max(np.abs(w), initial=0.0)])
    else:
        m = np.max(np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1), axis=1, initial=0.0)
    scales = np.where(m > 0, m / 127.0, 1.0).astype(F32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = fx.round_half_away(w / (scales.reshape(shape) if axis is not None else scales[0]))
    return np.clip(q, -127, 127).astype(I8), scales


def _quantize_const(v: np.ndarray) -> tuple[np.ndarray, QuantParams]:
    """A float constant operand, per-tensor asymmetric int8 over its own range."""
    s, zp = choose_qparams(float(np.min(v, initial=0.0)), float(np.max(v, initial=0.0)))
    q = np.clip(fx.round_half_away(v.astype(np.float32) / s) + zp, -128, 127).astype(I8)
    return q, QuantParams(np.asarray(s, F32), np.asarray(zp, I8))


class _Quantizer:
    def __init__(self, graph: Graph, ranges: Ranges, io: str) -> None:
        if io not in ("int8", "float"):
            raise UsageError(f"io must be 'int8' or 'float', got {io!r}")
        self.g = graph.copy()
        infer_shapes(self.g)
        self.ranges = ranges
        self.io = io
        self.q: dict[str, QuantParams] = {}

    # -------------------------------------------------------------------------------- helpers
    def is_float_activation(self, name: str | None) -> bool:
        if name is None:
            return False
        t = self.g.tensor(name)
        return not t.is_const and t.dtype is not None and t.dtype.kind == "f"

    def range_of(self, name: str) -> tuple[float, float]:
        if name not in self.ranges:
            raise UsageError(f"no calibrated range for tensor {name!r}",
                             hint="calibrate the same graph that is quantized")
        return self.ranges[name]

    def params_from_range(self, name: str) -> QuantParams:
        s, zp = choose_qparams(*self.range_of(name))
        return QuantParams(np.asarray(s, F32), np.asarray(zp, I8))

    def check_kernels(self) -> None:
        missing: dict[str, list[str]] = {}
        for node in self.g.topo_order():
            names = self.g.inputs_of(node) + self.g.outputs_of(node)
            touches = [n for n in names if self.is_float_activation(n)]
            if touches and get_schema(node.op).qkernel is None:
                missing.setdefault(node.op, []).append(node.name)
        if missing:
            raise UnsupportedOpError("cannot quantize: no integer kernel for", missing,
                                     hint="fold BatchNorm and similar ops first (the optimize passes), or "
                                          "keep these parts in float")

    # ----------------------------------------------------------------------- activation params
    def assign_activations(self) -> None:
        g = self.g
        for name in g.inputs:
            if self.is_float_activation(name):
                self.q[name] = self.params_from_range(name)
        for node in g.topo_order():
            ins = g.inputs_of(node)
            for out in g.outputs_of(node):
                if not self.is_float_activation(out):
                    continue
                if node.op in FIXED_OUTPUT:
                    s, zp = FIXED_OUTPUT[node.op]
                    self.q[out] = QuantParams(np.asarray(s, F32), np.asarray(zp, I8))
                elif ins and ins[0] in self.q and (node.op in SAME_AS_INPUT or (
                        node.op == "Clip" and not self._fusible(node))):
                    self.q[out] = self.q[ins[0]]
                else:
                    self.q[out] = self.params_from_range(out)
        for node in g.topo_order():      # a fusible activation lends its parameters to its producer
            if self._fusible(node):
                x, y = g.inputs_of(node)[0], g.outputs_of(node)[0]
                self.q[x] = self.q[y]

    def _fusible(self, node: Node) -> bool:
        g = self.g
        if node.op == "Relu":
            pass
        elif node.op == "Clip":
            ports = (g.inputs_of(node) + [None] * 3)[1:3]
            bounds = [g.const_value(n) if n is not None else None for n in ports]
            vals = tuple(None if b is None else float(np.asarray(b).reshape(-1)[0]) for b in bounds)
            if vals not in ((0.0, 6.0), (-1.0, 1.0), (0.0, None)) or any(
                    n is not None and g.const_value(n) is None for n in g.inputs_of(node)[1:]):
                return False
        else:
            return False
        x = g.inputs_of(node)[0]
        prod = g.producer(x)
        return (prod is not None and prod.op in FUSABLE and prod.op not in SAME_AS_INPUT
                and prod.attrs.get(FUSED_ACTIVATION) is None
                and len(g.consumers(x)) == 1 and not g.is_graph_output(x) and g.outputs_of(prod)[0] == x)

    # --------------------------------------------------------------------------------- weights
    def quantize_constants(self) -> None:
        g = self.g
        for node in g.topo_order():
            ins = g.inputs_of(node)
            if node.op in WEIGHT_AXIS and len(ins) > 1 and self._float_const(ins[1]):
                self._weights(node)
                continue
            if node.op in ("Clip", "Pad", "Resize", "QuantizeLinear", "DequantizeLinear"):
                continue        # real-valued bounds/pad values/scales stay float: the kernels quantize them
            for port, name in enumerate(ins):
                if self._float_const(name) and self._needs_quantized_operand(node, port):
                    q, qp = _quantize_const(g.const_value(name))
                    g.set_input(node, port, self._const(q, name, qp))

    def _needs_quantized_operand(self, node: Node, port: int) -> bool:
        """A float constant that the integer kernel reads as a quantized operand (data inputs)."""
        if node.op in ("Add", "Sub", "Mul", "PRelu", "Concat", "MatMul"):
            return True
        return port == 0

    def _float_const(self, name: str | None) -> bool:
        v = self.g.const_value(name)
        return v is not None and v.dtype.kind == "f"

    def _const(self, value: np.ndarray, base: str, quant: QuantParams) -> str:
        name = self.g.add_const(value, f"{base}_q")
        self.g.tensor(name).quant = quant
        return name

    def _weights(self, node: Node) -> None:
        g = self.g
        ins = g.inputs_of(node)
        attrs = get_schema(node.op).resolve_attrs(node.attrs)
        w = g.const_value(ins[1]).astype(np.float32)
        b = g.const_value(ins[2]) if len(ins) > 2 and ins[2] is not None else None
        if node.op == "Gemm":
            if attrs["alpha"] != 1.0:
                w = w * F32(attrs["alpha"])
            if b is not None and attrs["beta"] != 1.0:
                b = b * F32(attrs["beta"])
            node.attrs.update(alpha=1.0, beta=1.0)
        axis = WEIGHT_AXIS[node.op](attrs, w)
        q_w, s_w = _symmetric(w, axis)
        g.set_input(node, 1, self._const(q_w, ins[1], QuantParams(s_w, np.zeros(s_w.shape, I8), axis)))
        if b is None or ins[0] not in self.q:
            if b is not None:
                raise UsageError(f"node {node.name}: its input has no quantization, so its bias cannot be")
            return
        if node.op == "MatMul":
            raise UsageError(f"node {node.name}: MatMul has no bias input")
        s_x = F32(self.q[ins[0]].scale)
        s_b = (s_x * s_w).astype(F32)
        n = s_w.size
        bias = np.broadcast_to(np.asarray(b, np.float64).reshape(-1), (n,))
        q_b = np.clip(fx.round_half_away(bias / s_b.astype(np.float64)), fx.I32_MIN, fx.I32_MAX).astype(I32)
        g.set_input(node, 2, self._const(q_b, ins[2], QuantParams(s_b, np.zeros(n, I32), 0)))

    # ------------------------------------------------------------------------------ graph edges
    def retype(self) -> None:
        g = self.g
        edges_in = set(g.inputs) if self.io == "float" else set()
        edges_out = set(g.outputs) if self.io == "float" else set()
        for name, qp in self.q.items():
            if name in edges_in or name in edges_out:
                continue
            t = g.tensor(name)
            t.dtype, t.quant = I8, qp
        for name in list(edges_in):
            if name not in self.q:
                continue
            qname = g.add_tensor(g.unique_name(f"{name}_int8"), I8, g.tensor(name).shape, quant=self.q[name])
            for node, port in g.consumers(name):
                g.set_input(node, port, qname)
            g.add_node("QuantizeLinear", [name, *self._edge_params(name)], [qname],
                       {"rounding": "half_away_from_zero"}, name=f"{name}_quantize")
        for name in list(edges_out):
            if name not in self.q or g.producer(name) is None:
                continue
            qname = g.unique_name(f"{name}_int8")
            shape = g.tensor(name).shape
            g.rename_tensor(name, qname)                  # the producer now writes the int8 tensor
            t = g.tensor(qname)
            t.dtype, t.quant = I8, self.q[name]
            g.outputs = [name if o == qname else o for o in g.outputs]
            g.add_tensor(name, F32, shape)
            g.add_node("DequantizeLinear", [qname, *self._edge_params(name)], [name],
                       name=f"{name}_dequantize")

    def _edge_params(self, name: str) -> list[str]:
        """Scale and zero-point constants of a graph edge's QuantizeLinear/DequantizeLinear."""
        q = self.q[name]
        return [self.g.add_const(np.asarray(q.scale, F32), f"{name}_scale"),
                self.g.add_const(np.asarray(q.zero_point, I8), f"{name}_zp")]


def quantize_graph(graph: Graph, ranges: Ranges, *, io: str = "int8") -> Graph:
    """The int8 version of ``graph`` (which is left unchanged) with activations quantized from
    ``ranges`` (see :func:`calibration.calibrate`). See the module docstring for the scheme."""
    qz = _Quantizer(graph, ranges, io)
    qz.check_kernels()
    qz.assign_activations()
    qz.quantize_constants()
    qz.retype()
    qz.g.remove_dead()
    infer_shapes(qz.g)
    return qz.g
