"""Fixed-point primitives: refnet.fixedpoint (NumPy) and kernels/fixedpoint.pxd (Cython).

Three layers are checked against each other:
  * a scalar oracle written here with Python integers, spelling out the C semantics of the
    reference (truncating division, arithmetic shifts, int32/int16 wrap-around);
  * the vectorised NumPy primitives in refnet.fixedpoint;
  * the Cython primitives, through the small *_array wrappers of the kernel modules.
"""
import math
from fractions import Fraction

import numpy as np

from refnet.forms import Form
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from refnet import fixedpoint as fx
from refnet import _kernels_hard_swish as khs
from refnet import _kernels_requantize as krq
from refnet.bits import same_bits

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1

SETTINGS = settings(max_examples=150, deadline=None)

# ------------------------------------------------------------------------------------------
# Scalar oracle (Python ints, C semantics)
# ------------------------------------------------------------------------------------------


def c_div(a: int, b: int) -> int:
    """C integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def wrap(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def rdbpot_ties_up(x: int, e: int) -> int:
    return x if e == 0 else (x + (1 << (e - 1))) >> e


def mbqm(x: int, m: int, s: int, rounding: int) -> int:
    if rounding == Form.ROUNDING_SINGLE:
        total = 31 - s
        return wrap((x * m + (1 << (total - 1))) >> total, 32)
    shifted = wrap(x * (1 << max(s, 0)), 32)
    high = srdhm(shifted, m)
    if rounding == Form.ROUNDING_DOUBLE:
        return rdbpot(high, max(-s, 0))
    return rdbpot_ties_up(high, max(-s, 0))


def srdhm16(a: int, b: int) -> int:
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return wrap(c_div(ab + nudge, 1 << 15), 16)


def sdhm16(a: int, b: int) -> int:
    if a == b == INT16_MIN:
        return INT16_MAX
    return wrap(c_div(a * b, 1 << 15), 16)


def rdbpot16(x: int, e: int) -> int:
    mask = wrap((1 << e) - 1, 16)  # the reference narrows its 64-bit mask to int16
    remainder = wrap(x & mask, 16)
    threshold = wrap((mask >> 1) + (1 if x < 0 else 0), 16)
    return wrap((x >> e) + (1 if remainder > threshold else 0), 16)


def sat_lshift16(x: int, amount: int) -> int:
    return min(max(x * (1 << amount), INT16_MIN), INT16_MAX)


# ------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------

INT32_EDGES = [INT32_MIN, INT32_MIN + 1, -(2**30) - 1, -(2**30), -(2**30) + 1, -2, -1, 0, 1, 2,
               2**30 - 1, 2**30, 2**30 + 1, INT32_MAX - 1, INT32_MAX]
INT16_EDGES = [INT16_MIN, INT16_MIN + 1, -(2**14), -2, -1, 0, 1, 2, 2**14, INT16_MAX - 1, INT16_MAX]

int32s = st.one_of(st.integers(INT32_MIN, INT32_MAX), st.sampled_from(INT32_EDGES))
int16s = st.one_of(st.integers(INT16_MIN, INT16_MAX), st.sampled_from(INT16_EDGES))
# Multipliers as QuantizeMultiplier makes them ([2**30, 2**31)) and anything else int32.
multipliers = st.one_of(st.integers(2**30, INT32_MAX), st.sampled_from([INT32_MAX, 2**30, 0]),
                        st.integers(INT32_MIN, INT32_MAX))
roundings = st.sampled_from([Form.ROUNDING_DOUBLE, Form.ROUNDING_SINGLE, Form.ROUNDING_DOUBLE_TIES_UP])


def shifts_for(rounding):
    return st.integers(-31, 30 if rounding == Form.ROUNDING_SINGLE else 31)


def random_and_extreme_int32(rng, n):
    values = rng.integers(INT32_MIN, INT32_MAX + 1, size=n, dtype=np.int64)
    edges = np.array(INT32_EDGES, dtype=np.int64)
    pick = rng.random(n) < 0.3
    values[pick] = rng.choice(edges, size=int(pick.sum()))
    return values.astype(np.int32)


def random_and_extreme_int16(rng, n):
    values = rng.integers(INT16_MIN, INT16_MAX + 1, size=n, dtype=np.int64)
    pick = rng.random(n) < 0.3
    values[pick] = rng.choice(np.array(INT16_EDGES), size=int(pick.sum()))
    return values.astype(np.int16)


# ------------------------------------------------------------------------------------------
# Oracle vs NumPy vs Cython, scalar-by-scalar (hypothesis)
# ------------------------------------------------------------------------------------------


def arr32(*values):
    return np.array(values, dtype=np.int32)


@SETTINGS
@given(int32s, int32s)
@example(INT32_MIN, INT32_MIN)
@example(INT32_MIN, INT32_MAX)
@example(-(2**30), 1)  # product exactly -2**30: a negative tie, rounds away from zero
@example(2**30, 1)
def test_srdhm(a, b):
    expected = srdhm(a, b)
    assert fx.saturating_rounding_doubling_high_mul(a, b) == expected
    assert krq.srdhm_array(arr32(a), arr32(b))[0] == expected


@SETTINGS
@given(int32s, st.integers(0, 31))
@example(-3, 1)
@example(3, 1)
@example(INT32_MIN, 31)
@example(INT32_MAX, 31)
def test_rounding_divide_by_pot(x, e):
    expected = rdbpot(x, e)
    assert expected == (round_half_away(x / 2**e) if abs(x) < 2**52 else expected)
    assert fx.rounding_divide_by_pot(x, e) == expected
    assert krq.rounding_divide_by_pot_array(arr32(x), arr32(e))[0] == expected
    expected_up = rdbpot_ties_up(x, e)
    assert fx.rounding_divide_by_pot_ties_up(x, e) == expected_up
    assert krq.rounding_divide_by_pot_ties_up_array(arr32(x), arr32(e))[0] == expected_up


def round_half_away(v: float) -> int:
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


@SETTINGS
@given(int32s, multipliers, st.data(), roundings)
@example(INT32_MIN, INT32_MIN, 0, Form.ROUNDING_DOUBLE)
@example(INT32_MAX, INT32_MAX, 30, Form.ROUNDING_SINGLE)
@example(INT32_MIN, INT32_MAX, -31, Form.ROUNDING_SINGLE)
@example(INT32_MAX, INT32_MAX, 31, Form.ROUNDING_DOUBLE_TIES_UP)
@example(-5, 2**30, -1, Form.ROUNDING_DOUBLE)
def test_multiply_by_quantized_multiplier(x, m, shift, rounding):
    if not isinstance(shift, int):
        shift = shift.draw(shifts_for(rounding))
    expected = mbqm(x, m, shift, rounding)
    assert fx.multiply_by_quantized_multiplier(x, m, shift, rounding) == expected
    got = krq.multiply_by_quantized_multiplier_array(arr32(x), arr32(m), arr32(shift), rounding)
    assert got[0] == expected
    got = krq.multiply_by_quantized_multiplier(np.array([[x]], np.int32), m, shift, rounding)
    assert got.shape == (1, 1) and got[0, 0] == expected


def test_rounding_forms_on_ties():
    # The high multiply rounds ties toward +inf (VQRDMULH): -2.5 -> -2, +2.5 -> 3.
    assert srdhm(-5, 2**30) == -2 and srdhm(5, 2**30) == 3
    assert srdhm16(-5, 2**14) == -2 and srdhm16(5, 2**14) == 3
    # x = -5, m = INT32_MAX, shift -1: the high multiply gives -5, the final shift sees the
    # exact tie -5 / 2.  Double rounding sends it away from zero, the ties-up form to -2; single
    # rounding sees the true value -2.4999999988 and gives -2.
    expected = {Form.ROUNDING_DOUBLE: -3, Form.ROUNDING_DOUBLE_TIES_UP: -2, Form.ROUNDING_SINGLE: -2}
    for rounding, value in expected.items():
        assert mbqm(-5, INT32_MAX, -1, rounding) == value
        assert fx.multiply_by_quantized_multiplier(-5, INT32_MAX, -1, rounding) == value
        assert krq.multiply_by_quantized_multiplier_array(arr32(-5), arr32(INT32_MAX), arr32(-1),
                                                          rounding)[0] == value
    # Positive tie +5 / 2: away from zero and up agree.
    assert mbqm(5, INT32_MAX, -1, Form.ROUNDING_DOUBLE) == 3
    assert mbqm(5, INT32_MAX, -1, Form.ROUNDING_DOUBLE_TIES_UP) == 3


@SETTINGS
@given(int16s, int16s)
@example(INT16_MIN, INT16_MIN)
@example(-(2**14), 1)
def test_int16_high_muls(a, b):
    a16, b16 = np.array([a], np.int16), np.array([b], np.int16)
    assert fx.saturating_rounding_doubling_high_mul_int16(a, b) == srdhm16(a, b)
    assert khs.srdhm_int16_array(a16, b16)[0] == srdhm16(a, b)
    assert fx.saturating_doubling_high_mul_int16(a, b) == sdhm16(a, b)
    assert khs.sdhm_int16_array(a16, b16)[0] == sdhm16(a, b)


@SETTINGS
@given(int16s, st.integers(0, 31), st.integers(0, 30))
@example(0, 16, 0)  # mask narrowed to -1: 0 -> 1 (the reference's behaviour)
@example(-1, 20, 0)
@example(INT16_MAX, 15, 30)
def test_int16_shifts(x, e, amount):
    x16 = np.array([x], np.int16)
    assert fx.rounding_divide_by_pot_int16(x, e) == rdbpot16(x, e)
    assert khs.rounding_divide_by_pot_int16_array(x16, arr32(e))[0] == rdbpot16(x, e)
    assert fx.saturating_left_shift_int16(x, amount) == sat_lshift16(x, amount)
    assert khs.saturating_left_shift_int16_array(x16, arr32(amount))[0] == sat_lshift16(x, amount)


def test_int16_rounding_divide_quirk_for_large_exponents():
    x = np.array([0, 5, INT16_MAX, -1, -7, INT16_MIN], np.int16)
    for e in (16, 20, 31):
        expected = np.array([1, 1, 1, -1, -1, -1], np.int16)
        assert same_bits(fx.rounding_divide_by_pot_int16(x, e), expected)
        assert same_bits(khs.rounding_divide_by_pot_int16_array(x, np.full(6, e, np.int32)),
                              expected)


# ------------------------------------------------------------------------------------------
# Cython == NumPy on large random + extreme arrays
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_cython_equals_numpy_int32(seed):
    rng = np.random.default_rng(seed)
    n = 20000
    a, b = random_and_extreme_int32(rng, n), random_and_extreme_int32(rng, n)
    assert same_bits(krq.srdhm_array(a, b), fx.saturating_rounding_doubling_high_mul(a, b))
    e = rng.integers(0, 32, n).astype(np.int32)
    assert same_bits(krq.rounding_divide_by_pot_array(a, e), fx.rounding_divide_by_pot(a, e))
    assert same_bits(krq.rounding_divide_by_pot_ties_up_array(a, e),
                          fx.rounding_divide_by_pot_ties_up(a, e))
    m = np.where(rng.random(n) < 0.7, rng.integers(2**30, 2**31, n), b).astype(np.int32)
    for rounding in (Form.ROUNDING_DOUBLE, Form.ROUNDING_SINGLE, Form.ROUNDING_DOUBLE_TIES_UP):
        hi = 30 if rounding == Form.ROUNDING_SINGLE else 31
        s = rng.integers(-31, hi + 1, n).astype(np.int32)
        assert same_bits(krq.multiply_by_quantized_multiplier_array(a, m, s, rounding),
                              fx.multiply_by_quantized_multiplier(a, m, s, rounding))
    # Spot-check the NumPy side against the scalar oracle.
    for i in rng.integers(0, n, 200):
        assert fx.saturating_rounding_doubling_high_mul(a[i], b[i]) == srdhm(int(a[i]), int(b[i]))


@pytest.mark.parametrize("seed", range(3))
def test_cython_equals_numpy_int16(seed):
    rng = np.random.default_rng(100 + seed)
    n = 20000
    a, b = random_and_extreme_int16(rng, n), random_and_extreme_int16(rng, n)
    assert same_bits(khs.srdhm_int16_array(a, b),
                          fx.saturating_rounding_doubling_high_mul_int16(a, b))
    assert same_bits(khs.sdhm_int16_array(a, b), fx.saturating_doubling_high_mul_int16(a, b))
    e = rng.integers(0, 32, n).astype(np.int32)
    assert same_bits(khs.rounding_divide_by_pot_int16_array(a, e),
                          fx.rounding_divide_by_pot_int16(a, e))
    amount = rng.integers(0, 31, n).astype(np.int32)
    assert same_bits(khs.saturating_left_shift_int16_array(a, amount),
                          fx.saturating_left_shift_int16(a, amount))


def test_numpy_primitives_broadcast_and_dtypes():
    x = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    out = fx.multiply_by_quantized_multiplier(x, np.int32(2**30), np.array([-1, 0, 1, 2]))
    assert out.dtype == np.int32 and out.shape == (3, 4)
    expected = [[mbqm(int(v), 2**30, s, Form.ROUNDING_DOUBLE) for v, s in zip(row, [-1, 0, 1, 2])]
                for row in x]
    assert out.tolist() == expected


@pytest.mark.parametrize("call", [
    lambda: fx.rounding_divide_by_pot(1, 32),
    lambda: fx.rounding_divide_by_pot(1, -1),
    lambda: fx.multiply_by_quantized_multiplier(1, 2**30, 31, Form.ROUNDING_SINGLE),
    lambda: fx.multiply_by_quantized_multiplier(1, 2**30, -32),
    lambda: fx.multiply_by_quantized_multiplier(1, 2**30, 0, rounding=7),
    lambda: fx.saturating_rounding_doubling_high_mul(2**31, 1),
    lambda: fx.saturating_left_shift_int16(1, 31),
    lambda: krq.rounding_divide_by_pot_array(arr32(1), arr32(32)),
    lambda: krq.multiply_by_quantized_multiplier_array(arr32(1), arr32(1), arr32(31),
                                                       Form.ROUNDING_SINGLE),
    lambda: krq.multiply_by_quantized_multiplier_array(arr32(1), arr32(1), arr32(0), 3),
    lambda: krq.srdhm_array(arr32(1, 2), arr32(1)),
])
def test_primitives_reject_out_of_range(call):
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------------------------------
# QuantizeMultiplier and friends
# ------------------------------------------------------------------------------------------


def test_quantize_multiplier_known_values():
    assert fx.quantize_multiplier(0.0) == (0, 0)
    assert fx.quantize_multiplier(0.5) == (2**30, 0)
    assert fx.quantize_multiplier(1.0) == (2**30, 1)
    assert fx.quantize_multiplier(0.25) == (2**30, -1)
    # Exact tie at 31 fractional bits rounds away from zero (std::round), not to even.
    assert fx.quantize_multiplier((2**30 + 0.5) / 2**31) == (2**30 + 1, 0)
    assert fx.quantize_multiplier((2**30 + 2.5) / 2**31) == (2**30 + 3, 0)
    assert fx.quantize_multiplier(-(2**30 + 0.5) / 2**31) == (-(2**30 + 1), 0)
    # q rounds up to 2**31: halve it and bump the shift.
    assert fx.quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
    # Shifts below -31 flush to zero.
    assert fx.quantize_multiplier(2.0**-32) == (2**30, -31)
    assert fx.quantize_multiplier(2.0**-33) == (0, 0)
    # Large multipliers: shift > 30 kept, except in the single-rounding build.
    assert fx.quantize_multiplier(2.0**31) == (2**30, 32)
    assert fx.quantize_multiplier(2.0**31, single_rounding=True) == (2**31 - 1, 30)
    with pytest.raises(ValueError):
        fx.quantize_multiplier(float("nan"))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=2.0**-31, max_value=2.0**30, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_is_nearest(real):
    m, shift = fx.quantize_multiplier(real)
    assert 2**30 <= m <= INT32_MAX
    # Exact check with integers: |m - real * 2**(31 - shift)| <= 1/2.
    target = Fraction(real) * Fraction(2) ** (31 - shift)
    assert abs(Fraction(m) - target) <= Fraction(1, 2)
    mantissa, exponent = math.frexp(real)
    assert shift in (exponent, exponent + 1)


def test_quantize_multiplier_variants_and_arrays():
    assert fx.quantize_multiplier_smaller_than_one_exp(0.3) == fx.quantize_multiplier(0.3)
    assert fx.quantize_multiplier_greater_than_one(3.0) == fx.quantize_multiplier(3.0)
    with pytest.raises(ValueError):
        fx.quantize_multiplier_smaller_than_one_exp(1.5)
    with pytest.raises(ValueError):
        fx.quantize_multiplier_greater_than_one(0.5)
    ms, ss = fx.quantize_multipliers([0.5, 0.3, 0.0, 2.0**-40])
    assert ms.dtype == np.int32 and ss.dtype == np.int32
    assert list(zip(ms.tolist(), ss.tolist())) == [fx.quantize_multiplier(v)
                                                   for v in (0.5, 0.3, 0.0, 2.0**-40)]


def test_down_scale_int32_to_int16_multiplier():
    assert fx.down_scale_int32_to_int16_multiplier(2**30) == 2**14
    assert fx.down_scale_int32_to_int16_multiplier(2**30 + 2**15) == 2**14 + 1  # tie rounds up
    assert fx.down_scale_int32_to_int16_multiplier(2**30 + 2**15 - 1) == 2**14
    assert fx.down_scale_int32_to_int16_multiplier(INT32_MAX - 2**15) == INT16_MAX
    assert fx.down_scale_int32_to_int16_multiplier(INT32_MAX - 2**15 - 1) == INT16_MAX
    assert fx.down_scale_int32_to_int16_multiplier(0) == 0
    with pytest.raises(ValueError):
        fx.down_scale_int32_to_int16_multiplier(-1)


def test_hard_swish_params_derivation():
    f32 = np.float32
    input_scale, output_scale = 0.05, 0.03
    p = fx.hard_swish_params(input_scale, 3, output_scale, -7)
    hires = f32(1 / 128) * f32(input_scale)
    out_m, out_e = fx.quantize_multiplier(float(f32(hires / f32(output_scale))))
    rel_m, rel_e = fx.quantize_multiplier(float(f32(hires / f32(3 / 32768))))
    assert p == fx.HardSwishParams(3, -7, fx.down_scale_int32_to_int16_multiplier(out_m), out_e,
                                   fx.down_scale_int32_to_int16_multiplier(rel_m), rel_e)
    assert p.output_multiplier_exponent <= 0
    # input_scale / (128 * output_scale) >= 1 is refused, as by LiteRT's Prepare.
    with pytest.raises(ValueError):
        fx.hard_swish_params(1.0, 0, 1.0 / 256, 0)


# ------------------------------------------------------------------------------------------
# float -> int32 conversion (static_cast<int32_t>): what each CPU does where C is undefined
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncate_to_int32_x86_and_aarch64(dtype):
    big = dtype(2.0**31)
    values = np.array([0.0, -0.0, 1.9, -1.9, 2.0**31 - 128, -(2.0**31), big, -big * 2, np.inf, -np.inf,
                       np.nan, 1e30, -1e30], dtype)
    x86 = fx.truncate_to_int32(values)
    arm = fx.truncate_to_int32(values, saturating=True)
    in_range = [0, 0, 1, -1, 2**31 - 128, INT32_MIN]
    assert x86.tolist() == in_range + [INT32_MIN] * 7  # cvttss2si: the "integer indefinite"
    assert arm.tolist() == in_range + [INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 0, INT32_MAX, INT32_MIN]


# ------------------------------------------------------------------------------------------
# Inverse square root (quantized L2_NORMALIZATION)


def sat_lshift32(x: int, amount: int) -> int:
    return min(max(x * (1 << amount), INT32_MIN), INT32_MAX)


def inverse_sqrt_oracle(x: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp (reverse shift -1) spelt out on one Python int."""
    if x <= 1:
        return INT32_MAX, 0
    exponent = 11
    while x >= 1 << 29:
        x //= 4
        exponent += 1
    leading_zeros = 32 - x.bit_length()
    pairs = (leading_zeros - 1) // 2 - 1
    exponent -= pairs
    x <<= 2 * pairs
    assert (1 << 27) <= x < (1 << 29)
    half_input = rdbpot(x >> 1, 1)
    estimate = 1 << 28  # 1.0 in Q3.28
    for _ in range(5):
        cube = sat_lshift32(srdhm(srdhm(estimate, estimate), estimate), 6)
        estimate = sat_lshift32(wrap(srdhm((1 << 28) + (1 << 27), estimate) - srdhm(half_input, cube), 32), 3)
    multiplier = srdhm(estimate, 1518500250)
    if exponent < 0:
        multiplier = wrap(multiplier << -exponent, 32)
        exponent = 0
    return multiplier, -exponent


