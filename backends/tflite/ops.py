"""Canonical op -> TFLite builtin operator(s): one builder per op, registered with its constraint.

Each builder writes the operator(s) that compute exactly what the canonical node means (float, or
int8 with TFLite's integer semantics, which the IR's integer kernels follow), with its options and
the lowest builtin version that supports the features used (rules of TFLite's
``tools/versioning/op_version.cc``). The matching ``CHECKS`` entry says why a node cannot be written
(legalization then rewrites or refuses it); a builder never approximates.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from convertkit.backends.tflite.model import Model
from convertkit.canonical_ir.graph import Graph, Node, QuantParams
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import Window, conv_t_geometry
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION

I8, I16, I32, I64, F32 = (np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.float32))
BIG = 2 ** 31 - 1

Check = Callable[[Graph, Node], "str | None"]
BUILDERS: dict[str, Callable[[Ctx, Node], None]] = {}
CHECKS: dict[str, Check] = {}


def builder(*ops: str, check: Check | None = None) -> Callable:
    def deco(fn: Callable) -> Callable:
        for op in ops:
            BUILDERS[op] = fn
            if check is not None:
                CHECKS[op] = check
        return fn
    return deco


class Ctx:
    """The graph being written and the TFLite model it becomes; IR tensors become TFLite tensors on
    first use."""

    def __init__(self, graph: Graph, model: Model) -> None:
        self.g, self.m = graph, model
        self.views: dict[str, int] = {}
        """rank-3 NWC tensor -> the 4-D (height 1) tensor it was reshaped from, to skip a RESHAPE pair."""
        self.after: list[tuple] = []
        """Operators to write after the current node's (requantizing QUANTIZEs, see :meth:`moved`)."""

    def t(self, name: str) -> int:
        if name in self.m.by_name:
            return self.m.by_name[name]
        t = self.g.tensor(name)
        idx = self.m.add_tensor(name, t.dtype, t.shape, t.quant, t.value)
        self.m.by_name[name] = idx
        return idx

    def ins(self, node: Node) -> list[str | None]:
        return self.g.inputs_of(node)

    def out(self, node: Node, k: int = 0) -> int:
        return self.t(self.g.outputs_of(node)[k])

    def moved(self, node: Node, k: int = 0) -> int:
        """The tensor a value-moving op writes output ``k`` to: the output itself, or, when the output is
        quantized differently from the input (TFLite's movement kernels require them equal), a tensor
        with the input's parameters that a QUANTIZE (int8 -> int8) then requantizes into the output,
        which is the IR's meaning of such a node."""
        x, y = self.g.inputs_of(node)[0], self.g.outputs_of(node)[k]
        qx, qy = self.g.tensor(x).quant, self.g.tensor(y).quant
        if not _is_q(self.g, x) or _same_q(qx, qy):
            return self.t(y)
        mid = self.m.add_tensor(f"{y}_moved", self.g.tensor(y).dtype, self.g.tensor(y).shape, qx)
        self.after.append(("QUANTIZE", [mid], [self.t(y)], ("QuantizeOptions", {}), 1))
        return mid

    def flush(self) -> None:
        for op in self.after:
            self.m.op(*op)
        self.after.clear()

    def mid(self, like: str, shape: tuple, name: str) -> int:
        """A new activation tensor with ``like``'s dtype and quantization."""
        t = self.g.tensor(like)
        return self.m.add_tensor(name, t.dtype, shape, t.quant)

    def const(self, value: Any, dtype: Any = np.int32, name: str = "const", quant: QuantParams | None = None) -> int:
        return self.m.const(value, dtype, name, quant)

    def attrs(self, node: Node) -> dict[str, Any]:
        return get_schema(node.op).resolve_attrs(node.attrs, node.name)


# ------------------------------------------------------------------------------------ helpers
def _dt(g: Graph, name: str | None) -> np.dtype | None:
    return None if name is None else g.tensor(name).dtype


def _shape(g: Graph, name: str) -> tuple:
    return tuple(g.tensor(name).shape)


def _const(g: Graph, name: str | None) -> np.ndarray | None:
    return g.const_value(name)


def _is_q(g: Graph, name: str | None) -> bool:
    t = None if name is None else g.tensor(name)
    return t is not None and t.quant is not None and t.dtype.kind in "iu"


def _fused(node: Node) -> int:
    act = node.attrs.get(FUSED_ACTIVATION)
    if act is None:
        return 0
    op, *p = act
    if op == "Relu":
        return 1
    lo, hi = (list(p) + [None, None])[:2]
    return {(0.0, None): 1, (-1.0, 1.0): 2, (0.0, 6.0): 3}[(lo, hi)]


