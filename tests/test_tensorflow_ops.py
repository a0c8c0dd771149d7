"""TensorFlow op semantics: each case is a small tf.function, frozen and converted; TensorFlow's own
output is the reference for the IR interpreter and for the exported ONNX model in onnxruntime.

The cases pick the attribute values where TF and ONNX differ (SAME padding with odd sizes, pooling
counts, resize coordinate modes, StridedSlice masks, integer division, LRN's alpha...).
"""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
ort = pytest.importorskip("onnxruntime")

from convertkit.backends.onnx import to_model  # noqa: E402
from convertkit.canonical_ir.interpreter import run  # noqa: E402
from convertkit.errors import UnsupportedOpError  # noqa: E402
from convertkit.frontends.tensorflow import from_function  # noqa: E402
from convertkit.pipeline import normalize  # noqa: E402

F32, I32 = tf.float32, tf.int32
RNG = np.random.default_rng(7)


def w(*shape, scale=0.5):
    return tf.constant(RNG.standard_normal(shape).astype(np.float32) * scale)


def case(name, fn, *shapes, dtype=F32, positive=False):
    return pytest.param(fn, shapes, dtype, positive, id=name)


W33 = w(3, 3, 4, 6)
W_DW = w(3, 3, 4, 2)
W_T = w(3, 3, 5, 4)
W3D = w(2, 2, 2, 4, 3)
MAT = w(6, 5)

