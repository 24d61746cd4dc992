"""SOFTMAX over the last axis: float32, int8/uint8 input to int8/uint8/int16 output, int16 to int16.

Reference semantics (LiteRT BUILTIN_REF, activations.cc SoftmaxPrepare/SoftmaxEval and
reference/softmax.h):
  float32, per row:
      m = max of the row (std::max from the float lowest; NaN never wins a comparison)
      e_c = expf((x_c - m) * beta)      float32 subtraction then float32 product; libm's expf
      s = e_0 + e_1 + ...                float32, strictly left to right
      out_c = e_c / s                    float32 division
  int8/uint8, per row (gemmlowp fixed point):
      prepare: M = min(beta * s_in * 2**26, 2**31 - 1) in double (26 = 31 - 5 integer bits of
               the scaled difference), quantized to (multiplier, left shift >= 0);
               diff_min = -floor(31 * 2**26 / 2**left_shift)
      d_c = x_c - max                    (int32; elements with d_c < diff_min contribute 0)
      z_c = SRDHM(d_c * 2**left_shift, multiplier)           a Q5.26 value <= 0
      f_c = exp_on_negative_values(z_c)                      Q0.31
      sum = sum of RoundingDivideByPOT(f_c, 12)              Q12.19, int32
      reciprocal via GetReciprocal: headroom = clz(sum), bits_over_unit = 12 - headroom,
               scale = one_over_one_plus_x_for_x_in_0_1((sum << headroom) - 2**31)
      out_c = RoundingDivideByPOT(SRDHM(scale, f_c), bits_over_unit + 31 - output_bits)
              + output type min, clamped; elements below diff_min give the type min.
      The output is produced as if its scale were 1/2**output_bits and its zero point the type
      min, whatever the output tensor says for uint8/int16 (LiteRT only checks int8:
      zero point -128, scale 1/256 within 0.1%).

  int16 -> int16 (16x8 models; zero points 0), per row, with two 513-entry interpolated tables
      (fixedpoint.int16_lut_populate/_lookup): exp over [-10, 0] and 1 / (1 + x) over [0, 1]:
      prepare: (multiplier, shift) = QuantizeMultiplier(double(float32(s_in * beta)) / (10 / 65535))
      e_c = exp_lut(clamp(MBQM(x_c - max, multiplier, shift) + 32767))     Q0.15
      sum = sum of e_c (int32); h = clz(sum)
      r = one_over_one_plus_x_lut(clamp((((sum << (h - 1)) + 2**13) >> 14) - 3 * 2**15))
      out_c = clamp((e_c * r + 2**(30 - h)) >> (31 - h), 0, 32767)   (scale 1/32768 whatever
      the output tensor says)

Where LiteRT's reference aborts (TFLITE_CHECK), refnet does not:
  * Eval: TFLITE_CHECK(0 <= exponent && exponent <= 31) with exponent = bits_over_unit + 23
    for int8/uint8 outputs fails as soon as a row's Q12.19 sum of exponentials reaches 2**28,
    i.e. when the exps of a row add up to 512 or more: 512+ elements equal (or, after the
    beta * s_in scaling, indistinguishable from) the row maximum. Wide input scales make this
    common: at large s_in, diff_min is 0 or -1 and every logit that quantizes to the maximum
    contributes exactly 1. Refnet returns the value the arithmetic defines: the final
    RoundingDivideByPOT by an exponent >= 32 of a non-negative value below 2**31 is 0, so
    every element of such a row is the output type's minimum (probability 0). The sum is
    accumulated without int32 wrap-around, so rows with 4096+ such elements (where the
    reference's int32 sum would overflow) give the same answer.
    For int16 outputs the exponent stays in range until the int32 sum itself would overflow
    (a sum of 4096 or more); refnet raises OpExecutionError there.
  * Prepare: QuantizeMultiplierGreaterThanOne's CHECK(M > 1) fails when
    beta * s_in * 2**26 <= 1 (beta * s_in <= 2**-26, e.g. an input scale of 1e-9, or beta <= 0):
    refnet raises OpExecutionError at allocate_tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fixedpoint import (INT16_MAX, INT16_MIN, INT32_MAX, SCALED_DIFF_INTEGER_BITS, int16_lut_lookup,
                          int16_lut_populate, rdbpot_int64, srdhm_int64,
                          count_leading_zeros_32, exp_on_negative_values_q5_26,
                          one_over_one_plus_x_for_x_in_0_1, multiply_by_quantized_multiplier,
                          quantize_multiplier, round_half_away, wrap_to_int32)
from .. import _kernels_softmax
from ..forms import Form
from . import OpContext, register
from .activations import libm_expf

ACCUMULATION_INTEGER_BITS = 12  # the sum of exps is Q12.19
MAX_REAL_MULTIPLIER = float((1 << 31) - 1)  # double-rounding cap of beta * s_in * 2**26


@dataclass
class QuantizedSoftmaxPlan:
    input_multiplier: int
    input_left_shift: int
    diff_min: int
    output_bits: int
    output_min: int
    output_max: int
    by_distance: tuple = ()  # (kept uint8, exps, terms) of the distances 0..255 (quantized_softmax_plan)


# --- float32 ----------------------------------------------------------------------------------


def softmax_float(x: np.ndarray, beta: float, reciprocal: bool = False) -> np.ndarray:
    """reciprocal: e * float32(1 / sum) instead of e / sum (Profile.float_reciprocal); in the
    kernel (kernels/softmax.pyx softmax_f), whose definition is softmax_float_numpy (which also
    computes every row set with a NaN output)."""
    rows = np.ascontiguousarray(x, np.float32).reshape(-1, x.shape[-1]) if x.ndim else None
    if rows is None or rows.shape[1] == 0:
        return softmax_float_numpy(x, beta, reciprocal)
    out = np.empty(rows.shape, np.float32)
    if _kernels_softmax.softmax_f(rows, np.float32(beta), reciprocal, out):
        return softmax_float_numpy(x, beta, reciprocal)  # which NaN: see softmax_f
    return out.reshape(x.shape)


def softmax_float_numpy(x: np.ndarray, beta: float, reciprocal: bool = False) -> np.ndarray:
    """The float32 SOFTMAX in NumPy: the definition softmax_f is tested against."""
    rows = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    with np.errstate(all="ignore"):
        # std::max(max, x) from lowest(): x replaces the running max only when max < x, so NaN
        # never does and -inf never beats lowest().
        without_nan = np.where(np.isnan(rows), np.float32(-np.inf), rows)
        row_max = np.maximum(np.finfo(np.float32).min, without_nan.max(axis=1))
        exps = libm_expf((rows - row_max[:, None]) * np.float32(beta))
        # float32 running sum, left to right (np.add.accumulate is strictly sequential).
        sums = np.add.accumulate(exps, axis=1, dtype=np.float32)[:, -1]
        if reciprocal:
            out = exps * (np.float32(1.0) / sums)[:, None]
        else:
            out = exps / sums[:, None]
    return out.astype(np.float32).reshape(x.shape)


# --- int8/uint8 -------------------------------------------------------------------------------


def _exponentials(diff: np.ndarray, plan: QuantizedSoftmaxPlan):
    """Per element, from its distance to the row maximum (diff <= 0, int64): (kept, Q0.31 exp,
    Q12.19 term of the sum); elements below diff_min are not kept and add 0."""
    kept = diff >= plan.diff_min
    # diff * 2**shift fits int32 for every kept element (that is what diff_min guarantees).
    scaled = srdhm_int64(np.where(kept, diff, 0) << plan.input_left_shift, plan.input_multiplier)
    exps = exp_on_negative_values_q5_26(scaled)  # Q0.31
    terms = np.where(kept, rdbpot_int64(exps, ACCUMULATION_INTEGER_BITS), 0)  # Q12.19
    return kept, exps, terms


def _probabilities(kept: np.ndarray, exps: np.ndarray, sums: np.ndarray, plan: QuantizedSoftmaxPlan,
                   out_dtype, arithmetic_error) -> np.ndarray:
    """The outputs of rows (axis 0) whose sums of terms are `sums`, for the elements (axis 1)
    whose kept flags and exps are given."""
    out = np.empty(exps.shape, np.int64)
    fits = sums <= INT32_MAX
    if not np.all(fits) and plan.output_bits == 16:
        raise arithmetic_error(
            f"a row's sum of exponentials reaches {sums.max() / 2**19:g} >= 4096: beyond the "
            f"reference's int32 accumulator (int16 output)")
    headroom = count_leading_zeros_32(np.where(fits, sums, 1))
    bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom
    shifted_sum_minus_one = wrap_to_int32((np.where(fits, sums, 1) << headroom) - (1 << 31))
    reciprocal = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one.astype(np.int64))
    exponent = bits_over_unit + 31 - plan.output_bits
    # LiteRT aborts where exponent > 31; the rounding shift of a value below 2**31 by 32 or more
    # is 0 (probability 0), and so is every row whose int32 sum would have overflowed.
    in_range = fits & (exponent <= 31)
    product = srdhm_int64(reciprocal[:, None], exps)
    for e in np.unique(exponent[in_range]):
        selected = in_range & (exponent == e)
        out[selected] = rdbpot_int64(product[selected], int(e))
    out[~in_range] = 0
    out = np.where(kept, out + plan.output_min, plan.output_min)
    return np.clip(out, plan.output_min, plan.output_max).astype(out_dtype)


def softmax_quantized(x: np.ndarray, plan: QuantizedSoftmaxPlan, out_dtype,
                      arithmetic_error) -> np.ndarray:
    """Element by element (the definition; softmax_quantized_kernel is what the op runs)."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    kept, exps, terms = _exponentials(rows - rows.max(axis=1, keepdims=True), plan)
    sums = terms.sum(axis=1)  # int64: never wraps (>= 2**19 since the max contributes 1.0)
    return _probabilities(kept, exps, sums, plan, out_dtype, arithmetic_error).reshape(x.shape)


