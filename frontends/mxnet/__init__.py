"""MXNet frontend: ``*-symbol.json`` + ``*-NNNN.params`` -> canonical IR, with no mxnet installed.

The symbol file holds the graph (any of MXNet's three JSON dialects, see :mod:`.symbol`), the params
file the weights (read with numpy, see :mod:`.params`). Variables found in the params file become
constants; the others are graph inputs, except training labels (SoftmaxOutput's), which are dropped.
MXNet stores no input shapes, so each input gets a symbolic batch and spatial size, with its rank and
channel count read off the first layer that consumes it (or given with ``inputs``). Every op
the IR cannot take, and every attribute value that cannot be converted faithfully, is listed in one
error.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import ModelFileError, ShapeError, UnsupportedOpError, UsageError
from convertkit.frontends.mxnet import handlers  # noqa: F401  (registers the converters)
from convertkit.frontends.mxnet.context import (
    CONVERTERS,
    LABEL_PORTS,
    ConvertContext,
    Unsupported,
    run_converter,
    weight_ports,
)
from convertkit.frontends.mxnet.params import DTYPES, read_params, split_prefixes
from convertkit.frontends.mxnet.shapes import SAME_SHAPE_OPS, guess_input_shape
from convertkit.frontends.mxnet.symbol import Symbol, SymNode, read_symbol

__all__ = ["find_files", "from_symbol", "load", "read_params", "read_symbol"]

BATCH = "N"
"""Name of the symbolic batch dimension of every input whose shape is not given."""


def load(path: str | os.PathLike, weights: str | os.PathLike | None = None, *,
         inputs: Mapping[str, Sequence[int | str | None] | None] | None = None) -> Graph:
    """Read an MXNet model: ``path`` is the symbol file, its prefix, or a folder holding one model.

    ``weights`` names the ``.params`` file; by default it is the one beside the symbol with the same
    prefix and the highest epoch. ``inputs`` maps input names to shapes (a None or string entry is
    a symbolic dimension; a None shape keeps the default), as the CLI's ``--inputs data=1x3x112x112``
    gives; by default shapes are derived from the graph, with symbolic batch and sizes.
    """
    symbol_path, params_path = find_files(path, weights)
    symbol = read_symbol(symbol_path)
    params = split_prefixes(read_params(params_path)) if params_path is not None else None
    return from_symbol(symbol, params, inputs=inputs, name=_prefix(symbol_path),
                       params_source=str(params_path) if params_path else None,
                       expected_params=f"{_prefix(symbol_path)}-NNNN.params")


def find_files(path: str | os.PathLike,
               weights: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(symbol file, params file or None if there is none) for a symbol path, prefix or folder."""
    p = Path(path)
    if p.is_dir():
        symbol_path = _symbol_in_folder(p)
    elif p.suffix == ".params":
        raise ModelFileError("a .params file alone is not a model", where=str(p),
                             hint="pass the *-symbol.json file, or the folder holding both")
    elif p.is_file():
        symbol_path = p
    elif Path(f"{p}-symbol.json").is_file():  # a checkpoint prefix, as mx.model.load_checkpoint takes
        symbol_path = Path(f"{p}-symbol.json")
    else:
        raise ModelFileError("no such file, folder or MXNet checkpoint prefix", where=str(p))
    if weights is not None:
        w = Path(weights)
        if not w.is_file():
            raise ModelFileError("no such .params file", where=str(w))
        return symbol_path, w
    return symbol_path, _params_beside(symbol_path)


def _prefix(symbol_path: Path) -> str:
    return re.sub(r"(-symbol)?\.json$", "", symbol_path.name)


def _prefixed_params(symbol_path: Path) -> Path | None:
    """``<prefix>-NNNN.params`` with the highest epoch, else ``<prefix>.params``, else None."""
    prefix = _prefix(symbol_path)
    folder = symbol_path.parent
    epochs = []
    for f in folder.glob("*.params"):
        m = re.fullmatch(re.escape(prefix) + r"-(\d+)\.params", f.name)
        if m:
            epochs.append((int(m.group(1)), f.name))
    if epochs:
        return folder / max(epochs)[1]
    plain = folder / f"{prefix}.params"
    return plain if plain.is_file() else None


def _params_beside(symbol_path: Path) -> Path | None:
    """The params of the same prefix; failing that, the folder's only .params file if the folder
    holds no other symbol file (a renamed weights file still pairs up, an ambiguous one does not)."""
    found = _prefixed_params(symbol_path)
    if found is not None:
        return found
    folder = symbol_path.parent
    all_params = sorted(folder.glob("*.params"))
    symbols = [f for f in folder.glob("*.json") if f.name.endswith("-symbol.json") or f == symbol_path]
    return all_params[0] if len(all_params) == 1 and len(symbols) == 1 else None


