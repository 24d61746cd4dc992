"""Fixed-point primitives of LiteRT's reference integer arithmetic, vectorised in NumPy.

These are the same functions as kernels/fixedpoint.pxd (used by the Cython kernels), written
on int64 NumPy arrays for the ops implemented in NumPy.  Every function takes int32-valued
arrays (or scalars) and returns int32 (int16 for the *_int16 functions) arrays; wherever the
reference relies on two's-complement wrap-around, the wrap is done explicitly.

Also here: how LiteRT turns a real-valued scale into (int32 multiplier, shift)
(`quantize_multiplier`, TFLite's QuantizeMultiplier), and the parameters of quantized
HARD_SWISH as LiteRT's Prepare derives them (`hard_swish_params`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .forms import Form, max_shift

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "wrap_to_int32",
    "wrap_to_int16",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "rounding_divide_by_pot_ties_up",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_double_rounding",
    "multiply_by_quantized_multiplier_single_rounding",
    "multiply_by_quantized_multiplier_double_rounding_ties_up",
    "multiply_by_quantized_multiplier_steps",
    "multiply_int64_by_reduced_multiplier",
    "round_half_away",
    "saturating_rounding_doubling_high_mul_int16",
    "saturating_doubling_high_mul_int16",
    "rounding_divide_by_pot_int16",
    "saturating_left_shift_int16",
    "quantize_multiplier",
    "quantize_multiplier_smaller_than_one_exp",
    "quantize_multiplier_greater_than_one",
    "quantize_multipliers",
    "down_scale_int32_to_int16_multiplier",
    "int16_lut_populate",
    "int16_lut_lookup",
    "HardSwishParams",
    "hard_swish_params",
    "inverse_sqrt_multiplier",
    "logistic_int16_q3_12",
    "tanh_int16",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1


def _as_int64(x) -> np.ndarray:
    return np.asarray(x).astype(np.int64, copy=False)


def wrap_to_int32(x) -> np.ndarray:
    """Low 32 bits of each (int64) value, as signed int32 (two's-complement wrap-around)."""
    return _as_int64(x).astype(np.int32)  # NumPy's int64 -> int32 cast keeps the low bits


def wrap_to_int16(x) -> np.ndarray:
    """Low 16 bits of each value, as signed int16."""
    return _as_int64(x).astype(np.int16)


def _check_int32(x: np.ndarray, name: str) -> None:
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise ValueError(f"{name} must hold int32 values")


def _check_exponent(exponent: np.ndarray, lo: int, hi: int, name: str) -> None:
    if exponent.size and (exponent.min() < lo or exponent.max() > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}]")


def _truncating_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """x / 2**exponent truncated toward zero (C integer division), for int64 arrays."""
    return np.where(x >= 0, x >> exponent, -((-x) >> exponent))


# --------------------------------------------------------------------------------------
# int32 primitives
# --------------------------------------------------------------------------------------


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """round(a * b / 2**31), ties toward +inf (ARM VQRDMULH); INT32_MIN * INT32_MIN -> INT32_MAX.

    gemmlowp's nudge (2**30, or 1 - 2**30 for negative products) with truncating division
    amounts to floor((a * b + 2**30) / 2**31).
    """
    a = _as_int64(a)
    b = _as_int64(b)
    _check_int32(a, "a")
    _check_int32(b, "b")
    product = a * b  # |a * b| <= 2**62: exact in int64
    nudge = np.where(product >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    high = _truncating_divide_by_pot(product + nudge, 31)
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int32)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """round(x / 2**exponent), ties away from zero; exponent in [0, 31] (broadcasts)."""
    x = _as_int64(x)
    exponent = _as_int64(exponent)
    _check_int32(x, "x")
    _check_exponent(exponent, 0, 31, "exponent")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return ((x >> exponent) + (remainder > threshold)).astype(np.int32)


def rounding_divide_by_pot_ties_up(x, exponent) -> np.ndarray:
    """floor(x / 2**exponent + 1/2) in exact (int64) arithmetic; exponent in [0, 31]."""
    x = _as_int64(x)
    exponent = _as_int64(exponent)
    _check_int32(x, "x")
    _check_exponent(exponent, 0, 31, "exponent")
    half = np.where(exponent > 0, np.int64(1) << np.maximum(exponent - 1, 0), 0)
    return ((x + half) >> exponent).astype(np.int32)


