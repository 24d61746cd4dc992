"""requantize kernel vs a plain oracle (Python integers, the reference's C semantics)."""
import numpy as np

from refnet.forms import Form
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_requantize as krq
from refnet import fixedpoint as fx
from refnet.bits import same_bits

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ROUNDINGS = [Form.ROUNDING_DOUBLE, Form.ROUNDING_SINGLE, Form.ROUNDING_DOUBLE_TIES_UP]


def c_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def wrap32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def mbqm_oracle(x, m, s, rounding):
    """MultiplyByQuantizedMultiplier as written in TFLite/gemmlowp, on Python ints."""
    if rounding == Form.ROUNDING_SINGLE:
        total = 31 - s
        return wrap32((x * m + (1 << (total - 1))) >> total)
    a = wrap32(x << max(s, 0))
    if a == m == INT32_MIN:
        high = INT32_MAX
    else:
        ab = a * m
        high = c_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)
    e = max(-s, 0)
    if rounding == Form.ROUNDING_DOUBLE:
        mask = (1 << e) - 1
        threshold = (mask >> 1) + (1 if high < 0 else 0)
        return (high >> e) + (1 if (high & mask) > threshold else 0)
    return high if e == 0 else (high + (1 << (e - 1))) >> e


def requantize_oracle(acc, multiplier, shift, zp, qmin, qmax, rounding):
    rows, channels = acc.shape
    out = np.empty((rows, channels), dtype=np.int64)
    for r in range(rows):
        for c in range(channels):
            m = int(multiplier[c if multiplier.size > 1 else 0])
            s = int(shift[c if shift.size > 1 else 0])
            v = wrap32(mbqm_oracle(int(acc[r, c]), m, s, rounding) + zp)  # int32 `acc += zp`
            out[r, c] = min(max(v, qmin), qmax)
    return out


EDGES = np.array([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX], dtype=np.int64)


@st.composite
def requantize_cases(draw):
    rows = draw(st.integers(1, 5))
    channels = draw(st.integers(1, 7))
    rounding = draw(st.sampled_from(ROUNDINGS))
    dtype = draw(st.sampled_from([np.int8, np.uint8]))
    info = np.iinfo(dtype)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    acc_kind = draw(st.sampled_from(["small", "int32", "edges"]))
    if acc_kind == "small":
        acc = rng.integers(-(2**20), 2**20, size=(rows, channels))
    elif acc_kind == "int32":
        acc = rng.integers(INT32_MIN, INT32_MAX + 1, size=(rows, channels))
    else:
        acc = rng.choice(EDGES, size=(rows, channels))
    per_channel = draw(st.booleans())
    n = channels if per_channel else 1
    mult_kind = draw(st.sampled_from(["typical", "near_max", "any"]))
    if mult_kind == "typical":
        multiplier = rng.integers(2**30, 2**31, size=n)
    elif mult_kind == "near_max":
        multiplier = INT32_MAX - rng.integers(0, 4, size=n)
    else:
        multiplier = rng.integers(INT32_MIN, INT32_MAX + 1, size=n)
    max_shift = 30 if rounding == Form.ROUNDING_SINGLE else 31
    shift_kind = draw(st.sampled_from(["typical", "full", "ends"]))
    if shift_kind == "typical":
        shift = rng.integers(-12, 1, size=n)
    elif shift_kind == "full":
        shift = rng.integers(-31, max_shift + 1, size=n)
    else:
        shift = rng.choice(np.array([-31, -30, 0, max_shift]), size=n)
    zp = draw(st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(int(info.min), int(info.max)))
    qmin = draw(st.sampled_from([int(info.min)]) | st.integers(int(info.min), int(info.max)))
    qmax = draw(st.sampled_from([int(info.max)]) | st.integers(qmin, int(info.max)))
    return (acc.astype(np.int32), multiplier.astype(np.int32), shift.astype(np.int32), zp, qmin,
            qmax, rounding, dtype)