DISTANCES = -np.arange(256, dtype=np.int64)  # an 8-bit value's distance below its row's maximum


def softmax_quantized_kernel(x: np.ndarray, plan: QuantizedSoftmaxPlan, out_dtype,
                             arithmetic_error) -> np.ndarray:
    """softmax_quantized for 8-bit inputs, in kernels/softmax.pyx: every per-element quantity
    depends only on the element's distance below its row's maximum (0..255), so the kernel reads
    the plan's exponentials of the 256 distances."""
    kept, exps, terms = plan.by_distance
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty(rows.shape, out_dtype)
    worst = _kernels_softmax.softmax_q8(rows, exps, terms, kept, plan.output_bits,
                                        plan.output_min, plan.output_max, out)
    if worst:
        raise arithmetic_error(
            f"a row's sum of exponentials reaches {worst / 2**19:g} >= 4096: beyond the "
            f"reference's int32 accumulator (int16 output)")
    return out.reshape(x.shape)


# --- the op -----------------------------------------------------------------------------------


def softmax_beta(ctx: OpContext) -> float:
    """beta as LiteRT reads it: a float32, 0 when the model has no SoftmaxOptions."""
    return float(np.float32(ctx.op.options.get("beta", 0.0)))


def _prepare_softmax(ctx: OpContext):
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or ctx.input_tensor(0) is None:
        raise ctx.fail("SOFTMAX takes 1 input and 1 output")
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if len(x_t.shape) < 1:
        raise ctx.fail("SOFTMAX needs an input of rank >= 1 (LiteRT rejects scalars)")
    if tuple(x_t.shape) != tuple(y_t.shape):
        raise ctx.fail(f"input shape {list(x_t.shape)} and output shape {list(y_t.shape)} differ")
    beta = softmax_beta(ctx)
    if x_t.dtype == np.float32:
        if y_t.dtype != np.float32:
            raise ctx.unsupported(f"float32 SOFTMAX to {y_t.dtype.name}")
        return None
    if x_t.dtype == y_t.dtype == np.int16:
        return _prepare_int16(ctx, x_t, y_t, beta)
    if x_t.dtype not in (np.int8, np.uint8) or y_t.dtype not in (x_t.dtype, np.dtype(np.int16)):
        raise ctx.unsupported(f"SOFTMAX from {x_t.dtype.name} to {y_t.dtype.name}")
    if x_t.quantization is None or x_t.quantization.per_channel:
        raise ctx.fail(f"input tensor {x_t.index} '{x_t.name}' needs per-tensor quantization")
    input_scale = x_t.quantization.scalar()[0]
    if y_t.dtype == np.int8:
        q = y_t.quantization
        if q is None or q.per_channel or q.scalar()[1] != -128 or \
                abs(q.scalar()[0] - 1 / 256) > 0.001 / 256:
            raise ctx.fail("int8 SOFTMAX output needs zero point -128 and scale 1/256 (LiteRT "
                           "rejects others)")
    form = ctx.profile.rounding("SOFTMAX", x_t.dtype)
    if form in TABLE_FORMS and y_t.dtype == x_t.dtype:  # the optimized kernels' tables
        if y_t.quantization is None:
            raise ctx.fail(f"output tensor {y_t.index} '{y_t.name}' needs a quantization")
        out_scale, out_zp = y_t.quantization.scalar()
        make_table, _ = TABLE_FORMS[form]
        return TableSoftmaxPlan(form, make_table(input_scale, beta), np.float32(out_scale), int(out_zp))
    if form != Form.ROUNDING_DOUBLE and form not in TABLE_FORMS:  # int16 outputs: the reference
        raise ctx.unsupported(f"form {form.name} for SOFTMAX")
    # double(beta) * double(s_in) * 2**26, capped below 2**31.
    real = min(beta * float(np.float32(input_scale)) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               MAX_REAL_MULTIPLIER)
    if not real > 1.0:
        raise ctx.arithmetic_error(
            f"beta * input_scale * 2**26 = {real:g} is not above 1 (beta {beta:g}, input scale "
            f"{input_scale:g}); LiteRT's reference SOFTMAX aborts on this model")
    return quantized_softmax_plan(*quantize_multiplier(real), y_t.dtype)


