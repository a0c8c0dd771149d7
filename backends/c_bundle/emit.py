"""The C kernel registry and what a kernel sees when it writes one node's function.

A kernel is registered per canonical op and precision (``"float"`` for float32, ``"int8"`` for TFLite's
integer scheme) with :func:`kernel`. It receives an :class:`EmitContext` and returns the C statements
of the node's function body; the bundle writer wraps them in
``static void nodeN_op(uint8_t *arena)`` and declares, for the names the body uses:

- ``in0``, ``in1``, ...: ``const T *`` to input i (in the arena, or the weight array of a constant input);
- ``out0``, ``out1``, ...: ``T *`` to output i in the arena;
- ``scratch``: ``uint8_t *`` to the bytes asked for with :meth:`EmitContext.scratch` (live only
  during this node).

Shapes, quantization constants and loop bounds are baked in as literals by the kernel. Weights a kernel
transforms (bias with the input zero point folded in, a look-up table) become ``const`` arrays with
:meth:`EmitContext.weight`. Kernels keep to C99 with ``<stdint.h>`` types, no stdio and no malloc, and
in int8 mode no floating point at all (a Cortex-M0 build checks the linked symbols).

``inplace``: the output may share input 0's buffer (the kernel reads element i before writing it, and
never reads an element after writing an earlier one). ``view``: the op only reinterprets its input
(Reshape, Flatten, ...): no code, the output *is* the input's buffer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.canonical_ir.quantize.base import QType
from convertkit.errors import ExportError

CTYPES = {np.dtype(np.float32): "float", np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t",
          np.dtype(np.int16): "int16_t", np.dtype(np.int32): "int32_t", np.dtype(np.int64): "int64_t",
          np.dtype(np.bool_): "uint8_t"}


def ctype(dtype: Any) -> str:
    dt = np.dtype(dtype)
    if dt not in CTYPES:
        raise ExportError(f"the C bundle has no C type for {dt}")
    return CTYPES[dt]


@dataclass
class TensorRef:
    """One input or output of the node being written."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quant: QType | None
    value: np.ndarray | None = None
    """The constant's value (weights), else None."""

    @property
    def ctype(self) -> str:
        return ctype(self.dtype)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


EmitFn = Callable[["EmitContext"], str]
CheckFn = Callable[[Graph, Node], "str | None"]


@dataclass(frozen=True)
class Kernel:
    op: str
    precision: str
    emit: EmitFn | None
    check: CheckFn | None = None
    inplace: bool = False
    view: bool = False


KERNELS: dict[tuple[str, str], list[Kernel]] = {}
"""(op, precision) -> its kernels, tried in registration order: the first whose check passes writes
the node (e.g. int8 QuantizeLinear: the requantizing table for int8 input, the float edge for float)."""
PRECISIONS = ("float", "int8")


def kernel(*ops: str, precision: str, check: CheckFn | None = None, inplace: bool = False,
           view: bool = False) -> Callable[[EmitFn], EmitFn]:
    """Register ``fn(ctx) -> C body`` as a kernel of ``ops`` in ``precision`` ("float" or "int8")."""
    precisions = PRECISIONS if precision == "any" else (precision,)

    def deco(fn: EmitFn) -> EmitFn:
        for op in ops:
            for p in precisions:
                KERNELS.setdefault((op, p), []).append(Kernel(op, p, fn, check, inplace, view))
        return fn
    return deco


def view_kernel(*ops: str) -> None:
    """Ops that only reinterpret their input's bytes: no code in either precision."""
    for op in ops:
        for p in PRECISIONS:
            KERNELS.setdefault((op, p), []).append(Kernel(op, p, None, None, False, True))


def node_precision(graph: Graph, node: Node) -> str:
    """"int8" if the node computes on quantized tensors (TFLite's integer scheme), else "float"."""
    outs = graph.outputs_of(node)
    ins = [t for t in graph.inputs_of(node) if t is not None]
    for name in [*outs[:1], *ins[:1]]:
        if QType.of(graph.tensor(name)) is not None:
            return "int8"
    return "float"


def find_kernel(graph: Graph, node: Node) -> tuple[Kernel | None, str | None]:
    """The node's kernel (the first registered one whose check passes), or None and why there is none."""
    precision = node_precision(graph, node)
    candidates = KERNELS.get((node.op, precision), [])
    if not candidates:
        return None, f"no {precision} C kernel for {node.op}"
    reasons = []
    for k in candidates:
        why = k.check(graph, node) if k.check is not None else None
        if why is None:
            return k, None
        reasons.append(why)
    return None, "; ".join(dict.fromkeys(reasons))