@settings(max_examples=200, deadline=None)
@given(requantize_cases())
def test_requantize_matches_oracle(case):
    acc, multiplier, shift, zp, qmin, qmax, rounding, dtype = case
    out = np.empty(acc.shape, dtype=dtype)
    krq.requantize(acc, multiplier, shift, zp, qmin, qmax, rounding, out)
    expected = requantize_oracle(acc, multiplier, shift, zp, qmin, qmax, rounding)
    assert same_bits(out.astype(np.int64), expected)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_requantize_equals_numpy_primitives(rounding):
    rng = np.random.default_rng(rounding)
    acc = rng.integers(-(2**24), 2**24, size=(300, 16)).astype(np.int32)
    multiplier, shift = fx.quantize_multipliers(rng.uniform(1e-5, 0.9, size=16))
    out = np.empty(acc.shape, dtype=np.int8)
    krq.requantize(acc, multiplier, shift, -3, -128, 127, rounding, out)
    expected = np.clip(fx.multiply_by_quantized_multiplier(acc, multiplier, shift, rounding)
                       .astype(np.int64) - 3, -128, 127).astype(np.int8)
    assert same_bits(out, expected)


def test_requantize_per_tensor_broadcast():
    acc = np.arange(-50, 50, dtype=np.int32).reshape(10, 10)
    out_a = np.empty(acc.shape, np.uint8)
    out_b = np.empty(acc.shape, np.uint8)
    krq.requantize(acc, np.array([2**30], np.int32), np.array([-2], np.int32), 128, 0, 255,
                   Form.ROUNDING_DOUBLE, out_a)
    krq.requantize(acc, np.full(10, 2**30, np.int32), np.full(10, -2, np.int32), 128, 0, 255,
                   Form.ROUNDING_DOUBLE, out_b)
    assert same_bits(out_a, out_b)
    expected = [min(max(mbqm_oracle(int(v), 2**30, -2, Form.ROUNDING_DOUBLE) + 128, 0), 255)
                for v in acc.ravel()]
    assert out_a.ravel().tolist() == expected
    # Double rounding at work: 3 / 8 = 0.375, but the high multiply rounds 1.5 up to 2 and the
    # shift then rounds 2 / 4 = 0.5 away from zero, so the reference gives 1, not 0.
    assert out_a[5, 3] == 128 + 1


def test_requantize_single_channel_with_per_channel_arrays():
    acc = np.array([[7], [-7]], np.int32)
    out = np.empty((2, 1), np.int8)
    krq.requantize(acc, np.array([2**30], np.int32), np.array([0], np.int32), 0, -128, 127,
                   Form.ROUNDING_DOUBLE, out)
    assert out.ravel().tolist() == [4, -3]  # 3.5 -> 4, -3.5 -> -3 (high-mul ties go up)


def test_multiply_by_quantized_multiplier_keeps_shape():
    acc = np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 4)
    for rounding in ROUNDINGS:
        got = krq.multiply_by_quantized_multiplier(acc, 1518500250, -3, rounding)
        assert got.shape == acc.shape and got.dtype == np.int32
        assert same_bits(got, fx.multiply_by_quantized_multiplier(acc, 1518500250, -3,
                                                                       rounding))
    # non-contiguous input is accepted (copied)
    got = krq.multiply_by_quantized_multiplier(acc[:, ::2], 2**30, 1, Form.ROUNDING_DOUBLE)
    assert same_bits(got, fx.multiply_by_quantized_multiplier(acc[:, ::2], 2**30, 1))


def _call(acc=None, m=None, s=None, zp=0, qmin=-128, qmax=127, rounding=0, out=None):
    acc = np.zeros((2, 3), np.int32) if acc is None else acc
    m = np.full(3, 2**30, np.int32) if m is None else m
    s = np.zeros(3, np.int32) if s is None else s
    out = np.empty((2, 3), np.int8) if out is None else out
    krq.requantize(acc, m, s, zp, qmin, qmax, rounding, out)


@pytest.mark.parametrize("kwargs", [
    dict(out=np.empty((2, 4), np.int8)),
    dict(out=np.empty((3, 3), np.int8)),
    dict(m=np.full(2, 2**30, np.int32)),
    dict(s=np.zeros(4, np.int32)),
    dict(m=np.zeros(0, np.int32)),
    dict(s=np.array([0, 32, 0], np.int32)),
    dict(s=np.array([0, -32, 0], np.int32)),
    dict(s=np.array([0, 31, 0], np.int32), rounding=Form.ROUNDING_SINGLE),
    dict(rounding=3),
    dict(rounding=-1),
    dict(qmin=-129),
    dict(qmax=128),
    dict(qmin=5, qmax=4),
    dict(qmin=-1, qmax=255, out=np.empty((2, 3), np.uint8)),
    dict(qmin=0, qmax=256, out=np.empty((2, 3), np.uint8)),
])
def test_requantize_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        _call(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(acc=np.zeros((2, 3), np.int64)),
    dict(out=np.empty((2, 3), np.int16)),
    dict(acc=np.zeros((2, 3), np.int32)[:, ::-1]),
])
def test_requantize_rejects_bad_types(kwargs):
    with pytest.raises((TypeError, ValueError)):
        _call(**kwargs)


