"""Rewrites on the converted IR that need inferred shapes (the TF-level ``fusions`` cannot see them).

* ``tf.repeat`` along a spatial axis, which Keras 3's nearest UpSampling2D/1D emits as
  ``ExpandDims -> Tile -> Reshape`` over a run-time shape: when inference shows the Reshape merges the
  tiled axis back (``[.., n, ..] -> [.., n*r, ..]``), it is nearest-neighbour resizing by ``r`` with
  asymmetric coordinates and floor rounding, i.e. one Resize. Two such resizes in a row (height,
  then width) become one Resize over both axes. The Resize is layout-neutral (its ``axes`` name the
  dims), where a Reshape would pin the tensor to NHWC and cost Transposes in an NCHW target.
* 1-D convolution and pooling, which TensorFlow runs as ``ExpandDims(axis=1) -> 2-D op with a
  height-1 window -> Squeeze(axis=1)``: one rank-3 op with ``layout="NWC"`` (weight ``[O, k, I]``), so
  the layout pass sees a plain 1-D op instead of a reshape it cannot move transposes through.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir.graph import Graph, Node
from convertkit.frontends.tensorflow.context import _sym_value, infer_node

NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}


def repeat_to_resize(g: Graph) -> int:
    """Rewrite every recognised ``tf.repeat`` into a Resize; returns how many."""
    done = 0
    for node in g.topo_order():
        if node.op == "Reshape" and _repeat(g, node):
            done += 1
    if done:
        g.remove_dead()  # the replaced Tile chains, so each resize's result has its one real consumer
    for node in g.topo_order():
        if node.op == "Resize" and g.has_node(node.name):
            _merge_resizes(g, node)
    return done


def _repeat(g: Graph, reshape: Node) -> bool:
    tile = g.producer(g.inputs_of(reshape)[0])
    if tile is None or tile.op != "Tile":
        return False
    unsq = g.producer(g.inputs_of(tile)[0])
    if unsq is None or unsq.op != "Unsqueeze":
        return False
    x = g.inputs_of(unsq)[0]
    axes = _sym_value(g, g.inputs_of(unsq)[1])
    reps = _sym_value(g, g.inputs_of(tile)[1])
    xs, ys = g.tensor(x).shape, g.tensor(g.outputs_of(reshape)[0]).shape
    if axes is None or len(axes) != 1 or reps is None or xs is None or ys is None or len(xs) != len(ys):
        return False
    rank = len(xs)
    a = int(axes[0]) % (rank + 1) - 1  # the repeated axis of x
    if a < 1 or a >= rank - 1 or not all(isinstance(r, int) for r in reps):
        return False
    if [r for i, r in enumerate(reps) if i != a + 1] != [1] * rank:
        return False
    r = reps[a + 1]
    want = list(xs)
    if not isinstance(xs[a], int) or xs[a] == 1:  # repeating a size-1 axis is a broadcast, not a resize
        return False
    want[a] = xs[a] * r
    if list(ys) != want or r < 1:
        return False
    scales = g.add_const(np.array([float(r)], np.float32), f"{reshape.name}/scales")
    new = g.replace_node(reshape, "Resize", [x, None, scales], {**NEAREST, "axes": [a]})
    infer_node(g, new)
    return True


SPATIAL_1D = ("Conv", "MaxPool", "AveragePool")


def conv1d(g: Graph) -> int:
    """Rewrite ``Squeeze(op_2d(Unsqueeze(x, [1])), [1])`` into a 1-D op; returns how many."""
    done = 0
    for node in g.topo_order():
        if node.op == "Squeeze" and _one_d(g, node):
            done += 1
    if done:
        g.remove_dead()
    return done


def _one_d(g: Graph, squeeze: Node) -> bool:
    ins = g.inputs_of(squeeze)
    op = g.producer(ins[0])
    if len(ins) != 2 or op is None or op.op not in SPATIAL_1D or op.attrs.get("layout") != "NHWC":
        return False
    if _sym_value(g, ins[1]) not in ([1], [-3]) or not _single_use(g, g.outputs_of(op)[0]):
        return False
    unsq = g.producer(g.inputs_of(op)[0])
    if unsq is None or unsq.op != "Unsqueeze" or _sym_value(g, g.inputs_of(unsq)[1]) not in ([1], [-3]):
        return False
    x = g.inputs_of(unsq)[0]
    if g.tensor(x).shape is None or len(g.tensor(x).shape) != 3 or len(g.outputs_of(op)) != 1:
        return False
    a = dict(op.attrs)
    pads = a.get("pads") or [0, 0, 0, 0]
    kernel = a.get("kernel_shape")
    if (kernel is None or kernel[0] != 1 or (a.get("strides") or [1, 1])[0] != 1 or pads[0] or pads[2]
            or (a.get("dilations") or [1, 1])[0] != 1 or a.get("auto_pad", "NOTSET") != "NOTSET"):
        return False
    for key in ("kernel_shape", "strides", "dilations"):
        if a.get(key):
            a[key] = list(a[key])[1:]
    if a.get("pads"):
        a["pads"] = [pads[1], pads[3]]
    a["layout"] = "NWC"
    inputs = [x]
    if op.op == "Conv":
        w = g.inputs_of(op)[1]
        axes = g.add_const(np.array([1], np.int64), f"{op.name}/w_axes")
        w1 = g.add_tensor(g.unique_name(f"{op.name}/weights_1d"))
        infer_node(g, g.add_node("Squeeze", [w, axes], [w1], name=f"{op.name}/weights_1d"))
        inputs += [w1, *g.inputs_of(op)[2:]]
    new = g.replace_node(squeeze, op.op, inputs, a)
    infer_node(g, new)
    return True


def _single_use(g: Graph, tensor: str) -> bool:
    return len(g.consumers(tensor)) == 1 and not g.is_graph_output(tensor)


def _merge_resizes(g: Graph, outer: Node) -> None:
    inner = g.producer(g.inputs_of(outer)[0])
    if inner is None or inner.op != "Resize" or not _single_use(g, g.outputs_of(inner)[0]):
        return
    a_in, a_out = inner.attrs.get("axes"), outer.attrs.get("axes")
    same = {k: v for k, v in inner.attrs.items() if k != "axes"} == {k: v for k, v in outer.attrs.items()
                                                                    if k != "axes"}
    if (not same or a_in is None or a_out is None or set(a_in) & set(a_out)
            or inner.attrs != {**NEAREST, "axes": a_in}):
        return
    s_in, s_out = (g.const_value(g.inputs_of(n)[2]) if len(g.inputs_of(n)) == 3 else None
                   for n in (inner, outer))
    if s_in is None or s_out is None:
        return
    order = sorted(zip(list(a_in) + list(a_out), list(s_in) + list(s_out)))
    scales = g.add_const(np.array([s for _, s in order], np.float32), f"{outer.name}/scales")
    x = g.inputs_of(inner)[0]
    new = g.replace_node(outer, "Resize", [x, None, scales], {**NEAREST, "axes": [a for a, _ in order]})
    infer_node(g, new)
