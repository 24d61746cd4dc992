"""CONV_2D: float32, int8 (per-channel weights), uint8 (legacy per-tensor) and hybrid.

Reference semantics (LiteRT BUILTIN_REF):
  float32  sum over (ky, kx, ci) in that order in float32, + bias, clamp to the activation range.
  int8     acc = bias + sum w * (x - x_zp); out = clamp(MBQM(acc, m[c], s[c]) + y_zp), with
           m, s from double(x_scale) * double(w_scale[c]) / double(y_scale).
  uint8    acc = bias + sum (w - w_zp) * (x - x_zp); one multiplier from
           double(float(x_scale * w_scale)) / double(y_scale) (legacy: float product first).
  hybrid   float input, int8 weights: see hybrid.py.
Padded taps are skipped, which is the same as padding with the input zero point.
A 1x1, stride-1 convolution runs on the pointwise (matrix) kernel: same sums, same order.

Speed: when the filter (and bias) are constants, prepare packs them once for the fast kernels
(_kernels_fast: a blocked matrix product over pixels x output channels, requantization fused
for the forms 0/1/2); the plain kernels remain for grouped convolutions, other rounding forms
and offsets the fast kernels do not take.  Both give the same bits (tests/kernels).
"""
from __future__ import annotations

import os

# libgomp (loaded with _kernels_fast) reads this once: sleeping, not spinning, idle threads keep a
# shared or busy machine from stalling every parallel region (num_threads > 1).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass

import numpy as np

from .. import _kernels_conv, _kernels_fast, _kernels_pointwise, _kernels_requantize, requantize_forms
from ..fixedpoint import quantize_multiplier
from . import OpContext, float_activation_range, quantized_activation_range, register
from .window import compute_window


@dataclass
class QuantizedOutput:
    """Everything needed to turn int32 accumulators into the output type."""

    multiplier: np.ndarray  # int32 per output channel (or length 1)
    shift: np.ndarray  # int32, > 0 means left shift
    zero_point: int
    qmin: int
    qmax: int
    rounding: int
    # (x_scale, w_scales, y_scale) as float32, for profile forms computed from the scales
    # themselves (XNNPACK's fp32 requantization: refnet/requantize_forms.py).
    scales: tuple | None = None


def quantized_output_params(ctx: OpContext, input_t, filter_t, output_t, channels: int,
                            channel_axis: int) -> QuantizedOutput:
    """Per-channel multipliers as PopulateConvolutionQuantizationParams computes them."""
    for t, role in ((input_t, "input"), (filter_t, "filter"), (output_t, "output")):
        if t.quantization is None:
            raise ctx.fail(f"{role} tensor {t.index} '{t.name}' is {t.dtype.name} but has no quantization")
    x_scale, _ = input_t.quantization.scalar()
    y_scale, y_zp = output_t.quantization.scalar()
    w_q = filter_t.quantization
    if w_q.per_channel:
        if w_q.axis != channel_axis or w_q.scale.size != channels:
            raise ctx.fail(f"filter per-channel quantization must be on axis {channel_axis} with "
                           f"{channels} scales, got axis {w_q.axis} with {w_q.scale.size}")
    if y_scale <= 0:
        raise ctx.fail(f"output scale {y_scale} must be > 0")
    scales = np.broadcast_to(w_q.scale, (channels,))
    if input_t.dtype == np.uint8:
        # Legacy uint8: the float32 product of the scales, widened, then divided in double.
        real = [float(np.float32(x_scale) * np.float32(s)) / float(np.float32(y_scale)) for s in scales]
    else:
        real = [float(np.float32(x_scale)) * float(s) / float(np.float32(y_scale)) for s in scales]
    mult, shift = output_multipliers(ctx, real)
    qmin, qmax = quantized_activation_range(ctx, output_t)
    return QuantizedOutput(np.array(mult, np.int32), np.array(shift, np.int32), y_zp, qmin, qmax,
                           ctx.profile.rounding(ctx.op.kind, input_t.dtype),
                           scales=(np.float32(x_scale), np.asarray(scales, np.float32), np.float32(y_scale)))