def quantized_softmax_plan(multiplier: int, left_shift: int, out_dtype) -> QuantizedSoftmaxPlan:
    """The 8-bit-input plan from the quantized beta * s_in * 2**26: diff_min, the output range and
    the exponentials of the 256 distances."""
    radius = (((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS))
              / (1 << left_shift))
    info = np.iinfo(out_dtype)
    plan = QuantizedSoftmaxPlan(input_multiplier=multiplier, input_left_shift=left_shift,
                                diff_min=-int(np.floor(radius)), output_bits=info.bits,
                                output_min=int(info.min), output_max=int(info.max))
    kept, exps, terms = _exponentials(DISTANCES, plan)
    plan.by_distance = (kept.astype(np.uint8), np.ascontiguousarray(exps, np.int64),
                        np.ascontiguousarray(terms, np.int64))
    return plan


@dataclass(frozen=True)
class Int16SoftmaxPlan:
    input_multiplier: int
    input_shift: int
    rounding: Form
    exp_table: np.ndarray  # int16[513]: exp over [-10, 0]
    reciprocal_table: np.ndarray  # int16[513]: 1 / (1 + x) over [0, 1]


INT16_RANGE = 65535  # int16 max - min: the tables' input steps
EXP_TABLE_RADIUS = 10.0  # exp(-10) is taken as insignificant to the sum


