# cython: language_level=3
"""CONV_2D kernels: the reference convolution's sums, integer and float32.

Layouts: input NHWC, filter (Cout, KH, KW, Cin) as stored in .tflite, output NHWC.
Output pixel (oy, ox) reads input rows oy*stride_h - pad_top + ky*dilation_h (and likewise
for columns); taps that fall outside the image are skipped, as in the reference kernels.

conv2d_int   int32 accumulator: bias + sum (x + input_offset) * (w + filter_offset), computed
             exactly in int64 and wrapped to int32 on store (the reference accumulates in
             int32; wrapping at the end gives the same bits).  Requantization is separate
             (requantize.pyx).
conv2d_float float32 sum starting at 0.0f in the order ky, kx, ci, then + bias, then the
             activation clamp; within each tap the channels' products are summed in the
             profile's FloatSum order (fp.add_channel_products): by default each step a float32
             product then a float32 add, LiteRT's reference float Conv on x86-64 bit for bit;
             aarch64 builds fuse (FMA) and vectorise parts of it.

Both kernels re-lay the filter out as (KH, KW, Cin, Cout) so the innermost loop runs over
contiguous output channels.  That changes no float result: every output channel still sees
its own taps in the order ky, kx, ci, and the lanes of a vectorised loop are independent.
"""
import numpy as np

cimport fixedpoint as fp
from libc.stdint cimport int8_t, uint8_t, int32_t, int64_t

ctypedef fused q_in:
    int8_t
    uint8_t

ctypedef fused q_w:
    int8_t
    uint8_t

from refnet.kernel_checks import check_float_sum, check_offset as _check_offset, check_window


def _check_geometry(input_shape, filter_shape, out_shape, bias_length, int stride_h,
                    int stride_w, int dilation_h, int dilation_w, int pad_top, int pad_left):
    n, h, w, cin = input_shape
    cout, kh, kw, filter_cin = filter_shape
    if filter_cin != cin:
        raise ValueError(f"filter input depth {filter_cin} != input depth {cin}")
    if out_shape[0] != n:
        raise ValueError(f"out batch {out_shape[0]} != input batch {n}")
    if out_shape[3] != cout:
        raise ValueError(f"out depth {out_shape[3]} != filter output channels {cout}")
    if bias_length is not None and bias_length != cout:
        raise ValueError(f"bias length {bias_length} != output channels {cout}")
    check_window(stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


def conv2d_int(const q_in[:, :, :, ::1] input not None, const q_w[:, :, :, ::1] filter not None,
               const int32_t[::1] bias, int input_offset, int filter_offset,
               int stride_h, int stride_w, int dilation_h, int dilation_w,
               int pad_top, int pad_left, int32_t[:, :, :, ::1] out not None):
    """out = bias + sum over (ky, kx, ci) of (x + input_offset) * (w + filter_offset).

    input (N, H, W, Cin) int8/uint8, filter (Cout, KH, KW, Cin) int8/uint8, bias int32[Cout]
    or None, out int32 (N, OH, OW, Cout); OH and OW are taken from out.
    """
    _check_geometry((input.shape[0], input.shape[1], input.shape[2], input.shape[3]),
                    (filter.shape[0], filter.shape[1], filter.shape[2], filter.shape[3]),
                    (out.shape[0], out.shape[1], out.shape[2], out.shape[3]),
                    None if bias is None else bias.shape[0], stride_h, stride_w,
                    dilation_h, dilation_w, pad_top, pad_left)
    _check_offset(input_offset, "input_offset")
    _check_offset(filter_offset, "filter_offset")

    cdef Py_ssize_t batches = input.shape[0], in_h = input.shape[1], in_w = input.shape[2]
    cdef Py_ssize_t in_depth = input.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2], out_depth = out.shape[3]
    cdef Py_ssize_t kernel_h = filter.shape[1], kernel_w = filter.shape[2]
    cdef Py_ssize_t b, oy, ox, ky, kx, ci, oc, iy, ix, y0, x0
    cdef bint has_bias = bias is not None
    cdef int32_t x_shifted
    cdef const int32_t* w_row
    cdef int64_t* acc_ptr

    if batches == 0 or out_h == 0 or out_w == 0 or out_depth == 0:
        return

    filter_shifted = np.empty((kernel_h, kernel_w, in_depth, out_depth), dtype=np.int32)
    cdef int32_t[:, :, :, ::1] w = filter_shifted
    acc_buffer = np.empty(out_depth, dtype=np.int64)
    cdef int64_t[::1] acc = acc_buffer
    acc_ptr = &acc[0]

    with nogil:
        for oc in range(out_depth):
            for ky in range(kernel_h):
                for kx in range(kernel_w):
                    for ci in range(in_depth):
                        w[ky, kx, ci, oc] = <int32_t>filter[oc, ky, kx, ci] + filter_offset

        for b in range(batches):
            for oy in range(out_h):
                y0 = oy * stride_h - pad_top
                for ox in range(out_w):
                    x0 = ox * stride_w - pad_left
                    for oc in range(out_depth):
                        acc_ptr[oc] = bias[oc] if has_bias else 0
                    for ky in range(kernel_h):
                        iy = y0 + ky * dilation_h
                        if iy < 0 or iy >= in_h:
                            continue  # padded row: contributes nothing
                        for kx in range(kernel_w):
                            ix = x0 + kx * dilation_w
                            if ix < 0 or ix >= in_w:
                                continue
                            for ci in range(in_depth):
                                x_shifted = <int32_t>input[b, iy, ix, ci] + input_offset
                                w_row = &w[ky, kx, ci, 0]
                                for oc in range(out_depth):
                                    acc_ptr[oc] += <int64_t>(x_shifted * w_row[oc])
                    for oc in range(out_depth):
                        out[b, oy, ox, oc] = fp.wrap_to_int32(acc_ptr[oc])


