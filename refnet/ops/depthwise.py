"""DEPTHWISE_CONV_2D: float32, int8 (per-channel), uint8 (legacy per-tensor) and hybrid.

Output channel oc = ic * M + m reads input channel ic, where the depth multiplier M is the
filter's channel count over the input's (as LiteRT computes it, whatever the option says).
Float sums run over (ky, kx), then + bias, then clamp; integer paths requantize exactly as
CONV_2D does (refnet/requantize.py); 16x8 (int16 input and output, int8 weights, int64 bias)
sums in int64 NumPy and requantizes as CONV_2D's 16x8 path.  Multiplier-1 depthwise with constant weights
runs on _kernels_fast (weights packed at prepare, requantization fused), same bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _kernels_depthwise
from ..requantize import QuantizedOutput, requantize_16x8, requantize_to
from . import OpContext, register
from .weighted import padded_taps, prepare_fast_conv, prepare_weighted, run_fast_conv, weighted_inputs
from .window import compute_window


@dataclass
class DepthwisePlan:
    mode: str
    depth_multiplier: int
    stride: tuple
    dilation: tuple
    window: object
    out_shape: tuple
    act_range: tuple = (0.0, 0.0)
    quant: QuantizedOutput | None = None
    input_offset: int = 0
    filter_offset: int = 0
    hybrid: object = None
    fast: object = None


def _prepare_depthwise(ctx: OpContext) -> DepthwisePlan:
    x_t, w_t, b_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.input_tensor(2)
    if x_t is None or w_t is None:
        raise ctx.fail("needs an input and a filter tensor")
    if len(x_t.shape) != 4 or len(w_t.shape) != 4 or w_t.shape[0] != 1:
        raise ctx.fail(f"input {list(x_t.shape)} must be 4-D and filter {list(w_t.shape)} 1xHxWxC")
    n, h, w, cin = x_t.shape
    _, kh, kw, cout = w_t.shape
    if cin == 0 or cout % cin:
        raise ctx.fail(f"filter channels {cout} are not a multiple of input channels {cin}")
    if b_t is not None and int(np.prod(b_t.shape)) != cout:
        raise ctx.fail(f"bias shape {list(b_t.shape)} does not match {cout} output channels")
    o = ctx.op.options
    stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
    dilation = (int(o.get("dilation_hfactor", 1)), int(o.get("dilation_wfactor", 1)))
    win = compute_window(ctx, h, w, kh, kw, *stride, *dilation)
    plan = DepthwisePlan(mode="", depth_multiplier=cout // cin, stride=stride, dilation=dilation,
                         window=win, out_shape=(n, win.out_h, win.out_w, cout))
    prepare_weighted(ctx, plan, cout, channel_axis=3, legacy_per_tensor=x_t.dtype == np.uint8)
    if plan.depth_multiplier == 1 and plan.mode in ("float", "quantized"):
        plan.fast = prepare_fast_conv(ctx, plan, kh, kw, cout, depthwise=True)
    return plan


def int_depthwise_accumulators(x, w, bias, plan: DepthwisePlan, input_offset=None) -> np.ndarray:
    acc = np.empty(plan.out_shape, np.int32)
    _kernels_depthwise.depthwise_int(
        x, w, bias, plan.depth_multiplier,
        plan.input_offset if input_offset is None else input_offset, plan.filter_offset,
        *plan.stride, *plan.dilation, plan.window.pad_top, plan.window.pad_left, acc)
    return acc


def int64_depthwise_accumulators(x, w, bias, plan: DepthwisePlan) -> np.ndarray:
    """int64 accumulators of a 16x8 depthwise convolution, bias included: output channel oc
    reads input channel oc // M."""
    _, kh, kw, cout = w.shape
    source_channel = np.arange(cout) // plan.depth_multiplier
    acc = np.zeros(plan.out_shape, np.int64)
    weights = w.astype(np.int64)
    for ky, kx, view in padded_taps(x, kh, kw, plan):
        acc += view[..., source_channel] * weights[0, ky, kx, :]
    if bias is not None:
        acc += bias.astype(np.int64)
    return acc


@register("DEPTHWISE_CONV_2D", prepare=_prepare_depthwise)
def depthwise_conv_2d(ctx: OpContext, inputs: list) -> list:
    plan: DepthwisePlan = ctx.params
    if plan.fast is not None:
        out = run_fast_conv(plan, inputs[0])
        if out is not None:
            return [out]
    x, w, bias = weighted_inputs(inputs)
    if plan.mode == "float":
        out = np.empty(plan.out_shape, np.float32)
        _kernels_depthwise.depthwise_float(x, w, bias, plan.depth_multiplier, *plan.stride,
                                           *plan.dilation, plan.window.pad_top, plan.window.pad_left,
                                           *plan.act_range, out,
                                           ctx.profile.float_sum("DEPTHWISE_CONV_2D").fused)
        return [out]
    if plan.mode == "hybrid":
        from .hybrid import hybrid_depthwise

        return [hybrid_depthwise(ctx, plan, x, w, bias)]
    if plan.mode == "quantized16":
        return [requantize_16x8(int64_depthwise_accumulators(x, w, bias, plan), plan.quant,
                                ctx.profile.saturating_conversion)]
    acc = int_depthwise_accumulators(x, w, bias, plan)
    return [requantize_to(acc, plan.quant, ctx.output_tensor().dtype)]
