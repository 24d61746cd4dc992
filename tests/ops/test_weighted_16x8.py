"""16x8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (int16 activations, int8 per-channel
weights, int64 bias, zero points 0) single-op models vs LiteRT, on every path.

Generated shapes, strides, dilations, paddings, activations and groups; inputs at the int16 ends
and random; scales that put accumulators past 2**31 (the int64 accumulator's reason to be) and
output multipliers above 1 (a left shift in the int64 requantization).
"""
import numpy as np
import pytest

import refnet
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact

ACTIVATIONS = ["NONE", "RELU", "RELU6"]
PATHS = ["reference", "optimized", "xnnpack"]
INT16_BIAS_TYPE = 4  # TensorType INT64: the converter's quantized_bias_type for 16x8


def int16_input(shape, rng) -> np.ndarray:
    """Random int16 values with the type's ends (and 0) over-represented."""
    x = rng.integers(-32768, 32768, size=shape)
    ends = rng.random(shape)
    x = np.where(ends < 0.1, -32768, np.where(ends < 0.2, 32767, np.where(ends < 0.25, 0, x)))
    return x.astype(np.int16)


def _weights(rng, shape, axis):
    scales = rng.uniform(0.0005, 0.05, size=shape[axis]).astype(np.float32)
    data = rng.integers(-127, 128, size=shape)
    data[rng.random(shape) < 0.1] = 127
    return data.astype(np.int8), scales


def _bias(mb, rng, n, in_scale, w_scales):
    # up to ~2**40: beyond int32, as the int64 bias allows
    data = rng.integers(-(2**40), 2**40, size=n) if rng.random() < 0.3 else rng.integers(-2**20, 2**20, size=n)
    return mb.tensor("b", (n,), np.int64, data=data, scale=np.float32(in_scale) * w_scales, zero_point=0)


def _output_scale(rng, in_scale):
    # ratios s_x * s_w / s_y from ~2**-20 to ~4 (a left shift up to 2)
    return np.float32(in_scale * 10.0 ** rng.uniform(-3.5, 1.0))


def _conv_model(rng, kind):
    n = int(rng.integers(1, 3))
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dh, dw = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID":
        h, w = max(h, (kh - 1) * dh + 1), max(w, (kw - 1) * dw + 1)
    cin = int(rng.integers(1, 9))
    mb = ModelBuilder()
    in_scale = np.float32(rng.uniform(1e-4, 1e-2))
    x = mb.input("x", (n, h, w, cin), np.int16, scale=in_scale, zero_point=0)
    if kind == "CONV_2D":
        groups = int(rng.choice([1, 1, 1, 2])) if cin % 2 == 0 else 1
        cout = int(rng.integers(1, 6)) * groups
        wshape, axis = (cout, kh, kw, cin // groups), 0
    else:
        cout = cin * int(rng.integers(1, 4))
        wshape, axis = (1, kh, kw, cout), 3
    wdata, wscales = _weights(rng, wshape, axis)
    wt = mb.tensor("w", wshape, np.int8, data=wdata, scale=wscales, zero_point=0, axis=axis)
    b = _bias(mb, rng, cout, in_scale, wscales)
    y = mb.tensor("y", (1,), np.int16, scale=_output_scale(rng, in_scale), zero_point=0)
    mb.outputs.append(y)
    options = dict(padding=padding, stride_h=sh, stride_w=sw, dilation_hfactor=dh, dilation_wfactor=dw,
                   fused_activation_function=str(rng.choice(ACTIVATIONS)))
    if kind == "DEPTHWISE_CONV_2D":
        options["depth_multiplier"] = cout // cin
    else:
        options["quantized_bias_type"] = INT16_BIAS_TYPE

    def out(size, k, s, d):
        return (size + s - 1) // s if padding == "SAME" else (size - (k - 1) * d - 1 + s) // s

    mb.tensors[y].shape = (n, out(h, kh, sh, dh), out(w, kw, sw, dw), cout)
    # LiteRT's 16x8 CONV_2D needs a bias (conv.cc: has_bias)
    inputs = [x, wt, b] if kind == "CONV_2D" or rng.random() < 0.85 else [x, wt]
    mb.op(kind, inputs, [y], version=4 if kind == "CONV_2D" else 5, **options)
    return mb


def _fc_model(rng):
    batches, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 60)), int(rng.integers(1, 20))
    mb = ModelBuilder()
    in_scale = np.float32(rng.uniform(1e-4, 1e-2))
    x = mb.input("x", (batches, depth), np.int16, scale=in_scale, zero_point=0)
    per_channel = rng.random() < 0.7
    wdata, wscales = _weights(rng, (units, depth), 0)
    if not per_channel:
        wscales = wscales[:1]
    w = mb.tensor("w", (units, depth), np.int8, data=wdata, scale=wscales, zero_point=0, axis=0)
    b = _bias(mb, rng, units, in_scale, wscales)  # per-tensor weights, per-tensor bias scale
    y = mb.tensor("y", (batches, units), np.int16, scale=_output_scale(rng, in_scale), zero_point=0)
    mb.outputs.append(y)
    mb.op("FULLY_CONNECTED", [x, w, b] if rng.random() < 0.85 else [x, w, -1], [y], version=7,
          fused_activation_function=str(rng.choice(ACTIVATIONS)), quantized_bias_type=INT16_BIAS_TYPE)
    return mb


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_16x8_weighted_ops_match_litert(kind, path):
    rng = np.random.default_rng(sum(map(ord, kind + path)))
    for case in range(40):
        mb = _fc_model(rng) if kind == "FULLY_CONNECTED" else _conv_model(rng, kind)
        x = mb.tensors[mb.inputs[0]]
        assert assert_bit_exact(mb.build(), [int16_input(x.shape, rng)], path=path) == 2, case


def test_16x8_nonzero_zero_point_is_a_typed_error():
    rng = np.random.default_rng(0)
    mb = ModelBuilder()
    x = mb.input("x", (1, 2, 2, 2), np.int16, scale=0.01, zero_point=3)
    w = mb.tensor("w", (2, 1, 1, 2), np.int8, data=rng.integers(-127, 128, (2, 1, 1, 2)),
                  scale=np.full(2, 0.01, np.float32), axis=0)
    b = mb.tensor("b", (2,), np.int64, data=np.zeros(2), scale=np.full(2, 1e-4, np.float32))
    y = mb.tensor("y", (1, 2, 2, 2), np.int16, scale=0.01, zero_point=0)
    mb.outputs.append(y)
    mb.op("CONV_2D", [x, w, b], [y], padding="SAME", stride_h=1, stride_w=1, dilation_hfactor=1,
          dilation_wfactor=1, fused_activation_function="NONE")
    with pytest.raises(refnet.InvalidModelError, match=r"CONV_2D.*zero point must be 0"):
        refnet.Interpreter(model_content=mb.build()).allocate_tensors()
