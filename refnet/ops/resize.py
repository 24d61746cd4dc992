"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR: float32, uint8 and int8, as LiteRT's kernels.

LiteRT's reference path picks the kernel by dtype:
- float32 and uint8 share the float kernel. Scales are float32: in / out (or (in - 1) /
  (out - 1) with align_corners); the source coordinate is y * scale, or with half-pixel
  centers (y + 0.5) * scale - 0.5, each step rounded to float32. y0 = max(floor(v), 0),
  y1 = min(ceil(v), in - 1), and the output is
      ((((p00 * (1 - dy)) * (1 - dx) + (p10 * dy) * (1 - dx)) + (p01 * (1 - dy)) * dx)
        + (p11 * dy) * dx) + offset
  in float32, left to right, where dy = v - y0. The offset is 0 for float32; uint8 adds 0.5
  and truncates (round half up, as the values are never negative).
- int8 uses the integer kernel: scales in 1/1024 units, rounded
  ((1024 * in + out / 2) / out), coordinates y * scale (half-pixel: y * scale + scale / 2
  - 512), y0 = max(v / 1024, 0) and y1 = min((v + 1023) / 1024, in - 1) with C division,
  and the four products summed in int64 (1/2**20 units), rounded half away from zero.
The output keeps the input's quantization (LiteRT does not requantize).

XNNPACK (the profile's Form.RESIZE_BILINEAR_Q11) takes 8-bit resizes its own way: float32 source
coordinates clamped into the input (y * scale, or under half-pixel centers y * scale + (scale / 2 -
1/2)), 11-bit weights lrintf(alpha * 2**11), the top and bottom rows interpolated across columns
first, then between them, all in int32, and (acc + 2**21) >> 22.

RESIZE_NEAREST_NEIGHBOR copies, for output row y, input row
    min(floor((y + offset) * scale), in - 1)   (align_corners: round half away instead of floor)
with offset 0.5 under half_pixel_centers (then also max(., 0)) and the same float32 scale; columns
alike. Every dtype takes that index (the values are copied).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..forms import Form
from . import OpContext, add_nan_first, register

RESIZE_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8))


@dataclass(frozen=True)
class ResizePlan:
    size: tuple[int, int] | None  # (height, width); None when the size input is not constant
    align_corners: bool
    half_pixel_centers: bool


def _output_size(ctx: OpContext, values) -> tuple[int, int]:
    out_h, out_w = (int(v) for v in np.asarray(values).reshape(-1).tolist())
    if out_h <= 0 or out_w <= 0:
        raise ctx.fail(f"output size {[out_h, out_w]} must be positive")
    n, _, _, c = ctx.input_tensor(0).shape
    declared = tuple(ctx.output_tensor().shape)
    if declared != (n, out_h, out_w, c):
        raise ctx.fail(f"output shape {list(declared)} should be {[n, out_h, out_w, c]}")
    return out_h, out_w


def _prepare_resize(ctx: OpContext) -> ResizePlan:
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"needs 2 inputs (image, size) and 1 output, has {len(ctx.op.inputs)} "
                       f"and {len(ctx.op.outputs)}")
    x_t, size_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if x_t is None or size_t is None:
        raise ctx.fail("the image and size inputs are required")
    if len(x_t.shape) != 4:
        raise ctx.fail(f"input shape {list(x_t.shape)} must be 4-D (NHWC)")
    if size_t.dtype != np.int32 or tuple(size_t.shape) != (2,):
        raise ctx.fail(f"the size input must be int32[2], not {size_t.dtype.name}{list(size_t.shape)}")
    if x_t.dtype not in RESIZE_DTYPES:
        raise ctx.unsupported(f"{x_t.dtype.name} {ctx.op.kind} (supported: float32, uint8, int8)")
    if y_t.dtype != x_t.dtype:
        raise ctx.fail(f"input is {x_t.dtype.name} but output is {y_t.dtype.name}")
    align = bool(ctx.op.options.get("align_corners", False))
    half = bool(ctx.op.options.get("half_pixel_centers", False))
    if align and half:
        raise ctx.fail("half_pixel_centers and align_corners cannot both be true")
    size = _output_size(ctx, size_t.data) if size_t.is_constant else None
    return ResizePlan(size, align, half)