def conv2d_float(const float[:, :, :, ::1] input not None, const float[:, :, :, ::1] filter not None,
                 const float[::1] bias, int stride_h, int stride_w, int dilation_h,
                 int dilation_w, int pad_top, int pad_left, float act_min, float act_max,
                 float[:, :, :, ::1] out not None, int nan_block=0, Py_ssize_t lane_count=0,
                 Py_ssize_t lane_end=0, Py_ssize_t fma_from=-1):
    """LiteRT reference float Conv: sequential float32 sum over (ky, kx, ci), + bias, clamp.

    input (N, H, W, Cin), filter (Cout, KH, KW, Cin), bias float32[Cout] or None (adds 0.0f),
    out (N, OH, OW, Cout), all float32.  The clamp is min(max(v, act_min), act_max).
    Within each tap, the channels' products are summed as fp.add_channel_products says:
    lane_count, lane_end, fma_from from refnet.forms.FloatSum.split (default: never fused).
    """
    _check_geometry((input.shape[0], input.shape[1], input.shape[2], input.shape[3]),
                    (filter.shape[0], filter.shape[1], filter.shape[2], filter.shape[3]),
                    (out.shape[0], out.shape[1], out.shape[2], out.shape[3]),
                    None if bias is None else bias.shape[0], stride_h, stride_w,
                    dilation_h, dilation_w, pad_top, pad_left)

    cdef Py_ssize_t batches = input.shape[0], in_h = input.shape[1], in_w = input.shape[2]
    cdef Py_ssize_t in_depth = input.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2], out_depth = out.shape[3]
    cdef Py_ssize_t kernel_h = filter.shape[1], kernel_w = filter.shape[2]
    cdef Py_ssize_t b, oy, ox, ky, kx, ci, oc, iy, ix, y0, x0
    cdef bint has_bias = bias is not None
    cdef float bias_value
    cdef float* total
    cdef float* lanes
    fma_from = check_float_sum(in_depth, lane_count, lane_end, fma_from)
    # input channels in whole blocks of nan_block add the product first (NaN rule, see add_product)
    cdef Py_ssize_t blocked = (in_depth // nan_block) * nan_block if nan_block > 0 else 0

    if batches == 0 or out_h == 0 or out_w == 0 or out_depth == 0:
        return

    filter_transposed = np.empty((kernel_h, kernel_w, in_depth, out_depth), dtype=np.float32)
    cdef float[:, :, :, ::1] w = filter_transposed
    total_buffer = np.empty(out_depth, dtype=np.float32)
    cdef float[::1] totals = total_buffer
    total = &totals[0]
    lane_buffer = np.zeros(max(lane_count, 1) * out_depth, dtype=np.float32)
    cdef float[::1] lane_values = lane_buffer
    lanes = &lane_values[0]

    with nogil:
        for oc in range(out_depth):
            for ky in range(kernel_h):
                for kx in range(kernel_w):
                    for ci in range(in_depth):
                        w[ky, kx, ci, oc] = filter[oc, ky, kx, ci]

        for b in range(batches):
            for oy in range(out_h):
                y0 = oy * stride_h - pad_top
                for ox in range(out_w):
                    x0 = ox * stride_w - pad_left
                    for oc in range(out_depth):
                        total[oc] = 0.0
                    for ky in range(kernel_h):
                        iy = y0 + ky * dilation_h
                        if iy < 0 or iy >= in_h:
                            continue  # padded row: skipped, not added as 0 * w
                        for kx in range(kernel_w):
                            ix = x0 + kx * dilation_w
                            if ix < 0 or ix >= in_w:
                                continue
                            for ci in range(in_depth):
                                fp.add_channel_products(total, lanes, input[b, iy, ix, ci], &w[ky, kx, ci, 0],
                                                        out_depth, ci, lane_count, lane_end, fma_from,
                                                        ci < blocked)
                    for oc in range(out_depth):
                        bias_value = bias[oc] if has_bias else 0.0
                        out[b, oy, ox, oc] = fp.activation_min_max_float(
                            fp.add_nan_first(total[oc], bias_value), act_min, act_max)
