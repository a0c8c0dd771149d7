"""Reader for MXNet ``.params`` files (``mx.nd.save`` format) with numpy alone: no mxnet, no pickle.

Layout (little-endian): u64 list magic 0x112, u64 reserved, u64 array count, the arrays, then u64 name
count and per name a u64 length and its bytes. Each array starts with a u32 that tells its version:

- 0xF993FAC9 (V2, MXNet 0.11-1.x) and 0xF993FACA (V3, numpy-shape semantics): i32 storage type,
  shape, context (i32 device type, i32 device id), i32 dtype flag, raw data;
- 0xF993FAC8 (V1): shape, context, dtype flag, data;
- anything else (files written before MXNet 0.9, e.g. the MTCNN models): that u32 *is* the rank, the
  dims follow as u32, then context, dtype flag and data.

A shape is a u32 rank and i64 dims (V3: an i32 rank where -1 means "unknown", stored without data).
Names carry an ``arg:`` or ``aux:`` prefix in checkpoints (``Module.save_checkpoint``, Gluon
``export``) and none in ``save_parameters`` files; :func:`read_params` keeps them as written.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from convertkit.errors import ModelFileError

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA

DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"), 4: np.dtype("<i4"),
    5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?"), 8: np.dtype("<i2"), 9: np.dtype("<u2"),
    10: np.dtype("<u4"), 11: np.dtype("<u8"),
}
"""MXNet dtype flags (mshadow ``TypeFlag``) that numpy can hold; 12 (bfloat16) is refused."""

STORAGE_NAMES = {1: "row_sparse", 2: "csr"}


class _Reader:
    """A cursor over the file's bytes; any read past the end is a truncated file."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFileError(f"truncated .params file: it ends inside {what} (offset {self.pos}, "
                                 f"{len(self.data)} bytes in all)", where=self.source,
                                 hint="the download or copy may be incomplete")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def error(self, message: str, hint: str | None = None) -> ModelFileError:
        return ModelFileError(message, where=self.source, hint=hint)


def read_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a ``.params`` file by name (prefixes kept), in file order."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read: {e.strerror}", where=source) from None
    return parse_params(data, source)


def parse_params(data: bytes, source: str = "<params>") -> dict[str, np.ndarray]:
    r = _Reader(data, source)
    if len(data) < 8:
        raise r.error("not an MXNet .params file (too short to hold a header)")
    magic, _reserved = r.unpack("QQ", "the header")
    if magic != LIST_MAGIC:
        raise r.error(f"not an MXNet .params file (magic {magic:#x}, expected {LIST_MAGIC:#x})")
    (count,) = r.unpack("Q", "the array count")
    if count > len(data):
        raise r.error(f"truncated or corrupt .params file: its header lists {count} arrays, but the file "
                      f"has only {len(data)} bytes")
    arrays = [_read_array(r, i) for i in range(count)]
    (n_names,) = r.unpack("Q", "the name count")
    if n_names == 0:
        raise r.error(f"holds {count} arrays without names", hint="only named parameter files are models")
    if n_names != count:
        raise r.error(f"holds {count} arrays but {n_names} names")
    names = []
    for i in range(n_names):
        (length,) = r.unpack("Q", f"the length of name {i}")
        raw = r.take(length, f"name {i}")
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise r.error(f"name {i} is not valid UTF-8") from None
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} unexpected bytes after the last name")
    if len(set(names)) != len(names):
        raise r.error("the same parameter name appears twice")
    return dict(zip(names, arrays))


def _read_array(r: _Reader, index: int) -> np.ndarray:
    what = f"array {index}"
    (magic,) = r.unpack("I", what)
    if magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = r.unpack("i", what)
        if stype != 0:
            kind = STORAGE_NAMES.get(stype, f"storage type {stype}")
            raise r.error(f"array {index} is stored as {kind}; only dense arrays are supported",
                          hint="save the parameters with .tostype('default')")
        shape = _read_shape(r, what, signed_rank=magic == V3_MAGIC)
    elif magic == V1_MAGIC:
        shape = _read_shape(r, what, signed_rank=False)
    else:  # pre-0.9 files: no magic; the word is the rank and the dims are u32
        if magic > 32:
            raise r.error(f"array {index} has an unknown header {magic:#x}")
        shape = r.unpack(f"{magic}I", what) if magic else ()
    if shape is None or (magic != V3_MAGIC and len(shape) == 0):
        return np.zeros((0,), np.float32)  # an empty (None) NDArray carries no context or data
    _dev_type, _dev_id, flag = r.unpack("iii", what)
    if flag not in DTYPES:
        raise r.error(f"array {index} has dtype flag {flag}, which convertkit cannot read",
                      hint="flag 12 is bfloat16: cast the parameters to float32 first")
    dtype = DTYPES[flag]
    count = int(np.prod(shape, dtype=np.int64))
    raw = r.take(count * dtype.itemsize, f"the data of {what}")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _read_shape(r: _Reader, what: str, signed_rank: bool) -> tuple[int, ...] | None:
    """A shape, or None for V3's unknown shape (rank -1)."""
    (ndim,) = r.unpack("i" if signed_rank else "I", what)
    if signed_rank and ndim == -1:
        return None
    if not 0 <= ndim <= 32:
        raise r.error(f"{what} has an impossible rank {ndim}")
    dims = r.unpack(f"{ndim}q", what)
    if any(d < 0 for d in dims):
        raise r.error(f"{what} has a negative dimension {list(dims)}")
    return tuple(int(d) for d in dims)


def split_prefixes(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Names without their ``arg:``/``aux:`` prefix (the symbol's variable names)."""
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        key = name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name
        out[key] = value
    return out
