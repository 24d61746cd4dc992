"""MEAN: refnet vs LiteRT BUILTIN_REF, bit for bit, on single-op models."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.errors import InvalidModelError, UnsupportedOpError
from refnet.ops.reduce import reduced_shape
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet


def mean_model(shape, dtype, axes, keep_dims, in_q=None, out_q=None, axis_as_input=False):
    mb = ModelBuilder()
    in_q = in_q or (None, None)
    out_q = out_q or in_q
    x = mb.input("x", shape, dtype, scale=in_q[0], zero_point=in_q[1])
    axes_arr = np.asarray(axes, np.int32)
    if axis_as_input:
        a = mb.input("axes", axes_arr.shape, np.int32)
    else:
        a = mb.tensor("axes", axes_arr.shape, np.int32, data=axes_arr)
    rank = len(shape)
    resolved = []
    for v in axes:
        v = v + rank if v < 0 else v
        if v not in resolved:
            resolved.append(v)
    y = mb.tensor("y", reduced_shape(tuple(shape), tuple(resolved), keep_dims), dtype,
                  scale=out_q[0], zero_point=out_q[1])
    mb.outputs.append(y)
    mb.op("MEAN", [x, a], [y], keep_dims=keep_dims)
    return mb.build()


def random_axes(rng, rank):
    k = int(rng.integers(1, rank + 1))  # (an empty constant axis list has no buffer to read)
    axes = [int(a) for a in rng.choice(rank, size=k, replace=False)]
    # Negative spellings and duplicates resolve to the same axes.
    axes = [a - rank if rng.random() < 0.3 else a for a in axes]
    if axes and rng.random() < 0.2:
        axes.append(axes[0])
    return axes


def random_quantization(rng, dtype):
    info = np.iinfo(dtype)
    scale = float(rng.choice([1e-5, 0.004, 0.02, 0.1, 1.0, 3.0, 250.0]))
    zp = int(rng.choice([info.min, info.max, 0, int(rng.integers(info.min, info.max + 1))]))
    return scale, zp


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_mean_random(dtype):
    rng = np.random.default_rng({np.float32: 1, np.int8: 2, np.uint8: 3}[dtype])
    for case in range(300):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 7, size=rank))
        axes = random_axes(rng, rank)
        keep = bool(rng.integers(0, 2))
        if dtype == np.float32:
            model = mean_model(shape, dtype, axes, keep)
            x = (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 1e30])).astype(np.float32)
        else:
            in_q = random_quantization(rng, dtype)
            out_q = in_q if rng.random() < 0.3 else random_quantization(rng, dtype)
            # Keep input_scale / output_scale within what int32 requantization can express.
            if in_q[0] / out_q[0] > 2.0 ** 20:
                out_q = (in_q[0], out_q[1])
            model = mean_model(shape, dtype, axes, keep, in_q, out_q)
            x = random_input(shape, dtype, rng)
        assert_bit_exact(model, [x])


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_global_pool_axes_1_2(dtype, keep_dims):
    """MobileNet's global average pool as MEAN over [1, 2] (and [2, 1], [-3, -2])."""
    rng = np.random.default_rng(17)
    for axes in ([1, 2], [2, 1], [-3, -2]):
        for hw in [(7, 7), (1, 1), (5, 3), (14, 14), (32, 32)]:
            shape = (2,) + hw + (24,)
            if dtype == np.float32:
                model = mean_model(shape, dtype, axes, keep_dims)
                x = (rng.standard_normal(shape) * 10).astype(np.float32)
            else:
                in_q = random_quantization(rng, dtype)
                out_q = random_quantization(rng, dtype)
                if in_q[0] / out_q[0] > 2.0 ** 20:
                    out_q = (in_q[0] / 8, out_q[1])
                model = mean_model(shape, dtype, axes, keep_dims, in_q, out_q)
                x = random_input(shape, dtype, rng)
            assert_bit_exact(model, [x])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_mean_same_quantization_and_large_counts(dtype):
    """Same scales on both sides (multiplier 2**30, shift 1) and counts up to 2**16."""
    rng = np.random.default_rng(23)
    for shape, axes in [((1, 256, 256, 1), [1, 2]), ((1, 3, 1000), [1, 2]), ((4, 33, 17), [0, 1, 2]),
                        ((2, 2, 2, 2), [0, 1, 2, 3]), ((1, 1, 1, 1), [3])]:
        for q in [(0.1, 0), (0.02, int(np.iinfo(dtype).min)), (1.5, int(np.iinfo(dtype).max))]:
            for keep in (True, False):
                model = mean_model(shape, dtype, axes, keep, q, q)
                assert_bit_exact(model, [random_input(shape, dtype, rng)])


