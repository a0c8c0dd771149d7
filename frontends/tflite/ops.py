"""TFLite builtin op -> canonical op converters, and the tensor reader they share.

A quantized TFLite op becomes the same canonical op on integer tensors carrying the TFLite scale and
zero point: the IR's int8 kernels implement TFLite (Micro) integer semantics, so nothing is rewritten.
Fused activations become the ``fused_activation`` attribute, which the integer kernels clamp with.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from convertkit.canonical_ir.graph import Graph, QuantParams
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.errors import ModelFileError
from convertkit.frontends.tflite import schema as S

_FUSED: dict[int, tuple | None] = {0: None, 1: ("Relu",), 2: ("Clip", -1.0, 1.0), 3: ("Clip", 0.0, 6.0)}
_FUSED_KIND = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fc",
               "AVERAGE_POOL_2D": "pool", "MAX_POOL_2D": "pool", "ADD": "fused", "SUB": "fused",
               "MUL": "fused", "DIV": "fused", "CONCATENATION": "concat", "TRANSPOSE_CONV": "transpose_conv"}
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


class Reader:
    """Tensors of one subgraph, added to the IR graph on first use with dtype, shape, quantization
    and (for constants) their buffer's bytes."""

    def __init__(self, data: bytes, model: S.Obj, sg: S.Obj, g: Graph, source: str) -> None:
        self.data, self.model, self.sg, self.g, self.source = data, model, sg, g, source
        self.tensors = sg.tables(S.SUBGRAPH["tensors"])
        self.ops = sg.tables(S.SUBGRAPH["operators"])
        self.codes = model.tables(S.MODEL["operator_codes"])
        self.buffers = model.tables(S.MODEL["buffers"])
        self.names: dict[int, str] = {}
        used: set[str] = set()
        for i, t in enumerate(self.tensors):
            n = t.string(S.TENSOR["name"]) or f"t{i}"
            if n in used:
                n = f"{n}_{i}"
            used.add(n)
            self.names[i] = n

    # ---------------------------------------------------------------- structure
    def op_code(self, op: S.Obj) -> str:
        idx = op.scalar(S.OPERATOR["opcode_index"], S.N.Uint32Flags)
        if idx >= len(self.codes):
            raise S.SchemaError(f"operator code index {idx} out of range")
        c = self.codes[idx]
        code = max(c.scalar(S.OPCODE["deprecated_builtin_code"], S.N.Int8Flags),
                   c.scalar(S.OPCODE["builtin_code"], S.N.Int32Flags))
        if code == 32:
            return "CUSTOM:" + c.string(S.OPCODE["custom_code"])
        return S.op_name(code)

    def ins(self, op: S.Obj) -> list[int]:
        v = op.array(S.OPERATOR["inputs"], np.int32)
        return [] if v is None else [int(i) for i in v]

    def outs(self, op: S.Obj) -> list[int]:
        v = op.array(S.OPERATOR["outputs"], np.int32)
        return [] if v is None else [int(i) for i in v]

    def check_ops(self) -> None:
        n = len(self.tensors)
        for k, op in enumerate(self.ops):
            for i in self.ins(op) + self.outs(op):
                if not -1 <= i < n:
                    raise S.SchemaError(f"operator #{k} refers to tensor {i} of {n}")
        for key in ("inputs", "outputs"):
            v = self.sg.array(S.SUBGRAPH[key], np.int32)
            for i in [] if v is None else v:
                if not 0 <= i < n:
                    raise S.SchemaError(f"subgraph {key} refer to tensor {i} of {n}")

    # ---------------------------------------------------------------- tensors
    def t(self, i: int) -> S.Obj:
        return self.tensors[i]

    def ttype(self, i: int) -> int:
        return self.t(i).scalar(S.TENSOR["type"], S.N.Int8Flags)

    def dtype(self, i: int) -> Any:
        code = self.ttype(i)
        if code not in S.TENSOR_TYPES:
            raise ModelFileError(f"tensor {self.names[i]!r} has type {S.TYPE_NAMES.get(code, code)}, "
                                 "which convertkit does not read", where=self.source)
        return S.TENSOR_TYPES[code]

    def shape(self, i: int) -> tuple[int, ...]:
        s = self.t(i).array(S.TENSOR["shape"], np.int32)
        return () if s is None else tuple(int(d) for d in s)

    def quant(self, i: int) -> QuantParams | None:
        q = self.t(i).table(S.TENSOR["quantization"])
        if q is None or self.ttype(i) in (0, 1, 10):
            return None
        scale = q.array(S.QUANT["scale"], np.float32)
        if scale is None or len(scale) == 0:
            return None
        zp = q.array(S.QUANT["zero_point"], np.int64)
        zp = np.zeros(len(scale), np.int64) if zp is None or len(zp) == 0 else zp.astype(np.int64)
        if len(scale) > 1:
            return QuantParams(scale.copy(), zp.copy(), int(q.scalar(S.QUANT["quantized_dimension"],
                                                                     S.N.Int32Flags)))
        return QuantParams(scale[:1].reshape(()).copy(), zp[:1].reshape(()).copy(), None)

    def value(self, i: int) -> np.ndarray | None:
        """The constant's data, or None for an activation. Buffers beyond 2 GB live after the
        flatbuffer (``offset``/``size``); both forms are range-checked."""
        b = self.t(i).scalar(S.TENSOR["buffer"], S.N.Uint32Flags)
        if b >= len(self.buffers):
            raise S.SchemaError(f"tensor {self.names[i]!r} refers to buffer {b} of {len(self.buffers)}")
        buf = self.buffers[b]
        raw = buf.array(S.BUFFER["data"], np.uint8)
        if raw is None or len(raw) == 0:
            off = buf.scalar(S.BUFFER["offset"], S.N.Uint64Flags)
            size = buf.scalar(S.BUFFER["size"], S.N.Uint64Flags)
            if off <= 1:
                return None
            if off + size > len(self.data):
                raise S.SchemaError(f"buffer {b} (offset {off}, {size} bytes) lies outside the file")
            raw = np.frombuffer(self.data, np.uint8, size, off)
        dt = np.dtype(self.dtype(i)).newbyteorder("<")
        shape = self.shape(i)
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
            raise S.SchemaError(f"buffer {b} holds {len(raw)} bytes, tensor {self.names[i]!r} "
                                f"{list(shape)} needs {int(np.prod(shape)) * dt.itemsize}")
        return np.frombuffer(raw.tobytes(), dt).astype(dt.newbyteorder("=")).reshape(shape)

    def constant(self, i: int) -> np.ndarray:
        """The value of an operand TFLite requires to be constant (axes, permutation, paddings...)."""
        v = self.value(i) if i >= 0 else None
        if v is None:
            raise S.SchemaError(f"operand {self.names.get(i, i)!r} must be a constant tensor")
        return v

    def input(self, i: int) -> str:
        name = self.names[i]
        self.g.add_tensor(name, self.dtype(i), self.shape(i), quant=self.quant(i))
        self.g.inputs.append(name)
        return name

    def tensor(self, i: int, value: np.ndarray | None = None, quant: QuantParams | None = None) -> str:
        name = self.names[i]
        if self.g.has_tensor(name):
            return name
        v = self.value(i) if value is None else value
        q = self.quant(i) if quant is None else quant
        if v is not None:
            self.g.add_tensor(name, value=np.ascontiguousarray(v), quant=q)
        else:
            self.g.add_tensor(name, self.dtype(i), self.shape(i), quant=q)
        return name

    def out(self, op: S.Obj, k: int = 0) -> str:
        i = self.outs(op)[k]
        name = self.names[i]
        if self.g.has_tensor(name):
            raise S.SchemaError(f"tensor {name!r} is written by two operators, or is also an input")
        self.g.add_tensor(name, self.dtype(i), self.shape(i), quant=self.quant(i))
        return name

    def const(self, v: Any, dtype: Any = np.int64) -> str:
        return self.g.add_const(np.asarray(v, dtype), "c")

    def mid(self, like: int, base: str) -> str:
        """A fresh intermediate with the dtype and quantization of tensor ``like``."""
        return self.g.add_tensor(self.g.unique_name(base), self.dtype(like), quant=self.quant(like))

    def opts(self, op: S.Obj, kind: str) -> dict[str, Any]:
        return S.options(op, kind)

    def act(self, op: S.Obj, kind: str) -> dict[str, Any]:
        f = _FUSED[self.opts(op, kind)["fused"]]
        return {} if f is None else {FUSED_ACTIVATION: f}


