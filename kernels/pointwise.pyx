# cython: language_level=3
"""Matrix-product kernels for 1x1 convolutions and FULLY_CONNECTED.

a is (P, K): P rows (pixels of an NHWC tensor viewed as (N*H*W, C), or batch rows of a fully
connected layer), w is (Cout, K) as stored in .tflite, out is (P, Cout).

matmul_int   int32 accumulator: bias + sum_k (a + a_offset) * (w + w_offset), exact in int64,
             wrapped to int32 on store.
matmul_float float32 sum from 0.0f over k in order (float32 product, float32 add, no FMA), then
             + bias, then the activation clamp: LiteRT's reference FullyConnected (and a 1x1
             reference Conv) bit for bit.

The weights are re-laid out as (K, Cout) so the innermost loop runs over contiguous output
channels; each output still receives its products in the order k = 0, 1, ...
"""
import numpy as np

cimport fixedpoint as fp
from libc.math cimport fmaf
from libc.stdint cimport int8_t, uint8_t, int32_t, int64_t

ctypedef fused q_in:
    int8_t
    uint8_t

ctypedef fused q_w:
    int8_t
    uint8_t

from refnet.kernel_checks import check_float_sum, check_offset as _check_offset


def _check_shapes(Py_ssize_t rows, Py_ssize_t depth, Py_ssize_t w_rows, Py_ssize_t w_depth,
                  Py_ssize_t out_rows, Py_ssize_t out_cols, bias_length):
    if w_depth != depth:
        raise ValueError(f"weights depth {w_depth} != input depth {depth}")
    if out_rows != rows:
        raise ValueError(f"out rows {out_rows} != input rows {rows}")
    if out_cols != w_rows:
        raise ValueError(f"out columns {out_cols} != weight rows (output channels) {w_rows}")
    if bias_length is not None and bias_length != w_rows:
        raise ValueError(f"bias length {bias_length} != output channels {w_rows}")


def matmul_int(const q_in[:, ::1] a not None, const q_w[:, ::1] w not None,
               const int32_t[::1] bias, int a_offset, int w_offset,
               int32_t[:, ::1] out not None):
    """out[p, o] = bias[o] + sum_k (a[p, k] + a_offset) * (w[o, k] + w_offset), int32-wrapped.

    a (P, K) int8/uint8, w (Cout, K) int8/uint8, bias int32[Cout] or None, out int32 (P, Cout).
    """
    _check_shapes(a.shape[0], a.shape[1], w.shape[0], w.shape[1], out.shape[0], out.shape[1],
                  None if bias is None else bias.shape[0])
    _check_offset(a_offset, "a_offset")
    _check_offset(w_offset, "w_offset")

    cdef Py_ssize_t rows = a.shape[0], depth = a.shape[1], out_depth = w.shape[0]
    cdef Py_ssize_t p, k, oc
    cdef bint has_bias = bias is not None
    cdef int32_t a_shifted
    cdef const int32_t* w_row
    cdef int64_t* acc_ptr

    if rows == 0 or out_depth == 0:
        return

    weights_shifted = np.empty((depth, out_depth), dtype=np.int32)
    cdef int32_t[:, ::1] wt = weights_shifted
    acc_buffer = np.empty(out_depth, dtype=np.int64)
    cdef int64_t[::1] acc = acc_buffer
    acc_ptr = &acc[0]

    with nogil:
        for oc in range(out_depth):
            for k in range(depth):
                wt[k, oc] = <int32_t>w[oc, k] + w_offset
        for p in range(rows):
            for oc in range(out_depth):
                acc_ptr[oc] = bias[oc] if has_bias else 0
            for k in range(depth):
                a_shifted = <int32_t>a[p, k] + a_offset
                w_row = &wt[k, 0]
                for oc in range(out_depth):
                    acc_ptr[oc] += <int64_t>(a_shifted * w_row[oc])
            for oc in range(out_depth):
                out[p, oc] = fp.wrap_to_int32(acc_ptr[oc])


