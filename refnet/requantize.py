"""Requantization: every arithmetic form that turns exact integers into an 8-bit output.

refnet/forms.py numbers and names the forms; this module is their home in Python:
- the conv family's final requantization (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED):
  QuantizedOutput, how its multipliers are derived (quantized_output_params), and
  requantize_to, the one dispatcher over every form (the fixed-point ones run in the Cython
  kernel, whose scalar definitions are kernels/fixedpoint.pxd; the float64 and fp32 forms here);
- the forms where LiteRT's optimized kernels and XNNPACK depart from the reference kernels, as
  measured by tools/measure_profiles.py: fp32 requantization (conv family, MUL), MEAN, QUANTIZE
  and ADD as those paths compute them.

All float32 arithmetic is done in NumPy float32 (one rounding per operation, no FMA), exactly as
the C code's float expressions evaluate on x86-64 (FLT_EVAL_METHOD 0).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import _kernels_requantize, fixedpoint
from .forms import Form

f32 = np.float32

__all__ = ["QuantizedOutput", "quantized_output_params", "output_multipliers", "requantize_to", "requantize_16x8",
           "requantize_float64", "requantize_rndnu", "fp32_scale", "requantize_fp32", "rint_scaled_fp32", "mean_optimized_4d",
           "mean_fp32", "sum_optimized_fp32", "sum_fp32",
           "quantize_reciprocal_rne", "quantize_float64",
           "quantize_vcvt", "add_xnnpack_params", "add_xnnpack"]


# ------------------------------------------------------------------------------------------
# The conv family's final requantization


@dataclass
class QuantizedOutput:
    """Everything needed to turn int32 accumulators (channels last) into the output type."""

    multiplier: np.ndarray  # int32 per output channel (or length 1)
    shift: np.ndarray  # int32, > 0 means left shift
    zero_point: int
    qmin: int
    qmax: int
    rounding: int  # a Form
    # (x_scale, per-channel w_scales, y_scale) as float32, for the forms computed from the scales
    # themselves (XNNPACK's fp32 requantization).
    scales: tuple | None = None
    # double(s_x) * double(s_w[c]) / double(s_y) per channel (the float64 form).
    effective_scale: np.ndarray | None = None

    def fp32_scales(self, channels: int) -> np.ndarray:
        """The float32-scale forms' per-channel scale, float32(float32(s_x * s_w[c]) / s_y)."""
        if self.scales is None:
            raise ValueError("the float32-scale requantization forms need the tensors' scales (q.scales)")
        x_scale, w_scales, y_scale = self.scales
        return fp32_scale(x_scale, np.broadcast_to(np.asarray(w_scales, f32), (channels,)), y_scale)

    def channel(self, c: int) -> "QuantizedOutput":
        """The parameters of output channel c alone (per-tensor values are shared)."""
        def pick(v):
            v = np.asarray(v)
            return v[c:c + 1] if v.size > 1 else v.reshape(-1)[:1]
        scales = None if self.scales is None else (self.scales[0], pick(self.scales[1]), self.scales[2])
        eff = None if self.effective_scale is None else pick(self.effective_scale)
        return dataclasses.replace(self, multiplier=pick(self.multiplier), shift=pick(self.shift),
                                   scales=scales, effective_scale=eff)


def quantized_output_params(ctx, input_t, filter_t, output_t, channels: int, channel_axis: int,
                            float_product_first: bool) -> QuantizedOutput:
    """Per-channel multipliers as LiteRT derives them for a weighted op.

    The fixed-point multiplier comes from double(s_x) * double(s_w[c]) / double(s_y), or, with
    float_product_first (legacy uint8 conv, per-tensor FC: GetQuantizedConvolutionMultipler),
    from double(float32(s_x * s_w)) / double(s_y).
    """
    from .ops import quantized_activation_range

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
    effective = float(f32(x_scale)) * scales.astype(np.float64) / float(f32(y_scale))
    if float_product_first:
        real = [float(f32(x_scale) * f32(s)) / float(f32(y_scale)) for s in scales]
    else:
        real = effective
    mult, shift = output_multipliers(ctx, real)
    qmin, qmax = quantized_activation_range(ctx, output_t)
    single_pixel = int(np.prod(output_t.shape[:-1], dtype=np.int64)) == 1 if output_t.shape else False
    form = ctx.profile.rounding(ctx.op.kind, input_t.dtype, "single pixel" if single_pixel else None)
    return QuantizedOutput(np.array(mult, np.int32), np.array(shift, np.int32), y_zp, qmin, qmax, form,
                           scales=(f32(x_scale), np.asarray(scales, f32), f32(y_scale)),
                           effective_scale=effective)