# ------------------------------------------------------------------------ checks before converting
def hybrid_reason(r: Reader, code: str, op: S.Obj) -> str | None:
    """Why ``op`` is a hybrid kernel (float activations, integer weights), else None."""
    if code not in _WEIGHTED and code != "TRANSPOSE_CONV":
        return None
    ins = r.ins(op)
    if len(ins) < (3 if code == "TRANSPOSE_CONV" else 2) or min(ins[:3]) < 0:
        raise S.SchemaError(f"{code} has too few operands")
    x, w = (ins[2], ins[1]) if code == "TRANSPOSE_CONV" else ins[:2]
    if r.ttype(x) == 0 and r.ttype(w) in (3, 9, 17):
        return "int8 weights, float activations"
    return None


def unsupported_reason(r: Reader, code: str, op: S.Obj) -> str | None:
    """Why a known op cannot be converted as configured, else None."""
    for i in r.ins(op):
        if i >= 0 and r.t(i).table(S.TENSOR["sparsity"]) is not None:
            return "sparse tensor"
    if code in _FUSED_KIND and r.opts(op, _FUSED_KIND[code])["fused"] not in _FUSED:
        return f"fused activation {r.opts(op, _FUSED_KIND[code])['fused']}"
    if code in FLOAT_ONLY and r.ttype(r.ins(op)[0]) != 0:
        return "integer tensors"
    if code == "FULLY_CONNECTED" and r.opts(op, "fc")["weights_format"] != 0:
        return "shuffled weights format"
    if code == "SOFTMAX" and r.opts(op, "softmax")["beta"] != 1.0:
        return "beta != 1"
    if code == "STRIDED_SLICE":
        o = r.opts(op, "strided_slice")
        if o["ellipsis_mask"] or o["new_axis_mask"] or o["offset"]:
            return "ellipsis, new-axis or offset mask"
    if code in ("RESHAPE", "SQUEEZE") and any(d < 0 for d in r.shape(r.outs(op)[0])):
        return "unknown output shape"
    return None


