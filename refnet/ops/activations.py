"""RELU, RELU6, RELU_N1_TO_1, LOGISTIC and HARD_SWISH: float32, int8 and uint8 (RELU/RELU6 int16).

Reference semantics (LiteRT BUILTIN_REF, activations.cc and reference/{logistic,hard_swish}.h):
  RELU family, float32
      RELU: x < 0 ? 0 : x (Eigen cwiseMax; NaN passes); RELU6 / RELU_N1_TO_1:
      x > hi ? hi : x < lo ? lo : x (NaN passes).
  RELU family, int8/uint8/int16
      Not a plain clamp: the input is requantized onto the output scale, then clamped:
        out = clamp(zp_out + MBQM(x - zp_in, m, e), qmin, qmax)
      m, e from the float32 quotient s_in / s_out (widened to double; may exceed 1, then MBQM
      shifts left first, wrapping at 32 bits as the C++ int32 does).
        qmin = max(type_min, zp_out + int32(roundf(lo / s_out)))
        qmax = type_max for RELU, else min(type_max, zp_out + int32(roundf(hi / s_out)))
      with float32 divisions. When roundf(hi / s_out) does not fit int32 (s_out < ~3e-9) the
      C++ conversion is undefined; refnet does what x86-64 does (INT32_MIN, then a wrapping
      add of the zero point), which is what LiteRT computes on this platform.
  LOGISTIC, float32
      x > 16.619047164916992188f ? 1 : x < -9 ? expf(x) : 1 / (1 + expf(-x)), in float32.
  LOGISTIC, int8/uint8
      A 256-entry table built at prepare: for every input value q,
        table[q] = clamp(int32(roundf((1 / (1 + expf(-(s_in * (q - zp_in))))) * (1 / s_out))
                               + zp_out))
      in float32. LiteRT requires s_out == 1/256 exactly (any output zero point).
  HARD_SWISH: the Cython kernels in kernels/hard_swish.pyx (float32: x * relu6(x + 3) / 6 in
      float32; int8/uint8: the int16 fixed-point reference), parameters from
      refnet.fixedpoint.hard_swish_params.

expf is libm's (LiteRT calls std::exp(float), i.e. the C library's expf). NumPy's float32 exp
is a different implementation (it differs from glibc's in a large fraction of inputs), so
`libm_expf` computes exp in float64 and rounds to float32, and asks libm itself (ctypes) for
the elements where that rounding could disagree with libm: glibc's expf is documented (and
checked here over every float32 in [-104, 89]) to be within 0.502 ulp, so it can only
differ from the correctly rounded value when the exact result lies within 0.002 ulp of a
rounding midpoint. Elsewhere (other C libraries) every element goes through ctypes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

from .. import _kernels_fast, _kernels_hard_swish
from ..fixedpoint import (hard_swish_params, multiply_by_quantized_multiplier, quantize_multiplier,
                          truncate_to_int32, wrap_to_int32)
from . import OpContext, per_tensor_quantization, register, round_half_away

# --- libm's expf ------------------------------------------------------------------------------

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_LIBM.expf.restype = ctypes.c_float
_LIBM.expf.argtypes = [ctypes.c_float]
# Elements whose float64 exp lies closer than this (in float32 ulps) to a float32 rounding
# midpoint are computed by libm itself. glibc's bound needs 0.002; the margin covers the
# float64 exp's own error (< 2**-28 float32 ulps) many times over.
_MIDPOINT_MARGIN = 0.004


def _glibc_version() -> tuple[int, int] | None:
    try:
        fn = ctypes.CDLL(None).gnu_get_libc_version
    except (AttributeError, OSError):
        return None
    fn.restype = ctypes.c_char_p
    try:
        major, minor = fn().decode().split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def _expf_elementwise(x: np.ndarray) -> np.ndarray:
    f = _LIBM.expf
    return np.array([f(v) for v in x.tolist()], dtype=np.float32)


def _expf_via_float64(x: np.ndarray) -> np.ndarray:
    """exp rounded once to float32; the near-midpoint elements recomputed by libm."""
    with np.errstate(all="ignore"):
        exact = np.exp(x.astype(np.float64))
        rounded = exact.astype(np.float32)
        toward = np.where(exact >= rounded, np.float32(np.inf), np.float32(-np.inf))
        neighbour = np.nextafter(rounded, toward)
        midpoint = (rounded.astype(np.float64) + neighbour.astype(np.float64)) / 2
        gap = np.abs(neighbour.astype(np.float64) - rounded.astype(np.float64))
        safe = np.abs(exact - midpoint) > _MIDPOINT_MARGIN * gap  # False for NaN/inf too
    hard = ~safe
    if hard.any():
        rounded[hard] = _expf_elementwise(x[hard])
    return rounded


_GLIBC = _glibc_version()
# glibc's expf is the 0.502-ulp implementation since 2.27.
_USE_FLOAT64_PATH = _GLIBC is not None and _GLIBC >= (2, 27)


def libm_expf(x) -> np.ndarray:
    """expf of every element of a float32 array, bit for bit as the C library computes it."""
    x = np.asarray(x, dtype=np.float32)
    flat = x.reshape(-1)
    out = _expf_via_float64(flat) if _USE_FLOAT64_PATH else _expf_elementwise(flat)
    return out.reshape(x.shape)


# --- shared checks ----------------------------------------------------------------------------


def _same_shape_io(ctx: OpContext, dtypes: tuple):
    if len(ctx.op.inputs) != 1 or len(ctx.op.outputs) != 1 or ctx.input_tensor(0) is None:
        raise ctx.fail(f"{ctx.op.kind} takes 1 input and 1 output")
    x_t, y_t = ctx.input_tensor(0), ctx.output_tensor()
    if x_t.dtype != y_t.dtype:
        raise ctx.fail(f"input {x_t.dtype.name} and output {y_t.dtype.name} differ")
    if tuple(x_t.shape) != tuple(y_t.shape):
        raise ctx.fail(f"input shape {list(x_t.shape)} and output shape {list(y_t.shape)} differ")
    if x_t.dtype not in dtypes:
        raise ctx.unsupported(f"{ctx.op.kind} on {x_t.dtype.name}")
    return x_t, y_t


def every_byte(dtype) -> np.ndarray:
    """The 256 values of an 8-bit dtype, in the order of their bytes read as uint8 (the index of a
    _kernels_fast.lut8 table)."""
    return np.arange(256, dtype=np.uint8).view(dtype)


def lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """table[x read as uint8] for an 8-bit x (table: a unary 8-bit op over every_byte)."""
    out = np.empty(x.shape, table.dtype)
    _kernels_fast.lut8(table, np.ascontiguousarray(x), out)
    return out


# --- RELU, RELU6, RELU_N1_TO_1 ----------------------------------------------------------------

RELU_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
RELU_DTYPES = {
    "RELU": (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)),
    "RELU6": (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)),
    "RELU_N1_TO_1": (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8)),
}


@dataclass
class QuantizedReluPlan:
    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int
    qmin: int
    qmax: int
    rounding: int
    table: np.ndarray | None = None  # 8-bit input: the output of every value (lut8 order)


def _quantized_bound(bound: float, scale: float, zero_point: int, saturating: bool) -> int:
    """zp + static_cast<int32>(roundf(bound / scale)) in float32, with the build's conversion."""
    with np.errstate(all="ignore"):
        steps = round_half_away(np.float32(bound) / np.float32(scale))
    return int(wrap_to_int32(truncate_to_int32(steps, saturating) + zero_point))


