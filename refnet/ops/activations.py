"""RELU, RELU6, RELU_N1_TO_1, LOGISTIC, TANH and HARD_SWISH: float32, int8 and uint8 (RELU/RELU6,
LOGISTIC and TANH int16).

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
  TANH, float32
      libm's tanhf, element by element (reference_ops::Tanh calls std::tanh(float)).
  TANH, int8/uint8
      The same 256-entry float32 table as LOGISTIC (LUTPopulate) with tanhf as the transform; no
      constraint on the output quantization.
  LOGISTIC and TANH, int16 (reference_integer_ops)
      Zero points 0; the output scale must be 2**-15 (its float32 log2, from logf, within 1e-3 of
      -15; LOGISTIC also requires exactly 1/32768). The input is rescaled onto 1/(3 * 4096):
        v = (x * m + round) >> shift  (int32, wrapping; round = 2**(shift - 1), or 0)
      m = 3 << shift' and shift = 0 when the input scale is 2**-12 (TANH also 2**-11; shift' the
      power: 0 or 1), else m = int32(s_in * 4096.0 * 3.0 * 2**shift) in double, with shift the
      number of doublings that bring it above 32767 / 2 (at most 31). Then |v| indexes LiteRT's
      256-entry uint16 sigmoid table (65536 * sigmoid(i / 24), SIGMOID_TABLE_UINT16) with linear
      interpolation: LOGISTIC on |v| >> 9 with 9 fraction bits, TANH (2 * sigmoid(2x) - 1) on
      |v| >> 8 with 8, both saturating at entry 255; negative v by symmetry.
Other LiteRT paths: int8/uint8 LOGISTIC and TANH are the same table on the optimized and XNNPACK
paths (measured). int16 with a power-of-two input scale runs gemmlowp's int16 fixed point on the
optimized path (XNNPACK does not take int16): Form.SIGMOID_INT16_GEMMLOWP, gemmlowp's logistic /
tanh on the raw input read as Q3.12 (TANH at 2**-11 first doubled, saturating), refnet/fixedpoint.py
logistic_int16_q3_12 and tanh_int16; other int16 scales run the reference there too. float32 TANH on the
optimized path (Eigen's rational approximation) and XNNPACK (its own) differ from tanhf in ~60 % of
elements by a few ulps: not modelled, like XNNPACK's other float32 kernels (README, "Profiles").
  HARD_SWISH: the Cython kernels in kernels/hard_swish.pyx (float32: x * relu6(x + 3) / 6 in
      float32; int8/uint8: the int16 fixed-point reference), parameters from
      refnet.fixedpoint.hard_swish_params.

tanhf is libm's too; glibc's tanhf (before 2.41) is not correctly rounded, so there is no float64
shortcut: each distinct input value goes through ctypes.
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
from ..fixedpoint import (hard_swish_params, logistic_int16_q3_12, multiply_by_quantized_multiplier,
                          quantize_multiplier, rounding_divide_by_pot_ties_up, saturating_left_shift_int16,
                          truncate_to_int32, wrap_to_int16, wrap_to_int32)
from ..fixedpoint import tanh_int16 as gemmlowp_tanh_int16
from ..forms import Form
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


_LIBM.tanhf.restype = ctypes.c_float
_LIBM.tanhf.argtypes = [ctypes.c_float]
_LIBM.logf.restype = ctypes.c_float
_LIBM.logf.argtypes = [ctypes.c_float]


def libm_tanhf(x) -> np.ndarray:
    """tanhf of every element of a float32 array, by the C library (once per distinct value)."""
    x = np.asarray(x, dtype=np.float32)
    distinct, where = np.unique(x.reshape(-1).view(np.uint32), return_inverse=True)
    f = _LIBM.tanhf
    values = np.array([f(v) for v in distinct.view(np.float32).tolist()], dtype=np.float32)
    return values[where].reshape(x.shape)


def libm_logf(x: float) -> np.float32:
    return np.float32(_LIBM.logf(float(np.float32(x))))


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


def lookup(table: np.ndarray, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """table[x read as uint8] for an 8-bit x (table: a unary 8-bit op over every_byte), on up to
    `threads` threads (the interpreter's num_threads)."""
    out = np.empty(x.shape, table.dtype)
    _kernels_fast.lut8(table, np.ascontiguousarray(x), out, threads)
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
        return [lookup(plan.table, x, ctx.num_threads)]
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


# --- LOGISTIC and TANH --------------------------------------------------------------------------

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


def _logistic_transform(x: np.ndarray) -> np.ndarray:
    """The LUT's transform: 1.0f / (1.0f + std::exp(-value)), in float32."""
    one = np.float32(1)
    with np.errstate(all="ignore"):
        return one / (one + libm_expf(-x))


def lut_populate_8bit(transform, input_scale: float, input_zero_point: int, output_scale: float,
                      output_zero_point: int, dtype, saturating: bool = False) -> np.ndarray:
    """LiteRT's LUTPopulate for int8/uint8: out[q - type_min] for every input value q of
    transform(s_in * (q - zp_in)) requantized in float32: int32(round_half_away(t * (1 / s_out))
    + zp_out), clamped. transform maps a float32 array to a float32 array. A value that does not
    fit int32 (an overflowed exp: inf) converts as the CPU does (fixedpoint.truncate_to_int32)."""
    f32 = np.float32
    info = np.iinfo(dtype)
    values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
    with np.errstate(all="ignore"):
        dequantized = f32(input_scale) * (values - input_zero_point).astype(np.float32)
        transformed = np.asarray(transform(dequantized), np.float32)
        inverse_scale = f32(1) / f32(output_scale)
        rescaled = round_half_away(transformed * inverse_scale)
        shifted = rescaled + f32(output_zero_point)  # float + int is a float32 addition
    quantized = truncate_to_int32(shifted, saturating)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def logistic_table(input_scale: float, input_zero_point: int, output_scale: float,
                   output_zero_point: int, dtype, saturating: bool = False) -> np.ndarray:
    """LUTPopulate of LOGISTIC for int8/uint8 (see lut_populate_8bit)."""
    return lut_populate_8bit(_logistic_transform, input_scale, input_zero_point, output_scale,
                                 output_zero_point, dtype, saturating)


# LiteRT's int16 sigmoid table (common.h sigmoid_table_uint16): entry i is 65536 * sigmoid(i / 24)
# rounded, 44 entries one higher (tuned for the interpolation), capped at 65535. It is data, not a
# formula refnet can regenerate, so it is written out.
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432,
    42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475,
    49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485,
    55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519,
    59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036,
    62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405,
    64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179,
    65194, 65208, 65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337,
    65345, 65352, 65360, 65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517,
    65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525, 65525,
    65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533,
    65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
], dtype=np.int64)
assert SIGMOID_TABLE_UINT16.shape == (256,)


