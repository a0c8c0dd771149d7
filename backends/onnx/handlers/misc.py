"""IR -> ONNX handlers for the misc family (see canonical_ir/ops/misc.py).

The IR names dtypes by numpy name; ONNX by TensorProto code. CastLike (opset 15) is written as a Cast
to the target's (statically known) dtype before 15, and Range's stash_type (opset 27) as Casts.
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from convertkit.backends.onnx.registry import ExportContext, exporter
from convertkit.canonical_ir import dtypes


def _code(ctx: ExportContext, name) -> int:
    try:
        return dtypes.to_onnx(np.dtype(name))
    except (KeyError, TypeError):
        raise ctx.error(f"dtype {name!r} has no ONNX element type") from None


@exporter("Cast")
def cast(ctx: ExportContext) -> None:
    """``to`` as a TensorProto code; saturate is left out (it only affects float8 targets)."""
    ctx.make_node("Cast", [ctx.input(0)], to=_code(ctx, ctx.attrs["to"]))


@exporter("CastLike", until=14)
def cast_like_as_cast(ctx: ExportContext) -> None:
    dt = ctx.graph.tensor(ctx.input(1)).dtype
    ctx.make_node("Cast", [ctx.input(0)], to=_code(ctx, dt))


@exporter("CastLike", since=15, until=18)
def cast_like_no_saturate(ctx: ExportContext) -> None:
    ctx.make_node("CastLike", [ctx.input(0), ctx.input(1)])


@exporter("EyeLike")
def eye_like(ctx: ExportContext) -> None:
    dt = ctx.attrs.get("dtype")
    ctx.make_node("EyeLike", [ctx.input(0)], k=ctx.attrs.get("k", 0),
                  dtype=None if dt is None else _code(ctx, dt))


@exporter("ConstantOfShape")
def constant_of_shape(ctx: ExportContext) -> None:
    value = ctx.attrs.get("value")
    tensor = None if value is None else numpy_helper.from_array(np.asarray(value).reshape(1))
    ctx.make_node("ConstantOfShape", [ctx.input(0)], value=tensor)


@exporter("Range", until=26)
def range_without_stash(ctx: ExportContext) -> None:
    """stash_type (opset 27) only matters for float16: working in float32 is written out as Casts
    around a float32 Range, which is what stash_type=1 means."""
    if ctx.graph.tensor(ctx.input(0)).dtype != np.float16 or ctx.attrs.get("stash_type", 1) != 1:
        ctx.make_node("Range", [ctx.input(i) for i in range(3)])
        return
    wide = []
    for i, label in enumerate(("start", "limit", "delta")):
        wide.append(ctx.tmp(f"{label}_f32"))
        ctx.make_node("Cast", [ctx.input(i)], [wide[-1]], name=f"{ctx.node.name}_{label}_f32",
                      to=dtypes.to_onnx(np.dtype(np.float32)))
    out = ctx.tmp("f32")
    ctx.make_node("Range", wide, [out], name=f"{ctx.node.name}_f32")
    ctx.make_node("Cast", [out], to=dtypes.to_onnx(np.dtype(np.float16)))