def _prepare_relu(ctx: OpContext):
    kind = ctx.op.kind
    x_t, y_t = _same_shape_io(ctx, RELU_DTYPES[kind])
    if x_t.dtype == np.float32:
        return None
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    if x_t.dtype == np.int16 and (zp_in != 0 or zp_out != 0):
        raise ctx.fail("int16 needs zero points 0 (LiteRT rejects others)")
    rounding = ctx.profile.rounding(kind)
    if not rounding.is_fixed_point:
        raise ctx.unsupported(f"form {rounding.name} for {kind}")
    with np.errstate(all="ignore"):
        real = float(np.float32(s_in) / np.float32(s_out))  # a float32 quotient in the C++
    if not np.isfinite(real):
        raise ctx.arithmetic_error(f"multiplier s_in/s_out = {real} is not finite")
    multiplier, shift = quantize_multiplier(real)
    if shift > 31:
        raise ctx.arithmetic_error(f"multiplier s_in/s_out = {real:g} needs a left shift of {shift} "
                                   f"(> 31), which the int32 arithmetic cannot express")
    info = np.iinfo(x_t.dtype)
    lo, hi = RELU_BOUNDS[kind]
    saturating = ctx.profile.saturating_conversion
    qmin = max(int(info.min), _quantized_bound(lo, s_out, zp_out, saturating))
    qmax = int(info.max) if hi is None else min(int(info.max), _quantized_bound(hi, s_out, zp_out, saturating))
    plan = QuantizedReluPlan(zp_in, zp_out, multiplier, shift, qmin, qmax, rounding)
    if x_t.dtype.itemsize == 1:  # 8-bit: the output of every input value, by _run_relu itself
        plan.table = _run_relu(ctx, [every_byte(x_t.dtype)], plan)[0]
    return plan


def _run_relu(ctx: OpContext, inputs: list, plan: QuantizedReluPlan | None = None) -> list:
    x = inputs[0]
    plan = ctx.params if plan is None else plan
    if plan is not None and plan.table is not None and x.dtype.itemsize == 1:
        return [lookup(plan.table, x)]
    if plan is None:
        lo, hi = RELU_BOUNDS[ctx.op.kind]
        zero = np.float32(lo)
        out = np.where(x < zero, zero, x)
        if hi is not None:
            out = np.where(x > np.float32(hi), np.float32(hi), out)
        return [np.asarray(out, np.float32)]
    scaled = multiply_by_quantized_multiplier(x.astype(np.int64) - plan.input_zero_point,
                                              plan.multiplier, plan.shift, plan.rounding)
    raw = wrap_to_int32(scaled.astype(np.int64) + plan.output_zero_point).astype(np.int64)
    # max first, then min; if qmin > qmax (only with the x86 overflow above) qmax wins, and the
    # final static_cast<T> keeps the low bits.
    clamped = np.minimum(plan.qmax, np.maximum(plan.qmin, raw))
    return [clamped.astype(x.dtype)]


