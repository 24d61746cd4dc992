"""AVERAGE_POOL_2D / MAX_POOL_2D: refnet vs LiteRT BUILTIN_REF, bit for bit, on single-op models."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from refnet.errors import InvalidModelError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def pool_model(kind, shape, dtype, filt, stride, padding, act, scale=None, zp=None,
               out_scale=None, out_zp=None):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, scale=scale, zero_point=zp)
    n, h, w, c = shape
    if padding == "SAME":
        oh, ow = -(-h // stride[0]), -(-w // stride[1])
    else:
        oh, ow = (h - filt[0]) // stride[0] + 1, (w - filt[1]) // stride[1] + 1
    y = mb.tensor("y", (n, oh, ow, c), dtype,
                  scale=scale if out_scale is None else out_scale,
                  zero_point=zp if out_zp is None else out_zp)
    mb.outputs.append(y)
    mb.op(kind, [x], [y], padding=padding, stride_h=stride[0], stride_w=stride[1],
          filter_height=filt[0], filter_width=filt[1], fused_activation_function=act)
    return mb.build()


def random_case(rng, dtype):
    n = int(rng.integers(1, 3))
    h, w = (int(v) for v in rng.integers(1, 13, size=2))
    c = int(rng.choice([1, 2, 3, 8, 17]))
    padding = str(rng.choice(["SAME", "VALID"]))
    fh = int(rng.integers(1, (h if padding == "VALID" else 6) + 1))
    fw = int(rng.integers(1, (w if padding == "VALID" else 6) + 1))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    act = str(rng.choice(ACTIVATIONS))
    kw = {}
    if dtype != np.float32:
        info = np.iinfo(dtype)
        kw["scale"] = float(rng.choice([1e-4, 0.003, 0.02, 0.1, 1.0, 7.5]))
        kw["zp"] = int(rng.choice([info.min, info.max, 0, int(rng.integers(info.min, info.max + 1))]))
    return (n, h, w, c), (fh, fw), stride, padding, act, kw


def float_input(rng, shape):
    x = (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 1e3, 1e37])).astype(np.float32)
    # Signed zeros, ties and specials exercise the exact comparison and summation order.
    flat = x.reshape(-1)
    k = flat.size
    for value in (0.0, -0.0, np.inf, -np.inf, np.nan, 1.0):
        flat[rng.integers(0, k, size=max(1, k // 20))] = value
    return x


@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_pool_random(kind, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{np.dtype(dtype).name}".encode()))
    for case in range(150):
        shape, filt, stride, padding, act, kw = random_case(rng, dtype)
        model = pool_model(kind, shape, dtype, filt, stride, padding, act, **kw)
        if dtype == np.float32:
            x = float_input(rng, shape) if case % 3 == 0 else random_input(shape, dtype, rng)
        else:
            x = random_input(shape, dtype, rng)
        assert_bit_exact(model, [x])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_average_rounding_ties(dtype):
    """Sums that are exact halves of the count: the reference rounds them away from zero."""
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    for filt in [(1, 2), (2, 2), (2, 1), (3, 3), (4, 4)]:
        shape = (1, 8, 8, 4)
        model = pool_model("AVERAGE_POOL_2D", shape, dtype, filt, filt, "VALID", "NONE",
                           scale=0.5, zp=0)
        x = rng.choice(np.array([info.min, info.min + 1, -1 if info.min < 0 else 0, 0, 1,
                                 info.max - 1, info.max]), size=shape).astype(dtype)
        assert_bit_exact(model, [x])


def test_global_average_pool_float_order():
    """MobileNet's head: a 7x7 global average over many channels, large dynamic range."""
    rng = np.random.default_rng(3)
    shape = (2, 7, 7, 96)
    model = pool_model("AVERAGE_POOL_2D", shape, np.float32, (7, 7), (1, 1), "VALID", "NONE")
    x = (rng.standard_normal(shape) * np.exp(rng.uniform(-20, 20, size=shape))).astype(np.float32)
    assert_bit_exact(model, [x])


def test_activation_with_extreme_quantization():
    """Fused activations on uint8/int8 whose clamp bounds fall outside the type."""
    rng = np.random.default_rng(11)
    for dtype in (np.int8, np.uint8):
        info = np.iinfo(dtype)
        for scale, zp in [(0.01, info.min), (0.01, info.max), (100.0, 0), (1e-3, info.min),
                          (0.023, 5)]:
            for act in ACTIVATIONS:
                for kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
                    shape = (1, 5, 6, 3)
                    model = pool_model(kind, shape, dtype, (2, 3), (2, 2), "SAME", act,
                                       scale=scale, zp=zp)
                    assert_bit_exact(model, [random_input(shape, dtype, rng)])


def test_output_quantization_differs():
    """LiteRT does not requantize pools: the output's quantization only moves the clamp."""
    rng = np.random.default_rng(5)
    shape = (1, 6, 6, 4)
    for act in ACTIVATIONS:
        model = pool_model("AVERAGE_POOL_2D", shape, np.uint8, (3, 3), (1, 1), "SAME", act,
                           scale=0.05, zp=100, out_scale=0.02, out_zp=30)
        assert_bit_exact(model, [random_input(shape, np.uint8, rng)])


def test_bad_models_raise_typed_errors():
    shape = (1, 4, 4, 2)
    bad_out = ModelBuilder()
    x = bad_out.input("x", shape, np.float32)
    y = bad_out.tensor("y", (1, 3, 3, 2), np.float32)
    bad_out.outputs.append(y)
    bad_out.op("MAX_POOL_2D", [x], [y], padding="SAME", stride_h=1, stride_w=1,
               filter_height=2, filter_width=2)
    with pytest.raises(InvalidModelError):
        run_refnet(bad_out.build(), [np.zeros(shape, np.float32)])

    zero_stride = ModelBuilder()
    x = zero_stride.input("x", shape, np.float32)
    y = zero_stride.tensor("y", shape, np.float32)
    zero_stride.outputs.append(y)
    zero_stride.op("AVERAGE_POOL_2D", [x], [y], padding="SAME", stride_h=0, stride_w=1,
                   filter_height=2, filter_width=2)
    with pytest.raises(InvalidModelError):
        run_refnet(zero_stride.build(), [np.zeros(shape, np.float32)])

    int32 = ModelBuilder()  # (int16 is the 16x8 models' pooling)
    x = int32.input("x", shape, np.int32)
    y = int32.tensor("y", shape, np.int32)
    int32.outputs.append(y)
    int32.op("AVERAGE_POOL_2D", [x], [y], padding="SAME", stride_h=1, stride_w=1,
             filter_height=2, filter_width=2)
    with pytest.raises(UnsupportedOpError):
        run_refnet(int32.build(), [np.zeros(shape, np.int32)])
