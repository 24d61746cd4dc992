"""pointwise (matmul) kernels vs plain NumPy oracles."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_pointwise as kp
from refnet.ops import add_nan_first, multiply_nan_first
from support import assert_same_bits
from refnet.bits import same_bits

FLT_MAX = float(np.finfo(np.float32).max)
QTYPES = [(np.uint8, np.uint8), (np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8)]
ACT_RANGES = [(-FLT_MAX, FLT_MAX), (0.0, 6.0), (0.0, FLT_MAX), (-1.0, 1.0),
              (-np.inf, np.inf), (0.0, 0.0)]


def matmul_int_oracle(a, w, bias, a_off, w_off):
    acc = (a.astype(np.int64) + a_off) @ (w.astype(np.int64) + w_off).T
    if bias is not None:
        acc += bias.astype(np.int64)
    return acc.astype(np.int32)


def matmul_float_oracle(a, w, bias, act_min, act_max, nan_block=0):
    total = np.zeros((a.shape[0], w.shape[0]), np.float32)
    blocked = (a.shape[1] // nan_block) * nan_block if nan_block else 0
    with np.errstate(all="ignore"):
        for k in range(a.shape[1]):
            product = multiply_nan_first(a[:, k:k + 1], w[:, k])  # float32 product, then float32 add
            # both NaN: the product's NaN in whole blocks of nan_block, else the total's
            total = add_nan_first(product, total) if k < blocked else add_nan_first(total, product)
        b = np.zeros(w.shape[0], np.float32) if bias is None else bias
        v = add_nan_first(total, np.broadcast_to(b, total.shape))
        v = np.where(v < np.float32(act_min), np.float32(act_min), v)
        return np.where(np.float32(act_max) < v, np.float32(act_max), v).astype(np.float32)


def quantized_values(rng, dtype, shape, kind):
    info = np.iinfo(dtype)
    if kind == "uniform":
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    if kind == "extremes":
        return rng.choice(np.array([info.min, info.max], dtype=dtype), size=shape)
    return np.full(shape, info.max if kind == "max" else info.min, dtype=dtype)


def float_values(rng, shape, kind):
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "wide":
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-40, 38, size=shape)).astype(np.float32)
    if kind == "bits":
        return rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, FLT_MAX, 3.0],
                       np.float32)
    return rng.choice(special, size=shape)


@st.composite
def offsets_for(draw, dtype):
    info = np.iinfo(dtype)
    zp = draw(st.sampled_from([int(info.min), int(info.max), 0]) |
              st.integers(int(info.min), int(info.max)))
    return draw(st.sampled_from([-zp, -zp, -zp, -(2**15), 2**15]))


@settings(max_examples=250, deadline=None)
@given(st.integers(1, 20), st.integers(0, 40), st.integers(1, 20), st.sampled_from(QTYPES),
       st.data(), st.integers(0, 2**32 - 1))
def test_matmul_int_matches_oracle(rows, depth, cout, qtypes, data, seed):
    tin, tw = qtypes
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["uniform", "uniform", "extremes", "max", "min"]))
    a = quantized_values(rng, tin, (rows, depth), kind)
    w = quantized_values(rng, tw, (cout, depth), kind)
    a_off, w_off = data.draw(offsets_for(tin)), data.draw(offsets_for(tw))
    bias_kind = data.draw(st.sampled_from(["none", "small", "int32"]))
    bias = None
    if bias_kind == "small":
        bias = rng.integers(-(2**16), 2**16, size=cout).astype(np.int32)
    elif bias_kind == "int32":
        bias = rng.choice(np.array([-(2**31), 2**31 - 1, 0], np.int64), size=cout).astype(np.int32)
    out = np.full((rows, cout), 12345, np.int32)
    kp.matmul_int(a, w, bias, a_off, w_off, out)
    assert same_bits(out, matmul_int_oracle(a, w, bias, a_off, w_off))


@settings(max_examples=250, deadline=None)
@given(st.integers(1, 20), st.integers(0, 40), st.integers(1, 20), st.data(),
       st.integers(0, 2**32 - 1))
def test_matmul_float_matches_oracle(rows, depth, cout, data, seed):
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["normal", "normal", "wide", "bits", "special"]))
    a = float_values(rng, (rows, depth), kind)
    w = float_values(rng, (cout, depth), kind)
    bias = None if data.draw(st.booleans()) else float_values(rng, (cout,), kind)
    act_min, act_max = data.draw(st.sampled_from(ACT_RANGES))
    out = np.full((rows, cout), 7.0, np.float32)
    nan_block = data.draw(st.sampled_from([0, 4]))
    kp.matmul_float(a, w, bias, act_min, act_max, out, nan_block)
    assert_same_bits(out, matmul_float_oracle(a, w, bias, act_min, act_max, nan_block))


def test_matmul_float_is_sequential_not_pairwise():
    # A long sum where sequential float32 accumulation differs from NumPy's pairwise sum/BLAS.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 1000)).astype(np.float32)
    w = rng.standard_normal((4, 1000)).astype(np.float32)
    out = np.empty((3, 4), np.float32)
    kp.matmul_float(a, w, None, -FLT_MAX, FLT_MAX, out)
    assert_same_bits(out, matmul_float_oracle(a, w, None, -FLT_MAX, FLT_MAX))
    assert not same_bits(out, (a @ w.T).astype(np.float32))


def test_matmul_large_rows_against_oracle():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, size=(500, 24)).astype(np.uint8)
    w = rng.integers(0, 256, size=(40, 24)).astype(np.uint8)
    bias = rng.integers(-1000, 1000, size=40).astype(np.int32)
    out = np.empty((500, 40), np.int32)
    kp.matmul_int(a, w, bias, -128, -131, out)
    assert same_bits(out, matmul_int_oracle(a, w, bias, -128, -131))


@pytest.mark.parametrize("shapes", [
    dict(w=(5, 7)),          # depth mismatch
    dict(out=(4, 6)),        # rows mismatch
    dict(out=(3, 4)),        # cout mismatch
    dict(bias=4),            # bias length
])
def test_matmul_rejects_bad_shapes(shapes):
    a_shape, w_shape, out_shape, bias_len = (3, 6), (5, 6), (3, 5), 5
    a_shape = shapes.get("a", a_shape)
    w_shape = shapes.get("w", w_shape)
    out_shape = shapes.get("out", out_shape)
    bias_len = shapes.get("bias", bias_len)
    with pytest.raises(ValueError):
        kp.matmul_int(np.zeros(a_shape, np.int8), np.zeros(w_shape, np.int8),
                      np.zeros(bias_len, np.int32), 0, 0, np.zeros(out_shape, np.int32))
    with pytest.raises(ValueError):
        kp.matmul_float(np.zeros(a_shape, np.float32), np.zeros(w_shape, np.float32),
                        np.zeros(bias_len, np.float32), 0.0, 6.0,
                        np.zeros(out_shape, np.float32))


def test_matmul_rejects_bad_offsets_and_types():
    a, w, out = np.zeros((3, 6), np.int8), np.zeros((5, 6), np.int8), np.zeros((3, 5), np.int32)
    with pytest.raises(ValueError):
        kp.matmul_int(a, w, None, 2**15 + 1, 0, out)
    with pytest.raises(ValueError):
        kp.matmul_int(a, w, None, 0, -(2**15) - 1, out)
    with pytest.raises((TypeError, ValueError)):
        kp.matmul_int(a.astype(np.int32), w, None, 0, 0, out)
    with pytest.raises((TypeError, ValueError)):
        kp.matmul_int(a, w, None, 0, 0, out.astype(np.int64))
    with pytest.raises((TypeError, ValueError)):
        kp.matmul_float(a.astype(np.float64), w.astype(np.float32), None, 0.0, 1.0,
                        out.astype(np.float32))
    with pytest.raises((TypeError, ValueError)):
        kp.matmul_int(np.zeros((6, 3), np.int8).T, w, None, 0, 0, out)
