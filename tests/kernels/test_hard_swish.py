"""hard_swish kernels vs plain oracles (NumPy float32 for the float path, Python integers with
the reference's int16 C semantics for the quantized path)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_hard_swish as khs
from refnet import fixedpoint as fx
from support import assert_same_bits
from refnet.bits import same_bits

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
FLT_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------------------------------
# Float
# ------------------------------------------------------------------------------------------


def hard_swish_float_oracle(x, reciprocal=False):
    f = np.float32
    with np.errstate(all="ignore"):
        shifted = x + f(3)
        relu6 = np.where(f(0) < shifted, shifted, f(0))  # std::max(0.f, x + 3)
        relu6 = np.where(relu6 < f(6), relu6, f(6))  # std::min(6.f, .)
        if reciprocal:  # -freciprocal-math and reassociation: (x * (1/6)) * relu6
            return ((x * (f(1) / f(6))).astype(f) * relu6).astype(f)
        return ((x * relu6) / f(6)).astype(np.float32)


@pytest.mark.parametrize("seed", range(2))
def test_hard_swish_float_reciprocal_form_random_bits(seed):
    rng = np.random.default_rng(100 + seed)
    x = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    out = np.empty_like(x)
    khs.hard_swish_float(x, out, True)
    assert_same_bits(out, hard_swish_float_oracle(x, reciprocal=True))
    assert not same_bits(out, hard_swish_float_oracle(x)), "the two forms should differ somewhere"


@pytest.mark.parametrize("seed", range(3))
def test_hard_swish_float_random_bits(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    out = np.empty_like(x)
    khs.hard_swish_float(x, out)
    assert_same_bits(out, hard_swish_float_oracle(x))


def test_hard_swish_float_dense_around_the_knees():
    # Every float32 between -4 and 4 that is a multiple of 2**-16, plus neighbours of -3, 3.
    x = (np.arange(-4 * 2**16, 4 * 2**16 + 1) / 2**16).astype(np.float32)
    knees = np.array([-3.0, 3.0, 0.0], np.float32)
    near = np.concatenate([np.nextafter(k, d, dtype=np.float32)[None]
                           for k in knees for d in (np.float32(-np.inf), np.float32(np.inf))])
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, FLT_MAX, -FLT_MAX],
                        np.float32)
    x = np.concatenate([x, knees, near, specials])
    out = np.empty_like(x)
    khs.hard_swish_float(x, out)
    assert_same_bits(out, hard_swish_float_oracle(x))
    # The specials by hand: NaN stays NaN, inf * 6 / 6 = inf, -inf * 0 = NaN, -0.0 * 3 / 6 = -0.0.
    assert np.isnan(out[-9]) and out[-8] == np.inf and np.isnan(out[-7])
    assert out[-6] == 0.0 and np.signbit(out[-6])
    # FLT_MAX * 6 overflows to inf before the division: the reference's order, not x * (r / 6).
    assert out[-2] == np.inf


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32), min_size=0, max_size=50))
def test_hard_swish_float_hypothesis(values):
    x = np.array(values, dtype=np.float32)
    out = np.empty_like(x)
    khs.hard_swish_float(x, out)
    assert_same_bits(out, hard_swish_float_oracle(x))


def test_hard_swish_float_rejects_bad_arguments():
    with pytest.raises(ValueError):
        khs.hard_swish_float(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises((TypeError, ValueError)):
        khs.hard_swish_float(np.zeros(3, np.float64), np.zeros(3, np.float32))
    with pytest.raises((TypeError, ValueError)):
        khs.hard_swish_float(np.zeros((2, 3), np.float32), np.zeros(6, np.float32))


# ------------------------------------------------------------------------------------------
# Quantized
# ------------------------------------------------------------------------------------------


def c_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def wrap16(v):
    v &= 0xFFFF
    return v - 0x10000 if v >> 15 else v


def srdhm16(a, b):
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    return wrap16(c_div(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15))


def sdhm16(a, b):
    if a == b == INT16_MIN:
        return INT16_MAX
    return wrap16(c_div(a * b, 1 << 15))


def rdbpot16(x, e):
    mask = wrap16((1 << e) - 1)
    threshold = wrap16((mask >> 1) + (1 if x < 0 else 0))
    return wrap16((x >> e) + (1 if wrap16(x & mask) > threshold else 0))


def sat_lshift16(x, amount):
    return min(max(x * (1 << amount), INT16_MIN), INT16_MAX)


def hard_swish_quantized_oracle(values, izp, ozp, out_fp, out_exp, rel_fp, rel_exp, qmin, qmax):
    """reference_ops::HardSwish (quantized), step by step, on Python ints."""
    result = []
    for v in values:
        hires = wrap16(wrap16(int(v) - izp) * 128)
        on_output_scale = srdhm16(hires, out_fp)
        reluish = hires
        if rel_exp > 0:
            reluish = sat_lshift16(reluish, rel_exp - 1)
        reluish = srdhm16(reluish, rel_fp)
        if rel_exp > 0:
            reluish = sat_lshift16(reluish, 1)
        if rel_exp < 0:
            reluish = rdbpot16(reluish, -rel_exp)
        reluish = wrap16((reluish + (1 << 15)) >> 1)
        value = rdbpot16(sdhm16(reluish, on_output_scale), -out_exp)
        value = wrap16(value + ozp)
        result.append(max(min(value, qmax), qmin))
    return np.array(result, dtype=np.int64)


def all_values(dtype):
    info = np.iinfo(dtype)
    return np.arange(info.min, int(info.max) + 1).astype(dtype)


@st.composite
def raw_params(draw):
    dtype = draw(st.sampled_from([np.int8, np.uint8]))
    info = np.iinfo(dtype)
    zps = st.sampled_from([int(info.min), int(info.max)]) | st.integers(int(info.min), int(info.max))
    fixedpoints = (st.integers(2**14, INT16_MAX) | st.sampled_from([0, 2**14, INT16_MAX, INT16_MIN])
                   | st.integers(INT16_MIN, INT16_MAX))
    qmin = draw(st.sampled_from([int(info.min)]) | st.integers(int(info.min), int(info.max)))
    qmax = draw(st.sampled_from([int(info.max)]) | st.integers(qmin, int(info.max)))
    return (dtype, draw(zps), draw(zps), draw(fixedpoints),
            draw(st.integers(-31, 0) | st.sampled_from([0, -15, -16, -31])),
            draw(fixedpoints), draw(st.integers(-31, 31) | st.sampled_from([-16, -1, 0, 1, 31])),
            qmin, qmax)


@settings(max_examples=250, deadline=None)
@given(raw_params())
def test_hard_swish_quantized_matches_oracle(params):
    dtype, *p = params
    x = all_values(dtype)
    out = np.empty_like(x)
    khs.hard_swish_quantized(x, out, *p)
    assert same_bits(out.astype(np.int64), hard_swish_quantized_oracle(x, *p))


@settings(max_examples=150, deadline=None)
@given(raw_params(), st.integers(0, 2**32 - 1))
def test_hard_swish_quantized_table_path_matches_element_path(params, seed):
    """Above LOOKUP_THRESHOLD elements the kernel maps through a 256-entry table."""
    dtype, *p = params
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, int(info.max) + 1, size=3000).astype(dtype)
    big = np.empty_like(x)
    khs.hard_swish_quantized(x, big, *p)
    step = khs.LOOKUP_THRESHOLD
    for i in range(0, x.size, step):  # small chunks: element by element
        chunk = np.empty_like(x[i:i + step])
        khs.hard_swish_quantized(x[i:i + step], chunk, *p)
        assert same_bits(chunk, big[i:i + step])
    assert same_bits(big.astype(np.int64), hard_swish_quantized_oracle(x, *p))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]),
       st.floats(1e-4, 2.0), st.floats(1e-4, 2.0), st.data())
def test_hard_swish_quantized_with_litert_style_params(dtype, in_scale, out_scale, data):
    info = np.iinfo(dtype)
    izp = data.draw(st.integers(int(info.min), int(info.max)))
    ozp = data.draw(st.integers(int(info.min), int(info.max)))
    try:
        p = fx.hard_swish_params(in_scale, izp, out_scale, ozp)
    except ValueError:
        assert in_scale / (128 * out_scale) >= 0.99  # only refused when the ratio reaches 1
        return
    x = all_values(dtype)
    out = np.empty_like(x)
    khs.hard_swish_quantized(x, out, *p, int(info.min), int(info.max))
    expected = hard_swish_quantized_oracle(x, *p, int(info.min), int(info.max))
    assert same_bits(out.astype(np.int64), expected)
    # And it approximates the real function (a few output steps of error at most).
    real_x = (x.astype(np.float64) - izp) * np.float32(in_scale)
    real_y = real_x * np.clip(real_x + 3, 0, 6) / 6
    ideal = np.clip(np.round(real_y / np.float32(out_scale)) + ozp, info.min, info.max)
    if in_scale / out_scale < 50:  # coarse outputs: the Q15 arithmetic is within a few steps
        assert np.max(np.abs(out.astype(np.int64) - ideal)) <= 3


def _q_args(**over):
    a = dict(x=np.zeros(4, np.int8), out=np.zeros(4, np.int8), input_zero_point=0,
             output_zero_point=0, output_multiplier_fixedpoint_int16=20000,
             output_multiplier_exponent=-3, reluish_multiplier_fixedpoint_int16=20000,
             reluish_multiplier_exponent=2, qmin=-128, qmax=127)
    a.update(over)
    return a


@pytest.mark.parametrize("over", [
    dict(out=np.zeros(5, np.int8)),
    dict(input_zero_point=128), dict(output_zero_point=-129),
    dict(x=np.zeros(4, np.uint8), out=np.zeros(4, np.uint8), input_zero_point=-1, qmin=0, qmax=255),
    dict(output_multiplier_fixedpoint_int16=32768),
    dict(reluish_multiplier_fixedpoint_int16=-32769),
    dict(output_multiplier_exponent=1), dict(output_multiplier_exponent=-32),
    dict(reluish_multiplier_exponent=32), dict(reluish_multiplier_exponent=-32),
    dict(qmin=-129), dict(qmax=128), dict(qmin=3, qmax=2),
])
def test_hard_swish_quantized_rejects_bad_arguments(over):
    with pytest.raises(ValueError):
        khs.hard_swish_quantized(**_q_args(**over))


@pytest.mark.parametrize("over", [
    dict(out=np.zeros(4, np.uint8)),
    dict(x=np.zeros(4, np.int16)),
    dict(x=np.zeros((2, 2), np.int8)),
])
def test_hard_swish_quantized_rejects_bad_types(over):
    with pytest.raises((TypeError, ValueError)):
        khs.hard_swish_quantized(**_q_args(**over))