def output_multipliers(ctx, reals) -> tuple[tuple, tuple]:
    """QuantizeMultiplier of each real output multiplier, refused (typed) when the scales make it
    non-finite or its shift leaves the range the fixed-point requantization is defined on."""
    mult, shift = [], []
    for r in reals:
        if not np.isfinite(r) or r < 0:
            raise ctx.arithmetic_error(f"output multiplier {r!r} (input scale x filter scale / "
                                       f"output scale) is not a finite non-negative number")
        m, s = fixedpoint.quantize_multiplier(float(r))
        if not -31 <= s <= 31:
            raise ctx.arithmetic_error(f"output multiplier {r!r} needs a shift of {s}, outside "
                                       f"[-31, 31]: the quantization scales are out of range")
        mult.append(m)
        shift.append(s)
    return tuple(mult), tuple(shift)


def requantize_to(acc: np.ndarray, q: QuantizedOutput, dtype) -> np.ndarray:
    """int32 accumulators (channels last) -> int8/uint8 output of the same shape, in q's form."""
    dtype = np.dtype(dtype)
    if q.rounding in Form.__members__.values() and Form(q.rounding).is_fixed_point:
        out = np.empty(acc.shape, dtype)
        channels = acc.shape[-1]
        _kernels_requantize.requantize(np.ascontiguousarray(acc, np.int32).reshape(-1, channels),
                                       q.multiplier, q.shift, q.zero_point, q.qmin, q.qmax, int(q.rounding),
                                       out.reshape(-1, channels))
        return out
    if q.rounding in (Form.ROUNDING_TIES_UP_CHANNELS_8, Form.ROUNDING_TIES_UP_ELEMENTS_16):
        return requantize_ties_up_blocks(acc, q, dtype)
    if q.rounding == Form.ROUNDING_FLOAT64:
        if q.effective_scale is None:
            raise ValueError("the float64 requantization form needs q.effective_scale")
        out = np.empty(acc.shape, dtype)  # requantize_float64's arithmetic, in Cython
        channels = acc.shape[-1] if acc.ndim else 1
        _kernels_requantize.requantize_float64(
            np.ascontiguousarray(acc, np.int32).reshape(-1, channels),
            np.ascontiguousarray(q.effective_scale, np.float64).reshape(-1), q.zero_point, q.qmin, q.qmax,
            out.reshape(-1, channels))
        return out
    if q.rounding in (Form.ROUNDING_FP32, Form.ROUNDING_RNDNU):
        s = q.fp32_scales(acc.shape[-1])
        if q.rounding == Form.ROUNDING_RNDNU:
            return requantize_rndnu(acc, s, q.zero_point, q.qmin, q.qmax, dtype)
        return requantize_fp32(acc, s, q.zero_point, q.qmin, q.qmax, dtype)
    raise ValueError(f"requantization form {q.rounding!r} does not apply to int32 accumulators")


