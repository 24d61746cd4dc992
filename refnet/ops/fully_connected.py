"""FULLY_CONNECTED: float32, int8 (per-tensor or per-channel weights), uint8 and hybrid.

The input is viewed as (batches, K) with K the filter's second dimension. LiteRT's reference
path sums like the pointwise kernel (k in order; float: + bias after, then clamp), and
requantizes int8/uint8 in double precision: round(double(acc) * double(s_x) * double(s_w[c]) /
double(s_y)) with ties away from zero (the profile's ROUNDING_FLOAT64); other profiles can ask
for the fixed-point forms.  With constant weights, prepare packs them for _kernels_fast (the
same sums as a 1x1 convolution over `batches` pixels), same bits.
"""
from __future__ import annotations

import os

# libgomp (loaded with _kernels_fast) reads this once: sleeping, not spinning, idle threads keep a
# shared or busy machine from stalling every parallel region (num_threads > 1).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast, _kernels_pointwise
from ..profile import ROUNDING_FLOAT64
from . import OpContext, float_activation_range, quantized_activation_range, register, round_half_away
from .conv import QuantizedOutput, arithmetic_mode, output_multipliers, _contiguous, constant_data, requantize_to, threads_of, zero_point_of


@dataclass
class FullyConnectedPlan:
    mode: str
    batches: int
    depth: int
    units: int
    out_shape: tuple
    act_range: tuple = (0.0, 0.0)
    input_offset: int = 0
    filter_offset: int = 0
    quant: QuantizedOutput | None = None
    effective_scale: np.ndarray | None = None  # float64 per unit, for ROUNDING_FLOAT64
    hybrid: object = None
    fast_weights: np.ndarray | None = None  # packed for _kernels_fast
    fast_bias: np.ndarray | None = None


def _prepare_fast(ctx: OpContext, plan: FullyConnectedPlan) -> None:
    w, b_t, bias = constant_data(ctx, 1), ctx.input_tensor(2), constant_data(ctx, 2)
    if w is None or (b_t is not None and bias is None) or plan.units == 0:
        return
    if plan.mode == "float":
        plan.fast_weights = _kernels_fast.pack_f(w)
        plan.fast_bias = None if bias is None else _kernels_fast.pad_channels(bias, plan.units, np.float32)
    elif plan.mode == "quantized" and _kernels_fast.input_offset_fits(plan.input_offset):
        plan.fast_weights = _kernels_fast.pack_q(w, plan.filter_offset)
        plan.fast_bias = None if bias is None else _kernels_fast.pad_channels(bias, plan.units, np.int32)


def _prepare_fully_connected(ctx: OpContext) -> FullyConnectedPlan:
    x_t, w_t, b_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.input_tensor(2), ctx.output_tensor()
    if x_t is None or w_t is None:
        raise ctx.fail("needs an input and a weights tensor")
    if len(w_t.shape) != 2:
        raise ctx.fail(f"weights must be 2-D (units, depth), got {list(w_t.shape)}")
    if ctx.op.options.get("weights_format", 0) != 0:
        raise ctx.unsupported("shuffled weights format")
    units, depth = w_t.shape
    total = int(np.prod(x_t.shape)) if x_t.shape else 1
    if depth == 0 or total % depth:
        raise ctx.fail(f"input of {total} elements is not a whole number of rows of depth {depth}")
    batches = total // depth
    if b_t is not None and int(np.prod(b_t.shape)) != units:
        raise ctx.fail(f"bias shape {list(b_t.shape)} does not match {units} units")
    if ctx.op.options.get("keep_num_dims", False):
        if not x_t.shape or x_t.shape[-1] != depth:
            raise ctx.fail(f"keep_num_dims needs the input's last dimension to be {depth}")
        out_shape = tuple(x_t.shape[:-1]) + (units,)
    else:
        out_shape = (batches, units)
    plan = FullyConnectedPlan(mode="", batches=batches, depth=depth, units=units, out_shape=out_shape)
    plan.mode = arithmetic_mode(ctx, x_t, w_t, b_t, y_t)
    if plan.mode in ("float", "hybrid"):
        plan.act_range = float_activation_range(ctx)
    if plan.mode == "hybrid":
        from .hybrid import prepare_hybrid

        plan.hybrid = prepare_hybrid(ctx, w_t, b_t, channels=units, channel_axis=0)
    elif plan.mode == "quantized":
        for t, role in ((x_t, "input"), (w_t, "weights"), (y_t, "output")):
            if t.quantization is None:
                raise ctx.fail(f"{role} tensor {t.index} '{t.name}' has no quantization")
        x_scale, _ = x_t.quantization.scalar()
        y_scale, y_zp = y_t.quantization.scalar()
        w_q = w_t.quantization
        if w_q.per_channel and (w_q.axis != 0 or w_q.scale.size != units):
            raise ctx.fail(f"per-channel weights need {units} scales on axis 0")
        per_channel = w_q.per_channel
        plan.input_offset = -zero_point_of(x_t)
        plan.filter_offset = 0 if per_channel else -zero_point_of(w_t)
        scales = np.broadcast_to(w_q.scale, (units,)).astype(np.float64)
        plan.effective_scale = float(np.float32(x_scale)) * scales / float(np.float32(y_scale))
        qmin, qmax = quantized_activation_range(ctx, y_t)
        rounding = ctx.profile.rounding(ctx.op.kind, x_t.dtype)
        if per_channel:
            real = plan.effective_scale
        else:  # the fixed-point forms use GetQuantizedConvolutionMultipler: float product first
            real = np.full(units, float(np.float32(x_scale) * np.float32(w_q.scale[0])) / float(np.float32(y_scale)))
        mult, shift = output_multipliers(ctx, real)
        plan.quant = QuantizedOutput(np.array(mult, np.int32), np.array(shift, np.int32), y_zp, qmin,
                                     qmax, rounding, scales=(np.float32(x_scale), scales.astype(np.float32),
                                                             np.float32(y_scale)))
    _prepare_fast(ctx, plan)
    return plan


