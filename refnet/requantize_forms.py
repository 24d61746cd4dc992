"""Arithmetic forms beyond the Cython requantize kernel's fixed-point ones (profile.py names them).

NumPy implementations of what LiteRT's optimized kernels and XNNPACK compute where they depart
from the reference kernels, as measured by tools/measure_profiles.py:

- requantize_fp32: XNNPACK's fp32 requantization of int32 accumulators (conv, depthwise,
  fully connected, MUL): float32(acc) * float32 scale, round half to even, + zero point, clamp.
  XNNPACK clamps in float before rounding; with integer bounds that is the same as clamping
  after, so the clamp is applied once, at the end.
- mean_optimized_4d, mean_fp32: MEAN as the optimized kernel and XNNPACK compute it.
- quantize_reciprocal_rne, quantize_vcvt: QUANTIZE as the optimized kernel / XNNPACK do.

All float32 arithmetic is done in NumPy float32 (one rounding per operation, no FMA), exactly as
the C code's float expressions evaluate on x86-64 (FLT_EVAL_METHOD 0).
"""
from __future__ import annotations

import numpy as np

from . import fixedpoint
from .profile import (ADD_XNNPACK, MEAN_FP32, MEAN_OPTIMIZED_4D, QUANTIZE_RECIPROCAL_RNE, QUANTIZE_VCVT,
                      ROUNDING_DOUBLE, ROUNDING_DOUBLE_TIES_UP, ROUNDING_FP32)

f32 = np.float32

__all__ = ["ADD_XNNPACK", "add_xnnpack", "ROUNDING_FP32", "MEAN_OPTIMIZED_4D", "MEAN_FP32", "QUANTIZE_RECIPROCAL_RNE",
           "QUANTIZE_VCVT", "KERNEL_FORMS", "fp32_scale", "requantize", "requantize_fp32", "rint_scaled_fp32",
           "mean_optimized_4d", "mean_fp32", "quantize_reciprocal_rne", "quantize_vcvt"]

# Forms the Cython requantize kernel implements itself.
KERNEL_FORMS = (0, 1, 2)


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
    """clamp(rint(float32(acc) * scale) + zero_point); scale broadcasts over the last axis."""
    return np.clip(rint_scaled_fp32(acc, scale) + int(zero_point), qmin, qmax).astype(dtype)


def requantize(acc: np.ndarray, q, dtype) -> np.ndarray:
    """int32 accumulators (channels last) -> dtype under q.rounding, for the forms the Cython
    kernel does not know. `q` is conv.QuantizedOutput; the fp32 form needs q.scales =
    (x_scale, per-channel w_scales, y_scale)."""
    if q.rounding == ROUNDING_FP32:
        scales = getattr(q, "scales", None)
        if scales is None:
            raise ValueError("the fp32 requantization form needs the tensors' scales (q.scales)")
        x_scale, w_scales, y_scale = scales
        s = fp32_scale(x_scale, np.broadcast_to(np.asarray(w_scales, f32), (acc.shape[-1],)), y_scale)
        return requantize_fp32(acc, s, q.zero_point, q.qmin, q.qmax, dtype)
    raise ValueError(f"unknown requantization form {q.rounding!r}")


# ------------------------------------------------------------------------------------------
# MEAN


def mean_optimized_4d(x: np.ndarray, x_scale, x_zp: int, y_scale, y_zp: int) -> np.ndarray:
    """LiteRT optimized_integer_ops::Mean over H, W of an (N, H, W, C) int8 tensor, keep_dims.

    Returns the (N, 1, 1, C) int8 result. The x86 build runs the NEON code through NEON_2_SSE:
    whole blocks of 16 channels take the vector path (rounding right shift: ties up), the
    remaining C % 16 channels the scalar MultiplyByQuantizedMultiplier (ties away from zero).
    """
    n, h, w, c = x.shape
    count = h * w
    total = x.astype(np.int64).sum(axis=(1, 2))  # raw values, no zero point; fits int32
    with np.errstate(all="ignore"):
        temp = f32(f32(f32(x_zp) * f32(x_scale)) / f32(y_scale))
        temp = f32(temp + f32(0.5)) if temp > 0 else f32(temp - f32(0.5))
        real = f32(f32(x_scale) / f32(f32(count) * f32(y_scale)))
    bias = int(y_zp) - int(temp)  # static_cast<int32_t>: toward zero
    multiplier, shift = fixedpoint.quantize_multiplier(float(real))
    vector = (c // 16) * 16
    out = np.empty((n, c), np.int64)
    out[:, :vector] = fixedpoint.multiply_by_quantized_multiplier(
        total[:, :vector], multiplier, shift, ROUNDING_DOUBLE_TIES_UP)
    out[:, vector:] = fixedpoint.multiply_by_quantized_multiplier(
        total[:, vector:], multiplier, shift, ROUNDING_DOUBLE)
    info = np.iinfo(x.dtype)
    return np.clip(out + bias, info.min, info.max).astype(x.dtype).reshape(n, 1, 1, c)


def mean_fp32(total_raw: np.ndarray, count: int, x_scale, x_zp: int, y_scale, y_zp: int,
              dtype) -> np.ndarray:
    """XNNPACK MEAN from the raw int32 sums: clamp(rint(float32(sum) * s + zp'))."""
    with np.errstate(all="ignore"):
        s = f32(f32(f32(x_scale) / f32(y_scale)) * f32(f32(1.0) / f32(count)))
        zpf = f32(f32(y_zp) - f32(f32(int(count) * int(x_zp)) * s))
        v = (np.asarray(total_raw).astype(f32) * s).astype(f32) + zpf
    info = np.iinfo(dtype)
    return np.clip(np.rint(v), info.min, info.max).astype(dtype)


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


def quantize_vcvt(x: np.ndarray, x_scale, x_zp: int, y_scale, y_zp: int, dtype) -> np.ndarray:
    """XNNPACK q8 -> q8 convert: 8.8 fixed-point multiplier, arithmetic shift (ties up)."""
    with np.errstate(all="ignore"):
        m = int(np.rint(f32(256.0) * f32(f32(x_scale) / f32(y_scale))))
    bias = (int(y_zp) << 8) - m * int(x_zp) + 128
    v = (bias + x.astype(np.int64) * m) >> 8
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


def add_xnnpack(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, params, y_zp: int) -> np.ndarray:
    """The raw (unclamped, zero point added) XNNPACK ADD result as int64; broadcasts."""
    ma, mb, shift = params
    acc = (1 << (shift - 1)) + (a.astype(np.int64) - a_zp) * ma + (b.astype(np.int64) - b_zp) * mb
    return (acc >> shift) + y_zp
