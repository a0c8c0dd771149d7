"""ONNX -> IR handlers for the nn family (see canonical_ir/ops/nn.py and resize.py).

Conv, pooling and depth/space ops need none: their opset 11..24 forms are the canonical ones with
fewer attributes (SpaceToDepth before 28 is mode DCR, the canonical default). Handled here:

* Upsample (deprecated since opset 10; still met in upgraded models) is Resize with asymmetric
  coordinates, ``nearest_mode=floor`` for nearest (its scales are >= 1, where onnxruntime's legacy
  rounding is a floor) and the same linear mode.
* Resize: empty ``roi``/``scales`` constants (the opset 11/12 way of leaving them out) and a roi that
  only ``tf_crop_and_resize`` reads are dropped, so the IR holds just what the op uses.
* GridSample 16..19 spelled its modes ``bilinear``/``bicubic``.

Models older than opset 11 are upgraded by onnx's version converter first, which turns Upsample and
Resize-10 into Resize-11 nodes with the *default* half_pixel coordinates: wrong for linear (they meant
asymmetric). ``legacy_resize_modes`` (before the upgrade) and ``apply_legacy_resize_modes`` (after)
put the meant coordinates back.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from convertkit.errors import ModelFileError
from convertkit.frontends.onnx.registry import ConvertContext, converter


@converter("Upsample")
def upsample(ctx: ConvertContext) -> None:
    mode = ctx.attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise ctx.error(f"Upsample mode {mode!r} is not supported", hint="modes are nearest and linear")
    scales = ctx.input(1)
    if "scales" in ctx.attrs:                                   # opsets 7-8: an attribute
        scales = ctx.const(np.asarray(ctx.attrs["scales"], np.float32), name=f"{ctx.name}_scales")
    if scales is None:
        raise ctx.error("Upsample has no scales")
    attrs = {"mode": "nearest" if mode == "nearest" else "linear",
             "coordinate_transformation_mode": "asymmetric"}
    if mode == "nearest":
        attrs["nearest_mode"] = "floor"
    ctx.emit("Resize", [ctx.input(0), None, scales], attrs=attrs)


@converter("Resize", since=11)
def resize(ctx: ConvertContext) -> None:
    inputs = list(ctx.inputs) + [None] * (4 - len(ctx.inputs))
    for port in (1, 2):
        v = ctx.const_value(port)
        if v is not None and v.size == 0:
            inputs[port] = None
    if ctx.attrs.get("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize":
        inputs[1] = None
    ctx.emit("Resize", inputs, attrs=dict(ctx.attrs))


@converter("GridSample", until=19)
def grid_sample_16(ctx: ConvertContext) -> None:
    attrs = dict(ctx.attrs)
    mode = attrs.get("mode", "bilinear")
    attrs["mode"] = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    ctx.emit("GridSample", ctx.inputs, attrs=attrs)


# ----------------------------------------------------------------- pre-opset-11 upgrade fix-up
def legacy_resize_modes(model: onnx.ModelProto) -> dict[str, dict[str, str]]:
    """For a model older than opset 11: output name -> the Resize-11 attributes each Upsample or
    Resize-10 node meant (asymmetric coordinates; nearest rounds down when enlarging, and up when
    shrinking, as onnxruntime's legacy kernel does)."""
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    modes: dict[str, dict[str, str]] = {}
    for n in model.graph.node:
        if n.op_type not in ("Upsample", "Resize") or n.domain not in ("", "ai.onnx"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        meant = {"coordinate_transformation_mode": "asymmetric"}
        if attrs.get("mode", b"nearest") in (b"nearest", "nearest"):
            scales = attrs.get("scales")
            if scales is None and len(n.input) > 1:
                scales = consts.get(n.input[1])
            changed = None if scales is None else \
                [float(v) for v in np.asarray(scales).reshape(-1) if float(v) != 1.0]
            if n.op_type == "Upsample" or (changed is not None and all(v > 1 for v in changed)):
                meant["nearest_mode"] = "floor"
            elif changed is not None and all(v < 1 for v in changed):
                meant["nearest_mode"] = "ceil"
            else:
                raise ModelFileError(f"Resize-10 node {n.name or n.output[0]!r} in nearest mode has run-time "
                                     "scales or mixes enlarging and shrinking axes", hint="re-export the "
                                     "model at opset 11 or newer")
        modes[n.output[0]] = meant
    return modes


def apply_legacy_resize_modes(model: onnx.ModelProto, modes: dict[str, dict[str, str]]) -> None:
    """Set the meant attributes on the upgraded model's Resize nodes (found by output name)."""
    for n in model.graph.node:
        if n.op_type == "Resize" and n.output and n.output[0] in modes:
            keep = [a for a in n.attribute if a.name not in modes[n.output[0]]]
            del n.attribute[:]
            n.attribute.extend(keep + [helper.make_attribute(k, v) for k, v in modes[n.output[0]].items()])