def _prepare_int16(ctx: OpContext, x_t, y_t, beta: float) -> Int16SoftmaxPlan:
    for t, role in ((x_t, "input"), (y_t, "output")):
        if t.quantization is None or t.quantization.per_channel or t.quantization.scalar()[1] != 0:
            raise ctx.fail(f"int16 SOFTMAX needs a per-tensor {role} quantization with zero point 0 "
                           f"(LiteRT rejects others)")
    rounding = ctx.profile.rounding("SOFTMAX", "int16")
    if not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {rounding.name} for int16 SOFTMAX")
    # float32 * float32 in the C++, then a double division
    with np.errstate(all="ignore"):
        scale_beta = float(np.float32(np.float32(x_t.quantization.scalar()[0]) * np.float32(beta)))
    real = scale_beta / (EXP_TABLE_RADIUS / INT16_RANGE)
    if not (np.isfinite(real) and real > 0):
        raise ctx.arithmetic_error(f"input scale * beta / (10 / 65535) = {real!r} is not a positive number")
    multiplier, shift = quantize_multiplier(real)
    if shift > 31:
        raise ctx.arithmetic_error(f"input scale * beta / (10 / 65535) = {real:g} needs a left shift of {shift}")
    exp_table = int16_lut_populate(math.exp, EXP_TABLE_RADIUS / INT16_RANGE, INT16_MAX, 2.0 / INT16_RANGE, 0)
    reciprocal_table = int16_lut_populate(lambda v: 1.0 / (1.0 + v), 1.0 / INT16_RANGE, INT16_MIN,
                                          2.0 / INT16_RANGE, 0)
    return Int16SoftmaxPlan(multiplier, shift, rounding, exp_table, reciprocal_table)