CASES = [
    # ---- convolutions and pooling (NHWC)
    case("conv_same_s1", lambda x: tf.nn.conv2d(x, W33, 1, "SAME"), (None, 7, 9, 4)),
    case("conv_same_s2_odd", lambda x: tf.nn.conv2d(x, W33, 2, "SAME"), (None, 7, 9, 4)),
    case("conv_valid_s2", lambda x: tf.nn.conv2d(x, W33, [1, 2, 1, 1], "VALID"), (None, 9, 8, 4)),
    case("conv_explicit", lambda x: tf.nn.conv2d(x, W33, 1, [[0, 0], [1, 2], [0, 1], [0, 0]]),
         (None, 6, 6, 4)),
    case("conv_dilated_atrous", lambda x: tf.nn.convolution(x, W33, padding="SAME", dilations=2),
         (None, 9, 10, 4)),
    case("conv1d_dilated", lambda x: tf.nn.convolution(x, w(3, 4, 5), padding="SAME", dilations=3),
         (None, 17, 4)),
    case("conv1d_stride", lambda x: tf.nn.conv1d(x, w(3, 4, 5), 2, "VALID"), (None, 17, 4)),
    case("depthwise_m2_s2", lambda x: tf.nn.depthwise_conv2d(x, W_DW, [1, 2, 2, 1], "SAME"), (None, 7, 8, 4)),
    case("depthwise_dilated",
         lambda x: tf.nn.depthwise_conv2d(x, W_DW, [1, 1, 1, 1], "SAME", dilations=[2, 2]),
         (None, 9, 9, 4)),
    case("conv_transpose_same",
         lambda x: tf.nn.conv2d_transpose(x, W_T, [tf.shape(x)[0], 9, 10, 5], 2, "SAME"),
         (None, 5, 5, 4)),
    case("conv_transpose_valid", lambda x: tf.nn.conv2d_transpose(x, W_T, [2, 11, 12, 5], 2, "VALID"),
         (2, 5, 5, 4)),
    case("conv3d", lambda x: tf.nn.conv3d(x, W3D, [1, 1, 2, 1, 1], "SAME"), (None, 3, 5, 4, 4)),
    case("max_pool_same", lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME"), (None, 7, 8, 3)),
    case("avg_pool_same", lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME"), (None, 7, 8, 3)),
    case("avg_pool_valid", lambda x: tf.nn.avg_pool2d(x, [2, 3], [2, 1], "VALID"), (None, 7, 8, 3)),
    case("max_pool1d", lambda x: tf.nn.max_pool1d(x, 2, 2, "VALID"), (None, 9, 3)),
    case("fused_bn", lambda x: tf.compat.v1.nn.fused_batch_norm(
        x, w(3) + 1, w(3), w(3), tf.abs(w(3)) + 0.5, epsilon=1e-3, is_training=False)[0], (None, 4, 4, 3)),
    case("batch_norm_pattern", lambda x: tf.nn.batch_normalization(
        x, w(3), tf.constant([0.7, 1.3, 0.9]), w(3), w(3), 1e-3), (None, 4, 4, 3)),
    case("bias_add_nchw", lambda x: tf.nn.bias_add(x, w(3), data_format="NCHW"), (None, 3, 4, 4)),
    case("lrn", lambda x: tf.nn.local_response_normalization(x, 2, 1.5, 0.3, 0.6), (None, 4, 4, 7)),
    case("depth_to_space", lambda x: tf.nn.depth_to_space(x, 2), (None, 3, 4, 8)),
    case("space_to_depth", lambda x: tf.nn.space_to_depth(x, 2), (None, 4, 6, 3)),
    # ---- resizing (TF's coordinate conventions)
    case("bilinear_half_pixel_x2", lambda x: tf.image.resize(x, [8, 10], "bilinear"), (None, 4, 5, 3)),
    case("bilinear_half_pixel_5to7", lambda x: tf.image.resize(x, [7, 7], "bilinear"), (None, 5, 5, 3)),
    case("bilinear_align", lambda x: tf.compat.v1.image.resize_bilinear(x, [7, 9], align_corners=True),
         (None, 4, 5, 3)),
    case("bilinear_asymmetric", lambda x: tf.compat.v1.image.resize_bilinear(x, [7, 9]), (None, 4, 5, 3)),
    case("nearest_half_pixel", lambda x: tf.image.resize(x, [7, 11], "nearest"), (None, 4, 5, 3)),
    case("nearest_align", lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [7, 9], align_corners=True),
         (None, 4, 5, 3)),
    case("nearest_asymmetric", lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [8, 15]),
         (None, 4, 5, 3)),
    case("repeat_upsample", lambda x: tf.repeat(tf.repeat(x, 2, axis=1), 3, axis=2), (None, 4, 5, 3)),
    # ---- activations and elementwise math
    case("relu6_leaky_elu_selu", lambda x: tf.nn.relu6(x * 4) + tf.nn.leaky_relu(x, 0.3) + tf.nn.elu(x)
         + tf.nn.selu(x), (None, 10)),
    case("softplus_softsign_erf", lambda x: tf.nn.softplus(x) + tf.nn.softsign(x) + tf.math.erf(x)
         + tf.math.erfc(x), (None, 10)),
    case("gelu_exact", lambda x: tf.nn.gelu(x * 2), (None, 10)),
    case("gelu_tanh", lambda x: tf.nn.gelu(x * 2, approximate=True), (None, 10)),
    case("silu", lambda x: tf.nn.silu(x * 2), (None, 10)),
    case("hard_swish_forms", lambda x: x * tf.nn.relu6(x + 3) / 6 + x * tf.nn.relu6(x + 3) * (1 / 6)
         + x * (tf.clip_by_value(x + 3, 0, 6) / 6), (None, 10)),
    case("softmax_logsoftmax", lambda x: tf.nn.softmax(x) + tf.nn.log_softmax(x), (None, 3, 10)),
    case("unary_math", lambda x: tf.sqrt(x) + tf.math.rsqrt(x) + tf.square(x) + tf.exp(-x) + tf.math.log(x)
         + tf.math.expm1(-x) + tf.math.log1p(x) + tf.math.reciprocal(x) + tf.round(x * 3) + tf.sign(x - 1),
         (None, 10), positive=True),
    case("binary_math", lambda x, y: tf.maximum(x, y) - tf.minimum(x, y) + tf.math.squared_difference(x, y)
         + tf.pow(tf.abs(x) + 1, y) + x / (tf.abs(y) + 1) + tf.math.floordiv(x, y + 3)
         + tf.math.floormod(x, tf.abs(y) + 1), (None, 10), (None, 10)),
    case("int_div_mod", lambda a, b: tf.math.floordiv(a, b) * 1000 + tf.math.floormod(a, b) * 100
         + tf.raw_ops.TruncateDiv(x=a, y=b) * 10 + tf.raw_ops.TruncateMod(x=a, y=b)
         + tf.raw_ops.Div(x=a, y=b),
         (None, 8), (None, 8), dtype=I32),
    case("compare_select", lambda x, y: tf.where(tf.logical_and(x > y, tf.logical_not(x < -1.0)), x, y)
         + tf.cast(tf.not_equal(x, y), F32) + tf.cast(x >= y, F32), (None, 10), (None, 10)),
    case("cast_truncates", lambda x: tf.cast(tf.cast(x * 5, I32), F32) + tf.clip_by_value(x, -0.5, 0.5),
         (None, 10)),
    case("add_n_bias", lambda x: tf.add_n([x, x * 2, tf.nn.bias_add(x, w(10))]), (None, 10)),
    # ---- products and reductions
    case("matmul_transposed", lambda x: tf.matmul(x, MAT, transpose_b=True)[:, :2]
         + tf.matmul(x, x, transpose_a=True)[:2, :2], (2, 5)),
    case("batch_matmul_adj", lambda x, y: tf.linalg.matmul(x, y, adjoint_a=True, adjoint_b=True), (2, 4, 3),
         (2, 5, 4)),
    case("einsum", lambda x, y: tf.einsum("bij,bjk->bik", x, y), (2, 3, 4), (2, 4, 5)),
    case("reduce_keepdims", lambda x: tf.reduce_mean(x, [1, 2], keepdims=True) + tf.reduce_max(x, -1, True),
         (None, 3, 4, 5)),
    case("reduce_various", lambda x: tf.reduce_sum(x, [0, 2]) + tf.reduce_min(x, [0, 2])
         + tf.reduce_prod(x, [0, 2]) + tf.math.reduce_euclidean_norm(x, [0, 2]), (3, 4, 5)),
    case("reduce_empty_axes", lambda x: tf.reduce_sum(x, axis=[]), (None, 4)),
    case("argmax_int32", lambda x: tf.argmax(x, 1, output_type=I32) + tf.argmin(x, 1, output_type=I32),
         (None, 7)),
    case("cumsum", lambda x: tf.cumsum(x, 1, exclusive=True, reverse=True), (None, 6)),
    case("top_k", lambda x: tf.math.top_k(x, 3).values, (None, 8)),
    # ---- shapes, slicing, joining
    case("reshape_flatten", lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) * 2, (None, 3, 4)),
    case("squeeze_expand", lambda x: tf.expand_dims(tf.squeeze(x, [1]), -1) + tf.squeeze(x)[..., None],
         (2, 1, 4)),
    case("transpose_concat", lambda x: tf.concat([tf.transpose(x, [0, 2, 1]), x[:, :2, :3]], axis=1),
         (None, 3, 3)),
    case("stack_unstack", lambda x: tf.stack(tf.unstack(x, axis=1)[::-1], axis=-1), (None, 3, 4)),
    case("split_splitv",
         lambda x: tf.concat(tf.split(x, 2, axis=1)[::-1] + tf.split(x, [1, -1, 2], axis=1), 1),
         (None, 6)),
    case("slice", lambda x: tf.slice(x, [0, 1, 0], [-1, 2, 3]), (None, 4, 5)),
    case("strided_slice_masks",
         lambda x: tf.concat([x[:, 1:5:2, ::-1], x[:, 4:0:-2, tf.newaxis, 2, None][:, :, 0, :]], 2),
         (None, 6, 5)),
    case("strided_slice_ellipsis",
         lambda x: x[..., 1] + x[-1, ..., 0:1][None, ..., 0] + x[1:-1, ...][0, :, 2],
         (3, 4, 5)),
    case("pad_mirror", lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 0]], constant_values=1.5)[:, 1:6, 1:5]
         + tf.pad(x, [[0, 0], [1, 1], [1, 1]], "REFLECT")[:, :5, :4], (None, 4, 3)),
    case("gather",
         lambda x: tf.reduce_sum(tf.gather(x, [2, 0, 1, 1], axis=1), 1) + tf.gather_nd(x, [[0, 1], [1, 2]]),
         (2, 3, 4)),
    case("tile_fill_range", lambda x: tf.tile(x, [1, 2]) + tf.cast(tf.range(0, 8, 1), F32)
         + tf.fill([tf.shape(x)[0], 8], 0.5), (None, 4)),
    case("like_broadcast",
         lambda x: tf.zeros_like(x) + tf.ones_like(x) * 2 + tf.broadcast_to(x[:, :1], tf.shape(x)),
         (None, 4)),
    case("one_hot", lambda x: tf.one_hot(tf.argmax(x, 1), 5, 2.0, -1.0), (None, 5)),
    case("reverse", lambda x: tf.reverse(x, [1, -1]) + x[:, ::-1, :], (None, 4, 3)),
]