def _rank(g: Graph, name: str) -> int:
    return len(g.tensor(name).shape)


def _static(shape: tuple) -> bool:
    return all(isinstance(d, int) for d in shape)


def _sig_shape(shape: tuple) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def _same_q(a: QuantParams | None, b: QuantParams | None) -> bool:
    if a is None or b is None:
        return a is b
    return (np.array_equal(np.asarray(a.scale).reshape(-1), np.asarray(b.scale).reshape(-1))
            and np.array_equal(np.asarray(a.zero_point).reshape(-1), np.asarray(b.zero_point).reshape(-1)))


def float_only(g: Graph, node: Node) -> str | None:
    if any(_dt(g, n) is not None and _dt(g, n).kind != "f" for n in g.inputs_of(node)[:1] + g.outputs_of(node)):
        return "integer tensors (TFLite's integer kernel for it is not modelled by the IR)"
    return None


def _padding(g: Graph, node: Node, spatial: tuple, kernel: list[int], ceil: bool = False,
             attrs: dict[str, Any] | None = None) -> int | None:
    """TFLite padding (0 SAME, 1 VALID) equal to the node's geometry, or None."""
    a = attrs if attrs is not None else get_schema(node.op).resolve_attrs(node.attrs, node.name)
    if not _static(spatial):
        return {"SAME_UPPER": 0, "VALID": 1}.get(a.get("auto_pad"))
    try:
        w = Window(spatial, kernel, a, ceil)
        same = Window(spatial, kernel, {**a, "auto_pad": "SAME_UPPER", "pads": None})
        valid = Window(spatial, kernel, {**a, "auto_pad": "VALID", "pads": None})
    except ValueError:
        return None
    if w.pads_begin == same.pads_begin and w.out == same.out:
        return 0
    if w.pads_begin == valid.pads_begin and w.out == valid.out:
        return 1
    return None


def as_2d(g: Graph, node: Node, kernel: list[int]) -> tuple[dict[str, Any], tuple, list[int]]:
    """(attrs, spatial, kernel) of a 2-D NHWC or 1-D NWC window op, seen as 2-D (1-D: height 1)."""
    a = dict(get_schema(node.op).resolve_attrs(node.attrs, node.name))
    shape = _shape(g, g.inputs_of(node)[0])
    if len(shape) == 4:
        return a, shape[1:3], kernel
    pads = a.get("pads")
    a.update(strides=[1, *(a.get("strides") or [1])], dilations=[1, *(a.get("dilations") or [1])],
             pads=None if not pads else [0, pads[0], 0, pads[1]])
    if a.get("kernel_shape"):
        a["kernel_shape"] = [1, *a["kernel_shape"]]
    return a, (1, shape[1]), [1, *kernel]


def to_4d(ctx: Ctx, name: str, node: Node) -> int:
    """A rank-3 NWC tensor reshaped to NHWC with height 1."""
    if name in ctx.views:
        return ctx.views[name]
    n, w, c = _shape(ctx.g, name)
    x4 = ctx.mid(name, (n, 1, w, c), f"{name}_4d")
    ctx.m.op("RESHAPE", [ctx.t(name), ctx.const(_sig_shape((n, 1, w, c)), I32, f"{node.name}_to4d")], [x4], None, 1)
    return x4


def from_4d(ctx: Ctx, node: Node) -> tuple[int, Callable[[], None]]:
    """(the 4-D tensor an op on a rank-3 output writes, the call adding the RESHAPE back)."""
    y = ctx.g.outputs_of(node)[0]
    n, w, c = _shape(ctx.g, y)
    y4 = ctx.mid(y, (n, 1, w, c), f"{y}_4d")
    ctx.views[y] = y4

    def back() -> None:
        ctx.m.op("RESHAPE", [y4, ctx.const(_sig_shape((n, w, c)), I32, f"{node.name}_to3d")], [ctx.out(node)],
                 None, 1)
    return y4, back


def _zero_bias(ctx: Ctx, x: str, w_quant: QuantParams | None, n: int, name: str) -> int:
    if not _is_q(ctx.g, x):
        return ctx.const(np.zeros(n), F32, f"{name}_bias")
    sx = np.float32(ctx.g.tensor(x).quant.scale.reshape(-1)[0])
    sw = np.broadcast_to(np.asarray(w_quant.scale, np.float32).reshape(-1), (n,))
    return ctx.const(np.zeros(n), I32, f"{name}_bias", QuantParams((sx * sw).astype(np.float32), np.zeros(n, I64), 0))


