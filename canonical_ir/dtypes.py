"""Element types of the IR: plain numpy dtypes, plus the mapping to ONNX's TensorProto codes.

numpy dtypes are used directly (no wrapper class) so kernels, constants and tensors speak one language.
Types numpy lacks (bfloat16, float8, int4, string) are not part of the IR; frontends refuse them.
"""
from __future__ import annotations

import numpy as np

DType = np.dtype

FLOAT32 = np.dtype(np.float32)
FLOAT16 = np.dtype(np.float16)
FLOAT64 = np.dtype(np.float64)
INT8 = np.dtype(np.int8)
UINT8 = np.dtype(np.uint8)
INT16 = np.dtype(np.int16)
UINT16 = np.dtype(np.uint16)
INT32 = np.dtype(np.int32)
UINT32 = np.dtype(np.uint32)
INT64 = np.dtype(np.int64)
UINT64 = np.dtype(np.uint64)
BOOL = np.dtype(np.bool_)

ALL = (FLOAT32, FLOAT16, FLOAT64, INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64, BOOL)
FLOATS = (FLOAT16, FLOAT32, FLOAT64)
INTS = (INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64)

# onnx.TensorProto.DataType codes; kept here as numbers so canonical_ir does not import onnx.
_ONNX_CODES = {
    FLOAT32: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, BOOL: 9,
    FLOAT16: 10, FLOAT64: 11, UINT32: 12, UINT64: 13,
}
_FROM_ONNX = {code: dt for dt, code in _ONNX_CODES.items()}


def dtype(x) -> DType:
    """Normalise anything numpy understands ("float32", np.int8, an array) to a numpy dtype."""
    if isinstance(x, np.ndarray):
        return x.dtype
    return np.dtype(x)


def to_onnx(dt: DType) -> int:
    return _ONNX_CODES[np.dtype(dt)]


def from_onnx(code: int) -> DType | None:
    """The IR dtype for an ONNX TensorProto code, or None if the IR has no such type."""
    return _FROM_ONNX.get(code)


def is_float(dt: DType) -> bool:
    return np.dtype(dt).kind == "f"


def is_int(dt: DType) -> bool:
    return np.dtype(dt).kind in "iu"