@dataclass(frozen=True)
class Int16SigmoidPlan:
    """The int16 LOGISTIC / TANH input rescaling onto 1/(3 * 4096): v = (x * multiplier + round)
    >> shift."""
    multiplier: int
    shift: int
    power_of_two: bool = False  # the input scale took LiteRT's power-of-two case
    power_of_two_shift: int = 0  # then: log2(input scale) + 12 (0, or 1 for TANH)


def _checked_log2(x: float) -> tuple[bool, int]:
    """CheckedLog2 in float32: (whether log2(x) is within 1e-3 of an integer, that integer)."""
    f32 = np.float32
    log2 = libm_logf(x) * (f32(1) / libm_logf(2.0))
    rounded = round_half_away(log2)
    return bool(abs(log2 - rounded) < f32(1e-3)), int(rounded)


def int16_sigmoid_plan(input_scale: float, power_of_two_shifts: tuple) -> Int16SigmoidPlan:
    """The input rescaling of TanhPrepare / SigmoidPrepare for int16 (the POT case folded into a
    multiplier of 3 << shift, as the reference kernel does)."""
    is_pot, log2 = _checked_log2(input_scale)
    pot_shift = 12 + log2  # (15 - 3 integer bits) + log2(scale)
    if is_pot and pot_shift in power_of_two_shifts:
        return Int16SigmoidPlan(3 << pot_shift, 0, power_of_two=True, power_of_two_shift=pot_shift)
    multiplier = float(np.float32(input_scale)) * 4096.0 * 3.0
    shift = 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    return Int16SigmoidPlan(int(truncate_to_int32(multiplier)), shift)


def _int16_rescaled(x: np.ndarray, plan: Int16SigmoidPlan) -> np.ndarray:
    # the int32 product wraps (x86-64), then rounds half up in the shift
    product = wrap_to_int32(x.astype(np.int64) * plan.multiplier)
    return rounding_divide_by_pot_ties_up(product, plan.shift).astype(np.int64)


def _interpolated_sigmoid(magnitude: np.ndarray, fraction_bits: int, saturated: int) -> np.ndarray:
    """(table[i] << f) + frac * (table[i + 1] - table[i]) for i = magnitude >> f, f fraction bits;
    `saturated` from entry 255 on."""
    index = magnitude >> fraction_bits
    inside = index < 255
    safe = np.where(inside, index, 0)
    low, high = SIGMOID_TABLE_UINT16[safe], SIGMOID_TABLE_UINT16[safe + 1]
    fraction = magnitude & ((1 << fraction_bits) - 1)
    return np.where(inside, (low << fraction_bits) + fraction * (high - low), saturated)


def logistic_int16(x: np.ndarray, plan: Int16SigmoidPlan) -> np.ndarray:
    """reference_integer_ops::Logistic for int16: output in 2**-15 steps."""
    v = _int16_rescaled(x, plan)
    magnitude = np.abs(v)  # |INT32_MIN| = 2**31 as the uint32 the reference reads
    result = _interpolated_sigmoid(magnitude, 9, 0x7FFF << 10)
    # sigmoid(-x) = 1 - sigmoid(x); 2**9 rounds the final shift by 10 (uint32 arithmetic)
    result = np.where(v >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1)
    return wrap_to_int16(result >> 10)


