"""The op registry: one schema per canonical op, with its shape/dtype inference and numpy kernel.

An op is declared once, next to its kernel::

    @register("LeakyRelu", inputs=["X"], attrs={"alpha": 0.01}, infer=same_as(0))
    def leaky_relu(x, alpha):
        return np.where(x >= 0, x, x * x.dtype.type(alpha))

Input names ending in ``?`` are optional, a trailing ``*`` is variadic (one or more). Kernels receive
inputs positionally (None for an absent optional input) and attributes as keywords with defaults
filled in; they return one array or a tuple of arrays. Canonical ops follow the semantics of the
newest ONNX version of the op of the same name, plus an explicit ``layout`` ("NCHW"/"NHWC") on
spatial ops; where an op differs from ONNX its docstring says so.

The same op on quantized tensors (integer tensors with ``Tensor.quant``) has TFLite's integer
semantics; its integer kernel is attached to the op's one schema with :func:`register_quantized`
(the kernels live in ``canonical_ir/quantize/``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from convertkit.errors import ShapeError

REQUIRED = object()
"""Default for an attribute that has none: the frontend must set it."""

TensorType = tuple[np.dtype, tuple]
"""(dtype, shape) of one output, as inference returns it."""

FUSED_ACTIVATION = "fused_activation"
"""Optional attribute of the ops in ``FUSABLE``: an activation applied to output 0 in the same step, as
TFLite's and the C bundle's kernels do. Its value is ``(op, *params)`` with the activation op's
attributes in schema order (``("Relu",)``, ``("LeakyRelu", 0.1)``) or Clip's bounds
(``("Clip", 0.0, 6.0)``). Only passes for targets that fuse set it (``passes/fusion.py``); legalization
splits it back out for the others."""

FUSABLE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div",
                     "AveragePool", "MaxPool", "Concat"})


@dataclass
class OpSchema:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]
    infer: Callable[["InferContext"], list[TensorType]]
    kernel: Callable[..., Any]
    macs: Callable[["InferContext"], int] | None = None
    doc: str = ""
    family: str = ""
    spatial: bool = False
    """Has a ``layout`` attribute (NCHW or NHWC) that the layout pass may rewrite."""
    pass_num_outputs: bool = False
    """The kernel gets ``num_outputs=`` (for ops whose output count is set by the node)."""
    qkernel: Callable[..., Any] | None = None
    """Integer kernel ``(inputs, in_quants, out_quants, attrs) -> outputs`` run when the node's tensors
    are quantized (see :func:`register_quantized`); None: the op has no quantized form."""

    # ---- arity
    def _bounds(self, names: Sequence[str]) -> tuple[int, int | None]:
        required = sum(1 for n in names if not n.endswith(("?", "*")))
        upper = None if names and names[-1].endswith("*") else len(names)
        return required, upper

    def optional_input(self, port: int) -> bool:
        if port < len(self.inputs):
            return self.inputs[port].endswith("?")
        return False

    def check_arity(self, inputs: Sequence[str | None], n_outputs: int) -> str | None:
        """Why these inputs/outputs do not fit the schema, or None if they do."""
        lo, hi = self._bounds(self.inputs)
        present = len(inputs)
        if present < lo or (hi is not None and present > hi):
            return f"takes {lo}{'' if hi == lo else '+' if hi is None else f'..{hi}'} inputs, got {present}"
        for port, t in enumerate(inputs):
            if t is None and not self.optional_input(port):
                return f"required input {port} ({self.inputs[min(port, len(self.inputs) - 1)]}) is absent"
        olo, ohi = self._bounds(self.outputs)
        if n_outputs < max(olo, 1) or (ohi is not None and n_outputs > ohi):
            return f"has {n_outputs} outputs, schema allows {olo}..{ohi if ohi is not None else 'n'}"
        return None

    def evaluate(self, inputs: Sequence[Any], attrs: dict[str, Any], n_outputs: int) -> list[np.ndarray]:
        """Run the kernel: absent trailing optional inputs are passed as None, so kernels need not
        default them; the result is always a list of arrays."""
        args = list(inputs)
        if not (self.inputs and self.inputs[-1].endswith("*")):
            args += [None] * (len(self.inputs) - len(args))
        act = attrs.get(FUSED_ACTIVATION)
        if FUSED_ACTIVATION in attrs:
            attrs = {k: v for k, v in attrs.items() if k != FUSED_ACTIVATION}
        if self.pass_num_outputs:
            attrs = {**attrs, "num_outputs": n_outputs}
        result = self.kernel(*args, **attrs)
        outs = [np.asarray(o) for o in (list(result) if isinstance(result, (tuple, list)) else [result])]
        if act is not None:
            outs[0] = apply_activation(outs[0], act)
        return outs

    # ---- attributes
    def resolve_attrs(self, attrs: dict[str, Any], where: str = "") -> dict[str, Any]:
        """Attributes with defaults filled in; unknown or missing required ones raise ShapeError."""
        unknown = set(attrs) - set(self.attrs) - ({FUSED_ACTIVATION} if self.name in FUSABLE else set())
        if unknown:
            raise ShapeError(f"{self.name} has no attribute(s) {sorted(unknown)}", where=where or None)
        out = {}
        for key, default in self.attrs.items():
            if key in attrs:
                out[key] = attrs[key]
            elif default is REQUIRED:
                raise ShapeError(f"{self.name} needs attribute {key!r}", where=where or None)
            else:
                out[key] = default
        if attrs.get(FUSED_ACTIVATION) is not None:
            out[FUSED_ACTIVATION] = attrs[FUSED_ACTIVATION]
        return out


def apply_activation(y: np.ndarray, act: Sequence[Any]) -> np.ndarray:
    """Apply a fused activation ``(op, *params)`` (see ``FUSED_ACTIVATION``) with that op's kernel."""
    op, *params = act
    schema = _REGISTRY[op]
    if op == "Clip":
        bounds = [None if v is None else np.asarray(v, y.dtype) for v in (params + [None, None])[:2]]
        return schema.evaluate([y, *bounds], {}, 1)[0]
    attrs = schema.resolve_attrs(dict(zip(schema.attrs, params)))
    return schema.evaluate([y], attrs, 1)[0]