for _kind in RELU_BOUNDS:
    register(_kind, prepare=_prepare_relu)(_run_relu)


# --- LOGISTIC ---------------------------------------------------------------------------------

LOGISTIC_UPPER_CUTOFF = np.float32(16.619047164916992188)  # above: exactly 1
LOGISTIC_LOWER_CUTOFF = np.float32(-9.0)  # below: expf(x) (1 + expf(-x) would overflow sooner)


def logistic_float(x: np.ndarray) -> np.ndarray:
    """LiteRT's reference float Logistic, element by element in float32."""
    x = np.asarray(x, np.float32)
    one = np.float32(1)
    with np.errstate(all="ignore"):
        middle = one / (one + libm_expf(-x))
        low = libm_expf(x)
    out = np.where(x < LOGISTIC_LOWER_CUTOFF, low, middle)
    return np.where(x > LOGISTIC_UPPER_CUTOFF, one, out).astype(np.float32)


def logistic_table(input_scale: float, input_zero_point: int, output_scale: float,
                   output_zero_point: int, dtype, saturating: bool = False) -> np.ndarray:
    """LUTPopulate for int8/uint8: out[q - type_min] for every input value q, in float32."""
    f32 = np.float32
    info = np.iinfo(dtype)
    values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
    with np.errstate(all="ignore"):
        dequantized = f32(input_scale) * (values - input_zero_point).astype(np.float32)
        transformed = f32(1) / (f32(1) + libm_expf(-dequantized))
        inverse_scale = f32(1) / f32(output_scale)
        rescaled = round_half_away(transformed * inverse_scale)
        shifted = rescaled + f32(output_zero_point)  # float + int is a float32 addition
    quantized = truncate_to_int32(shifted, saturating)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def _prepare_logistic(ctx: OpContext):
    x_t, y_t = _same_shape_io(ctx, (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8)))
    if x_t.dtype == np.float32:
        return None
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    if float(np.float32(s_out)) != 1.0 / 256:
        raise ctx.fail(f"quantized LOGISTIC needs output scale 1/256 exactly, got {s_out!r} "
                       f"(LiteRT rejects others)")
    table = logistic_table(s_in, zp_in, s_out, zp_out, x_t.dtype, ctx.profile.saturating_conversion)
    return table[every_byte(x_t.dtype).astype(np.int64) - int(np.iinfo(x_t.dtype).min)]  # lut8 order


@register("LOGISTIC", prepare=_prepare_logistic)
def logistic(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    table = ctx.params
    if table is None:
        return [logistic_float(x)]
    return [lookup(table, x)]


# --- HARD_SWISH -------------------------------------------------------------------------------


def _prepare_hard_swish(ctx: OpContext):
    x_t, y_t = _same_shape_io(ctx, (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8)))
    if x_t.dtype == np.float32:
        return None
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    try:
        params = hard_swish_params(s_in, zp_in, s_out, zp_out)
    except ValueError as e:  # LiteRT's Prepare refuses a positive output exponent too
        raise ctx.fail(str(e)) from None
    if not -31 <= params.reluish_multiplier_exponent <= 31:
        raise ctx.arithmetic_error(f"input scale {s_in:g} makes the reluish multiplier's shift "
                                   f"{params.reluish_multiplier_exponent}, beyond int arithmetic")
    # the output of every input value, by the kernel itself (256 elements: its direct path)
    return QuantizedHardSwishPlan(params, _hard_swish_quantized(every_byte(x_t.dtype), params))


@dataclass(frozen=True)
class QuantizedHardSwishPlan:
    params: object  # fixedpoint.HardSwishParams
    table: np.ndarray  # the output of every input value (lut8 order)


def _hard_swish_quantized(x: np.ndarray, params) -> np.ndarray:
    out = np.empty(x.shape, x.dtype)
    info = np.iinfo(x.dtype)
    _kernels_hard_swish.hard_swish_quantized(
        x.reshape(-1), out.reshape(-1), params.input_zero_point, params.output_zero_point,
        params.output_multiplier_fixedpoint_int16, params.output_multiplier_exponent,
        params.reluish_multiplier_fixedpoint_int16, params.reluish_multiplier_exponent,
        int(info.min), int(info.max))
    return out


@register("HARD_SWISH", prepare=_prepare_hard_swish)
def hard_swish(ctx: OpContext, inputs: list) -> list:
    x = inputs[0] if inputs[0].flags.c_contiguous else inputs[0].copy()  # keeps rank 0
    if ctx.params is None:
        out = np.empty(x.shape, x.dtype)  # hard_swish.pyx's arithmetic, vectorised
        _kernels_fast.hard_swish_f(x, out, "HARD_SWISH" in ctx.profile.float_reciprocal)
        return [out]
    return [lookup(ctx.params.table, x)]
