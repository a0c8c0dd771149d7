"""MXNet frontend: ``*-symbol.json`` + ``*-NNNN.params`` -> canonical IR, with no mxnet installed.

The symbol file holds the graph (any of MXNet's three JSON dialects, see :mod:`.symbol`), the params
file the weights (read with numpy, see :mod:`.params`). Variables found in the params file become
constants; the others are graph inputs, except training labels (SoftmaxOutput's), which are dropped.
MXNet stores no input shapes, so each input gets a symbolic batch and spatial size, with its rank and
channel count read off the first layer that consumes it (or given with ``input_shapes``). Every op
the IR cannot take, and every attribute value that cannot be converted faithfully, is listed in one
error.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from convertkit.canonical_ir.graph import Graph
from convertkit.errors import ModelFileError, UnsupportedOpError, UsageError
from convertkit.frontends.mxnet import handlers  # noqa: F401  (registers the converters)
from convertkit.frontends.mxnet.context import (
    CONVERTERS, LABEL_PORTS, ConvertContext, Unsupported, run_converter, weight_ports,
)
from convertkit.frontends.mxnet.params import DTYPES, read_params, split_prefixes
from convertkit.frontends.mxnet.shapes import guess_input_shape
from convertkit.frontends.mxnet.symbol import Symbol, SymNode, read_symbol

__all__ = ["load", "from_symbol", "find_files", "read_params", "read_symbol"]

BATCH = "N"
"""Name of the symbolic batch dimension of every input whose shape is not given."""


def load(path: str | os.PathLike, weights: str | os.PathLike | None = None, *,
         input_shapes: Mapping[str, Sequence[int | str | None]] | None = None) -> Graph:
    """Read an MXNet model: ``path`` is the symbol file, its prefix, or a folder holding one model.

    ``weights`` names the ``.params`` file; by default it is the one beside the symbol with the same
    prefix and the highest epoch. ``input_shapes`` fixes input shapes (None or a string for a
    symbolic dimension); by default they are derived from the graph, with symbolic batch and size.
    """
    symbol_path, params_path = find_files(path, weights)
    symbol = read_symbol(symbol_path)
    params = split_prefixes(read_params(params_path)) if params_path is not None else None
    name = re.sub(r"-symbol$", "", symbol_path.stem)
    return from_symbol(symbol, params, input_shapes=input_shapes, name=name,
                       params_source=str(params_path) if params_path else None,
                       expected_params=_expected_params(symbol_path))


def find_files(path: str | os.PathLike, weights: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(symbol file, params file or None if there is none) for a symbol path, prefix or folder."""
    p = Path(path)
    if p.is_dir():
        symbol_path = _symbol_in_folder(p)
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


def _expected_params(symbol_path: Path) -> str:
    return f"{_prefix(symbol_path)}-NNNN.params"


def _params_beside(symbol_path: Path) -> Path | None:
    """The params file of the same prefix with the highest epoch (or ``<prefix>.params``); failing
    that, the folder's only .params file if the folder holds only one symbol file."""
    prefix = _prefix(symbol_path)
    folder = symbol_path.parent
    epochs = []
    for f in folder.glob("*.params"):
        m = re.fullmatch(re.escape(prefix) + r"-(\d+)\.params", f.name)
        if m:
            epochs.append((int(m.group(1)), f))
    if epochs:
        return max(epochs)[1]
    if (folder / f"{prefix}.params").is_file():
        return folder / f"{prefix}.params"
    all_params = sorted(folder.glob("*.params"))
    symbols = [f for f in folder.glob("*.json") if f.name.endswith("-symbol.json") or f == symbol_path]
    if len(all_params) == 1 and len(symbols) == 1:
        return all_params[0]
    return None


