"""MEAN: refnet vs LiteRT BUILTIN_REF, bit for bit, on single-op models."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.errors import InvalidModelError, UnsupportedOpError
from refnet.ops.reduce import reduced_shape
from refnet.tflite_writer import ModelBuilder
from refnet.litert import run_litert
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
@pytest.mark.parametrize("path", ["optimized", "xnnpack"])
def test_mean_global_pool_optimized_paths(dtype, path):
    """The global average pool (MEAN over H, W, keep_dims) against LiteRT's optimized kernels
    and XNNPACK: channel counts with and without a tail after the whole 16-channel blocks (the
    two rounding forms of Form.MEAN_OPTIMIZED_4D), batch 1 and 2, and scale ratios on both sides
    of 1 (the optimized form's bias)."""
    rng = np.random.default_rng(41)
    for shape in [(1, 7, 7, 16), (1, 7, 7, 40), (2, 5, 3, 24), (1, 14, 14, 5), (2, 1, 1, 33)]:
        for _ in range(4):
            in_q = random_quantization(rng, dtype)
            out_q = random_quantization(rng, dtype)
            if in_q[0] / out_q[0] > 2.0 ** 20:
                out_q = (in_q[0] / 8, out_q[1])
            model = mean_model(shape, dtype, [1, 2], True, in_q, out_q)
            assert_bit_exact(model, [random_input(shape, dtype, rng)], path=path)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_mean_optimized_4d_kernel_matches_numpy_form(dtype):
    """requantize.mean_optimized_4d_int32 (the Cython requantization per channel range) against
    mean_optimized_4d_from_sums wherever mean_optimized_4d_kernel_takes, bit for bit."""
    from refnet import requantize

    rng = np.random.default_rng(43)
    info = np.iinfo(dtype)
    tested = 0
    for _ in range(300):
        count = int(rng.choice([1, 9, 49, 196, 1024, 4000]))
        in_q, out_q = random_quantization(rng, dtype), random_quantization(rng, dtype)
        params = requantize.mean_optimized_4d_params(count, np.float32(in_q[0]), in_q[1],
                                                     np.float32(out_q[0]), out_q[1])
        if not requantize.mean_optimized_4d_kernel_takes(params, count):
            continue
        n, c = int(rng.integers(1, 3)), int(rng.choice([1, 5, 16, 24, 40]))
        total = rng.integers(int(info.min) * count, int(info.max) * count + 1, size=(n, c)).astype(np.int32)
        vector_channels = int(rng.choice([0, (c // 16) * 16]))
        want = requantize.mean_optimized_4d_from_sums(total, np.arange(c) < vector_channels, params, dtype)
        got = requantize.mean_optimized_4d_int32(total, vector_channels, params, dtype)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        tested += 1
    assert tested > 100


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


# --- SUM, REDUCE_MAX, REDUCE_MIN -----------------------------------------------------------------

PATHS = ["reference", "optimized", "xnnpack"]
REDUCERS = ["SUM", "REDUCE_MAX", "REDUCE_MIN"]


def reduce_model(kind, shape, dtype, axes, keep_dims, in_q=None, out_q=None):
    mb = ModelBuilder()
    in_q = in_q or (None, None)
    out_q = out_q or in_q
    x = mb.input("x", shape, dtype, scale=in_q[0], zero_point=in_q[1])
    axes_arr = np.asarray(axes, np.int32)
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
    mb.op(kind, [x, a], [y], keep_dims=keep_dims)
    return mb.build()


def float_values(shape, rng, nan_and_subnormal=True):
    """Values where the summation order changes float32 bits (1e8 next to 1 and -1e8), with
    signed zeros, infinities, FLT_MAX, and NaN and a subnormal unless nan_and_subnormal=False."""
    specials = np.array([0.0, -0.0, 1.0, -1.0, 1e8, -1e8, 3e38, -3e38, np.inf, -np.inf]
                        + ([np.nan, 1e-40] if nan_and_subnormal else []), np.float32)
    v = rng.standard_normal(shape).astype(np.float32) * np.float32(rng.choice([1e-3, 1.0, 1e4]))
    pick = rng.random(shape)
    v = np.where(pick < 0.35, rng.choice(specials[:6], size=shape), v)
    v = np.where(pick > 0.97, rng.choice(specials[6:], size=shape), v)
    return v.astype(np.float32)


def reduce_cases(kind, dtype, rng, count, nan_and_subnormal=True, max_dim=6):
    """(model, input) pairs: random shapes and axes (negative, repeated, empty), keep_dims both ways."""
    for case in range(count):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, max_dim, size=rank))
        axes = [] if case % 11 == 5 else random_axes(rng, rank)
        keep = bool(case % 2)
        if dtype == np.float32:
            yield reduce_model(kind, shape, dtype, axes, keep), float_values(shape, rng, nan_and_subnormal)
            continue
        if dtype == np.int32:
            x = rng.integers(-2**31, 2**31, size=shape, dtype=np.int64).astype(np.int32)
            if case % 3 == 0:
                x = (x % 1000).astype(np.int32)
            yield reduce_model(kind, shape, dtype, axes, keep), x
            continue
        in_q = random_quantization(rng, dtype)
        out_q = in_q
        if kind == "SUM" and case % 4:
            out_q = random_quantization(rng, dtype)
            if in_q[0] / out_q[0] > 2.0 ** 20:
                out_q = (in_q[0], out_q[1])
        yield reduce_model(kind, shape, dtype, axes, keep, in_q, out_q), random_input(shape, dtype, rng)


REDUCE_CASES = [(k, d) for k in REDUCERS for d in (np.float32, np.int32, np.int8, np.uint8)]
# XNNPACK's float32 SUM adds in its own order (vector lanes): not modelled (README, "Profiles"),
# as its other float32 sums are not; its float32 MAX / MIN are measured below without NaN.
REDUCE_RUNS = [(k, d, p) for k, d in REDUCE_CASES for p in PATHS
               if not (p == "xnnpack" and d == np.float32)]


@pytest.mark.parametrize("kind, dtype, path", REDUCE_RUNS,
                         ids=[f"{k}-{np.dtype(d).name}-{p}" for k, d, p in REDUCE_RUNS])
def test_reduce_random(kind, dtype, path):
    rng = np.random.default_rng(REDUCE_CASES.index((kind, dtype)) * 3 + PATHS.index(path))
    for model, x in reduce_cases(kind, dtype, rng, 40):
        assert_bit_exact(model, [x], path=path)


@pytest.mark.parametrize("kind", ["REDUCE_MAX", "REDUCE_MIN"])
def test_reduce_max_min_float_xnnpack(kind):
    """XNNPACK's float32 MAX / MIN equal the optimized kernel's (Form.REDUCE_FROM_FIRST: -inf stays
    -inf, ties take the later element) on inputs without NaN and subnormals, up to 16 elements a
    dimension. Not modelled: with NaN its vector lanes decide (a NaN is replaced by the next
    element of its lane, then the lanes are combined), and it flushes subnormals to zero."""
    rng = np.random.default_rng(41 + REDUCERS.index(kind))
    for model, x in reduce_cases(kind, np.float32, rng, 40, nan_and_subnormal=False, max_dim=17):
        assert_bit_exact(model, [x], path="xnnpack")


@pytest.mark.parametrize("path", ["reference", "optimized"])
def test_sum_float_order(path):
    """Each output adds its inputs in row-major input order: with 1e8, 1, -1e8, 1 any other order
    (pairwise, reversed) gives other bits, so passing pins the order."""
    x = np.array([[1e8, 1.0, 3.0, -1e8], [1.0, 1e8, 1.0, 1.0], [-1e8, 1.0, -1e8, 1e8], [1.0, 1.0, 1.0, 1.0]],
                 np.float32)
    for axes in ([0], [1], [0, 1], [-1, 0]):
        assert_bit_exact(reduce_model("SUM", x.shape, np.float32, axes, False), [x], path=path)
    row = x[:, 0]
    in_order = np.float32(0)
    for v in row:
        in_order = np.float32(in_order + v)
    reversed_order = np.float32(0)
    for v in row[::-1]:
        reversed_order = np.float32(reversed_order + v)
    assert in_order != reversed_order  # the data tells orders apart


@pytest.mark.parametrize("path", ["reference", "optimized"])
def test_sum_max_min_signed_zero_and_empty_axes(path):
    """All -0.0: the reference starts at +0.0 unless every axis is reduced (then at the first
    input); the optimized kernel always starts at the first input. An empty axis list adds each
    element to the identity (reference: -0.0 + 0 = +0.0, MAX of -inf = -FLT_MAX) or copies it."""
    x = np.full((2, 3), -0.0, np.float32)
    x[1, 2] = -np.inf
    x[0, 1] = np.nan
    for kind in REDUCERS:
        for axes in ([0], [1], [0, 1], [], [1, 1, -1]):
            for keep in (True, False):
                assert_bit_exact(reduce_model(kind, x.shape, np.float32, axes, keep), [x], path=path)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantized_sum_ties(dtype):
    """Scale ratios that are powers of two make exact halves: the reference rounds them away from
    zero in fixed point, the optimized kernel with std::round in float32, XNNPACK half to even."""
    rng = np.random.default_rng(53)
    info = np.iinfo(dtype)
    for path in PATHS:
        for ratio in (2.0, 4.0, 0.5, 16.0, 1.0 / 3.0):
            for zps in ((0, 0), (int(info.min), 5), (3, int(info.max))):
                shape = (6, 7)
                model = reduce_model("SUM", shape, dtype, [1], False, (0.05, zps[0]), (0.05 * ratio, zps[1]))
                assert_bit_exact(model, [random_input(shape, dtype, rng)], path=path)


def test_int8_sum_reference_reads_bytes_as_uint8():
    """LiteRT 2.3.0's reference int8 SUM runs its uint8_t kernel: -1 counts as 255 and the result is
    clamped to [0, 255] and stored as a byte. The optimized path sums the int8 values."""
    x = np.array([[-1, -2, 3, 4], [1, 2, 3, 4], [-128, 0, 0, 0]], np.int8)
    model = reduce_model("SUM", x.shape, np.int8, [1], False, (0.5, 0), (0.5, 0))
    assert_bit_exact(model, [x], path="reference")
    assert_bit_exact(model, [x], path="optimized")
    reference = run_litert(model, [x], path="reference")
    optimized = run_litert(model, [x], path="optimized")
    output = 2  # x, axes, y
    assert reference[output][0] != optimized[output][0]  # 516 clamped to 255, read back as -1; vs 4


def _row_with_sum(target, count, lo, hi, rng):
    row = np.full(count, lo, np.int64)
    remaining = target - lo * count
    for i in range(count):
        step = min(hi - lo, remaining)
        row[i] += step
        remaining -= step
    return rng.permutation(row)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantized_sum_xnnpack_unfused(dtype):
    """XNNPACK's SUM is float32(sum) * s + zp' in two roundings: rows built to hit the sums where
    the fused multiply-add (and the exact product) would round elsewhere."""
    from refnet import requantize

    rng = np.random.default_rng(59)
    info = np.iinfo(dtype)
    lo, hi, count = int(info.min), int(info.max), 40
    sums = np.arange(lo * count, hi * count + 1)
    tested = 0
    while tested < 6:
        in_scale = float(np.float32(rng.uniform(0.001, 1)))
        out_scale = float(np.float32(in_scale * rng.uniform(0.6, 30)))
        zps = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
        s = np.float32(np.float32(in_scale) / np.float32(out_scale))
        zpf = requantize.scaled_sums_fp32_zero_point(count, s, zps[0], zps[1])
        fused = requantize.scaled_sums_fp32(sums, s, zpf, dtype, True)
        unfused = requantize.scaled_sums_fp32(sums, s, zpf, dtype, False)
        where = np.nonzero(fused != unfused)[0][:8]
        if not where.size:
            continue
        x = np.stack([_row_with_sum(int(t), count, lo, hi, rng) for t in sums[where]]).astype(dtype)
        model = reduce_model("SUM", x.shape, dtype, [1], False, (in_scale, zps[0]), (out_scale, zps[1]))
        assert_bit_exact(model, [x], path="xnnpack")
        tested += 1


@pytest.mark.parametrize("kind", REDUCERS)
def test_reduce_empty_input_and_axis_input(kind):
    """No input elements: the identity everywhere (0; lowest() for MAX; max() for MIN). An axis
    tensor given at run time resolves as a constant one."""
    for dtype in (np.float32, np.int32):
        for shape, axes in [((2, 0, 3), [1]), ((2, 0, 3), [0, 2])]:
            for path in ("reference", "optimized"):
                assert_bit_exact(reduce_model(kind, shape, dtype, axes, True), [np.zeros(shape, dtype)], path=path)
    rng = np.random.default_rng(61)
    shape = (2, 4, 5, 3)
    for axes in ([1, 2], [3], [0, -1]):
        mb = ModelBuilder()
        x = mb.input("x", shape, np.float32)
        a = mb.input("axes", (len(axes),), np.int32)
        resolved = tuple(sorted(v % 4 for v in axes))
        y = mb.tensor("y", reduced_shape(shape, resolved, True), np.float32)
        mb.outputs.append(y)
        mb.op(kind, [x, a], [y], keep_dims=True)
        assert_bit_exact(mb.build(), [float_values(shape, rng), np.asarray(axes, np.int32)])


def test_reduce_bad_models_raise_typed_errors():
    x = np.zeros((2, 3), np.float32)
    for kind in REDUCERS:
        with pytest.raises(InvalidModelError, match="outside"):  # axis out of range
            run_refnet(reduce_model(kind, (2, 3), np.float32, [-3], True), [x])
    for kind in ("REDUCE_MAX", "REDUCE_MIN"):  # LiteRT requires the input's quantization on the output
        for out_q in ((0.2, 0), (0.1, 1)):
            with pytest.raises(InvalidModelError, match="scale and zero point"):
                run_refnet(reduce_model(kind, (2, 3), np.int8, [1], True, (0.1, 0), out_q), [np.zeros((2, 3), np.int8)])
    with pytest.raises(UnsupportedOpError):
        run_refnet(reduce_model("SUM", (2, 3), np.int16, [1], True, (1.0, 0)), [np.zeros((2, 3), np.int16)])


@pytest.mark.parametrize("path", ["reference", "optimized"])
@pytest.mark.parametrize("kind", ["REDUCE_MAX", "REDUCE_MIN"])
def test_reduce_max_min_nan_positions(kind, path):
    """A NaN at every position of a row, with the best value before or after it and ties of
    signed zeros: the reference never takes a NaN (unless it starts there), the optimized kernel
    takes it and then the next element."""
    rows = []
    for best_first in (True, False):
        for nan_at in range(9):
            row = np.array([0.0, -0.0, 3.0, -2.0, 0.0, -0.0, 1.0, -5.0, 0.5], np.float32)
            row = row if best_first else row[::-1].copy()
            row[nan_at] = np.nan
            rows.append(row)
    x = np.stack(rows)
    for axes in ([1], [0, 1], [0]):
        assert_bit_exact(reduce_model(kind, x.shape, np.float32, axes, False), [x], path=path)
