"""FULLY_CONNECTED: float32, int8 (per-tensor or per-channel weights), uint8 and hybrid.

The input is viewed as (batches, K) with K the filter's second dimension. LiteRT's reference
path sums like the pointwise kernel (k in order; float: + bias after, then clamp), and
requantizes int8/uint8 in double precision: round(double(acc) * double(s_x) * double(s_w[c]) /
double(s_y)) with ties away from zero (Form.ROUNDING_FLOAT64); other profiles can ask
for the fixed-point forms.  16x8 (int16 input and output, int8 weights, int64 bias) sums in int64
NumPy and requantizes in the profile's 16x8 form (refnet/requantize.py requantize_16x8).  With constant weights, prepare packs them for _kernels_fast (the
same sums as a 1x1 convolution over `batches` pixels), same bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast, _kernels_pointwise
from ..forms import ORDERED
from ..requantize import QuantizedOutput, requantize_16x8, requantize_to
from . import OpContext, register
from .weighted import constant_data, prepare_weighted, threads_of, weighted_inputs


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
    hybrid: object = None
    fast_weights: np.ndarray | None = None  # packed for _kernels_fast
    fast_bias: np.ndarray | None = None
    fast_beta: int = 0  # pack_q's weight shift


def _prepare_fast(ctx: OpContext, plan: FullyConnectedPlan) -> None:
    w, b_t, bias = constant_data(ctx, 1), ctx.input_tensor(2), constant_data(ctx, 2)
    if w is None or (b_t is not None and bias is None) or plan.units == 0:
        return
    if plan.mode == "float":
        if ctx.profile.float_sum("FULLY_CONNECTED") != ORDERED:
            return  # the fast float kernel sums in the reference order only
        plan.fast_weights = _kernels_fast.pack_f(w)
        plan.fast_bias = None if bias is None else _kernels_fast.pad_channels(bias, plan.units, np.float32)
    elif plan.mode == "quantized" and _kernels_fast.input_offset_fits(plan.input_offset):
        packed = _kernels_fast.pack_q(w, plan.filter_offset)
        if packed is None:
            return
        plan.fast_weights, plan.fast_beta = packed
        plan.fast_bias = None if bias is None else _kernels_fast.pad_channels(bias, plan.units, np.int32)


def _prepare_fully_connected(ctx: OpContext) -> FullyConnectedPlan:
    x_t, w_t, b_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.input_tensor(2)
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
    per_channel = w_t.quantization is not None and w_t.quantization.per_channel
    undefined = ctx.profile.undefined.get("FULLY_CONNECTED per-channel keep_num_dims")
    if per_channel and x_t.dtype != np.float32 and ctx.op.options.get("keep_num_dims", False) and undefined:
        raise ctx.unsupported(f"{undefined}: {ctx.profile.name} has no defined output to reproduce; "
                              f"convert without keep_num_dims (or with per-tensor weights), or use a newer runtime")
    prepare_weighted(ctx, plan, units, channel_axis=0, legacy_per_tensor=not per_channel)
    _prepare_fast(ctx, plan)
    return plan


@register("FULLY_CONNECTED", prepare=_prepare_fully_connected)
def fully_connected(ctx: OpContext, inputs: list) -> list:
    plan: FullyConnectedPlan = ctx.params
    x, w, bias = weighted_inputs(inputs)
    x = x.reshape(plan.batches, plan.depth)
    fast = plan.fast_weights is not None
    geometry = (1, 1, 1, 1, 1, 1, 0, 0)
    if plan.mode == "float":
        out = np.empty((plan.batches, plan.units), np.float32)
        # a NaN output: the plain kernel fixes which NaN wins (see _kernels_fast.conv_f)
        if not fast or _kernels_fast.conv_f(x.reshape(1, plan.batches, 1, plan.depth), plan.fast_weights,
                                            plan.fast_bias, geometry, *plan.act_range,
                                            out.reshape(1, plan.batches, 1, plan.units), threads_of(ctx)):
            _kernels_pointwise.matmul_float(x, w, bias, *plan.act_range, out,
                                            ctx.profile.nan_block("FULLY_CONNECTED"),
                                            *ctx.profile.float_sum("FULLY_CONNECTED").split(plan.depth))
        return [out.reshape(plan.out_shape)]
    if plan.mode == "hybrid":
        from .hybrid import hybrid_fully_connected

        return [hybrid_fully_connected(ctx, plan, x, w, bias).reshape(plan.out_shape)]
    if plan.mode == "quantized16":
        acc = x.astype(np.int64) @ w.astype(np.int64).T
        if bias is not None:
            acc += bias.astype(np.int64)
        return [requantize_16x8(acc, plan.quant, ctx.profile.saturating_conversion).reshape(plan.out_shape)]
    acc = np.empty((plan.batches, plan.units), np.int32)
    if fast:
        _kernels_fast.conv_q(x.reshape(1, plan.batches, 1, plan.depth), plan.fast_weights,
                             plan.fast_bias, None, None, geometry, plan.input_offset, plan.fast_beta, 0, 0, 0, 0,
                             acc.reshape(1, plan.batches, 1, plan.units), threads_of(ctx))
    else:
        _kernels_pointwise.matmul_int(x, w, bias, plan.input_offset, plan.filter_offset, acc)
    return [requantize_to(acc, plan.quant, ctx.output_tensor().dtype).reshape(plan.out_shape)]
