"""MEAN: float32, int8 and uint8, as LiteRT's reference kernel (Register_MEAN_REF).

LiteRT's reference path has no special case for 4-D inputs reduced over height and width
(that fast path belongs to the optimized kernel); every shape goes through one generic kernel:

- The axis list is resolved once: negative axes wrapped, duplicates dropped.
- Sums run per output element over its inputs in row-major input order (reduced axes in
  their original order), accumulating from zero: float32 in float32, int8/uint8 as raw
  quantized values in int32 (wrapping).
- float32: sum / float32(count).
- int8/uint8: Prepare turns input_scale / output_scale (as doubles) into (multiplier, shift)
  with QuantizeMultiplier. Eval folds 1/count into it: with s = floor(log2(count)) capped at
  32 and at 31 + shift, multiplier' = (multiplier << s) / count (integer division) and
  shift' = shift - s. Each output is then
      MultiplyByQuantizedMultiplier(sum - input_zero_point * count, multiplier', shift')
      + output_zero_point, clamped to the type's range.
- An input with no elements gives NaN (float32) or 0 (integer types) everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast, _kernels_requantize, fixedpoint, requantize
from ..forms import Form
from . import OpContext, register

MEAN_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8))


@dataclass(frozen=True)
class MeanPlan:
    axes: tuple[int, ...] | None  # resolved axes, None when the axis tensor is not constant
    keep_dims: bool
    multiplier: int = 0  # quantized only: QuantizeMultiplier(input_scale / output_scale)
    shift: int = 0
    input_zero_point: int = 0
    output_zero_point: int = 0


def resolve_axes(ctx: OpContext, axis_values, rank: int) -> tuple[int, ...]:
    """TFLite's ResolveAxis: wrap negative axes, check the range, drop duplicates (keep order)."""
    resolved: list[int] = []
    if rank == 0:
        return ()
    for a in np.asarray(axis_values).reshape(-1).tolist():
        current = a + rank if a < 0 else a
        if not 0 <= current < rank:
            raise ctx.fail(f"axis {a} is outside the input's {rank} dimensions")
        if current not in resolved:
            resolved.append(current)
    return tuple(resolved)


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool) -> tuple[int, ...]:
    if keep_dims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_output_shape(ctx: OpContext, axes: tuple[int, ...], keep_dims: bool) -> None:
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    expected = reduced_shape(tuple(x_t.shape), axes, keep_dims)
    if tuple(y_t.shape) != expected:
        raise ctx.fail(f"output shape {list(y_t.shape)} should be {list(expected)} "
                       f"(input {list(x_t.shape)}, axes {list(axes)}, keep_dims={keep_dims})")


def _prepare_mean(ctx: OpContext) -> MeanPlan:
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"needs 2 inputs (data, axis) and 1 output, has {len(ctx.op.inputs)} "
                       f"and {len(ctx.op.outputs)}")
    x_t, axis_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if x_t is None or axis_t is None:
        raise ctx.fail("the data and axis inputs are required")
    if axis_t.dtype != np.int32:
        raise ctx.fail(f"the axis tensor must be int32, not {axis_t.dtype.name}")
    if x_t.dtype not in MEAN_DTYPES:
        raise ctx.unsupported(f"{x_t.dtype.name} MEAN (supported: float32, int8, uint8)")
    if y_t.dtype != x_t.dtype:
        raise ctx.fail(f"input is {x_t.dtype.name} but output is {y_t.dtype.name}")
    keep_dims = bool(ctx.op.options.get("keep_dims", False))
    axes = None
    if axis_t.is_constant:
        axes = resolve_axes(ctx, axis_t.data, len(x_t.shape))
        _check_output_shape(ctx, axes, keep_dims)
    if x_t.dtype == np.float32:
        return MeanPlan(axes, keep_dims)
    if x_t.quantization is None or y_t.quantization is None:
        raise ctx.fail(f"{x_t.dtype.name} MEAN needs quantized input and output tensors")
    if x_t.quantization.per_channel or y_t.quantization.per_channel:
        raise ctx.unsupported("per-channel quantized MEAN")
    in_scale, in_zp = x_t.quantization.scalar()
    out_scale, out_zp = y_t.quantization.scalar()
    if out_scale == 0.0:
        raise ctx.arithmetic_error("the output scale is 0: input_scale / output_scale is undefined")
    # The scales are float32 in the model; LiteRT divides them as doubles.
    multiplier, shift = fixedpoint.quantize_multiplier(float(in_scale) / float(out_scale))
    return MeanPlan(axes, keep_dims, multiplier, shift, in_zp, out_zp)