def test_requantize_rejects_none():
    with pytest.raises(TypeError):
        krq.requantize(None, np.ones(1, np.int32), np.zeros(1, np.int32), 0, 0, 0, 0,
                       np.empty((1, 1), np.int8))


def test_multiply_by_quantized_multiplier_rejects_bad_arguments():
    with pytest.raises(ValueError):
        krq.multiply_by_quantized_multiplier(np.zeros(3, np.int64), 2**30, 0, 0)
    with pytest.raises(ValueError):
        krq.multiply_by_quantized_multiplier(np.zeros(3, np.int32), 2**30, 31, 1)
    with pytest.raises(ValueError):
        krq.multiply_by_quantized_multiplier(np.zeros(3, np.int32), 2**30, -32, 0)
    with pytest.raises(ValueError):
        krq.multiply_by_quantized_multiplier(np.zeros(3, np.int32), 2**30, 0, 5)


def float64_oracle(acc, scale, zp, qmin, qmax):
    """static_cast<int32>(std::round(double(acc) * scale)) saturated, + zp, clamped: Python's
    round() is half to even, so halves away from zero are written out on exact fractions."""
    out = []
    for a, s in zip(acc.reshape(-1).tolist(), np.broadcast_to(scale, acc.shape).reshape(-1).tolist()):
        v = float(a) * s  # one IEEE double product, as the C
        if v != v:
            out.append(qmin)
            continue
        whole = float(int(v)) if abs(v) < 2.0**63 else v  # trunc, exact
        r = whole + (np.sign(v) if abs(v - whole) >= 0.5 else 0.0)
        r = min(max(r, float(INT32_MIN)), float(INT32_MAX))
        out.append(min(max(int(r) + zp, qmin), qmax))
    return np.array(out, np.int64).reshape(acc.shape)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.integers(1, 3), st.integers(1, 40), st.booleans(),
       st.sampled_from(["uniform", "ties", "extremes"]), st.integers(0, 2**32 - 1))
def test_requantize_float64_matches_oracles(dtype, rows, channels, per_channel, kind, seed):
    """Form.ROUNDING_FLOAT64 in Cython against requantize.py's NumPy arithmetic and a Python-int
    oracle: ties of both signs (scale 0.5, 0.25 and odd accumulators), int32 saturation."""
    from refnet import requantize

    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    acc = rng.integers(INT32_MIN, INT32_MAX, (rows, channels), dtype=np.int64, endpoint=True).astype(np.int32)
    n_scales = channels if per_channel else 1
    if kind == "ties":
        acc = (rng.integers(-1000, 1000, (rows, channels)) * 2 + 1).astype(np.int32)
        scale = rng.choice([0.5, 0.25, 1.5, 2.5e-1], n_scales)
    elif kind == "extremes":
        acc[:, : channels // 2] = rng.choice([INT32_MIN, INT32_MAX, 0, -1, 1], (rows, channels // 2))
        scale = rng.choice([1e-9, 1.0, 3.0, 1e30, 2.0**-31], n_scales)
    else:
        scale = rng.uniform(1e-6, 1e-2, n_scales)
    zp = int(rng.integers(info.min, int(info.max) + 1))
    qmin, qmax = sorted(int(v) for v in rng.integers(info.min, int(info.max) + 1, 2))
    expected = float64_oracle(acc, scale, zp, qmin, qmax).astype(dtype)
    numpy_form = requantize.requantize_float64(acc, scale, zp, qmin, qmax, dtype)
    out = np.full(acc.shape, 3, dtype)
    krq.requantize_float64(acc, np.ascontiguousarray(scale, np.float64), zp, qmin, qmax, out)
    assert same_bits(out, expected)
    assert same_bits(numpy_form, expected)