def _feeds(graph, shapes, dtype, positive):
    feeds = {}
    for name, shape in zip(graph.inputs, shapes):
        dims = [2 if d is None else d for d in shape]
        if dtype == I32:
            v = RNG.integers(-9, 10, dims).astype(np.int32)
            feeds[name] = np.where(v == 0, 3, v) if name != graph.inputs[0] else v
        else:
            v = RNG.standard_normal(dims).astype(np.float32)
            feeds[name] = np.abs(v) + 0.1 if positive else v
    return feeds


@pytest.mark.parametrize("fn, shapes, dtype, positive", CASES)
def test_op_matches_tensorflow(fn, shapes, dtype, positive):
    sig = [tf.TensorSpec(s, dtype, name=f"in{i}") for i, s in enumerate(shapes)]
    concrete = tf.function(fn).get_concrete_function(*sig)
    graph = normalize(from_function(concrete), validate=True)
    feeds = _feeds(graph, shapes, dtype, positive)
    expected = np.asarray(concrete(*[tf.constant(feeds[n]) for n in graph.inputs]))
    got = run(graph, feeds)[graph.outputs[0]]
    scale = max(float(np.abs(expected).max()), 1e-3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale, err_msg="reference interpreter")
    model = to_model(graph, opset=17).SerializeToString()
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    out = sess.run(None, feeds)[0]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5 * scale, err_msg="onnxruntime")