# ------------------------------------------------------------------------------------- converters
def _pad_mode(padding: int) -> str:
    return "SAME_UPPER" if padding == 0 else "VALID"


def _bias(r: Reader, op: S.Obj, k: int = 2) -> list[str]:
    ins = r.ins(op)
    return [r.tensor(ins[k])] if len(ins) > k and ins[k] >= 0 else []


def _spatial(o: dict[str, Any]) -> dict[str, Any]:
    return {"layout": "NHWC", "auto_pad": _pad_mode(o["padding"]), "strides": [o["stride_h"], o["stride_w"]]}


def _conv(r: Reader, op: S.Obj) -> None:
    x, w = r.ins(op)[:2]
    o = r.opts(op, "conv")
    group = r.shape(x)[3] // r.shape(w)[3]
    r.g.add_node("Conv", [r.tensor(x), r.tensor(w)] + _bias(r, op), [r.out(op)],
                 {**_spatial(o), "group": group, "dilations": [o["dilation_h"], o["dilation_w"]],
                  **r.act(op, "conv")})


def _depthwise(r: Reader, op: S.Obj) -> None:
    """TFLite's [1, kh, kw, C*M] weight is the IR's grouped-conv [C*M, kh, kw, 1]; a per-channel
    quantized_dimension of 3 moves with it to 0."""
    x, w = r.ins(op)[:2]
    o = r.opts(op, "depthwise")
    perm = (3, 1, 2, 0)
    q = r.quant(w)
    if q is not None and q.axis is not None:
        if q.axis not in perm or len(r.shape(w)) != 4:
            raise S.SchemaError(f"depthwise weight {r.names[w]!r} is not 4-D with a valid quantized dimension")
        q = QuantParams(q.scale, q.zero_point, perm.index(q.axis))
    wv = r.value(w)
    wname = (r.tensor(w, np.ascontiguousarray(np.transpose(wv, perm)), q) if wv is not None
             else _transposed(r, w, perm))
    r.g.add_node("Conv", [r.tensor(x), wname] + _bias(r, op), [r.out(op)],
                 {**_spatial(o), "group": r.shape(x)[3], "dilations": [o["dilation_h"], o["dilation_w"]],
                  **r.act(op, "depthwise")})


