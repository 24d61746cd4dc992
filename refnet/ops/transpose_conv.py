"""TRANSPOSE_CONV: float32, int8 (per-channel weights) and uint8 (per-tensor).

Inputs: output_shape (a constant int32 [4] tensor), weights [O, H, W, I], input [N, H, W, I] and an
optional bias [O] (the 4th input). Options: padding, stride_h, stride_w, fused_activation_function.
The padding is the one CONV_2D would use to map the output back onto the input (TFLite's
ComputePaddingHeightWidth on the output size), and that convolution's output size must be the input's.

Reference semantics (LiteRT BUILTIN_REF) - the kernel scatters each input value into the output:
  for (n, iy, ix, ci), for (fy, fx, co): out[n, iy*sh - pad_top + fy, ix*sw - pad_left + fx, co]
      += x[n, iy, ix, ci] * w[co, fy, fx, ci]      (positions outside the output skipped)
  then out += bias[co] and the activation clamp, element by element.
  float32  each output starts at +0.0 and takes its products in (iy, ix, ci) order, one rounding
           per product and per addition (no FMA); the bias is added after every product.
  int8     acc = sum (x - x_zp) * w in int32 (exact: any order), + bias, then the per-channel
           MultiplyByQuantizedMultiplier of double(s_x) * double(s_w[c]) / double(s_y) + y_zp.
  uint8    acc = sum (x - x_zp) * (w - w_zp); one multiplier from double(float(s_x * s_w)) /
           double(s_y) (the legacy GetQuantizedConvolutionMultipler), as CONV_2D's uint8.
The requantization form comes from the profile (refnet/requantize.py requantize_to): the optimized
path's optimized_ops::Quantize is Form.ROUNDING_TIES_UP_CHANNELS_8 (int8) / _ELEMENTS_16 (uint8),
XNNPACK's is ROUNDING_FP32 (except near halves: unmodelled, tests/ops/test_transpose_conv.py).
float32 on the optimized and XNNPACK paths sums in other orders: unmodelled (the reference's bits).

Speed: one tap (fy, fx) touches each output at most once, and for a fixed output a larger fy
means a smaller iy. So looping over the taps in descending (fy, fx) order, and over ci inside,
adds each output's products in exactly the reference's (iy, ix, ci) order, while every step is one
NumPy operation over all input pixels and output channels (a strided view of the output).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import fixedpoint
from ..requantize import QuantizedOutput, quantized_output_params, requantize_to
from . import OpContext, add_nan_first, float_activation_range, register
from .weighted import zero_point_of
from .window import Window, compute_window

OUTPUT_SHAPE, WEIGHTS, INPUT, BIAS = 0, 1, 2, 3


@dataclass
class TransposeConvPlan:
    mode: str  # "float" or "quantized"
    stride: tuple  # (sh, sw)
    window: Window  # pad_top / pad_left of the equivalent convolution
    out_shape: tuple
    act_range: tuple = (0.0, 0.0)
    quant: QuantizedOutput | None = None
    input_offset: int = 0
    filter_offset: int = 0


def _constant_output_shape(ctx: OpContext) -> tuple:
    shape_t = ctx.input_tensor(OUTPUT_SHAPE)
    if shape_t is None:
        raise ctx.fail("needs an output_shape tensor (input 0)")
    if shape_t.dtype != np.int32:
        raise ctx.fail(f"output_shape tensor is {shape_t.dtype.name}; it must be int32")
    if shape_t.data is None:
        raise ctx.unsupported("a computed (non-constant) output_shape")
    dims = tuple(int(v) for v in np.asarray(shape_t.data).reshape(-1))
    if len(dims) != 4:
        raise ctx.fail(f"output_shape {list(dims)} must have 4 elements")
    if min(dims) < 1:
        raise ctx.fail(f"output_shape {list(dims)} has a dimension below 1")
    return dims


def _arithmetic_mode(ctx: OpContext, x_t, w_t, b_t, y_t) -> str:
    if x_t.dtype == np.float32 and w_t.dtype == np.float32:
        if y_t.dtype != np.float32 or (b_t is not None and b_t.dtype != np.float32):
            raise ctx.fail("a float32 TRANSPOSE_CONV needs a float32 bias and output")
        return "float"
    if x_t.dtype == np.float32 and w_t.dtype == np.int8:
        raise ctx.unsupported("hybrid TRANSPOSE_CONV (float32 input, int8 weights)")
    if x_t.dtype in (np.int8, np.uint8) and w_t.dtype == x_t.dtype and y_t.dtype == x_t.dtype:
        if b_t is not None and b_t.dtype != np.int32:
            raise ctx.unsupported(f"{x_t.dtype.name} weights with a {b_t.dtype.name} bias")
        return "quantized"
    raise ctx.unsupported(f"input {x_t.dtype.name}, weights {w_t.dtype.name}, output {y_t.dtype.name}")


def _prepare_transpose_conv(ctx: OpContext) -> TransposeConvPlan:
    w_t, x_t, b_t, y_t = ctx.input_tensor(WEIGHTS), ctx.input_tensor(INPUT), ctx.input_tensor(BIAS), ctx.output_tensor()
    if w_t is None or x_t is None:
        raise ctx.fail("needs weights (input 1) and an input (input 2)")
    if len(w_t.shape) != 4 or len(x_t.shape) != 4:
        raise ctx.fail(f"weights {list(w_t.shape)} and input {list(x_t.shape)} must both be 4-D")
    out_shape = _constant_output_shape(ctx)
    n, in_h, in_w, cin = x_t.shape
    cout, kh, kw, w_cin = w_t.shape
    if w_cin != cin:
        raise ctx.fail(f"weights depth {w_cin} differs from the input depth {cin}")
    if out_shape[0] != n or out_shape[3] != cout:
        raise ctx.fail(f"output_shape {list(out_shape)} must have the input's batch {n} and the "
                       f"weights' {cout} output channels")
    if b_t is not None and int(np.prod(b_t.shape)) != cout:
        raise ctx.fail(f"bias shape {list(b_t.shape)} does not match {cout} output channels")
    o = ctx.op.options
    stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    # The convolution that maps the output back onto the input fixes the padding.
    window = compute_window(ctx, out_shape[1], out_shape[2], kh, kw, *stride)
    if (window.out_h, window.out_w) != (in_h, in_w):
        raise ctx.fail(f"output_shape {list(out_shape)} with {o.get('padding', 'SAME')} padding, "
                       f"stride {stride[0]}x{stride[1]} and a {kh}x{kw} filter needs a "
                       f"{window.out_h}x{window.out_w} input, got {in_h}x{in_w}")
    plan = TransposeConvPlan(mode=_arithmetic_mode(ctx, x_t, w_t, b_t, y_t), stride=stride,
                             window=window, out_shape=out_shape)
    if plan.mode == "float":
        plan.act_range = float_activation_range(ctx)
        return plan
    legacy_per_tensor = x_t.dtype == np.uint8
    if w_t.quantization is not None and legacy_per_tensor and w_t.quantization.per_channel:
        raise ctx.unsupported("per-channel quantization of uint8 weights")
    if b_t is not None and b_t.quantization is not None and np.any(b_t.quantization.zero_point != 0):
        raise ctx.fail("the bias zero point must be 0")
    plan.quant = quantized_output_params(ctx, x_t, w_t, y_t, cout, channel_axis=0,
                                         float_product_first=legacy_per_tensor)
    plan.input_offset = -zero_point_of(x_t)
    plan.filter_offset = -zero_point_of(w_t) if legacy_per_tensor else 0
    return plan


def _scatter_extent(in_size: int, kernel: int, stride: int, pad: int, out_size: int) -> int:
    """Rows (or columns) of the scratch output: every scattered position, and the output window
    [pad, pad + out_size) inside it."""
    return max((in_size - 1) * stride + kernel, pad + out_size)


def _scratch(plan: TransposeConvPlan, x_shape, kh: int, kw: int, dtype) -> np.ndarray:
    n, in_h, in_w, _ = x_shape
    sh, sw = plan.stride
    rows = _scatter_extent(in_h, kh, sh, plan.window.pad_top, plan.out_shape[1])
    cols = _scatter_extent(in_w, kw, sw, plan.window.pad_left, plan.out_shape[2])
    return np.zeros((n, rows, cols, plan.out_shape[3]), dtype)


def _output_window(plan: TransposeConvPlan, scratch: np.ndarray) -> np.ndarray:
    top, left = plan.window.pad_top, plan.window.pad_left
    return scratch[:, top:top + plan.out_shape[1], left:left + plan.out_shape[2], :]


def transpose_conv_float(plan: TransposeConvPlan, x: np.ndarray, w: np.ndarray, bias) -> np.ndarray:
    """The reference float32 sums: each output's products in (iy, ix, ci) order from +0.0, then
    the bias, then the clamp (see the module docstring for why the tap order gives that)."""
    n, in_h, in_w, cin = x.shape
    _, kh, kw, _ = w.shape
    sh, sw = plan.stride
    scratch = _scratch(plan, x.shape, kh, kw, np.float32)
    # When the running total and the product are both NaN, the reference keeps the product's
    # (measured with distinct payloads, tests/ops/test_transpose_conv.py); NumPy's loops do not
    # fix which, so add_nan_first makes it explicit. A NaN can also come from inf * 0 or
    # inf - inf: any non-finite operand takes that path.
    nan_possible = not (np.isfinite(x).all() and np.isfinite(w).all()
                        and (bias is None or np.isfinite(bias).all()))
    with np.errstate(invalid="ignore", over="ignore"):
        for fy in reversed(range(kh)):
            for fx in reversed(range(kw)):
                tap = scratch[:, fy:fy + (in_h - 1) * sh + 1:sh, fx:fx + (in_w - 1) * sw + 1:sw, :]
                tap_weights = w[:, fy, fx, :]  # [cout, cin]
                for ci in range(cin):
                    product = x[..., ci:ci + 1] * tap_weights[:, ci]
                    if nan_possible:
                        tap[...] = add_nan_first(product, tap)
                    else:
                        tap += product
        total = _output_window(plan, scratch)
        if bias is not None:
            total = add_nan_first(total, bias.reshape(-1)) if nan_possible else total + bias.reshape(-1)
    lo, hi = plan.act_range
    # std::min(std::max(v, lo), hi): a NaN passes both comparisons unchanged.
    clamped = np.where(total < lo, np.float32(lo), total)
    return np.where(clamped > hi, np.float32(hi), clamped).astype(np.float32)


def transpose_conv_accumulators(plan: TransposeConvPlan, x: np.ndarray, w: np.ndarray, bias) -> np.ndarray:
    """int32 accumulators (bias included) of a quantized transpose convolution, wrapped to int32
    as the reference's int32 scratch holds them. Integer sums are exact, so each tap is one
    matrix product over the input channels."""
    n, in_h, in_w, cin = x.shape
    _, kh, kw, _ = w.shape
    sh, sw = plan.stride
    shifted_x = x.astype(np.int64) + plan.input_offset
    shifted_w = w.astype(np.int64) + plan.filter_offset
    scratch = _scratch(plan, x.shape, kh, kw, np.int64)
    for fy in range(kh):
        for fx in range(kw):
            tap = scratch[:, fy:fy + (in_h - 1) * sh + 1:sh, fx:fx + (in_w - 1) * sw + 1:sw, :]
            tap += shifted_x @ shifted_w[:, fy, fx, :].T
    total = _output_window(plan, scratch)
    if bias is not None:
        total = total + bias.reshape(-1).astype(np.int64)
    return fixedpoint.wrap_to_int32(total).astype(np.int32)


@register("TRANSPOSE_CONV", prepare=_prepare_transpose_conv)
def transpose_conv(ctx: OpContext, inputs: list) -> list:
    plan: TransposeConvPlan = ctx.params
    w, x = np.asarray(inputs[WEIGHTS]), np.asarray(inputs[INPUT])
    bias = inputs[BIAS] if len(inputs) > BIAS and inputs[BIAS] is not None else None
    if plan.mode == "float":
        return [transpose_conv_float(plan, x, w, bias)]
    acc = transpose_conv_accumulators(plan, x, w, bias)
    return [requantize_to(acc, plan.quant, ctx.output_tensor().dtype)]
