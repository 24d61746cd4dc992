"""RESIZE_BILINEAR: refnet vs LiteRT BUILTIN_REF, bit for bit, on single-op models."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.errors import InvalidModelError, OpExecutionError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

MODES = [(False, False), (True, False), (False, True)]  # (align_corners, half_pixel_centers)


def resize_model(in_shape, size, dtype, align, half, q=None, size_as_input=False, kind="RESIZE_BILINEAR"):
    mb = ModelBuilder()
    q = q or {}
    x = mb.input("x", in_shape, dtype, **q)
    size_arr = np.asarray(size, np.int32)
    s = mb.input("size", (2,), np.int32) if size_as_input else \
        mb.tensor("size", (2,), np.int32, data=size_arr)
    y = mb.tensor("y", (in_shape[0], size[0], size[1], in_shape[3]), dtype, **q)
    mb.outputs.append(y)
    mb.op(kind, [x, s], [y], align_corners=align, half_pixel_centers=half)
    return mb.build()


def quant(dtype, rng):
    if dtype == np.float32:
        return {}
    info = np.iinfo(dtype)
    return {"scale": float(rng.choice([0.003, 0.1, 2.0])),
            "zero_point": int(rng.integers(info.min, info.max + 1))}


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int8])
def test_resize_random(dtype):
    rng = np.random.default_rng({np.float32: 1, np.uint8: 2, np.int8: 3}[dtype])
    for case in range(250):
        align, half = MODES[case % 3]
        n, c = int(rng.integers(1, 3)), int(rng.choice([1, 3, 8]))
        in_h, in_w = (int(v) for v in rng.integers(1, 12, size=2))
        out_h, out_w = (int(v) for v in rng.integers(1, 30, size=2))
        shape = (n, in_h, in_w, c)
        model = resize_model(shape, (out_h, out_w), dtype, align, half, quant(dtype, rng))
        if dtype == np.float32:
            x = (rng.standard_normal(shape) * rng.choice([1.0, 1e-3, 1e30])).astype(np.float32)
        else:
            x = random_input(shape, dtype, rng)
        assert_bit_exact(model, [x])


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int8])
def test_resize_common_ratios(dtype):
    """Segmentation-head style 2x/4x/8x upsampling and odd downsampling."""
    rng = np.random.default_rng(9)
    cases = [((7, 7), (14, 14), MODES), ((7, 7), (224, 224), MODES), ((33, 33), (257, 257), MODES),
             ((33, 33), (513, 513), [(True, False)]),  # DeepLab's align_corners upsampling
             ((16, 16), (5, 5), MODES), ((1, 1), (9, 4), MODES), ((10, 3), (3, 10), MODES)]
    for (in_h, in_w), (out_h, out_w), modes in cases:
        for align, half in modes:
            shape = (1, in_h, in_w, 2)
            model = resize_model(shape, (out_h, out_w), dtype, align, half, quant(dtype, rng))
            x = random_input(shape, dtype, rng)
            assert_bit_exact(model, [x])


def test_resize_float_specials():
    shape = (1, 3, 4, 2)
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 3.4e38] * 3, np.float32).reshape(shape)
    for align, half in MODES:
        for size in [(6, 8), (2, 3), (3, 4)]:
            assert_bit_exact(resize_model(shape, size, np.float32, align, half), [x])


def test_resize_float_nan_payloads():
    """Distinct NaN payloads (and signs) under one window: LiteRT keeps the latest NaN term's bits."""
    payloads = [0x7FC00001, 0xFFC00002, 0x7FC00003, 0x7FA00004, 0x3F800000, 0xFF800000]
    x = np.array(payloads * 2, np.uint32).view(np.float32).reshape(1, 3, 4, 1)
    for align, half in MODES:
        for size in [(6, 8), (5, 7), (3, 4)]:
            assert_bit_exact(resize_model((1, 3, 4, 1), size, np.float32, align, half), [x])


@pytest.mark.parametrize("path", ["optimized", "xnnpack"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int8])
def test_resize_optimized_and_xnnpack(dtype, path):
    """Each path's own arithmetic (refnet/forms.py RESIZE_BILINEAR_*): random shapes and the
    segmentation heads' ratios, exact 2x (the optimized float 2x kernel) included."""
    rng = np.random.default_rng({np.float32: 21, np.uint8: 22, np.int8: 23}[dtype] + 10 * len(path))
    shapes = [((int(rng.integers(1, 12)), int(rng.integers(1, 12))), (int(rng.integers(1, 40)), int(rng.integers(1, 40))))
              for _ in range(45)]
    shapes += [((7, 7), (14, 14)), ((5, 3), (10, 6)), ((8, 8), (128, 128)), ((33, 33), (513, 513)), ((16, 16), (5, 5))]
    for case, ((in_h, in_w), size) in enumerate(shapes):
        align, half = MODES[case % 3]
        if size == (513, 513):  # DeepLab's align_corners upsampling (int8's reference kernel overshoots
            align, half = True, False  # without it: test_resize_int8_overshooting_scale_is_an_error)
        shape = (1, in_h, in_w, int(rng.choice([1, 3, 8, 17])))
        model = resize_model(shape, size, dtype, align, half, quant(dtype, rng))
        if dtype == np.float32:
            x = (rng.standard_normal(shape) * rng.choice([1.0, 1e-3, 1e30])).astype(np.float32)
        else:
            x = random_input(shape, dtype, rng)
        assert_bit_exact(model, [x], path=path)


