# cython: language_level=3
"""Requantization: int32 accumulators -> int8/uint8 outputs.

out = clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_zero_point,
            qmin, qmax)

with per-tensor (length-1) or per-channel (length-C) multiplier/shift, in one of the fixed-point forms of refnet/forms.py (Form.ROUNDING_DOUBLE, ROUNDING_SINGLE,
ROUNDING_DOUBLE_TIES_UP; defined in kernels/fixedpoint.pxd).
The zero-point addition wraps in int32 as the reference's int32 addition does on the
(never seen in real models) overflow.

The small `*_array` functions expose the primitives to the tests.
"""
import numpy as np

cimport fixedpoint as fp
from libc.math cimport round
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t, uint32_t

ctypedef fused q_out:
    int8_t
    uint8_t


cdef _check_shifts(const int32_t[::1] shift, int rounding):
    cdef int max_shift = fp.checked_max_shift(rounding)
    if shift.shape[0] == 0:
        return
    cdef int32_t lo = shift[0], hi = shift[0]
    cdef Py_ssize_t i
    for i in range(shift.shape[0]):  # a C loop: NumPy's min / max cost microseconds a call
        lo = min(lo, shift[i])
        hi = max(hi, shift[i])
    if lo < fp.RN_MIN_SHIFT or hi > max_shift:
        raise ValueError(f"shift values must be in [{fp.RN_MIN_SHIFT}, {max_shift}] for this rounding form, "
                         f"got range [{lo}, {hi}]")


def requantize(const int32_t[:, ::1] acc not None, const int32_t[::1] multiplier not None,
               const int32_t[::1] shift not None, int output_zero_point, int qmin, int qmax,
               int rounding, q_out[:, ::1] out not None):
    """out[r, c] = clamp(MBQM(acc[r, c], multiplier[c], shift[c]) + zp, qmin, qmax).

    multiplier and shift have length C (per channel) or 1 (per tensor); shift > 0 is a
    left shift.  out is int8 or uint8 with the same shape as acc; qmin/qmax lie in its range.
    """
    cdef Py_ssize_t rows = acc.shape[0]
    cdef Py_ssize_t channels = acc.shape[1]
    cdef Py_ssize_t r, c
    cdef bint per_channel_multiplier, per_channel_shift
    cdef int32_t value
    if out.shape[0] != rows or out.shape[1] != channels:
        raise ValueError(f"out shape ({out.shape[0]}, {out.shape[1]}) != acc shape "
                         f"({rows}, {channels})")
    if multiplier.shape[0] not in (1, channels):
        raise ValueError(f"multiplier length {multiplier.shape[0]} must be 1 or {channels}")
    if shift.shape[0] not in (1, channels):
        raise ValueError(f"shift length {shift.shape[0]} must be 1 or {channels}")
    if multiplier.shape[0] == 0 or shift.shape[0] == 0:
        raise ValueError("multiplier and shift must not be empty")
    _check_shifts(shift, rounding)
    if q_out is int8_t:
        type_min, type_max = -128, 127
    else:
        type_min, type_max = 0, 255
    if not (type_min <= qmin <= qmax <= type_max):
        raise ValueError(f"need {type_min} <= qmin <= qmax <= {type_max}, "
                         f"got qmin={qmin}, qmax={qmax}")
    per_channel_multiplier = multiplier.shape[0] == channels and channels != 1
    per_channel_shift = shift.shape[0] == channels and channels != 1

    with nogil:
        for r in range(rows):
            for c in range(channels):
                value = fp.multiply_by_quantized_multiplier(
                    acc[r, c],
                    multiplier[c if per_channel_multiplier else 0],
                    shift[c if per_channel_shift else 0],
                    rounding)
                # int32 addition with wrap-around, as the reference's `acc += offset`.
                value = <int32_t>(<uint32_t>value + <uint32_t>output_zero_point)
                out[r, c] = <q_out>fp.clamp_int32(value, qmin, qmax)



