"""SUB, DIV, FLOOR_DIV, MAXIMUM and MINIMUM on float32 (and int32 for SUB, FLOOR_DIV, MAXIMUM,
MINIMUM; MAXIMUM / MINIMUM also int8 / uint8 whose inputs share the output's quantization; int8 /
uint8 SUB is ADD's arithmetic, refnet/ops/elementwise.py), with
NumPy broadcasting up to rank 6, as LiteRT's reference kernels compute them:

  SUB        a - b, then the fused activation's clamp (float: to [lowest, max] even without one)
  DIV        a / b (IEEE float32 division), then the clamp; int8 / uint8: LiteRT's fixed-point
             quotient (_quantized_div; the optimized path and XNNPACK run the same kernel), a
             divisor equal to its zero point an OpExecutionError as LiteRT fails
  FLOOR_DIV  std::floor(double(a) / double(b)) narrowed to float32; int32: the quotient rounded toward -inf (a zero divisor,
             float32 or int32, fails in LiteRT, and in refnet as an OpExecutionError)
  MAXIMUM    a > b ? a : b     MINIMUM   a < b ? a : b   (ties, +-0 included, give b)
Values with NaN follow those C expressions; NaN payloads are not modelled. LiteRT's XNNPACK
delegate runs the float32 ones differently (subnormals flushed to zero, no clamp to +-FLT_MAX,
an approximate RSQRT): not modelled, as XNNPACK's float32 sums are not (README, "Profiles").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import fixedpoint
from . import OpContext, float_activation_range, per_tensor_quantization, register
from .elementwise import (ElementwisePlan, _broadcast_shape, checked_quantized_activation_range, clamp_like_cpp,
                          int_activation_range, prepare_elementwise, prepare_int16, run_elementwise)

F32, I32 = np.dtype(np.float32), np.dtype(np.int32)
DTYPES = {"SUB": (F32, I32, np.dtype(np.int8), np.dtype(np.uint8)),
          "DIV": (F32, np.dtype(np.int8), np.dtype(np.uint8)), "FLOOR_DIV": (F32, I32),
          "MAXIMUM": (F32, I32, np.dtype(np.int8), np.dtype(np.uint8)),
          "MINIMUM": (F32, I32, np.dtype(np.int8), np.dtype(np.uint8))}
WITH_ACTIVATION = ("SUB", "DIV")


@dataclass(frozen=True)
class BinaryPlan:
    out_shape: tuple
    act_range: tuple | None


@dataclass(frozen=True)
class QuantizedDivPlan:
    out_shape: tuple
    act_range: tuple
    zero_points: tuple  # input1, input2, output
    multiplier: int  # QuantizeMultiplier(float32(s1 / float32(s2 * s_out)))
    shift: int


def _prepare_quantized_div(ctx: OpContext, out_shape: tuple) -> QuantizedDivPlan:
    a_t, b_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    s1, zp1 = per_tensor_quantization(ctx, a_t, "input1")
    s2, zp2 = per_tensor_quantization(ctx, b_t, "input2")
    so, zpo = per_tensor_quantization(ctx, y_t, "output")
    f32 = np.float32
    with np.errstate(all="ignore"):  # div.cc divides the float scales in float32
        real = float(f32(f32(s1) / f32(f32(s2) * f32(so))))
    if not np.isfinite(real) or real <= 0:
        raise ctx.arithmetic_error(f"multiplier s1/(s2*s_out) = {real} (scales {s1:g}, {s2:g} -> {so:g}) "
                                   f"is not a finite positive number")
    multiplier, shift = fixedpoint.quantize_multiplier(real)
    return QuantizedDivPlan(out_shape, checked_quantized_activation_range(ctx, y_t), (zp1, zp2, zpo),
                            multiplier, shift)


def _quantized_div(ctx: OpContext, plan: QuantizedDivPlan, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LiteRT's reference DivElementwise, element by element (reference/div.h):
    the divisor's offset value made positive (both signs flipped), its reciprocal by GetReciprocal,
    the dividend normalised by its headroom, then one rescale whose right shift
    e = headroom + reciprocal bits - shift; e outside [0, 31] is measured
    (fixedpoint.rounding_divide_by_pot_out_of_range)."""
    zp1, zp2, zpo = plan.zero_points
    if np.any(b == zp2):  # CheckNonZero: every stored divisor, before any arithmetic
        raise ctx.arithmetic_error("division by zero: input2 holds its zero point (LiteRT fails here too)")
    dividend = np.broadcast_to(a.astype(np.int64) - zp1, plan.out_shape)
    divisor = np.broadcast_to(b.astype(np.int64) - zp2, plan.out_shape)
    negative = divisor < 0
    dividend = np.where(negative, -dividend, dividend)
    reciprocal, reciprocal_bits = fixedpoint.get_reciprocal(np.abs(divisor), 31)
    headroom = fixedpoint.count_leading_sign_bits_32(dividend)
    # |dividend| <= 255 and headroom is its count of redundant sign bits: the shift cannot wrap
    quotient = fixedpoint.saturating_rounding_doubling_high_mul(dividend << headroom, reciprocal)
    high = fixedpoint.saturating_rounding_doubling_high_mul(quotient, plan.multiplier).astype(np.int64)
    exponent = headroom + reciprocal_bits - plan.shift
    if exponent.size and (exponent.min() < -32 or exponent.max() > 63):
        raise ctx.arithmetic_error(
            f"the quotient's rescale shifts right by {int(exponent.min())} to {int(exponent.max())} bits: "
            f"undefined in C, and LiteRT's result is measured for -32 to 63 only (the scale ratio "
            f"s1/(s2*s_out) = {plan.multiplier / 2**31 * 2.0**plan.shift:g} is too far from 1)")
    defined = (exponent >= 0) & (exponent <= 31)
    scaled = np.where(defined,
                      fixedpoint.rounding_divide_by_pot(np.where(defined, high, 0), np.where(defined, exponent, 0)),
                      fixedpoint.rounding_divide_by_pot_out_of_range(np.where(defined, 0, high),
                                                                      np.where(defined, 32, exponent)))
    lo, hi = plan.act_range
    return np.clip(scaled.astype(np.int64) + zpo, lo, hi).astype(a.dtype)