def test_mean_extreme_scale_ratios():
    rng = np.random.default_rng(29)
    for dtype in (np.int8, np.uint8):
        for in_scale, out_scale in [(1e-9, 1.0), (1.0, 1e-6), (3e-3, 3e-3 * 2 ** 15),
                                    (2.0 ** -20, 2.0 ** -20), (0.7, 0.7 * 1.0000001)]:
            for shape, axes in [((1, 7, 7, 8), [1, 2]), ((3, 5), [1]), ((2, 9, 4), [0, 2])]:
                out_zp = -2 if dtype == np.int8 else 7
                model = mean_model(shape, dtype, axes, True, (in_scale, 3), (out_scale, out_zp))
                assert_bit_exact(model, [random_input(shape, dtype, rng)])


def test_mean_float_signed_zero_and_specials():
    shape = (2, 3, 4)
    x = np.full(shape, -0.0, np.float32)
    x[1, 0, 0] = np.inf
    x[1, 1, 1] = -np.inf
    x[0, 2, :] = np.nan
    x[1, 2, 3] = 3.0e38
    x[1, 2, 2] = 3.0e38
    for axes in ([0], [1], [2], [0, 2], [0, 1, 2], [2, 1, 0]):
        for keep in (True, False):
            assert_bit_exact(mean_model(shape, np.float32, axes, keep), [x])


def test_mean_axis_from_input_tensor():
    rng = np.random.default_rng(31)
    shape = (2, 4, 5, 3)
    for axes in ([1, 2], [3], [0, -1]):
        model = mean_model(shape, np.float32, axes, True, axis_as_input=True)
        assert_bit_exact(model, [random_input(shape, np.float32, rng), np.asarray(axes, np.int32)])


def test_bad_models_raise_typed_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(InvalidModelError):  # axis out of range
        run_refnet(mean_model((2, 3), np.float32, [2], True), [x])
    mb = ModelBuilder()  # declared output shape disagrees
    xi = mb.input("x", (2, 3), np.float32)
    a = mb.tensor("axes", (1,), np.int32, data=np.array([1], np.int32))
    y = mb.tensor("y", (2, 3), np.float32)
    mb.outputs.append(y)
    mb.op("MEAN", [xi, a], [y], keep_dims=True)
    with pytest.raises(InvalidModelError):
        run_refnet(mb.build(), [x])
    with pytest.raises(UnsupportedOpError):
        run_refnet(mean_model((2, 3), np.int32, [1], True, (1.0, 0)), [np.zeros((2, 3), np.int32)])  # int16 is 16x8's
    with pytest.raises(InvalidModelError, match="scales must be finite and > 0"):  # the reader refuses it
        run_refnet(mean_model((2, 3), np.int8, [1], True, (1.0, 0), (0.0, 0)),
                   [np.zeros((2, 3), np.int8)])


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_mean_empty_input(dtype):
    """No input elements: LiteRT writes quiet_NaN() of the output type (0 for integers)."""
    q = None if dtype == np.float32 else (0.1, 3)
    for shape, axes in [((2, 0, 3), [1]), ((2, 0, 3), [0, 2])]:
        assert_bit_exact(mean_model(shape, dtype, axes, True, q), [np.zeros(shape, dtype)])