def _requant_axis(q: QuantParams | None, axis: int) -> QuantParams | None:
    if q is None or q.axis is None:
        return q
    return QuantParams(q.scale, q.zero_point, axis)


# ------------------------------------------------------------------------------------ conv
def _conv_check(g: Graph, node: Node) -> str | None:
    x, w, *rest = g.inputs_of(node)
    a = get_schema(node.op).resolve_attrs(node.attrs, node.name)
    if _rank(g, x) not in (3, 4) or (node.op == "ConvTranspose" and _rank(g, x) != 4):
        return f"rank-{_rank(g, x)} input (TFLite convolutions are 2-D, NHWC; 1-D NWC is expanded)"
    wv = _const(g, w)
    if wv is None or (rest and rest[0] is not None and _const(g, rest[0]) is None):
        return "weights or bias computed at run time"
    if _is_q(g, x) and (not _is_q(g, w) or np.any(np.asarray(g.tensor(w).quant.zero_point) != 0)):
        return "int8 weights must be symmetric (zero point 0)"
    if rest and rest[0] is not None and _is_q(g, x) and _dt(g, rest[0]) != I32:
        return "int8 convolution with a non-int32 bias"
    c_in = _shape(g, x)[-1]
    if node.op == "Conv":
        group = int(a["group"])
        if group != 1 and not (group == c_in and wv.shape[-1] == 1):
            return f"grouped convolution (group {group}) that is not depthwise"
        a2, spatial, kernel = as_2d(g, node, list(wv.shape[1:-1]))
        if _padding(g, node, spatial, kernel, attrs=a2) is None and not _static(spatial):
            return f"padding {a.get('pads')} is neither SAME nor VALID"
        return None
    if int(a["group"]) != 1 or any(d != 1 for d in (a["dilations"] or [1, 1])):
        return "grouped or dilated transposed convolution"
    if _conv_t_padding(g, node) is None:
        return "output geometry is neither TFLite's SAME nor VALID"
    return None


@builder("Conv", check=_conv_check)
def _conv(ctx: Ctx, node: Node) -> None:
    """CONV_2D, or DEPTHWISE_CONV_2D (weight [C*M, kh, kw, 1] -> [1, kh, kw, C*M], its per-channel
    dimension 0 -> 3); a 1-D NWC convolution is written between RESHAPEs to and from height 1."""
    g = ctx.g
    x, w, *rest = ctx.ins(node)
    b = rest[0] if rest else None
    wv = _const(g, w)
    a, spatial, kernel = as_2d(g, node, list(wv.shape[1:-1]))
    o = wv.shape[0]
    strides, dil = a["strides"] or [1, 1], a["dilations"] or [1, 1]
    pad = _padding(g, node, spatial, kernel, attrs=a)
    wq = g.tensor(w).quant
    bias = ctx.t(b) if b is not None else _zero_bias(ctx, x, wq, o, node.name)
    quant = _is_q(g, x)
    one_d = _rank(g, x) == 3
    xin = to_4d(ctx, x, node) if one_d else ctx.t(x)
    if pad is None:  # explicit padding (a folded Pad, causal padding): PAD, then a VALID convolution
        xin, pad = _explicit_pad(ctx, node, x, xin, a, spatial, kernel), 1
    if one_d:
        wv = wv[:, None]
        y, back = from_4d(ctx, node)
    else:
        y, back = ctx.out(node), (lambda: None)
    if int(a["group"]) == 1:
        weight = ctx.const(wv, wv.dtype, f"{w}_4d", wq) if one_d else ctx.t(w)
        ctx.m.op("CONV_2D", [xin, weight, bias], [y],
                 ("Conv2DOptions", {"padding": pad, "stride_w": strides[1], "stride_h": strides[0],
                                    "fused": _fused(node), "dilation_w": dil[1], "dilation_h": dil[0]}),
                 3 if quant else 1)
    else:
        c_in = _shape(g, x)[-1]
        dw = ctx.const(np.ascontiguousarray(np.transpose(wv, (3, 1, 2, 0))), wv.dtype, f"{w}_depthwise",
                       _requant_axis(wq, 3))
        version = 3 if quant else 2 if any(d != 1 for d in dil) else 1
        ctx.m.op("DEPTHWISE_CONV_2D", [xin, dw, bias], [y],
                 ("DepthwiseConv2DOptions", {"padding": pad, "stride_w": strides[1], "stride_h": strides[0],
                                             "depth_multiplier": o // c_in, "fused": _fused(node),
                                             "dilation_w": dil[1], "dilation_h": dil[0]}), version)
    back()


