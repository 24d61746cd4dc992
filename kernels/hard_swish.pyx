# cython: language_level=3
"""HARD_SWISH kernels, as LiteRT's reference kernels compute them.

hard_swish_float      out = x * min(6, max(0, x + 3)) / 6, every step in float32 and in that
                      order: (x + 3), clamp (std::max then std::min semantics, so NaN + 3
                      clamps to 0), product x * r, then division by 6 (not a multiply by 1/6);
                      reciprocal=True: (x * (1/6)) * r, as a build with -freciprocal-math.
hard_swish_quantized  the reference int16 fixed-point path: the input is put on a "hires"
                      scale (x - zp) * 2**7, multiplied onto the output scale with a Q15
                      multiplier, multiplied by the "reluish" factor in [0, 1] (an affine
                      map of x from [-3, 3], saturating), then shifted to the output scale.
                      Parameters come from refnet.fixedpoint.hard_swish_params.

The `*_int16_array` functions expose the int16 primitives to the tests.
"""
import numpy as np

cimport fixedpoint as fp
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t

ctypedef fused q_io:
    int8_t
    uint8_t


def hard_swish_float(const float[::1] x not None, float[::1] out not None, bint reciprocal=False):
    """LiteRT reference float HardSwish on flat float32 arrays of equal length."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out length {out.shape[0]} != input length {x.shape[0]}")
    cdef Py_ssize_t i, n = x.shape[0]
    # float32 constants, so no step is evaluated in double.
    cdef float zero = 0.0, three = 3.0, six = 6.0
    cdef float sixth = one_over(six)
    cdef float value, shifted, relu6
    with nogil:
        for i in range(n):
            value = x[i]
            shifted = value + three
            # std::max(0.f, shifted): keeps 0 unless 0 < shifted (so NaN -> 0).
            relu6 = shifted if zero < shifted else zero
            # std::min(6.f, relu6): keeps 6 unless relu6 < 6.
            relu6 = relu6 if relu6 < six else six
            if reciprocal:
                out[i] = (value * sixth) * relu6
            else:
                out[i] = value * relu6 / six


cdef float one_over(float d) noexcept nogil:
    return <float>1.0 / d


LOOKUP_THRESHOLD = 512  # above this many elements, a 256-entry table (same bits) is cheaper


def hard_swish_quantized(const q_io[::1] x not None, q_io[::1] out not None,
                         int input_zero_point, int output_zero_point,
                         int output_multiplier_fixedpoint_int16, int output_multiplier_exponent,
                         int reluish_multiplier_fixedpoint_int16, int reluish_multiplier_exponent,
                         int qmin, int qmax):
    """LiteRT reference quantized HardSwish on flat int8 or uint8 arrays.

    The reference clamps to the full range of the type; pass qmin/qmax = the type's limits
    to reproduce it.  Exponents: output in [-31, 0] (LiteRT refuses > 0), reluish in
    [-31, 31]; fixed-point multipliers are int16.
    """
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"out length {out.shape[0]} != input length {x.shape[0]}")
    if q_io is int8_t:
        type_min, type_max = -128, 127
    else:
        type_min, type_max = 0, 255
    if not (type_min <= input_zero_point <= type_max):
        raise ValueError(f"input_zero_point {input_zero_point} outside [{type_min}, {type_max}]")
    if not (type_min <= output_zero_point <= type_max):
        raise ValueError(f"output_zero_point {output_zero_point} outside "
                         f"[{type_min}, {type_max}]")
    if not (type_min <= qmin <= qmax <= type_max):
        raise ValueError(f"need {type_min} <= qmin <= qmax <= {type_max}, "
                         f"got qmin={qmin}, qmax={qmax}")
    for name, value in (("output_multiplier_fixedpoint_int16", output_multiplier_fixedpoint_int16),
                        ("reluish_multiplier_fixedpoint_int16", reluish_multiplier_fixedpoint_int16)):
        if not (-32768 <= value <= 32767):
            raise ValueError(f"{name} {value} is not an int16")
    if not (-31 <= output_multiplier_exponent <= 0):
        raise ValueError(f"output_multiplier_exponent {output_multiplier_exponent} "
                         "outside [-31, 0]")
    if not (-31 <= reluish_multiplier_exponent <= 31):
        raise ValueError(f"reluish_multiplier_exponent {reluish_multiplier_exponent} "
                         "outside [-31, 31]")

    cdef Py_ssize_t i, n = x.shape[0]
    if n > LOOKUP_THRESHOLD:
        # An 8-bit input has 256 values: run this very function on all of them (below the
        # threshold, so element by element) and map the tensor through that table.  The same
        # arithmetic produces every entry, so the bits are the same.
        dtype = np.int8 if q_io is int8_t else np.uint8
        every_value = np.arange(256, dtype=np.uint8).view(dtype)
        table = np.empty(256, dtype)
        hard_swish_quantized(every_value, table, input_zero_point, output_zero_point,
                             output_multiplier_fixedpoint_int16, output_multiplier_exponent,
                             reluish_multiplier_fixedpoint_int16, reluish_multiplier_exponent,
                             qmin, qmax)
        np.take(table, np.asarray(x).view(np.uint8), out=np.asarray(out))
        return
    cdef int16_t output_multiplier = <int16_t>output_multiplier_fixedpoint_int16
    cdef int16_t reluish_multiplier = <int16_t>reluish_multiplier_fixedpoint_int16
    cdef int output_right_shift = -output_multiplier_exponent
    cdef int reluish_exponent = reluish_multiplier_exponent
    cdef int16_t input_value, hires_input, preshift_output_scale_input, reluish
    cdef int16_t preshift_output, output_value
    with nogil:
        for i in range(n):
            # Narrowing to int16 as the reference does (no wrap can happen with in-range zero
            # points: |x - zp| <= 255 and 255 * 2**7 < 2**15).
            input_value = <int16_t>(<int32_t>x[i] - input_zero_point)
            hires_input = <int16_t>(input_value * (1 << 7))
            # x on the output scale, before the final right shift.
            preshift_output_scale_input = fp.saturating_rounding_doubling_high_mul_int16(
                hires_input, output_multiplier)
            # The reluish factor: x rescaled so that 3.0 maps to 2**15, saturating.  A left
            # shift is split (exponent - 1 before the multiply, 1 after) so that only the last
            # step saturates, as the reference does.
            reluish = hires_input
            if reluish_exponent > 0:
                reluish = fp.saturating_left_shift_int16(reluish, reluish_exponent - 1)
            reluish = fp.saturating_rounding_doubling_high_mul_int16(reluish, reluish_multiplier)
            if reluish_exponent > 0:
                reluish = fp.saturating_left_shift_int16(reluish, 1)
            if reluish_exponent < 0:
                reluish = fp.rounding_divide_by_pot_int16(reluish, -reluish_exponent)
            # [-1, 1] -> [0, 1] in Q15.
            reluish = <int16_t>((<int32_t>reluish + (1 << 15)) >> 1)
            # Truncating (not rounding) high multiply here, as the reference: it cancels the
            # bias of the rounding multiplies above.
            preshift_output = fp.saturating_doubling_high_mul_int16(
                reluish, preshift_output_scale_input)
            output_value = fp.rounding_divide_by_pot_int16(preshift_output, output_right_shift)
            # The reference adds the zero point in int16 (wrapping), then clamps min-then-max.
            output_value = <int16_t>(<int32_t>output_value + output_zero_point)
            if output_value > qmax:
                output_value = <int16_t>qmax
            if output_value < qmin:
                output_value = <int16_t>qmin
            out[i] = <q_io>output_value


# ---------------------------------------------------------------------------------------
# Element-wise wrappers over the int16 primitives, for the tests.
# ---------------------------------------------------------------------------------------

def _same_length(a, b):
    if a.shape[0] != b.shape[0]:
        raise ValueError("arrays must have the same length")
    return a.shape[0]


def _check_range(const int32_t[::1] values, int lo, int hi, name):
    if values.shape[0] and (np.asarray(values).min() < lo or np.asarray(values).max() > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}]")


def srdhm_int16_array(const int16_t[::1] a not None, const int16_t[::1] b not None):
    """saturating_rounding_doubling_high_mul_int16 element-wise."""
    cdef Py_ssize_t n = _same_length(a, b), i
    result = np.empty(n, dtype=np.int16)
    cdef int16_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.saturating_rounding_doubling_high_mul_int16(a[i], b[i])
    return result


def sdhm_int16_array(const int16_t[::1] a not None, const int16_t[::1] b not None):
    """saturating_doubling_high_mul_int16 (truncating) element-wise."""
    cdef Py_ssize_t n = _same_length(a, b), i
    result = np.empty(n, dtype=np.int16)
    cdef int16_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.saturating_doubling_high_mul_int16(a[i], b[i])
    return result


def rounding_divide_by_pot_int16_array(const int16_t[::1] x not None,
                                       const int32_t[::1] exponent not None):
    """rounding_divide_by_pot_int16 element-wise; exponent in [0, 31]."""
    cdef Py_ssize_t n = _same_length(x, exponent), i
    _check_range(exponent, 0, 31, "exponent")
    result = np.empty(n, dtype=np.int16)
    cdef int16_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.rounding_divide_by_pot_int16(x[i], exponent[i])
    return result


def saturating_left_shift_int16_array(const int16_t[::1] x not None,
                                      const int32_t[::1] amount not None):
    """saturating_left_shift_int16 element-wise; amount in [0, 30]."""
    cdef Py_ssize_t n = _same_length(x, amount), i
    _check_range(amount, 0, 30, "amount")
    result = np.empty(n, dtype=np.int16)
    cdef int16_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.saturating_left_shift_int16(x[i], amount[i])
    return result
