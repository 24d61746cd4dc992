# cython: language_level=3
"""Fixed-point primitives shared by refnet's integer kernels.

Each function is named after what it computes and reproduces the integer arithmetic of
LiteRT's reference kernels (gemmlowp's fixedpoint scalar primitives and TFLite's
MultiplyByQuantizedMultiplier) bit for bit.  Where the reference relies on int32/int16
two's-complement wrap-around (signed overflow, narrowing casts), we spell the wrap out with
unsigned arithmetic or an explicit narrowing cast, so the behaviour here is defined C.

refnet/fixedpoint.py holds the same primitives as vectorised NumPy (the oracle) and
kernels/fast_body.h the vector form; tests/test_forms.py checks that all three agree on every
form, shift and extreme input.
"""

cimport cython
from libc.math cimport fmaf
from libc.stdint cimport (int8_t, uint8_t, int16_t, int32_t, int64_t, uint32_t, uint64_t,
                          INT16_MIN, INT16_MAX, INT32_MIN, INT32_MAX)

# Requantization forms: numbers from refnet/forms.py, through the generated kernels/forms.h.
cdef extern from "forms.h":
    cdef enum:
        RN_ROUNDING_DOUBLE             # gemmlowp / TFLite reference: two roundings
        RN_ROUNDING_SINGLE             # TFLITE_SINGLE_ROUNDING: one 64-bit product, one rounding
        RN_ROUNDING_DOUBLE_TIES_UP     # same high multiply, final shift rounds ties toward +inf
        RN_ROUNDING_FP32               # float32 scale, round half to even (the fast kernels' epilogue)
        RN_ADD_INPUT_SHIFT_FLOOR_8     # optimized ADD: inputs' shift floors in 8-element blocks
        RN_ADD_XNNPACK                 # XNNPACK vadd: 21-bit multipliers, one shift, ties up
        RN_QUANTIZE_RECIPROCAL_RNE     # QUANTIZE float32: x * float32(1 / s), round half to even
        RN_MIN_SHIFT
        RN_MAX_SHIFT
        RN_MAX_SHIFT_SINGLE


# --------------------------------------------------------------------------------------
# int32 helpers
# --------------------------------------------------------------------------------------

cdef inline int32_t wrap_to_int32(int64_t value) noexcept nogil:
    """Low 32 bits of `value` as a signed int32 (two's-complement wrap-around)."""
    return <int32_t><uint32_t><uint64_t>value


cdef inline int32_t wrapping_shift_left_int32(int32_t value, int amount) noexcept nogil:
    """value * 2**amount modulo 2**32 (amount in [0, 31]); the reference's `x * (1 << s)`."""
    return <int32_t>(<uint32_t>value << amount)


@cython.cdivision(True)
cdef inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) noexcept nogil:
    """round(a * b / 2**31) with ties toward +inf (ARM VQRDMULH); INT32_MIN * INT32_MIN
    saturates to INT32_MAX.

    The nudge 2**30 (1 - 2**30 for negative products) followed by C's truncating division
    equals floor((a * b + 2**30) / 2**31): a negative tie such as -2.5 goes to -2.
    """
    cdef int64_t product
    cdef int64_t nudge
    if a == b and a == INT32_MIN:
        return INT32_MAX
    product = <int64_t>a * <int64_t>b
    nudge = (1 << 30) if product >= 0 else (1 - (1 << 30))
    return <int32_t>((product + nudge) / (<int64_t>1 << 31))


cdef inline int32_t rounding_divide_by_pot(int32_t x, int exponent) noexcept nogil:
    """round(x / 2**exponent), ties away from zero; exponent in [0, 31]."""
    cdef int32_t mask = <int32_t>((<int64_t>1 << exponent) - 1)
    cdef int32_t remainder = x & mask
    # x >> exponent floors; add 1 when the remainder is above one half (for x >= 0 a tie
    # counts as above, for x < 0 it does not), so ties go away from zero on both sides.
    cdef int32_t threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