def requantize_float64(const int32_t[:, ::1] acc not None, const double[::1] scale not None,
                       int output_zero_point, int qmin, int qmax, q_out[:, ::1] out not None):
    """out[r, c] = clamp(round(double(acc[r, c]) * scale[c]) + zp, qmin, qmax), round being
    std::round (halves away from zero) and its result saturated to int32 before the zero point:
    Form.ROUNDING_FLOAT64, LiteRT's reference FULLY_CONNECTED (requantize.py's
    requantize_float64, whose NumPy arithmetic this repeats).  scale has length C (per channel) or
    1; a NaN product, which no model reaches (prepare refuses scales without a multiplier), gives
    qmin, as x86-64's conversion of NaN (INT32_MIN) then the clamp."""
    cdef Py_ssize_t rows = acc.shape[0], channels = acc.shape[1], r, c
    cdef bint per_channel
    cdef double v
    cdef int64_t value
    if out.shape[0] != rows or out.shape[1] != channels:
        raise ValueError(f"out shape ({out.shape[0]}, {out.shape[1]}) != acc shape ({rows}, {channels})")
    if scale.shape[0] not in (1, channels) or scale.shape[0] == 0:
        raise ValueError(f"scale length {scale.shape[0]} must be 1 or {channels}")
    type_min, type_max = (-128, 127) if q_out is int8_t else (0, 255)
    if not (type_min <= qmin <= qmax <= type_max):
        raise ValueError(f"need {type_min} <= qmin <= qmax <= {type_max}, got qmin={qmin}, qmax={qmax}")
    per_channel = scale.shape[0] == channels and channels != 1
    with nogil:
        for r in range(rows):
            for c in range(channels):
                v = round(<double>acc[r, c] * scale[c if per_channel else 0])
                if v != v:
                    value = qmin
                else:
                    value = <int64_t>min(max(v, -2147483648.0), 2147483647.0) + output_zero_point
                out[r, c] = <q_out>min(max(value, <int64_t>qmin), <int64_t>qmax)

def multiply_by_quantized_multiplier(acc, int multiplier, int shift, int rounding):
    """MultiplyByQuantizedMultiplier on every element of an int32 array (per-tensor m, s).

    Returns a new int32 array with acc's shape.
    """
    a = np.asarray(acc)
    if a.dtype != np.int32:
        raise ValueError(f"acc must be an int32 array, got dtype {a.dtype}")
    cdef int top = fp.checked_max_shift(rounding)
    if not (fp.RN_MIN_SHIFT <= shift <= top):
        raise ValueError(f"shift {shift} out of range [{fp.RN_MIN_SHIFT}, {top}]")
    cdef const int32_t[::1] flat = np.ascontiguousarray(a).reshape(-1)
    result = np.empty(flat.shape[0], dtype=np.int32)
    cdef int32_t[::1] res = result
    cdef Py_ssize_t i
    with nogil:
        for i in range(flat.shape[0]):
            res[i] = fp.multiply_by_quantized_multiplier(flat[i], multiplier, shift, rounding)
    return result.reshape(a.shape)


# ---------------------------------------------------------------------------------------
# Element-wise wrappers over the primitives, for the tests (same-shape 1-D int32 arrays).
# ---------------------------------------------------------------------------------------

def _same_length(*arrays):
    n = arrays[0].shape[0]
    for a in arrays[1:]:
        if a.shape[0] != n:
            raise ValueError("arrays must have the same length")
    return n


def srdhm_array(const int32_t[::1] a, const int32_t[::1] b):
    """saturating_rounding_doubling_high_mul element-wise."""
    cdef Py_ssize_t n = _same_length(a, b), i
    result = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.saturating_rounding_doubling_high_mul(a[i], b[i])
    return result


def _check_exponents(const int32_t[::1] e, int lo, int hi):
    if e.shape[0] and (np.asarray(e).min() < lo or np.asarray(e).max() > hi):
        raise ValueError(f"exponents must be in [{lo}, {hi}]")


def rounding_divide_by_pot_array(const int32_t[::1] x, const int32_t[::1] exponent):
    """rounding_divide_by_pot element-wise (ties away from zero); exponent in [0, 31]."""
    cdef Py_ssize_t n = _same_length(x, exponent), i
    _check_exponents(exponent, 0, 31)
    result = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.rounding_divide_by_pot(x[i], exponent[i])
    return result


def rounding_divide_by_pot_ties_up_array(const int32_t[::1] x, const int32_t[::1] exponent):
    """rounding_divide_by_pot_ties_up element-wise; exponent in [0, 31]."""
    cdef Py_ssize_t n = _same_length(x, exponent), i
    _check_exponents(exponent, 0, 31)
    result = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.rounding_divide_by_pot_ties_up(x[i], exponent[i])
    return result


def multiply_by_quantized_multiplier_array(const int32_t[::1] x, const int32_t[::1] multiplier,
                                           const int32_t[::1] shift, int rounding):
    """multiply_by_quantized_multiplier element-wise (all three arrays the same length)."""
    cdef Py_ssize_t n = _same_length(x, multiplier, shift), i
    _check_exponents(shift, fp.RN_MIN_SHIFT, fp.checked_max_shift(rounding))
    result = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] res = result
    with nogil:
        for i in range(n):
            res[i] = fp.multiply_by_quantized_multiplier(x[i], multiplier[i], shift[i], rounding)
    return result