# --- float32 / uint8: the float kernel --------------------------------------------------------


def _float_axis(in_size: int, out_size: int, align: bool, half: bool, fused: bool = False):
    """(source coordinate, lower index, upper index) per output index, in float32 (`fused`: the
    half-pixel multiply-add contracted, as aarch64 builds compile it)."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    if align and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    v = np.arange(out_size, dtype=np.float32)
    if half:
        source = _fused_multiply_add(v + f32(0.5), scale, f32(-0.5)) if fused else (v + f32(0.5)) * scale - f32(0.5)
    else:
        source = v * scale
    lower = np.maximum(np.floor(source).astype(np.int64), 0)
    upper = np.minimum(np.ceil(source).astype(np.int64), in_size - 1)
    return source.astype(np.float32), lower, upper


def _resize_float_kernel(ctx: OpContext, x: np.ndarray, size, align: bool, half: bool,
                         fused: bool = False) -> np.ndarray:
    _, in_h, in_w, _ = x.shape
    ys, y0, y1 = _float_axis(in_h, size[0], align, half, fused)
    xs, x0, x1 = _float_axis(in_w, size[1], align, half, fused)
    if (y0.size and y0.max() >= in_h) or (x0.size and x0.max() >= in_w):
        # The reference does not clamp the lower index from above; float32 scales keep it
        # inside the input except for outputs tens of millions of pixels long.
        raise ctx.arithmetic_error("the float32 source coordinate reaches past the input; "
                                   "LiteRT's result is undefined")
    f32 = np.float32
    # dy, 1 - dy per output row (broadcast over width and channels); dx per output column.
    dy = (ys - y0.astype(np.float32)).astype(np.float32)[None, :, None, None]
    dx = (xs - x0.astype(np.float32)).astype(np.float32)[None, None, :, None]
    one_dy, one_dx = f32(1) - dy, f32(1) - dx
    xf = x.astype(np.float32)
    p00 = xf[:, y0][:, :, x0]
    p10 = xf[:, y1][:, :, x0]
    p01 = xf[:, y0][:, :, x1]
    p11 = xf[:, y1][:, :, x1]
    with np.errstate(invalid="ignore", over="ignore"):
        # Summed left to right; each new term is the first operand of its addition, as in
        # LiteRT's x86 build: when both are NaN, x86 returns the first operand's NaN, so the
        # latest NaN term's payload and sign win (measured with distinct NaN payloads).
        if fused:  # the sum contracted from the left: each term's last multiply fused with the total
            value = _fused_multiply_add(p00 * one_dy, one_dx, p10 * dy * one_dx)
            value = _fused_multiply_add(p01 * one_dy, dx, value)
            value = _fused_multiply_add(p11 * dy, dx, value)
        else:
            value = p00 * one_dy * one_dx
            value = add_nan_first(p10 * dy * one_dx, value)
            value = add_nan_first(p01 * one_dy * dx, value)
            value = add_nan_first(p11 * dy * dx, value)
        if x.dtype == np.float32:
            return value + f32(0.0)
        value = value + f32(0.5)
    # static_cast<uint8_t>(float): truncation to int32, low byte kept (x86). The weights sum to
    # 1, so the value stays within [0.5, 255.5] and the low byte is the value itself.
    return (np.trunc(value).astype(np.int64) & 0xFF).astype(np.uint8)


# --- int8: the integer kernel -----------------------------------------------------------------


def _c_div(a, b):
    """C integer division (truncation toward zero), element-wise on int64."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) == (b < 0), q, -q)


