"""CONV_2D: float32, int8 (per-channel weights), uint8 (legacy per-tensor) and hybrid.

Reference semantics (LiteRT BUILTIN_REF):
  float32  sum over (ky, kx, ci) in that order in float32, + bias, clamp to the activation range.
  int8     acc = bias + sum w * (x - x_zp); out = clamp(MBQM(acc, m[c], s[c]) + y_zp), with
           m, s from double(x_scale) * double(w_scale[c]) / double(y_scale).
  uint8    acc = bias + sum (w - w_zp) * (x - x_zp); one multiplier from
           double(float(x_scale * w_scale)) / double(y_scale) (legacy: float product first).
  hybrid   float input, int8 weights: see hybrid.py.
  16x8     int16 input and output, int8 per-channel weights, int64 bias, zero points 0:
           acc = bias + sum w * x in int64; out = clamp(MBQM64(acc, m[c], s[c])), MBQM64 the
           int64 MultiplyByQuantizedMultiplier (Form.ROUNDING_INT64_REDUCED), in NumPy.
Padded taps are skipped, which is the same as padding with the input zero point.
A 1x1, stride-1 convolution runs on the pointwise (matrix) kernel: same sums, same order.

Speed: when the filter (and bias) are constants, prepare packs them once for the fast kernels
(_kernels_fast: a blocked matrix product over pixels x output channels, requantization fused
for the fixed-point forms); the plain kernels remain for grouped convolutions, other forms
and offsets the fast kernels do not take.  Both give the same bits (tests/kernels).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _kernels_conv, _kernels_pointwise
from ..requantize import QuantizedOutput, requantize_16x8, requantize_to
from . import OpContext, register
from .weighted import padded_taps, prepare_fast_conv, prepare_weighted, run_fast_conv, weighted_inputs
from .window import compute_window


@dataclass
class ConvPlan:
    mode: str  # "float", "quantized", "hybrid"
    stride: tuple
    dilation: tuple
    window: object
    groups: int
    out_shape: tuple
    act_range: tuple = (0.0, 0.0)
    quant: QuantizedOutput | None = None
    input_offset: int = 0
    filter_offset: int = 0
    pointwise: bool = False
    hybrid: object = None
    fast: object = None  # FastConv when the fast kernels take this op


def _prepare_conv(ctx: OpContext) -> ConvPlan:
    x_t, w_t, b_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.input_tensor(2)
    if x_t is None or w_t is None:
        raise ctx.fail("needs an input and a filter tensor")
    if len(x_t.shape) != 4 or len(w_t.shape) != 4:
        raise ctx.fail(f"input {list(x_t.shape)} and filter {list(w_t.shape)} must both be 4-D")
    n, h, w, cin = x_t.shape
    cout, kh, kw, fcin = w_t.shape
    if fcin == 0 or cin % fcin:
        raise ctx.fail(f"input depth {cin} is not a multiple of the filter depth {fcin}")
    groups = cin // fcin
    if groups and cout % groups:
        raise ctx.fail(f"{cout} filters cannot be split into {groups} groups")
    if b_t is not None and b_t.shape != (cout,) and int(np.prod(b_t.shape)) != cout:
        raise ctx.fail(f"bias shape {list(b_t.shape)} does not match {cout} output channels")
    o = ctx.op.options
    stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    dilation = (int(o.get("dilation_hfactor", 1)), int(o.get("dilation_wfactor", 1)))
    win = compute_window(ctx, h, w, kh, kw, *stride, *dilation)
    plan = ConvPlan(mode="", stride=stride, dilation=dilation, window=win, groups=groups,
                    out_shape=(n, win.out_h, win.out_w, cout))
    plan.pointwise = (kh == kw == 1 and stride == (1, 1) and groups == 1)
    prepare_weighted(ctx, plan, cout, channel_axis=0, legacy_per_tensor=x_t.dtype == np.uint8)
    if groups == 1 and plan.mode in ("float", "quantized"):
        plan.fast = prepare_fast_conv(ctx, plan, kh, kw, cout, depthwise=False)
    return plan


def int_conv_accumulators(x, w, bias, plan: ConvPlan) -> np.ndarray:
    """int32 accumulators of a (possibly grouped) convolution, bias included."""
    acc = np.empty(plan.out_shape, np.int32)
    if plan.pointwise:
        _kernels_pointwise.matmul_int(x.reshape(-1, x.shape[-1]), w.reshape(w.shape[0], -1), bias,
                                      plan.input_offset, plan.filter_offset,
                                      acc.reshape(-1, acc.shape[-1]))
        return acc
    return _grouped(x, w, bias, plan, acc, lambda xg, wg, bg, out: _kernels_conv.conv2d_int(
        xg, wg, bg, plan.input_offset, plan.filter_offset, *plan.stride, *plan.dilation,
        plan.window.pad_top, plan.window.pad_left, out))


def int64_conv_accumulators(x, w, bias, plan: ConvPlan) -> np.ndarray:
    """int64 accumulators of a 16x8 (possibly grouped) convolution, bias included: per tap, the
    strided input view times the tap's weights (exact integer sums, any order)."""
    _, kh, kw, fcin = w.shape
    acc = np.zeros(plan.out_shape, np.int64)
    per_group = w.shape[0] // max(plan.groups, 1)
    weights = w.astype(np.int64)
    for ky, kx, view in padded_taps(x, kh, kw, plan):
        for g in range(plan.groups):
            outs = slice(g * per_group, (g + 1) * per_group)
            acc[..., outs] += view[..., g * fcin:(g + 1) * fcin] @ weights[outs, ky, kx, :].T
    if bias is not None:
        acc += bias.astype(np.int64)
    return acc


