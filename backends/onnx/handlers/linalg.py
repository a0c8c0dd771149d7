"""IR -> ONNX handlers for the linalg family (see canonical_ir/ops/linalg.py and attention.py).

Also home of ``check_types`` and ``write_checked``, which the reduce and quant handlers share: ONNX ops
accept fewer element types at older opsets (ReduceMax takes bool from 20, DequantizeLinear int16 from
21...), so a node is checked against the target opset's schema and refused with the opset it needs,
instead of producing a file that fails ``onnx.checker``.

MatMul, Gemm, MatMulInteger and Det are written as they are. Einsum is written with its output term
spelled out, which means the same and avoids onnxruntime's trouble with implicit equations using
upper-case labels. Attention exists from opset 23, ``nonpad_kv_seqlen`` from 24 and the window sizes
from 25; where the target opset lacks what a node uses (or Attention altogether), the node is written as
the MatMul/Softmax subgraph it stands for. The number-of-heads attributes are written only for 3-D
inputs (opset 25 rejects them on 4-D ones).
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.attention import attention_bias
from convertkit.canonical_ir.ops.linalg import parse_einsum


# ------------------------------------------------------------------------------ shared helpers
def _onnx_type(dt: np.dtype) -> str:
    return f"tensor({TensorProto.DataType.Name(dtypes.to_onnx(dt)).lower()})"


def _accepts(op: str, opset: int, port: int, type_str: str) -> bool | None:
    """Whether ``op`` at ``opset`` takes ``type_str`` at input ``port`` (None: no such op there)."""
    try:
        schema = onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return None
    if not schema.inputs:
        return True
    formal = schema.inputs[min(port, len(schema.inputs) - 1)]
    constraint = next((c for c in schema.type_constraints if c.type_param_str == formal.type_str), None)
    return formal.type_str == type_str if constraint is None else type_str in constraint.allowed_type_strs


def check_types(ctx: ExportContext, op: str | None = None) -> None:
    """Refuse inputs whose element type ``op`` (default: the node's op) lacks at the target opset."""
    op = op or ctx.node.op
    newest = onnx.defs.onnx_opset_version()
    for port, name in enumerate(ctx.inputs):
        if name is None:
            continue
        dt = ctx.graph.tensor(name).dtype
        ts = _onnx_type(dt)
        if _accepts(op, ctx.opset, port, ts) is not False:
            continue
        need = next((v for v in range(ctx.opset + 1, newest + 1) if _accepts(op, v, port, ts)), None)
        if need is None:
            raise ctx.error(f"ONNX {op} does not take {dt} (input {port})")
        raise ctx.error(f"{op} on {dt} (input {port}) needs opset {need}",
                        hint=f"choose --opset {need} or newer")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def write_checked(ctx: ExportContext) -> None:
    """The node as the same-named ONNX op, after the type check; attributes the target opset lacks
    are dropped when they hold their canonical default and refused otherwise."""
    check_types(ctx)
    if ctx.attrs.get("layout", "NCHW") != "NCHW":
        raise ctx.error(f"layout {ctx.attrs['layout']} has no ONNX form",
                        hint="convert the graph to NCHW first")
    known = onnx.defs.get_schema(ctx.node.op, ctx.opset, "").attributes
    defaults = get_schema(ctx.node.op).attrs
    attrs = {}
    for key, value in ctx.attrs.items():
        if key == "layout" or value is None:
            continue
        if key in known:
            attrs[key] = value
        elif not (key in defaults and _equal(value, defaults[key])):
            raise ctx.error(f"attribute {key}={value!r} has no form at opset {ctx.opset}",
                            hint="choose a newer --opset")
    ctx.make_node(ctx.node.op, [ctx.input(i) for i in range(len(ctx.inputs))], **attrs)


def register_checked(*ops: str) -> None:
    """Write ``ops`` with ``write_checked`` from the opset that introduced each (so at older targets
    the writer still reports them as unsupported, all such ops at once)."""
    for op in ops:
        exporter(op, since=_first_opsets()[op])(write_checked)


@functools.lru_cache(maxsize=1)
def _first_opsets() -> dict[str, int]:
    first: dict[str, int] = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain == "":
            first[s.name] = min(first.get(s.name, 10_000), s.since_version)
    return first


register_checked("MatMul", "Gemm", "Det")


# ------------------------------------------------------------------------------ Einsum, Attention
@exporter("Einsum", since=12)
def einsum(ctx: ExportContext) -> None:
    check_types(ctx)
    terms, out = parse_einsum(ctx.attrs["equation"], len(ctx.inputs))
    equation = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    ctx.make_node("Einsum", [ctx.input(i) for i in range(len(ctx.inputs))], equation=equation)


ATTENTION_ATTRS_SINCE = {"left_window_size": 25, "right_window_size": 25}
"""Attention attributes newer than the op itself (23); nonpad_kv_seqlen is an input from 24."""
ATTENTION_DEFAULTS = {"is_causal": 0, "qk_matmul_output_mode": 0, "softcap": 0.0, "left_window_size": -1,
                      "right_window_size": -1}


@exporter("Attention", since=23)
def attention(ctx: ExportContext) -> None:
    """The ONNX op where the target opset has every feature the node uses, else the decomposition."""
    attrs = {k: v for k, v in ctx.attrs.items() if v is not None and ATTENTION_DEFAULTS.get(k) != v}
    if ctx.graph.tensor(ctx.input(0)).rank == 4:
        attrs.pop("q_num_heads", None)
        attrs.pop("kv_num_heads", None)
    too_new = any(ATTENTION_ATTRS_SINCE.get(k, 23) > ctx.opset for k in attrs) or (
        ctx.has_input(6) and ctx.opset < 24)
    if too_new:
        _AttentionWriter(ctx).write()
        return
    check_types(ctx)
    ctx.make_node("Attention", [ctx.input(i) for i in range(len(ctx.inputs))], **attrs)


@exporter("Attention", until=22)
def attention_decomposed(ctx: ExportContext) -> None:
    """Before opset 23: the same computation from MatMul, Softmax and friends.

    This needs static head counts and head sizes, and static sequence lengths where a causal or window
    mask is built (a constant, or from nonpad_kv_seqlen at run time) or a short mask is padded.
    """
    _AttentionWriter(ctx).write()


class _AttentionWriter:
    """Writes one Attention node as ONNX MatMul/Softmax/... nodes (the canonical kernel, step by step)."""

    HINT = "choose a newer --opset (ONNX has Attention from 23, nonpad_kv_seqlen from 24, windows from 25)"

    def __init__(self, ctx: ExportContext) -> None:
        self.ctx, self.a = ctx, get_schema("Attention").resolve_attrs(ctx.attrs)
        q, k, v = (ctx.graph.tensor(ctx.input(i)) for i in range(3))
        self.dt, self.three_d = q.dtype, q.rank == 3
        if self.three_d:
            self.hq, self.hkv = self.a["q_num_heads"], self.a["kv_num_heads"]
            self.dk, self.dv = self._div(q.shape[2], self.hq), self._div(v.shape[2], self.hkv)
            self.sq, self.skv = q.shape[1], k.shape[1]
        else:
            self.hq, self.hkv, self.dk, self.dv = q.shape[1], k.shape[1], q.shape[3], v.shape[3]
            self.sq, self.skv = q.shape[2], k.shape[2]
        if not all(isinstance(d, int) for d in (self.hq, self.hkv, self.dk, self.dv)):
            raise ctx.error(f"writing Attention as a subgraph at opset {ctx.opset} needs static head counts "
                            "and head sizes", hint=self.HINT)
        self.past = ctx.graph.tensor(ctx.input(4)).shape[2] if ctx.has_input(4) else 0
        known = isinstance(self.skv, int) and isinstance(self.past, int)
        self.total = self.skv + self.past if known else None

    @staticmethod
    def _div(a, b):
        return a // b if isinstance(a, int) and isinstance(b, int) else None

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        return self.ctx.make_node(op, inputs, [out or self.ctx.tmp(op.lower())], **attrs)[0]

    def const(self, value: Any, dtype: Any = None) -> str:
        return self.ctx.const(np.asarray(value, dtype if dtype is not None else self.dt), name="attn")

    def output(self, port: int) -> str | None:
        return self.ctx.outputs[port] if port < len(self.ctx.outputs) else None

    def static(self, *dims: Any) -> None:
        if not all(isinstance(d, int) for d in dims):
            raise self.ctx.error(f"writing Attention as a subgraph at opset {self.ctx.opset} with a causal "
                                 "or window mask, or a mask shorter than the keys, needs static sequence "
                                 "lengths", hint=self.HINT)

    def heads(self, x: str, h: int, d: int) -> str:
        if not self.three_d:
            return x
        return self.node("Transpose", [self.node("Reshape", [x, self.const([0, 0, h, d], np.int64)])],
                         perm=[0, 2, 1, 3])

    def cache(self, port: int, x: str) -> str:
        """Past concatenated with the new keys/values, under the present output's name if it is used."""
        if self.ctx.has_input(port):
            return self.node("Concat", [self.ctx.input(port), x], self.output(port - 3), axis=2)
        if self.output(port - 3):
            self.node("Identity", [x], self.output(port - 3))
        return x

    def repeat_heads(self, x: str, d: int) -> str:
        """Grouped-query attention: each key/value head repeated for its group of query heads."""
        if self.hq == self.hkv:
            return x
        rep = self.hq // self.hkv
        x = self.node("Reshape", [x, self.const([0, self.hkv, 1, -1, d], np.int64)])
        x = self.node("Expand", [x, self.const([1, 1, rep, 1, 1], np.int64)])
        return self.node("Reshape", [x, self.const([0, self.hq, -1, d], np.int64)])

    def bias(self) -> tuple[str | None, np.ndarray | None]:
        """The additive bias as a tensor, and its value when it is a constant (no run-time mask)."""
        a, const_bias, parts = self.a, None, []
        windowed = a["is_causal"] or a["left_window_size"] >= 0 or a["right_window_size"] >= 0
        if self.ctx.has_input(6):
            parts.append(self.padded_kv_bias(windowed))
        elif windowed:
            self.static(self.sq, self.total, self.past)
            const_bias = attention_bias(self.dt, self.sq, self.total, None, self.past, a["is_causal"],
                                        a["left_window_size"], a["right_window_size"], None)
            parts.append(self.const(const_bias))
        if self.ctx.has_input(3):
            mask = self.ctx.input(3)
            if self.ctx.graph.tensor(mask).dtype == np.bool_:
                mask = self.node("Where", [mask, self.const(0), self.const(-np.inf)])
            m_shape = self.ctx.graph.tensor(self.ctx.input(3)).shape
            if m_shape[-1] != self.total:
                self.static(m_shape[-1], self.total)
                pads = [0] * (2 * len(m_shape))
                pads[-1] = self.total - m_shape[-1]
                mask = self.node("Pad", [mask, self.const(pads, np.int64), self.const(-np.inf)])
            parts.append(mask)
        if len(parts) == 2:
            return self.node("Add", parts), None
        return (parts[0] if parts else None), (const_bias if not self.ctx.has_input(3) else None)

    def padded_kv_bias(self, windowed: bool) -> str:
        """With nonpad_kv_seqlen (an external cache): keys past each batch's length are masked, and the
        causal/window frontier sits at offset nonpad_kv_seqlen - q_len, per batch."""
        a = self.a
        self.static(self.sq, self.total)
        col = self.const([-1, 1, 1, 1], np.int64)
        lengths = self.node("Reshape", [self.ctx.input(6), col])  # [B, 1, 1, 1]
        keys = self.const(np.arange(self.total), np.int64)
        allowed = self.node("Less", [keys, lengths])
        if windowed:
            offset = self.node("Sub", [lengths, self.const(self.sq, np.int64)])
            rows = self.const(np.arange(self.sq).reshape(-1, 1), np.int64)
            diff = self.node("Sub", [self.node("Add", [rows, offset]), keys])  # query pos - key pos
            limits = [("Less", 0)] if a["is_causal"] else []  # each: refuse where diff <op> bound
            if a["left_window_size"] >= 0:
                limits.append(("Greater", a["left_window_size"]))
            if a["right_window_size"] >= 0:
                limits.append(("Less", -a["right_window_size"]))
            for op, bound in limits:
                ok = self.node("Not", [self.node(op, [diff, self.const(bound, np.int64)])])
                allowed = self.node("And", [allowed, ok])
        return self.node("Where", [allowed, self.const(0), self.const(-np.inf)])

    def guard_dead_rows(self, probs: str, bias: str | None, const_bias: np.ndarray | None,
                        dt: np.dtype) -> str:
        """Rows whose keys are all masked give zeros (a bare Softmax would give NaN)."""
        if bias is None:
            return probs
        if const_bias is not None:
            dead = np.isneginf(np.max(const_bias, axis=-1, keepdims=True))
            if not dead.any():
                return probs
            dead_t = self.const(dead, np.bool_)
        else:
            axes = {"axes": [-1]} if self.ctx.opset < 18 else {}
            ins = [bias] if self.ctx.opset < 18 else [bias, self.const([-1], np.int64)]
            row_max = self.node("ReduceMax", ins, keepdims=1, **axes)
            dead_t = self.node("Equal", [row_max, self.const(-np.inf)])
        return self.node("Where", [dead_t, self.const(0, dt), probs])

    def write(self) -> None:
        ctx, a = self.ctx, self.a
        q = self.heads(ctx.input(0), self.hq, self.dk)
        k = self.cache(4, self.heads(ctx.input(1), self.hkv, self.dk))
        v = self.cache(5, self.heads(ctx.input(2), self.hkv, self.dv))
        k, v = self.repeat_heads(k, self.dk), self.repeat_heads(v, self.dv)
        s = self.const(np.sqrt(1.0 / np.sqrt(self.dk) if a["scale"] is None else a["scale"]))
        kt = self.node("Transpose", [self.node("Mul", [k, s])], perm=[0, 1, 3, 2])
        raw = self.node("MatMul", [self.node("Mul", [q, s]), kt])
        capped = raw
        if a["softcap"] > 0:
            c = self.const(a["softcap"])
            capped = self.node("Mul", [self.node("Tanh", [self.node("Div", [raw, c])]), c])
        bias, const_bias = self.bias()
        scores = self.node("Add", [capped, bias]) if bias else capped
        pdt = dtypes.from_onnx(a["softmax_precision"]) if a["softmax_precision"] is not None else self.dt
        x = self.node("Cast", [scores], to=dtypes.to_onnx(pdt)) if pdt != self.dt else scores
        probs = self.guard_dead_rows(self.node("Softmax", [x], axis=-1), bias, const_bias, pdt)
        if pdt != self.dt:
            probs = self.node("Cast", [probs], to=dtypes.to_onnx(self.dt))
        if self.output(3):
            qk = {0: raw, 1: capped, 2: scores, 3: probs}[a["qk_matmul_output_mode"]]
            self.node("Identity", [qk], self.output(3))
        if not self.three_d:
            self.node("MatMul", [probs, v], ctx.outputs[0])
            return
        y = self.node("Transpose", [self.node("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        self.node("Reshape", [y, self.const([0, 0, -1], np.int64)], ctx.outputs[0])