def requantize_float64(acc: np.ndarray, effective_scale: np.ndarray, q: QuantizedOutput, dtype) -> np.ndarray:
    """static_cast<int32>(round(double(acc) * scale)) + zero point, clamped (reference FC)."""
    scaled = round_half_away(acc.astype(np.float64) * effective_scale)
    scaled = np.clip(scaled, -2.0**31, 2.0**31 - 1).astype(np.int64)
    return np.clip(scaled + q.zero_point, q.qmin, q.qmax).astype(dtype)


@register("FULLY_CONNECTED", prepare=_prepare_fully_connected)
def fully_connected(ctx: OpContext, inputs: list) -> list:
    plan: FullyConnectedPlan = ctx.params
    x = _contiguous(inputs[0]).reshape(plan.batches, plan.depth)
    w = _contiguous(inputs[1])
    bias = _contiguous(inputs[2].reshape(-1)) if len(inputs) > 2 and inputs[2] is not None else None
    fast = plan.fast_weights is not None
    geometry = (1, 1, 1, 1, 1, 1, 0, 0)
    if plan.mode == "float":
        out = np.empty((plan.batches, plan.units), np.float32)
        if fast:
            _kernels_fast.conv_f(x.reshape(1, plan.batches, 1, plan.depth), plan.fast_weights,
                                 plan.fast_bias, geometry, *plan.act_range,
                                 out.reshape(1, plan.batches, 1, plan.units), threads_of(ctx))
        else:
            _kernels_pointwise.matmul_float(x, w, bias, *plan.act_range, out)
        return [out.reshape(plan.out_shape)]
    if plan.mode == "hybrid":
        from .hybrid import hybrid_fully_connected

        return [hybrid_fully_connected(ctx, plan, x, w, bias).reshape(plan.out_shape)]
    acc = np.empty((plan.batches, plan.units), np.int32)
    if fast:
        _kernels_fast.conv_q(x.reshape(1, plan.batches, 1, plan.depth), plan.fast_weights,
                             plan.fast_bias, None, None, geometry, plan.input_offset, 0, 0, 0, 0,
                             acc.reshape(1, plan.batches, 1, plan.units), threads_of(ctx))
    else:
        _kernels_pointwise.matmul_int(x, w, bias, plan.input_offset, plan.filter_offset, acc)
    dtype = ctx.output_tensor().dtype
    if plan.quant.rounding == ROUNDING_FLOAT64:
        out = requantize_float64(acc, plan.effective_scale, plan.quant, dtype)
    else:
        out = requantize_to(acc, plan.quant, dtype)
    return [out.reshape(plan.out_shape)]