def _wrapping_shift_left_int32(x: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """x * 2**amount modulo 2**32 (the reference's int32 `x * (1 << amount)`)."""
    return wrap_to_int32(x << amount).astype(np.int64)


def _left_shift_then_high_mul(x, multiplier, shift, form) -> tuple[np.ndarray, np.ndarray]:
    """The double-rounding forms' common first half: (SRDHM(x * 2**max(shift, 0), m), right
    shift max(-shift, 0)); the left shift wraps like the reference's int32 `x * (1 << s)`."""
    x = _as_int64(x)
    multiplier = _as_int64(multiplier)
    shift = _as_int64(shift)
    _check_int32(x, "x")
    _check_int32(multiplier, "multiplier")
    _check_exponent(shift, -31, max_shift(form), "shift")
    left_shift = np.maximum(shift, 0)
    right_shift = np.maximum(-shift, 0)
    high = saturating_rounding_doubling_high_mul(_wrapping_shift_left_int32(x, left_shift), multiplier)
    return high, right_shift


def multiply_by_quantized_multiplier_double_rounding(x, multiplier, shift) -> np.ndarray:
    """Form.ROUNDING_DOUBLE: TFLite reference MultiplyByQuantizedMultiplier; shift in [-31, 31],
    > 0 = left shift. High multiply, then rounding divide (ties away from zero)."""
    high, right_shift = _left_shift_then_high_mul(x, multiplier, shift, Form.ROUNDING_DOUBLE)
    return rounding_divide_by_pot(high, right_shift)


def multiply_by_quantized_multiplier_double_rounding_ties_up(x, multiplier, shift) -> np.ndarray:
    """Form.ROUNDING_DOUBLE_TIES_UP: as the double-rounding form, but the final right shift
    rounds ties toward +inf (LiteRT's optimized 1x1 convolution)."""
    high, right_shift = _left_shift_then_high_mul(x, multiplier, shift, Form.ROUNDING_DOUBLE_TIES_UP)
    return rounding_divide_by_pot_ties_up(high, right_shift)


def multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift) -> np.ndarray:
    """Form.ROUNDING_SINGLE (TFLITE_SINGLE_ROUNDING): (x * m + 2**(30 - shift)) >> (31 - shift),
    wrapped.

    shift in [-31, 30].  The int64 sum cannot overflow for int32 x and multiplier.
    """
    x = _as_int64(x)
    multiplier = _as_int64(multiplier)
    shift = _as_int64(shift)
    _check_int32(x, "x")
    _check_int32(multiplier, "multiplier")
    _check_exponent(shift, -31, max_shift(Form.ROUNDING_SINGLE), "shift")
    total_shift = 31 - shift
    rounding_offset = np.int64(1) << (total_shift - 1)
    return wrap_to_int32((x * multiplier + rounding_offset) >> total_shift)


def multiply_int64_by_reduced_multiplier(x, multiplier, shift) -> np.ndarray:
    """Form.ROUNDING_INT64_REDUCED: TFLite's MultiplyByQuantizedMultiplier(int64 x, ...) of the
    16x8 ops (int64 accumulators): the multiplier is first reduced to 15 fractional bits,
    m16 = (m + 2**15) >> 16 (0x7FFF when m >= 0x7FFF0000), then one rounding (ties toward +inf):
    (x * m16 + 2**(14 - shift)) >> (15 - shift), narrowed to int32 (wrapping, as the C cast).

    x must lie in [-2**47, 2**47) (the reference's precondition; the product then fits int64),
    multiplier in [0, 2**31), shift in [-31, 14] (the reference asserts shift < 8; up to 14 the
    right shift is still defined)."""
    x = _as_int64(x)
    multiplier = _as_int64(multiplier)
    shift = _as_int64(shift)
    if x.size and (x.min() < -(2**47) or x.max() >= 2**47):
        raise ValueError("x must be in [-2**47, 2**47)")
    if multiplier.size and (multiplier.min() < 0 or multiplier.max() > INT32_MAX):
        raise ValueError("multiplier must be in [0, 2**31)")
    _check_exponent(shift, -31, 14, "shift")
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total_shift = 15 - shift
    rounding_offset = np.int64(1) << (total_shift - 1)
    return wrap_to_int32((x * reduced + rounding_offset) >> total_shift)


