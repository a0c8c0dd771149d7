"""MXNet symbol JSON in all its dialects, normalized to one node list.

Three dialects exist in the wild:

- MXNet >= 1.0 (and 0.12+): op parameters under ``attrs``; inputs ``[node, output, version]``;
  ``attrs.mxnet_version`` at the top level.
- MXNet 0.9-0.11 (version 903-1100): parameters under ``attr``; same input triples.
- MXNet 0.8 and older: parameters under ``param``, user attributes (``ctx_group``, ``lr_mult``) under
  ``attr``; inputs ``[node, output]``; a ``backward_source_id`` per node; and BatchNorm's auxiliary
  states (``moving_mean``, ``moving_var``) are not listed as inputs at all (MXNet adds them on load
  as variables ``<node>_moving_mean`` / ``<node>_moving_var``, and so do we).

Every attribute value is a string (``"(3, 3)"``, ``"True"``); :class:`Attrs` parses them and records
which ones a converter read, so an attribute no converter understands is reported, never ignored.
"""
from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convertkit.errors import ModelFileError

AUX_INPUTS = {
    "BatchNorm": ("data", "gamma", "beta", "moving_mean", "moving_var"),
    "CuDNNBatchNorm": ("data", "gamma", "beta", "moving_mean", "moving_var"),
}
"""Ops whose trailing inputs are auxiliary states, which 0.8-era JSON leaves out."""

HARMLESS_ATTRS = frozenset({"workspace", "cudnn_tune", "cudnn_off", "ctx_group", "lr_mult", "wd_mult",
                            "force_mirroring", "mirror_stage", "storage_type"})
"""Attributes that only tune training or GPU execution and never change what an op computes."""

_HARMLESS_RE = re.compile(r"^__.*__$|_lr_mult$|_wd_mult$")


@dataclass
class SymNode:
    """One node: ``op`` is ``"null"`` for variables (inputs and parameters)."""

    index: int
    op: str
    name: str
    attrs: dict[str, str]
    inputs: list[tuple[int, int]]


@dataclass
class Symbol:
    nodes: list[SymNode]
    heads: list[tuple[int, int]]
    dialect: str
    version: int | None = None
    source: str = "<symbol>"

    def consumers(self) -> dict[int, list[tuple[SymNode, int]]]:
        """node index -> [(consuming node, input port)], in node order."""
        uses: dict[int, list[tuple[SymNode, int]]] = {}
        for node in self.nodes:
            for port, (src, _) in enumerate(node.inputs):
                uses.setdefault(src, []).append((node, port))
        return uses


def read_symbol(path: str | Path) -> Symbol:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ModelFileError(f"cannot read: {e.strerror}", where=source) from None
    except UnicodeDecodeError:
        raise ModelFileError("not an MXNet symbol file (not UTF-8 text)", where=source) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"not an MXNet symbol file (invalid JSON: {e.msg} at line {e.lineno})",
                             where=source, hint="the file may be truncated") from None
    return parse_symbol(doc, source)


def parse_symbol(doc: Any, source: str = "<symbol>") -> Symbol:
    """Validate a decoded symbol JSON document and normalize it."""
    def bad(message: str) -> ModelFileError:
        return ModelFileError(f"not an MXNet symbol file: {message}", where=source,
                              hint="MXNet symbol files (*-symbol.json) hold 'nodes' and 'heads'")

    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or "heads" not in doc:
        raise bad("expected a JSON object with 'nodes' and 'heads'")
    version = _version(doc)
    raw_nodes = doc["nodes"]
    if not raw_nodes:
        raise bad("it has no nodes")
    legacy = any("param" in n or "backward_source_id" in n for n in raw_nodes if isinstance(n, dict))
    dialect = "0.8 (param)" if legacy else ("1.x (attrs)" if any(
        isinstance(n, dict) and "attrs" in n for n in raw_nodes) else "0.9 (attr)")

    nodes: list[SymNode] = []
    remap: dict[int, int] = {}  # file index -> index in ``nodes`` (synthetic aux nodes shift them)
    for i, raw in enumerate(raw_nodes):
        if not (isinstance(raw, dict) and isinstance(raw.get("op"), str)
                and isinstance(raw.get("name"), str)):
            raise bad(f"node {i} lacks an 'op' or 'name' string")
        attrs = _merge_attrs(raw, i, bad)
        inputs = [_entry(e, i, len(raw_nodes), bad, "input") for e in raw.get("inputs", [])]
        if any(src >= i for src, _ in inputs):
            raise bad(f"node {i} ({raw['name']}) uses a node that comes after it")
        inputs = [(remap[src], out) for src, out in inputs]
        wanted = AUX_INPUTS.get(raw["op"])
        if legacy and wanted and len(inputs) < len(wanted):
            for arg in wanted[len(inputs):]:  # aux states left implicit by the 0.8 format
                nodes.append(SymNode(len(nodes), "null", f"{raw['name']}_{arg}", {}, []))
                inputs.append((len(nodes) - 1, 0))
        remap[i] = len(nodes)
        nodes.append(SymNode(len(nodes), raw["op"], raw["name"], attrs, inputs))
    heads_raw = doc["heads"]
    if not isinstance(heads_raw, list) or not heads_raw:
        raise bad("'heads' names no outputs")
    heads = [_entry(h, len(raw_nodes), len(raw_nodes), bad, "head") for h in heads_raw]
    heads = [(remap[src], out) for src, out in heads]
    return Symbol(nodes, heads, dialect, version, source)


