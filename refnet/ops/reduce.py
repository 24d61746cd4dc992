"""MEAN: float32, int8, uint8 and int16, as LiteRT's reference kernel (Register_MEAN_REF).

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
- int16 (16x8 models): the same arithmetic on every measured path (zero points 0).
- An input with no elements gives NaN (float32) or 0 (integer types) everywhere.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast, _kernels_requantize, fixedpoint, requantize
from ..forms import Form
from . import OpContext, register

MEAN_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


@dataclass(frozen=True)
class MeanPlan:
    axes: tuple[int, ...] | None  # resolved axes, None when the axis tensor is not constant
    keep_dims: bool
    multiplier: int = 0  # quantized only: QuantizeMultiplier(input_scale / output_scale)
    shift: int = 0
    input_zero_point: int = 0
    output_zero_point: int = 0
    # the optimized 4-D MEAN's ((multiplier, shift, bias), channels of whole 16-channel blocks),
    # when the profile's form is one and the op is its case (MEAN over H, W of NHWC, keep_dims)
    optimized_4d: tuple | None = None
    # ... and the (outer, count, inner) of sum_rows8 when requantize.mean_optimized_4d_int32 takes it
    optimized_4d_rows: tuple | None = None
    # the reference 8-bit MEAN made at prepare where its shapes allow the kernels: (outer, count,
    # inner) of sum_rows8, the multiplier and shift with 1/count folded in, the form
    reference_8bit: tuple | None = None
    # XNNPACK's MEAN (Form.MEAN_FP32 / _FMA) prepared: ((outer, count, inner) of sum_rows8, its
    # scale and zero point)
    fp32_kernel: tuple | None = None


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


def _reduction_axes(ctx: OpContext, dtypes) -> tuple:
    """The checks MEAN, SUM, REDUCE_MAX and REDUCE_MIN share: (x_t, y_t, axes or None when the axis
    tensor is not constant, keep_dims)."""
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"needs 2 inputs (data, axis) and 1 output, has {len(ctx.op.inputs)} "
                       f"and {len(ctx.op.outputs)}")
    x_t, axis_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if x_t is None or axis_t is None:
        raise ctx.fail("the data and axis inputs are required")
    if axis_t.dtype != np.int32:
        raise ctx.fail(f"the axis tensor must be int32, not {axis_t.dtype.name}")
    if x_t.dtype not in dtypes:
        raise ctx.unsupported(f"{x_t.dtype.name} {ctx.op.kind} (supported: {', '.join(d.name for d in dtypes)})")
    if y_t.dtype != x_t.dtype:
        raise ctx.fail(f"input is {x_t.dtype.name} but output is {y_t.dtype.name}")
    keep_dims = bool(ctx.op.options.get("keep_dims", False))
    axes = None
    if axis_t.is_constant:
        axes = resolve_axes(ctx, axis_t.data, len(x_t.shape))
        _check_output_shape(ctx, axes, keep_dims)
    return x_t, y_t, axes, keep_dims


def _prepare_mean(ctx: OpContext) -> MeanPlan:
    x_t, y_t, axes, keep_dims = _reduction_axes(ctx, MEAN_DTYPES)
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
    form = ctx.profile.rounding(ctx.op.kind, x_t.dtype)
    optimized_4d = None
    if form in (Form.MEAN_OPTIMIZED_4D, Form.MEAN_OPTIMIZED_4D_SCALAR) and axes is not None and keep_dims \
            and len(x_t.shape) == 4 and sorted(axes) == [1, 2]:
        _, h, w, c = x_t.shape
        vector_channels = (c // 16) * 16 if form == Form.MEAN_OPTIMIZED_4D else 0
        optimized_4d = (requantize.mean_optimized_4d_params(h * w, in_scale, in_zp, out_scale, out_zp),
                        vector_channels)
    rows = _sum_rows8_geometry(x_t.dtype, tuple(x_t.shape), axes) if axes is not None else None
    optimized_4d_rows = rows if optimized_4d is not None and rows is not None and \
        requantize.mean_optimized_4d_kernel_takes(optimized_4d[0], rows[1]) else None
    fp32_kernel = None
    if form in (Form.MEAN_FP32, Form.MEAN_FP32_FMA) and rows is not None:
        fp32_kernel = (rows,) + requantize.mean_fp32_constants(rows[1], in_scale, in_zp, out_scale, out_zp)
    plan = MeanPlan(axes, keep_dims, multiplier, shift, in_zp, out_zp, optimized_4d,
                    optimized_4d_rows=optimized_4d_rows, fp32_kernel=fp32_kernel)
    if rows is not None and rows[1] > 0 and plan.shift >= -31:  # else invoke decides (or refuses)
        outer, count, inner = rows
        folded, folded_shift = _folded_multiplier(count, plan)
        reference_form = ctx.profile.rounding(ctx.op.kind)
        # (a multiplier or shift out of range stays unprepared: mean_quantized_from_sums refuses it)
        if folded <= fixedpoint.INT32_MAX and _requantize_kernel_takes(reference_form, folded_shift, count, plan):
            plan = dataclasses.replace(plan, reference_8bit=(outer, count, inner, folded, folded_shift,
                                                             reference_form))
    return plan


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
    # by count >= 1 (or times 1 / count <= 1) nothing overflows and a NaN or inf sum raises no
    # warning: np.errstate, microseconds a call, only for the empty reduction's 0 / 0
    quiet = np.errstate(invalid="ignore", divide="ignore") if count == 0 else contextlib.nullcontext()
    with quiet:
        mean = total * (np.float32(1.0) / np.float32(count)) if reciprocal else total / np.float32(count)
    return mean.astype(np.float32, copy=False)


def _sum_rows8_geometry(dtype, shape: tuple, axes: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(outer, count, inner) of _kernels_fast.sum_rows8 when it takes these sums: an 8-bit tensor
    whose reduced axes form one block of consecutive dimensions (MEAN over H, W of NHWC), and
    sums that cannot leave int32; else None."""
    reduced = sorted(axes)
    count = math.prod(shape[i] for i in reduced)
    if np.dtype(dtype).itemsize == 1 and reduced and reduced == list(range(reduced[0], reduced[-1] + 1)) \
            and count < 2**31 // 255:
        return math.prod(shape[:reduced[0]]), count, math.prod(shape[reduced[-1] + 1:])
    return None