def output_multipliers(ctx: OpContext, reals) -> tuple[tuple, tuple]:
    """QuantizeMultiplier of each real output multiplier, refused (typed) when the scales make it
    non-finite or its shift leaves the [-31, 31] range the requantization is defined on."""
    mult, shift = [], []
    for r in reals:
        if not np.isfinite(r) or r < 0:
            raise ctx.arithmetic_error(f"output multiplier {r!r} (input scale x filter scale / "
                                       f"output scale) is not a finite non-negative number")
        m, s = quantize_multiplier(float(r))
        if not -31 <= s <= 31:
            raise ctx.arithmetic_error(f"output multiplier {r!r} needs a shift of {s}, outside "
                                       f"[-31, 31]: the quantization scales are out of range")
        mult.append(m)
        shift.append(s)
    return tuple(mult), tuple(shift)


def requantize_to(acc: np.ndarray, q: QuantizedOutput, dtype) -> np.ndarray:
    """int32 accumulators (channels last) -> int8/uint8 output of the same shape."""
    # --- profile forms the Cython kernel does not know (owner: refnet/requantize_forms.py) ---
    if q.rounding not in requantize_forms.KERNEL_FORMS:
        return requantize_forms.requantize(acc, q, dtype)
    # ---
    out = np.empty(acc.shape, dtype)
    channels = acc.shape[-1]
    _kernels_requantize.requantize(acc.reshape(-1, channels), q.multiplier, q.shift, q.zero_point,
                                   q.qmin, q.qmax, q.rounding, out.reshape(-1, channels))
    return out


def arithmetic_mode(ctx: OpContext, x_t, w_t, b_t, y_t) -> str:
    """"float", "hybrid" (float input, int8 weights) or "quantized" (int8 x int8, uint8 x uint8),
    from the tensor types of a conv / depthwise / fully connected op; anything else is refused."""
    if x_t.dtype == np.float32 and w_t.dtype == np.float32:
        if b_t is not None and b_t.dtype != np.float32:
            raise ctx.fail(f"a float32 op needs a float32 bias, got {b_t.dtype.name}")
        return "float"
    if x_t.dtype == np.float32 and w_t.dtype == np.int8:
        return "hybrid"
    if x_t.dtype == w_t.dtype and x_t.dtype in (np.int8, np.uint8) and y_t.dtype == x_t.dtype:
        if b_t is not None and b_t.dtype != np.int32:
            raise ctx.unsupported(f"{x_t.dtype.name} weights with a {b_t.dtype.name} bias")
        return "quantized"
    raise ctx.unsupported(f"input {x_t.dtype.name}, weights {w_t.dtype.name}, output {y_t.dtype.name}")


def zero_point_of(t) -> int:
    return int(t.quantization.zero_point[0]) if t.quantization is not None else 0


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


FAST_ROUNDINGS = (0, 1, 2)  # the requantization forms the fused fast kernels implement


@dataclass
class FastConv:
    """Load-time work for _kernels_fast: packed weights, padded per-channel vectors."""

    geometry: tuple  # (kh, kw, sh, sw, dh, dw, pad_top, pad_left)
    weights: np.ndarray
    bias: np.ndarray | None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None


def threads_of(ctx: OpContext) -> int:
    """The interpreter's num_threads (set on the context at allocate_tensors), default 1."""
    return max(1, ctx.num_threads)


def constant_data(ctx: OpContext, i: int):
    t = ctx.input_tensor(i)
    return None if t is None or t.data is None else np.asarray(t.data)