def matmul_float(const float[:, ::1] a not None, const float[:, ::1] w not None,
                 const float[::1] bias, float act_min, float act_max,
                 float[:, ::1] out not None, int nan_block=0, Py_ssize_t lane_count=0,
                 Py_ssize_t lane_end=0, Py_ssize_t fma_from=-1):
    """LiteRT reference FullyConnected: out[p, o] = clamp(sum_k a[p, k] * w[o, k] + bias[o]),
    the sum sequential in float32 over k from 0.0f, bias 0.0f if None, clamp max then min.

    a (P, K), w (Cout, K), bias float32[Cout] or None, out (P, Cout), all float32.
    The products are summed as fp.add_channel_products says (lane_count, lane_end, fma_from
    from refnet.forms.FloatSum.split; default: never fused).
    """
    _check_shapes(a.shape[0], a.shape[1], w.shape[0], w.shape[1], out.shape[0], out.shape[1],
                  None if bias is None else bias.shape[0])

    cdef Py_ssize_t rows = a.shape[0], depth = a.shape[1], out_depth = w.shape[0]
    cdef Py_ssize_t p, k, oc
    cdef bint has_bias = bias is not None
    cdef float bias_value
    cdef float* total
    cdef float* lanes
    fma_from = check_float_sum(depth, lane_count, lane_end, fma_from)
    # k in whole blocks of nan_block adds the product first (NaN rule, see fp.add_product)
    cdef Py_ssize_t blocked = (depth // nan_block) * nan_block if nan_block > 0 else 0

    if rows == 0 or out_depth == 0:
        return

    weights_transposed = np.empty((depth, out_depth), dtype=np.float32)
    cdef float[:, ::1] wt = weights_transposed
    total_buffer = np.empty(out_depth, dtype=np.float32)
    cdef float[::1] totals = total_buffer
    total = &totals[0]
    lane_buffer = np.zeros(max(lane_count, 1) * out_depth, dtype=np.float32)
    cdef float[::1] lane_values = lane_buffer
    lanes = &lane_values[0]

    with nogil:
        for oc in range(out_depth):
            for k in range(depth):
                wt[k, oc] = w[oc, k]
        for p in range(rows):
            for oc in range(out_depth):
                total[oc] = 0.0
            for k in range(depth):
                fp.add_channel_products(total, lanes, a[p, k], &wt[k, 0], out_depth, k, lane_count,
                                        lane_end, fma_from, k < blocked)
            for oc in range(out_depth):
                bias_value = bias[oc] if has_bias else 0.0
                out[p, oc] = fp.activation_min_max_float(fp.add_nan_first(total[oc], bias_value),
                                                         act_min, act_max)


def fused_multiply_add(float a, float b, float c):
    """fmaf(a, b, c): a * b + c rounded once, the step add_channel_products takes when fused
    (for refnet.explain, which walks one output element's sum)."""
    return fmaf(a, b, c)


def fused_multiply_add_scalars(const float[::1] a not None, float b, float c, float[::1] out not None):
    """out[i] = fmaf(a[i], b, c): a * b + c rounded once (a build that contracts the expression)."""
    if out.shape[0] != a.shape[0]:
        raise ValueError(f"out length {out.shape[0]} != input length {a.shape[0]}")
    cdef Py_ssize_t i
    with nogil:
        for i in range(a.shape[0]):
            out[i] = fmaf(a[i], b, c)


def fused_multiply_add_arrays(const float[::1] a not None, const float[::1] b not None,
                              const float[::1] c not None, float[::1] out not None):
    """out[i] = fmaf(a[i], b[i], c[i]): rounded once (a build whose compiler contracts a * b + c)."""
    if not (a.shape[0] == b.shape[0] == c.shape[0] == out.shape[0]):
        raise ValueError(f"lengths differ: a {a.shape[0]}, b {b.shape[0]}, c {c.shape[0]}, out {out.shape[0]}")
    cdef Py_ssize_t i
    with nogil:
        for i in range(a.shape[0]):
            out[i] = fmaf(a[i], b[i], c[i])
