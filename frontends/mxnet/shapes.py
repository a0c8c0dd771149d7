"""Input shapes for MXNet symbols, which do not store them.

A variable declared with a shape carries it as ``__shape__`` (0 for an unknown size). Otherwise the
rank and the channel count are read off the first layer that consumes the input, looking through ops
that keep the shape (activations, arithmetic, BatchNorm, ...) and channel splits: a Convolution tells
the rank (2 + kernel dims) and the channels (weight dim 1 x groups), a FullyConnected a 2-D input of
its weight's width. Batch and spatial sizes stay symbolic, so one converted graph serves any size.
"""
from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np

from convertkit.errors import ModelFileError
from convertkit.frontends.mxnet.symbol import Symbol, SymNode

SHAPE_KEEPING = frozenset({
    "Activation", "LeakyReLU", "BatchNorm", "CuDNNBatchNorm", "InstanceNorm", "Dropout", "_copy",
    "BlockGrad", "identity", "stop_gradient", "clip", "relu", "sigmoid", "tanh", "exp", "log", "sqrt",
    "abs", "negative", "square", "softsign", "hard_sigmoid", "L2Normalization", "LRN", "softmax",
    "log_softmax", "SoftmaxActivation", "Cast", "cast", "elemwise_add", "elemwise_sub", "elemwise_mul",
    "elemwise_div", "broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_div", "broadcast_plus",
    "broadcast_minus", "_plus", "_minus", "_mul", "_div", "_Plus", "_Minus", "_Mul", "_Div", "add_n",
    "ElementWiseSum", "_plus_scalar", "_minus_scalar", "_rminus_scalar", "_mul_scalar", "_div_scalar",
    "_rdiv_scalar", "_power_scalar", "_maximum_scalar", "_minimum_scalar", "_PlusScalar",
    "_MinusScalar", "_MulScalar", "_DivScalar",
})
"""Ops whose output has the shape of their first input (enough to see through to the first layer)."""


SAME_SHAPE_OPS = frozenset({
    "elemwise_add", "elemwise_sub", "elemwise_mul", "elemwise_div", "_plus", "_minus", "_mul", "_div",
    "_Plus", "_Minus", "_Mul", "_Div", "add_n", "ElementWiseSum",
})
"""Ops whose operands must all have one shape: an input of unknown shape takes its partner's."""


def guess_input_shape(symbol: Symbol, node: SymNode, params: Mapping[str, np.ndarray],
                      uses: dict[int, list[tuple[SymNode, int]]]) -> tuple | None:
    """The input's shape (ints where the model fixes them, None for a size any value of which works),
    or None if no consumer tells."""
    declared = node.attrs.get("__shape__")
    if declared:
        try:
            dims = ast.literal_eval(declared)
            return tuple(int(d) if int(d) > 0 else None for d in dims)
        except (ValueError, SyntaxError, TypeError):
            raise ModelFileError(f"input {node.name} has an unreadable __shape__ {declared!r}",
                                 where=symbol.source) from None
    found = _probe(symbol, node.index, params, uses, channel_factor=1, seen=set())
    if found is None:
        return None
    rank, channels = found
    return (None, channels) + (None,) * (rank - 2)


def _probe(symbol: Symbol, index: int, params: Mapping[str, np.ndarray],
           uses: dict[int, list[tuple[SymNode, int]]], channel_factor: int,
           seen: set[int]) -> tuple[int, int | None] | None:
    """(rank, channels or None) from the first consumer that tells, breadth first."""
    for consumer, port in uses.get(index, []):
        if port != 0 or consumer.index in seen:
            continue
        seen.add(consumer.index)
        found = _tells(symbol, consumer, params, channel_factor)
        if found is not None:
            return found
        if consumer.op in SHAPE_KEEPING:
            found = _probe(symbol, consumer.index, params, uses, channel_factor, seen)
        elif consumer.op in ("SliceChannel", "split") and consumer.attrs.get("axis", "1") == "1":
            n = int(consumer.attrs.get("num_outputs", "1"))
            found = _probe(symbol, consumer.index, params, uses, channel_factor * n, seen)
        if found is not None:
            return found
    return None


def _ints(text: str | None) -> tuple[int, ...]:
    if not text or text == "None":
        return ()
    value = ast.literal_eval(text)
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),)


def _weight(symbol: Symbol, node: SymNode, port: int, params: Mapping[str, np.ndarray]) -> np.ndarray | None:
    if port >= len(node.inputs):
        return None
    src = symbol.nodes[node.inputs[port][0]]
    return params.get(src.name) if src.op == "null" else None


def _tells(symbol: Symbol, node: SymNode, params: Mapping[str, np.ndarray],
           factor: int) -> tuple[int, int | None] | None:
    a = node.attrs
    if node.op in ("Convolution", "Deconvolution", "Convolution_v1"):
        kernel = _ints(a.get("kernel"))
        w = _weight(symbol, node, 1, params)
        if w is None or w.ndim < 3:
            return (len(kernel) + 2, None) if kernel else None
        group = int(a.get("num_group", "1"))
        channels = w.shape[1] * group if node.op != "Deconvolution" else w.shape[0]
        return w.ndim, channels * factor
    if node.op in ("Pooling", "Pooling_v1", "UpSampling"):
        kernel = _ints(a.get("kernel"))
        return (len(kernel) + 2 if kernel and a.get("global_pool", "False") not in ("True", "1") else 4), None
    if node.op == "FullyConnected":
        w = _weight(symbol, node, 1, params)
        return 2, (int(w.shape[1]) * factor if w is not None and w.ndim == 2 else None)
    if node.op == "Embedding":
        return 2, None
    return None
