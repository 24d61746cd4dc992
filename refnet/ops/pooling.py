"""AVERAGE_POOL_2D and MAX_POOL_2D: float32, int8, uint8 and int16, as LiteRT's reference kernels.

Window geometry (output size, SAME/VALID padding) is TFLite's ComputePaddingHeightWidth.
Padded positions are not part of a window: an average divides by the number of input
elements the window actually covers.

- float32 average: a float32 running total starting at +0.0, added in window order
  (filter y, then filter x), divided by the float32 count, then the activation clamp.
- float32 max: running maximum starting at -FLT_MAX, replaced only when `max < value`
  (so NaN inputs are skipped and the first of equal values, e.g. -0.0 vs +0.0, wins).
- int8/uint8 average: int32 sum of the raw quantized values, divided by the count rounding
  half away from zero ((sum +- count/2) / count, C division); uint8's sum is never negative.
- int8/uint8 max: maximum of the raw values.
- int16 (16x8 models): as int8 (int32 sum of 16-bit values, rounded half away from zero).
- Quantized pools do not requantize: LiteRT assumes the output has the input's scale and
  zero point (only checked in debug builds) and uses the output's only for the activation
  clamp. refnet does the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast
from . import OpContext, float_activation_range, quantized_activation_range, register
from .window import Window, compute_window

POOL_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


@dataclass(frozen=True)
class PoolPlan:
    window: Window
    filter_hw: tuple[int, int]
    stride_hw: tuple[int, int]
    out_shape: tuple[int, ...]
    clamp: tuple  # (low, high): float32 values or ints


def _prepare_pool(ctx: OpContext) -> PoolPlan:
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"needs 1 input and 1 output, has {len(ctx.op.inputs)} and {len(ctx.op.outputs)}")
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if x_t is None:
        raise ctx.fail("the input tensor is missing")
    if len(x_t.shape) != 4:
        raise ctx.fail(f"input shape {list(x_t.shape)} must be 4-D (NHWC)")
    if x_t.dtype != y_t.dtype:
        raise ctx.fail(f"input is {x_t.dtype.name} but output is {y_t.dtype.name}")
    if x_t.dtype not in POOL_DTYPES:
        raise ctx.unsupported(f"{x_t.dtype.name} pooling (supported: float32, int8, uint8, int16)")
    o = ctx.op.options
    filter_hw = (int(o.get("filter_height", 0)), int(o.get("filter_width", 0)))
    stride_hw = (int(o.get("stride_h", 0)), int(o.get("stride_w", 0)))
    n, h, w, c = x_t.shape
    win = compute_window(ctx, h, w, *filter_hw, *stride_hw)
    out_shape = (n, win.out_h, win.out_w, c)
    if tuple(y_t.shape) != out_shape:
        raise ctx.fail(f"output shape {list(y_t.shape)} should be {list(out_shape)} for this window")
    if x_t.dtype == np.float32:
        lo, hi = float_activation_range(ctx)
        clamp = (np.float32(lo), np.float32(hi))
    else:
        if o.get("fused_activation_function", "NONE") != "NONE" and y_t.quantization is None:
            raise ctx.fail("a fused activation on a quantized output needs the output's quantization")
        clamp = quantized_activation_range(ctx, y_t)
    return PoolPlan(win, filter_hw, stride_hw, out_shape, clamp)


def _window_taps(plan: PoolPlan, in_size: int, axis: int):
    """For filter offset f along one spatial axis: (input index, valid) for every output index."""
    out = plan.window.out_h if axis == 0 else plan.window.out_w
    pad = plan.window.pad_top if axis == 0 else plan.window.pad_left
    stride = plan.stride_hw[axis]
    origin = np.arange(out) * stride - pad
    for f in range(plan.filter_hw[axis]):
        index = origin + f
        valid = (index >= 0) & (index < in_size)
        yield np.clip(index, 0, max(in_size - 1, 0)), valid


def _for_each_tap(x: np.ndarray, plan: PoolPlan):
    """Yield (values, valid) for every filter tap in the reference order: filter y, then x.

    values: the input under that tap for every output position (N, OH, OW, C);
    valid: (OH, OW, 1) mask, False where the tap falls in the padding.
    """
    _, h, w, _ = x.shape
    cols = list(_window_taps(plan, w, 1))
    for rows, row_valid in _window_taps(plan, h, 0):
        x_rows = x[:, rows]  # (N, OH, W, C)
        for cols_index, col_valid in cols:
            valid = (row_valid[:, None] & col_valid[None, :])[:, :, None]
            yield x_rows[:, :, cols_index], valid


def clamp_like_std(x: np.ndarray, low, high) -> np.ndarray:
    """std::min(std::max(x, low), high): NaN passes through, -0.0 is kept as is."""
    x = np.where(x < low, low, x)
    return np.where(high < x, high, x).astype(x.dtype, copy=False)


def _average_float(x: np.ndarray, plan: PoolPlan) -> np.ndarray:
    total = np.zeros(plan.out_shape, np.float32)
    count = np.zeros(plan.out_shape[1:3] + (1,), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf and overflow are IEEE here
        for values, valid in _for_each_tap(x, plan):
            total = np.where(valid, total + values, total)
            count = count + valid
    # SAME/VALID geometry gives every window at least one input element, so count >= 1.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        average = (total / count).astype(np.float32)
    return clamp_like_std(average, *plan.clamp)


def _covers_whole_input(plan: PoolPlan, h: int, w: int) -> bool:
    """One output pixel whose window covers every input pixel (a global average pool)."""
    win = plan.window
    return (win.out_h == win.out_w == 1 and h > 0 and w > 0
            and 0 <= win.pad_top and h <= plan.filter_hw[0] - win.pad_top
            and 0 <= win.pad_left and w <= plan.filter_hw[1] - win.pad_left)


def _average_quantized(x: np.ndarray, plan: PoolPlan) -> np.ndarray:
    n, h, w, c = x.shape
    if x.dtype.itemsize == 1 and _covers_whole_input(plan, h, w) and h * w < 2**31 // 255:
        # a global pool: every window sums all h * w inputs (an integer sum: any order)
        sums = np.empty(n * c, np.int32)
        _kernels_fast.sum_rows8(np.ascontiguousarray(x), n, h * w, c, sums)
        total = sums.astype(np.int64).reshape(plan.out_shape)
        return average_quantized(total, np.full((1, 1, 1), h * w, np.int64), x.dtype, plan.clamp)
    total = np.zeros(plan.out_shape, np.int64)
    count = np.zeros(plan.out_shape[1:3] + (1,), np.int64)
    for values, valid in _for_each_tap(x, plan):
        total += np.where(valid, values.astype(np.int64), 0)
        count += valid
    return average_quantized(total, count, x.dtype, plan.clamp)


def average_quantized(total: np.ndarray, count: np.ndarray, dtype, clamp: tuple[int, int]) -> np.ndarray:
    """The reference quantized average of `count` values summing to `total`, rounded, clamped."""
    count = np.maximum(count, 1)  # geometry guarantees >= 1; avoids a warning on empty outputs
    half = count // 2
    if np.dtype(dtype) == np.uint8:  # the uint8 kernel always adds +count/2 (its sum is never negative)
        average = (total + half) // count
    else:  # (sum +- count/2) / count with C division (truncation toward zero)
        magnitude = (np.abs(total) + half) // count
        average = np.where(total > 0, magnitude, -magnitude)
    lo, hi = clamp
    return np.clip(average, lo, hi).astype(dtype)


def window_inputs(plan: PoolPlan, x: np.ndarray, coords: tuple[int, int, int, int]) -> list[tuple]:
    """The input coordinates under the window of output element (b, y, x, c), in tap order."""
    b, oy, ox, c = coords
    _, h, w, _ = x.shape
    y0 = oy * plan.stride_hw[0] - plan.window.pad_top
    x0 = ox * plan.stride_hw[1] - plan.window.pad_left
    return [(b, y0 + fy, x0 + fx, c) for fy in range(plan.filter_hw[0]) for fx in range(plan.filter_hw[1])
            if 0 <= y0 + fy < h and 0 <= x0 + fx < w]


def _max_float(x: np.ndarray, plan: PoolPlan) -> np.ndarray:
    lowest = np.float32(np.finfo(np.float32).min)
    best = np.full(plan.out_shape, lowest, np.float32)
    for values, valid in _for_each_tap(x, plan):
        best = np.where(valid & (best < values), values, best)
    return clamp_like_std(best, *plan.clamp)


def _max_quantized(x: np.ndarray, plan: PoolPlan) -> np.ndarray:
    best = np.full(plan.out_shape, np.iinfo(x.dtype).min, x.dtype)
    for values, valid in _for_each_tap(x, plan):
        best = np.where(valid & (best < values), values, best)
    lo, hi = plan.clamp
    return np.clip(best, lo, hi).astype(x.dtype)


@register("AVERAGE_POOL_2D", prepare=_prepare_pool)
def average_pool_2d(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan: PoolPlan = ctx.params
    if x.dtype == np.float32:
        return [_average_float(x, plan)]
    return [_average_quantized(x, plan)]


@register("MAX_POOL_2D", prepare=_prepare_pool)
def max_pool_2d(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan: PoolPlan = ctx.params
    if x.dtype == np.float32:
        return [_max_float(x, plan)]
    return [_max_quantized(x, plan)]