def prepare_fast_conv(ctx: OpContext, plan, kh: int, kw: int, cout: int, depthwise: bool):
    """FastConv for a constant-weight, ungrouped conv (or multiplier-1 depthwise), else None."""
    w, b_t = constant_data(ctx, 1), ctx.input_tensor(2)
    bias = constant_data(ctx, 2)
    if w is None or (b_t is not None and bias is None):
        return None
    geometry = (kh, kw, *plan.stride, *plan.dilation, plan.window.pad_top, plan.window.pad_left)
    if plan.mode == "float":
        weights = _kernels_fast.pack_depthwise_f(w) if depthwise else \
            _kernels_fast.pack_f(w.reshape(cout, -1))
        padded_bias = None if bias is None else _kernels_fast.pad_channels(bias, cout, np.float32)
        return FastConv(geometry, weights, padded_bias)
    if plan.mode != "quantized" or plan.quant.rounding not in FAST_ROUNDINGS:
        return None
    if not _kernels_fast.input_offset_fits(plan.input_offset):
        return None
    q = plan.quant
    top = 30 if q.rounding == 1 else 31
    if q.shift.size and (q.shift.min() < -31 or q.shift.max() > top):
        return None
    weights = _kernels_fast.pack_depthwise_q(w, plan.filter_offset) if depthwise else \
        _kernels_fast.pack_q(w.reshape(cout, -1), plan.filter_offset)
    if weights is None:
        return None
    return FastConv(geometry, weights,
                    None if bias is None else _kernels_fast.pad_channels(bias, cout, np.int32),
                    _kernels_fast.pad_channels(q.multiplier, cout, np.int32),
                    _kernels_fast.pad_channels(q.shift, cout, np.int32))


def _prepare_conv(ctx: OpContext) -> ConvPlan:
    x_t, w_t, b_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.input_tensor(2), ctx.output_tensor()
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
    plan.mode = arithmetic_mode(ctx, x_t, w_t, b_t, y_t)
    if plan.mode in ("float", "hybrid"):
        plan.act_range = float_activation_range(ctx)
    if plan.mode == "hybrid":
        from .hybrid import prepare_hybrid

        plan.hybrid = prepare_hybrid(ctx, w_t, b_t, channels=cout, channel_axis=0)
    elif plan.mode == "quantized":
        plan.quant = quantized_output_params(ctx, x_t, w_t, y_t, cout, channel_axis=0)
        plan.input_offset = -zero_point_of(x_t)
        plan.filter_offset = -zero_point_of(w_t) if x_t.dtype == np.uint8 else 0
    if groups == 1 and plan.mode in ("float", "quantized"):
        plan.fast = prepare_fast_conv(ctx, plan, kh, kw, cout, depthwise=False)
    return plan


def _contiguous(a):
    return a if a is None or a.flags.c_contiguous else np.ascontiguousarray(a)


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
    fast = plan.fast
    if fast is not None:
        x = _contiguous(inputs[0])
        if plan.mode == "float":
            out = np.empty(plan.out_shape, np.float32)
            _kernels_fast.conv_f(x, fast.weights, fast.bias, fast.geometry, *plan.act_range, out,
                                 threads_of(ctx))
            return [out]
        q = plan.quant
        out = np.empty(plan.out_shape, x.dtype)
        _kernels_fast.conv_q(x, fast.weights, fast.bias, fast.multiplier, fast.shift, fast.geometry,
                             plan.input_offset, q.zero_point, q.qmin, q.qmax, q.rounding, out,
                             threads_of(ctx))
        return [out]
    x, w = _contiguous(inputs[0]), _contiguous(inputs[1])
    bias = _contiguous(inputs[2].reshape(-1)) if len(inputs) > 2 and inputs[2] is not None else None
    if plan.mode == "float":
        out = np.empty(plan.out_shape, np.float32)
        lo, hi = plan.act_range
        if plan.pointwise:
            _kernels_pointwise.matmul_float(x.reshape(-1, x.shape[-1]), w.reshape(w.shape[0], -1),
                                            bias, lo, hi, out.reshape(-1, out.shape[-1]))
            return [out]
        return [_grouped(x, w, bias, plan, out, lambda xg, wg, bg, o: _kernels_conv.conv2d_float(
            xg, wg, bg, *plan.stride, *plan.dilation, plan.window.pad_top, plan.window.pad_left,
            lo, hi, o))]
    if plan.mode == "hybrid":
        from .hybrid import hybrid_conv

        return [hybrid_conv(ctx, plan, x, w, bias)]
    acc = int_conv_accumulators(x, w, bias, plan)
    return [requantize_to(acc, plan.quant, ctx.output_tensor().dtype)]
