"""LEAKY_RELU (float32, int8, uint8, int16) and PRELU (float32, int8, uint8): ReLU with a slope on
the negative side, a constant in the options (LEAKY_RELU) or a tensor broadcast to the input (PRELU).

Reference semantics (LiteRT BUILTIN_REF, activations.cc, reference/leaky_relu.h and prelu.h):
  LEAKY_RELU, float32 (every path runs reference_ops::LeakyRelu)
      x > 0 ? x : x * alpha        (-0 gives -0 * alpha; NaN gives NaN * alpha: x's NaN)
  LEAKY_RELU, int8/uint8/int16
      d = x - zp_in;  out = clamp(zp_out + (d >= 0 ? MBQM(d, m_id, e_id) : a(d)))
      a(d) = MBQM(d, m_alpha, e_alpha), negated around the multiply when m_alpha < 0:
      -MBQM(d, -m_alpha, e_alpha) (the reference multiplies by |m| and flips the sign).
      m_id, e_id from double(float32(s_in / s_out)); m_alpha, e_alpha from
      double(float32(float32(s_in * alpha) / s_out)) (float32 C++ arithmetic, then widened).
      int16 needs zero points 0.
  PRELU, float32
      x >= 0 ? x : x * alpha       (-0 stays -0; NaN gives NaN * alpha); XNNPACK on an x86-64 CPU
      without AVX-512F: signbit(x) ? x * alpha : x (Form.PRELU_SIGN_SELECT)
  PRELU, int8/uint8 (input, alpha and output of one type)
      d = x - zp_in;  out = clamp(zp_out + (d >= 0 ? MBQM(d, m_1, e_1)
                                                  : MBQM(d * (alpha - zp_alpha), m_2, e_2)))
      m_1 from double(float32(s_in / s_out)), m_2 from double(float32(float32(s_in * s_alpha) / s_out)).
  Alpha broadcasts to the input's shape (NumPy rules); the output has the input's shape.
MBQM is MultiplyByQuantizedMultiplier in the profile's fixed-point form (refnet/fixedpoint.py).
Other paths (refnet/profile.py): LiteRT's optimized int16 LEAKY_RELU keeps the alpha multiplier's
sign (Form.LEAKY_RELU_SIGNED_ALPHA); XNNPACK's int8/uint8 LEAKY_RELU uses 8.8 multipliers
(Form.LEAKY_RELU_XNNPACK, refnet/requantize.py) when its delegate takes the op.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap_to_int32
from .. import _kernels_fast
from ..forms import Form
from ..profile import BLEND_KERNELS
from ..requantize import leaky_relu_xnnpack, leaky_relu_xnnpack_params
from . import OpContext, multiply_nan_first, per_tensor_quantization, register

F32 = np.dtype(np.float32)
LEAKY_RELU_DTYPES = (F32, np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))
PRELU_DTYPES = (F32, np.dtype(np.int8), np.dtype(np.uint8))


@dataclass(frozen=True)
class Requantization:
    multiplier: int
    shift: int


def _requantization(ctx: OpContext, real: np.float32, what: str) -> Requantization:
    if not np.isfinite(real):
        raise ctx.arithmetic_error(f"{what} multiplier {real} is not finite")
    multiplier, shift = quantize_multiplier(float(real))
    if shift > 31:
        raise ctx.arithmetic_error(f"{what} multiplier {float(real):g} needs a left shift of {shift} "
                                   f"(> 31), which the int32 arithmetic cannot express")
    return Requantization(multiplier, shift)


def _requantize(d: np.ndarray, r: Requantization, rounding) -> np.ndarray:
    return multiply_by_quantized_multiplier(d, r.multiplier, r.shift, rounding).astype(np.int64)


def _clamped(zero_point: int, scaled: np.ndarray, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    total = wrap_to_int32(scaled + zero_point).astype(np.int64)
    return np.clip(total, info.min, info.max).astype(dtype)


# --- LEAKY_RELU -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakyReluPlan:
    alpha: np.float32
    input_zero_point: int = 0
    output_zero_point: int = 0
    identity: Requantization | None = None  # None: float32
    slope: Requantization | None = None
    rounding: int = 0
    signed_alpha: bool = False  # the alpha multiplier used with its sign (else |m|, then negated)
    xnnpack_multipliers: tuple | None = None  # Form.LEAKY_RELU_XNNPACK, when the delegate takes the op


def _prepare_leaky_relu(ctx: OpContext) -> LeakyReluPlan:
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or ctx.input_tensor(0) is None:
        raise ctx.fail("LEAKY_RELU takes 1 input and 1 output")
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if x_t.dtype != y_t.dtype:
        raise ctx.fail(f"input {x_t.dtype.name} and output {y_t.dtype.name} differ")
    if tuple(x_t.shape) != tuple(y_t.shape):
        raise ctx.fail(f"input shape {list(x_t.shape)} and output shape {list(y_t.shape)} differ")
    if x_t.dtype not in LEAKY_RELU_DTYPES:
        raise ctx.unsupported(f"LEAKY_RELU on {x_t.dtype.name}")
    alpha = np.float32(ctx.op.options.get("alpha", 0.0))
    if x_t.dtype == F32:
        return LeakyReluPlan(alpha)
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    if x_t.dtype == np.int16 and (zp_in != 0 or zp_out != 0):
        raise ctx.fail("int16 LEAKY_RELU needs zero points 0 (LiteRT rejects others)")
    f32 = np.float32
    with np.errstate(all="ignore"):  # float32 C++ arithmetic, widened to double afterwards
        identity_real = f32(s_in) / f32(s_out)
        slope_real = f32(f32(s_in) * alpha) / f32(s_out)
    form = ctx.profile.rounding("LEAKY_RELU", x_t.dtype)
    xnnpack_multipliers = None
    if form == Form.LEAKY_RELU_XNNPACK:
        xnnpack_multipliers = leaky_relu_xnnpack_params(s_in, s_out, alpha)
    signed_alpha = form == Form.LEAKY_RELU_SIGNED_ALPHA
    # outside the delegate's bounds LiteRT's own kernel runs the op: the reference arithmetic
    rounding = Form.ROUNDING_DOUBLE if form in (Form.LEAKY_RELU_XNNPACK, Form.LEAKY_RELU_SIGNED_ALPHA) else form
    if not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {form.name} for LEAKY_RELU")
    return LeakyReluPlan(alpha, zp_in, zp_out, _requantization(ctx, identity_real, "identity"),
                         _requantization(ctx, slope_real, "alpha"), rounding, signed_alpha,
                         xnnpack_multipliers)


@register("LEAKY_RELU", prepare=_prepare_leaky_relu)
def leaky_relu(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan: LeakyReluPlan = ctx.params
    if plan.identity is None:
        negative_side = multiply_nan_first(x, plan.alpha)
        return [np.where(x > 0, x, negative_side).astype(F32)]
    if plan.xnnpack_multipliers is not None:
        return [leaky_relu_xnnpack(x, plan.input_zero_point, plan.output_zero_point,
                                   plan.xnnpack_multipliers, x.dtype)]
    d = x.astype(np.int64) - plan.input_zero_point
    identity = _requantize(d, plan.identity, plan.rounding)
    slope = plan.slope
    if slope.multiplier < 0 and not plan.signed_alpha:  # the reference multiplies by |m| and negates the result
        magnitude = Requantization(int(wrap_to_int32(-slope.multiplier)), slope.shift)
        negative_side = -_requantize(d, magnitude, plan.rounding)
    else:
        negative_side = _requantize(d, slope, plan.rounding)
    return [_clamped(plan.output_zero_point, np.where(d >= 0, identity, negative_side), x.dtype)]


# --- PRELU ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreluPlan:
    out_shape: tuple
    input_zero_point: int = 0
    alpha_zero_point: int = 0
    output_zero_point: int = 0
    positive: Requantization | None = None  # None: float32
    negative: Requantization | None = None
    rounding: int = 0
    sign_select: bool = False  # float32: Form.PRELU_SIGN_SELECT (XNNPACK's blend kernels)


def _xnnpack_blends() -> bool:
    """XNNPACK would pick its SSE4.1 / AVX kernels here: an x86-64 CPU without AVX-512F."""
    return platform.machine().lower() in ("x86_64", "amd64") and _kernels_fast.isa_supported() < 2


def _prepare_prelu(ctx: OpContext) -> PreluPlan:
    if len(ctx.op.inputs) != 2 or len(ctx.op.outputs) != 1:
        raise ctx.fail("PRELU takes 2 inputs (input, alpha) and 1 output")
    x_t, alpha_t, y_t = ctx.input_tensor(0), ctx.input_tensor(1), ctx.output_tensor()
    if x_t is None or alpha_t is None:
        raise ctx.fail("an input tensor is missing")
    if not x_t.dtype == alpha_t.dtype == y_t.dtype:
        if x_t.dtype == np.int16:
            raise ctx.unsupported("int16 PRELU")
        raise ctx.fail(f"input {x_t.dtype.name}, alpha {alpha_t.dtype.name} and output "
                       f"{y_t.dtype.name} differ")
    if x_t.dtype not in PRELU_DTYPES:
        raise ctx.unsupported(f"PRELU on {x_t.dtype.name}")
    try:
        out_shape = np.broadcast_shapes(tuple(x_t.shape), tuple(alpha_t.shape))
    except ValueError:
        raise ctx.fail(f"alpha shape {list(alpha_t.shape)} does not broadcast to the input's "
                       f"{list(x_t.shape)}") from None
    if out_shape != tuple(x_t.shape) or tuple(y_t.shape) != tuple(x_t.shape):
        raise ctx.fail(f"output shape {list(y_t.shape)} must be the input's {list(x_t.shape)} "
                       f"(alpha {list(alpha_t.shape)} broadcast to it)")
    if x_t.dtype == F32:
        # XNNPACK takes a PRELU whose alpha is constant (LiteRT 2.3.0, every broadcast measured)
        variant = BLEND_KERNELS if alpha_t.is_constant and _xnnpack_blends() else None
        return PreluPlan(out_shape, sign_select=ctx.profile.rounding("PRELU", F32, variant) == Form.PRELU_SIGN_SELECT)
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_alpha, zp_alpha = per_tensor_quantization(ctx, alpha_t, "alpha")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    f32 = np.float32
    with np.errstate(all="ignore"):  # float32 C++ arithmetic, widened to double afterwards
        positive_real = f32(s_in) / f32(s_out)
        negative_real = f32(f32(s_in) * f32(s_alpha)) / f32(s_out)
    rounding = ctx.profile.rounding("PRELU", x_t.dtype)
    if not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {rounding.name} for PRELU")
    return PreluPlan(out_shape, zp_in, zp_alpha, zp_out, _requantization(ctx, positive_real, "input"),
                     _requantization(ctx, negative_real, "alpha"), rounding)


@register("PRELU", prepare=_prepare_prelu)
def prelu(ctx: OpContext, inputs: list) -> list:
    x, alpha = inputs
    plan: PreluPlan = ctx.params
    alpha = np.broadcast_to(alpha, plan.out_shape)
    if plan.positive is None:
        negative_side = multiply_nan_first(x, alpha)
        if plan.sign_select:
            return [np.where(np.signbit(x), negative_side, x).astype(F32)]
        return [np.where(x >= 0, x, negative_side).astype(F32)]
    d = x.astype(np.int64) - plan.input_zero_point
    positive = _requantize(d, plan.positive, plan.rounding)
    # |d| <= 255 and |alpha - zp| <= 255: the int32 product is exact
    product = d * (alpha.astype(np.int64) - plan.alpha_zero_point)
    negative = _requantize(product, plan.negative, plan.rounding)
    return [_clamped(plan.output_zero_point, np.where(d >= 0, positive, negative), x.dtype)]