cdef inline int32_t rounding_divide_by_pot_ties_up(int32_t x, int exponent) noexcept nogil:
    """floor(x / 2**exponent + 1/2): round to nearest, ties toward +inf; exponent in [0, 31].

    Done in 64 bits, so values near INT32_MAX do not wrap (that is also what the SIMD kernels
    that use this rounding return in their overflow lane).
    """
    if exponent == 0:
        return x
    return <int32_t>((<int64_t>x + (<int64_t>1 << (exponent - 1))) >> exponent)


cdef inline int32_t left_shift_then_high_mul(int32_t x, int32_t multiplier, int shift) noexcept nogil:
    """The double-rounding forms' first half: SRDHM(x * 2**max(shift, 0), multiplier), the left
    shift wrapping like the reference's int32 multiply."""
    return saturating_rounding_doubling_high_mul(wrapping_shift_left_int32(x, shift if shift > 0 else 0),
                                                 multiplier)


cdef inline int32_t multiply_by_quantized_multiplier_double_rounding(
        int32_t x, int32_t multiplier, int shift) noexcept nogil:
    """RN_ROUNDING_DOUBLE: TFLite reference MultiplyByQuantizedMultiplier (no
    TFLITE_SINGLE_ROUNDING): high multiply, then rounding divide by 2**max(-shift, 0) with ties
    away from 0.  shift in [-31, 31]."""
    return rounding_divide_by_pot(left_shift_then_high_mul(x, multiplier, shift), -shift if shift < 0 else 0)


cdef inline int32_t multiply_by_quantized_multiplier_double_rounding_ties_up(
        int32_t x, int32_t multiplier, int shift) noexcept nogil:
    """RN_ROUNDING_DOUBLE_TIES_UP: as the double-rounding form, but the final right shift rounds
    ties toward +inf (LiteRT's optimized 1x1 convolution, measured).  shift in [-31, 31]."""
    return rounding_divide_by_pot_ties_up(left_shift_then_high_mul(x, multiplier, shift),
                                          -shift if shift < 0 else 0)


cdef inline int32_t multiply_by_quantized_multiplier_single_rounding(
        int32_t x, int32_t multiplier, int shift) noexcept nogil:
    """TFLITE_SINGLE_ROUNDING MultiplyByQuantizedMultiplier: one exact 64-bit product, one
    rounding right shift by 31 - shift with ties toward +inf, result wrapped to int32.

    shift in [-31, 30]; the sum below stays within int64 for every int32 x and multiplier.
    """
    cdef int total_shift = 31 - shift
    cdef int64_t rounding_offset = <int64_t>1 << (total_shift - 1)
    cdef int64_t result = <int64_t>x * <int64_t>multiplier + rounding_offset
    return wrap_to_int32(result >> total_shift)


cdef inline int32_t multiply_by_quantized_multiplier(
        int32_t x, int32_t multiplier, int shift, int rounding) noexcept nogil:
    """Dispatch on the fixed-point form (RN_ROUNDING_*; refnet/forms.py)."""
    if rounding == RN_ROUNDING_SINGLE:
        return multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift)
    if rounding == RN_ROUNDING_DOUBLE_TIES_UP:
        return multiply_by_quantized_multiplier_double_rounding_ties_up(x, multiplier, shift)
    return multiply_by_quantized_multiplier_double_rounding(x, multiplier, shift)


cdef inline int checked_max_shift(int rounding) except -1000:
    """The largest left shift a fixed-point form is defined for (forms.max_shift); others raise."""
    if rounding == RN_ROUNDING_SINGLE:
        return RN_MAX_SHIFT_SINGLE
    if rounding == RN_ROUNDING_DOUBLE or rounding == RN_ROUNDING_DOUBLE_TIES_UP:
        return RN_MAX_SHIFT
    raise ValueError(f"form {rounding} is not a fixed-point form (refnet/forms.py: "
                     f"ROUNDING_DOUBLE 0, ROUNDING_SINGLE 1, ROUNDING_DOUBLE_TIES_UP 2)")


cdef inline int32_t clamp_int32(int32_t value, int32_t lo, int32_t hi) noexcept nogil:
    """max then min, as the reference's activation clamp."""
    if value < lo:
        value = lo
    if value > hi:
        value = hi
    return value