def test_resize_optimized_float_specials():
    """-0, infinities and overflow in the optimized kernels (the 2x kernel's mean of two 3.4e38 is
    +inf, where the reference's weighted sum is finite)."""
    shape = (1, 3, 4, 2)
    x = np.array([0.0, -0.0, np.inf, -np.inf, 2.0, 1.0, -1.0, 3.4e38] * 3, np.float32).reshape(shape)
    for align, half in MODES:
        for size in [(6, 8), (2, 3), (5, 7)]:
            assert_bit_exact(resize_model(shape, size, np.float32, align, half), [x], path="optimized")


def test_resize_optimized_uint8_by_8_is_refused_under_that_profile():
    """LiteRT's optimized uint8 kernel for 8x half-pixel upsampling is its own fixed point, not
    modelled: refnet says so (typed) rather than answer with other bits."""
    model = resize_model((1, 2, 2, 8), (16, 16), np.uint8, False, True, {"scale": 0.1, "zero_point": 3})
    with pytest.raises(UnsupportedOpError, match="8x half-pixel"):
        run_refnet(model, [np.zeros((1, 2, 2, 8), np.uint8)], profile="optimized")
    run_refnet(model, [np.zeros((1, 2, 2, 8), np.uint8)], profile="xnnpack")  # the other paths run it


def test_resize_size_as_input():
    rng = np.random.default_rng(4)
    shape = (1, 5, 6, 3)
    for dtype in (np.float32, np.int8):
        model = resize_model(shape, (9, 4), dtype, False, True, quant(dtype, rng), size_as_input=True)
        assert_bit_exact(model, [random_input(shape, dtype, rng), np.array([9, 4], np.int32)])


def test_resize_rejections():
    x = np.zeros((1, 2, 2, 1), np.float32)
    with pytest.raises(InvalidModelError):
        run_refnet(resize_model((1, 2, 2, 1), (4, 4), np.float32, True, True), [x])
    with pytest.raises(UnsupportedOpError):
        run_refnet(resize_model((1, 2, 2, 1), (4, 4), np.int16, False, False, {"scale": 1.0}),
                   [np.zeros((1, 2, 2, 1), np.int16)])
    with pytest.raises(InvalidModelError):  # declared output disagrees with the size tensor
        mb = ModelBuilder()
        xi = mb.input("x", (1, 2, 2, 1), np.float32)
        s = mb.tensor("size", (2,), np.int32, data=np.array([4, 4], np.int32))
        y = mb.tensor("y", (1, 4, 5, 1), np.float32)
        mb.outputs.append(y)
        mb.op("RESIZE_BILINEAR", [xi, s], [y])
        run_refnet(mb.build(), [x])


@pytest.mark.parametrize("in_size, out_size", [(3, 2048), (33, 513)])
def test_resize_int8_overshooting_scale_is_an_error(in_size, out_size):
    """The rounded 1/1024 scale makes LiteRT's integer kernel read one row past the input
    (33 -> 513: 66/1024 per step, and 512 * 66 / 1024 = 33); refnet refuses."""
    x = np.zeros((1, in_size, 1, 1), np.int8)
    with pytest.raises(OpExecutionError):
        run_refnet(resize_model((1, in_size, 1, 1), (out_size, 1), np.int8, False, False,
                                {"scale": 1.0, "zero_point": 0}), [x])


@pytest.mark.parametrize("path", ["reference", "optimized", "xnnpack"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int8])
def test_resize_nearest_neighbor(dtype, path):
    """Upsampling (SSD feature pyramids, DeepLab) and downsampling by many ratios, each mode."""
    rng = np.random.default_rng({np.float32: 1, np.uint8: 2, np.int8: 3}[dtype] + 10 * len(path))
    sizes = [1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 19, 33]
    for case in range(40):
        in_shape = (1, int(rng.choice(sizes)), int(rng.choice(sizes)), int(rng.integers(1, 4)))
        size = (int(rng.choice(sizes)), int(rng.choice(sizes)))
        align, half = [(False, False), (True, False), (False, True)][case % 3]
        model = resize_model(in_shape, size, dtype, align, half, quant(dtype, rng), kind="RESIZE_NEAREST_NEIGHBOR")
        assert_bit_exact(model, [random_input(in_shape, dtype, rng)], path=path)