def _transposed(r: Reader, i: int, perm: tuple[int, ...]) -> str:
    out = r.mid(i, r.names[i] + "_t")
    r.g.add_node("Transpose", [r.tensor(i)], [out], {"perm": list(perm)})
    return out


def _fully_connected(r: Reader, op: S.Obj) -> None:
    """Gemm is 2-D: inputs of another rank are flattened to [-1, K] and the result reshaped back."""
    x, w = r.ins(op)[:2]
    y = r.outs(op)[0]
    k = r.shape(w)[1]
    xin = r.tensor(x)
    if len(r.shape(x)) != 2:
        flat = r.mid(x, r.names[x] + "_2d")
        r.g.add_node("Reshape", [xin, r.const([-1, k])], [flat])
        xin = flat
    inputs = [xin, r.tensor(w)] + _bias(r, op)
    out = r.out(op)
    attrs = {"transB": 1, **r.act(op, "fc")}
    if len(r.shape(y)) != 2:
        mid = r.mid(y, out + "_2d")
        r.g.add_node("Gemm", inputs, [mid], attrs)
        r.g.add_node("Reshape", [mid, r.const(r.shape(y))], [out])
    else:
        r.g.add_node("Gemm", inputs, [out], attrs)


def _transpose_conv(r: Reader, op: S.Obj) -> None:
    shape_i, w, x = r.ins(op)[:3]
    o = r.opts(op, "transpose_conv")
    shape = r.value(shape_i)
    out_hw = list(r.shape(r.outs(op)[0])[1:3]) if shape is None else [int(v) for v in shape.reshape(-1)[1:3]]
    r.g.add_node("ConvTranspose", [r.tensor(x), r.tensor(w)] + _bias(r, op, 3), [r.out(op)],
                 {**_spatial(o), "output_shape": out_hw, **r.act(op, "transpose_conv")})


def _binary(kind: str, fused: bool = True) -> Callable[[Reader, S.Obj], None]:
    def run(r: Reader, op: S.Obj) -> None:
        r.g.add_node(kind, [r.tensor(i) for i in r.ins(op)], [r.out(op)], r.act(op, "fused") if fused else {})
    return run


def _unary(kind: str, attrs: Callable[[Reader, S.Obj], dict] = lambda r, op: {}) -> Callable:
    def run(r: Reader, op: S.Obj) -> None:
        r.g.add_node(kind, [r.tensor(r.ins(op)[0])], [r.out(op)], attrs(r, op))
    return run


def _clip(lo: float, hi: float) -> Callable[[Reader, S.Obj], None]:
    def run(r: Reader, op: S.Obj) -> None:
        r.g.add_node("Clip", [r.tensor(r.ins(op)[0]), r.const(lo, np.float32), r.const(hi, np.float32)],
                     [r.out(op)])
    return run


def _pool(kind: str) -> Callable[[Reader, S.Obj], None]:
    def run(r: Reader, op: S.Obj) -> None:
        o = r.opts(op, "pool")
        r.g.add_node(kind, [r.tensor(r.ins(op)[0])], [r.out(op)],
                     {**_spatial(o), "kernel_shape": [o["filter_h"], o["filter_w"]], **r.act(op, "pool")})
    return run


def _reduce(kind: str) -> Callable[[Reader, S.Obj], None]:
    def run(r: Reader, op: S.Obj) -> None:
        x, a = r.ins(op)[:2]
        axes = r.constant(a).reshape(-1).astype(np.int64)
        r.g.add_node(kind, [r.tensor(x), r.const(axes)], [r.out(op)],
                     {"keepdims": int(r.opts(op, "reducer")["keep_dims"])})
    return run


def _reshape(r: Reader, op: S.Obj) -> None:
    """RESHAPE and SQUEEZE: the output tensor's static shape is authoritative."""
    r.g.add_node("Reshape", [r.tensor(r.ins(op)[0]), r.const(r.shape(r.outs(op)[0]))], [r.out(op)])