def multiply_by_quantized_multiplier_steps(x: int, multiplier: int, shift: int, form) -> list[tuple[str, int]]:
    """The intermediate values of one MultiplyByQuantizedMultiplier, from the same primitives
    as the functions above (for `refnet explain`): a list of (what, value), the last the result."""
    x, multiplier, shift, form = int(x), int(multiplier), int(shift), Form(form)
    if form == Form.ROUNDING_SINGLE:
        result = int(multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift))
        return [(f"({x} * {multiplier} + 2^{30 - shift}) >> {31 - shift}, wrapped to int32", result)]
    steps = []
    if shift > 0:
        steps.append((f"left shift by {shift}: {x} * 2^{shift} (wrapping)",
                      int(_wrapping_shift_left_int32(np.int64(x), np.int64(shift)))))
    high, right = _left_shift_then_high_mul(x, multiplier, shift, form)
    steps.append((f"saturating rounding doubling high multiply: round(x * {multiplier} / 2^31)", int(high)))
    if form == Form.ROUNDING_DOUBLE:
        result = int(rounding_divide_by_pot(high, right))
        steps.append((f"rounding divide by 2^{int(right)} (ties away from zero)", result))
    elif form == Form.ROUNDING_DOUBLE_TIES_UP:
        result = int(rounding_divide_by_pot_ties_up(high, right))
        steps.append((f"rounding divide by 2^{int(right)} (ties toward +inf)", result))
    else:
        raise ValueError(f"form {form!r} is not a fixed-point form")
    return steps


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, shift, above_one: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplierSmallerThanOneExp: RoundingDivideByPOT(SRDHM(x, m),
    -shift), the reference SUB's output rescale. For shift <= 0 it is the double-rounding MBQM.
    A shift > 0 (an output multiplier above 1, which sub.cc allows) makes the exponent negative,
    undefined in C; `above_one` is what the build computes then: Form.SUB_ABOVE_ONE_SIGN, +1 where
    SRDHM(x, m) >= 0 and -1 elsewhere (ai-edge-litert 2.3.0 x86-64, every path, shifts 1 to 21)."""
    shift = int(shift)
    if shift <= 0:
        return multiply_by_quantized_multiplier_double_rounding(x, multiplier, shift)
    if above_one != Form.SUB_ABOVE_ONE_SIGN:
        raise ValueError(f"form {above_one!r} is not a SUB_ABOVE_ONE form")
    high = saturating_rounding_doubling_high_mul(x, multiplier)
    return np.where(np.asarray(high) >= 0, 1, -1).astype(np.int32)


def multiply_by_quantized_multiplier(x, multiplier, shift,
                                     rounding: int = Form.ROUNDING_DOUBLE) -> np.ndarray:
    """MultiplyByQuantizedMultiplier in a fixed-point form (refnet/forms.py); broadcasts."""
    if rounding == Form.ROUNDING_DOUBLE:
        return multiply_by_quantized_multiplier_double_rounding(x, multiplier, shift)
    if rounding == Form.ROUNDING_SINGLE:
        return multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift)
    if rounding == Form.ROUNDING_DOUBLE_TIES_UP:
        return multiply_by_quantized_multiplier_double_rounding_ties_up(x, multiplier, shift)
    raise ValueError(f"form {rounding!r} is not a fixed-point form (refnet/forms.py)")


# --------------------------------------------------------------------------------------
# int16 primitives (quantized HARD_SWISH)
# --------------------------------------------------------------------------------------


def _check_int16(x: np.ndarray, name: str) -> None:
    if x.size and (x.min() < INT16_MIN or x.max() > INT16_MAX):
        raise ValueError(f"{name} must hold int16 values")


def saturating_rounding_doubling_high_mul_int16(a, b) -> np.ndarray:
    """round(a * b / 2**15), ties toward +inf; INT16_MIN * INT16_MIN -> INT16_MAX."""
    a = _as_int64(a)
    b = _as_int64(b)
    _check_int16(a, "a")
    _check_int16(b, "b")
    product = a * b
    nudge = np.where(product >= 0, np.int64(1 << 14), np.int64(1 - (1 << 14)))
    high = _truncating_divide_by_pot(product + nudge, 15)
    overflow = (a == b) & (a == INT16_MIN)
    return wrap_to_int16(np.where(overflow, INT16_MAX, high))


def saturating_doubling_high_mul_int16(a, b) -> np.ndarray:
    """a * b / 2**15 truncated toward zero (ARM SQDMULH); INT16_MIN * INT16_MIN saturates."""
    a = _as_int64(a)
    b = _as_int64(b)
    _check_int16(a, "a")
    _check_int16(b, "b")
    high = _truncating_divide_by_pot(a * b, 15)
    overflow = (a == b) & (a == INT16_MIN)
    return wrap_to_int16(np.where(overflow, INT16_MAX, high))


def rounding_divide_by_pot_int16(x, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT at int16; exponent in [0, 31].

    As in the reference, the mask 2**exponent - 1 is narrowed to int16, so for exponent >= 16
    it is -1 and the result degenerates to 1 (x >= 0) or -1 (x < 0).
    """
    x = _as_int64(x)
    exponent = _as_int64(exponent)
    _check_int16(x, "x")
    _check_exponent(exponent, 0, 31, "exponent")
    mask = wrap_to_int16((np.int64(1) << exponent) - 1).astype(np.int64)
    remainder = x & mask
    threshold = wrap_to_int16((mask >> 1) + (x < 0)).astype(np.int64)
    return wrap_to_int16((x >> exponent) + (remainder > threshold))


def saturating_left_shift_int16(value, amount) -> np.ndarray:
    """clamp(value * 2**amount) to int16; amount in [0, 30]."""
    value = _as_int64(value)
    amount = _as_int64(amount)
    _check_int16(value, "value")
    _check_exponent(amount, 0, 30, "amount")
    return np.clip(value << amount, INT16_MIN, INT16_MAX).astype(np.int16)


# --------------------------------------------------------------------------------------
# Quantized multipliers, as TFLite derives them
# --------------------------------------------------------------------------------------


