"""IR -> ONNX handlers for the nn family (see canonical_ir/ops/nn.py and resize.py).

* Channels-last ops are written as the NCHW ONNX op between two Transposes; constant weights are
  permuted once, here, into ONNX's order. The transposes are correct, not minimal: the layout pass is
  what removes them.
* ``auto_pad`` (deprecated in ONNX) and ConvTranspose's ``output_shape`` are written as the explicit
  pads they stand for whenever the spatial shape is static: onnxruntime rejects SAME with dilations,
  ignores dilations when it pads SAME pools, and splits odd ConvTranspose padding the other way round.
* Older opsets: AveragePool ``dilations`` needs 19, LpPool ``dilations``/``ceil_mode`` 18, int8 MaxPool
  12; SpaceToDepth ``mode=CRD`` (opset 28) is written as DCR SpaceToDepth plus a channel Gather.
  Resize is written in the form of each opset (roi/scales inputs required before 13, ``axes``
  expanded to every dim before 18, ``half_pixel_symmetric`` before 19 only where it equals
  ``half_pixel``); what has no older form raises an error naming the opset it needs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir.ops import get_schema
from convertkit.canonical_ir.ops.nn import (
    _axis_geometry,
    conv_t_geometry,
    _ints,
    channels_last,
    conv_transpose_weight_to_nchw,
    conv_weight_to_nchw,
)

Body = Callable[[ExportContext, list[str], list[str]], None]


def needs(ctx: ExportContext, opset: int, why: str) -> Exception:
    return ctx.error(f"{why} needs ONNX opset {opset}", hint=f"choose --opset {opset} or newer")


def _attrs(ctx: ExportContext) -> dict[str, Any]:
    """The node's explicitly set attributes, minus ``layout`` (ONNX ops are always NCHW)."""
    return {k: v for k, v in ctx.node.attrs.items() if k != "layout" and v is not None}


def _layout(ctx: ExportContext) -> str:
    return ctx.node.attrs.get("layout", "NCHW")


def _nc_shape(ctx: ExportContext) -> tuple:
    shape = ctx.graph.tensor(ctx.inputs[0]).shape
    return (shape[0], shape[-1], *shape[1:-1]) if channels_last(_layout(ctx)) else tuple(shape)


def _check_dtype(ctx: ExportContext) -> None:
    """Refuse an input dtype the target opset's op does not take (int8 MaxPool before 12, integer
    Conv or AveragePool at all: quantized forms are the quant family's to write)."""
    dt = ctx.graph.tensor(ctx.input(0)).dtype
    name = f"tensor({onnx.TensorProto.DataType.Name(onnx.helper.np_dtype_to_tensor_dtype(dt)).lower()})"

    def takes(opset: int) -> bool:
        schema = onnx.defs.get_schema(ctx.node.op, opset, "")
        allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
        return name in allowed.get(schema.inputs[0].type_str, [name])
    if takes(ctx.opset):
        return
    newer = next((v for v in range(ctx.opset + 1, onnx.defs.onnx_opset_version() + 1) if takes(v)), None)
    if newer is not None:
        raise needs(ctx, newer, f"{ctx.node.op} on {dt}")
    raise ctx.error(f"ONNX's {ctx.node.op} does not take {dt} inputs",
                    hint="quantized models are written with QuantizeLinear/DequantizeLinear")


def _write(ctx: ExportContext, inputs: list[str], body: Body) -> None:
    """Write ``body`` (NCHW inputs -> NCHW outputs); a channels-last node gets Transposes around it."""
    _check_dtype(ctx)
    if not channels_last(_layout(ctx)):
        body(ctx, inputs, list(ctx.outputs))
        return
    rank = len(ctx.graph.tensor(ctx.inputs[0]).shape)
    x = ctx.tmp("nchw")
    ctx.make_node("Transpose", [inputs[0]], [x], name=f"{ctx.node.name}_to_nchw",
                  perm=[0, rank - 1, *range(1, rank - 1)])
    outs = [ctx.tmp(f"nchw_out{i}") for i in range(len(ctx.outputs))]
    body(ctx, [x, *inputs[1:]], outs)
    for tmp, out in zip(outs, ctx.outputs):
        ctx.make_node("Transpose", [tmp], [out], name=f"{ctx.node.name}_to_nhwc",
                      perm=[0, *range(2, rank), 1])


def _single(op_type: str, attrs: dict[str, Any]) -> Body:
    def body(ctx: ExportContext, ins: list[str], outs: list[str]) -> None:
        ctx.make_node(op_type, ins, outs, **attrs)
    return body


def _explicit_pads(ctx: ExportContext, attrs: dict[str, Any], kernel: list[int]) -> None:
    """auto_pad -> the explicit pads it means, when the spatial dims are static."""
    spatial = _nc_shape(ctx)[2:]
    if attrs.get("auto_pad", "NOTSET") == "NOTSET" or not all(isinstance(d, int) for d in spatial):
        return
    n = len(kernel)
    strides, dil = _ints(attrs.get("strides"), n, 1), _ints(attrs.get("dilations"), n, 1)
    geo = [_axis_geometry(d, k, s, dl, 0, 0, attrs["auto_pad"], bool(attrs.get("ceil_mode", 0)))
           for d, k, s, dl in zip(spatial, kernel, strides, dil)]
    attrs.pop("auto_pad")
    attrs["pads"] = [g[0] for g in geo] + [g[1] for g in geo]


