"""ARG_MAX: refnet vs LiteRT BUILTIN_REF, bit for bit, on single-op models."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.errors import InvalidModelError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

OUT_TYPES = {np.int32: 2, np.int64: 4}


def argmax_model(shape, dtype, axis, axis_dtype, out_dtype, axis_as_input=False, axis_shape=(1,)):
    mb = ModelBuilder()
    q = {"scale": 0.1, "zero_point": 3} if dtype != np.float32 else {}
    x = mb.input("x", shape, dtype, **q)
    a = mb.input("axis", axis_shape, axis_dtype) if axis_as_input else \
        mb.tensor("axis", axis_shape, axis_dtype, data=np.full(axis_shape, axis, axis_dtype))
    a_pos = axis % len(shape)
    y = mb.tensor("y", shape[:a_pos] + shape[a_pos + 1:], out_dtype)
    mb.outputs.append(y)
    mb.op("ARG_MAX", [x, a], [y], output_type=OUT_TYPES[out_dtype])
    return mb.build()


def tie_heavy_input(shape, dtype, rng):
    """Few distinct values so maxima repeat: ties must go to the first index."""
    if dtype == np.float32:
        x = rng.choice(np.array([-1.0, 0.0, -0.0, 0.5, 2.0], np.float32), size=shape)
    else:
        info = np.iinfo(dtype)
        x = rng.choice(np.array([info.min, 0, 1, info.max]), size=shape).astype(dtype)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_argmax_random(dtype):
    rng = np.random.default_rng({np.float32: 1, np.int8: 2, np.uint8: 3}[dtype])
    for case in range(250):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 7, size=rank))
        axis = int(rng.integers(-rank, rank))
        axis_dtype = np.int32 if case % 2 else np.int64
        out_dtype = np.int32 if case % 3 else np.int64
        model = argmax_model(shape, dtype, axis, axis_dtype, out_dtype,
                             axis_shape=(1,) if case % 4 else ())
        x = tie_heavy_input(shape, dtype, rng) if case % 2 else random_input(shape, dtype, rng)
        assert_bit_exact(model, [x])


def test_argmax_classifier_head():
    """1001 classes on the last axis (the contiguous path) and on axis 0."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.int8, np.uint8):
        for shape, axis in [((1, 1001), -1), ((4, 1001), 1), ((1001, 3), 0)]:
            model = argmax_model(shape, dtype, axis, np.int32, np.int64)
            assert_bit_exact(model, [random_input(shape, dtype, rng)])


def test_argmax_float_nan_and_infinities():
    rows = [[np.nan, 1.0, 2.0, 2.0], [np.nan, np.nan, np.nan, np.nan], [1.0, np.nan, 3.0, np.nan],
            [-np.inf, np.nan, -np.inf, -1.0], [np.nan, -np.inf, np.nan, -np.inf],
            [-0.0, 0.0, -0.0, 0.0], [0.0, -0.0, np.inf, np.inf]]
    x = np.array(rows, np.float32)
    # Contiguous slices (nothing after the axis, or only 1s) and strided ones treat a leading
    # NaN differently in LiteRT; cover both.
    for shaped in (x, x[:, :, None], x[:, None, :], x[:, :, None, None]):
        for axis in range(shaped.ndim):
            for out_dtype in (np.int32, np.int64):
                model = argmax_model(shaped.shape, np.float32, axis, np.int32, out_dtype)
                assert_bit_exact(model, [np.ascontiguousarray(shaped)])


def test_argmax_float_random_nans():
    rng = np.random.default_rng(13)
    values = np.array([np.nan, -np.inf, -1.0, -0.0, 0.0, 2.0, np.inf], np.float32)
    for case in range(60):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 5, size=rank))
        x = rng.choice(values, size=shape).astype(np.float32)
        axis = int(rng.integers(0, rank))
        assert_bit_exact(argmax_model(shape, np.float32, axis, np.int32, np.int32), [x])


def test_argmax_float_nans_contiguous_lengths():
    """Contiguous slices of every length class of LiteRT's 4-lane loop (below 4, whole groups
    of four, leftovers), many rows each, NaN-heavy."""
    rng = np.random.default_rng(14)
    values = np.array([np.nan, -np.inf, -1.0, -0.0, 0.0, 2.0, np.inf], np.float32)
    for size in [1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 17, 33, 1001]:
        x = rng.choice(values, size=(300, size), p=[.3, .1, .15, .1, .1, .15, .1]).astype(np.float32)
        assert_bit_exact(argmax_model(x.shape, np.float32, 1, np.int32, np.int64), [x])


def test_argmax_axis_as_input():
    rng = np.random.default_rng(7)
    shape = (2, 5, 3)
    for axis_dtype in (np.int32, np.int64):
        model = argmax_model(shape, np.float32, 1, axis_dtype, np.int32, axis_as_input=True)
        assert_bit_exact(model, [random_input(shape, np.float32, rng), np.array([1], axis_dtype)])


def test_argmax_rejections():
    x = np.zeros((2, 3), np.float32)
    mb = ModelBuilder()  # axis out of range
    xi = mb.input("x", (2, 3), np.float32)
    a = mb.tensor("axis", (1,), np.int32, data=np.array([2], np.int32))
    y = mb.tensor("y", (2,), np.int32)
    mb.outputs.append(y)
    mb.op("ARG_MAX", [xi, a], [y], output_type=2)
    with pytest.raises(InvalidModelError):
        run_refnet(mb.build(), [x])
    mb = ModelBuilder()  # output_type disagrees with the output tensor
    xi = mb.input("x", (2, 3), np.float32)
    a = mb.tensor("axis", (1,), np.int32, data=np.array([1], np.int32))
    y = mb.tensor("y", (2,), np.int32)
    mb.outputs.append(y)
    mb.op("ARG_MAX", [xi, a], [y], output_type=4)
    with pytest.raises(InvalidModelError):
        run_refnet(mb.build(), [x])
    with pytest.raises(UnsupportedOpError):
        run_refnet(argmax_model((2, 3), np.int16, 1, np.int32, np.int32), [np.zeros((2, 3), np.int16)])