def rows_in_input_order(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """(outer..., count) view of x: kept axes first, reduced axes last in their input order,
    so each row lists one output's inputs in the order the reference visits them."""
    kept = [i for i in range(x.ndim) if i not in axes]
    reduced = sorted(axes)  # row-major iteration visits reduced axes in increasing order
    count = int(np.prod([x.shape[i] for i in reduced], dtype=np.int64))
    rows = np.transpose(x, kept + reduced).reshape(tuple(x.shape[i] for i in kept) + (count,))
    return rows, count


def _mean_float(x: np.ndarray, axes: tuple[int, ...], reciprocal: bool = False) -> np.ndarray:
    """sum / count; reciprocal: sum * float32(1 / count) (Profile.float_reciprocal)."""
    reduced = sorted(axes)
    if reduced and reduced == list(range(reduced[0], reduced[-1] + 1)) and x.flags.c_contiguous:
        # adjacent axes (NHWC over H, W): x is (outer, count, inner) in memory, summed in the
        # reference order from +0.0, channels in vector lanes
        outer = math.prod(x.shape[:reduced[0]])  # math.prod: np.prod costs microseconds per call
        count = math.prod(x.shape[reduced[0]:reduced[-1] + 1])
        inner = math.prod(x.shape[reduced[-1] + 1:])
        total = np.empty(tuple(d for i, d in enumerate(x.shape) if i not in axes), np.float32)
        _kernels_fast.sum_rows_f(x, outer, count, inner, total)
    else:
        rows, count = rows_in_input_order(x, axes)
        with np.errstate(invalid="ignore", over="ignore"):
            # accumulate is strictly sequential; the reference starts from +0.0, and adding +0.0
            # at the end is the only difference that can make (an all -0.0 sum becomes +0.0).
            total = np.add.accumulate(rows, axis=-1, dtype=np.float32)[..., -1] + np.float32(0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        if reciprocal:
            return (total * (np.float32(1.0) / np.float32(count))).astype(np.float32)
        return (total / np.float32(count)).astype(np.float32)


def raw_sums(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """(the int64 sums of the raw values of each output's inputs, kept axes in order; count).
    Integer sums are exact in any order: reduced axes forming one block of consecutive dimensions
    (MEAN over H, W of NHWC) of an 8-bit tensor go to _kernels_fast.sum_rows8."""
    reduced = sorted(axes)
    count = int(np.prod([x.shape[i] for i in reduced], dtype=np.int64))
    if x.dtype.itemsize == 1 and reduced and reduced == list(range(reduced[0], reduced[-1] + 1)) \
            and count < 2**31 // 255:
        kept_shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        outer = int(np.prod(x.shape[:reduced[0]], dtype=np.int64))
        inner = int(np.prod(x.shape[reduced[-1] + 1:], dtype=np.int64))
        sums = np.empty(outer * inner, np.int32)
        _kernels_fast.sum_rows8(np.ascontiguousarray(x), outer, count, inner, sums)
        return sums.astype(np.int64).reshape(kept_shape), count
    rows, count = rows_in_input_order(x, axes)
    return rows.astype(np.int64).sum(axis=-1), count


def _mean_quantized(ctx: OpContext, x: np.ndarray, axes: tuple[int, ...], plan: MeanPlan) -> np.ndarray:
    sums, count = raw_sums(x, axes)
    return mean_quantized_from_sums(ctx, sums, count, plan, x.dtype)


def mean_quantized_from_sums(ctx: OpContext, raw_sums: np.ndarray, count: int, plan: MeanPlan, dtype) -> np.ndarray:
    """The reference quantized MEAN from the raw sums of its inputs (one per output)."""
    total = fixedpoint.wrap_to_int32(raw_sums).astype(np.int64)
    # Fold 1/count into the multiplier as the reference does.
    scale_bits = min(count.bit_length() - 1, 32, 31 + plan.shift)
    multiplier = (plan.multiplier << scale_bits) // count
    shift = plan.shift - scale_bits
    if multiplier > fixedpoint.INT32_MAX:  # cannot happen: multiplier < 2**31 before the fold
        raise ctx.arithmetic_error(f"folded multiplier {multiplier} overflows int32")
    if shift > 31:
        raise ctx.arithmetic_error(
            f"input_scale / output_scale needs a left shift of {shift} bits; the reference's "
            f"int32 shift is undefined beyond 31")
    shifted = fixedpoint.wrap_to_int32(total - plan.input_zero_point * count)
    form = ctx.profile.rounding(ctx.op.kind)
    info = np.iinfo(dtype)
    if form.is_fixed_point and -31 <= shift <= 0 and count < 2**22 and abs(plan.input_zero_point) <= 255 \
            and abs(plan.output_zero_point) < 2**16:
        # the Cython MBQM: |MBQM(x)| <= |x| <= 510 * count here, so its int32 addition of the zero
        # point cannot wrap and equals the int64 one below
        out = np.empty(shifted.size, dtype)
        _kernels_requantize.requantize(np.ascontiguousarray(shifted, np.int32).reshape(1, -1),
                                       np.array([multiplier], np.int32), np.array([shift], np.int32),
                                       plan.output_zero_point, int(info.min), int(info.max), int(form),
                                       out.reshape(1, -1))
        return out.reshape(shifted.shape)
    scaled = fixedpoint.multiply_by_quantized_multiplier(shifted, multiplier, shift, form).astype(np.int64)
    return np.clip(scaled + plan.output_zero_point, info.min, info.max).astype(dtype)


def _mean_profile_form(ctx: OpContext, x: np.ndarray, axes: tuple[int, ...], plan: MeanPlan,
                       form: int) -> np.ndarray:
    """MEAN as LiteRT's optimized kernel or XNNPACK computes it (refnet/requantize.py)."""
    in_scale, _ = ctx.input_tensor(0).quantization.scalar()
    out_scale, _ = ctx.output_tensor().quantization.scalar()
    zps = (plan.input_zero_point, plan.output_zero_point)
    if form in (Form.MEAN_OPTIMIZED_4D, Form.MEAN_OPTIMIZED_4D_SCALAR):
        if not (plan.keep_dims and x.ndim == 4 and sorted(axes) == [1, 2]):
            return _mean_quantized(ctx, x, axes, plan)  # only that case has an optimized kernel
        return requantize.mean_optimized_4d(x, in_scale, zps[0], out_scale, zps[1],
                                            vector_blocks=form == Form.MEAN_OPTIMIZED_4D,
                                            total=raw_sums(x, axes)[0])
    total, count = raw_sums(x, axes)
    return requantize.mean_fp32(total, count, in_scale, zps[0], out_scale, zps[1], x.dtype,
                                fused=form == Form.MEAN_FP32_FMA)


@register("MEAN", prepare=_prepare_mean)
def mean(ctx: OpContext, inputs: list) -> list:
    x, axis_values = inputs[0], inputs[1]
    plan: MeanPlan = ctx.params
    axes = plan.axes
    if axes is None:  # axis computed at run time
        axes = resolve_axes(ctx, axis_values, x.ndim)
        _check_output_shape(ctx, axes, plan.keep_dims)
    out_shape = tuple(ctx.output_tensor().shape)
    if x.size == 0:  # LiteRT fills the output with quiet_NaN() of its type (0 for integers)
        fill = np.nan if x.dtype == np.float32 else 0
        return [np.full(out_shape, fill, x.dtype)]
    form = ctx.profile.rounding(ctx.op.kind, x.dtype)
    if x.dtype == np.float32:
        result = _mean_float(x, axes, "MEAN" in ctx.profile.float_reciprocal)
    elif form in (Form.MEAN_OPTIMIZED_4D, Form.MEAN_OPTIMIZED_4D_SCALAR, Form.MEAN_FP32, Form.MEAN_FP32_FMA):
        result = _mean_profile_form(ctx, x, axes, plan, form)  # optimized / XNNPACK arithmetic
    else:
        result = _mean_quantized(ctx, x, axes, plan)
    return [result.reshape(out_shape)]