def truncate_to_int32(values, saturating: bool = False) -> np.ndarray:
    """static_cast<int32_t> of a float or double: truncation toward zero, returned as int64.

    C leaves NaN and values outside int32 undefined; the hardware decides: x86-64's cvttss2si /
    cvttsd2si give INT32_MIN, aarch64's fcvtzs (saturating=True) clamps to [INT32_MIN, INT32_MAX]
    and gives 0 for NaN (Profile.saturating_conversion)."""
    v = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        fits = (v >= -(2.0**31)) & (v < 2.0**31)
        whole = np.trunc(np.where(fits, v, 0.0)).astype(np.int64)
        if not saturating:
            return np.where(fits, whole, INT32_MIN)
        return np.where(fits, whole, np.where(np.isnan(v), 0, np.where(v > 0, INT32_MAX, INT32_MIN)))


def round_half_away(x):
    """std::round (TfLiteRound): halves away from zero (NumPy's and Python's round are half to
    even); float arrays or scalars, same dtype back."""
    x = np.asarray(x)
    whole = np.trunc(x)
    # x - trunc(x) is exact in floating point, so the tie test is exact too.
    return whole + np.where(np.abs(x - whole) >= 0.5, np.sign(x), 0).astype(x.dtype)


def quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real ~= multiplier * 2**(shift - 31).

    frexp, round half away from zero to 31 fractional bits, the q == 2**31 fix-up, and
    shift < -31 flushed to (0, 0).  With single_rounding=True also TFLITE_SINGLE_ROUNDING's
    saturation of shift > 30 to (2**31 - 1, 30).  Returns (int32 multiplier, shift).
    """
    real = float(real)
    if not math.isfinite(real):
        raise ValueError(f"cannot quantize a non-finite multiplier {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * float(1 << 31)))  # q * 2**31 is exact
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if single_rounding and shift > 30:
        shift = 30
        q_fixed = (1 << 31) - 1
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: requires 0 < real < 1; shift <= 0."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier must be in (0, 1), got {real!r}")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"multiplier {real!r} quantized to a positive shift {shift}")
    return multiplier, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierGreaterThanOne: requires real > 1; shift >= 0."""
    if not real > 1.0:
        raise ValueError(f"multiplier must be > 1, got {real!r}")
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real!r} quantized to a negative shift {shift}")
    return multiplier, shift


def quantize_multipliers(reals, single_rounding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier over a 1-D array of reals (per-channel scales).

    Returns (int32 multipliers, int32 shifts), ready for the requantize kernel.
    """
    reals = np.asarray(reals, dtype=np.float64).reshape(-1)
    pairs = [quantize_multiplier(r, single_rounding) for r in reals.tolist()]
    multipliers = np.array([m for m, _ in pairs], dtype=np.int32)
    shifts = np.array([s for _, s in pairs], dtype=np.int32)
    return multipliers, shifts


def down_scale_int32_to_int16_multiplier(multiplier: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier: round a Q31 multiplier to Q15.

    Values within 2**15 of INT32_MAX saturate to INT16_MAX; the rest is (m + 2**15) >> 16.
    """
    multiplier = int(multiplier)
    if not 0 <= multiplier <= INT32_MAX:
        raise ValueError(f"multiplier must be a non-negative int32, got {multiplier}")
    rounding_offset = 1 << 15
    if multiplier >= INT32_MAX - rounding_offset:
        return INT16_MAX
    return (multiplier + rounding_offset) >> 16


class HardSwishParams(NamedTuple):
    """What LiteRT's HardSwishPrepare stores for the quantized HARD_SWISH kernel."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier_fixedpoint_int16: int
    output_multiplier_exponent: int
    reluish_multiplier_fixedpoint_int16: int
    reluish_multiplier_exponent: int


def hard_swish_params(input_scale: float, input_zp: int, output_scale: float,
                      output_zp: int) -> HardSwishParams:
    """Derive quantized HARD_SWISH parameters exactly as LiteRT's Prepare does.

    The scales are float32 in the model and the intermediate ratios are computed in float32
    (hires_input_scale = input_scale / 128, reluish_scale = 3 / 32768) before being widened to
    double for QuantizeMultiplier; both Q31 multipliers are then rounded to Q15.  LiteRT
    refuses a positive output exponent; so do we (ValueError).
    """
    f32 = np.float32
    with np.errstate(all="ignore"):
        hires_input_scale = f32(f32(1.0) / f32(128.0)) * f32(input_scale)
        reluish_scale = f32(3.0) / f32(32768.0)
        output_multiplier = f32(hires_input_scale / f32(output_scale))
        reluish_multiplier = f32(hires_input_scale / reluish_scale)

    output_q31, output_exponent = quantize_multiplier(float(output_multiplier))
    if output_exponent > 0:
        raise ValueError(
            "HARD_SWISH needs input_scale / (128 * output_scale) < 1 "
            f"(got output exponent {output_exponent}); LiteRT rejects this model too")
    reluish_q31, reluish_exponent = quantize_multiplier(float(reluish_multiplier))
    return HardSwishParams(
        input_zero_point=int(input_zp),
        output_zero_point=int(output_zp),
        output_multiplier_fixedpoint_int16=down_scale_int32_to_int16_multiplier(output_q31),
        output_multiplier_exponent=int(output_exponent),
        reluish_multiplier_fixedpoint_int16=down_scale_int32_to_int16_multiplier(reluish_q31),
        reluish_multiplier_exponent=int(reluish_exponent),
    )


# --- gemmlowp transcendental pieces (softmax) -------------------------------------------------
# All on int64 arrays holding int32 values; "SRDHM" is saturating_rounding_doubling_high_mul.
SCALED_DIFF_INTEGER_BITS = 5  # softmax's exp input is Q5.26


def srdhm_int64(a, b) -> np.ndarray:
    """saturating_rounding_doubling_high_mul, as int64 (for chains of fixed-point steps)."""
    return saturating_rounding_doubling_high_mul(a, b).astype(np.int64)


def rdbpot_int64(x, exponent: int) -> np.ndarray:
    """rounding_divide_by_pot, as int64 (for chains of fixed-point steps)."""
    return rounding_divide_by_pot(x, exponent).astype(np.int64)


def saturating_shift_left_int32(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent on int32 values."""
    threshold = (1 << (31 - exponent)) - 1
    shifted = x << exponent
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, -INT32_MAX - 1, shifted))