def _version(doc: dict) -> int | None:
    v = doc.get("attrs", {}).get("mxnet_version") if isinstance(doc.get("attrs"), dict) else None
    if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
        return v[1]
    return None


def _merge_attrs(raw: dict, i: int, bad: Any) -> dict[str, str]:
    """One dict of string attributes: user ``attr`` first, op ``param``/``attrs`` on top."""
    merged: dict[str, str] = {}
    for key in ("attr", "param", "attrs"):
        part = raw.get(key, {})
        if part is None:
            continue
        if not isinstance(part, dict):
            raise bad(f"node {i} has a non-object '{key}'")
        merged.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in part.items()})
    return merged


def _entry(e: Any, i: int, n: int, bad: Any, what: str) -> tuple[int, int]:
    if not (isinstance(e, list) and len(e) in (2, 3) and all(isinstance(x, int) for x in e)):
        raise bad(f"node {i} has a malformed {what} entry {e!r}")
    if not 0 <= e[0] < n or e[1] < 0:
        raise bad(f"node {i} refers to node {e[0]}, which does not exist")
    return e[0], e[1]


# ------------------------------------------------------------------------------- attributes
class AttrError(ValueError):
    """An attribute value that cannot be parsed or is not supported: (key, value, why)."""

    def __init__(self, key: str, value: str, why: str) -> None:
        super().__init__(f"{key}={value} {why}")
        self.key, self.value, self.why = key, value, why


class Attrs:
    """Typed access to a node's string attributes; remembers what was read."""

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = dict(raw)
        self.read: set[str] = set()

    def _get(self, key: str) -> str | None:
        self.read.add(key)
        value = self.raw.get(key)
        return None if value is None or value.strip() in ("None", "") else value.strip()

    def ignore(self, *keys: str) -> None:
        """Mark attributes as understood though unused (training-only settings)."""
        self.read.update(keys)

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key)
        return default if value is None else value.strip("'\"")

    def choice(self, key: str, default: str, allowed: Iterable[str]) -> str:
        value = self.str(key, default)
        if value not in allowed:
            raise AttrError(key, value, f"is not supported (supported: {', '.join(allowed)})")
        return value

    def int(self, key: str, default: int | None = None) -> int | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise AttrError(key, value, "is not an integer")
        return int(number)

    def float(self, key: str, default: float | None = None) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise AttrError(key, value, "is not a number") from None

    def bool(self, key: str, default: bool = False) -> bool:
        value = self._get(key)
        if value is None:
            return default
        low = value.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise AttrError(key, value, "is not a boolean")

    def ints(self, key: str, default: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        """``"(3, 3)"``, ``"[3,3]"``, ``"3"``, ``"(3,)"`` or ``"()"``."""
        items = self.opt_ints(key)
        if items is None:
            return default
        if any(v is None for v in items):
            raise AttrError(key, self.raw[key], "must not contain None")
        return tuple(int(v) for v in items)  # type: ignore[arg-type]

    def opt_ints(self, key: str) -> tuple[int | None, ...] | None:
        """A tuple that may hold None entries (slice bounds)."""
        value = self._get(key)
        if value is None:
            return None
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise AttrError(key, value, "is not a tuple of integers") from None
        items = parsed if isinstance(parsed, (tuple, list)) else (parsed,)
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in items):
            raise AttrError(key, value, "is not a tuple of integers")
        return tuple(items)

    def unread(self) -> list[str]:
        """Attributes no converter looked at, other than harmless training/GPU settings."""
        return sorted(k for k in self.raw if k not in self.read and k not in HARMLESS_ATTRS
                      and not _HARMLESS_RE.search(k))