def tanh_int16(x: np.ndarray, plan: Int16SigmoidPlan) -> np.ndarray:
    """reference_integer_ops::Tanh for int16: 2 * sigmoid(2x) - 1, output in 2**-15 steps."""
    v = _int16_rescaled(x, plan)
    magnitude = np.abs(v)
    result = _interpolated_sigmoid(magnitude, 8, 0xFFFF << 8)
    half, rounding = 1 << 23, 1 << 7  # 0.5 in the table's Q8 units; 2**7 rounds the shift by 8
    result = np.where(v >= 0, result - half + rounding, -result + half + rounding - 1)
    return wrap_to_int16(result >> 8)


SIGMOID_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


@dataclass(frozen=True)
class SigmoidPlan:
    table: np.ndarray | None = None  # int8/uint8: the output of every input value (lut8 order)
    int16: Int16SigmoidPlan | None = None
    gemmlowp: bool = False  # Form.SIGMOID_INT16_GEMMLOWP: gemmlowp's fixed point on the raw Q3.12 input


def _prepare_int16_sigmoid(ctx: OpContext, x_t, y_t, power_of_two_shifts: tuple) -> SigmoidPlan:
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    if zp_in != 0 or zp_out != 0:
        raise ctx.fail(f"int16 {ctx.op.kind} needs zero points 0 (LiteRT rejects others)")
    is_pot, log2 = _checked_log2(s_out)
    if not is_pot or log2 != -15:
        raise ctx.fail(f"int16 {ctx.op.kind} needs output scale 2^-15, got {s_out!r} (LiteRT rejects others)")
    plan = int16_sigmoid_plan(s_in, power_of_two_shifts)
    gemmlowp = plan.power_of_two and ctx.profile.rounding(ctx.op.kind, x_t.dtype) == Form.SIGMOID_INT16_GEMMLOWP
    return SigmoidPlan(int16=plan, gemmlowp=gemmlowp)


def _prepare_logistic(ctx: OpContext):
    x_t, y_t = _same_shape_io(ctx, SIGMOID_DTYPES)
    if x_t.dtype == np.float32:
        return None
    if x_t.dtype == np.int16:
        s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
        if float(np.float32(s_out)) != 1.0 / 32768:
            raise ctx.fail(f"int16 LOGISTIC needs output scale 1/32768 exactly, got {s_out!r} "
                           f"(LiteRT rejects others)")
        return _prepare_int16_sigmoid(ctx, x_t, y_t, (0,))
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    if float(np.float32(s_out)) != 1.0 / 256:
        raise ctx.fail(f"quantized LOGISTIC needs output scale 1/256 exactly, got {s_out!r} "
                       f"(LiteRT rejects others)")
    table = logistic_table(s_in, zp_in, s_out, zp_out, x_t.dtype, ctx.profile.saturating_conversion)
    return SigmoidPlan(table=table[every_byte(x_t.dtype).astype(np.int64) - int(np.iinfo(x_t.dtype).min)])


@register("LOGISTIC", prepare=_prepare_logistic)
def logistic(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan = ctx.params
    if plan is None:
        return [logistic_float(x)]
    if plan.gemmlowp:
        return [logistic_int16_q3_12(x)]
    if plan.int16 is not None:
        return [logistic_int16(x, plan.int16)]
    return [lookup(plan.table, x, ctx.num_threads)]


def _prepare_tanh(ctx: OpContext):
    x_t, y_t = _same_shape_io(ctx, SIGMOID_DTYPES)
    if x_t.dtype == np.float32:
        return None
    if x_t.dtype == np.int16:
        return _prepare_int16_sigmoid(ctx, x_t, y_t, (0, 1))
    s_in, zp_in = per_tensor_quantization(ctx, x_t, "input")
    s_out, zp_out = per_tensor_quantization(ctx, y_t, "output")
    table = lut_populate_8bit(libm_tanhf, s_in, zp_in, s_out, zp_out, x_t.dtype,
                                  ctx.profile.saturating_conversion)
    return SigmoidPlan(table=table[every_byte(x_t.dtype).astype(np.int64) - int(np.iinfo(x_t.dtype).min)])


@register("TANH", prepare=_prepare_tanh)
def tanh(ctx: OpContext, inputs: list) -> list:
    x = inputs[0]
    plan = ctx.params
    if plan is None:
        return [libm_tanhf(x)]
    if plan.gemmlowp:  # an input scale of 2**-11 is first doubled (saturating) onto Q3.12
        return [gemmlowp_tanh_int16(saturating_left_shift_int16(x, plan.int16.power_of_two_shift))]
    if plan.int16 is not None:
        return [tanh_int16(x, plan.int16)]
    return [lookup(plan.table, x, ctx.num_threads)]


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
        _kernels_fast.hard_swish_f(x, out, "HARD_SWISH" in ctx.profile.float_reciprocal, ctx.num_threads)
        return [out]
    return [lookup(ctx.params.table, x, ctx.num_threads)]
