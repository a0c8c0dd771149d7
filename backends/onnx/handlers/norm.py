"""IR -> ONNX handlers for the norm family (see canonical_ir/ops/norm.py).

ONNX has no layout attribute: channels-last BatchNormalization becomes Mul and Add by per-channel
vectors (which broadcast along the last axis as they are), channels-last InstanceNormalization and LRN
are wrapped in Transposes to and from channels-first. Ops newer than the target opset are written as
their ONNX function bodies: GroupNormalization (21; opsets 18-20 had a per-group scale and bias, which
cannot carry the canonical per-channel ones), RMSNormalization (23); LayerNormalization before 17 is
lowered by the IR's decomposition rules (``canonical_ir/passes/decompose.py``) before export.
Stage one of those runs in float32 for float16 inputs, as their stash_type says.
"""
from __future__ import annotations

import numpy as np

from convertkit.backends.onnx.handlers.activations import Nodes
from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir.ops.registry import layout_channel_axis, normalize_axis

F32 = np.dtype(np.float32)


def _stage_dtype(dtype: np.dtype) -> np.dtype:
    """Stage-one precision: the stash type (float32) for float16, the input's own type otherwise."""
    return F32 if dtype == np.float16 else dtype


def _channels_last(s: Nodes) -> bool:
    rank = len(s.type_of(s.ctx.input(0))[1])
    return rank > 2 and layout_channel_axis(s.attrs["layout"], rank) != 1


def _plain_attrs(ctx: ExportContext) -> dict:
    return {k: v for k, v in ctx.attrs.items() if k != "layout"}


# ------------------------------------------------------------------------------ spatial
@exporter("BatchNormalization")
def batch_normalization(ctx: ExportContext) -> None:
    s = Nodes(ctx)
    eps = float(s.attrs["epsilon"])
    params = [ctx.input(i) for i in range(1, 5)]
    if _channels_last(s):
        scale, bias = _bn_affine(s, params, eps)
        s("Add", s("Mul", ctx.input(0), scale), bias, out=True)
        return
    if ctx.opset < 15:  # BatchNormalization-9 and -14 want the statistics in X's type
        params = [_as_dtype(s, p, s.dtype) for p in params]
    ctx.make_node("BatchNormalization", [ctx.input(0), *params], epsilon=eps)


def _as_dtype(s: Nodes, name: str, dtype: np.dtype) -> str:
    value = s.ctx.graph.const_value(name)
    if value is not None and value.dtype != dtype:
        return s.c(value.astype(dtype), name="param")
    return s.cast(name, dtype)


def _bn_affine(s: Nodes, params: list[str], eps: float) -> tuple[str, str]:
    """BatchNormalization as y = x * a + b: a = scale / sqrt(var + eps), b = B - mean * a."""
    values = [s.ctx.graph.const_value(p) for p in params]
    if all(v is not None for v in values):
        scale, bias, mean, var = (np.asarray(v, dtype=np.float64) for v in values)
        a = scale / np.sqrt(var + eps)
        return s.c(a, name="scale"), s.c(bias - mean * a, name="bias")
    scale, bias, mean, var = (_as_dtype(s, p, s.dtype) for p in params)
    a = s("Div", scale, s("Sqrt", s("Add", var, s.c(eps))))
    return a, s("Sub", bias, s("Mul", mean, a))


def _transposed(op: str):
    """Write ``op`` as is for channels-first, wrapped in Transposes for channels-last."""
    def handler(ctx: ExportContext) -> None:
        s = Nodes(ctx)
        ins = [ctx.input(i) for i in range(len(ctx.inputs))]
        if not _channels_last(s):
            ctx.make_node(op, ins, **_plain_attrs(ctx))
            return
        rank = len(s.type_of(ins[0])[1])
        to_first = [0, rank - 1, *range(1, rank - 1)]
        to_last = [0, *range(2, rank), 1]
        y = s(op, s("Transpose", ins[0], perm=to_first), *ins[1:], **_plain_attrs(ctx))
        s("Transpose", y, perm=to_last, out=True)
    handler.__name__ = op.lower()
    handler.__doc__ = f"{op}: channels-last is wrapped in Transposes."
    return handler


exporter("InstanceNormalization")(_transposed("InstanceNormalization"))
exporter("LRN")(_transposed("LRN"))


@exporter("MeanVarianceNormalization")
def mean_variance_normalization(ctx: ExportContext) -> None:
    """Always with explicit axes: onnx's full checker cannot expand the op's function body without."""
    axes = [int(a) for a in Nodes(ctx).attrs["axes"]]
    ctx.make_node("MeanVarianceNormalization", [ctx.input(0)], axes=axes)


# ------------------------------------------------------------------------ decompositions
def _standardize(s: Nodes, x: str, axes: list[int], eps: float, mean_out: str | bool = False,
                 inv_out: str | bool = False) -> tuple[str, str, str]:
    """(x - mean) * 1/sqrt(var + eps) over ``axes``; returns (normalized, mean, inverse std)."""
    mean = s.reduce_mean(x, axes, out=mean_out)
    d = s("Sub", x, mean)
    var = s.reduce_mean(s("Mul", d, d), axes)
    inv = s("Reciprocal", s("Sqrt", s("Add", var, s.c(eps))), out=inv_out)
    return s("Mul", d, inv), mean, inv


@exporter("RMSNormalization", until=22)
def rms_normalization(ctx: ExportContext) -> None:
    """x / sqrt(mean(x^2) + eps) over axes ``axis..``, times scale."""
    x = ctx.input(0)
    xtype, shape = Nodes(ctx).type_of(x)
    s = Nodes(ctx, _stage_dtype(xtype))
    axis = normalize_axis(int(s.attrs["axis"]), len(shape))
    xs = s.cast(x, s.dtype)
    ms = s.reduce_mean(s("Mul", xs, xs), list(range(axis, len(shape))))
    normalized = s("Div", xs, s("Sqrt", s("Add", ms, s.c(float(s.attrs["epsilon"])))))
    s("Mul", s.cast(normalized, xtype), ctx.input(1), out=True)


@exporter("GroupNormalization", until=20)
def group_normalization(ctx: ExportContext) -> None:
    """Reshape to [N, groups, -1], standardize over the last axis, reshape back, then the per-channel
    scale and bias (reshaped to [C, 1, ...] to broadcast over axis 1)."""
    x = ctx.input(0)
    xtype, shape = Nodes(ctx).type_of(x)
    s = Nodes(ctx, _stage_dtype(xtype))
    groups = int(s.attrs["num_groups"])
    grouped = s("Reshape", s.cast(x, s.dtype), s.c([0, groups, -1], np.int64, "groups"))
    normalized, _, _ = _standardize(s, grouped, [2], float(s.attrs["epsilon"]))
    restored = s.cast(s("Reshape", normalized, s("Shape", x)), xtype)
    per_channel = [-1] + [1] * (len(shape) - 2)
    scale, bias = (_reshaped(s, ctx.input(i), per_channel, xtype) for i in (1, 2))
    s("Add", s("Mul", restored, scale), bias, out=True)


def _reshaped(s: Nodes, name: str, shape: list[int], dtype: np.dtype) -> str:
    value = s.ctx.graph.const_value(name)
    if value is not None:
        return s.c(value.reshape(shape), dtype, name="param")
    return s("Reshape", _as_dtype(s, name, dtype), s.c(shape, np.int64, "shape"))