def _symbol_in_folder(folder: Path) -> Path:
    found = sorted(folder.glob("*-symbol.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelFileError("folder holds no *-symbol.json file", where=str(folder))
    paired = [f for f in found if _params_beside(f) is not None and
              any(folder.glob(f"{glob_escape(_prefix(f))}-*.params"))]
    if len(paired) == 1:
        return paired[0]
    names = ", ".join(f.name for f in (paired or found))
    raise ModelFileError(f"folder holds several MXNet models ({names})", where=str(folder),
                         hint="pass the symbol file of the one to convert")


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# -------------------------------------------------------------------------------- conversion
def from_symbol(symbol: Symbol, params: Mapping[str, np.ndarray] | None, *,
                input_shapes: Mapping[str, Sequence[int | str | None]] | None = None, name: str = "mxnet",
                params_source: str | None = None, expected_params: str | None = None) -> Graph:
    """Convert a parsed symbol and its parameters (names without ``arg:``/``aux:``)."""
    source = symbol.source
    params = dict(params or {})
    uses = symbol.consumers()
    kinds = _classify_variables(symbol, params, uses)
    _check_weights(symbol, kinds, params, params_source, expected_params)

    g = Graph(name)
    g.metadata.update(producer="mxnet", mxnet_dialect=symbol.dialect)
    if symbol.version is not None:
        g.metadata["mxnet_version"] = symbol.version
    shapes = dict(input_shapes or {})
    unknown_inputs = set(shapes) - {n.name for n in symbol.nodes if kinds.get(n.index) == "input"}
    if unknown_inputs:
        raise UsageError(f"input_shapes names {sorted(unknown_inputs)}, which are not inputs of the model",
                         hint="inputs are " + ", ".join(n.name for n in symbol.nodes if kinds.get(n.index) == "input"))

    outputs: dict[int, list[str] | None] = {}   # node index -> its output tensors (None: not converted)
    missing: dict[str, list[str]] = {}
    for node in symbol.nodes:
        kind = kinds.get(node.index)
        if node.op == "null":
            if kind == "param":
                outputs[node.index] = [g.add_tensor(g.unique_name(node.name), value=params[node.name])]
            elif kind == "input":
                shape = shapes[node.name] if node.name in shapes else guess_input_shape(symbol, node, params, uses, BATCH)
                outputs[node.index] = [g.add_input(g.unique_name(node.name), _input_dtype(node, source),
                                                   _shape_tuple(shape, node.name))]
            else:
                outputs[node.index] = []     # a label: nothing at inference
            continue
        outputs[node.index] = _convert_node(g, node, outputs, kinds, missing, symbol)

    if missing:
        raise UnsupportedOpError("cannot convert these MXNet ops", missing, where=source,
                                 hint="ops without a converter, or attribute values with no faithful "
                                      "canonical form")
    for src, idx in symbol.heads:
        outs = outputs[src]
        if outs is None or idx >= len(outs):
            raise ModelFileError(f"output {idx} of node {symbol.nodes[src].name} is a graph output but "
                                 "does not exist", where=source)
        tensor = outs[idx]
        if tensor in g.inputs or tensor in g.outputs or g.tensor(tensor).is_const:
            src_t = g.tensor(tensor)   # an output must be a distinct, computed tensor
            copy = g.add_tensor(g.unique_name(f"{tensor}_output"), src_t.dtype, src_t.shape)
            g.add_node("Identity", [tensor], [copy])
            tensor = copy
        g.outputs.append(tensor)
    g.remove_dead()
    return g


def _convert_node(g: Graph, node: SymNode, outputs: dict[int, list[str] | None], kinds: dict[int, str],
                  missing: dict[str, list[str]], symbol: Symbol) -> list[str] | None:
    """Convert one op node; on failure record why in ``missing`` and return None (its users are
    skipped, so that one unsupported op does not hide the others)."""
    if node.op not in CONVERTERS:
        missing.setdefault(node.op, []).append(node.name)
        return None
    labels = LABEL_PORTS.get(node.op, ())
    inputs: list[str | None] = []
    for port, (src, idx) in enumerate(node.inputs):
        outs = outputs.get(src)
        if outs is None:
            return None          # an upstream op failed: already reported
        if port in labels or kinds.get(src) == "label":
            inputs.append(None)
        elif idx >= len(outs):
            missing.setdefault(f"{node.op} (uses output {idx} of {symbol.nodes[src].name})", []).append(node.name)
            return None
        else:
            inputs.append(outs[idx])
    ctx = ConvertContext(g, node, inputs, symbol.source)
    try:
        run_converter(ctx)
    except Unsupported as e:     # what it added is left dangling: the whole load fails anyway
        missing.setdefault(f"{node.op} ({e.what})", []).append(node.name)
        return None
    return ctx.outputs


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
    lacking = [n.name for n in symbol.nodes if kinds.get(n.index) == "weight"]
    if not lacking:
        return
    shown = ", ".join(lacking[:4]) + (f", +{len(lacking) - 4} more" if len(lacking) > 4 else "")
    if params_source is None:
        raise ModelFileError(f"no weights: {expected} is missing, so {len(lacking)} "
                             f"parameters ({shown}) are unknown", where=symbol.source,
                             hint="put the .params file beside the symbol file, or pass it as weights")
    have = list(params)
    held = ", ".join(have[:4]) + (f", +{len(have) - 4} more" if len(have) > 4 else "") if have else "nothing"
    raise ModelFileError(f"the parameters do not match the symbol: {len(lacking)} are missing ({shown}); "
                         f"the file holds {held}", where=params_source,
                         hint="is this the .params file of this symbol?")


def _input_dtype(node: SymNode, source: str) -> np.dtype:
    flag = node.attrs.get("__dtype__")
    if flag is None:
        return np.dtype(np.float32)
    try:
        return DTYPES[int(flag)].newbyteorder("=")
    except (ValueError, KeyError):
        raise ModelFileError(f"input {node.name} has an unknown __dtype__ {flag!r}", where=source) from None


def _shape_tuple(shape: Sequence[int | str | None], name: str) -> tuple:
    out = []
    for i, d in enumerate(shape):
        if d is None or (isinstance(d, int) and d <= 0):
            out.append(BATCH if i == 0 else f"{name}_d{i}")
        else:
            out.append(d if isinstance(d, str) else int(d))
    return tuple(out)