_REGISTRY: dict[str, OpSchema] = {}


def register(name: str, *, inputs: Sequence[str] = ("X",), outputs: Sequence[str] = ("Y",),
             attrs: dict[str, Any] | None = None, infer: Callable | None = None,
             macs: Callable | None = None, spatial: bool = False,
             pass_num_outputs: bool = False) -> Callable:
    """Decorator declaring a canonical op whose reference kernel is the decorated function."""
    if infer is None:
        raise TypeError(f"op {name}: an infer function is required")

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise TypeError(f"op {name} registered twice")
        all_attrs = dict(attrs or {})
        if spatial:
            all_attrs.setdefault("layout", "NCHW")
        _REGISTRY[name] = OpSchema(
            name=name, inputs=tuple(inputs), outputs=tuple(outputs), attrs=all_attrs, infer=infer,
            kernel=fn, macs=macs, doc=(fn.__doc__ or "").strip(), family=fn.__module__.rsplit(".", 1)[-1],
            spatial=spatial, pass_num_outputs=pass_num_outputs)
        return fn

    return deco


def alias(name: str, of: str, kernel: Callable | None = None, **overrides: Any) -> None:
    """Register ``name`` with the schema of ``of`` (e.g. ops that differ only in their kernel)."""
    base = _REGISTRY[of]
    fields = dict(base.__dict__)
    fields.update(name=name, **overrides)
    if kernel is not None:
        fields["kernel"] = kernel
    _REGISTRY[name] = OpSchema(**fields)


def register_quantized(op_name: str, *, real_valued_infer: bool = True) -> Callable:
    """Decorator attaching an integer kernel to the already registered op ``op_name``.

    The kernel is called as ``fn(inputs, in_quants, out_quants, attrs)``: input arrays by port (None for
    absent ones, as for float kernels), the quantization of each input and output (a
    ``quantize.base.QType``, or None for a tensor that is not quantized), and the resolved attributes; it
    returns a list of arrays. With ``real_valued_infer`` the op's shape inference sees quantized inputs
    as the float32 values they stand for (so float-only inference rules accept them) and keeps the
    declared storage dtype of quantized outputs.
    """
    def deco(fn: Callable) -> Callable:
        schema = get_schema(op_name)
        if schema.qkernel is not None:
            raise TypeError(f"op {op_name}: integer kernel registered twice")
        schema.qkernel = fn
        if real_valued_infer:
            schema.infer = _real_valued_infer(schema.infer)
        return fn

    return deco


def _is_quantized(t: Any) -> bool:
    return t is not None and t.quant is not None and t.dtype is not None and t.dtype.kind in "iu"


def _real_valued_infer(infer: Callable[["InferContext"], list[TensorType]]) -> Callable:
    """``infer`` run with quantized inputs seen as float32; quantized outputs keep their storage dtype."""
    def wrapped(ctx: "InferContext") -> list[TensorType]:
        ins = [ctx.graph.tensor(n) if n is not None else None for n in ctx.input_names]
        quantized = [t for t in ins if _is_quantized(t)]
        if not quantized:
            return infer(ctx)
        view = copy.copy(ctx)
        view.__class__ = _RealValuedContext
        types = infer(view)
        names = ctx.graph.outputs_of(ctx.node)
        out = []
        for i, (dt, shape) in enumerate(types):
            t = ctx.graph.tensor(names[i]) if i < len(names) else None
            if t is not None and t.quant is not None:
                dt = t.dtype if t.dtype is not None else quantized[0].dtype
            out.append((dt, shape))
        return out
    wrapped.__wrapped__ = infer  # type: ignore[attr-defined]
    wrapped.__doc__ = infer.__doc__
    return wrapped


def get_schema(op: str) -> OpSchema:
    try:
        return _REGISTRY[op]
    except KeyError:
        raise KeyError(f"op {op!r} is not in the canonical op set") from None


