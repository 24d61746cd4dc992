"""QUANTIZE and DEQUANTIZE: float32 <-> int8/uint8/int16, requantization, float16 -> float32.

Reference semantics (LiteRT BUILTIN_REF, quantize.cc / dequantize.cc, reference/quantize.h,
requantize.h, dequantize.h):
  QUANTIZE float32 -> int8/uint8/int16 (per tensor, or per channel on the quantized dimension)
      q = clamp(int32(roundf(x / scale)) + zp): the division is a float32 division (not a
      multiply by 1/scale), roundf rounds halves away from zero.
      x86-64: when roundf(x / scale) is NaN or outside int32 (NaN, +-inf, huge x or a tiny
      scale) the conversion yields INT32_MIN (cvttss2si), and adding the zero point wraps at 32
      bits; refnet reproduces that, so NaN and +-inf give qmin when zp >= 0 and qmax when zp < 0.
      (The C++ is undefined there; an ARM build saturates instead.)
  QUANTIZE int8/uint8/int16 -> int8/uint8/int16 (requantize)
      q = clamp(MBQM(x - zp_in, m, e) + zp_out), m and e from double(s_in) / double(s_out);
      the multiplier may be above 1 (left shift, wrapping at 32 bits as the C++ int32 does).
      The int8 <-> uint8 "xor 0x80" fast path of the reference is the same function.
  Requantize on the other paths (the profile's entries; measured by single-op sweeps):
      8-bit -> 8-bit, (QUANTIZE, input dtype): LiteRT's optimized kernel is
      Form.ROUNDING_TIES_UP_ELEMENTS_16 (whole blocks of 16 flat elements round the final shift ties
      up, the tail as above); XNNPACK's convert is Form.QUANTIZE_VCVT, which its delegate takes only
      for int8 -> int8 / uint8 -> uint8 with 1/256 <= float32(s_in / s_out) <= 128; otherwise the
      (QUANTIZE, input dtype, "not delegated") entry runs. int16 outputs ((QUANTIZE, input dtype,
      "int16 output")) and int16 inputs take the reference code on every measured path.
  DEQUANTIZE int8/uint8/int16 -> float32
      per tensor: float32(double(scale) * (q - zp)); per channel: float32 scale[c] * (q - zp[c]).
      Both are the exact product rounded once to float32.
  DEQUANTIZE float16 -> float32: exact widening.
  DEQUANTIZE under Form.DEQUANTIZE_MUL_ADD_8 (LiteRT's optimized kernel, per-tensor int8/uint8):
      whole blocks of 8: float32(q) * float32(s) + float32(double(-zp) * s), rounded twice; tail as above.
      Form.DEQUANTIZE_FMA_8 (aarch64 builds): the same multiply-add fused, rounded once.
MBQM is the profile's MultiplyByQuantizedMultiplier (double rounding on the reference path).
A requantization multiplier that needs a left shift above 31 (s_in / s_out >= 2**31), where
LiteRT's int32 shift is undefined, raises OpExecutionError at allocate_tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, truncate_to_int32, wrap_to_int32
from .. import _kernels_fast, requantize
from ..forms import Form
from ..profile import NOT_DELEGATED, QUANTIZE_8BIT_TO_INT16
from . import OpContext, flushed_denormals, register, round_half_away

QUANTIZED_TYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))
# Requantizations LiteRT's Prepare accepts (input dtype -> output dtypes).
REQUANTIZE_TARGETS = {
    np.dtype(np.int8): QUANTIZED_TYPES,
    np.dtype(np.uint8): QUANTIZED_TYPES,
    np.dtype(np.int16): (np.dtype(np.int8), np.dtype(np.int16)),
}
INT32_MIN = -(2**31)


@dataclass
class QuantizePlan:
    mode: str  # "quantize", "requantize", "dequantize", "float16"
    scale: np.ndarray | None = None  # float32, broadcastable against the tensor
    zero_point: np.ndarray | None = None  # int64, broadcastable against the tensor
    input_zero_point: int = 0
    multiplier: tuple = (0, 0)
    rounding: int = Form.ROUNDING_DOUBLE
    per_channel: bool = False
    table: np.ndarray | None = None  # 8-bit -> 8-bit: the output of every input value (read as uint8)
    # Form.ROUNDING_TIES_UP_ELEMENTS_16: plan.table is the vector body's, tail_table the scalar tail's
    tail_table: np.ndarray | None = None
    fast: tuple | None = None  # float32 -> 8-bit: _kernels_fast.quantize_f's arguments


def _quantization(ctx: OpContext, t, role: str, allow_per_channel: bool):
    """(scale float32, zero point int64), shaped to broadcast against the tensor."""
    q = t.quantization
    if q is None:
        raise ctx.fail(f"{role} tensor {t.index} '{t.name}' is {t.dtype.name} but has no quantization")
    if q.per_channel and not allow_per_channel:
        raise ctx.unsupported(f"per-channel quantization of the {role} tensor")
    if not np.all(q.scale > 0):
        raise ctx.fail(f"{role} tensor {t.index} '{t.name}' has a scale <= 0")
    scale = q.scale.astype(np.float32)
    zp = q.zero_point.astype(np.int64)
    if q.per_channel:
        shape = [1] * len(t.shape)
        shape[q.axis] = scale.size
        return scale.reshape(shape), zp.reshape(shape), True
    return scale[:1].reshape(()), zp[:1].reshape(()), False


def _check_io(ctx: OpContext):
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or ctx.input_tensor(0) is None:
        raise ctx.fail(f"{ctx.op.kind} takes 1 input and 1 output")
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if tuple(x_t.shape) != tuple(y_t.shape):
        raise ctx.fail(f"input shape {list(x_t.shape)} and output shape {list(y_t.shape)} differ")
    return x_t, y_t


def _prepare_quantize(ctx: OpContext) -> QuantizePlan:
    x_t, y_t = _check_io(ctx)
    if y_t.dtype not in QUANTIZED_TYPES:
        raise ctx.unsupported(f"QUANTIZE to {y_t.dtype.name}")
    if x_t.dtype == np.float32:
        scale, zp, per_channel = _quantization(ctx, y_t, "output", allow_per_channel=True)
        if ctx.profile.flush_denormals:  # a subnormal scale reads as 0 in flush-to-zero mode
            scale = flushed_denormals(scale)
        # profile form (refnet/requantize.py): optimized/XNNPACK multiply by 1/scale, rint
        form = ctx.profile.rounding(ctx.op.kind, x_t.dtype)
        if y_t.dtype == np.int16:  # measured apart from the 8-bit outputs: the reference unless listed
            form = ctx.profile.exact_rounding(ctx.op.kind, x_t.dtype, "int16 output", Form.ROUNDING_DOUBLE)
        return QuantizePlan("quantize", scale=scale, zero_point=zp, per_channel=per_channel, rounding=form)
    if x_t.dtype not in REQUANTIZE_TARGETS or y_t.dtype not in REQUANTIZE_TARGETS[x_t.dtype]:
        raise ctx.unsupported(f"QUANTIZE from {x_t.dtype.name} to {y_t.dtype.name}")
    s_in, zp_in, _ = _quantization(ctx, x_t, "input", allow_per_channel=False)
    s_out, zp_out, _ = _quantization(ctx, y_t, "output", allow_per_channel=False)
    if x_t.dtype == y_t.dtype == np.int16 and (int(zp_in) != 0 or int(zp_out) != 0):
        raise ctx.fail("int16 -> int16 requantization needs zero points 0 (LiteRT rejects others)")
    eight_bit = (np.dtype(np.int8), np.dtype(np.uint8))
    if x_t.dtype in eight_bit and y_t.dtype in eight_bit:  # 8-bit -> 8-bit: the (QUANTIZE, dtype) entry
        rounding = ctx.profile.rounding(ctx.op.kind, x_t.dtype)
        if rounding == Form.QUANTIZE_VCVT:
            if x_t.dtype == y_t.dtype and requantize.quantize_vcvt_delegated(s_in, s_out):
                return QuantizePlan("vcvt", scale=(s_in, s_out), zero_point=zp_out, input_zero_point=int(zp_in),
                                    rounding=rounding)
            # left to LiteRT's own kernel: the profile's (QUANTIZE, dtype, "not delegated") entry
            rounding = ctx.profile.exact_rounding(ctx.op.kind, x_t.dtype, NOT_DELEGATED, Form.ROUNDING_DOUBLE)
    elif y_t.dtype == np.int16 and x_t.dtype in eight_bit:  # measured apart: the reference unless listed
        rejected = ctx.profile.undefined.get(QUANTIZE_8BIT_TO_INT16)
        if rejected:
            raise ctx.unsupported(f"{rejected}: {ctx.profile.name} has no output to reproduce")
        rounding = ctx.profile.exact_rounding(ctx.op.kind, x_t.dtype, "int16 output", Form.ROUNDING_DOUBLE)
    else:  # int16 input
        rounding = ctx.profile.rounding(ctx.op.kind, x_t.dtype)
    if not (rounding.is_fixed_point or rounding == Form.ROUNDING_TIES_UP_ELEMENTS_16):
        raise ctx.unsupported(f"form {rounding.name} for QUANTIZE from {x_t.dtype.name} to {y_t.dtype.name}")
    real = float(s_in) / float(s_out)  # double division of the float32 scales
    if not np.isfinite(real):
        raise ctx.arithmetic_error(f"requantization multiplier {real} is not finite")
    multiplier, shift = quantize_multiplier(real)
    if shift > 31:
        raise ctx.arithmetic_error(f"requantization multiplier {real:g} needs a left shift of {shift} "
                                   f"(> 31), which the int32 arithmetic cannot express")
    return QuantizePlan("requantize", zero_point=zp_out, input_zero_point=int(zp_in),
                        multiplier=(multiplier, shift), rounding=rounding)


def _prepare_quantize_fast(ctx: OpContext) -> QuantizePlan:
    """_prepare_quantize, plus what the fast paths need: for an 8-bit -> 8-bit requantization the
    output of every input value (plan.table, computed by quantize() itself); for a per-tensor
    float32 -> int8/uint8 quantization in a form _kernels_fast.quantize_f implements, its
    arguments (plan.fast)."""
    plan = _prepare_quantize(ctx)
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    eight_bit = (np.dtype(np.int8), np.dtype(np.uint8))
    if plan.mode in ("requantize", "vcvt") and x_t.dtype in eight_bit and y_t.dtype in eight_bit:
        every_value = np.arange(256, dtype=np.uint8).view(x_t.dtype)
        if plan.rounding == Form.ROUNDING_TIES_UP_ELEMENTS_16:  # by position: one table per part
            body = quantize(ctx, [every_value], replace(plan, rounding=Form.ROUNDING_DOUBLE_TIES_UP))[0]
            plan.tail_table = quantize(ctx, [every_value], replace(plan, rounding=Form.ROUNDING_DOUBLE))[0]
            plan.table = body
        else:
            plan.table = quantize(ctx, [every_value], plan)[0]
    elif plan.mode == "quantize" and not plan.per_channel and y_t.dtype in eight_bit:
        reciprocal = "QUANTIZE" in ctx.profile.float_reciprocal
        with np.errstate(all="ignore"):
            inv = np.float32(np.float32(1.0) / plan.scale)  # the forms' float32(1 / scale)
        if plan.rounding in (Form.ROUNDING_DOUBLE, Form.QUANTIZE_RECIPROCAL_RNE) and \
                abs(int(plan.zero_point)) <= 65536 - 255:
            plan.fast = (int(plan.rounding), float(plan.scale), float(inv), int(plan.zero_point), reciprocal,
                         ctx.profile.saturating_conversion)
    return plan


@register("QUANTIZE", prepare=_prepare_quantize_fast)
def quantize(ctx: OpContext, inputs: list, plan: QuantizePlan | None = None) -> list:
    plan: QuantizePlan = ctx.params if plan is None else plan
    x = inputs[0]
    dtype = ctx.output_tensor().dtype
    if plan.table is not None and x.dtype.itemsize == 1:  # an 8-bit requantization, tabulated
        out = np.empty(x.shape, dtype)
        _kernels_fast.lut8(plan.table, np.ascontiguousarray(x), out, ctx.num_threads)
        if plan.tail_table is not None:  # the scalar tail after the whole blocks of 16
            flat, body = out.reshape(-1), x.size // 16 * 16
            flat[body:] = plan.tail_table[x.reshape(-1)[body:].view(np.uint8)]
        return [out]
    if plan.fast is not None and x.dtype == np.float32:
        out = np.empty(x.shape, dtype)
        _kernels_fast.quantize_f(np.ascontiguousarray(x), out, *plan.fast, threads=ctx.num_threads)
        return [out]
    info = np.iinfo(dtype)
    if plan.mode == "quantize" and plan.rounding == Form.QUANTIZE_RECIPROCAL_RNE_8:
        if plan.per_channel:
            raise ctx.unsupported("per-channel float32 -> int16 QUANTIZE in the optimized kernel's form")
        return [requantize.quantize_reciprocal_rne_8(x, plan.scale, plan.zero_point, dtype)]
    if plan.mode == "quantize" and plan.rounding == Form.QUANTIZE_RECIPROCAL_RNE:
        return [requantize.quantize_reciprocal_rne(x, plan.scale, plan.zero_point, dtype)]
    if plan.mode == "quantize" and plan.rounding == Form.QUANTIZE_FLOAT64:
        return [requantize.quantize_float64(x, plan.scale, plan.zero_point, dtype).reshape(x.shape)]
    if plan.mode == "vcvt":
        s_in, s_out = plan.scale
        return [requantize.quantize_vcvt(x, s_in, plan.input_zero_point, s_out,
                                         int(plan.zero_point), dtype)]
    if plan.mode == "quantize":
        with np.errstate(all="ignore"):
            # x * float32(1 / scale): the compiler hoists the reciprocal of a loop-invariant scale
            # (per tensor); a per-channel scale stays a division
            if "QUANTIZE" in ctx.profile.float_reciprocal and not plan.per_channel:
                steps = round_half_away(np.asarray(x, np.float32) * (np.float32(1.0) / plan.scale))
            else:
                steps = round_half_away(np.asarray(x, np.float32) / plan.scale)
        # int32 conversion, then the int32 (wrapping) addition of the zero point.
        converted = truncate_to_int32(steps, ctx.profile.saturating_conversion)
        raw = wrap_to_int32(converted + plan.zero_point).astype(np.int64)
    elif plan.rounding == Form.ROUNDING_TIES_UP_ELEMENTS_16:
        body = quantize(ctx, [x], replace(plan, rounding=Form.ROUNDING_DOUBLE_TIES_UP, table=None))[0]
        tail = quantize(ctx, [x], replace(plan, rounding=Form.ROUNDING_DOUBLE, table=None))[0]
        in_body = (np.arange(x.size) < x.size // 16 * 16).reshape(x.shape)
        return [np.where(in_body, body, tail).astype(dtype)]
    else:
        multiplier, shift = plan.multiplier
        raw = multiply_by_quantized_multiplier(x.astype(np.int64) - plan.input_zero_point,
                                               multiplier, shift, plan.rounding).astype(np.int64)
        raw = raw + plan.zero_point
    return [np.clip(raw, info.min, info.max).astype(dtype).reshape(x.shape)]


def _prepare_dequantize(ctx: OpContext) -> QuantizePlan:
    x_t, y_t = _check_io(ctx)
    if y_t.dtype != np.float32:
        raise ctx.unsupported(f"DEQUANTIZE to {y_t.dtype.name}")
    if x_t.dtype == np.float16:
        return QuantizePlan("float16")
    if x_t.dtype not in QUANTIZED_TYPES:
        raise ctx.unsupported(f"DEQUANTIZE from {x_t.dtype.name}")
    q = x_t.quantization
    if q is None:
        raise ctx.fail(f"input tensor {x_t.index} '{x_t.name}' is {x_t.dtype.name} but has no quantization")
    if x_t.dtype == np.int16 and q.per_channel:
        raise ctx.unsupported("per-channel DEQUANTIZE of int16 (LiteRT rejects it too)")
    if x_t.dtype == np.int16 and int(q.zero_point[0]) != 0:
        raise ctx.fail("int16 DEQUANTIZE needs zero point 0 (LiteRT rejects others)")
    # A zero scale is harmless here (the result is 0), so it is not refused.
    scale = q.scale.astype(np.float32)
    if ctx.profile.flush_denormals:  # a subnormal scale reads as 0 in flush-to-zero mode
        scale = flushed_denormals(scale)
    zp = q.zero_point.astype(np.int64)
    if q.per_channel:
        shape = [1] * len(x_t.shape)
        shape[q.axis] = scale.size
        return QuantizePlan("dequantize", scale=scale.reshape(shape), zero_point=zp.reshape(shape),
                            per_channel=True)
    rounding = ctx.profile.rounding(ctx.op.kind, x_t.dtype) if x_t.dtype != np.int16 else Form.ROUNDING_DOUBLE
    return QuantizePlan("dequantize", scale=scale[:1].reshape(()), zero_point=zp[:1].reshape(()),
                        rounding=rounding)


def _dequantize_mul_add_blocks(x: np.ndarray, plan: QuantizePlan, exact: np.ndarray, fused: bool) -> np.ndarray:
    """Form.DEQUANTIZE_MUL_ADD_8 / _FMA_8 over the flat tensor: in whole blocks of 8, q * s + offset
    in float32 (rounded twice, or once when fused); the tail keeps the exact product."""
    from .. import _kernels_pointwise

    flat, out = x.reshape(-1), exact.reshape(-1).copy()
    blocks = flat.size // 8 * 8
    offset = np.float32(-float(plan.zero_point) * float(plan.scale))  # double product, narrowed
    q = np.ascontiguousarray(flat[:blocks].astype(np.float32))
    if fused:
        fused_out = np.empty(blocks, np.float32)
        _kernels_pointwise.fused_multiply_add_scalars(q, float(plan.scale), float(offset), fused_out)
        out[:blocks] = fused_out
    else:
        with np.errstate(over="ignore"):
            out[:blocks] = q * plan.scale + offset
    return out.reshape(x.shape)


@register("DEQUANTIZE", prepare=_prepare_dequantize)
def dequantize(ctx: OpContext, inputs: list) -> list:
    plan: QuantizePlan = ctx.params
    x = inputs[0]
    if plan.mode == "float16":
        return [x.astype(np.float32)]
    centered = x.astype(np.int64) - plan.zero_point  # |.| <= 65535: exact in float32 too
    with np.errstate(over="ignore"):
        if plan.per_channel:  # float32 scale times the integer converted to float32
            out = plan.scale * centered.astype(np.float32)
        else:  # double(scale) * (q - zp), then narrowed to float32
            out = (plan.scale.astype(np.float64) * centered.astype(np.float64)).astype(np.float32)
    out = np.asarray(out, np.float32).reshape(x.shape)
    if plan.rounding in (Form.DEQUANTIZE_MUL_ADD_8, Form.DEQUANTIZE_FMA_8) and not plan.per_channel:
        out = _dequantize_mul_add_blocks(x, plan, out, fused=plan.rounding == Form.DEQUANTIZE_FMA_8)
    return [out]