def _prepare_binary(ctx: OpContext) -> BinaryPlan:
    kind = ctx.op.kind
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail(f"{kind} takes 2 inputs and 1 output, got {len(ctx.op.inputs)} and {len(ctx.op.outputs)}")
    a_t, b_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if a_t is None or b_t is None:
        raise ctx.fail("an input tensor is missing")
    if not a_t.dtype == b_t.dtype == y_t.dtype:
        raise ctx.fail(f"inputs {a_t.dtype.name}, {b_t.dtype.name} and output {y_t.dtype.name} differ")
    if kind == "SUB" and y_t.dtype == np.int16:  # the 16x8 SUB: elementwise.py's int16 arithmetic
        return prepare_int16(ctx, a_t, b_t, y_t, _broadcast_shape(ctx, a_t, b_t))
    if y_t.dtype not in DTYPES[kind]:
        raise ctx.unsupported(f"{kind} on {y_t.dtype.name} (refnet runs {', '.join(d.name for d in DTYPES[kind])})")
    if kind == "SUB" and y_t.dtype in (np.int8, np.uint8):  # ADD's arithmetic, input2 negated
        return prepare_elementwise(ctx)
    if kind == "DIV" and y_t.dtype in (np.int8, np.uint8):
        out_shape = _broadcast_shape(ctx, a_t, b_t)
        if tuple(y_t.shape) != out_shape:
            raise ctx.fail(f"output shape {list(y_t.shape)} is not the broadcast shape {list(out_shape)}")
        return _prepare_quantized_div(ctx, out_shape)
    if y_t.dtype in (np.int8, np.uint8):
        pairs = {t.quantization.scalar() if t.quantization else None for t in (a_t, b_t, y_t)}
        if len(pairs) != 1 or None in pairs:
            raise ctx.unsupported(f"quantized {kind} whose inputs and output are not quantized alike "
                                  f"(LiteRT compares the stored values)")
    out_shape = _broadcast_shape(ctx, a_t, b_t)
    if tuple(y_t.shape) != out_shape:
        raise ctx.fail(f"output shape {list(y_t.shape)} is not the broadcast shape {list(out_shape)}")
    act = None
    if kind in WITH_ACTIVATION:
        act = float_activation_range(ctx) if y_t.dtype == F32 else int_activation_range(ctx, y_t.dtype)
    return BinaryPlan(out_shape, act)


def _floor_div(ctx: OpContext, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.any(b == 0):  # float32 too: LiteRT's FLOOR_DIV checks every divisor first
        raise ctx.arithmetic_error("division by zero (LiteRT fails here too)")
    if a.dtype == I32:  # the double quotient is exact enough for int32: floor division
        return np.floor_divide(a, b)
    with np.errstate(all="ignore"):  # LiteRT divides in double, then floors and narrows
        return np.floor(a.astype(np.float64) / b.astype(np.float64)).astype(F32)


def _run_binary(ctx: OpContext, inputs: list) -> list:
    if isinstance(ctx.params, ElementwisePlan):  # 8-bit and int16 SUB: elementwise.py's arithmetic
        return run_elementwise(ctx, inputs)
    if isinstance(ctx.params, QuantizedDivPlan):
        return [_quantized_div(ctx, ctx.params, *inputs)]
    plan: BinaryPlan = ctx.params
    a, b = inputs
    kind = ctx.op.kind
    with np.errstate(all="ignore"):  # float overflow and int32 wrap-around, as in C
        if kind == "SUB":
            raw = np.subtract(a, b, dtype=a.dtype)
        elif kind == "DIV":
            raw = np.divide(a, b, dtype=a.dtype)
        elif kind == "FLOOR_DIV":
            raw = _floor_div(ctx, a, b)
        elif kind == "MAXIMUM":
            raw = np.where(a > b, a, b)
        else:
            raw = np.where(a < b, a, b)
    raw = np.asarray(raw, a.dtype)
    if plan.act_range is not None:
        raw = clamp_like_cpp(raw, *plan.act_range)
    return [np.broadcast_to(raw, plan.out_shape).copy()]


for _kind in DTYPES:
    register(_kind, prepare=_prepare_binary)(_run_binary)