def _concat(r: Reader, op: S.Obj) -> None:
    o = r.opts(op, "concat")
    r.g.add_node("Concat", [r.tensor(i) for i in r.ins(op)], [r.out(op)],
                 {"axis": int(o["axis"]), **r.act(op, "concat")})


def _pad(r: Reader, op: S.Obj) -> None:
    ins = r.ins(op)
    p = r.constant(ins[1]).astype(np.int64)
    inputs = [r.tensor(ins[0]), r.const(np.concatenate([p[:, 0], p[:, 1]]))]
    if len(ins) > 2 and ins[2] >= 0:
        inputs.append(r.tensor(ins[2]))
    r.g.add_node("Pad", inputs, [r.out(op)])


def _transpose(r: Reader, op: S.Obj) -> None:
    x, p = r.ins(op)[:2]
    r.g.add_node("Transpose", [r.tensor(x)], [r.out(op)], {"perm": [int(v) for v in r.constant(p).reshape(-1)]})


def _strided_slice(r: Reader, op: S.Obj) -> None:
    """Masks become explicit bounds; shrunk axes are dropped by a Reshape to the output shape."""
    x, *bes = r.ins(op)[:4]
    o = r.opts(op, "strided_slice")
    begin, end, steps = (r.constant(i).reshape(-1).astype(np.int64) for i in bes)
    big = np.iinfo(np.int64).max
    b_out, e_out = [], []
    for a, (b, e, st) in enumerate(zip(begin, end, steps)):
        if (o["shrink_axis_mask"] >> a) & 1:
            b_out.append(int(b))
            e_out.append(int(b) + 1 if b != -1 else big)
            continue
        b_out.append((0 if st > 0 else big) if (o["begin_mask"] >> a) & 1 else int(b))
        e_out.append((big if st > 0 else -big) if (o["end_mask"] >> a) & 1 else int(e))
    begin, end = b_out, e_out
    inputs = [r.tensor(x), r.const(begin), r.const(end), r.const(range(len(begin))), r.const(steps)]
    if o["shrink_axis_mask"]:
        y = r.outs(op)[0]
        mid = r.mid(y, r.names[y] + "_slice")
        r.g.add_node("Slice", inputs, [mid])
        r.g.add_node("Reshape", [mid, r.const(r.shape(y))], [r.out(op)])
    else:
        r.g.add_node("Slice", inputs, [r.out(op)])


def _resize(mode: str) -> Callable[[Reader, S.Obj], None]:
    def run(r: Reader, op: S.Obj) -> None:
        x, s = r.ins(op)[:2]
        n, _, _, c = r.shape(x)
        h, w = (int(v) for v in r.constant(s).reshape(-1))
        o = r.opts(op, "resize_bilinear" if mode == "linear" else "resize_nearest")
        if mode == "linear":
            coord = "align_corners" if o["align_corners"] else "half_pixel" if o["half_pixel"] else "asymmetric"
            extra: dict[str, Any] = {}
        else:
            coord = ("align_corners" if o["align_corners"] else "tf_half_pixel_for_nn" if o["half_pixel"]
                     else "asymmetric")
            extra = {"nearest_mode": "round_prefer_ceil" if o["align_corners"] else "floor"}
        r.g.add_node("Resize", [r.tensor(x), None, None, r.const([n, h, w, c])], [r.out(op)],
                     {"mode": mode, "coordinate_transformation_mode": coord, **extra})
    return run


def _quantize(r: Reader, op: S.Obj) -> None:
    """Float -> int rounds half away from zero (TFLite's QUANTIZE); int -> int requantizes."""
    x, y = r.ins(op)[0], r.outs(op)[0]
    q = r.quant(y)
    if q is None:
        raise S.SchemaError(f"QUANTIZE output {r.names[y]!r} has no quantization parameters")
    attrs = {"rounding": "half_away_from_zero"} if r.ttype(x) == 0 else {}
    r.g.add_node("QuantizeLinear", [r.tensor(x), r.const(q.scale, np.float32), r.const(q.zero_point, r.dtype(y))],
                 [r.out(op)], attrs)


