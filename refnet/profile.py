"""Profiles: the arithmetic of one real runtime, written down as data.

The op code asks the profile which arithmetic ("form") to use for an op kind — optionally for
an op kind and the dtype of its (first) input — and never forks on the runtime's name.
"reference" is LiteRT's reference kernels (BUILTIN_REF), "optimized" LiteRT's builtin optimized
kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), "xnnpack" LiteRT's default delegate (BUILTIN).

Every entry of OPTIMIZED and XNNPACK was measured op by op in isolation with
tools/measure_profiles.py (LiteRT 2.3.0, x86-64 AVX2, num_threads=1): each path's own input
tensors, exact integer intermediates recomputed, candidate arithmetics applied, and the entry
is the candidate with 0 mismatches over the three real uint8 models and the generated int8
models (see FINDINGS below for what each measurement could and could not tell apart).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Requantization forms (0..3 match the kernels' ROUNDING_* constants; the Cython requantize
# kernel knows 0..2, fully_connected knows 3; 4.. are computed by refnet/requantize_forms.py).
ROUNDING_DOUBLE = 0  # gemmlowp: rounding doubling high multiply, then rounding shift (ties away)
ROUNDING_SINGLE = 1  # one 64-bit product and one rounding shift (TFLITE_SINGLE_ROUNDING)
ROUNDING_DOUBLE_TIES_UP = 2  # high multiply as DOUBLE, final shift rounds ties toward +inf
ROUNDING_FLOAT64 = 3  # round(double(acc) * (double(s_x) * double(s_w) / double(s_y))), ties away
# XNNPACK fp32 requantization: y = clamp(rint(float(acc) * s) + y_zp), rint = round half to even,
# s = float32(float32(s_x * s_w[c]) / s_y) (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), or
# float32(float32(s_a * s_b) / s_y) with acc = (a - a_zp) * (b - b_zp) (MUL).
ROUNDING_FP32 = 4
# MEAN over H and W of a 4-D keep_dims int8 tensor, LiteRT optimized_integer_ops::Mean as built
# for x86 (its NEON code runs through NEON_2_SSE): raw sum (no zero point), one multiplier from
# QuantizeMultiplier(float32(s_x / float32(n * s_y))), bias = y_zp - (int)(float32(x_zp * s_x /
# s_y) +- 0.5); channels in whole blocks of 16 round the final shift ties up (vector path), the
# remaining channels use MultiplyByQuantizedMultiplier (ties away). Other MEANs: reference.
MEAN_OPTIMIZED_4D = 5
# XNNPACK MEAN (int8/uint8): raw int32 sum, then the int32 -> q8 convert:
# y = clamp(rint(float32(sum) * s + zp')), s = float32(float32(s_x / s_y) * float32(1 / n)),
# zp' = float32(y_zp - float32(float32(n * x_zp) * s)).
MEAN_FP32 = 6
# QUANTIZE float32 -> int8 (optimized, NEON path through NEON_2_SSE):
# y = clamp(rint(x * float32(1 / s)) + zp), round half to even (not x / s, half away).
QUANTIZE_RECIPROCAL_RNE = 7
# XNNPACK q8 -> q8 QUANTIZE (vcvt): m = lrintf(256 * float32(s_x / s_y)),
# y = clamp((((y_zp << 8) - m * x_zp + 128) + x * m) >> 8) (arithmetic shift: ties up).
QUANTIZE_VCVT = 8
# XNNPACK ADD (qu8/qs8 vadd): ra = float32(s_a / s_y), rb = float32(s_b / s_y); with e the
# float exponent of max(ra, rb), shift = 20 - e and m_a = lrintf(ra * 2**shift) (likewise m_b);
# y = clamp((((1 << (shift - 1)) + (a - a_zp) * m_a + (b - b_zp) * m_b) >> shift) + y_zp)
# (arithmetic shift: ties toward +inf).
ADD_XNNPACK = 9

ROUNDING_NAMES = {
    ROUNDING_DOUBLE: "double rounding (gemmlowp, ties away from zero)",
    ROUNDING_SINGLE: "single rounding (64-bit product, ties up)",
    ROUNDING_DOUBLE_TIES_UP: "double rounding, final shift ties up",
    ROUNDING_FLOAT64: "float64 scale, round half away from zero",
    ROUNDING_FP32: "float32 scale, round half to even (XNNPACK fp32 requantization)",
}
FORM_NAMES = {
    **ROUNDING_NAMES,
    MEAN_OPTIMIZED_4D: "optimized 4-D MEAN (raw sum, float32 scale folded with 1/n, 16-channel "
                       "blocks ties up, tail ties away)",
    MEAN_FP32: "XNNPACK MEAN (raw int32 sum, float32 convert, round half to even)",
    QUANTIZE_RECIPROCAL_RNE: "float32 multiply by 1/scale, round half to even",
    QUANTIZE_VCVT: "XNNPACK vcvt: 8.8 fixed-point multiplier, ties up",
    ADD_XNNPACK: "XNNPACK vadd: 21-bit multipliers from float32 scale ratios, one shift, ties up",
}


def _dtype_name(dtype) -> str | None:
    if dtype is None:
        return None
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


@dataclass(frozen=True)
class Profile:
    name: str
    default_rounding: int = ROUNDING_DOUBLE
    # op kind -> form, or (op kind, input dtype name) -> form; the (kind, dtype) key wins.
    rounding_by_op: dict = field(default_factory=dict)
    description: str = ""

    def rounding(self, op_kind: str, dtype=None) -> int:
        """The arithmetic form for `op_kind` (and, when given, the dtype of its input)."""
        d = _dtype_name(dtype)
        if d is not None and (op_kind, d) in self.rounding_by_op:
            return self.rounding_by_op[(op_kind, d)]
        return self.rounding_by_op.get(op_kind, self.default_rounding)


# LiteRT's reference FullyConnected (int8 and uint8) requantizes in double precision since 2025.
REFERENCE = Profile("reference", rounding_by_op={"FULLY_CONNECTED": ROUNDING_FLOAT64})

# LiteRT BUILTIN_WITHOUT_DEFAULT_DELEGATES on x86-64 (measured, see FINDINGS).
OPTIMIZED = Profile(
    "optimized",
    rounding_by_op={
        "CONV_2D": ROUNDING_DOUBLE_TIES_UP,  # int8 (1x1 and 3x3) and uint8 (1x1; 3x3 can't tell)
        ("DEPTHWISE_CONV_2D", "int8"): ROUNDING_DOUBLE_TIES_UP,
        ("DEPTHWISE_CONV_2D", "uint8"): ROUNDING_DOUBLE,  # ties-up also matched: no negative ties
        "FULLY_CONNECTED": ROUNDING_DOUBLE_TIES_UP,  # int8 measured
        ("MEAN", "int8"): MEAN_OPTIMIZED_4D,
        ("QUANTIZE", "float32"): QUANTIZE_RECIPROCAL_RNE,
    },
    description="LiteRT builtin optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), x86-64")

# LiteRT BUILTIN (XNNPACK delegate applied by default) on x86-64 AVX2 (measured, see FINDINGS).
XNNPACK = Profile(
    "xnnpack",
    rounding_by_op={
        "CONV_2D": ROUNDING_FP32,
        "DEPTHWISE_CONV_2D": ROUNDING_FP32,
        "FULLY_CONNECTED": ROUNDING_FP32,  # int8: every candidate matched (1001 outputs)
        ("MUL", "int8"): ROUNDING_FP32,
        ("ADD", "int8"): ADD_XNNPACK,
        ("ADD", "uint8"): ADD_XNNPACK,
        ("MEAN", "int8"): MEAN_FP32,
        ("QUANTIZE", "float32"): QUANTIZE_RECIPROCAL_RNE,
        ("QUANTIZE", "uint8"): QUANTIZE_VCVT,
    },
    description="LiteRT with its default XNNPACK delegate (BUILTIN), x86-64 AVX2")

PROFILES = {"reference": REFERENCE, "optimized": OPTIMIZED, "xnnpack": XNNPACK}

# What the measurement found, op x dtype x path (tools/measure_profiles.py prints the table).
# "= reference" means refnet's reference arithmetic reproduced that path's bits in isolation.
FINDINGS = {
    ("CONV_2D", "int8", "optimized"): "double rounding, final shift ties up (1x1 and 3x3)",
    ("CONV_2D", "uint8", "optimized"): "1x1: double rounding ties up; 3x3: double and ties-up "
                                       "both match (no negative ties in the data)",
    ("DEPTHWISE_CONV_2D", "int8", "optimized"): "double rounding, final shift ties up",
    ("DEPTHWISE_CONV_2D", "uint8", "optimized"): "double rounding (ties-up matched too)",
    ("FULLY_CONNECTED", "int8", "optimized"): "double rounding, final shift ties up",
    ("MEAN", "int8", "optimized"): "keep_dims 4-D over H, W: MEAN_OPTIMIZED_4D; other: = reference",
    ("QUANTIZE", "float32", "optimized"): "rint(x * float32(1/s)) + zp (x / s with rint matched too)",
    ("CONV_2D", "uint8", "xnnpack"): "fp32: rint(float(acc) * float32(float32(s_x*s_w)/s_y)) + zp",
    ("CONV_2D", "int8", "xnnpack"): "fp32 as uint8 (per-channel s_w); half-away, single and "
                                    "float64 matched too",
    ("DEPTHWISE_CONV_2D", "uint8", "xnnpack"): "fp32 as CONV_2D",
    ("DEPTHWISE_CONV_2D", "int8", "xnnpack"): "fp32 as CONV_2D",
    ("FULLY_CONNECTED", "int8", "xnnpack"): "every candidate matched (cannot tell)",
    ("MUL", "int8", "xnnpack"): "fp32: rint(float((a-a_zp)*(b-b_zp)) * float32(float32(s_a*s_b)/s_y)) + zp",
    ("MEAN", "int8", "xnnpack"): "MEAN_FP32 (keep_dims and not)",
    ("QUANTIZE", "float32", "xnnpack"): "as optimized",
    ("QUANTIZE", "uint8", "xnnpack"): "QUANTIZE_VCVT",
    ("ADD", "int8/uint8", "optimized"): "= reference",
    ("ADD", "uint8", "xnnpack"): "ADD_XNNPACK (the reference matched all but 1 element of "
                                 "~3.7M over 8 image runs: the difference is a tie)",
    ("ADD", "int8", "xnnpack"): "ADD_XNNPACK and the reference both matched (no ties in the data); "
                                "the same XNNPACK kernel as uint8",
    ("AVERAGE_POOL_2D", "uint8", "all"): "= reference",
    ("SOFTMAX", "int8/uint8", "all"): "= reference",
    ("HARD_SWISH", "int8", "all"): "= reference",
    ("MUL", "int8", "optimized"): "= reference",
    ("RESIZE_BILINEAR", "uint8", "all"): "= reference",
    ("CONCATENATION, RESHAPE, ARG_MAX, DEQUANTIZE", "*", "all"): "= reference",
}


def get_profile(name_or_profile) -> Profile:
    if isinstance(name_or_profile, Profile):
        return name_or_profile
    from .errors import InputError

    try:
        return PROFILES[name_or_profile]
    except KeyError:
        raise InputError(f"unknown profile {name_or_profile!r}; known: {sorted(PROFILES)}") from None
