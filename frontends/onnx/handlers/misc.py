"""ONNX -> IR handlers for the misc family (see canonical_ir/ops/misc.py).

ONNX names element types by TensorProto code; the IR by numpy dtype name. Types numpy lacks
(bfloat16, float8, int4, string, ...) are refused here with the type's ONNX name.
"""
from __future__ import annotations

from onnx import TensorProto

from convertkit.canonical_ir import dtypes
from convertkit.frontends.onnx.registry import ConvertContext, converter

ROUND_MODES = ("up", "down", "nearest")


def dtype_name(ctx: ConvertContext, code: int, what: str) -> str:
    """The IR dtype name for an ONNX element-type code, or a clear error."""
    dt = dtypes.from_onnx(int(code))
    if dt is None:
        try:
            name = TensorProto.DataType.Name(int(code))
        except ValueError:
            name = f"code {code}"
        raise ctx.error(f"{ctx.node.op_type} {what} {name}, which convertkit does not support",
                        hint="supported: " + ", ".join(d.name for d in dtypes.ALL))
    return dt.name


def _fp8_options(ctx: ConvertContext, attrs: dict) -> dict:
    """saturate and round_mode only affect float8 casts; validated, saturate kept, round_mode dropped."""
    out = {}
    if "saturate" in attrs:
        out["saturate"] = int(attrs.pop("saturate"))
    mode = attrs.pop("round_mode", "up")
    if mode not in ROUND_MODES:
        raise ctx.error(f"round_mode {mode!r} is not one of {ROUND_MODES}")
    if attrs:
        raise ctx.error(f"attribute(s) {sorted(attrs)} of {ctx.node.op_type} are not supported")
    return out


@converter("Cast")
def cast(ctx: ConvertContext) -> None:
    attrs = dict(ctx.attrs)
    if "to" not in attrs:
        raise ctx.error("Cast has no 'to' attribute")
    to = dtype_name(ctx, attrs.pop("to"), "casts to")
    ctx.emit("Cast", [ctx.input(0)], attrs={"to": to, **_fp8_options(ctx, attrs)})


@converter("CastLike")
def cast_like(ctx: ConvertContext) -> None:
    ctx.emit("CastLike", ctx.inputs, attrs=_fp8_options(ctx, dict(ctx.attrs)))


@converter("EyeLike")
def eye_like(ctx: ConvertContext) -> None:
    attrs = dict(ctx.attrs)
    if "dtype" in attrs:
        attrs["dtype"] = dtype_name(ctx, attrs["dtype"], "has dtype")
    unknown = set(attrs) - {"dtype", "k"}
    if unknown:
        raise ctx.error(f"attribute(s) {sorted(unknown)} of EyeLike are not supported")
    ctx.emit("EyeLike", ctx.inputs, attrs=attrs)


@converter("Range", until=26)
def range_in_type(ctx: ConvertContext) -> None:
    """Before opset 27 Range computed in its own type (stash_type=0 says so for float16)."""
    if ctx.attrs:
        raise ctx.error(f"attribute(s) {sorted(ctx.attrs)} of Range are not supported")
    ctx.emit("Range", ctx.inputs, attrs={"stash_type": 0})