def requantize_ties_up_blocks(acc: np.ndarray, q: QuantizedOutput, dtype) -> np.ndarray:
    """Form.ROUNDING_TIES_UP_CHANNELS_8 / ROUNDING_TIES_UP_ELEMENTS_16: a vector body in the
    double rounding with its final shift ties up, the rest in the reference's double rounding."""
    acc = np.ascontiguousarray(acc, np.int32)
    body = requantize_to(acc, dataclasses.replace(q, rounding=Form.ROUNDING_DOUBLE_TIES_UP), dtype)
    tail = requantize_to(acc, dataclasses.replace(q, rounding=Form.ROUNDING_DOUBLE), dtype)
    if q.rounding == Form.ROUNDING_TIES_UP_CHANNELS_8:
        channels = acc.shape[-1]
        in_body = np.arange(channels) < (channels // 8) * 8
    else:
        in_body = (np.arange(acc.size) < (acc.size // 16) * 16).reshape(acc.shape)
    return np.where(in_body, body, tail).astype(dtype)
def requantize_16x8(acc: np.ndarray, q: QuantizedOutput, saturating_conversion: bool = False) -> np.ndarray:
    """int64 accumulators (channels last) of a 16x8 op (zero points 0) -> int16, in q's form:
    Form.ROUNDING_INT64_REDUCED (LiteRT's int64 MultiplyByQuantizedMultiplier), or the float64 form
    (the reference FULLY_CONNECTED): static_cast<int32>(round(double(acc) * scale)), which for a
    value beyond int32 is the build's conversion (INT32_MIN on x86-64, saturated on aarch64:
    Profile.saturating_conversion), then clamped."""
    if q.rounding == Form.ROUNDING_INT64_REDUCED:
        scaled = fixedpoint.multiply_int64_by_reduced_multiplier(acc, q.multiplier, q.shift).astype(np.int64)
        return np.clip(scaled, q.qmin, q.qmax).astype(np.int16)
    if q.rounding == Form.ROUNDING_FLOAT64:
        if q.effective_scale is None:
            raise ValueError("the float64 requantization form needs q.effective_scale")
        rounded = fixedpoint.round_half_away(np.asarray(acc).astype(np.float64) * q.effective_scale)
        converted = fixedpoint.truncate_to_int32(rounded, saturating_conversion)
        return np.clip(converted, q.qmin, q.qmax).astype(np.int16)
    raise ValueError(f"requantization form {q.rounding!r} does not apply to 16x8 accumulators")


def requantize_float64(acc: np.ndarray, effective_scale: np.ndarray, zero_point: int, qmin: int, qmax: int,
                       dtype) -> np.ndarray:
    """clamp(static_cast<int32>(round(double(acc) * scale)) + zero point) (LiteRT reference FC):
    round half away from zero, saturated to int32 first."""
    rounded = fixedpoint.round_half_away(np.asarray(acc).astype(np.float64) * effective_scale)
    rounded = np.clip(rounded, -2.0**31, 2.0**31 - 1).astype(np.int64)
    return np.clip(rounded + int(zero_point), qmin, qmax).astype(dtype)


def requantize_rndnu(acc: np.ndarray, scale: np.ndarray, zero_point: int, qmin: int, qmax: int,
                     dtype) -> np.ndarray:
    """Form.ROUNDING_RNDNU: clamp(floor(acc * scale + 1/2) + zero_point), the product exact.

    A float32 scale is m * 2**-k with a 24-bit integer m, so acc * m is exact in int64 (|acc| <
    2**31); (acc * m + 2**(k - 1)) >> k then rounds half toward +inf. Beyond k = 56 every product is
    below one half in magnitude and rounds to 0."""
    bits = np.asarray(scale, f32).view(np.uint32).astype(np.int64)
    mantissa = np.where((bits >> 23) & 0xFF, (bits & 0x7FFFFF) | 0x800000, bits & 0x7FFFFF)  # subnormal: no implicit 1
    k = 150 - np.maximum((bits >> 23) & 0xFF, 1)  # scale = mantissa * 2**-k
    product = np.asarray(acc).astype(np.int64) * mantissa
    shift = np.clip(k, 1, 62)
    rounded = np.where(k > 56, 0, (product + (np.int64(1) << (shift - 1))) >> shift)
    return np.clip(rounded + int(zero_point), qmin, qmax).astype(dtype)


def fp32_scale(x_scale, w_scales, y_scale) -> np.ndarray:
    """XNNPACK's requantization scale per channel: float32(float32(s_x * s_w[c]) / s_y)."""
    with np.errstate(all="ignore"):
        return ((f32(x_scale) * np.asarray(w_scales, f32)) / f32(y_scale)).astype(f32)


def rint_scaled_fp32(acc: np.ndarray, scale) -> np.ndarray:
    """rint(float32(acc) * scale) as int64 (round half to even; saturated to the int32 range)."""
    with np.errstate(all="ignore"):
        scaled = np.asarray(acc).astype(f32) * np.asarray(scale, f32)
        # rint of a float32 beyond int32 saturates in the SIMD conversion; clip first (exactly).
        return np.rint(np.clip(scaled, f32(-(2.0**31)), f32(2.0**31 - 128))).astype(np.int64)


def requantize_fp32(acc: np.ndarray, scale: np.ndarray, zero_point: int, qmin: int, qmax: int,
                    dtype) -> np.ndarray:
    """clamp(rint(float32(acc) * scale) + zero_point); scale broadcasts over the last axis.

    XNNPACK clamps in float before rounding; with integer bounds that is the same as clamping
    after, so the clamp is applied once, at the end."""
    return np.clip(rint_scaled_fp32(acc, scale) + int(zero_point), qmin, qmax).astype(dtype)


# ------------------------------------------------------------------------------------------
# MEAN


def _multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int, form: Form) -> np.ndarray:
    """One multiplier and shift over int32 values, in the Cython kernel (kernels/fixedpoint.pxd)
    where the form's shift range holds, else in NumPy (the same definition, slower per call)."""
    x = np.asarray(x)
    if -31 <= shift <= fixedpoint.max_shift(form) and x.size and \
            fixedpoint.INT32_MIN <= x.min() and x.max() <= fixedpoint.INT32_MAX:
        flat = np.ascontiguousarray(x, np.int32).reshape(-1)
        n = flat.size
        return _kernels_requantize.multiply_by_quantized_multiplier_array(
            flat, np.full(n, multiplier, np.int32), np.full(n, shift, np.int32), int(form)).reshape(np.shape(x))
    return fixedpoint.multiply_by_quantized_multiplier(x, multiplier, shift, form)


def mean_optimized_4d(x: np.ndarray, x_scale, x_zp: int, y_scale, y_zp: int,
                      vector_blocks: bool = True, total: np.ndarray | None = None) -> np.ndarray:
    """LiteRT optimized_integer_ops::Mean over H, W of an (N, H, W, C) int8 tensor, keep_dims.

    Returns the (N, 1, 1, C) int8 result. ai-edge-litert's x86 build runs the NEON code through
    NEON_2_SSE: whole blocks of 16 channels take the vector path (rounding right shift: ties up),
    the remaining C % 16 channels the scalar MultiplyByQuantizedMultiplier (ties away from zero).
    vector_blocks=False is Form.MEAN_OPTIMIZED_4D_SCALAR: every channel on the scalar path
    (tflite-runtime 2.14's x86 build). total: the (N, C) raw sums over H, W when the caller has them.
    """
    n, h, w, c = x.shape
    if total is None:
        total = x.astype(np.int64).sum(axis=(1, 2))  # raw values, no zero point; fits int32
    params = mean_optimized_4d_params(h * w, x_scale, x_zp, y_scale, y_zp)
    in_vector_block = np.arange(c) < ((c // 16) * 16 if vector_blocks else 0)
    return mean_optimized_4d_from_sums(total, in_vector_block, params, x.dtype).reshape(n, 1, 1, c)


def mean_optimized_4d_params(count: int, x_scale, x_zp: int, y_scale, y_zp: int) -> tuple[int, int, int]:
    """(multiplier, shift, bias) of the optimized 4-D MEAN: one multiplier from
    QuantizeMultiplier(float32(s_x / float32(n * s_y))), bias = y_zp - (int)(float32(x_zp * s_x /
    s_y) +- 0.5) (the cast truncates toward zero)."""
    with np.errstate(all="ignore"):
        temp = f32(f32(f32(x_zp) * f32(x_scale)) / f32(y_scale))
        temp = f32(temp + f32(0.5)) if temp > 0 else f32(temp - f32(0.5))
        real = f32(f32(x_scale) / f32(f32(count) * f32(y_scale)))
    multiplier, shift = fixedpoint.quantize_multiplier(float(real))
    return multiplier, shift, int(y_zp) - int(temp)


def mean_optimized_4d_from_sums(total: np.ndarray, in_vector_block: np.ndarray, params, dtype) -> np.ndarray:
    """The optimized 4-D MEAN from raw int32 sums (channels last); in_vector_block marks the
    channels of whole 16-channel blocks (final shift ties up), the rest round ties away."""
    multiplier, shift, bias = params
    ties_up = _multiply_by_quantized_multiplier(total, multiplier, shift, Form.ROUNDING_DOUBLE_TIES_UP)
    ties_away = _multiply_by_quantized_multiplier(total, multiplier, shift, Form.ROUNDING_DOUBLE)
    out = np.where(in_vector_block, ties_up, ties_away).astype(np.int64)
    info = np.iinfo(dtype)
    return np.clip(out + bias, info.min, info.max).astype(dtype)


def mean_optimized_4d_kernel_takes(params, count: int) -> bool:
    """mean_optimized_4d_int32 gives mean_optimized_4d_from_sums' bits for sums of `count` 8-bit
    values: |MBQM(sum)| <= |sum| < 2**30 for a shift <= 0, so the kernel's int32 bias addition
    cannot wrap where the NumPy form's int64 one does not."""
    _, shift, bias = params
    return -31 <= shift <= 0 and 255 * count < 2**30 and abs(bias) < 2**16


def mean_optimized_4d_int32(total: np.ndarray, vector_channels: int, params, dtype) -> np.ndarray:
    """mean_optimized_4d_from_sums of (N, C) int32 sums on the Cython requantization, where
    mean_optimized_4d_kernel_takes: channels [0, vector_channels) ties up, the rest ties away."""
    multiplier, shift, bias = params
    outer, c = total.shape
    info = np.iinfo(dtype)
    m, e = np.array([multiplier], np.int32), np.array([shift], np.int32)
    out = np.empty((outer, c), dtype)
    for lo, hi, form in ((0, vector_channels, Form.ROUNDING_DOUBLE_TIES_UP), (vector_channels, c, Form.ROUNDING_DOUBLE)):
        if hi <= lo:
            continue
        part = out if hi - lo == c else np.empty((outer, hi - lo), dtype)
        _kernels_requantize.requantize(np.ascontiguousarray(total[:, lo:hi], np.int32), m, e, bias,
                                       int(info.min), int(info.max), int(form), part)
        if part is not out:
            out[:, lo:hi] = part
    return out


def mean_fp32(total_raw: np.ndarray, count: int, x_scale, x_zp: int, y_scale, y_zp: int,
              dtype, fused: bool = False) -> np.ndarray:
    """XNNPACK MEAN from the raw int32 sums: clamp(rint(float32(sum) * s + zp')), or with
    fused=True (Form.MEAN_FP32_FMA) one rounding for the multiply-add: the product of two float32
    is exact in double, and so is its sum with zp' while |sum| < 2**29 (int8 means of fewer than
    2**22 values), so rounding that double to float32 once is the fma."""
    s, zpf = mean_fp32_constants(count, x_scale, x_zp, y_scale, y_zp)
    return scaled_sums_fp32(total_raw, s, zpf, dtype, fused)


def mean_fp32_constants(count: int, x_scale, x_zp: int, y_scale, y_zp: int) -> tuple:
    """(s, zp') of mean_fp32: s = float32(s_x / s_y) * float32(1 / count), zp' as
    scaled_sums_fp32_zero_point (what a prepared MEAN keeps)."""
    with np.errstate(all="ignore"):
        s = f32(f32(f32(x_scale) / f32(y_scale)) * f32(f32(1.0) / f32(count)))
    return s, scaled_sums_fp32_zero_point(count, s, x_zp, y_zp)


def sum_optimized_fp32(total_raw: np.ndarray, count: int, x_scale, x_zp: int, y_scale, y_zp: int,
                       dtype, saturating: bool = False) -> np.ndarray:
    """Form.SUM_FP32_ROUND, LiteRT's optimized int8/uint8 SUM from the raw int32 sums:
    clamp(int32(round(float32(sum) * s + b)) + y_zp), s = float32(s_x / s_y),
    b = float32(float32(-x_zp * s) * float32(count)), round half away from zero (std::round)."""
    with np.errstate(all="ignore"):
        s = f32(f32(x_scale) / f32(y_scale))
        bias = f32(f32(f32(-int(x_zp)) * s) * f32(count))
        v = (np.asarray(total_raw).astype(f32) * s).astype(f32) + bias
    rounded = fixedpoint.truncate_to_int32(fixedpoint.round_half_away(v), saturating)
    info = np.iinfo(dtype)
    return np.clip(rounded + int(y_zp), info.min, info.max).astype(dtype)


def sum_fp32(total_raw: np.ndarray, count: int, x_scale, x_zp: int, y_scale, y_zp: int, dtype,
             half_away: bool = False) -> np.ndarray:
    """Form.SUM_FP32, XNNPACK's int8/uint8 SUM from the raw int32 sums: MEAN_FP32's arithmetic with
    s = float32(s_x / s_y) (no 1/count), unfused; half_away=True is Form.SUM_FP32_HALF_AWAY."""
    with np.errstate(all="ignore"):
        s = f32(f32(x_scale) / f32(y_scale))
    return scaled_sums_fp32(total_raw, s, scaled_sums_fp32_zero_point(count, s, x_zp, y_zp), dtype,
                            False, half_away)


def scaled_sums_fp32_zero_point(count: int, s, x_zp: int, y_zp: int):
    """zp' = float32(y_zp - float32(count * x_zp) * s) of XNNPACK's reduction tail."""
    with np.errstate(all="ignore"):
        return f32(f32(y_zp) - f32(f32(int(count) * int(x_zp)) * s))


def scaled_sums_fp32(total_raw: np.ndarray, s, zpf, dtype, fused: bool, half_away: bool = False) -> np.ndarray:
    """XNNPACK's reduction tail: clamp(rint(float32(sum) * s + zp')), zp' from
    scaled_sums_fp32_zero_point (half_away: rounded half away from zero instead of to even)."""
    with np.errstate(all="ignore"):
        total = np.asarray(total_raw).astype(f32)
        if fused:
            v = (total.astype(np.float64) * np.float64(s) + np.float64(zpf)).astype(f32)
        else:
            v = (total * s).astype(f32) + zpf
    info = np.iinfo(dtype)
    rounded = fixedpoint.round_half_away(v) if half_away else np.rint(v)
    return np.clip(rounded, info.min, info.max).astype(dtype)


# ------------------------------------------------------------------------------------------
# QUANTIZE


def quantize_reciprocal_rne(x: np.ndarray, scale, zero_point, dtype) -> np.ndarray:
    """float32 -> q8: clamp(rint(x * float32(1 / scale)) + zp) (the optimized vector path)."""
    with np.errstate(all="ignore"):
        inv = (f32(1.0) / np.asarray(scale, f32)).astype(f32)
        v = np.rint(np.asarray(x, f32) * inv)
        v = np.clip(v, f32(-(2.0**31)), f32(2.0**31 - 128)).astype(np.int64)
    info = np.iinfo(dtype)
    return np.clip(v + np.asarray(zero_point, np.int64), info.min, info.max).astype(dtype)


def quantize_reciprocal_rne_8(x: np.ndarray, scale, zero_point, dtype) -> np.ndarray:
    """Form.QUANTIZE_RECIPROCAL_RNE_8 (per-tensor): elements in whole blocks of 8 (flat order) as
    quantize_reciprocal_rne, the remaining ones as quantize_float64."""
    flat = np.asarray(x, f32).reshape(-1)
    blocked = (flat.size // 8) * 8
    vector = quantize_reciprocal_rne(flat[:blocked], scale, zero_point, dtype)
    tail = quantize_float64(flat[blocked:], scale, zero_point, dtype)
    return np.concatenate([vector, tail]).astype(dtype).reshape(np.shape(x))


def quantize_float64(x: np.ndarray, scale, zero_point, dtype) -> np.ndarray:
    """Form.QUANTIZE_FLOAT64: clamp(round_half_away(double(x) / double(scale)) + zp); outside the
    int32 range (and NaN) the conversion gives INT32_MIN, as x86's cvttsd2si, before the zero point's
    int32 (wrapping) addition."""
    with np.errstate(all="ignore"):
        v = fixedpoint.round_half_away(np.asarray(x, np.float64) / np.asarray(scale, np.float64))
        v = fixedpoint.truncate_to_int32(v)
    total = fixedpoint.wrap_to_int32(v + np.asarray(zero_point, np.int64)).astype(np.int64)
    info = np.iinfo(dtype)
    return np.clip(total, info.min, info.max).astype(dtype)


# The scale ratios XNNPACK's delegate accepts for an int8 -> int8 or uint8 -> uint8 QUANTIZE (its
# convert); int8 <-> uint8 it never takes.
XNNPACK_CVT_MIN_SCALE = f32(1.0 / 256.0)
XNNPACK_CVT_MAX_SCALE = f32(128.0)


def quantize_vcvt_delegated(x_scale, y_scale) -> bool:
    """Whether XNNPACK's delegate takes a same-type 8-bit QUANTIZE: 1/256 <= float32(s_x / s_y) <= 128
    (xnnpack_delegate.cc); outside, LiteRT's own kernel runs it."""
    with np.errstate(all="ignore"):
        ratio = f32(f32(x_scale) / f32(y_scale))
    return bool(XNNPACK_CVT_MIN_SCALE <= ratio <= XNNPACK_CVT_MAX_SCALE)


def quantize_vcvt(x: np.ndarray, x_scale, x_zp: int, y_scale, y_zp: int, dtype) -> np.ndarray:
    """XNNPACK q8 -> q8 convert: 8.8 fixed-point multiplier, arithmetic shift (ties up); only for
    the ratios quantize_vcvt_delegated accepts (the multiplier is then 1..32768)."""
    with np.errstate(all="ignore"):
        m = int(np.rint(f32(256.0) * f32(f32(x_scale) / f32(y_scale))))
    bias = (int(y_zp) << 8) - m * int(x_zp) + 128
    v = (bias + x.astype(np.int64) * m) >> 8
    info = np.iinfo(dtype)
    return np.clip(v, info.min, info.max).astype(dtype)


# ------------------------------------------------------------------------------------------
# LEAKY_RELU (XNNPACK)

XNNPACK_LRELU_MIN_SCALE = f32(1.0 / 256.0)
XNNPACK_LRELU_MAX_SCALE = f32(128.0)
XNNPACK_LRELU_MIN_NEGATIVE_SCALE = f32(-127.99609375)


def leaky_relu_xnnpack_params(x_scale, y_scale, alpha) -> tuple[int, int] | None:
    """XNNPACK's 8.8 (positive, negative) multipliers for an int8/uint8 LEAKY_RELU, or None when
    its delegate leaves the op to LiteRT (the scale ratios outside what it accepts)."""
    with np.errstate(all="ignore"):
        positive = f32(f32(x_scale) / f32(y_scale))
        negative = f32(positive * f32(alpha))
    if not XNNPACK_LRELU_MIN_SCALE <= positive <= XNNPACK_LRELU_MAX_SCALE:
        return None
    if not (XNNPACK_LRELU_MIN_NEGATIVE_SCALE <= negative <= XNNPACK_LRELU_MAX_SCALE
            and abs(negative) >= XNNPACK_LRELU_MIN_SCALE):
        return None
    return int(np.rint(f32(256.0) * positive)), int(np.rint(f32(256.0) * negative))


def leaky_relu_xnnpack(x: np.ndarray, x_zp: int, y_zp: int, multipliers: tuple[int, int], dtype) -> np.ndarray:
    """Form.LEAKY_RELU_XNNPACK: y = zp_y + ((d * m + 128) >> 8), m by the sign of d = x - zp_x."""
    positive, negative = multipliers
    d = x.astype(np.int64) - int(x_zp)
    v = int(y_zp) + ((d * np.where(d >= 0, positive, negative) + 128) >> 8)
    info = np.iinfo(dtype)
    return np.clip(v, info.min, info.max).astype(dtype)


# ------------------------------------------------------------------------------------------
# ADD


def add_xnnpack_params(a_scale, b_scale, y_scale) -> tuple[int, int, int]:
    """XNNPACK's (a multiplier, b multiplier, shift) for a quantized ADD."""
    with np.errstate(all="ignore"):
        ra = f32(f32(a_scale) / f32(y_scale))
        rb = f32(f32(b_scale) / f32(y_scale))
    top = max(abs(ra), abs(rb))
    exponent = int((np.array(top, f32).view(np.uint32) >> 23) & 0xFF) - 127
    shift = 20 - exponent
    if not 12 <= shift <= 30:
        raise ValueError(f"XNNPACK ADD needs scale ratios in [2**-10, 2**8), got {float(ra)}, {float(rb)}")
    # ratio * 2**shift is exact in float32 (an exponent change); lrintf rounds half to even.
    ma = int(np.rint(np.float64(abs(ra)) * 2.0**shift)) * (-1 if ra < 0 else 1)
    mb = int(np.rint(np.float64(abs(rb)) * 2.0**shift)) * (-1 if rb < 0 else 1)
    return ma, mb, shift


def add_input_shift_floor_8(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, input_multipliers,
                            output_multiplier, y_zp: int, left_shift: int) -> np.ndarray:
    """Form.ADD_INPUT_SHIFT_FLOOR_8 for same-shape a, b: the raw (unclamped, zero point added)
    int64 result. Elements in whole blocks of 8 (flat order) rescale each input as
    srdhm(x << left_shift, m) >> -e (a flooring shift; e <= 0 for these multipliers < 1), the
    rest as the reference; both then sum and rescale the sum in double rounding."""
    blocked = (a.size // 8) * 8
    scaled = []
    for q, zp, (m, e) in ((a, a_zp, input_multipliers[0]), (b, b_zp, input_multipliers[1])):
        x = (q.reshape(-1).astype(np.int64) - zp) << left_shift
        floor = fixedpoint.saturating_rounding_doubling_high_mul(x, m).astype(np.int64) >> -e
        reference = fixedpoint.multiply_by_quantized_multiplier_double_rounding(x, m, e).astype(np.int64)
        scaled.append(np.where(np.arange(x.size) < blocked, floor, reference))
    m, e = output_multiplier
    total = fixedpoint.multiply_by_quantized_multiplier_double_rounding(scaled[0] + scaled[1], m, e)
    return (total.astype(np.int64) + y_zp).reshape(a.shape)


def add_int16_input_shift_16(a: np.ndarray, b: np.ndarray, input_multipliers, output_multiplier,
                             left_shift: int) -> np.ndarray:
    """Form.ADD_INT16_INPUT_SHIFT_16 for same-shape int16 a, b (zero points 0): the raw (unclamped)
    int64 result. Elements in whole blocks of 16 (flat order) rescale each input as
    srdhm(x shifted by left_shift + e, m), the shift a flooring right shift when negative; the
    rest as the reference (srdhm(x << left_shift, m), then a rounding divide by 2**-e). Both then
    sum (wrapping int32) and rescale the sum in double rounding."""
    blocked = (a.size // 16) * 16
    scaled = []
    for q, (m, e) in ((a, input_multipliers[0]), (b, input_multipliers[1])):
        x = q.reshape(-1).astype(np.int64)
        total_shift = left_shift + e
        folded = (x << total_shift) if total_shift >= 0 else (x >> -total_shift)
        vector = fixedpoint.saturating_rounding_doubling_high_mul(fixedpoint.wrap_to_int32(folded), m).astype(np.int64)
        reference = fixedpoint.multiply_by_quantized_multiplier_double_rounding(x << left_shift, m, e).astype(np.int64)
        scaled.append(np.where(np.arange(x.size) < blocked, vector, reference))
    m, e = output_multiplier
    total = fixedpoint.wrap_to_int32(scaled[0] + scaled[1])
    return fixedpoint.multiply_by_quantized_multiplier_double_rounding(total, m, e).astype(np.int64).reshape(a.shape)


def add_xnnpack(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, params, y_zp: int) -> np.ndarray:
    """The raw (unclamped, zero point added) XNNPACK ADD result as int64; broadcasts."""
    ma, mb, shift = params
    acc = (1 << (shift - 1)) + (a.astype(np.int64) - a_zp) * ma + (b.astype(np.int64) - b_zp) * mb
    return (acc >> shift) + y_zp