def softmax_int16(x: np.ndarray, plan: Int16SoftmaxPlan) -> np.ndarray:
    """int16 -> int16 SOFTMAX over the last axis (see the module docstring)."""
    rows = x.astype(np.int64).reshape(-1, x.shape[-1])
    diff = rows - rows.max(axis=-1, keepdims=True)  # <= 0, >= -65535
    scaled = multiply_by_quantized_multiplier(diff, plan.input_multiplier, plan.input_shift, plan.rounding)
    centred = np.clip(scaled.astype(np.int64) + INT16_MAX, INT16_MIN, INT16_MAX)
    exps = int16_lut_lookup(centred, plan.exp_table).astype(np.int64)  # Q0.15
    total = wrap_to_int32(exps.sum(axis=-1, keepdims=True)).astype(np.int64)  # Q16.15
    if (total <= 0).any():  # the clz-based reciprocal below is defined for positive sums
        raise ValueError("int16 SOFTMAX: a row's sum of exponentials is not positive")
    headroom_plus_one = count_leading_zeros_32(total).astype(np.int64)
    shifted_sum = ((total << (headroom_plus_one - 1)) + (1 << 13)) >> 14
    centred_sum = np.clip(shifted_sum - ((1 << 15) + (1 << 16)), INT16_MIN, INT16_MAX)
    reciprocal = int16_lut_lookup(centred_sum, plan.reciprocal_table).astype(np.int64)  # Q0.15
    right_shift = 31 - headroom_plus_one  # >= 1: a positive int32 sum has a leading zero
    result = (exps * reciprocal + (np.int64(1) << (right_shift - 1))) >> right_shift
    return np.clip(result, 0, INT16_MAX).astype(np.int16).reshape(x.shape)


@dataclass(frozen=True)
class TableSoftmaxPlan:
    """An optimized kernel's SOFTMAX (TABLE_FORMS): its 256-entry table and the output quantization."""

    form: Form
    table: np.ndarray  # SOFTMAX_UINT16_LUT: int64, entry v for v steps below the max + 255;
    # SOFTMAX_FLOAT_TABLE: float32, entry d for d steps below the max
    output_scale: np.float32
    output_zero_point: int


def uint16_exp_table(input_scale: float, beta: float) -> np.ndarray:
    """Form.SOFTMAX_UINT16_LUT's table: for v in 0..255, min(65535, (int)(float32(expf(x) * 65535)
    + 0.5)) with x = float32(float32(s_in * beta) * (v - 255)); the + 0.5 is a double addition."""
    scale = np.float32(np.float32(input_scale) * np.float32(beta))
    x = (scale * (np.arange(256) - 255).astype(np.float32)).astype(np.float32)
    with np.errstate(over="ignore"):
        scaled = (libm_expf(x) * np.float32(65535)).astype(np.float32)
    return np.minimum(65535, np.trunc(scaled.astype(np.float64) + 0.5)).astype(np.int64)


