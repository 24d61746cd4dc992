"""Hybrid (float32 input, int8 weights) CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED against
LiteRT's BUILTIN_REF kernels, bit for bit (refnet/ops/hybrid.py says what is reproduced).

Single-op models are drawn at random from seeded generators: shapes, strides, padding,
dilation, activations, per-channel / per-tensor scales, weights that include -128 (the SSSE3
dot-product defect), and input distributions chosen to hit the quantizers' corners: all zero
(rmin == rmax), all positive, all negative, constant, a single non-zero value, values whose
quantized product lands just below a half (where the vector rounding and std::round differ),
and mixed batches. A real dynamic-range model from TensorFlow's converter closes the file.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from support import assert_bit_exact  # noqa: E402

from refnet.tflite_writer import ModelBuilder  # noqa: E402
from refnet.ops import hybrid  # noqa: E402
from refnet.ops.window import _out_size  # noqa: E402

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
DISTRIBUTIONS = ("normal", "zero", "positive", "negative", "constant", "one_hot", "near_half",
                 "mixed_batches", "wide", "tiny")


def make_input(shape, kind: str, rng: np.random.Generator) -> np.ndarray:
    n = shape[0]
    size = int(np.prod(shape[1:]))
    if kind == "normal":
        x = rng.standard_normal(shape)
    elif kind == "zero":
        x = np.zeros(shape)
    elif kind == "positive":
        x = np.abs(rng.standard_normal(shape)) * rng.uniform(0.1, 10)
    elif kind == "negative":
        x = -np.abs(rng.standard_normal(shape)) * rng.uniform(0.1, 10)
    elif kind == "constant":
        x = np.full(shape, rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 100))
    elif kind == "one_hot":
        x = np.zeros(shape)
        flat = x.reshape(n, size)
        flat[:, rng.integers(size)] = rng.standard_normal()
    elif kind == "near_half":
        # max |x| = 127 makes the symmetric multiplier exactly 1: x * 1 = k +- 0.49999997 lands
        # just below a half, where trunc(x + 0.5f) and std::round disagree.
        k = rng.integers(-120, 120, size=shape).astype(np.float64)
        below = np.nextafter(np.float32(0.5), np.float32(0)).astype(np.float64)
        x = k + np.where(rng.random(shape) < 0.5, below, -below)
        flat = x.reshape(n, size)
        flat[:, rng.integers(size)] = 127.0
    elif kind == "mixed_batches":
        x = rng.standard_normal(shape) * rng.uniform(0.01, 50, size=(n,) + (1,) * (len(shape) - 1))
        x[0] = 0.0
    elif kind == "wide":
        x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 4, size=shape)
    elif kind == "tiny":
        x = rng.standard_normal(shape) * 1e-30
    else:
        raise ValueError(kind)
    return np.asarray(x, np.float32)


def random_weights(shape, rng):
    w = rng.integers(-127, 128, size=shape)
    if rng.random() < 0.7:  # sprinkle -128, which LiteRT's converter never writes
        w[rng.random(shape) < 0.15] = -128
    return w.astype(np.int8)


def random_scales(count, per_channel: str, rng):
    if per_channel == "tensor":
        return np.array([rng.uniform(1e-4, 0.05)], np.float32)
    if per_channel == "equal":  # several scales, all the same: LiteRT's per-tensor conv path
        return np.full(count, rng.uniform(1e-4, 0.05), np.float32)
    return rng.uniform(1e-4, 0.05, size=count).astype(np.float32)


def conv_model(rng, n, h, w, cin, cout, kh, kw, stride, dil, padding, act, scales, groups=1):
    mb = ModelBuilder()
    x = mb.input("x", (n, h, w, cin), np.float32)
    fcin = cin // groups
    wd = random_weights((cout, kh, kw, fcin), rng)
    wt = mb.tensor("w", wd.shape, np.int8, data=wd, scale=scales, zero_point=0, axis=0)
    bt = mb.tensor("b", (cout,), np.float32, data=rng.standard_normal(cout).astype(np.float32))
    oh = _out_size(padding, h, kh, stride[0], dil[0])
    ow = _out_size(padding, w, kw, stride[1], dil[1])
    y = mb.tensor("y", (n, oh, ow, cout), np.float32)
    mb.outputs.append(y)
    mb.op("CONV_2D", [x, wt, bt], [y], version=2, padding=padding, stride_h=stride[0],
          stride_w=stride[1], dilation_hfactor=dil[0], dilation_wfactor=dil[1],
          fused_activation_function=act)
    return mb.build()


def depthwise_model(rng, n, h, w, cin, mult, kh, kw, stride, dil, padding, act, bias=True):
    cout = cin * mult
    mb = ModelBuilder()
    x = mb.input("x", (n, h, w, cin), np.float32)
    wd = random_weights((1, kh, kw, cout), rng)
    scales = random_scales(cout, "channel", rng)
    wt = mb.tensor("w", wd.shape, np.int8, data=wd, scale=scales, zero_point=0, axis=3)
    inputs = [x, wt]
    if bias:
        inputs.append(mb.tensor("b", (cout,), np.float32,
                                data=rng.standard_normal(cout).astype(np.float32)))
    oh = _out_size(padding, h, kh, stride[0], dil[0])
    ow = _out_size(padding, w, kw, stride[1], dil[1])
    y = mb.tensor("y", (n, oh, ow, cout), np.float32)
    mb.outputs.append(y)
    mb.op("DEPTHWISE_CONV_2D", inputs, [y], version=2, padding=padding, stride_h=stride[0],
          stride_w=stride[1], depth_multiplier=mult, dilation_hfactor=dil[0],
          dilation_wfactor=dil[1], fused_activation_function=act)
    return mb.build()


def fc_model(rng, in_shape, units, act, per_channel, asymmetric, keep_num_dims, bias=True):
    depth = in_shape[-1]
    mb = ModelBuilder()
    x = mb.input("x", in_shape, np.float32)
    wd = random_weights((units, depth), rng)
    wt = mb.tensor("w", wd.shape, np.int8, data=wd,
                   scale=random_scales(units, "channel" if per_channel else "tensor", rng),
                   zero_point=0, axis=0)
    inputs = [x, wt]
    if bias:
        inputs.append(mb.tensor("b", (units,), np.float32,
                                data=rng.standard_normal(units).astype(np.float32)))
    batches = int(np.prod(in_shape)) // depth
    out_shape = tuple(in_shape[:-1]) + (units,) if keep_num_dims else (batches, units)
    y = mb.tensor("y", out_shape, np.float32)
    mb.outputs.append(y)
    mb.op("FULLY_CONNECTED", inputs, [y], version=7, fused_activation_function=act,
          keep_num_dims=keep_num_dims, asymmetric_quantize_inputs=asymmetric)
    return mb.build()


def _geometry(rng):
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dil = (1, 1) if rng.random() < 0.6 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = str(rng.choice(["SAME", "VALID"]))
    h = int(rng.integers((kh - 1) * dil[0] + 1, 10))
    w = int(rng.integers((kw - 1) * dil[1] + 1, 10))
    return h, w, kh, kw, stride, dil, padding


# --- input quantizers, checked against LiteRT's temporaries through whole ops ---------------


def test_asymmetric_quantizer_zero_and_constant_rows():
    q, s, zp = hybrid.asymmetric_quantize(np.zeros(13, np.float32))
    assert not q.any() and s == 1 and zp == 0
    q, s, zp = hybrid.asymmetric_quantize(np.full(9, 2.0, np.float32))  # rmin 0, rmax 2
    assert zp == -128 and q.max() == 127


def test_vector_rounding_differs_from_std_round_only_in_the_vector_part():
    below = np.nextafter(np.float32(0.5), np.float32(0))
    v = np.array([127.0] + [below] * 15, np.float32)  # 8 vector lanes, then 8 more vector lanes
    q, _ = hybrid.symmetric_quantize(v)
    assert q[1] == 1  # trunc(0.49999997f + 0.5f) = trunc(1.0f)
    v = np.array([127.0] + [below] * 10, np.float32)  # elements 8..10 are the postamble
    q, _ = hybrid.symmetric_quantize(v)
    assert list(q[1:8]) == [1] * 7 and list(q[8:]) == [0] * 3


def test_sse_row_sums_wrap_in_int16_lanes():
    w = np.full((1, 4096), 127, np.int8)  # each lane sums 512 * 127 = 65024 -> wraps to -512
    assert hybrid.sse_row_sums(w)[0] == 8 * (65024 - 65536)


# --- CONV_2D ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(42))
def test_conv_random(seed):
    rng = np.random.default_rng(1000 + seed)
    h, w, kh, kw, stride, dil, padding = _geometry(rng)
    n = int(rng.integers(1, 4))
    groups = 2 if seed % 7 == 3 else 1
    cin = groups * int(rng.integers(1, 20))
    cout = groups * int(rng.integers(1, 7))
    per = ("channel", "tensor", "equal")[seed % 3]
    if groups > 1:
        per = "channel"
    scales = random_scales(cout, per, rng)
    act = ACTIVATIONS[seed % 4]
    model = conv_model(rng, n, h, w, cin, cout, kh, kw, stride, dil, padding, act, scales, groups)
    x = make_input((n, h, w, cin), DISTRIBUTIONS[seed % len(DISTRIBUTIONS)], rng)
    assert_bit_exact(model, [x])


@pytest.mark.parametrize("per", ["channel", "tensor"])
@pytest.mark.parametrize("cout", [4, 6])  # a GEMM (Cout % 4 == 0) or the SSSE3 loop
def test_conv_minus_128_weights_with_negative_inputs(per, cout):
    rng = np.random.default_rng(7 + cout)
    n, h, w, cin = 2, 6, 5, 24  # 3x3x24 = 216 taps: 13 blocks of 16, then 8
    model = conv_model(rng, n, h, w, cin, cout, 3, 3, (1, 1), (1, 1), "SAME", "NONE",
                       random_scales(cout, per, rng))
    x = make_input((n, h, w, cin), "negative", rng)
    assert_bit_exact(model, [x])


@pytest.mark.parametrize("kind", ["zero", "positive", "near_half", "one_hot"])
def test_conv_pointwise_large(kind):
    rng = np.random.default_rng(31)
    n, h, w, cin, cout = 1, 7, 7, 40, 13
    model = conv_model(rng, n, h, w, cin, cout, 1, 1, (1, 1), (1, 1), "SAME", "RELU6",
                       random_scales(cout, "channel" if kind != "near_half" else "tensor", rng))
    assert_bit_exact(model, [make_input((n, h, w, cin), kind, rng)])


def test_conv_grouped_with_one_scale_is_unsupported():
    import refnet
    from refnet.errors import UnsupportedOpError

    rng = np.random.default_rng(5)
    model = conv_model(rng, 1, 4, 4, 4, 4, 1, 1, (1, 1), (1, 1), "SAME", "NONE",
                       random_scales(4, "tensor", rng), groups=2)
    with pytest.raises(UnsupportedOpError):
        refnet.Interpreter(model_content=model).allocate_tensors()


# --- DEPTHWISE_CONV_2D -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_depthwise_random(seed):
    rng = np.random.default_rng(2000 + seed)
    h, w, kh, kw, stride, dil, padding = _geometry(rng)
    n = int(rng.integers(1, 4))
    cin, mult = int(rng.integers(1, 12)), int(rng.choice([1, 1, 2, 3]))
    act = ACTIVATIONS[seed % 4]
    model = depthwise_model(rng, n, h, w, cin, mult, kh, kw, stride, dil, padding, act,
                            bias=seed % 5 != 2)
    x = make_input((n, h, w, cin), DISTRIBUTIONS[(seed + 3) % len(DISTRIBUTIONS)], rng)
    assert_bit_exact(model, [x])


# --- FULLY_CONNECTED -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(48))
def test_fully_connected_random(seed):
    rng = np.random.default_rng(3000 + seed)
    depth = int(rng.choice([1, 3, 7, 8, 15, 16, 17, 24, 31, 33, 64, 100]))
    batches = int(rng.integers(1, 4))
    keep = seed % 3 == 1
    in_shape = (batches, 2, depth) if keep else (batches, depth)
    units = int(rng.integers(1, 12))
    model = fc_model(rng, in_shape, units, ACTIVATIONS[seed % 4], per_channel=seed % 2 == 0,
                     asymmetric=(seed // 2) % 2 == 0, keep_num_dims=keep, bias=seed % 9 != 4)
    x = make_input(in_shape, DISTRIBUTIONS[seed % len(DISTRIBUTIONS)], rng)
    assert_bit_exact(model, [x])


@pytest.mark.parametrize("asymmetric", [False, True])
def test_fully_connected_wide_rows_wrap_row_sums(asymmetric):
    """K = 4112: the SSE row sums wrap in int16 lanes; the asymmetric input offset uses them."""
    rng = np.random.default_rng(41)
    depth, units = 4112, 6
    mb = ModelBuilder()
    x = mb.input("x", (2, depth), np.float32)
    wd = np.full((units, depth), 127, np.int8)
    wd[1] = -128
    wd[2:] = random_weights((units - 2, depth), rng)
    wt = mb.tensor("w", wd.shape, np.int8, data=wd, scale=random_scales(units, "channel", rng),
                   axis=0)
    bt = mb.tensor("b", (units,), np.float32, data=rng.standard_normal(units).astype(np.float32))
    y = mb.tensor("y", (2, units), np.float32)
    mb.outputs.append(y)
    mb.op("FULLY_CONNECTED", [x, wt, bt], [y], version=7, asymmetric_quantize_inputs=asymmetric)
    xv = make_input((2, depth), "positive", rng)
    xv[1] -= 0.5  # a non-zero zero point on the asymmetric path
    assert_bit_exact(mb.build(), [xv])


# --- a real dynamic-range model from TensorFlow's converter -----------------------------------


@pytest.fixture(scope="module")
def dynamic_range_model() -> bytes:
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(3)
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Input((20, 20, 8), batch_size=2),
        layers.Conv2D(48, 3, strides=2, padding="same", activation="relu6"),
        layers.DepthwiseConv2D(3, padding="same", depth_multiplier=3, activation="relu"),
        layers.Conv2D(40, 1, padding="valid"),
        layers.Conv2D(32, 3, dilation_rate=2, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10),
    ])
    # Non-trivial biases (Keras starts them at zero).
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.random.default_rng(0).standard_normal(layer.bias.shape) * 0.1)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def test_tf_dynamic_range_model(dynamic_range_model):
    import refnet

    graph = refnet.read_tflite(model_content=dynamic_range_model)
    hybrid_ops = [op.kind for op in graph.ops
                  if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                  and graph.tensors[op.inputs[1]].dtype == np.int8]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(hybrid_ops), hybrid_ops
    rng = np.random.default_rng(9)
    shape = tuple(graph.tensors[graph.inputs[0]].shape)
    for kind in ("normal", "positive", "zero", "wide"):
        assert_bit_exact(dynamic_range_model, [make_input(shape, kind, rng)])


# --- non-finite inputs: NaN hides values from the min/max, inf makes the scales infinite ------


def _sprinkle(x, rng):
    flat = x.reshape(-1)
    count = int(rng.integers(1, 4))
    flat[rng.integers(flat.size, size=count)] = rng.choice(
        [np.nan, np.inf, -np.inf, 3e38, -3e38], size=count)
    return x


@pytest.mark.parametrize("seed", range(24))
def test_non_finite_inputs(seed):
    rng = np.random.default_rng(4000 + seed)
    kind = ("conv", "depthwise", "fc_sym", "fc_asym")[seed % 4]
    act = ACTIVATIONS[(seed // 4) % 4]
    if kind == "conv":
        n, h, w, cin, cout = 2, 5, 4, 6, 5
        per = "channel" if seed % 8 < 4 else "tensor"
        model = conv_model(rng, n, h, w, cin, cout, 3, 3, (1, 1), (1, 1), "SAME", act,
                           random_scales(cout, per, rng))
        shape = (n, h, w, cin)
    elif kind == "depthwise":
        shape = (2, 5, 6, 5)
        model = depthwise_model(rng, *shape, 2, 3, 3, (1, 1), (1, 1), "SAME", act)
    else:
        shape = (3, int(rng.choice([5, 12, 37])))
        model = fc_model(rng, shape, 6, act, per_channel=seed % 8 < 4,
                         asymmetric=kind == "fc_asym", keep_num_dims=False)
    x = _sprinkle(make_input(shape, "normal", rng), rng)
    if seed % 5 == 0:
        x[0] = np.nan  # a whole batch of NaN
    assert_bit_exact(model, [x])
