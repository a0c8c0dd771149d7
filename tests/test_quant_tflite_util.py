"""Test support (no tests here): int8 TFLite models made by TensorFlow's converter, run in LiteRT with the
reference kernels (BUILTIN_REF) and in TFLite Micro, and read back into the IR by a small test-local
translation of the ops these tests use (not a frontend: the TFLite frontend is its own module).

The translation keeps every quantization parameter and int8/int32 buffer exactly, so running the IR
graph through the reference interpreter must give LiteRT's outputs bit for bit.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from convertkit.canonical_ir.graph import Graph, QuantParams
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION

_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_FUSED = {0: None, 1: ("Relu",), 2: ("Clip", -1.0, 1.0), 3: ("Clip", 0.0, 6.0)}


def _tf():
    return pytest.importorskip("tensorflow")


def schema():
    return pytest.importorskip("ai_edge_litert.schema_py_generated")


# ------------------------------------------------------------------------------------ making models
def convert_int8(model: Any, input_shapes: Sequence[tuple], *, seed: int = 0, n_samples: int = 16,
                 float_io: bool = False, scale: float = 1.0,
                 sample: Callable[[np.random.Generator, tuple], np.ndarray] | None = None,
                 per_channel_dense: bool = False,
                 dataset: Sequence[Sequence[np.ndarray]] | None = None) -> bytes:
    """Full-integer quantization of a Keras model (or a tf.function with input signature) by
    TFLiteConverter, with a seeded representative dataset (or the given one); int8 inputs/outputs
    unless ``float_io``."""
    t = _tf()
    rng = np.random.default_rng(seed)
    draw = sample or (lambda r, s: (r.normal(size=s) * scale).astype(np.float32))
    data = dataset if dataset is not None else [[draw(rng, s) for s in input_shapes]
                                                for _ in range(n_samples)]

    def rep():
        for sample_inputs in data:
            yield list(sample_inputs)
    if hasattr(model, "get_concrete_function"):
        conv = t.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    else:
        conv = t.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [t.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = t.int8
        conv.inference_output_type = t.int8
    if per_channel_dense:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = False
    return conv.convert()


def convert_float32(model: Any) -> bytes:
    """The float32 TFLite model (no quantization), for the float graph of the same network."""
    return _tf().lite.TFLiteConverter.from_keras_model(model).convert()


def keras_model(build: Callable, input_shapes: Sequence[tuple], seed: int = 0):
    """A Keras functional model from ``build(*inputs)``, weights randomised with a seed (fresh Keras
    BatchNorm statistics and zero biases make degenerate test models)."""
    t = _tf()
    t.keras.utils.set_random_seed(seed)
    ins = [t.keras.Input(s[1:], batch_size=s[0]) for s in input_shapes]
    out = build(*ins)
    model = t.keras.Model(ins, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(rng.normal(size=w.shape) * (0.3 if w.ndim > 1 else 0.5)).astype(w.dtype)
                               if "variance" not in v.name else rng.uniform(0.5, 2, w.shape).astype(w.dtype)
                               for w, v in zip(ws, layer.weights)])
    return model


# ----------------------------------------------------------------------------------------- runtimes
def run_litert(buf: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """LiteRT with the reference kernels (the int8 oracle; the default optimized kernels differ)."""
    lite = pytest.importorskip("ai_edge_litert.interpreter")
    it = lite.Interpreter(model_content=buf,
                          experimental_op_resolver_type=lite.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def run_tflm(buf: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    """TFLite Micro, or None where its Python runtime is absent."""
    try:
        from tflite_micro import runtime
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.tflite")
        with open(path, "wb") as f:
            f.write(buf)
        it = runtime.Interpreter.from_file(path)
        for i, x in enumerate(inputs):
            it.set_input(x, i)
        it.invoke()
        n = len(schema().ModelT.InitFromPackedBuf(buf, 0).subgraphs[0].outputs)
        return [np.array(it.get_output(i)) for i in range(n)]


def op_names(buf: bytes) -> list[str]:
    s = schema()
    m = s.ModelT.InitFromPackedBuf(buf, 0)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    return [names[max(m.operatorCodes[op.opcodeIndex].builtinCode,
                      m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
            for op in m.subgraphs[0].operators]


# ---------------------------------------------------------------------------- TFLite -> IR (test-local)
class _Reader:
    def __init__(self, buf: bytes) -> None:
        s = schema()
        self.s = s
        self.m = s.ModelT.InitFromPackedBuf(buf, 0)
        self.sg = self.m.subgraphs[0]
        self.codes = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        self.g = Graph("tflite")

    def name(self, i: int) -> str:
        return f"t{i}"

    def quant(self, i: int) -> QuantParams | None:
        q = self.sg.tensors[i].quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        scale, zp = np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)
        if len(scale) > 1:
            return QuantParams(scale, zp, int(q.quantizedDimension))
        return QuantParams(scale.reshape(()), zp.reshape(()), None)

    def value(self, i: int) -> np.ndarray | None:
        t = self.sg.tensors[i]
        data = self.m.buffers[t.buffer].data
        if data is None:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), _TYPES[t.type]).reshape(t.shape)

    def tensor(self, i: int, value: np.ndarray | None = None, quant: QuantParams | None = None) -> str:
        name = self.name(i)
        if self.g.has_tensor(name):
            return name
        t = self.sg.tensors[i]
        v = self.value(i) if value is None else value
        q = self.quant(i) if quant is None else quant
        if v is not None:
            self.g.add_tensor(name, value=np.ascontiguousarray(v), quant=q)
        else:
            self.g.add_tensor(name, _TYPES[t.type], tuple(int(d) for d in t.shape), quant=q)
        return name

    def const(self, v: Any, dtype: Any = np.int64) -> str:
        return self.g.add_const(np.asarray(v, dtype), "c")

    def out(self, op, k: int = 0) -> list[str]:
        i = op.outputs[k]
        t = self.sg.tensors[i]
        name = self.name(i)
        self.g.add_tensor(name, _TYPES[t.type], tuple(int(d) for d in t.shape), quant=self.quant(i))
        return [name]


def _pads(padding: int) -> str:
    return "SAME_UPPER" if padding == 0 else "VALID"


def _act(o) -> dict:
    f = _FUSED[getattr(o, "fusedActivationFunction", 0)]
    return {} if f is None else {FUSED_ACTIVATION: f}


def ir_from_tflite(buf: bytes) -> Graph:
    """The model's first subgraph as an IR graph with the same tensors, parameters and int8 buffers."""
    r = _Reader(buf)
    g = r.g
    for i in r.sg.inputs:
        t = r.sg.tensors[i]
        g.add_tensor(r.name(i), _TYPES[t.type], tuple(int(d) for d in t.shape), quant=r.quant(i))
        g.inputs.append(r.name(i))
    for op in r.sg.operators:
        code = r.codes[max(r.m.operatorCodes[op.opcodeIndex].builtinCode,
                           r.m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
        _TRANSLATE[code](r, op, op.builtinOptions)
    g.outputs.extend(r.name(i) for i in r.sg.outputs)
    return g


def _bias(r: _Reader, op) -> list[str]:
    return [r.tensor(op.inputs[2])] if len(op.inputs) > 2 and op.inputs[2] >= 0 else []


def _conv(r: _Reader, op, o) -> None:
    x, w = r.tensor(op.inputs[0]), op.inputs[1]
    wt = r.sg.tensors[w]
    group = int(r.sg.tensors[op.inputs[0]].shape[3] // wt.shape[3])
    ins = [x, r.tensor(w)] + _bias(r, op)
    r.g.add_node("Conv", ins, r.out(op), {"layout": "NHWC", "group": group, "auto_pad": _pads(o.padding),
                                          "strides": [o.strideH, o.strideW],
                                          "dilations": [o.dilationHFactor, o.dilationWFactor], **_act(o)})


def _depthwise(r: _Reader, op, o) -> None:
    x, w = r.tensor(op.inputs[0]), op.inputs[1]
    q = r.quant(w)
    wv = np.ascontiguousarray(np.transpose(r.value(w), (3, 1, 2, 0)))      # [1,kh,kw,CM] -> [CM,kh,kw,1]
    q = None if q is None else QuantParams(q.scale, q.zero_point, 0 if q.axis is not None else None)
    ins = [x, r.tensor(w, wv, q)] + _bias(r, op)
    r.g.add_node("Conv", ins, r.out(op), {"layout": "NHWC", "group": int(r.sg.tensors[op.inputs[0]].shape[3]),
                                          "auto_pad": _pads(o.padding), "strides": [o.strideH, o.strideW],
                                          "dilations": [o.dilationHFactor, o.dilationWFactor], **_act(o)})


def _transpose_conv(r: _Reader, op, o) -> None:
    shape = [int(v) for v in r.value(op.inputs[0]).reshape(-1)]
    ins = [r.tensor(op.inputs[2]), r.tensor(op.inputs[1])]
    if len(op.inputs) > 3 and op.inputs[3] >= 0:
        ins.append(r.tensor(op.inputs[3]))
    r.g.add_node("ConvTranspose", ins, r.out(op), {"layout": "NHWC", "auto_pad": _pads(o.padding),
                                                   "strides": [o.strideH, o.strideW],
                                                   "output_shape": shape[1:3], **_act(o)})


def _fully_connected(r: _Reader, op, o) -> None:
    x = r.tensor(op.inputs[0])
    k = int(r.sg.tensors[op.inputs[1]].shape[1])
    if len(r.sg.tensors[op.inputs[0]].shape) != 2:
        flat = r.g.add_tensor(r.g.unique_name(x + "_2d"), _TYPES[r.sg.tensors[op.inputs[0]].type],
                              quant=r.quant(op.inputs[0]))
        r.g.add_node("Reshape", [x, r.const([-1, k])], [flat])
        x = flat
    ins = [x, r.tensor(op.inputs[1])] + _bias(r, op)
    out = r.out(op)
    if len(r.sg.tensors[op.outputs[0]].shape) != 2:
        mid = r.g.add_tensor(r.g.unique_name(out[0] + "_2d"), _TYPES[r.sg.tensors[op.outputs[0]].type],
                             quant=r.quant(op.outputs[0]))
        r.g.add_node("Gemm", ins, [mid], {"transB": 1, **_act(o)})
        r.g.add_node("Reshape", [mid, r.const(r.sg.tensors[op.outputs[0]].shape)], out)
    else:
        r.g.add_node("Gemm", ins, out, {"transB": 1, **_act(o)})


def _binary(kind: str):
    def run(r: _Reader, op, o) -> None:
        r.g.add_node(kind, [r.tensor(i) for i in op.inputs], r.out(op), _act(o) if o is not None else {})
    return run


def _unary(kind: str, attrs: Callable[[Any], dict] = lambda o: {}):
    def run(r: _Reader, op, o) -> None:
        r.g.add_node(kind, [r.tensor(op.inputs[0])], r.out(op), attrs(o))
    return run


def _pool(kind: str):
    def run(r: _Reader, op, o) -> None:
        r.g.add_node(kind, [r.tensor(op.inputs[0])], r.out(op),
                     {"layout": "NHWC", "kernel_shape": [o.filterHeight, o.filterWidth],
                      "auto_pad": _pads(o.padding), "strides": [o.strideH, o.strideW], **_act(o)})
    return run


def _mean(r: _Reader, op, o) -> None:
    axes = r.value(op.inputs[1]).reshape(-1)
    r.g.add_node("ReduceMean", [r.tensor(op.inputs[0]), r.const(axes)], r.out(op),
                 {"keepdims": int(o.keepDims)})


def _relu_clip(lo: float, hi: float):
    def run(r: _Reader, op, o) -> None:
        x = r.tensor(op.inputs[0])
        r.g.add_node("Clip", [x, r.const(lo, np.float32), r.const(hi, np.float32)], r.out(op))
    return run


def _concat(r: _Reader, op, o) -> None:
    r.g.add_node("Concat", [r.tensor(i) for i in op.inputs], r.out(op), {"axis": int(o.axis), **_act(o)})


def _pad(r: _Reader, op, o) -> None:
    p = r.value(op.inputs[1])
    ins = [r.tensor(op.inputs[0]), r.const(np.concatenate([p[:, 0], p[:, 1]]))]
    if len(op.inputs) > 2:
        ins.append(r.tensor(op.inputs[2]))
    r.g.add_node("Pad", ins, r.out(op))


def _resize(mode: str):
    def run(r: _Reader, op, o) -> None:
        x = op.inputs[0]
        n, _, _, c = r.sg.tensors[x].shape
        h, w = r.value(op.inputs[1]).reshape(-1)
        if mode == "linear":
            coord = ("align_corners" if o.alignCorners else "half_pixel" if o.halfPixelCenters
                     else "asymmetric")
            extra = {}
        else:
            coord = ("align_corners" if o.alignCorners else "tf_half_pixel_for_nn" if o.halfPixelCenters
                     else "asymmetric")
            extra = {"nearest_mode": "round_prefer_ceil" if o.alignCorners else "floor"}
        r.g.add_node("Resize", [r.tensor(x), None, None, r.const([n, h, w, c])], r.out(op),
                     {"mode": mode, "coordinate_transformation_mode": coord, **extra})
    return run


def _transpose(r: _Reader, op, o) -> None:
    perm = [int(v) for v in r.value(op.inputs[1]).reshape(-1)]
    r.g.add_node("Transpose", [r.tensor(op.inputs[0])], r.out(op), {"perm": perm})


def _strided_slice(r: _Reader, op, o) -> None:
    assert not (o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask), "test-local: plain slices only"
    begin, end, steps = (r.value(i).reshape(-1).astype(np.int64) for i in op.inputs[1:4])
    shape = r.sg.tensors[op.inputs[0]].shape
    big = np.iinfo(np.int64).max
    begin = [0 if o.beginMask >> a & 1 else b for a, b in enumerate(begin)]
    end = [(big if st > 0 else -big) if o.endMask >> a & 1 else e
           for a, (e, st) in enumerate(zip(end, steps))]
    r.g.add_node("Slice", [r.tensor(op.inputs[0]), r.const(begin), r.const(end), r.const(range(len(shape))),
                           r.const(steps)], r.out(op))


def _reduce_max(r: _Reader, op, o) -> None:
    axes = r.value(op.inputs[1]).reshape(-1)
    r.g.add_node("ReduceMax", [r.tensor(op.inputs[0]), r.const(axes)], r.out(op),
                 {"keepdims": int(o.keepDims)})


def _mirror_pad(r: _Reader, op, o) -> None:
    assert o.mode == 0, "test-local MIRROR_PAD: REFLECT only (SYMMETRIC has no canonical form)"
    p = r.value(op.inputs[1])
    r.g.add_node("Pad", [r.tensor(op.inputs[0]), r.const(np.concatenate([p[:, 0], p[:, 1]]))], r.out(op),
                 {"mode": "reflect"})


def _reshape(r: _Reader, op, o) -> None:
    shape = r.sg.tensors[op.outputs[0]].shape
    r.g.add_node("Reshape", [r.tensor(op.inputs[0]), r.const(shape)], r.out(op))


def _quantize(r: _Reader, op, o) -> None:
    x = op.inputs[0]
    q = r.quant(op.outputs[0])
    dt = _TYPES[r.sg.tensors[op.outputs[0]].type]
    attrs = {"rounding": "half_away_from_zero"} if _TYPES[r.sg.tensors[x].type] == np.float32 else {}
    r.g.add_node("QuantizeLinear", [r.tensor(x), r.const(q.scale, np.float32), r.const(q.zero_point, dt)],
                 r.out(op), attrs)


def _dequantize(r: _Reader, op, o) -> None:
    x = op.inputs[0]
    q = r.quant(x)
    dt = _TYPES[r.sg.tensors[x].type]
    r.g.add_node("DequantizeLinear", [r.tensor(x), r.const(q.scale, np.float32), r.const(q.zero_point, dt)],
                 r.out(op))


_TRANSLATE: dict[str, Callable] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "TRANSPOSE_CONV": _transpose_conv,
    "ADD": _binary("Add"), "SUB": _binary("Sub"), "MUL": _binary("Mul"),
    "AVERAGE_POOL_2D": _pool("AveragePool"), "MAX_POOL_2D": _pool("MaxPool"), "MEAN": _mean,
    "SOFTMAX": _unary("Softmax", lambda o: {"axis": -1}), "LOGISTIC": _unary("Sigmoid"),
    "TANH": _unary("Tanh"),
    "HARD_SWISH": _unary("HardSwish"), "RELU": _unary("Relu"), "RELU6": _relu_clip(0.0, 6.0),
    "RELU_N1_TO_1": _relu_clip(-1.0, 1.0),
    "LEAKY_RELU": _unary("LeakyRelu", lambda o: {"alpha": float(o.alpha)}),
    "PRELU": _binary("PRelu"), "ELU": _unary("Elu"),
    "GELU": _unary("Gelu", lambda o: {"approximate": "tanh" if o is not None and o.approximate else "none"}),
    "CONCATENATION": _concat, "PAD": _pad, "PADV2": _pad,
    "RESIZE_BILINEAR": _resize("linear"), "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"),
    "RESHAPE": _reshape, "QUANTIZE": _quantize, "DEQUANTIZE": _dequantize, "TRANSPOSE": _transpose,
    "STRIDED_SLICE": _strided_slice, "REDUCE_MAX": _reduce_max, "MIRROR_PAD": _mirror_pad,
}


def run_ir(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    from convertkit.canonical_ir.interpreter import run
    out = run(graph, dict(zip(graph.inputs, inputs)))
    return [out[n] for n in graph.outputs]


def int8_inputs(buf: bytes, seed: int = 1) -> list[np.ndarray]:
    """Random inputs spanning the whole int8 range, shaped as the model's inputs."""
    s = schema()
    m = s.ModelT.InitFromPackedBuf(buf, 0)
    sg = m.subgraphs[0]
    rng = np.random.default_rng(seed)
    out = []
    for i in sg.inputs:
        t = sg.tensors[i]
        dt = _TYPES[t.type]
        if dt == np.float32:
            out.append(rng.normal(size=tuple(t.shape)).astype(np.float32))
        else:
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, info.max + 1, size=tuple(t.shape), dtype=dt))
    return out


def compare(buf: bytes, inputs: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Run LiteRT (BUILTIN_REF), TFLite Micro and the IR on the same inputs; report mismatches."""
    inputs = int8_inputs(buf) if inputs is None else inputs
    ref = run_litert(buf, inputs)
    ir = run_ir(ir_from_tflite(buf), inputs)
    micro = run_tflm(buf, inputs)
    return {"litert": ref, "ir": ir, "tflm": micro,
            "ir_mismatch": sum(int(np.sum(a != b)) for a, b in zip(ref, ir)),
            "tflm_mismatch": None if micro is None else sum(int(np.sum(a != b)) for a, b in zip(ref, micro)),
            "ir_tflm_mismatch": (None if micro is None
                                 else sum(int(np.sum(a != b)) for a, b in zip(ir, micro))),
            "size": sum(a.size for a in ref)}