def _integer_axis(ctx: OpContext, in_size: int, out_size: int, align: bool, half: bool):
    """(source coordinate in 1/1024 units, lower index, upper index) per output index."""
    scale = ((1 << 10) * in_size + out_size // 2) // out_size
    if align and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    v = np.arange(out_size, dtype=np.int64)
    source = v * scale + (scale // 2 - (1 << 9) if half else 0)
    lower = np.maximum(_c_div(source, 1 << 10), 0)
    upper = np.minimum(_c_div(source + (1 << 10) - 1, 1 << 10), in_size - 1)
    if out_size and (lower.max() > in_size - 1):
        # The rounded 1/1024 scale overshoots for extreme upsampling: the reference would read
        # a row/column past the end of the input.
        raise ctx.arithmetic_error(
            f"resizing {in_size} to {out_size} with a scale of {scale}/1024 reads past the "
            f"input in LiteRT's integer kernel; its result is undefined")
    return source, lower, upper


def _resize_integer_kernel(ctx: OpContext, x: np.ndarray, size, align: bool, half: bool) -> np.ndarray:
    _, in_h, in_w, _ = x.shape
    ys, y0, y1 = _integer_axis(ctx, in_h, size[0], align, half)
    xs, x0, x1 = _integer_axis(ctx, in_w, size[1], align, half)
    one = 1 << 10
    dy = (ys - one * y0)[None, :, None, None]
    dx = (xs - one * x0)[None, None, :, None]
    xi = x.astype(np.int64)
    total = (xi[:, y0][:, :, x0] * (one - dy) * (one - dx)
             + xi[:, y1][:, :, x0] * dy * (one - dx)
             + xi[:, y0][:, :, x1] * (one - dy) * dx
             + xi[:, y1][:, :, x1] * dy * dx)
    rounding = np.where(total > 0, 1 << 19, -(1 << 19))
    value = _c_div(total + rounding, 1 << 20)
    return value.astype(x.dtype)  # static_cast<int8_t>: the value is within the input's range


# --- XNNPACK: its own coordinates; 11-bit weights (8-bit) or float32 lerps --------------------


def _xnnpack_axis(in_size: int, out_size: int, align: bool, half: bool, fused: bool = False):
    """(lower index, upper index, float32 weight of the upper) per output index, as XNNPACK's
    indirection setup computes them (`fused`: its multiply-adds contracted, as on aarch64)."""
    f32 = np.float32
    adjust = 1 if align and out_size != 1 else 0
    scale = f32(in_size - adjust) / f32(out_size - adjust)
    v = np.arange(out_size, dtype=np.float32)
    last = f32(in_size - 1)
    if half and not align:
        offset = _fused_multiply_add(f32(0.5), scale, f32(-0.5)) if fused else f32(0.5) * scale - f32(0.5)
        source = _fused_multiply_add(v, scale, offset) if fused else v * scale + offset
        source = np.minimum(np.maximum(source, f32(0)), last)
    else:  # XNNPACK's TensorFlow-legacy coordinates (no half-pixel offset) and align_corners
        source = np.minimum(v * scale, last)
    lower = source.astype(np.int64)  # truncation: the source is >= 0
    upper = np.minimum(lower + 1, in_size - 1)
    return lower, upper, (source - lower.astype(np.float32)).astype(np.float32)


def _fused_multiply_add(a, b, c) -> np.ndarray:
    """float32 a * b + c rounded once, element-wise with broadcasting (fmaf)."""
    from .. import _kernels_pointwise

    a, b, c = (np.ascontiguousarray(v, np.float32) for v in np.broadcast_arrays(a, b, c))
    out = np.empty(a.shape, np.float32)
    _kernels_pointwise.fused_multiply_add_arrays(a.reshape(-1), b.reshape(-1), c.reshape(-1), out.reshape(-1))
    return out


def _corners(x: np.ndarray, y0, y1, x0, x1):
    """top-left, top-right, bottom-left, bottom-right input values per output pixel."""
    return x[:, y0][:, :, x0], x[:, y0][:, :, x1], x[:, y1][:, :, x0], x[:, y1][:, :, x1]


def _resize_q11_kernel(x: np.ndarray, size, align: bool, half: bool) -> np.ndarray:
    y0, y1, ay = _xnnpack_axis(x.shape[1], size[0], align, half)
    x0, x1, ax = _xnnpack_axis(x.shape[2], size[1], align, half)
    wy = np.rint(ay * np.float32(2048)).astype(np.int64)[None, :, None, None]  # lrintf: half to even
    wx = np.rint(ax * np.float32(2048)).astype(np.int64)[None, None, :, None]
    top_left, top_right, bottom_left, bottom_right = _corners(x.astype(np.int64), y0, y1, x0, x1)
    top = top_left * (1 << 11) + (top_right - top_left) * wx
    bottom = bottom_left * (1 << 11) + (bottom_right - bottom_left) * wx
    total = top * (1 << 11) + (bottom - top) * wy  # within int32: |values| < 2**8 * 2**22
    return ((total + (1 << 21)) >> 22).astype(x.dtype)


def _resize_lerp_kernel(x: np.ndarray, size, align: bool, half: bool, fused: bool) -> np.ndarray:
    y0, y1, ay = _xnnpack_axis(x.shape[1], size[0], align, half, fused)
    x0, x1, ax = _xnnpack_axis(x.shape[2], size[1], align, half, fused)
    ay, ax = ay[None, :, None, None], ax[None, None, :, None]
    top_left, top_right, bottom_left, bottom_right = _corners(x, y0, y1, x0, x1)

    def lerp(start, end, weight):  # start + (end - start) * weight
        with np.errstate(invalid="ignore", over="ignore"):
            step = (end - start).astype(np.float32)
            return _fused_multiply_add(step, weight, start) if fused else (start + step * weight).astype(np.float32)

    return lerp(lerp(top_left, top_right, ax), lerp(bottom_left, bottom_right, ax), ay)


# --- LiteRT's optimized kernels (float32, uint8) -----------------------------------------------


def _resize_by_2_kernel(x: np.ndarray) -> np.ndarray:
    """Exactly 2x upsampling, no align_corners, no half-pixel centers: each input pixel, the means
    of it and its right, lower neighbours, and the mean of those two means' (in float32)."""
    n, h, w, c = x.shape
    right = x[:, :, np.minimum(np.arange(w) + 1, w - 1)]
    below = x[:, np.minimum(np.arange(h) + 1, h - 1)]
    below_right = right[:, np.minimum(np.arange(h) + 1, h - 1)]
    half = np.float32(0.5)
    out = np.empty((n, h, 2, w, 2, c), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        out[:, :, 0, :, 0] = x
        out[:, :, 0, :, 1] = (x + right) * half
        left_mean = (x + below) * half
        out[:, :, 1, :, 0] = left_mean
        out[:, :, 1, :, 1] = (left_mean + (right + below_right) * half) * half
    return out.reshape(n, 2 * h, 2 * w, c)


def _resize_optimized_kernel(ctx: OpContext, x: np.ndarray, size, align: bool, half: bool,
                             fused: bool) -> np.ndarray:
    _, in_h, in_w, _ = x.shape
    if x.dtype == np.float32 and not align and not half and tuple(size) == (2 * in_h, 2 * in_w):
        return _resize_by_2_kernel(x)
    if x.dtype == np.uint8 and half and not align and x.shape[3] % 8 == 0 and size[0] >= 8 and size[1] >= 8 \
            and size[0] == 8 * in_h and size[1] == 8 * in_w:
        raise ctx.unsupported("LiteRT's optimized uint8 8x half-pixel upsampling kernel (its own fixed point) "
                              "is not modelled: verify this model against the reference or xnnpack path")
    ys, y0, y1 = _float_axis(in_h, size[0], align, half, fused)
    xs, x0, x1 = _float_axis(in_w, size[1], align, half, fused)
    f32 = np.float32
    dy = (ys - y0.astype(np.float32)).astype(np.float32)[None, :, None, None]
    dx = (xs - x0.astype(np.float32)).astype(np.float32)[None, None, :, None]
    weights = ((f32(1) - dy) * (f32(1) - dx), (f32(1) - dy) * dx, dy * (f32(1) - dx), dy * dx)
    corners = _corners(x.astype(np.float32), y0, y1, x0, x1)
    total = np.zeros((x.shape[0], size[0], size[1], x.shape[3]), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        if fused and x.dtype == np.uint8:
            # one expression p0 * w0 + p1 * w1 + p2 * w2 + p3 * w3 + 0.5, contracted from the left:
            # the first product fused with the second's rounded value
            total = _fused_multiply_add(corners[0], weights[0], corners[1] * weights[1])
            for corner, weight in zip(corners[2:], weights[2:]):
                total = _fused_multiply_add(corner, weight, total)
        else:  # float32: four passes accumulating into the zeroed output
            for corner, weight in zip(corners, weights):
                total = _fused_multiply_add(corner, weight, total) if fused else add_nan_first(total, corner * weight)
        if x.dtype == np.float32:
            return total
        total = total + f32(0.5)
    return (np.trunc(total).astype(np.int64) & 0xFF).astype(np.uint8)  # static_cast<uint8_t>, as above


@register("RESIZE_BILINEAR", prepare=_prepare_resize)
def resize_bilinear(ctx: OpContext, inputs: list) -> list:
    plan: ResizePlan = ctx.params
    x = inputs[0]
    size = plan.size if plan.size is not None else _output_size(ctx, inputs[1])
    form = ctx.profile.rounding("RESIZE_BILINEAR", x.dtype)
    if form == Form.RESIZE_BILINEAR_Q11 and x.dtype != np.float32:
        return [_resize_q11_kernel(x, size, plan.align_corners, plan.half_pixel_centers)]
    if form in (Form.RESIZE_BILINEAR_LERP, Form.RESIZE_BILINEAR_LERP_FMA) and x.dtype == np.float32:
        return [_resize_lerp_kernel(x, size, plan.align_corners, plan.half_pixel_centers,
                                    fused=form == Form.RESIZE_BILINEAR_LERP_FMA)]
    if form in (Form.RESIZE_BILINEAR_OPTIMIZED, Form.RESIZE_BILINEAR_OPTIMIZED_FMA) and x.dtype != np.int8:
        return [_resize_optimized_kernel(ctx, x, size, plan.align_corners, plan.half_pixel_centers,
                                         fused=form == Form.RESIZE_BILINEAR_OPTIMIZED_FMA)]
    if x.dtype == np.int8:
        return [_resize_integer_kernel(ctx, x, size, plan.align_corners, plan.half_pixel_centers)]
    return [_resize_float_kernel(ctx, x, size, plan.align_corners, plan.half_pixel_centers,
                                 fused=form == Form.RESIZE_BILINEAR_REFERENCE_FMA)]


# --- RESIZE_NEAREST_NEIGHBOR ------------------------------------------------------------------


def nearest_indices(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    """The input index of each output index (LiteRT's GetNearestNeighbor, float32 arithmetic)."""
    f32 = np.float32
    scale = f32(in_size - 1) / f32(out_size - 1) if align and out_size > 1 else f32(in_size) / f32(out_size)
    v = (np.arange(out_size, dtype=f32) + f32(0.5 if half else 0.0)) * scale
    idx = (np.sign(v) * np.floor(np.abs(v) + f32(0.5))) if align else np.floor(v)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    return np.maximum(idx, 0) if half else idx


@register("RESIZE_NEAREST_NEIGHBOR", prepare=_prepare_resize)
def resize_nearest_neighbor(ctx: OpContext, inputs: list) -> list:
    plan: ResizePlan = ctx.params
    x = inputs[0]
    out_h, out_w = plan.size if plan.size is not None else _output_size(ctx, inputs[1])
    rows = nearest_indices(x.shape[1], out_h, plan.align_corners, plan.half_pixel_centers)
    cols = nearest_indices(x.shape[2], out_w, plan.align_corners, plan.half_pixel_centers)
    return [np.ascontiguousarray(x[:, rows][:, :, cols])]
