"""TRANSPOSE_CONV single-op models vs LiteRT, on every path.

Randomized over kernel sizes, strides 1-3, both paddings (with the output sizes each admits),
activations, with and without bias, zero points (range ends included) and scales; float32, int8
per-channel and uint8 per-tensor.
"""
import numpy as np
import pytest

import refnet
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input

ACTIVATIONS = ["NONE", "RELU", "RELU6"]
PATHS = ["reference", "optimized", "xnnpack"]


def _zero_point(rng, dtype):
    info = np.iinfo(dtype)
    return int(rng.choice([info.min, info.max, 0 if dtype == np.int8 else 128,
                           rng.integers(info.min, info.max + 1)]))


def _output_size(rng, padding, in_size, kernel, stride):
    """An output size whose convolution back onto the input has in_size positions: SAME takes
    any size in ((in - 1) * s, in * s]; VALID any size with (out - k + s) // s == in."""
    if padding == "SAME":
        return int(rng.integers((in_size - 1) * stride + 1, in_size * stride + 1))
    low = (in_size - 1) * stride + kernel
    return int(rng.integers(low, low + stride))


def transpose_conv_model(rng, dtype, bias=None):
    n = int(rng.integers(1, 3))
    h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    padding = str(rng.choice(["SAME", "VALID"]))
    oh, ow = _output_size(rng, padding, h, kh, sh), _output_size(rng, padding, w, kw, sw)
    cin, cout = int(rng.integers(1, 7)), int(rng.integers(1, 6))
    act = str(rng.choice(ACTIVATIONS))
    with_bias = bool(rng.random() < 0.7) if bias is None else bias
    mb = ModelBuilder()
    shape = mb.tensor("output_shape", (4,), np.int32, data=np.array([n, oh, ow, cout], np.int32))
    if dtype == np.float32:
        wt = mb.tensor("w", (cout, kh, kw, cin), np.float32, data=rng.standard_normal((cout, kh, kw, cin)))
        x = mb.input("x", (n, h, w, cin), np.float32)
        b = mb.tensor("b", (cout,), np.float32, data=rng.standard_normal(cout))
        y = mb.tensor("y", (n, oh, ow, cout), np.float32)
    else:
        in_scale = np.float32(rng.uniform(0.005, 0.1))
        x = mb.input("x", (n, h, w, cin), dtype, scale=in_scale, zero_point=_zero_point(rng, dtype))
        if dtype == np.uint8:
            wscale = np.float32(rng.uniform(0.001, 0.05))
            wt = mb.tensor("w", (cout, kh, kw, cin), np.uint8, data=rng.integers(0, 256, (cout, kh, kw, cin)),
                           scale=wscale, zero_point=_zero_point(rng, dtype))
        else:
            wscale = rng.uniform(0.0005, 0.05, size=cout).astype(np.float32)
            wt = mb.tensor("w", (cout, kh, kw, cin), np.int8, data=rng.integers(-127, 128, (cout, kh, kw, cin)),
                           scale=wscale, zero_point=0, axis=0)
        b = mb.tensor("b", (cout,), np.int32, data=rng.integers(-5000, 5000, size=cout),
                      scale=in_scale * np.atleast_1d(wscale).astype(np.float32), zero_point=0)
        y = mb.tensor("y", (n, oh, ow, cout), dtype, scale=np.float32(rng.uniform(0.01, 0.5)),
                      zero_point=_zero_point(rng, dtype))
    mb.outputs.append(y)
    inputs = [shape, wt, x, b] if with_bias else [shape, wt, x]
    mb.op("TRANSPOSE_CONV", inputs, [y], version=3 if with_bias else (2 if dtype != np.float32 else 1),
          padding=padding, stride_h=sh, stride_w=sw, fused_activation_function=act)
    return mb, (n, h, w, cin)