def _grouped(x, w, bias, plan: ConvPlan, out, kernel):
    if plan.groups == 1:
        kernel(x, w, bias, out)
        return out
    fcin = w.shape[3]
    per_group = w.shape[0] // plan.groups
    for g in range(plan.groups):
        cs = slice(g * per_group, (g + 1) * per_group)
        part = np.empty(out.shape[:3] + (per_group,), out.dtype)
        kernel(np.ascontiguousarray(x[..., g * fcin:(g + 1) * fcin]), np.ascontiguousarray(w[cs]),
               None if bias is None else np.ascontiguousarray(bias[cs]), part)
        out[..., cs] = part
    return out


@register("CONV_2D", prepare=_prepare_conv)
def conv_2d(ctx: OpContext, inputs: list) -> list:
    plan: ConvPlan = ctx.params
    if plan.fast is not None:
        out = run_fast_conv(plan, inputs[0])
        if out is not None:
            return [out]
    x, w, bias = weighted_inputs(inputs)
    if plan.mode == "float":
        out = np.empty(plan.out_shape, np.float32)
        lo, hi = plan.act_range
        nan_block, float_sum = ctx.profile.nan_block("CONV_2D"), ctx.profile.float_sum("CONV_2D")
        if plan.pointwise:
            _kernels_pointwise.matmul_float(x.reshape(-1, x.shape[-1]), w.reshape(w.shape[0], -1),
                                            bias, lo, hi, out.reshape(-1, out.shape[-1]), nan_block,
                                            *float_sum.split(w.shape[3]))
            return [out]
        return [_grouped(x, w, bias, plan, out, lambda xg, wg, bg, o: _kernels_conv.conv2d_float(
            xg, wg, bg, *plan.stride, *plan.dilation, plan.window.pad_top, plan.window.pad_left,
            lo, hi, o, nan_block, *float_sum.split(w.shape[3])))]
    if plan.mode == "hybrid":
        from .hybrid import hybrid_conv

        return [hybrid_conv(ctx, plan, x, w, bias)]
    if plan.mode == "quantized16":
        return [requantize_16x8(int64_conv_accumulators(x, w, bias, plan), plan.quant,
                                ctx.profile.saturating_conversion)]
    acc = int_conv_accumulators(x, w, bias, plan)
    return [requantize_to(acc, plan.quant, ctx.output_tensor().dtype)]
