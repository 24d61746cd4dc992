# cython: language_level=3
"""DEPTHWISE_CONV_2D kernels: the reference depthwise sums, integer and float32.

Layouts: input NHWC, filter (1, KH, KW, Cin * M) as stored in .tflite, output NHWC with
Cin * M channels; output channel oc = ic * M + m reads input channel ic (M is the depth
multiplier).  Taps outside the image are skipped, as in the reference kernels.

depthwise_int   int32 accumulator: bias + sum (x + input_offset) * (w + filter_offset), exact
                in int64, wrapped to int32 on store.
depthwise_float float32 sum from 0.0f in the order ky, kx (float32 product, float32 add, no
                FMA), then + bias, then the activation clamp: LiteRT's reference
                DepthwiseConv bit for bit.

The loops run taps outside and channels inside, accumulating a whole output pixel at once;
each channel still sees its own taps in the order ky, kx.
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

from refnet.kernel_checks import check_offset as _check_offset, check_window


def _check_geometry(input_shape, filter_shape, out_shape, bias_length, int depth_multiplier,
                    int stride_h, int stride_w, int dilation_h, int dilation_w,
                    int pad_top, int pad_left):
    n, h, w, cin = input_shape
    if depth_multiplier < 1:
        raise ValueError(f"depth_multiplier must be >= 1, got {depth_multiplier}")
    cout = cin * depth_multiplier
    if filter_shape[0] != 1:
        raise ValueError(f"depthwise filter must have shape (1, KH, KW, C), got {filter_shape}")
    if filter_shape[3] != cout:
        raise ValueError(f"filter depth {filter_shape[3]} != input depth {cin} * "
                         f"depth_multiplier {depth_multiplier}")
    if out_shape[0] != n:
        raise ValueError(f"out batch {out_shape[0]} != input batch {n}")
    if out_shape[3] != cout:
        raise ValueError(f"out depth {out_shape[3]} != input depth {cin} * "
                         f"depth_multiplier {depth_multiplier}")
    if bias_length is not None and bias_length != cout:
        raise ValueError(f"bias length {bias_length} != output channels {cout}")
    check_window(stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)


def depthwise_int(const q_in[:, :, :, ::1] input not None, const q_w[:, :, :, ::1] filter not None,
                  const int32_t[::1] bias, int depth_multiplier, int input_offset,
                  int filter_offset, int stride_h, int stride_w, int dilation_h,
                  int dilation_w, int pad_top, int pad_left,
                  int32_t[:, :, :, ::1] out not None):
    """out[..., ic*M + m] = bias + sum over (ky, kx) of (x[..., ic] + input_offset) *
    (w[0, ky, kx, ic*M + m] + filter_offset).

    input (N, H, W, Cin) int8/uint8, filter (1, KH, KW, Cin*M) int8/uint8, bias int32[Cin*M]
    or None, out int32 (N, OH, OW, Cin*M); OH and OW are taken from out.
    """
    _check_geometry((input.shape[0], input.shape[1], input.shape[2], input.shape[3]),
                    (filter.shape[0], filter.shape[1], filter.shape[2], filter.shape[3]),
                    (out.shape[0], out.shape[1], out.shape[2], out.shape[3]),
                    None if bias is None else bias.shape[0], depth_multiplier,
                    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)
    _check_offset(input_offset, "input_offset")
    _check_offset(filter_offset, "filter_offset")

    cdef Py_ssize_t batches = input.shape[0], in_h = input.shape[1], in_w = input.shape[2]
    cdef Py_ssize_t in_depth = input.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2], out_depth = out.shape[3]
    cdef Py_ssize_t kernel_h = filter.shape[1], kernel_w = filter.shape[2]
    cdef Py_ssize_t mult = depth_multiplier
    cdef Py_ssize_t b, oy, ox, ky, kx, ic, m, oc, iy, ix, y0, x0
    cdef bint has_bias = bias is not None
    cdef int32_t x_shifted
    cdef const q_in* x_row
    cdef const int32_t* w_row
    cdef int64_t* acc_ptr

    if batches == 0 or out_h == 0 or out_w == 0 or out_depth == 0:
        return

    filter_shifted = np.empty((kernel_h, kernel_w, out_depth), dtype=np.int32)
    cdef int32_t[:, :, ::1] w = filter_shifted
    acc_buffer = np.empty(out_depth, dtype=np.int64)
    cdef int64_t[::1] acc = acc_buffer
    acc_ptr = &acc[0]

    with nogil:
        for ky in range(kernel_h):
            for kx in range(kernel_w):
                for oc in range(out_depth):
                    w[ky, kx, oc] = <int32_t>filter[0, ky, kx, oc] + filter_offset

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
                            x_row = &input[b, iy, ix, 0]
                            w_row = &w[ky, kx, 0]
                            if mult == 1:
                                for ic in range(in_depth):
                                    acc_ptr[ic] += <int64_t>(
                                        (<int32_t>x_row[ic] + input_offset) * w_row[ic])
                            else:
                                for ic in range(in_depth):
                                    x_shifted = <int32_t>x_row[ic] + input_offset
                                    for m in range(mult):
                                        oc = ic * mult + m
                                        acc_ptr[oc] += <int64_t>(x_shifted * w_row[oc])
                    for oc in range(out_depth):
                        out[b, oy, ox, oc] = fp.wrap_to_int32(acc_ptr[oc])


def depthwise_float(const float[:, :, :, ::1] input not None,
                    const float[:, :, :, ::1] filter not None, const float[::1] bias,
                    int depth_multiplier, int stride_h, int stride_w, int dilation_h,
                    int dilation_w, int pad_top, int pad_left, float act_min, float act_max,
                    float[:, :, :, ::1] out not None, bint fused=False):
    """LiteRT reference float DepthwiseConv: per channel a sequential float32 sum over (ky, kx),
    + bias (0.0f if None), then min(max(v, act_min), act_max).  fused: each step is
    fma(x, w, total) (a build that contracts the multiply-add; refnet.forms.FloatSum).

    input (N, H, W, Cin), filter (1, KH, KW, Cin*M), bias float32[Cin*M] or None,
    out (N, OH, OW, Cin*M), all float32.
    """
    _check_geometry((input.shape[0], input.shape[1], input.shape[2], input.shape[3]),
                    (filter.shape[0], filter.shape[1], filter.shape[2], filter.shape[3]),
                    (out.shape[0], out.shape[1], out.shape[2], out.shape[3]),
                    None if bias is None else bias.shape[0], depth_multiplier,
                    stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left)

    cdef Py_ssize_t batches = input.shape[0], in_h = input.shape[1], in_w = input.shape[2]
    cdef Py_ssize_t in_depth = input.shape[3]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2], out_depth = out.shape[3]
    cdef Py_ssize_t kernel_h = filter.shape[1], kernel_w = filter.shape[2]
    cdef Py_ssize_t mult = depth_multiplier
    cdef Py_ssize_t b, oy, ox, ky, kx, ic, m, oc, iy, ix, y0, x0
    cdef bint has_bias = bias is not None
    cdef float x_value, bias_value
    cdef const float* x_row
    cdef const float* w_row
    cdef float* total

    if batches == 0 or out_h == 0 or out_w == 0 or out_depth == 0:
        return

    total_buffer = np.empty(out_depth, dtype=np.float32)
    cdef float[::1] totals = total_buffer
    total = &totals[0]

    with nogil:
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
                            x_row = &input[b, iy, ix, 0]
                            w_row = &filter[0, ky, kx, 0]
                            if fused:
                                for ic in range(in_depth):
                                    x_value = x_row[ic]
                                    for m in range(mult):
                                        oc = ic * mult + m
                                        total[oc] = fmaf(x_value, w_row[oc], total[oc])
                            # float32 product, then float32 add (no FMA: -ffp-contract=off)
                            elif mult == 1:
                                for ic in range(in_depth):
                                    total[ic] = fp.add_product(total[ic], fp.mul_nan_first(x_row[ic], w_row[ic]), False)
                            else:
                                for ic in range(in_depth):
                                    x_value = x_row[ic]
                                    for m in range(mult):
                                        oc = ic * mult + m
                                        total[oc] = fp.add_product(total[oc], fp.mul_nan_first(x_value, w_row[oc]), False)
                    for oc in range(out_depth):
                        bias_value = bias[oc] if has_bias else 0.0
                        out[b, oy, ox, oc] = fp.activation_min_max_float(
                            fp.add_nan_first(total[oc], bias_value), act_min, act_max)
