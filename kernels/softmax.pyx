# cython: language_level=3
"""SOFTMAX on 8-bit inputs, as LiteRT's reference kernel computes it (gemmlowp fixed point).

softmax_q8  each row: its maximum; each element's distance d below it (0..255) picks the
            prepared Q0.31 exponential exps[d] and Q12.19 sum term terms[d] (zero where d lies
            beyond diff_min: kept[d] == 0); the int64 sum of the row's terms; its reciprocal
            (clz headroom, 1 / (1 + x) by Newton-Raphson); each kept element's output
            rounding_divide_by_pot(SRDHM(reciprocal, exps[d]), exponent) + output_min, clamped.
            Rows whose sum passes INT32_MAX (LiteRT's int32 accumulator wraps) or whose exponent
            passes 31 (LiteRT aborts) give output_min for every element.  For int16 outputs such
            a sum is an error: the return value is then the largest sum (else 0).

softmax_f   float32 rows as LiteRT's reference: the maximum from lowest() (NaN never replaces
            it), e_c = expf((x_c - max) * beta) by the C library's expf (the function LiteRT's
            std::exp calls, so its bits), the float32 sum left to right from e_0, then e_c / sum
            (or e_c * (1 / sum)).

refnet/ops/softmax.py holds the plan (exps, terms, kept from the distances 0..255) and the
NumPy definitions these kernels are tested against.
"""
from libc.math cimport expf
from libc.float cimport FLT_MAX
cimport fixedpoint as fp
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t, uint32_t, INT32_MAX

ctypedef fused q8_in:
    int8_t
    uint8_t

ctypedef fused q_out:
    int8_t
    uint8_t
    int16_t

cdef int ACCUMULATION_INTEGER_BITS = 12  # the sum of exps is Q12.19


def softmax_q8(const q8_in[:, ::1] x not None, const int64_t[::1] exps not None,
               const int64_t[::1] terms not None, const uint8_t[::1] kept not None,
               int output_bits, int output_min, int output_max, q_out[:, ::1] out not None) -> int:
    """Rows of x (int8 or uint8) -> out (int8, uint8 or int16) along axis 1; see the module
    docstring.  exps, terms, kept: 256 entries, by distance below the row's maximum."""
    cdef Py_ssize_t rows = x.shape[0], n = x.shape[1], r, i
    if out.shape[0] != rows or out.shape[1] != n:
        raise ValueError(f"out shape ({out.shape[0]}, {out.shape[1]}) != x shape ({rows}, {n})")
    if exps.shape[0] != 256 or terms.shape[0] != 256 or kept.shape[0] != 256:
        raise ValueError("exps, terms and kept need 256 entries (the distances 0..255)")
    if output_bits not in (8, 16) or not output_min <= output_max:
        raise ValueError(f"output_bits {output_bits}, range [{output_min}, {output_max}]")
    cdef int32_t row_max, reciprocal, value
    cdef int64_t total, worst = 0
    cdef int headroom, exponent
    cdef bint in_range
    if n == 0:
        return 0
    with nogil:
        for r in range(rows):
            row_max = x[r, 0]
            for i in range(1, n):
                if x[r, i] > row_max:
                    row_max = x[r, i]
            total = 0
            for i in range(n):
                total += terms[row_max - x[r, i]]
            in_range = total <= INT32_MAX
            if not in_range and output_bits == 16:
                if total > worst:
                    worst = total
                continue
            reciprocal = 0
            exponent = 0
            if in_range:
                headroom = fp.count_leading_zeros_32(<uint32_t>total)
                reciprocal = fp.one_over_one_plus_x_for_x_in_0_1(
                    fp.wrap_to_int32((total << headroom) - (<int64_t>1 << 31)))
                exponent = ACCUMULATION_INTEGER_BITS - headroom + 31 - output_bits
                in_range = exponent <= 31
            for i in range(n):
                value = output_min
                if kept[row_max - x[r, i]] and in_range:
                    value = fp.rounding_divide_by_pot(
                        fp.saturating_rounding_doubling_high_mul(reciprocal, <int32_t>exps[row_max - x[r, i]]),
                        exponent) + output_min
                out[r, i] = <q_out>fp.clamp_int32(value, output_min, output_max)
    return worst


def one_over_one_plus_x_array(const int32_t[::1] a not None, int32_t[::1] out not None):
    """fixedpoint.pxd's one_over_one_plus_x_for_x_in_0_1 on an array (for the tests)."""
    cdef Py_ssize_t i
    for i in range(a.shape[0]):
        out[i] = fp.one_over_one_plus_x_for_x_in_0_1(a[i])


def count_leading_zeros_array(const uint32_t[::1] a not None, int32_t[::1] out not None):
    """fixedpoint.pxd's count_leading_zeros_32 on an array (for the tests)."""
    cdef Py_ssize_t i
    for i in range(a.shape[0]):
        out[i] = fp.count_leading_zeros_32(a[i])


def softmax_f(const float[:, ::1] x not None, float beta, bint reciprocal, float[:, ::1] out not None):
    """Rows of float32 x -> out along axis 1; see the module docstring.  Returns True when an
    output is NaN: which NaN a commutative product keeps is the compiler's choice here, so the
    caller then takes the NumPy definition (whose NaNs match LiteRT's, tests/ops)."""
    cdef Py_ssize_t rows = x.shape[0], n = x.shape[1], r, i
    cdef float top, total, e, inverse
    cdef bint nan_seen = False
    if out.shape[0] != rows or out.shape[1] != n:
        raise ValueError(f"out shape ({out.shape[0]}, {out.shape[1]}) != x shape ({rows}, {n})")
    if n == 0:
        return False
    with nogil:
        for r in range(rows):
            top = -FLT_MAX
            for i in range(n):
                if top < x[r, i]:  # std::max(top, x): x only when top < x
                    top = x[r, i]
            for i in range(n):
                out[r, i] = expf((x[r, i] - top) * beta)
            total = out[r, 0]
            for i in range(1, n):
                total = total + out[r, i]
            if reciprocal:
                inverse = (<float>1.0) / total
                for i in range(n):
                    out[r, i] = out[r, i] * inverse
            else:
                for i in range(n):
                    out[r, i] = out[r, i] / total
            for i in range(n):
                if out[r, i] != out[r, i]:
                    nan_seen = True
    return nan_seen
