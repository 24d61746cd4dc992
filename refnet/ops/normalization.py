"""L2_NORMALIZATION along the last axis: float32, int8 and uint8.

Reference semantics (LiteRT BUILTIN_REF, l2norm.cc and reference/{,integer_ops/}l2normalization.h):
  float32, per row of the last axis (the optimized kernel computes the same, in the same order)
      s = 0f; for c in order: s += x[c] * x[c]      (float32, multiply then add)
      n = max(sqrtf(s), 1e-6f)                      (std::max: a NaN norm stays NaN)
      y[c] = x[c] / n
  int8/uint8: the output quantization is fixed (scale 1/128; zero point 128 for uint8, 0 for
      int8; LiteRT's Prepare rejects others, and so does refnet), no fused activation.
      d = x - zp_in;  acc = sum of d * d (int32, wrapping)
      (m, e) = inverse_sqrt_multiplier(acc)        (refnet/fixedpoint.py; e <= 0)
      uint8: y = clamp(128 + MBQM(128 * d, m, e), 0, 255)
      int8:  y = clamp(MBQM(d, m, e + 7), -128, 127)
  MBQM in the profile's fixed-point form (the reference's double rounding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import inverse_sqrt_multiplier, multiply_by_quantized_multiplier, wrap_to_int32
from . import OpContext, per_tensor_quantization, register

F32 = np.dtype(np.float32)
DTYPES = (F32, np.dtype(np.int8), np.dtype(np.uint8))
EPSILON = np.float32(1e-6)
OUTPUT_SCALE = 1.0 / 128
OUTPUT_ZERO_POINT = {np.dtype(np.uint8): 128, np.dtype(np.int8): 0}
INT8_OUTPUT_SHIFT = 7  # the int8 output is d / norm in Q0.7


@dataclass(frozen=True)
class QuantizedL2NormPlan:
    input_zero_point: int
    rounding: int


def _prepare(ctx: OpContext) -> QuantizedL2NormPlan | None:
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or ctx.input_tensor(0) is None:
        raise ctx.fail("L2_NORMALIZATION takes 1 input and 1 output")
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if x_t.dtype != y_t.dtype:
        raise ctx.fail(f"input {x_t.dtype.name} and output {y_t.dtype.name} differ")
    if tuple(x_t.shape) != tuple(y_t.shape):
        raise ctx.fail(f"input shape {list(x_t.shape)} and output shape {list(y_t.shape)} differ")
    if len(x_t.shape) < 1:
        raise ctx.fail("L2_NORMALIZATION needs an input of rank >= 1")
    if x_t.dtype not in DTYPES:
        raise ctx.unsupported(f"L2_NORMALIZATION on {x_t.dtype.name}")
    activation = ctx.op.options.get("fused_activation_function", "NONE")
    if activation != "NONE":
        raise ctx.fail(f"L2_NORMALIZATION with fused activation {activation} (LiteRT rejects it)")
    if x_t.dtype == F32:
        return None
    _, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    expected_zp = OUTPUT_ZERO_POINT[x_t.dtype]
    if float(np.float32(s_out)) != OUTPUT_SCALE or zp_out != expected_zp:
        raise ctx.fail(f"{x_t.dtype.name} L2_NORMALIZATION needs output scale 1/128 and zero point "
                       f"{expected_zp}, got {s_out!r} and {zp_out} (LiteRT rejects others)")
    rounding = ctx.profile.rounding("L2_NORMALIZATION", x_t.dtype)
    if not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {rounding.name} for L2_NORMALIZATION")
    return QuantizedL2NormPlan(zp_in, rounding)


def l2_normalize_float(x: np.ndarray) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1])
    squared = np.zeros(rows.shape[0], F32)
    with np.errstate(all="ignore"):
        for c in range(rows.shape[1]):  # in order, one float32 rounding per product and per sum
            squared = squared + rows[:, c] * rows[:, c]
        norm = np.sqrt(squared)
        norm = np.where(norm < EPSILON, EPSILON, norm)  # std::max(norm, eps)
        out = rows / norm[:, None]
    return out.astype(F32).reshape(x.shape)


def _l2_normalize_quantized(x: np.ndarray, plan: QuantizedL2NormPlan) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64) - plan.input_zero_point
    square_sum = wrap_to_int32(np.sum(rows * rows, axis=1)).astype(np.int64)
    multiplier, shift = inverse_sqrt_multiplier(square_sum)
    multiplier, shift = multiplier[:, None], shift[:, None]
    info = np.iinfo(x.dtype)
    if x.dtype == np.uint8:
        scaled = multiply_by_quantized_multiplier(128 * rows, multiplier, shift, plan.rounding)
        out = 128 + scaled.astype(np.int64)
    else:
        out = multiply_by_quantized_multiplier(rows, multiplier, shift + INT8_OUTPUT_SHIFT,
                                               plan.rounding).astype(np.int64)
    return np.clip(out, info.min, info.max).astype(x.dtype).reshape(x.shape)


@register("L2_NORMALIZATION", prepare=_prepare)
def l2_normalization(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    if x.size == 0:
        return [x.copy()]
    if ctx.params is None:
        return [l2_normalize_float(x)]
    return [_l2_normalize_quantized(x, ctx.params)]