def _dequantize(r: Reader, op: S.Obj) -> None:
    """A DEQUANTIZE of a constant (float16 or int8 weights kept compressed) is folded into a float32
    constant: the runtime computes the same values once at load time."""
    x, y = r.ins(op)[0], r.outs(op)[0]
    v = r.value(x)
    if v is not None:
        q = r.quant(x)
        if q is None:
            f = v.astype(np.float32)
        else:
            shape = [1] * v.ndim
            if q.axis is not None:
                shape[q.axis] = -1
            f = ((v.astype(np.float64) - q.zero_point.reshape(shape)) * q.scale.reshape(shape)).astype(np.float32)
        r.g.add_tensor(r.names[y], value=f)
        return
    q = r.quant(x)
    if q is None:
        raise S.SchemaError(f"DEQUANTIZE input {r.names[x]!r} has no quantization parameters")
    r.g.add_node("DequantizeLinear", [r.tensor(x), r.const(q.scale, np.float32), r.const(q.zero_point, r.dtype(x))],
                 [r.out(op)])


def _rsqrt(r: Reader, op: S.Obj) -> None:
    x, y = r.ins(op)[0], r.outs(op)[0]
    root = r.mid(y, r.names[y] + "_sqrt")
    r.g.add_node("Sqrt", [r.tensor(x)], [root])
    r.g.add_node("Reciprocal", [root], [r.out(op)])


def _squared_difference(r: Reader, op: S.Obj) -> None:
    a, b = r.ins(op)[:2]
    y = r.outs(op)[0]
    d = r.mid(y, r.names[y] + "_diff")
    r.g.add_node("Sub", [r.tensor(a), r.tensor(b)], [d])
    r.g.add_node("Mul", [d, d], [r.out(op)])


FLOAT_ONLY = frozenset({"NEG", "RSQRT", "SQRT", "SQUARED_DIFFERENCE", "LOG_SOFTMAX", "EXP", "LOG", "ABS",
                        "DIV", "MAXIMUM", "MINIMUM", "FLOOR", "SUM"})
"""Ops converted for float tensors only: their TFLite integer kernels (LUTs, rescaling) are not
modelled by the IR's integer kernels, so an int8 instance is refused rather than approximated."""

CONVERTERS: dict[str, Callable[[Reader, S.Obj], None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "TRANSPOSE_CONV": _transpose_conv,
    "ADD": _binary("Add"), "SUB": _binary("Sub"), "MUL": _binary("Mul"), "PRELU": _binary("PRelu", False),
    "AVERAGE_POOL_2D": _pool("AveragePool"), "MAX_POOL_2D": _pool("MaxPool"),
    "MEAN": _reduce("ReduceMean"), "REDUCE_MAX": _reduce("ReduceMax"),
    "SOFTMAX": _unary("Softmax", lambda r, op: {"axis": -1}), "LOGISTIC": _unary("Sigmoid"),
    "TANH": _unary("Tanh"), "HARD_SWISH": _unary("HardSwish"), "RELU": _unary("Relu"),
    "RELU6": _clip(0.0, 6.0), "RELU_N1_TO_1": _clip(-1.0, 1.0),
    "LEAKY_RELU": _unary("LeakyRelu", lambda r, op: {"alpha": float(r.opts(op, "leaky_relu")["alpha"])}),
    "RESHAPE": _reshape, "SQUEEZE": _reshape, "CONCATENATION": _concat, "PAD": _pad, "PADV2": _pad,
    "TRANSPOSE": _transpose, "STRIDED_SLICE": _strided_slice,
    "RESIZE_BILINEAR": _resize("linear"), "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"),
    "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize,
    "NEG": _unary("Neg"), "SQRT": _unary("Sqrt"), "RSQRT": _rsqrt, "EXP": _unary("Exp"),
    "LOG": _unary("Log"), "ABS": _unary("Abs"), "FLOOR": _unary("Floor"), "ELU": _unary("Elu"),
    "GELU": _unary("Gelu", lambda r, op: {"approximate": "tanh" if r.opts(op, "gelu")["approximate"]
                                          else "none"}),
    "LOG_SOFTMAX": _unary("LogSoftmax", lambda r, op: {"axis": -1}), "DIV": _binary("Div"),
    "MAXIMUM": _binary("Max", False), "MINIMUM": _binary("Min", False),
    "SQUARED_DIFFERENCE": _squared_difference, "SUM": _reduce("ReduceSum"),
}
"""TFLite builtin name -> converter adding the canonical node(s) for one operator."""