cdef inline int32_t saturating_shift_left_int32(int32_t x, int exponent) noexcept nogil:
    """gemmlowp SaturatingRoundingMultiplyByPOT with exponent in [1, 30]: x * 2**exponent,
    saturated to [INT32_MIN, INT32_MAX]."""
    cdef int32_t threshold = <int32_t>((<int64_t>1 << (31 - exponent)) - 1)
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrapping_shift_left_int32(x, exponent)


@cython.cdivision(True)
cdef inline int32_t rounding_half_sum(int32_t a, int32_t b) noexcept nogil:
    """gemmlowp RoundingHalfSum: (a + b + sign) / 2, C's truncating division, in 64 bits."""
    cdef int64_t total = <int64_t>a + <int64_t>b
    total += 1 if total >= 0 else -1
    return <int32_t>(total / 2)


cdef inline int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) noexcept nogil:
    """gemmlowp: 1 / (1 + a) for a Q0.31 value a in [0, 1), as Q0.31: three Newton-Raphson steps
    from 48/17 - 32/17 * (1 + a) / 2 in Q2.29 (refnet/fixedpoint.py has the NumPy form)."""
    cdef int32_t half_denominator = rounding_half_sum(a, INT32_MAX)  # (1 + a) / 2, Q0.31
    cdef int32_t x = wrap_to_int32(<int64_t>1515870810 +
                                   saturating_rounding_doubling_high_mul(half_denominator, -1010580540))
    cdef int32_t one_minus
    cdef int step
    for step in range(3):
        one_minus = wrap_to_int32((<int64_t>1 << 29) -
                                  saturating_rounding_doubling_high_mul(half_denominator, x))
        # Q2.29 * Q2.29 = Q4.27, back to Q2.29 by a saturating left shift of 2
        x = wrap_to_int32(<int64_t>x + saturating_shift_left_int32(
            saturating_rounding_doubling_high_mul(x, one_minus), 2))
    return saturating_shift_left_int32(x, 1)  # x / 2 read as Q1.30, to Q0.31


cdef inline int count_leading_zeros_32(uint32_t x) noexcept nogil:
    """Leading zero bits of a 32-bit value (32 for 0)."""
    cdef int n = 0
    if x == 0:
        return 32
    while not (x & 0x80000000u):
        x <<= 1
        n += 1
    return n


# --------------------------------------------------------------------------------------
# int16 helpers (quantized HARD_SWISH)
# --------------------------------------------------------------------------------------

@cython.cdivision(True)
cdef inline int16_t saturating_rounding_doubling_high_mul_int16(int16_t a, int16_t b) noexcept nogil:
    """round(a * b / 2**15) with ties toward +inf (as the int32 form); INT16_MIN * INT16_MIN
    saturates to INT16_MAX."""
    cdef int32_t product
    cdef int32_t nudge
    if a == b and a == INT16_MIN:
        return INT16_MAX
    product = <int32_t>a * <int32_t>b
    nudge = (1 << 14) if product >= 0 else (1 - (1 << 14))
    return <int16_t>((product + nudge) / (1 << 15))


@cython.cdivision(True)
cdef inline int16_t saturating_doubling_high_mul_int16(int16_t a, int16_t b) noexcept nogil:
    """a * b / 2**15 truncated toward zero (ARM SQDMULH); INT16_MIN * INT16_MIN saturates."""
    if a == b and a == INT16_MIN:
        return INT16_MAX
    return <int16_t>((<int32_t>a * <int32_t>b) / (1 << 15))


cdef inline int16_t rounding_divide_by_pot_int16(int16_t x, int exponent) noexcept nogil:
    """gemmlowp's RoundingDivideByPOT instantiated for int16; exponent in [0, 31].

    The reference builds the mask in 64 bits and narrows it to int16, so for exponent >= 16
    the mask becomes -1 (all ones): the result is then 1 for x >= 0 and -1 for x < 0.
    That quirk is reproduced on purpose.
    """
    cdef int16_t mask = <int16_t>((<int64_t>1 << exponent) - 1)
    cdef int16_t remainder = <int16_t>(x & mask)
    cdef int16_t threshold = <int16_t>((mask >> 1) + (1 if x < 0 else 0))
    return <int16_t>((x >> exponent) + (1 if remainder > threshold else 0))


