"""Recognise the multi-op forms TensorFlow and Keras write for single canonical ops.

Each rewrite replaces a pattern's last node by one synthetic node of the same name (``_CK_*``, converted
in ``ops_nn``), so consumers are untouched; the pattern's inner nodes stay and are converted only if
something else still reads them. Rewrites are exact: the synthetic op computes what the pattern did.

* ``tf.nn.batch_normalization`` on constant statistics (what Keras 3's BatchNormalization and many
  TF1 graphs write): ``x * (rsqrt(var + eps) * gamma) + (beta - mean * (rsqrt(var + eps) * gamma))``
  -> one BatchNormalization, so gamma, beta, mean and variance stay four constants (parameter counts
  match Keras) instead of being folded into two.
* dilated convolutions written as ``SpaceToBatchND -> Conv2D/DepthwiseConv2dNative (VALID) ->
  BatchToSpaceND`` (what ``tf.nn.convolution`` emits for a dilation rate, also around Conv1D's
  ExpandDims/Squeeze) -> one convolution with dilations and explicit padding.
* hard-swish ``x * relu6(x + 3) / 6`` (and its ``* (1/6)``, clip and min/max spellings), hard-sigmoid
  ``relu6(x + 3) / 6``, GELU (erf, erfc and tanh forms), swish ``x * sigmoid(x)``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convertkit.frontends.tensorflow.tfgraph import TF_DTYPES, TFGraph, TFNode, split_ref

PASS_THROUGH = frozenset({"Identity", "Snapshot", "StopGradient", "IdentityN"})
COMMUTATIVE = frozenset({"Mul", "Add", "AddV2", "Maximum", "Minimum"})
OP_FAMILY = {"Add": ("Add", "AddV2")}

Pattern = Any
"""A pattern: a variable name (str), a number (a one-element constant of that value), a tuple
``(op, *inputs)``, ``("|", *alternatives)``, or ``("const", name)`` (any scalar float constant, its
value captured as ``env[name]``)."""


def _r6(z: Pattern) -> Pattern:
    return ("|", ("Relu6", z), ("Minimum", ("Relu", z), 6.0), ("Minimum", ("Maximum", z, 0.0), 6.0),
            ("ClipByValue", z, 0.0, 6.0))


_PLUS3 = ("Add", "x", 3.0)
HARD_SIGMOID = ("|", ("RealDiv", _r6(_PLUS3), 6.0), ("Mul", _r6(_PLUS3), 1.0 / 6.0))
HARD_SWISH = ("|", ("Mul", "x", HARD_SIGMOID), ("Mul", "x", ("_CK_HardSigmoid", "x")),
              ("RealDiv", ("Mul", "x", _r6(_PLUS3)), 6.0), ("Mul", ("Mul", "x", _r6(_PLUS3)), 1.0 / 6.0))
GELU_EXACT = ("|", ("Mul", ("Mul", 0.5, "x"), ("Erfc", ("Mul", ("Neg", "x"), 1 / math.sqrt(2)))),
              ("Mul", ("Mul", 0.5, "x"), ("Add", 1.0, ("Erf", ("|", ("RealDiv", "x", math.sqrt(2)),
                                                               ("Mul", "x", 1 / math.sqrt(2)))))))
GELU_TANH = ("Mul", ("Mul", 0.5, "x"),
             ("Add", 1.0, ("Tanh", ("Mul", math.sqrt(2 / math.pi),
                                    ("Add", "x", ("Mul", 0.044715, ("Pow", "x", 3.0)))))))
SWISH = ("Mul", "x", ("Sigmoid", ("|", "x", ("Mul", ("const", "alpha"), "x"))))

ACTIVATIONS: list[tuple[str, Pattern, dict]] = [
    ("_CK_HardSwish", HARD_SWISH, {}), ("_CK_Gelu", GELU_EXACT, {"approximate": "none"}),
    ("_CK_Gelu", GELU_TANH, {"approximate": "tanh"}), ("_CK_HardSigmoid", HARD_SIGMOID, {}),
    ("_CK_Swish", SWISH, {}),
]


class _Matcher:
    def __init__(self, g: TFGraph) -> None:
        self.g = g

    def canon(self, r: str) -> str:
        """The tensor a reference really names, through Identity-like nodes."""
        for _ in range(64):
            name, idx = split_ref(r)
            node = self.g.nodes.get(name)
            if node is None or node.op not in PASS_THROUGH or idx >= len(node.inputs):
                return r
            if node.op != "IdentityN" and idx:
                return r
            r = node.inputs[idx]
        return r

    def producer(self, r: str) -> TFNode | None:
        name, idx = split_ref(self.canon(r))
        return self.g.nodes.get(name) if idx == 0 else None

    def const(self, r: str) -> np.ndarray | None:
        """Value of a constant tensor, through identities, Reshape and Cast of constants."""
        node = self.producer(r)
        if node is None:
            return None
        if node.op == "Const":
            v = node.attrs.get("value")
            return v if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" else None
        if node.op == "Reshape" and len(node.inputs) == 2:
            v, s = self.const(node.inputs[0]), self.const(node.inputs[1])
            if v is not None and s is not None:
                try:
                    return v.reshape([int(d) for d in s.reshape(-1)])
                except ValueError:
                    return None
        if node.op == "Cast" and node.inputs:
            v = self.const(node.inputs[0])
            dst = node.attrs.get("DstT")
            if v is not None and dst is not None:
                dt = TF_DTYPES.get(dst.code)
                return v.astype(dt) if dt is not None else None
        return None

    def const_source(self, r: str) -> str:
        """Name of the Const node behind a constant-like reference (for naming its IR constant)."""
        node = self.producer(r)
        while node is not None and node.op != "Const" and node.inputs:
            node = self.producer(node.inputs[0])
        return node.name if node is not None else split_ref(r)[0]

    def match(self, pat: Pattern, r: str, env: dict[str, Any]) -> bool:
        if isinstance(pat, str):
            c = self.canon(r)
            if pat in env:
                return env[pat] == c
            env[pat] = c
            return True
        if isinstance(pat, (int, float)):
            v = self.const(r)
            # one element only: a broadcasting constant would change the result's shape
            return (v is not None and v.size == 1 and v.dtype.kind == "f"
                    and bool(np.allclose(v, pat, rtol=1e-6, atol=0)))
        if pat[0] == "const":
            v = self.const(r)
            if v is None or v.size != 1 or v.dtype.kind != "f":
                return False
            env[pat[1]] = float(v.reshape(-1)[0])
            return True
        if pat[0] == "|":
            for alt in pat[1:]:
                trial = dict(env)
                if self.match(alt, r, trial):
                    env.update(trial)
                    return True
            return False
        op, *args = pat
        node = self.producer(r)
        if node is None or node.op not in OP_FAMILY.get(op, (op,)) or len(node.inputs) != len(args):
            return False
        orders = [args, args[::-1]] if node.op in COMMUTATIVE and len(args) == 2 else [args]
        for order in orders:
            trial = dict(env)
            if all(self.match(p, i, trial) for p, i in zip(order, node.inputs)):
                env.update(trial)
                return True
        return False


def apply(g: TFGraph) -> dict[str, int]:
    """Rewrite every recognised pattern in place; returns how many of each were found."""
    m = _Matcher(g)
    found: dict[str, int] = {}
    for name in list(g.nodes):
        node = g.nodes[name]
        if node.op == "BatchToSpaceND":
            new = _atrous(m, node)
            if new:
                for n in new:
                    g.nodes[n.name] = n
                found["dilated convolution"] = found.get("dilated convolution", 0) + 1
            continue
        if node.op in ("Add", "AddV2"):
            fused = _batch_norm(m, node)
            if fused is not None:
                g.nodes[name] = fused
                found["BatchNormalization"] = found.get("BatchNormalization", 0) + 1
                continue
        if node.op not in ("Mul", "RealDiv"):
            continue
        for op, pat, attrs in ACTIVATIONS:
            env: dict[str, Any] = {}
            if m.match(pat, f"{name}:0", env):
                captured = {k: v for k, v in env.items() if isinstance(v, float)}
                g.nodes[name] = TFNode(name, op, [env["x"]], {**attrs, **captured})
                found[op] = found.get(op, 0) + 1
                break
    return found


def _batch_norm(m: _Matcher, root: TFNode) -> TFNode | None:
    """``x * S + (beta - mean * S)`` with ``S = rsqrt(var + eps) * gamma``, all but x constant."""
    if len(root.inputs) != 2:
        return None
    for a, b in (root.inputs, root.inputs[::-1]):
        mul, sub = m.producer(a), m.producer(b)
        if mul is None or sub is None or mul.op != "Mul" or sub.op != "Sub":
            continue
        beta = m.const(sub.inputs[0])
        mean_mul = m.producer(sub.inputs[1])
        if beta is None or mean_mul is None or mean_mul.op != "Mul":
            continue
        for x, s in (mul.inputs, mul.inputs[::-1]):
            scale = _scale(m, s)
            if scale is None:
                continue
            s_canon = m.canon(s)
            mean_refs = [i for i in mean_mul.inputs if m.canon(i) != s_canon]
            if len(mean_refs) != 1 or len(mean_mul.inputs) != 2:
                continue
            mean = m.const(mean_refs[0])
            if mean is None:
                continue
            gamma_ref, var_ref, eps = scale
            arrays = {"gamma": m.const(gamma_ref), "beta": beta, "mean": mean, "var": m.const(var_ref)}
            axis = _channel_axis(list(arrays.values()))
            if axis is None or m.const(x) is not None:
                continue
            dtype = arrays["gamma"].dtype
            attrs = {k: np.require(v.reshape(-1).astype(dtype), requirements="C") for k, v in arrays.items()}
            refs = (gamma_ref, sub.inputs[0], mean_refs[0], var_ref)
            attrs.update(epsilon=float(eps), axis=axis, sources=[m.const_source(r) for r in refs])
            return TFNode(root.name, "_CK_BatchNorm", [x], attrs)
    return None


def _scale(m: _Matcher, r: str) -> tuple[str, str, float] | None:
    """(gamma, variance, epsilon) of ``rsqrt(var + eps) * gamma``."""
    node = m.producer(r)
    if node is None or node.op != "Mul" or len(node.inputs) != 2:
        return None
    for rs, gamma in (node.inputs, node.inputs[::-1]):
        rsqrt = m.producer(rs)
        if rsqrt is None or rsqrt.op != "Rsqrt" or m.const(gamma) is None:
            continue
        add = m.producer(rsqrt.inputs[0])
        if add is None or add.op not in ("Add", "AddV2"):
            continue
        for var, eps in (add.inputs, add.inputs[::-1]):
            e = m.const(eps)
            if e is not None and e.size == 1 and m.const(var) is not None and m.const(var).size > 1:
                return gamma, var, float(e.reshape(-1)[0])
    return None


def _channel_axis(arrays: list[np.ndarray]) -> int | None:
    """The (negative) axis the per-channel arrays broadcast along, if they all agree."""
    axes = set()
    sizes = set()
    for v in arrays:
        if v.dtype.kind != "f":
            return None
        big = [i - v.ndim for i, d in enumerate(v.shape) if d != 1]
        if len(big) != 1:
            return None
        axes.add(big[0] if v.ndim > 1 else -1)
        sizes.add(v.size)
    return axes.pop() if len(axes) == 1 and len(sizes) == 1 else None


def _atrous(m: _Matcher, root: TFNode) -> list[TFNode] | None:
    """``BatchToSpaceND(conv(SpaceToBatchND(x, block, paddings)), block, crops)`` -> a dilated conv
    with pads ``paddings - crops``; for 1-D, the conv sits between ExpandDims(-3) and Squeeze(-3)."""
    if len(root.inputs) != 3:
        return None
    block, crops = m.const(root.inputs[1]), m.const(root.inputs[2])
    inner = m.producer(root.inputs[0])
    if block is None or crops is None or inner is None:
        return None
    squeeze = expand = None
    if inner.op == "Squeeze":
        squeeze, inner = inner, m.producer(inner.inputs[0])
    conv = inner
    if conv is None or conv.op not in ("Conv2D", "DepthwiseConv2dNative"):
        return None
    ones = all(v == 1 for key in ("strides", "dilations") for v in conv.attrs.get(key, [1]))
    if conv.attrs.get("padding") != "VALID" or conv.attrs.get("data_format", "NHWC") != "NHWC" or not ones:
        return None
    src = m.producer(conv.inputs[0])
    if squeeze is not None:
        dims = list(squeeze.attrs.get("squeeze_dims", []))
        if src is None or src.op != "ExpandDims" or dims not in ([-3], [1]):
            return None
        dim = m.const(src.inputs[1])
        if dim is None or int(dim.reshape(-1)[0]) not in (-3, 1):
            return None
        expand, src = src, m.producer(src.inputs[0])
    if src is None or src.op != "SpaceToBatchND":
        return None
    block2, paddings = m.const(src.inputs[1]), m.const(src.inputs[2])
    if block2 is None or paddings is None or block2.tolist() != block.tolist():
        return None
    pads = (paddings - crops).reshape(-1, 2)
    n = block.size
    if (pads < 0).any() or n != (1 if squeeze is not None else 2):
        return None
    x = src.inputs[0]
    attrs = dict(conv.attrs, padding="EXPLICIT")
    if squeeze is None:
        attrs.update(dilations=[1, int(block[0]), int(block[1]), 1],
                     explicit_paddings=[0, 0, *map(int, pads[0]), *map(int, pads[1]), 0, 0])
        return [TFNode(root.name, conv.op, [x, conv.inputs[1]], attrs)]
    attrs.update(dilations=[1, 1, int(block[0]), 1], explicit_paddings=[0, 0, 0, 0, *map(int, pads[0]), 0, 0])
    e = TFNode(f"{root.name}/ck_expand", "ExpandDims", [x, expand.inputs[1]], dict(expand.attrs))
    c = TFNode(f"{root.name}/ck_conv", conv.op, [f"{e.name}:0", conv.inputs[1]], attrs)
    return [e, c, TFNode(root.name, "Squeeze", [f"{c.name}:0"], dict(squeeze.attrs))]