def _drop_trivial(ctx: ExportContext, attrs: dict[str, Any], key: str, trivial: Callable[[Any], bool],
                  opset: int) -> None:
    """Remove an attribute the target opset lacks if its value changes nothing, else refuse."""
    if key in attrs:
        if not trivial(attrs[key]):
            raise needs(ctx, opset, f"{ctx.node.op} with {key}={attrs[key]}")
        del attrs[key]


def _ones(v: Any) -> bool:
    return all(int(a) == 1 for a in v)


# ---------------------------------------------------------------------------------- convolution
@exporter("Conv")
def conv(ctx: ExportContext) -> None:
    attrs = _attrs(ctx)
    layout = _layout(ctx)
    w = ctx.input(1)
    wv = ctx.const_value(1)
    if channels_last(layout):
        if wv is not None:
            w = ctx.const(conv_weight_to_nchw(wv, layout), name="w_nchw")
        else:
            rank = len(ctx.graph.tensor(w).shape)
            w = ctx.make_node("Transpose", [w], [ctx.tmp("w_nchw")], name=f"{ctx.node.name}_w",
                              perm=[0, rank - 1, *range(1, rank - 1)])[0]
    shape = ctx.graph.tensor(ctx.input(1)).shape
    kernel = attrs.get("kernel_shape") or (shape[1:-1] if channels_last(layout) else shape[2:])
    _explicit_pads(ctx, attrs, [int(k) for k in kernel])
    _write(ctx, [ctx.input(0), w, ctx.input(2)], _single("Conv", attrs))


@exporter("ConvTranspose")
def conv_transpose(ctx: ExportContext) -> None:
    attrs = _attrs(ctx)
    layout = _layout(ctx)
    group = int(attrs.get("group", 1))
    w = ctx.input(1)
    shape = ctx.graph.tensor(w).shape
    if channels_last(layout):
        wv = ctx.const_value(1)
        if wv is not None:
            w = ctx.const(conv_transpose_weight_to_nchw(wv, group, layout), name="w_nchw")
        elif group == 1:
            rank = len(shape)
            w = ctx.make_node("Transpose", [w], [ctx.tmp("w_nchw")], name=f"{ctx.node.name}_w",
                              perm=[rank - 1, 0, *range(1, rank - 1)])[0]
        else:
            raise ctx.error("a channels-last grouped ConvTranspose needs a constant weight")
    kernel = [int(k) for k in (attrs.get("kernel_shape") or
                               (shape[1:-1] if channels_last(layout) else shape[2:]))]
    spatial = _nc_shape(ctx)[2:]
    if (attrs.get("output_shape") or attrs.get("auto_pad", "NOTSET") != "NOTSET") and \
            all(isinstance(d, int) for d in spatial):
        pb, pe, _ = conv_t_geometry(spatial, kernel, get_schema("ConvTranspose").resolve_attrs(attrs))
        if min(pb + pe) >= 0:
            for key in ("output_shape", "auto_pad"):
                attrs.pop(key, None)
            attrs["pads"] = pb + pe
    _write(ctx, [ctx.input(0), w, ctx.input(2)], _single("ConvTranspose", attrs))


# -------------------------------------------------------------------------------------- pooling
def _pool(ctx: ExportContext, extra: Callable[[dict[str, Any]], None] | None = None) -> None:
    attrs = _attrs(ctx)
    if extra is not None:
        extra(attrs)
    _explicit_pads(ctx, attrs, [int(k) for k in attrs["kernel_shape"]])
    _write(ctx, [ctx.input(0)], _single(ctx.node.op, attrs))


exporter("MaxPool")(_pool)


@exporter("AveragePool")
def average_pool(ctx: ExportContext) -> None:
    def older(attrs: dict[str, Any]) -> None:
        if ctx.opset < 19:
            _drop_trivial(ctx, attrs, "dilations", _ones, 19)
    _pool(ctx, older)


@exporter("LpPool")
def lp_pool(ctx: ExportContext) -> None:
    def older(attrs: dict[str, Any]) -> None:
        if ctx.opset < 18:
            _drop_trivial(ctx, attrs, "dilations", _ones, 18)
            _drop_trivial(ctx, attrs, "ceil_mode", lambda v: not v, 18)
    _pool(ctx, older)


def _plain(ctx: ExportContext) -> None:
    _write(ctx, [ctx.input(0)], _single(ctx.node.op, _attrs(ctx)))


for _op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "DepthToSpace"):
    exporter(_op)(_plain)