def _keras_case(build, shape):
    keras = pytest.importorskip("keras")
    inp = keras.Input(shape[1:])
    model = keras.Model(inp, build(keras.layers, inp))
    for v in model.weights:
        v.assign(RNG.standard_normal(v.shape).astype(np.float32) * 0.5)
    spec = tf.TensorSpec((None, *shape[1:]))
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return model, fn


@pytest.mark.parametrize("build, shape", [
    pytest.param(lambda L, x: L.Conv2D(6, 3, groups=2)(x), (2, 9, 9, 4), id="grouped_conv_xla_call"),
    pytest.param(lambda L, x: L.Bidirectional(L.GRU(4, unroll=True))(x), (2, 5, 3), id="bidirectional_gru"),
    pytest.param(lambda L, x: L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2)(x), (2, 7, 7, 3),
                 id="separable_conv"),
])
def test_keras_layers(build, shape):
    """Keras 3 layers whose TF graphs need more than op mapping: a grouped Conv2D is an XLA function
    call TensorFlow does not inline (the frontend does), a backward RNN flips time with ReverseV2."""
    model, fn = _keras_case(build, shape)
    graph = normalize(from_function(fn), validate=True)
    x = RNG.standard_normal(shape).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    got = run(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


def test_rnn_without_unroll_names_the_while_loop():
    _, fn = _keras_case(lambda L, x: L.LSTM(4)(x), (2, 5, 3))
    with pytest.raises(UnsupportedOpError) as e:
        from_function(fn)
    assert "While (TF2 while loop; a Keras RNN layer saves as one unless built with unroll=True)" \
        in str(e.value)
    assert "unroll=True" in e.value.hint


def test_fusions_give_single_ops():
    """hard-swish, GELU, swish and tf.nn.batch_normalization on constant statistics (as Keras writes
    them) each become one canonical op."""
    sig = tf.TensorSpec((None, 4, 4, 3), F32)
    var = tf.constant(np.abs(RNG.standard_normal(3)).astype(np.float32) + 0.5)
    fn = tf.function(lambda x: tf.nn.gelu(tf.nn.silu(x * tf.nn.relu6(x + 3) / 6))
                     + tf.nn.batch_normalization(x, w(3), var, w(3), w(3), 1e-3))
    ops = from_function(fn.get_concrete_function(sig)).ops_histogram()
    assert ops.get("HardSwish") == 1 and ops.get("Gelu") == 1 and ops.get("Swish") == 1, ops
    assert ops.get("BatchNormalization") == 1 and "Rsqrt" not in ops and "Sqrt" not in ops, ops


def test_unsupported_ops_listed_at_once():
    sig = tf.TensorSpec((None, 8), F32)
    fn = tf.function(lambda x: tf.math.cumprod(tf.math.bessel_i0(x), 1) + tf.math.bessel_i0(x * 2))
    with pytest.raises(UnsupportedOpError) as e:
        from_function(fn.get_concrete_function(sig))
    assert set(e.value.missing) == {"BesselI0", "Cumprod"} and len(e.value.missing["BesselI0"]) == 2
    assert "x2" in str(e.value) and "\n" not in str(e.value)


def test_symmetric_mirror_pad_is_refused_not_approximated():
    fn = tf.function(lambda x: tf.pad(x, [[0, 0], [1, 1]], "SYMMETRIC"))
    with pytest.raises(UnsupportedOpError, match="SYMMETRIC"):
        from_function(fn.get_concrete_function(tf.TensorSpec((None, 4), F32)))
