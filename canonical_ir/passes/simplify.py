"""Shape-op simplification: transposes merged, reshape/squeeze chains collapsed, no-ops removed.

Reshape-like ops (Reshape, Flatten, Squeeze, Unsqueeze) only relabel a row-major buffer, so any chain
of them is one Reshape from the first input to the last output; a Transpose that only moves size-1
axes is such a relabelling too. Transposes compose, and a constant's transpose is folded at once,
which is what makes weight transposes free after a layout change.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from convertkit.canonical_ir.graph import Node
from convertkit.canonical_ir.passes.rewrite import Rewriter, Rule, apply_rules

Perm = list[int]
RESHAPE_LIKE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


# ------------------------------------------------------------------------------------- perms
def compose(first: Sequence[int], then: Sequence[int]) -> Perm:
    """The perm of Transpose(Transpose(x, first), then)."""
    return [int(first[i]) for i in then]


def inverse(perm: Sequence[int]) -> Perm:
    return [int(i) for i in np.argsort(perm)]


def is_identity(perm: Sequence[int]) -> bool:
    return all(int(a) == i for i, a in enumerate(perm))


def perm_of(rw: Rewriter, node: Node) -> Perm:
    """A Transpose's perm, the reversal when unset (ONNX's default)."""
    perm = node.attrs.get("perm")
    if perm is None:
        return list(range(len(rw.shape(rw.input(node, 0))) - 1, -1, -1))
    return [int(p) for p in perm]


# ------------------------------------------------------------------------------ reshape specs
def dims_equal(a: Sequence, b: Sequence) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b))


def reshape_spec(src: Sequence, dst: Sequence) -> list[int] | None:
    """A Reshape shape input turning ``src`` into exactly ``dst`` (symbolic dims kept), or None.

    Integers are written as they are, a symbolic dim at the index it already has in ``src`` as 0
    (copy), and at most one other symbolic dim as -1; empty tensors are left alone.
    """
    if any(d == 0 for d in dst if isinstance(d, int)):
        return None
    spec: list[int] = []
    for i, d in enumerate(dst):
        if isinstance(d, int):
            spec.append(d)
        elif i < len(src) and src[i] == d:
            spec.append(0)
        else:
            spec.append(-1)
    return spec if spec.count(-1) <= 1 else None


def _product(dims: Sequence) -> int | str | None:
    """The product of dims as an int, or the one symbolic dim when all others are 1, else None."""
    syms = [d for d in dims if not isinstance(d, int)]
    ints = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
    if not syms:
        return ints
    return syms[0] if len(syms) == 1 and ints == 1 else None


def flatten_axis_for(src: Sequence, dst: Sequence) -> int | None:
    """An axis k such that Flatten(x, k) of a ``src``-shaped x has shape ``dst``, or None."""
    if len(dst) != 2:
        return None
    for k in range(len(src) + 1):
        left, right = _product(src[:k]), _product(src[k:])
        if left is not None and right is not None and left == dst[0] and right == dst[1]:
            return k
    return None


def write_reshape(rw: Rewriter, x: str, dst: Sequence, name: str,
                  outputs: Sequence[str] | None = None) -> list[str] | None:
    """Add the simplest op reshaping ``x`` into ``dst`` (Flatten where it fits, else Reshape), or None."""
    src = rw.shape(x)
    k = flatten_axis_for(src, dst)
    if k is not None:
        return rw.add("Flatten", [x], {"axis": k}, name=name, outputs=outputs)
    spec = reshape_spec(src, dst)
    if spec is None:
        return None
    shape = rw.constant(np.array(spec, np.int64), f"{name}_shape")
    return rw.add("Reshape", [x, shape], name=name, outputs=outputs)


def can_reshape(src: Sequence, dst: Sequence) -> bool:
    return flatten_axis_for(src, dst) is not None or reshape_spec(src, dst) is not None


def _reshape_like(rw: Rewriter, node: Node) -> bool:
    """A relabelling of its input 0: shape inputs constant (or known from the inferred output)."""
    if node.op not in RESHAPE_LIKE:
        return False
    if node.op == "Reshape":
        return rw.const(node, 1) is not None or rw.shape(rw.graph.outputs_of(node)[0]) is not None
    if node.op in ("Squeeze", "Unsqueeze"):
        return rw.input(node, 1) is None or rw.const(node, 1) is not None
    return True


# ------------------------------------------------------------------------------------- rules
class MergeTransposes(Rule):
    """Transpose of a Transpose is one Transpose (none if they cancel); of a constant, a constant."""

    ops = frozenset({"Transpose"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        x = rw.input(node, 0)
        out = rw.graph.outputs_of(node)[0]
        if rw.graph.tensor(x).is_const:
            return None
        if is_identity(perm_of(rw, node)):
            return None if rw.can_substitute(out, x) else "output name must stay distinct from its input"
        first = rw.producer_op(x)
        if first is None or first.op != "Transpose":
            return "input is not a Transpose or a constant"
        composed = compose(perm_of(rw, first), perm_of(rw, node))
        if is_identity(composed) and not rw.can_substitute(out, rw.input(first, 0)):
            return "the transposes cancel but the output name must stay distinct"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        x = rw.input(node, 0)
        out = rw.graph.outputs_of(node)[0]
        value = rw.graph.const_value(x)
        if value is not None:
            rw.fold(node, [np.transpose(value, perm_of(rw, node))])
            return
        perm = perm_of(rw, node)
        if is_identity(perm):
            rw.bypass(node)
            return
        first = rw.producer_op(x)
        composed = compose(perm_of(rw, first), perm)
        if is_identity(composed):
            rw.substitute(out, rw.input(first, 0))
        else:
            rw.replace(node, "Transpose", [rw.input(first, 0)], {"perm": composed})


class DropNoopReshape(Rule):
    """A reshape-like op whose output shape equals its input shape does nothing."""

    ops = RESHAPE_LIKE

    def check(self, rw: Rewriter, node: Node) -> str | None:
        if not _reshape_like(rw, node):
            return "shape is only known at run time"
        x, out = rw.input(node, 0), rw.graph.outputs_of(node)[0]
        if not dims_equal(rw.shape(x), rw.shape(out)):
            return "output shape differs from input shape"
        symbolic = any(isinstance(d, str) for d in rw.shape(x))
        if symbolic and node.op == "Reshape" and rw.const(node, 1) is None:
            return "run-time shape with symbolic dims"
        return None if rw.can_substitute(out, x) else "output name must stay distinct from its input"

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        rw.bypass(node)


class CollapseReshapes(Rule):
    """A reshape-like op fed by another (used only there) becomes one reshape of the first input."""

    ops = RESHAPE_LIKE

    def check(self, rw: Rewriter, node: Node) -> str | None:
        x = rw.input(node, 0)
        first = rw.producer_op(x)
        if first is None or not _reshape_like(rw, first) or not _reshape_like(rw, node):
            return "input is not produced by a static reshape-like op"
        if not rw.single_use(x):
            return "the first reshape has other uses"
        src, dst = rw.shape(rw.input(first, 0)), rw.shape(rw.graph.outputs_of(node)[0])
        return None if can_reshape(src, dst) else f"{list(src)} -> {list(dst)} is not expressible statically"

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        first = rw.producer_op(rw.input(node, 0))
        src = rw.input(first, 0)
        out = rw.graph.outputs_of(node)[0]
        dst = rw.shape(out)
        name = node.name
        rw.graph.remove_node(node, keep_outputs=True)
        write_reshape(rw, src, dst, name, outputs=[out])
        rw.drop_if_dead(rw.graph.outputs_of(first)[0])


class TransposeAsReshape(Rule):
    """A Transpose that keeps the order of every axis longer than 1 only relabels: a Reshape."""

    ops = frozenset({"Transpose"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        x = rw.input(node, 0)
        shape = rw.shape(x)
        moved = [a for a in perm_of(rw, node) if shape[a] != 1]
        if moved != sorted(moved):
            return "it reorders axes longer than 1"
        if not can_reshape(shape, rw.shape(rw.graph.outputs_of(node)[0])):
            return "the reshape is not expressible statically"
        return None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        x, out, name = rw.input(node, 0), rw.graph.outputs_of(node)[0], node.name
        dst = rw.shape(out)
        rw.graph.remove_node(node, keep_outputs=True)
        write_reshape(rw, x, dst, name, outputs=[out])


class ShuffleToGather(Rule):
    """Reshape (split an axis into g x c) -> swap those two -> Reshape back is a channel shuffle:
    one Gather along that axis, which a layout change passes through with an axis remap."""

    ops = frozenset({"Reshape"})

    def check(self, rw: Rewriter, node: Node) -> str | None:
        t = rw.producer_op(rw.input(node, 0))
        if t is None or t.op != "Transpose" or not rw.single_use(rw.input(node, 0)):
            return "input is not a single-use Transpose"
        first = rw.producer_op(rw.input(t, 0))
        if first is None or first.op != "Reshape" or not rw.single_use(rw.input(t, 0)):
            return "the Transpose does not read a single-use Reshape"
        return self._axis(rw, node, t, first)[1]

    @staticmethod
    def _axis(rw: Rewriter, node: Node, t: Node, first: Node) -> tuple[int, str | None]:
        src = rw.shape(rw.input(first, 0))
        mid = rw.shape(rw.input(t, 0))
        if not dims_equal(rw.shape(rw.graph.outputs_of(node)[0]), src) or len(mid) != len(src) + 1:
            return -1, "not a split of one axis and back"
        perm = perm_of(rw, t)
        swapped = [i for i, p in enumerate(perm) if p != i]
        if len(swapped) != 2 or swapped[1] != swapped[0] + 1:
            return -1, "the Transpose does not swap two neighbouring axes"
        a = swapped[0]
        if not (dims_equal(mid[:a], src[:a]) and dims_equal(mid[a + 2:], src[a + 1:])
                and isinstance(src[a], int) and isinstance(mid[a], int) and isinstance(mid[a + 1], int)
                and mid[a] * mid[a + 1] == src[a]):
            return -1, "the Reshape does not split the swapped axes out of one"
        return a, None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        t = rw.producer_op(rw.input(node, 0))
        first = rw.producer_op(rw.input(t, 0))
        a, _ = self._axis(rw, node, t, first)
        g, c = rw.shape(rw.input(t, 0))[a:a + 2]
        idx = rw.constant(np.arange(g * c, dtype=np.int64).reshape(g, c).T.reshape(-1), f"{node.name}_order")
        rw.replace(node, "Gather", [rw.input(first, 0), idx], {"axis": a})


class ShuffleIntoQuantizedConstant(Rule):
    """Transpose/Reshape of DequantizeLinear(an integer constant): the shuffle moves into the constant
    (DequantizeLinear's axis follows), so quantized weights stay integer constants in the target's
    layout instead of a run-time shuffle of dequantized values."""

    ops = frozenset({"Transpose", "Reshape"})

    def _new_axis(self, rw: Rewriter, node: Node, dq: Node) -> int | None | str:
        scale = rw.const(dq, 1)
        if scale is None or np.asarray(scale).size == 1:
            return None
        src = rw.shape(rw.input(dq, 0))
        axis = int(rw.attrs(dq)["axis"]) % len(src)
        if node.op == "Transpose":
            return perm_of(rw, node).index(axis)
        dst = rw.shape(rw.graph.outputs_of(node)[0])
        before = int(np.prod(src[:axis], dtype=np.int64))
        for j, d in enumerate(dst):
            if d == src[axis] and int(np.prod(dst[:j], dtype=np.int64)) == before:
                return j
        return "the reshape splits or merges the quantization axis"

    def check(self, rw: Rewriter, node: Node) -> str | None:
        dq = rw.producer_op(rw.input(node, 0))
        if dq is None or dq.op != "DequantizeLinear" or not rw.single_use(rw.input(node, 0)):
            return "input is not a single-use DequantizeLinear"
        x = rw.const(dq, 0)
        if x is None or rw.const(dq, 1) is None or rw.attrs(dq).get("block_size"):
            return "not a per-tensor/per-axis DequantizeLinear of constants"
        if not rw.graph.tensor(rw.graph.outputs_of(node)[0]).is_static:
            return "the output shape is not static"
        axis = self._new_axis(rw, node, dq)
        return axis if isinstance(axis, str) else None

    def rewrite(self, rw: Rewriter, node: Node) -> None:
        dq = rw.producer_op(rw.input(node, 0))
        x = rw.const(dq, 0)
        axis = self._new_axis(rw, node, dq)
        out_shape = tuple(rw.shape(rw.graph.outputs_of(node)[0]))
        value = np.transpose(x, perm_of(rw, node)) if node.op == "Transpose" else x.reshape(out_shape)
        attrs = dict(dq.attrs)
        if axis is not None:
            attrs["axis"] = axis
        ins = [rw.constant(np.ascontiguousarray(value), f"{node.name}_q"), *rw.graph.inputs_of(dq)[1:]]
        rw.replace(node, "DequantizeLinear", ins, attrs)


SIMPLIFY_RULES: tuple[Rule, ...] = (MergeTransposes(), DropNoopReshape(), CollapseReshapes(),
                                    ShuffleToGather(), ShuffleIntoQuantizedConstant())


def simplify_shapes(graph) -> bool:
    """Merge transposes, collapse reshape/squeeze chains, drop no-op reshapes, shuffles to Gather."""
    return apply_rules(graph, SIMPLIFY_RULES) > 0