def softmax_uint16_lut(x: np.ndarray, plan: TableSoftmaxPlan) -> np.ndarray:
    """Form.SOFTMAX_UINT16_LUT per row (last axis): each value's table entry, indexed by its distance
    from the row's maximum (int8 read as uint8 after flipping the sign bit); their exact int32 sum;
    inv = float32(1 / float32(float32(sum) * s_out)); out = clamp(MBQM(entry, QuantizeMultiplier(inv))
    + zp). Entries are non-negative, so the vector body's ties-up rounding equals the scalar tail's."""
    info = np.iinfo(x.dtype)
    as_uint8 = x.astype(np.int64) - int(info.min)  # int8 ^ 0x80, uint8 unchanged
    rows = as_uint8.reshape(-1, x.shape[-1])
    out = np.empty(rows.shape, np.int64)
    for r, row in enumerate(rows):
        entries = plan.table[row + (255 - row.max())]
        total = int(entries.sum())  # at most 65535 per entry: the reference's int32 sum
        inv = np.float32(np.float32(1.0) / np.float32(np.float32(total) * plan.output_scale))
        multiplier, shift = quantize_multiplier(float(inv))
        scaled = multiply_by_quantized_multiplier(entries, multiplier, shift, Form.ROUNDING_DOUBLE)
        out[r] = np.clip(scaled.astype(np.int64) + plan.output_zero_point, info.min, info.max)
    return out.reshape(x.shape).astype(x.dtype)


def float_exp_table(input_scale: float, beta: float) -> np.ndarray:
    """Form.SOFTMAX_FLOAT_TABLE's table: entry d = expf(float32(-s_in * beta) * float32(d)), d in 0..255."""
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    return libm_expf((scale * np.arange(256, dtype=np.float32)).astype(np.float32))


def softmax_float_table(x: np.ndarray, plan: TableSoftmaxPlan) -> np.ndarray:
    """Form.SOFTMAX_FLOAT_TABLE per row (last axis): the entries of the distances from the row's
    maximum; their float32 sum, left to right; inv = float32(1 / float32(sum * s_out)); each output
    p = float32(entry * inv) rounded as the output type's: uint8 (int)(p + 0.5f), int8 round half
    away from zero; + zero point, clamped."""
    info = np.iinfo(x.dtype)
    rows = x.astype(np.int64).reshape(-1, x.shape[-1])
    out = np.empty(rows.shape, np.int64)
    for r, row in enumerate(rows):
        entries = plan.table[row.max() - row]
        total = np.add.accumulate(entries, dtype=np.float32)[-1]  # float32, strictly in order
        inv = np.float32(np.float32(1.0) / np.float32(total * plan.output_scale))
        p = (entries * inv).astype(np.float32)
        if x.dtype == np.uint8:
            q = np.trunc((p + np.float32(0.5)).astype(np.float32))
        else:
            q = round_half_away(p)
        out[r] = np.clip(q.astype(np.int64) + plan.output_zero_point, info.min, info.max)
    return out.reshape(x.shape).astype(x.dtype)


# form -> (its table from (input scale, beta), its kernel)
TABLE_FORMS = {Form.SOFTMAX_UINT16_LUT: (uint16_exp_table, softmax_uint16_lut),
               Form.SOFTMAX_FLOAT_TABLE: (float_exp_table, softmax_float_table)}


@register("SOFTMAX", prepare=_prepare_softmax)
def softmax(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan = ctx.params
    if x.size == 0:
        return [np.empty(x.shape, ctx.output_tensor().dtype)]
    if plan is None:
        return [softmax_float(x, softmax_beta(ctx), "SOFTMAX" in ctx.profile.float_reciprocal)]
    if isinstance(plan, Int16SoftmaxPlan):
        return [softmax_int16(x, plan)]
    if isinstance(plan, TableSoftmaxPlan):
        return [TABLE_FORMS[plan.form][1](x, plan)]
    return [softmax_quantized_kernel(x, plan, ctx.output_tensor().dtype, ctx.arithmetic_error)]