# Q0.31 multipliers exp(-2**k) for k = -2 .. 4 (gemmlowp's barrel shifter constants).
_EXP_OF_MINUS_POWERS_OF_TWO = {-2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308,
                               2: 39332535, 3: 720401, 4: 242}
_EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8) in Q0.31
_ONE_THIRD = 715827883  # 1/3 in Q0.31


def exp_on_interval_minus_quarter_to_zero(a: np.ndarray) -> np.ndarray:
    """exp(a) for a Q0.31 value a in [-1/4, 0): Taylor series around -1/8."""
    x = a + (1 << 28)  # a + 1/8
    x2 = srdhm_int64(x, x)
    x3 = srdhm_int64(x2, x)
    x4 = srdhm_int64(x2, x2)
    x4_over_4 = rdbpot_int64(x4, 2)
    poly = rdbpot_int64(wrap_to_int32(srdhm_int64(wrap_to_int32(x4_over_4 + x3), _ONE_THIRD) + x2), 1)
    return wrap_to_int32(_EXP_MINUS_ONE_EIGHTH
                         + srdhm_int64(_EXP_MINUS_ONE_EIGHTH, wrap_to_int32(x + poly))).astype(np.int64)


def exp_on_negative_values_q5_26(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values for a Q5.26 input a <= 0; returns Q0.31 (1.0 -> 2**31-1)."""
    fractional_bits = 31 - SCALED_DIFF_INTEGER_BITS
    quarter = 1 << (fractional_bits - 2)
    # Split a = (multiple of 1/4) + (a mod 1/4 - 1/4): the second part is in [-1/4, 0).
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    # Rescale Q5.26 -> Q0.31 (a saturating left shift by 5; the value is in [-1/4, 0)).
    result = exp_on_interval_minus_quarter_to_zero(
        saturating_shift_left_int32(a_mod_quarter_minus_quarter, SCALED_DIFF_INTEGER_BITS))
    remainder = wrap_to_int32(a_mod_quarter_minus_quarter - a).astype(np.int64)  # multiple of 1/4
    for exponent, multiplier in _EXP_OF_MINUS_POWERS_OF_TWO.items():
        if SCALED_DIFF_INTEGER_BITS > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, srdhm_int64(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def rounding_half_sum(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp RoundingHalfSum: (a + b + sign) / 2 with C's truncating division."""
    total = a + b
    total = total + np.where(total >= 0, 1, -1)
    return np.where(total >= 0, total // 2, -((-total) // 2))


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a Q0.31 value a in [0, 1), as Q0.31 (Newton-Raphson, 3 steps)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)  # (1 + a) / 2, Q0.31
    one_q2_29 = 1 << 29
    # 48/17 - 32/17 * half_denominator, in Q2.29.
    x = wrap_to_int32(1515870810 + srdhm_int64(half_denominator, -1010580540)).astype(np.int64)
    for _ in range(3):
        half_denominator_times_x = srdhm_int64(half_denominator, x)
        one_minus = wrap_to_int32(one_q2_29 - half_denominator_times_x).astype(np.int64)
        # Q2.29 * Q2.29 = Q4.27, rescaled to Q2.29 by a saturating left shift of 2.
        x = wrap_to_int32(x + saturating_shift_left_int32(srdhm_int64(x, one_minus), 2)).astype(np.int64)
    # x / 2 read as Q1.30, rescaled to Q0.31 (saturating left shift by 1).
    return saturating_shift_left_int32(x, 1)


def count_leading_zeros_32(x: np.ndarray) -> np.ndarray:
    """clz of non-negative values below 2**31 as uint32 (32 for 0)."""
    bits = np.zeros(x.shape, np.int64)
    v = x.copy()
    for step in (16, 8, 4, 2, 1):
        big = v >= (1 << step)
        bits = bits + np.where(big, step, 0)
        v = np.where(big, v >> step, v)
    return np.where(x == 0, 32, 31 - bits)  # bits = floor(log2(x)) for x >= 1


# --- inverse square root (quantized L2_NORMALIZATION) -----------------------------------------
_THREE_HALVES_Q3_28 = (1 << 28) + (1 << 27)  # 1.5 with 3 integer bits
_ONE_Q3_28 = 1 << 28
_HALF_SQRT_2_Q0_31 = 1518500250  # sqrt(2) / 2 in Q0.31
_INVERSE_SQRT_ITERATIONS = 5


def inverse_sqrt_multiplier(x) -> tuple[np.ndarray, np.ndarray]:
    """1 / sqrt(x) as (multiplier, shift), shift <= 0 a right shift: multiplier * 2**(shift - 31)
    ~= 1 / sqrt(x), for int32 values x (GetInvSqrtQuantizedMultiplierExp with reverse shift).

    x <= 1 gives (2**31 - 1, 0). Otherwise x is scaled by 4**k into [2**27, 2**29), read as Q3.28
    (halved), and 1 / sqrt of it found by 5 Newton-Raphson steps from 1 in Q3.28 fixed point
    (x <- 3/2 x - x/2 * x**3, each product a rounding doubling high multiply, each rescale a
    saturating shift); the result times sqrt(2) / 2 in Q0.31 undoes the halving.
    """
    x = _as_int64(x)
    _check_int32(x, "x")
    tiny = x <= 1
    value = np.where(tiny, 2, x)
    exponent = np.full(value.shape, 11, np.int64)
    while np.any(value >= (1 << 29)):  # at most once for int32 inputs
        big = value >= (1 << 29)
        value = np.where(big, value // 4, value)
        exponent = exponent + big
    max_left_shift_bits = count_leading_zeros_32(value) - 1
    left_shift_bit_pairs = max_left_shift_bits // 2 - 1
    exponent = exponent - left_shift_bit_pairs
    value = value << (2 * left_shift_bit_pairs)  # now in [2**27, 2**29)
    input_q3 = value >> 1
    half_input_q3 = rdbpot_int64(input_q3, 1)
    estimate = np.full(value.shape, _ONE_Q3_28, np.int64)
    for _ in range(_INVERSE_SQRT_ITERATIONS):
        cube_q9 = srdhm_int64(srdhm_int64(estimate, estimate), estimate)
        cube_q3 = saturating_shift_left_int32(cube_q9, 6)
        step_q6 = wrap_to_int32(srdhm_int64(_THREE_HALVES_Q3_28, estimate)
                                - srdhm_int64(half_input_q3, cube_q3)).astype(np.int64)
        estimate = saturating_shift_left_int32(step_q6, 3)
    multiplier = srdhm_int64(estimate, _HALF_SQRT_2_Q0_31)
    # a negative exponent is folded into the multiplier (a plain, wrapping int32 shift)
    multiplier = np.where(exponent < 0, wrap_to_int32(multiplier << np.maximum(-exponent, 0)), multiplier)
    exponent = np.maximum(exponent, 0)
    multiplier = np.where(tiny, INT32_MAX, multiplier).astype(np.int64)
    shift = np.where(tiny, 0, -exponent).astype(np.int64)
    return multiplier, shift


# --- gemmlowp's int16 logistic and tanh (LiteRT's optimized int16 LOGISTIC / TANH) ------------
# int64 arrays holding int16 raw values; + and - wrap at 16 bits as the C++ int16 arithmetic does,
# products are saturating_rounding_doubling_high_mul_int16, rescales saturating shifts. The
# int32 constants of gemmlowp are narrowed as its RescaleConstantInitializer does: rounded by 2**16.


def _int16_constant(int32_value: int) -> int:
    return int(rounding_divide_by_pot(np.int64(int32_value), 16))


def _wrap16(x) -> np.ndarray:
    return wrap_to_int16(x).astype(np.int64)


def _mul16(a, b) -> np.ndarray:
    return saturating_rounding_doubling_high_mul_int16(a, b).astype(np.int64)


def _shl16(x, amount: int) -> np.ndarray:
    return saturating_left_shift_int16(x, amount).astype(np.int64)


_ONE_Q0_15 = INT16_MAX  # FixedPoint<int16, 0>::One() is the largest raw value
_EXP_MINUS_ONE_EIGHTH_Q0_15 = _int16_constant(_EXP_MINUS_ONE_EIGHTH)
_ONE_THIRD_Q0_15 = _int16_constant(_ONE_THIRD)
_FORTY_EIGHT_SEVENTEENTHS_Q2_13 = _int16_constant(1515870810)
_MINUS_THIRTY_TWO_SEVENTEENTHS_Q2_13 = _int16_constant(-1010580540)
_ONE_Q2_13 = 1 << 13


def _exp_on_interval_minus_quarter_to_zero_int16(a: np.ndarray) -> np.ndarray:
    """exp(a) for a Q0.15 value a in [-1/4, 0): the Taylor series of exp_on_interval_minus_quarter_to_zero."""
    x = _wrap16(a + (1 << 12))  # a + 1/8
    x2 = _mul16(x, x)
    x3 = _mul16(x2, x)
    x4 = _mul16(x2, x2)
    x4_over_4 = rounding_divide_by_pot_int16(x4, 2).astype(np.int64)
    poly = rounding_divide_by_pot_int16(_wrap16(_mul16(_wrap16(x4_over_4 + x3), _ONE_THIRD_Q0_15) + x2),
                                        1).astype(np.int64)
    total = _EXP_MINUS_ONE_EIGHTH_Q0_15 + _mul16(_EXP_MINUS_ONE_EIGHTH_Q0_15, _wrap16(x + poly))
    return np.clip(total, INT16_MIN, INT16_MAX)  # gemmlowp's add saturates at 16 bits here


def exp_on_negative_values_int16(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values for an int16 input with `integer_bits` integer bits (a <= 0);
    returns Q0.15."""
    fractional_bits = 15 - integer_bits
    quarter = 1 << (fractional_bits - 2)
    a = np.asarray(a, np.int64)
    a_mod_quarter_minus_quarter = _wrap16((a & (quarter - 1)) - quarter)
    result = _exp_on_interval_minus_quarter_to_zero_int16(_shl16(a_mod_quarter_minus_quarter, integer_bits))
    remainder = _wrap16(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_OF_MINUS_POWERS_OF_TWO.items():
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, _mul16(result, _int16_constant(multiplier)), result)
    return np.where(a == 0, _ONE_Q0_15, result)


def _reciprocal_half_denominator_q2_13(a: np.ndarray) -> np.ndarray:
    """1 / ((1 + a) / 2) in Q2.13 for a Q0.15 a in [0, 1): Newton-Raphson, 3 steps from 48/17 - 32/17 d."""
    total = a + _ONE_Q0_15  # RoundingHalfSum at int16: (a + b + sign) / 2, truncating (a >= 0 here)
    half_denominator = np.where(total >= 0, (total + 1) // 2, -((-total + 1) // 2))
    x = _wrap16(_FORTY_EIGHT_SEVENTEENTHS_Q2_13 + _mul16(half_denominator, _MINUS_THIRTY_TWO_SEVENTEENTHS_Q2_13))
    for _ in range(3):
        one_minus = _wrap16(_ONE_Q2_13 - _mul16(half_denominator, x))
        x = _wrap16(x + _shl16(_mul16(x, one_minus), 2))
    return x


def logistic_int16_q3_12(a) -> np.ndarray:
    """gemmlowp logistic of a Q3.12 int16 value, as Q0.15 (LiteRT's optimized int16 LOGISTIC with
    input scale 2**-12): 1 / (1 + exp(-|a|)), mirrored for a < 0, 1/2 at 0."""
    a = np.asarray(a, np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, _wrap16(-a))
    exp_minus = exp_on_negative_values_int16(_wrap16(-magnitude), 3)
    # 1 / (1 + e) = (reciprocal of the half denominator) / 2: Q2.13 read as Q1.14, shifted to Q0.15
    if_positive = _shl16(_reciprocal_half_denominator_q2_13(exp_minus), 1)
    if_negative = _wrap16(_ONE_Q0_15 - if_positive)
    return wrap_to_int16(np.where(a == 0, 1 << 14, np.where(positive, if_positive, if_negative)))


def tanh_int16(a, integer_bits: int = 3) -> np.ndarray:
    """gemmlowp tanh of an int16 value with `integer_bits` integer bits, as Q0.15 (LiteRT's optimized
    int16 TANH with input scale 2**-12): (1 - exp(-2|a|)) / (1 + exp(-2|a|)), sign restored, 0 at 0."""
    a = np.asarray(a, np.int64)
    negative = a < 0
    minus_magnitude = np.where(negative, a, _wrap16(-a))
    exp_minus_twice = exp_on_negative_values_int16(minus_magnitude, integer_bits + 1)  # 2x: one more integer bit
    reciprocal = _reciprocal_half_denominator_q2_13(exp_minus_twice)
    # (1 - e) / (1 + e) = 2 / (1 + e) - 1 = reciprocal - 1, Q2.13 shifted to Q0.15
    t = _shl16(_wrap16(reciprocal - _ONE_Q2_13), 2)
    return wrap_to_int16(np.where(a == 0, 0, np.where(negative, _wrap16(-t), t)))
# --------------------------------------------------------------------------------------
# int16 -> int16 lookup tables with interpolation (SOFTMAX int16)
# --------------------------------------------------------------------------------------

INT16_LUT_STEPS = 512  # the top 9 bits of an int16 index the table, the low 7 interpolate


def int16_lut_populate(transform, input_scale: float, input_zero_point: int, output_scale: float,
                       output_zero_point: int) -> np.ndarray:
    """TFLite's LUTPopulate<int16_t> with double arithmetic (what LiteRT's SOFTMAX uses): 513
    samples of `transform` (a double -> double function) over the input range, in output steps
    of 65536 / (output range); each of the first 512 samples is corrected by half the rounded
    error of linear interpolation at its interval's midpoint, so that the lookup's interpolation
    is closer there. Returns int16[513]."""
    input_min = input_scale * (INT16_MIN - input_zero_point)
    input_max = input_scale * (INT16_MAX - input_zero_point)
    output_min = output_scale * (INT16_MIN - output_zero_point)
    output_max = output_scale * (INT16_MAX - output_zero_point)
    step = (input_max - input_min) / INT16_LUT_STEPS
    half_step = step / 2
    output_scaling_inv = float(INT16_MAX - INT16_MIN + 1) / (output_max - output_min)

    def to_table(v: float) -> int:
        return int(min(max(v, float(INT16_MIN)), float(INT16_MAX)))

    def rounded(v: float) -> float:
        return float(round_half_away(np.float64(v)))

    table = np.empty(INT16_LUT_STEPS + 1, np.int16)
    for i in range(INT16_LUT_STEPS):
        sample = transform(input_min + i * step)
        midpoint = transform(input_min + i * step + half_step)
        following = transform(input_min + (i + 1) * step)
        sample_value = rounded(sample * output_scaling_inv)
        interpolated_midpoint = rounded((following * output_scaling_inv + rounded(sample * output_scaling_inv)) / 2)
        midpoint_error = interpolated_midpoint - rounded(midpoint * output_scaling_inv)
        table[i] = to_table(sample_value - rounded(midpoint_error / 2))
    table[INT16_LUT_STEPS] = to_table(rounded(transform(input_max) * output_scaling_inv))
    return table


def int16_lut_lookup(value, table: np.ndarray) -> np.ndarray:
    """TFLite's LUTLookup (int16 -> int16): entry 256 + (v >> 7), plus the slope to the next
    entry (narrowed to int16, as the reference stores it) times the low 7 bits, rounded
    ((slope * offset + 64) >> 7); the sum wraps to int16."""
    value = _as_int64(value)
    _check_int16(value, "value")
    if table.shape != (INT16_LUT_STEPS + 1,):
        raise ValueError(f"an int16 table has {INT16_LUT_STEPS + 1} entries")
    entries = table.astype(np.int64)
    index = 256 + (value >> 7)
    offset = value & 0x7F
    base = entries[index]
    slope = wrap_to_int16(entries[index + 1] - base).astype(np.int64)
    delta = (slope * offset + 64) >> 7
    return wrap_to_int16(base + delta)
def count_leading_sign_bits_32(x: np.ndarray) -> np.ndarray:
    """TFLite's CountLeadingSignBits for int32 values: the redundant sign bits (31 for 0 and -1)."""
    x = _as_int64(x)
    magnitude = np.where(x >= 0, x, -x - 1)  # ~x for negatives: the same count of sign bits
    return count_leading_zeros_32(magnitude) - 1


def get_reciprocal(x: np.ndarray, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal for positive int32 x with `integer_digits` integer bits: (1 / x as
    Q0.31 of x normalised into [1, 2), the number of bits x has above the unit)."""
    x = _as_int64(x)
    headroom_plus_one = count_leading_zeros_32(x)
    bits_over_unit = integer_digits - headroom_plus_one
    shifted_minus_one = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)  # in [0, 2**31)
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), bits_over_unit


def rounding_divide_by_pot_out_of_range(x, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT for exponents in [-32, -1] or [32, 63], which C leaves
    undefined, as LiteRT 2.3.0's quantized DIV computes it on x86-64 (measured over every input
    pair of 24 quantizations, exponents -15 to 44): the mask (1ll << e) - 1 keeps its low 32 bits
    (all ones: x86 counts a 64-bit shift mod 64), and the int32 shift x >> e counts e mod 32.
    So 0 gives 1, and other values a quotient that usually clamps."""
    x = _as_int64(x)
    exponent = _as_int64(exponent)
    _check_int32(x, "x")
    if np.any(((exponent >= 0) & (exponent <= 31)) | (exponent < -32) | (exponent > 63)):
        raise ValueError("exponent must be in [-32, -1] or [32, 63]")
    all_ones = np.int64(-1)  # the low 32 bits of (1 << e) - 1, read as int32
    remainder = x & all_ones
    threshold = (all_ones >> 1) + (x < 0)
    return ((x >> (exponent % 32)) + (remainder > threshold)).astype(np.int32)