def _sum_rows8(x: np.ndarray, rows: tuple[int, int, int]) -> np.ndarray:
    outer, count, inner = rows
    sums = np.empty(outer * inner, np.int32)
    _kernels_fast.sum_rows8(np.ascontiguousarray(x), outer, count, inner, sums)
    return sums


def raw_sums(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """(the int64 sums of the raw values of each output's inputs, kept axes in order; count).
    Integer sums are exact in any order: where _sum_rows8_geometry allows, in the kernel."""
    rows = _sum_rows8_geometry(x.dtype, x.shape, axes)
    if rows is not None:
        kept_shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return _sum_rows8(x, rows).astype(np.int64).reshape(kept_shape), rows[1]
    rows, count = rows_in_input_order(x, axes)
    return rows.astype(np.int64).sum(axis=-1), count


def _mean_quantized(ctx: OpContext, x: np.ndarray, axes: tuple[int, ...], plan: MeanPlan) -> np.ndarray:
    if plan.reference_8bit is not None and x.shape == tuple(ctx.input_tensor(0).shape):
        outer, count, inner, multiplier, shift, form = plan.reference_8bit  # made at prepare
        shifted = (_sum_rows8(x, (outer, count, inner)) - np.int64(plan.input_zero_point * count)).astype(np.int32)
        return _requantized_means(shifted, multiplier, shift, form, plan, x.dtype)
    sums, count = raw_sums(x, axes)
    return mean_quantized_from_sums(ctx, sums, count, plan, x.dtype)


def _folded_multiplier(count: int, plan: MeanPlan) -> tuple[int, int]:
    """The reference's multiplier and shift with 1/count folded in (as the reference folds it)."""
    scale_bits = min(count.bit_length() - 1, 32, 31 + plan.shift)
    return (plan.multiplier << scale_bits) // count, plan.shift - scale_bits


def _requantize_kernel_takes(form, shift: int, count: int, plan: MeanPlan) -> bool:
    """The Cython requantization gives the int64 one's bits: |MBQM(x)| <= |x| <= 510 * count here,
    so its int32 addition of the zero point cannot wrap."""
    return form.is_fixed_point and -31 <= shift <= 0 and count < 2**22 and abs(plan.input_zero_point) <= 255 \
        and abs(plan.output_zero_point) < 2**16


def _requantized_means(shifted: np.ndarray, multiplier: int, shift: int, form, plan: MeanPlan, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    out = np.empty(shifted.size, dtype)
    _kernels_requantize.requantize(np.ascontiguousarray(shifted, np.int32).reshape(1, -1),
                                   np.array([multiplier], np.int32), np.array([shift], np.int32),
                                   plan.output_zero_point, int(info.min), int(info.max), int(form),
                                   out.reshape(1, -1))
    return out.reshape(shifted.shape)


def mean_quantized_from_sums(ctx: OpContext, raw_sums: np.ndarray, count: int, plan: MeanPlan, dtype) -> np.ndarray:
    """The reference quantized MEAN from the raw sums of its inputs (one per output)."""
    total = fixedpoint.wrap_to_int32(raw_sums).astype(np.int64)
    multiplier, shift = _folded_multiplier(count, plan)
    if multiplier > fixedpoint.INT32_MAX:  # cannot happen: multiplier < 2**31 before the fold
        raise ctx.arithmetic_error(f"folded multiplier {multiplier} overflows int32")
    if shift > 31:
        raise ctx.arithmetic_error(
            f"input_scale / output_scale needs a left shift of {shift} bits; the reference's "
            f"int32 shift is undefined beyond 31")
    shifted = fixedpoint.wrap_to_int32(total - plan.input_zero_point * count)
    form = ctx.profile.rounding(ctx.op.kind)
    info = np.iinfo(dtype)
    if np.dtype(dtype).itemsize == 1 and _requantize_kernel_takes(form, shift, count, plan):
        return _requantized_means(shifted, multiplier, shift, form, plan, dtype)
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
        if plan.optimized_4d is not None and x.shape == tuple(ctx.input_tensor(0).shape):
            params, vector_channels = plan.optimized_4d  # made at prepare
            n, _, _, c = x.shape
            if plan.optimized_4d_rows is not None:
                total = _sum_rows8(x, plan.optimized_4d_rows).reshape(n, c)
                return requantize.mean_optimized_4d_int32(total, vector_channels, params, x.dtype).reshape(n, 1, 1, c)
            return requantize.mean_optimized_4d_from_sums(raw_sums(x, axes)[0], np.arange(c) < vector_channels,
                                                          params, x.dtype).reshape(n, 1, 1, c)
        return requantize.mean_optimized_4d(x, in_scale, zps[0], out_scale, zps[1],
                                            vector_blocks=form == Form.MEAN_OPTIMIZED_4D,
                                            total=raw_sums(x, axes)[0])
    fused = form == Form.MEAN_FP32_FMA
    if plan.fp32_kernel is not None and x.shape == tuple(ctx.input_tensor(0).shape):
        rows, s, zpf = plan.fp32_kernel  # made at prepare; mean() gives the result its shape
        return requantize.scaled_sums_fp32(_sum_rows8(x, rows), s, zpf, x.dtype, fused)
    total, count = raw_sums(x, axes)
    return requantize.mean_fp32(total, count, in_scale, zps[0], out_scale, zps[1], x.dtype, fused=fused)


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


# --- SUM, REDUCE_MAX, REDUCE_MIN ---------------------------------------------------------------
#
# LiteRT's reference kernels (reduce.cc EvalSum / EvalGeneric with kReference, reference/reduce.h):
# - float32, int32 (and 8-bit MAX/MIN) run one reducer over the input in row-major order. When the
#   axes cover every dimension, the single output starts at the first input and takes the others
#   in order; otherwise every output starts at the identity (0 for SUM, lowest() for MAX, max()
#   for MIN) and takes all of its inputs. SUM adds (int32 wraps), MAX keeps an input only when
#   `input > current`, MIN only when `input < current`: NaN never replaces the running value, a
#   tie keeps the earlier element (so -0 and +0 stay in input order), and a float32 MAX over -inf
#   alone is lowest() = -FLT_MAX when it started at the identity.
# - int8/uint8 MAX/MIN need equal input and output scale and zero point (LiteRT checks at Eval).
# - int8/uint8 SUM goes through QuantizedMeanOrSum without MEAN's 1/count fold:
#       out = clamp(MBQM(wrap32(sum - zp_in * count), m, e) + zp_out)
#   with (m, e) = QuantizeMultiplier(double(s_in) / double(s_out)). LiteRT 2.3.0's reference
#   kernel instantiates it for uint8_t whatever the tensor type: an int8 SUM reads its inputs'
#   bytes as uint8 (-1 is 255), clamps to [0, 255] and stores that byte (255 reads back as -1).
# - An input with no elements gives the identity everywhere (0 for quantized SUM).

REDUCE_KINDS = ("SUM", "REDUCE_MAX", "REDUCE_MIN")
REDUCE_DTYPES = (np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int8), np.dtype(np.uint8))
# The optimized and XNNPACK requantizations of an 8-bit SUM (refnet/requantize.py)
QUANTIZED_SUM_FORMS = (Form.SUM_FP32_ROUND, Form.SUM_FP32, Form.SUM_FP32_HALF_AWAY)


@dataclass(frozen=True)
class ReducePlan:
    axes: tuple[int, ...] | None  # resolved axes, None when the axis tensor is not constant
    keep_dims: bool
    form: int  # the profile's form for this op and dtype
    quantized_sum: bool = False
    multiplier: int = 0  # quantized SUM: QuantizeMultiplier(input_scale / output_scale)
    shift: int = 0
    input_scale: float = 0.0
    output_scale: float = 0.0
    input_zero_point: int = 0
    output_zero_point: int = 0


def _prepare_reduce(ctx: OpContext) -> ReducePlan:
    kind = ctx.op.kind
    x_t, y_t, axes, keep_dims = _reduction_axes(ctx, REDUCE_DTYPES)
    form = ctx.profile.rounding(kind, x_t.dtype)
    if kind == "SUM" and x_t.dtype in (np.int8, np.uint8) and not (form.is_fixed_point or form in QUANTIZED_SUM_FORMS):
        raise ctx.unsupported(f"form {form.name} for {x_t.dtype.name} SUM")
    if x_t.dtype not in (np.int8, np.uint8):
        return ReducePlan(axes, keep_dims, form)
    if x_t.quantization is None or y_t.quantization is None:
        raise ctx.fail(f"{x_t.dtype.name} {kind} needs quantized input and output tensors")
    if x_t.quantization.per_channel or y_t.quantization.per_channel:
        raise ctx.unsupported(f"per-channel quantized {kind}")
    in_scale, in_zp = x_t.quantization.scalar()
    out_scale, out_zp = y_t.quantization.scalar()
    if kind != "SUM":
        # LiteRT compares the stored float32 scales and the zero points exactly. (Its XNNPACK
        # delegate takes such a model and rescales; refnet refuses it as the kernels do.)
        if np.float32(in_scale) != np.float32(out_scale) or in_zp != out_zp:
            raise ctx.fail(f"quantized {kind} needs the input's scale and zero point on its output "
                           f"({in_scale:g}, {in_zp} vs {out_scale:g}, {out_zp}); LiteRT rejects it")
        return ReducePlan(axes, keep_dims, form)
    multiplier, shift = fixedpoint.quantize_multiplier(float(in_scale) / float(out_scale))
    if shift > 31 and form.is_fixed_point:
        raise ctx.arithmetic_error(
            f"input_scale / output_scale = {float(in_scale) / float(out_scale):g} needs a left shift of "
            f"{shift} bits; the reference's int32 shift is undefined beyond 31")
    return ReducePlan(axes, keep_dims, form, True, multiplier, shift, float(in_scale), float(out_scale),
                      in_zp, out_zp)


def _identity(kind: str, dtype) -> np.generic:
    if kind == "SUM":
        return np.dtype(dtype).type(0)
    info = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.iinfo(dtype)
    return np.dtype(dtype).type(info.min if kind == "REDUCE_MAX" else info.max)


def _reduce_rows_reference(kind: str, rows: np.ndarray, start_at_first: bool) -> np.ndarray:
    """Each row reduced in order; from its first element (start_at_first) or from the identity."""
    dtype = rows.dtype
    if kind == "SUM":
        with np.errstate(over="ignore", invalid="ignore"):
            if dtype.kind == "f":
                total = np.add.accumulate(rows, axis=-1, dtype=dtype)[..., -1]
                # From the identity, (0 + x0) + x1 ... equals x0 + x1 ... + 0: only an all -0.0
                # row tells them apart (+0.0 from the identity).
                return total if start_at_first else total + dtype.type(0)
            return fixedpoint.wrap_to_int32(rows.astype(np.int64).sum(axis=-1)).astype(dtype)
    if dtype.kind != "f":  # integers: no NaN, no signed zero; the extreme is the answer
        return rows.max(axis=-1) if kind == "REDUCE_MAX" else rows.min(axis=-1)
    # The running value changes only for a strictly better input, and NaN compares false: the
    # result is the first best non-NaN element, or the starting value when none beats it.
    key = _ordering_key(kind, rows)
    first_best = np.argmax(np.where(np.isnan(rows), -np.inf, key), axis=-1)[..., None]
    best = np.take_along_axis(rows, first_best, axis=-1)[..., 0]
    if start_at_first:  # the first element is the start (a NaN start is never replaced)
        first = rows[..., 0]
        return np.where(np.isnan(first), first, best)
    best_key = np.take_along_axis(key, first_best, axis=-1)[..., 0]
    identity = _identity(kind, dtype)
    with np.errstate(invalid="ignore"):
        return np.where(best_key > _ordering_key(kind, identity), best, identity).astype(dtype)


def _ordering_key(kind: str, values):
    """values for MAX, their negation for MIN: 'better' is always 'greater' (NaN stays NaN, and
    -0 and +0 stay equal); the elements themselves are always taken from the input."""
    return values if kind == "REDUCE_MAX" else -values


def _reduce_rows_from_first(kind: str, rows: np.ndarray) -> np.ndarray:
    """Form.REDUCE_FROM_FIRST: each row from its first element; MAX / MIN keep the running value
    only when `current > input` (`<`), so NaN and ties take the input. Hence a NaN last is the
    result; otherwise the result is the last best element after the last NaN."""
    if kind == "SUM" or rows.dtype.kind != "f":
        return _reduce_rows_reference(kind, rows, start_at_first=True)
    count = rows.shape[-1]
    position = np.arange(count)
    is_nan = np.isnan(rows)
    last_nan = np.where(is_nan, position, -1).max(axis=-1)
    after_last_nan = position > last_nan[..., None]
    key = np.where(after_last_nan, _ordering_key(kind, rows), -np.inf)
    last_best = count - 1 - np.argmax(key[..., ::-1], axis=-1)  # the last of equal best keys
    best = np.take_along_axis(rows, last_best[..., None], axis=-1)[..., 0]
    return np.where(last_nan == count - 1, rows[..., -1], best)


def _reduce_values(ctx: OpContext, x: np.ndarray, axes: tuple[int, ...], out_shape: tuple,
                   form: int) -> np.ndarray:
    kind = ctx.op.kind
    if x.size == 0:
        return np.full(out_shape, _identity(kind, x.dtype), x.dtype)
    rows, _ = rows_in_input_order(x, axes)
    if form == Form.REDUCE_FROM_FIRST:  # (an empty axis list: rows of one element, a copy)
        return _reduce_rows_from_first(kind, rows).reshape(out_shape)
    all_axes = len(axes) == x.ndim  # (a rank-0 input included: its one element is the result)
    return _reduce_rows_reference(kind, rows, all_axes).reshape(out_shape)


def _quantized_sum_optimized(ctx: OpContext, x: np.ndarray, axes: tuple[int, ...], plan: ReducePlan,
                             out_shape: tuple) -> np.ndarray:
    """Form.SUM_FP32_ROUND (requantize.sum_optimized_fp32) or XNNPACK's SUM_FP32 and its variants
    (requantize.sum_fp32); int8 read as int8."""
    if x.size == 0:  # LiteRT's optimized kernel leaves the output unwritten; refnet writes 0
        return np.zeros(out_shape, x.dtype)
    sums, count = raw_sums(x, axes)
    total = fixedpoint.wrap_to_int32(sums)
    if plan.form != Form.SUM_FP32_ROUND:
        return requantize.sum_fp32(total, count, plan.input_scale, plan.input_zero_point, plan.output_scale,
                                   plan.output_zero_point, x.dtype,
                                   half_away=plan.form == Form.SUM_FP32_HALF_AWAY).reshape(out_shape)
    return requantize.sum_optimized_fp32(total, count, plan.input_scale, plan.input_zero_point,
                                         plan.output_scale, plan.output_zero_point, x.dtype,
                                         ctx.profile.saturating_conversion).reshape(out_shape)


def _quantized_sum_reference(ctx: OpContext, x: np.ndarray, axes: tuple[int, ...], plan: ReducePlan,
                             out_shape: tuple) -> np.ndarray:
    if x.size == 0:
        return np.zeros(out_shape, x.dtype)
    as_bytes = x.view(np.uint8)  # the uint8_t instantiation, whatever the tensor type (see above)
    sums, count = raw_sums(as_bytes, axes)
    shifted = fixedpoint.wrap_to_int32(sums - plan.input_zero_point * count)
    scaled = fixedpoint.multiply_by_quantized_multiplier(shifted, plan.multiplier, plan.shift, plan.form)
    result = np.clip(scaled.astype(np.int64) + plan.output_zero_point, 0, 255).astype(np.uint8)
    return result.view(x.dtype).reshape(out_shape)


@register(*REDUCE_KINDS, prepare=_prepare_reduce)
def reduce_generic(ctx: OpContext, inputs: list) -> list:
    x, axis_values = inputs[0], inputs[1]
    plan: ReducePlan = ctx.params
    axes = plan.axes
    if axes is None:  # axis computed at run time
        axes = resolve_axes(ctx, axis_values, x.ndim)
        _check_output_shape(ctx, axes, plan.keep_dims)
    out_shape = tuple(ctx.output_tensor().shape)
    if plan.quantized_sum and not plan.form.is_fixed_point:
        return [_quantized_sum_optimized(ctx, x, axes, plan, out_shape)]
    if plan.quantized_sum:
        return [_quantized_sum_reference(ctx, x, axes, plan, out_shape)]
    return [_reduce_values(ctx, x, axes, out_shape, plan.form)]