def has_op(op: str) -> bool:
    return op in _REGISTRY


def all_schemas() -> dict[str, OpSchema]:
    return dict(sorted(_REGISTRY.items()))


# ------------------------------------------------------------------------------------ inference
class InferContext:
    """What an infer (or macs) function may look at: input types, constant values, attributes."""

    def __init__(self, graph: Any, node: Any, schema: OpSchema) -> None:
        self.graph = graph
        self.node = node
        self.schema = schema
        self.input_names = graph.inputs_of(node)
        self.n_outputs = len(graph.outputs_of(node))
        self.attrs = schema.resolve_attrs(node.attrs, where=f"node {node.name}")
        self._new_dims = 0

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    def has(self, i: int) -> bool:
        return i < len(self.input_names) and self.input_names[i] is not None

    def _t(self, i: int):
        if not self.has(i):
            raise ShapeError(f"{self.schema.name} input {i} is absent", where=f"node {self.node.name}")
        return self.graph.tensor(self.input_names[i])

    def dtype(self, i: int) -> np.dtype:
        dt = self._t(i).dtype
        if dt is None:
            raise ShapeError(f"dtype of input {i} ({self.input_names[i]}) is unknown",
                             where=f"node {self.node.name}")
        return dt

    def shape(self, i: int) -> tuple:
        s = self._t(i).shape
        if s is None:
            raise ShapeError(f"shape of input {i} ({self.input_names[i]}) is unknown",
                             where=f"node {self.node.name}")
        return s

    def rank(self, i: int) -> int:
        return len(self.shape(i))

    def value(self, i: int) -> np.ndarray | None:
        """Constant value of input i, or None if it is absent or only known at run time."""
        return self._t(i).value if self.has(i) else None

    def require_value(self, i: int, what: str) -> np.ndarray:
        v = self.value(i)
        if v is None:
            raise ShapeError(f"{self.schema.name} needs a constant {what} (input {i}) to infer its shape",
                             where=f"node {self.node.name}",
                             hint="this op's output shape depends on run-time data")
        return v

    def new_dim(self) -> str:
        """A symbolic dimension for a size only known at run time.

        Named after the node and the call's position, so inferring the same node again gives the same
        name: repeated inference settles instead of minting new names every round.
        """
        self._new_dims += 1
        return f"{self.node.name}_d{self._new_dims - 1}"

    def error(self, message: str) -> ShapeError:
        return ShapeError(message, where=f"node {self.node.name} ({self.schema.name})")


class _RealValuedContext(InferContext):
    """An InferContext in which quantized integer inputs report float32, the type of their real values."""

    def dtype(self, i: int) -> np.dtype:
        return np.dtype(np.float32) if _is_quantized(self._t(i)) else super().dtype(i)


# Small shared helpers for infer functions --------------------------------------------------------
def same_as(i: int = 0) -> Callable[[InferContext], list[TensorType]]:
    """Output has the dtype and shape of input i."""
    def infer(ctx: InferContext) -> list[TensorType]:
        return [(ctx.dtype(i), ctx.shape(i))]
    return infer


def broadcast_shapes(ctx: InferContext | None, *shapes: Sequence) -> tuple:
    """numpy broadcasting over int and symbolic dims."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = [s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0]
        known = {d for d in dims if d != 1}
        if not known:
            out.append(1)
        elif len(known) == 1:
            out.append(known.pop())
        else:
            ints = {d for d in known if isinstance(d, int)}
            if len(ints) > 1:
                msg = f"shapes {[list(s) for s in shapes]} do not broadcast"
                raise ctx.error(msg) if ctx else ShapeError(msg)
            out.append(ints.pop() if ints else (ctx.new_dim() if ctx else sorted(known)[0]))
    return tuple(out)


def broadcast(dtype_from: int | np.dtype = 0) -> Callable[[InferContext], list[TensorType]]:
    """Elementwise over all inputs with numpy broadcasting; dtype of input ``dtype_from`` or given."""
    def infer(ctx: InferContext) -> list[TensorType]:
        shapes = [ctx.shape(i) for i in range(ctx.n_inputs) if ctx.has(i)]
        dt = ctx.dtype(dtype_from) if isinstance(dtype_from, int) else np.dtype(dtype_from)
        return [(dt, broadcast_shapes(ctx, *shapes))]
    return infer


def normalize_axis(axis: int, rank: int, ctx: InferContext | None = None) -> int:
    if not -rank <= axis < max(rank, 1):
        msg = f"axis {axis} is out of range for rank {rank}"
        raise ctx.error(msg) if ctx else ShapeError(msg)
    return axis % rank if rank else 0


def layout_channel_axis(layout: str, rank: int) -> int:
    """Index of the channel axis for a spatial layout ("NCHW" family or "NHWC" family)."""
    return 1 if layout.startswith("NC") else rank - 1


def elements(shape: Sequence) -> int:
    """Number of elements; symbolic dims count as 1 (for MAC and memory estimates)."""
    return int(np.prod([d if isinstance(d, int) else 1 for d in shape], dtype=np.int64))