def fmt_array(values: np.ndarray, per_line: int = 16) -> str:
    """A C initializer list body; floats as exact hexadecimal literals."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.float32:
        items = [_float_literal(v) for v in flat.tolist()]
    else:
        items = [str(int(v)) if v != -2**31 else "(-2147483647 - 1)" for v in flat.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


def _float_literal(v: float) -> str:
    if v != v:
        return "(0.0f / 0.0f)"
    if v in (float("inf"), float("-inf")):
        return "(1.0f / 0.0f)" if v > 0 else "(-1.0f / 0.0f)"
    return float(np.float32(v)).hex() + "f"


def flit(v: float) -> str:
    """A float32 literal for C code (exact)."""
    return _float_literal(float(np.float32(v)))


@dataclass
class Weight:
    symbol: str
    ctype: str
    values: np.ndarray


@dataclass
class WeightTable:
    """The ``const`` arrays of a bundle, deduplicated by content."""

    prefix: str = "model_w"
    arrays: list[Weight] = field(default_factory=list)
    _by_key: dict[tuple, str] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def add(self, values: np.ndarray, hint: str, ctype_: str | None = None) -> str:
        values = np.ascontiguousarray(values)
        ct = ctype_ or ctype(values.dtype)
        key = (ct, values.shape, values.tobytes())
        if key in self._by_key:
            return self._by_key[key]
        base = f"{self.prefix}_{_ident(hint)}"[:60]
        sym, i = base, 1
        while sym in self._names:
            i += 1
            sym = f"{base}_{i}"
        self._names.add(sym)
        self._by_key[key] = sym
        self.arrays.append(Weight(sym, ct, values))
        return sym

    @property
    def nbytes(self) -> int:
        return sum(int(w.values.nbytes) for w in self.arrays)


def _ident(text: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", text).strip("_").lower()
    return re.sub(r"_+", "_", s) or "t"


class EmitContext:
    """What a kernel knows about its node, and how it adds weights and scratch memory."""

    def __init__(self, graph: Graph, node: Node, weights: WeightTable) -> None:
        self.graph, self.node, self.weights = graph, node, weights
        self.attrs: dict[str, Any] = dict(node.attrs)
        self.inputs: list[TensorRef | None] = [self._ref(t) if t is not None else None
                                               for t in graph.inputs_of(node)]
        self.outputs: list[TensorRef] = [self._ref(t) for t in graph.outputs_of(node)]
        self.scratch_bytes = 0

    def _ref(self, name: str) -> TensorRef:
        t = self.graph.tensor(name)
        if not t.is_static:
            raise ExportError(f"tensor {name!r} has a symbolic shape {list(t.shape or ())}",
                              hint="the C bundle needs static shapes: fix the inputs with --inputs NAME=1x...")
        return TensorRef(name, tuple(int(d) for d in t.shape), np.dtype(t.dtype), QType.of(t), t.value)

    def weight(self, values: np.ndarray, hint: str = "", ctype_: str | None = None) -> str:
        """A ``const`` array in ``model_weights.c`` holding ``values``; returns its C name."""
        return self.weights.add(values, f"{self.node.name}_{hint}" if hint else self.node.name, ctype_)

    def scratch(self, nbytes: int) -> str:
        """Ask for ``nbytes`` of scratch arena for this node; the body refers to it as ``scratch``."""
        self.scratch_bytes = max(self.scratch_bytes, int(nbytes))
        return "scratch"

    def input_value(self, i: int) -> np.ndarray | None:
        ref = self.inputs[i] if i < len(self.inputs) else None
        return None if ref is None else ref.value

    def fail(self, why: str) -> ExportError:
        return ExportError(f"{self.node.op} node {self.node.name!r}: {why}")


@dataclass
class NodeCode:
    """A node's written function, before arena offsets are known."""

    node: Node
    kernel: Kernel
    body: str
    inputs: list[TensorRef | None]
    outputs: list[TensorRef]
    scratch_bytes: int = 0
    const_inputs: dict[int, str] = field(default_factory=dict)
    """Port -> weight array of each constant input the body reads as ``inN``."""


def emit_node(graph: Graph, node: Node, kernel_: Kernel, weights: WeightTable) -> NodeCode:
    """Write the node's body, and put the constant inputs it reads as ``inN`` into the weights."""
    ctx = EmitContext(graph, node, weights)
    body = (kernel_.emit(ctx) if kernel_.emit is not None else "").strip("\n")
    consts = {}
    for i, ref in enumerate(ctx.inputs):
        if ref is not None and ref.value is not None and uses(body, f"in{i}"):
            value = ref.value if ref.value.dtype != np.bool_ else ref.value.astype(np.uint8)
            consts[i] = weights.add(value, f"{node.name}_in{i}")
    return NodeCode(node, kernel_, body, ctx.inputs, ctx.outputs, ctx.scratch_bytes, consts)


def uses(body: str, name: str) -> bool:
    return re.search(rf"\b{name}\b", body) is not None
