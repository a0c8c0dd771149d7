"""Quantized graph -> QDQ form: each integer op becomes its float op between DequantizeLinear and
QuantizeLinear nodes that carry the tensors' parameters unchanged.

This is how ONNX carries an int8 model (onnxruntime fuses the patterns back into its integer kernels),
so a quantized model (an int8 `.tflite`, a C-bundle-quantized graph) crosses to ONNX without being
requantized: int8 weights and int32 biases stay integer initializers behind a DequantizeLinear, and
every int8 activation keeps its scale and zero point. The arithmetic in between is float, so outputs
can differ from TFLite's integer kernels by a rounding step here and there (ONNX's QuantizeLinear also
rounds ties to even, TFLite's away from zero); the parameters are identical.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node, Tensor
from convertkit.canonical_ir.passes.infer import infer_shapes

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                     "QLinearMatMul", "MatMulInteger", "ConvInteger"})
"""Ops that are integer ops by definition (their quantization is in their inputs): left as they are."""


def _quant(t: Tensor) -> tuple[np.ndarray, np.ndarray, int | None] | None:
    q = t.quant
    if q is None or t.dtype is None or np.dtype(t.dtype).kind not in "iu":
        return None
    scale = np.asarray(q.scale, np.float32).reshape(-1)
    zp = np.asarray(q.zero_point).astype(t.dtype).reshape(-1)
    if scale.size == 1:
        return scale.reshape(()), zp.reshape(()), None
    return scale, np.broadcast_to(zp, scale.shape).copy(), q.axis


def is_quantized_op(graph: Graph, node: Node) -> bool:
    if node.op in QDQ_OPS:
        return False
    names = [t for t in graph.inputs_of(node) if t is not None] + graph.outputs_of(node)
    return any(_quant(graph.tensor(t)) is not None for t in names)


def has_quantized_ops(graph: Graph) -> bool:
    return any(is_quantized_op(graph, n) for n in graph.nodes)


def _dequantized(graph: Graph, name: str, cache: dict[str, str]) -> str:
    """A float tensor holding ``name``'s real values (one DequantizeLinear per quantized tensor)."""
    if name in cache:
        return cache[name]
    t = graph.tensor(name)
    scale, zp, axis = _quant(t)
    out = graph.add_tensor(graph.unique_name(f"{name}_dq"))
    attrs = {"axis": int(axis)} if axis is not None else {}
    graph.add_node("DequantizeLinear", [name, graph.add_const(scale, f"{name}_scale"),
                                        graph.add_const(zp, f"{name}_zero_point")], [out], attrs,
                   name=graph.unique_name(f"{name}_DequantizeLinear"))
    cache[name] = out
    return out


def lower_to_qdq(g: Graph) -> bool:
    """Integer ops to float ops between DequantizeLinear and QuantizeLinear, in place (for targets
    that do not run integer kernels: ONNX)."""
    if not has_quantized_ops(g):
        return False
    cache: dict[str, str] = {}
    for node in g.topo_order():
        if not is_quantized_op(g, node):
            continue
        ins = [t if t is None or _quant(g.tensor(t)) is None else _dequantized(g, t, cache)
               for t in g.inputs_of(node)]
        outs = g.outputs_of(node)
        new_outs, requant = [], []
        for o in outs:
            if _quant(g.tensor(o)) is None:
                new_outs.append(o)
                continue
            f = g.add_tensor(g.unique_name(f"{o}_float"))
            new_outs.append(f)
            requant.append((f, o))
        name, op, attrs = node.name, node.op, dict(node.attrs)
        g.remove_node(node, keep_outputs=True)
        g.add_node(op, ins, new_outs, attrs, name=name)
        for f, o in requant:
            scale, zp, axis = _quant(g.tensor(o))
            qattrs = {"rounding": "half_to_even"} | ({"axis": int(axis)} if axis is not None else {})
            g.add_node("QuantizeLinear", [f, g.add_const(scale, f"{o}_scale"), g.add_const(zp, f"{o}_zero_point")],
                       [o], qattrs, name=g.unique_name(f"{o}_QuantizeLinear"))
    g.remove_dead()
    for t in g.tensors:  # the Q/DQ nodes carry the parameters now; integer tensors are plain integers
        t.quant = None
    infer_shapes(g)
    return True