def _symbol_in_folder(folder: Path) -> Path:
    """The folder's symbol file: the only one, or the only one with params of its prefix."""
    found = sorted(folder.glob("*-symbol.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelFileError("folder holds no *-symbol.json file", where=str(folder))
    paired = [f for f in found if _prefixed_params(f) is not None]
    if len(paired) == 1:
        return paired[0]
    names = ", ".join(f.name for f in (paired or found))
    raise ModelFileError(f"folder holds several MXNet models ({names})", where=str(folder),
                         hint="pass the symbol file of the one to convert")


# -------------------------------------------------------------------------------- conversion
def from_symbol(symbol: Symbol, params: Mapping[str, np.ndarray] | None, *,
                inputs: Mapping[str, Sequence[int | str | None] | None] | None = None,
                name: str = "mxnet", params_source: str | None = None,
                expected_params: str | None = None) -> Graph:
    """Convert a parsed symbol and its parameters (names without ``arg:``/``aux:``).

    ``params_source`` names the params file and ``expected_params`` the one that was looked for, for
    error messages."""
    params = dict(params or {})
    uses = symbol.consumers()
    kinds = _classify_variables(symbol, params, uses)
    _check_weights(symbol, kinds, params, params_source, expected_params)
    names = [n.name for n in symbol.nodes if kinds.get(n.index) == "input"]
    shapes = {k: v for k, v in (inputs or {}).items() if v is not None}
    unknown = set(inputs or {}) - set(names)
    if unknown:
        raise UsageError(f"{', '.join(sorted(unknown))}: not an input of the model (MXNet graphs can "
                         "only be given shapes, not cut)", hint=f"inputs are {', '.join(names) or 'none'}")
    return _Builder(symbol, params, kinds, uses, shapes, name, params_source).build()


class _Builder:
    """Walks the symbol's nodes in order, turning each into canonical ops."""

    def __init__(self, symbol: Symbol, params: dict[str, np.ndarray], kinds: dict[int, str],
                 uses: dict[int, list[tuple[SymNode, int]]], shapes: dict, name: str,
                 params_source: str | None) -> None:
        self.symbol, self.params, self.kinds, self.uses, self.shapes = symbol, params, kinds, uses, shapes
        self.params_source = params_source
        self.g = Graph(name)
        self.g.metadata.update(producer="mxnet", mxnet_dialect=symbol.dialect)
        if symbol.version is not None:
            self.g.metadata["mxnet_version"] = symbol.version
        self.outputs: dict[int, list[str] | None] = {}   # node -> its tensors (None: not converted)
        self.pending: dict[int, SymNode] = {}            # inputs whose shape their first user tells
        self.missing: dict[str, list[str]] = {}
        self.used: dict[int, set[int]] = {}              # node -> indices of its outputs in use
        for src, idx in [e for n in symbol.nodes for e in n.inputs] + list(symbol.heads):
            self.used.setdefault(src, set()).add(idx)

    def build(self) -> Graph:
        g, symbol = self.g, self.symbol
        for node in symbol.nodes:
            kind = self.kinds.get(node.index)
            if node.op != "null":
                self.outputs[node.index] = self._convert(node)
            elif kind == "param":
                value = self.params[node.name]
                self.outputs[node.index] = [g.add_tensor(g.unique_name(node.name), value=value)]
            elif kind == "input":
                shape = self.shapes.get(node.name) or guess_input_shape(symbol, node, self.params, self.uses)
                if shape is None:
                    self.pending[node.index] = node
                    self.outputs[node.index] = [node.name]
                else:
                    self._add_input(node, shape)
            else:
                self.outputs[node.index] = []            # a label: nothing at inference
        if self.missing:
            raise UnsupportedOpError("cannot convert these MXNet ops", self.missing, where=symbol.source,
                                     hint="ops without a converter, or attribute values with no faithful "
                                          "canonical form")
        order = {n.name: n.index for n in symbol.nodes}
        g.inputs.sort(key=lambda t: order.get(t, len(order)))   # the symbol's argument order
        for src, idx in symbol.heads:
            g.outputs.append(self._head(src, idx))
        g.remove_dead()
        return g

    def _add_input(self, node: SymNode, shape: Sequence[int | str | None]) -> None:
        name = self.g.add_input(self.g.unique_name(node.name), _input_dtype(node, self.symbol.source),
                                _shape_tuple(shape, node.name))
        self.outputs[node.index] = [name]

    def _resolve_pending(self, node: SymNode) -> None:
        """Give waiting inputs of ``node`` their shape: that of the other operand of an op whose
        operands all have one shape (elemwise_add & co), or else fail clearly."""
        waiting = [src for src, _ in node.inputs if src in self.pending]
        known = [self.outputs[src][i] for src, i in node.inputs
                 if src not in self.pending and self.outputs.get(src)]
        for src in waiting:
            pend = self.pending.pop(src)
            if node.op not in SAME_SHAPE_OPS or not known:
                raise ModelFileError(f"cannot tell the shape of input {pend.name!r} from the symbol",
                                     where=self.symbol.source,
                                     hint=f"give it, e.g. --inputs {pend.name}=1x3x224x224 "
                                          f"(inputs={{'{pend.name}': (1, 3, 224, 224)}} in Python)")
            self._add_input(pend, self.g.tensor(known[0]).shape)

    def _convert(self, node: SymNode) -> list[str] | None:
        """Convert one op node; on failure record why and return None (its users are skipped, so
        that one unsupported op does not hide the others)."""
        if node.op not in CONVERTERS:
            self.missing.setdefault(node.op, []).append(node.name)
            return None
        if any(src in self.pending for src, _ in node.inputs):
            self._resolve_pending(node)
        labels = LABEL_PORTS.get(node.op, ())
        inputs: list[str | None] = []
        for port, (src, idx) in enumerate(node.inputs):
            outs = self.outputs.get(src)
            if outs is None:
                return None          # an upstream op failed: already reported
            if port in labels or self.kinds.get(src) == "label":
                inputs.append(None)
            elif idx >= len(outs):
                key = f"{node.op} (uses output {idx} of {self.symbol.nodes[src].name})"
                self.missing.setdefault(key, []).append(node.name)
                return None
            else:
                inputs.append(outs[idx])
        ctx = ConvertContext(self.g, node, inputs, self.symbol.source, self.used.get(node.index, set()))
        try:
            run_converter(ctx)
        except Unsupported as e:     # what it added is left dangling: the whole load fails anyway
            self.missing.setdefault(f"{node.op} ({e.what})", []).append(node.name)
            return None
        except ShapeError as e:      # shapes that do not fit: say where, and suspect the weights
            hint = f"do the arrays in {self.params_source} belong to this symbol?" if self.params_source \
                else None
            raise ShapeError(e.message, where=ctx.where, hint=hint) from None
        return ctx.outputs

    def _head(self, src: int, idx: int) -> str:
        g = self.g
        outs = self.outputs.get(src)
        if src in self.pending:
            raise ModelFileError(f"input {self.symbol.nodes[src].name!r} is a graph output of unknown "
                                 "shape", where=self.symbol.source)
        if not outs or idx >= len(outs):
            raise ModelFileError(f"output {idx} of node {self.symbol.nodes[src].name} is a graph output "
                                 "but does not exist", where=self.symbol.source)
        tensor = outs[idx]
        if tensor in g.inputs or tensor in g.outputs or g.tensor(tensor).is_const:
            t = g.tensor(tensor)     # a graph output must be a distinct, computed tensor
            copy = g.add_tensor(g.unique_name(f"{tensor}_output"), t.dtype, t.shape)
            g.add_node("Identity", [tensor], [copy])
            tensor = copy
        return tensor


def _classify_variables(symbol: Symbol, params: Mapping[str, np.ndarray],
                        uses: dict[int, list[tuple[SymNode, int]]]) -> dict[int, str]:
    """Each variable is a "param" (in the params file), a "label" (only feeds loss labels), a
    "weight" (feeds a weight port but is missing from the params) or an "input"."""
    kinds: dict[int, str] = {}
    for node in symbol.nodes:
        if node.op != "null":
            continue
        consumers = uses.get(node.index, [])
        if node.name in params:
            kinds[node.index] = "param"
        elif consumers and all(port in LABEL_PORTS.get(c.op, ()) for c, port in consumers):
            kinds[node.index] = "label"
        elif any(port in weight_ports(c.op, c.attrs) for c, port in consumers):
            kinds[node.index] = "weight"
        elif consumers or any(src == node.index for src, _ in symbol.heads):
            kinds[node.index] = "input"
    return kinds


def _check_weights(symbol: Symbol, kinds: dict[int, str], params: Mapping[str, np.ndarray],
                   params_source: str | None, expected: str | None) -> None:
    """Refuse a symbol whose layers lack weights: no params file, or one for another symbol."""
    lacking = [n.name for n in symbol.nodes if kinds.get(n.index) == "weight"]
    if not lacking:
        return
    if params_source is None:
        missing = f"{expected} is missing" if expected else "none were given"
        raise ModelFileError(f"no weights: {missing}, so {len(lacking)} parameters ({_some(lacking)}) "
                             "are unknown", where=symbol.source,
                             hint="put the .params file beside the symbol file, or pass it as weights")
    raise ModelFileError(f"the parameters do not match the symbol: {len(lacking)} are missing "
                         f"({_some(lacking)}); the file holds {_some(list(params)) or 'nothing'}",
                         where=params_source, hint="is this the .params file of this symbol?")


def _some(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f", +{len(names) - n} more" if len(names) > n else "")


def _input_dtype(node: SymNode, source: str) -> np.dtype:
    flag = node.attrs.get("__dtype__")
    if flag is None:
        return np.dtype(np.float32)
    try:
        return DTYPES[int(flag)].newbyteorder("=")
    except (ValueError, KeyError):
        raise ModelFileError(f"input {node.name} has an unknown __dtype__ {flag!r}",
                             where=source) from None


def _shape_tuple(shape: Sequence[int | str | None], name: str) -> tuple:
    out = []
    for i, d in enumerate(shape):
        if d is None or (isinstance(d, int) and d <= 0):
            out.append(BATCH if i == 0 else f"{name}_d{i}")
        else:
            out.append(d if isinstance(d, str) else int(d))
    return tuple(out)