cdef inline int16_t saturating_left_shift_int16(int16_t value, int amount) noexcept nogil:
    """clamp(value * 2**amount) to int16; amount in [0, 30]."""
    cdef int64_t result = <int64_t>value * (<int64_t>1 << amount)
    if result > INT16_MAX:
        result = INT16_MAX
    if result < INT16_MIN:
        result = INT16_MIN
    return <int16_t>result


# --------------------------------------------------------------------------------------
# float32 helpers
# --------------------------------------------------------------------------------------

cdef inline float add_nan_first(float first, float second) noexcept nogil:
    """first + second where, if both are NaN, the result is first's NaN (quieted), as x86
    returns its first operand's NaN (a C compiler may commute a plain `+`)."""
    if first != first:
        return first + <float>0.0
    return first + second


cdef inline float mul_nan_first(float first, float second) noexcept nogil:
    """first * second; if both are NaN, first's NaN (quieted). LiteRT's `input * filter` keeps
    the input's NaN (measured on CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED)."""
    if first != first:
        return first + <float>0.0
    return first * second


cdef inline float add_product(float total, float product, bint product_first) noexcept nogil:
    """total + product, keeping the product's NaN (product_first) or the total's when both are
    NaN: which one a runtime keeps is its profile's float_nan_blocks (refnet/profile.py)."""
    if product_first:
        return add_nan_first(product, total)
    return add_nan_first(total, product)


cdef inline float activation_min_max_float(float x, float act_min, float act_max) noexcept nogil:
    """std::min(std::max(x, act_min), act_max) exactly: NaN passes through, -0.0 is kept."""
    if x < act_min:
        x = act_min
    if act_max < x:
        x = act_max
    return x


# --------------------------------------------------------------------------------------
# float32 sums of products, in the order a runtime's compiled loop forms them
# (refnet/forms.py FloatSum; which runtime does which: refnet/profile.py)
# --------------------------------------------------------------------------------------


cdef inline void clear_lanes(float* lanes, Py_ssize_t lane_count, Py_ssize_t out_depth) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(lane_count * out_depth):
        lanes[i] = 0.0


cdef inline void reduce_lanes(float* total, float* lanes, Py_ssize_t lane_count,
                              Py_ssize_t out_depth) noexcept nogil:
    """total += the lane accumulators summed pairwise (NEON faddp: (l0 + l1) + (l2 + l3)), then
    clear them for the next tap. lane_count is a power of two."""
    cdef Py_ssize_t oc, width, i
    for oc in range(out_depth):
        width = lane_count
        while width > 1:
            width //= 2
            for i in range(width):
                lanes[i * out_depth + oc] = lanes[2 * i * out_depth + oc] + lanes[(2 * i + 1) * out_depth + oc]
        total[oc] = total[oc] + lanes[oc]
    clear_lanes(lanes, lane_count, out_depth)


cdef inline void add_channel_products(float* total, float* lanes, float x_value, const float* w_row,
                                      Py_ssize_t out_depth, Py_ssize_t channel, Py_ssize_t lane_count,
                                      Py_ssize_t lane_end, Py_ssize_t fma_from,
                                      bint product_first) noexcept nogil:
    """Add input channel `channel`'s products x_value * w_row[oc] to every output channel oc.

    channel < lane_end: into lane accumulator channel % lane_count, fused (a vectorised,
    reassociated loop), the lanes reduced into total after channel lane_end - 1;
    channel >= fma_from: total = fma(x, w, total) (the compiler contracted the multiply-add);
    otherwise the float32 product, then a float32 add (NaN rule: add_product)."""
    cdef Py_ssize_t oc
    cdef float* lane
    if channel < lane_end:
        lane = lanes + (channel % lane_count) * out_depth
        for oc in range(out_depth):
            lane[oc] = fmaf(x_value, w_row[oc], lane[oc])
        if channel == lane_end - 1:
            reduce_lanes(total, lanes, lane_count, out_depth)
    elif channel >= fma_from:
        for oc in range(out_depth):
            total[oc] = fmaf(x_value, w_row[oc], total[oc])
    else:
        for oc in range(out_depth):
            total[oc] = add_product(total[oc], mul_nan_first(x_value, w_row[oc]), product_first)