INVERSE_SQRT_INPUTS = [0, 1, 2, 3, 4, 5, 127, 128, 255 * 255, 65025 * 64, (1 << 27) - 1, 1 << 27,
                       (1 << 29) - 1, 1 << 29, (1 << 30) + 12345, INT32_MAX]


def test_inverse_sqrt_multiplier_equals_the_integer_oracle():
    rng = np.random.default_rng(11)
    x = np.concatenate([np.array(INVERSE_SQRT_INPUTS, np.int64),
                        rng.integers(0, 2**31, 3000), rng.integers(0, 5000, 1000),
                        2 ** rng.integers(0, 31, 200)])
    multiplier, shift = fx.inverse_sqrt_multiplier(x)
    expected = [inverse_sqrt_oracle(int(v)) for v in x]
    assert multiplier.tolist() == [m for m, _ in expected]
    assert shift.tolist() == [s for _, s in expected]


def test_inverse_sqrt_multiplier_approximates_one_over_sqrt():
    """m * 2**(shift - 31) is 1 / sqrt(x) within 2e-6 relative (x >= 2; five Newton steps from 1
    leave ~1.25e-6 near x = 2**29; the exact value from integer square roots: isqrt(2**124 / x)
    = 2**62 / sqrt(x), floored)."""
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.integers(2, 2**31, 2000), np.arange(2, 300)])
    multiplier, shift = fx.inverse_sqrt_multiplier(x)
    assert (shift <= 0).all()
    for v, m, s in zip(x.tolist(), multiplier.tolist(), shift.tolist()):
        exact = Fraction(math.isqrt((1 << 124) // v), 1 << 62)
        got = Fraction(m, 1 << (31 - s))
        assert abs(got / exact - 1) < Fraction(2, 10**6), (v, m, s)


# ------------------------------------------------------------------------------------------
# gemmlowp's int16 exp, logistic and tanh (LiteRT's optimized int16 LOGISTIC / TANH)


def test_int16_constants_are_the_int32_ones_rounded():
    for int32_value in (1895147668, 715827883, 1515870810, -1010580540, 1672461947, 242):
        assert fx._int16_constant(int32_value) == rdbpot(int32_value, 16)


EVERY_INT16 = np.arange(INT16_MIN, INT16_MAX + 1)


@pytest.mark.parametrize("integer_bits", [3, 4])
def test_exp_on_negative_values_int16(integer_bits):
    a = EVERY_INT16[EVERY_INT16 <= 0]
    got = fx.exp_on_negative_values_int16(a, integer_bits)
    exact = np.exp(a / 2.0 ** (15 - integer_bits)) * 2.0**15
    assert np.abs(got - np.minimum(exact, INT16_MAX)).max() <= 8  # 2**-12
    assert got[a == 0].tolist() == [INT16_MAX]
    assert (np.diff(got[::-1]) <= 0).all()  # monotone in |a|


def test_logistic_and_tanh_int16():
    """Within 2**-12 (logistic) and 2**-11 (tanh) of the exact functions on every Q3.12 input,
    odd / mirrored as the functions are, fixed values at 0."""
    x = EVERY_INT16
    logistic = fx.logistic_int16_q3_12(x).astype(np.int64)
    tanh = fx.tanh_int16(x).astype(np.int64)
    assert np.abs(logistic - 2.0**15 / (1 + np.exp(-x / 4096.0))).max() <= 8
    assert np.abs(tanh - 2.0**15 * np.tanh(x / 4096.0)).max() <= 16
    inside = x > INT16_MIN  # -x exists
    assert (tanh[inside] == -fx.tanh_int16(-x[inside])).all()
    assert (logistic[inside & (x != 0)] == INT16_MAX - fx.logistic_int16_q3_12(-x[inside & (x != 0)])).all()
    assert int(fx.logistic_int16_q3_12(0)) == 1 << 14 and int(fx.tanh_int16(0)) == 0
# The int64 MultiplyByQuantizedMultiplier of the 16x8 ops (Form.ROUNDING_INT64_REDUCED)
# ------------------------------------------------------------------------------------------


def int64_reduced_oracle(x: int, m: int, shift: int) -> int:
    """Python-integer arithmetic: the multiplier rounded (half up) to its top 15 bits, saturated at
    0x7FFF; x times it over 2**(15 - shift), rounded half toward +inf; the low 32 bits, signed."""
    reduced = 0x7FFF if m >= 0x7FFF0000 else math.floor(Fraction(m, 2**16) + Fraction(1, 2))
    exact = Fraction(x * reduced, 2 ** (15 - shift))
    return wrap(math.floor(exact + Fraction(1, 2)), 32)


@SETTINGS
@given(st.integers(-(2**47), 2**47 - 1), st.integers(0, INT32_MAX), st.integers(-31, 14))
@example(2**47 - 1, INT32_MAX, 14)  # the largest product; wraps at 32 bits
@example(-(2**47), 0x7FFF0000, -31)
@example(-3 * 2**14, 1 << 30, 0)  # a negative tie: rounds toward +inf
@example(12345, 0x7FFEFFFF, 0)  # the largest multiplier that is still rounded, not saturated
def test_multiply_int64_by_reduced_multiplier(x, m, shift):
    got = fx.multiply_int64_by_reduced_multiplier(np.array([x], np.int64), m, shift)
    assert got.dtype == np.int32
    assert int(got[0]) == int64_reduced_oracle(x, m, shift)


def test_multiply_int64_by_reduced_multiplier_broadcasts_and_rejects_out_of_range():
    x = np.array([[-(2**40), 7, 2**33]], np.int64)
    m, s = np.array([1 << 30, 1500000000, 2**31 - 1]), np.array([-3, 5, -31])
    got = fx.multiply_int64_by_reduced_multiplier(x, m, s)
    assert got.tolist() == [[int64_reduced_oracle(int(v), int(a), int(b)) for v, a, b in zip(x[0], m, s)]]
    for bad in ((2**47, 1, 0), (0, -1, 0), (0, 1, 15), (0, 1, -32)):
        with pytest.raises(ValueError):
            fx.multiply_int64_by_reduced_multiplier(*bad)


@SETTINGS
@given(st.integers(0, 2**31 - 1) | st.sampled_from([0, 1, 2**30, 2**31 - 2, 2**31 - 1]))
def test_one_over_one_plus_x_cython_equals_numpy_and_is_close(a):
    """SOFTMAX's reciprocal 1 / (1 + a), a in Q0.31: the Cython primitive (kernels/softmax.pyx's
    wrapper) gives the NumPy one's bits, and both lie within a few Q0.31 steps of the real value."""
    from refnet import _kernels_softmax as ksm
    got = np.empty(1, np.int32)
    ksm.one_over_one_plus_x_array(np.array([a], np.int32), got)
    expected = fx.one_over_one_plus_x_for_x_in_0_1(np.array([a], np.int64))
    assert int(got[0]) == int(expected[0])
    exact = Fraction(2**31) / (1 + Fraction(a, 2**31))
    assert abs(int(got[0]) - exact) <= 16


def test_count_leading_zeros_cython_equals_numpy():
    from refnet import _kernels_softmax as ksm
    rng = np.random.default_rng(3)
    values = np.concatenate([np.array([0, 1, 2, 3, 2**19, 2**30, 2**31 - 1], np.int64),
                             rng.integers(0, 2**31, 500)]).astype(np.uint32)
    got = np.empty(values.shape, np.int32)
    ksm.count_leading_zeros_array(values, got)
    assert got.tolist() == fx.count_leading_zeros_32(values.astype(np.int64)).tolist()
    assert got.tolist() == [32 - int(v).bit_length() for v in values]