def _explicit_pad(ctx: Ctx, node: Node, x: str, xin: int, a: dict[str, Any], spatial: tuple,
                  kernel: list[int]) -> int:
    w = Window(spatial, kernel, a)
    ends = [max(0, (o - 1) * s + (k - 1) * d + 1 - pb - n) for n, k, s, d, pb, o in
            zip(w.spatial, w.kernel, w.strides, w.dilations, w.pads_begin, w.out)]
    n, _, _, c = (_shape(ctx.g, x)[0], *spatial, _shape(ctx.g, x)[-1])
    shape = (n, spatial[0] + w.pads_begin[0] + ends[0], spatial[1] + w.pads_begin[1] + ends[1], c)
    padded = ctx.mid(x, shape, f"{x}_padded")
    pads = [[0, 0], [w.pads_begin[0], ends[0]], [w.pads_begin[1], ends[1]], [0, 0]]
    ctx.m.op("PAD", [xin, ctx.const(pads, I32, f"{node.name}_pads")], [padded], ("PadOptions", {}),
             2 if _dt(ctx.g, x) == I8 else 1)
    return padded


def _conv_t_padding(g: Graph, node: Node) -> tuple[int, list[int]] | None:
    """(TFLite padding, output size) of a ConvTranspose: TFLite derives the padding from the output
    size as SAME does (total = (in - 1) * s + k - out, the smaller half first; VALID is total 0)."""
    x, w = g.inputs_of(node)[:2]
    a = get_schema(node.op).resolve_attrs(node.attrs, node.name)
    spatial = _shape(g, x)[1:3]
    kernel = list(_const(g, w).shape[1:3])
    if not _static(spatial):
        return None
    pb, pe, out = conv_t_geometry(spatial, kernel, a)
    strides = a["strides"] or [1, 1]
    for i in range(2):
        total = strides[i] * (spatial[i] - 1) + kernel[i] - out[i]
        if total < 0 or pb[i] != total // 2 or pe[i] != total - pb[i]:
            return None
    return 0, out