@exporter("SpaceToDepth")
def space_to_depth(ctx: ExportContext) -> None:
    attrs = _attrs(ctx)
    mode = attrs.pop("mode", "DCR")
    if ctx.opset >= 28 or mode == "DCR":
        if ctx.opset >= 28 and mode != "DCR":
            attrs["mode"] = mode
        _write(ctx, [ctx.input(0)], _single("SpaceToDepth", attrs))
        return
    channels = _nc_shape(ctx)[1]
    if not isinstance(channels, int):
        raise needs(ctx, 28, "SpaceToDepth mode=CRD with a symbolic channel count")
    bb = int(attrs["blocksize"]) ** 2
    # DCR puts block position k of channel c at k*C + c; CRD at c*bb + k
    perm = (np.arange(bb)[None, :] * channels + np.arange(channels)[:, None]).reshape(-1)

    def body(ctx: ExportContext, ins: list[str], outs: list[str]) -> None:
        dcr = ctx.make_node("SpaceToDepth", ins, [ctx.tmp("dcr")], **attrs)[0]
        ctx.make_node("Gather", [dcr, ctx.const(perm.astype(np.int64), name="crd_order")], outs,
                      name=f"{ctx.node.name}_crd", axis=1)
    _write(ctx, [ctx.input(0)], body)


# --------------------------------------------------------------------------------- resampling
def _full_rank(ctx: ExportContext, port: int, axes: list[int], rank: int, fill: list) -> str:
    """Resize's per-axis input ``port`` expanded from ``axes`` to every dim (opsets before 18)."""
    if not ctx.has_input(port):
        return ""
    v = ctx.const_value(port)
    if v is None:
        raise needs(ctx, 18, "Resize with axes and run-time scales/sizes/roi")
    v = np.asarray(v)
    if port == 1:                                               # roi: starts, then ends
        k = len(axes)
        full = np.array([0.0] * rank + [1.0] * rank, v.dtype)
        full[axes], full[[rank + a for a in axes]] = v[:k], v[k:]
    else:
        if port == 3 and any(not isinstance(f, int) for f in fill):
            raise needs(ctx, 18, "Resize with axes over a tensor with symbolic dims")
        full = np.array(fill, v.dtype)
        full[axes] = v
    return ctx.const(full, name=("roi", "scales", "sizes")[port - 1])


def _symmetric_is_half_pixel(ctx: ExportContext, shape: tuple, a: dict[str, Any]) -> bool:
    """half_pixel_symmetric equals half_pixel when every resized axis scales to a whole size."""
    from convertkit.canonical_ir.ops.resize import output_geometry

    scales, sizes = ctx.const_value(2), ctx.const_value(3)
    if not all(isinstance(d, int) for d in shape) or all(v is None or np.asarray(v).size == 0
                                                         for v in (scales, sizes)):
        return False
    out, sc = output_geometry(shape, scales, sizes, a)
    return all(np.float32(s) * np.float32(n) == np.float32(o) for s, n, o in zip(sc, shape, out))


@exporter("Resize")
def resize(ctx: ExportContext) -> None:
    attrs = _attrs(ctx)
    a = get_schema("Resize").resolve_attrs(ctx.node.attrs)
    shape = ctx.graph.tensor(ctx.input(0)).shape
    rank = len(shape)
    ins = [ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3)]
    if ctx.opset < 18:
        for key, default in (("antialias", 0), ("keep_aspect_ratio_policy", "stretch")):
            _drop_trivial(ctx, attrs, key, lambda v, d=default: v == d, 18)
        if attrs.get("axes"):
            axes = [int(x) % rank for x in attrs.pop("axes")]
            if axes != list(range(rank)):
                ins[1] = _full_rank(ctx, 1, axes, rank, [])
                ins[2] = _full_rank(ctx, 2, axes, rank, [1.0] * rank)
                ins[3] = _full_rank(ctx, 3, axes, rank, list(shape))
    coord = a["coordinate_transformation_mode"]
    if coord == "half_pixel_symmetric" and ctx.opset < 19:
        if not _symmetric_is_half_pixel(ctx, shape, a):
            raise needs(ctx, 19, "Resize half_pixel_symmetric on sizes that are not whole multiples")
        attrs["coordinate_transformation_mode"] = "half_pixel"
    if coord == "tf_half_pixel_for_nn" and ctx.opset >= 13:
        # floor((x + .5) / s) == round_prefer_ceil((x + .5) / s - .5): the same source pixel
        if a["mode"] != "nearest" or a["nearest_mode"] != "floor":
            raise ctx.error("coordinate_transformation_mode tf_half_pixel_for_nn exists only in opsets 11-12",
                            hint="choose --opset 12")
        attrs.update(coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")
    if ctx.opset < 13:                                          # roi and scales were required inputs
        ins[1] = ins[1] or ctx.const(np.zeros(0, np.float32), name="roi")
        ins[2] = ins[2] or ctx.const(np.zeros(0, np.float32), name="scales")
    ctx.make_node("Resize", ins, **attrs)


@exporter("GridSample", since=16, until=19)
def grid_sample_16(ctx: ExportContext) -> None:
    attrs = _attrs(ctx)
    if len(ctx.graph.tensor(ctx.input(0)).shape) != 4:
        raise needs(ctx, 20, "GridSample on a tensor of rank other than 4")
    mode = attrs.get("mode", "linear")
    attrs["mode"] = {"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode)
    ctx.make_node("GridSample", [ctx.input(0), ctx.input(1)], **attrs)