@builder("ConvTranspose", check=_conv_check)
def _conv_transpose(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    x, w, *rest = ctx.ins(node)
    b = rest[0] if rest else None
    a = ctx.attrs(node)
    strides = a["strides"] or [1, 1]
    pad, out_hw = _conv_t_padding(g, node)
    y = g.outputs_of(node)[0]
    n = _shape(g, y)[0]
    shape = ctx.const([n if isinstance(n, int) else 1, *out_hw, _shape(g, y)[3]], I32, f"{node.name}_shape")
    if not isinstance(n, int):  # a symbolic batch: output_shape = [shape(x)[0], h, w, c] at run time
        full = ctx.m.add_tensor(f"{node.name}_xshape", I32, (4,))
        ctx.m.op("SHAPE", [ctx.t(x)], [full], ("ShapeOptions", {"out_type": 2}), 1)
        batch = ctx.m.add_tensor(f"{node.name}_batch", I32, (1,))
        ctx.m.op("STRIDED_SLICE", [full, ctx.const([0], I32), ctx.const([1], I32), ctx.const([1], I32)], [batch],
                 ("StridedSliceOptions", {"begin_mask": 0, "end_mask": 0, "ellipsis_mask": 0, "new_axis_mask": 0,
                                          "shrink_axis_mask": 0}), 1)
        shape = ctx.m.add_tensor(f"{node.name}_shape", I32, (4,))
        ctx.m.op("CONCATENATION", [batch, ctx.const([*out_hw, _shape(g, y)[3]], I32)], [shape],
                 ("ConcatenationOptions", {"axis": 0, "fused": 0}), 1)
    ins = [shape, ctx.t(w), ctx.t(x)] + ([ctx.t(b)] if b is not None else [])
    fused = _fused(node)
    version = 4 if fused else 3 if b is not None else 2 if _dt(g, w) == I8 else 1
    ctx.m.op("TRANSPOSE_CONV", ins, [ctx.out(node)],
             ("TransposeConvOptions", {"padding": pad, "stride_w": strides[1], "stride_h": strides[0],
                                       "fused": fused}), version)


# ------------------------------------------------------------------------------- fully connected
def _fc_check(g: Graph, node: Node) -> str | None:
    ins = g.inputs_of(node)
    a, w = ins[0], ins[1]
    wv = _const(g, w)
    if node.op == "MatMul":
        if wv is None:
            return None if not _is_q(g, a) else "int8 MatMul of two run-time tensors"
        if wv.ndim != 2:
            return f"rank-{wv.ndim} constant B"
        if _rank(g, a) < 2:
            return "rank-1 A"
    else:
        at = get_schema("Gemm").resolve_attrs(node.attrs, node.name)
        if wv is None or at["transA"]:
            return "Gemm with transA or a run-time B"
        c = ins[2] if len(ins) > 2 else None
        n = wv.shape[0] if at["transB"] else wv.shape[1]
        if c is not None:
            cv = _const(g, c)
            if cv is None or cv.size not in (1, n) or (cv.ndim == 2 and cv.shape[0] != 1) or cv.ndim > 2:
                return "bias C is not a constant vector over the output columns"
        if _is_q(g, a) and (at["alpha"] != 1.0 or at["beta"] != 1.0):
            return "int8 Gemm with alpha/beta != 1"
    if _is_q(g, a) and np.any(np.asarray(g.tensor(w).quant.zero_point) != 0):
        return "int8 weights must be symmetric (zero point 0)"
    return None


@builder("Gemm", "MatMul", check=_fc_check)
def _fully_connected(ctx: Ctx, node: Node) -> None:
    g = ctx.g
    ins = ctx.ins(node)
    a, w = ins[0], ins[1]
    wv = _const(g, w)
    y = g.outputs_of(node)[0]
    if wv is None:
        adj = {"adj_x": False, "adj_y": False}
        ctx.m.op("BATCH_MATMUL", [ctx.t(a), ctx.t(w)], [ctx.out(node)], ("BatchMatMulOptions", adj), 1)
        return
    wq = g.tensor(w).quant
    bias = None
    if node.op == "Gemm":
        at = ctx.attrs(node)
        if at["transB"]:
            weight = ctx.t(w)
        else:
            weight = ctx.const(np.ascontiguousarray(wv.T), wv.dtype, f"{w}_t", _requant_axis(wq, 0))
        c = ins[2] if len(ins) > 2 else None
        n = wv.shape[0] if at["transB"] else wv.shape[1]
        if at["alpha"] != 1.0 and wv.dtype.kind == "f":
            base = wv if at["transB"] else wv.T
            weight = ctx.const((base * np.float32(at["alpha"])).astype(wv.dtype), wv.dtype, f"{w}_alpha")
        if c is not None:
            cv = np.broadcast_to(_const(g, c).reshape(-1), (n,))
            if cv.dtype.kind == "f":
                cv = cv * np.float32(at["beta"]) if at["beta"] != 1.0 else cv
                bias = ctx.const(np.ascontiguousarray(cv), cv.dtype, f"{c}_bias")
            elif _const(g, c).size == n:
                bias = ctx.t(c)
            else:
                bias = ctx.const(np.ascontiguousarray(cv), cv.dtype, f"{c}_bias", g.tensor(c).quant)
    else:
        n = wv.shape[1]
        weight = ctx.const(np.ascontiguousarray(wv.T), wv.dtype, f"{w}_t", _requant_axis(wq, 0))
    if bias is None:
        bias = _zero_bias(ctx, a, wq, n, node.name)
    x = ctx.t(a)
    shape_a, shape_y = _shape(g, a), _shape(g, y)
    if len(shape_a) != 2:
        flat = ctx.mid(a, (_flat_rows(shape_a), shape_a[-1]), f"{a}_2d")
        ctx.m.op("RESHAPE", [x, ctx.const([-1, shape_a[-1]], I32, f"{node.name}_rows")], [flat], None, 1)
        x = flat
    out = ctx.out(node) if len(shape_y) == 2 else ctx.mid(y, (_flat_rows(shape_y), n), f"{y}_2d")
    ctx.m.op("FULLY_CONNECTED", [x, weight, bias], [out],
             ("FullyConnectedOptions", {"fused": _fused(node), "weights_format": 0, "keep_num_dims": False}),
             4 if _is_q(g, a) else 1)
    if len(shape_y) != 2:
        ctx.m.op("RESHAPE", [out, ctx.const(_sig_shape(shape_y), I32, f"{node.name}_shape")], [ctx.out(node)],
                 None, 1)


def _flat_rows(shape: tuple) -> Any:
    rows = shape[:-1]
    return int(np.prod(rows)) if _static(rows) else next(d for d in rows if not isinstance(d, int))
