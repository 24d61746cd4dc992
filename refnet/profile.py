"""Profiles: the arithmetic of one real runtime, written down as data.

The op code asks the profile which arithmetic ("form") to use for an op kind — optionally for
an op kind and the dtype of its (first) input — and never forks on the runtime's name.
"reference" is LiteRT's reference kernels (BUILTIN_REF), "optimized" LiteRT's builtin optimized
kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), "xnnpack" LiteRT's default delegate (BUILTIN).

Every entry of OPTIMIZED and XNNPACK was measured op by op in isolation with
tools/measure_profiles.py (LiteRT 2.3.0, x86-64 AVX2, num_threads=1): each path's own input
tensors, exact integer intermediates recomputed, candidate arithmetics applied, and the entry
is the candidate with 0 mismatches over the three real uint8 models and the generated int8
models; the comments say what a measurement could not tell apart. Ops not listed equal the
reference arithmetic on every path (AVERAGE_POOL_2D, SOFTMAX, HARD_SWISH, RESIZE_BILINEAR,
CONCATENATION, RESHAPE, ARG_MAX, DEQUANTIZE, optimized ADD and MUL). The forms: refnet/forms.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .forms import Form


def _dtype_name(dtype) -> str | None:
    if dtype is None:
        return None
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


@dataclass(frozen=True)
class Profile:
    name: str
    default_rounding: int = Form.ROUNDING_DOUBLE
    # op kind -> form, or (op kind, input dtype name) -> form; the (kind, dtype) key wins.
    rounding_by_op: dict = field(default_factory=dict)
    description: str = ""
    # Which NaN a float sum keeps when both operands are NaN (x86 returns its first operand's,
    # and each compiled loop orders them its own way): op kind -> N, where the summed positions
    # in whole blocks of N (CONV_2D, FULLY_CONNECTED: the input channels of each tap; ADD: each
    # innermost row, or the flat array for equal shapes) keep the second operand's NaN (the
    # product; ADD's input2) and the others the first's (the running total; input1). Absent:
    # always the first. Measured with distinct NaN payloads (tests/ops/test_nan_payloads.py).
    float_nan_blocks: dict = field(default_factory=dict)

    def nan_block(self, op_kind: str) -> int:
        return int(self.float_nan_blocks.get(op_kind, 0))

    def rounding(self, op_kind: str, dtype=None) -> Form:
        """The arithmetic form for `op_kind` (and, when given, the dtype of its input)."""
        d = _dtype_name(dtype)
        if d is not None and (op_kind, d) in self.rounding_by_op:
            return Form(self.rounding_by_op[(op_kind, d)])
        return Form(self.rounding_by_op.get(op_kind, self.default_rounding))


# LiteRT's reference FullyConnected (int8 and uint8) requantizes in double precision since 2025.
REFERENCE = Profile("reference", rounding_by_op={"FULLY_CONNECTED": Form.ROUNDING_FLOAT64},
                    # LiteRT 2.3.0 x86-64: channel loops unrolled by 4, ADD vectorized by 16
                    float_nan_blocks={"CONV_2D": 4, "FULLY_CONNECTED": 4, "ADD": 16})

# LiteRT BUILTIN_WITHOUT_DEFAULT_DELEGATES on x86-64 (measured).
OPTIMIZED = Profile(
    "optimized",
    rounding_by_op={
        "CONV_2D": Form.ROUNDING_DOUBLE_TIES_UP,  # int8 (1x1 and 3x3) and uint8 (1x1; 3x3 can't tell)
        ("DEPTHWISE_CONV_2D", "int8"): Form.ROUNDING_DOUBLE_TIES_UP,
        ("DEPTHWISE_CONV_2D", "uint8"): Form.ROUNDING_DOUBLE,  # ties-up also matched: no negative ties
        "FULLY_CONNECTED": Form.ROUNDING_DOUBLE_TIES_UP,  # int8 measured
        ("MEAN", "int8"): Form.MEAN_OPTIMIZED_4D,  # keep_dims 4-D over H, W; other MEANs: reference
        ("QUANTIZE", "float32"): Form.QUANTIZE_RECIPROCAL_RNE,  # x / s with rint matched too
    },
    description="LiteRT builtin optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES), x86-64")

# LiteRT BUILTIN (XNNPACK delegate applied by default) on x86-64 AVX2 (measured).
XNNPACK = Profile(
    "xnnpack",
    rounding_by_op={
        "CONV_2D": Form.ROUNDING_FP32,  # int8: half-away, single and float64 matched too
        "DEPTHWISE_CONV_2D": Form.ROUNDING_FP32,
        "FULLY_CONNECTED": Form.ROUNDING_FP32,  # int8: every candidate matched (1001 outputs)
        ("MUL", "int8"): Form.ROUNDING_FP32,
        ("ADD", "int8"): Form.ADD_XNNPACK,  # the reference matched too (no ties in the data)
        ("ADD", "uint8"): Form.ADD_XNNPACK,  # the reference missed 1 tie in ~3.7M elements
        ("MEAN", "int8"): Form.MEAN_FP32,  # keep_dims and not
        ("QUANTIZE", "float32"): Form.QUANTIZE_RECIPROCAL_RNE,
        ("QUANTIZE", "uint8"): Form.QUANTIZE_VCVT,
    },
    description="LiteRT with its default XNNPACK delegate (BUILTIN), x86-64 AVX2")

PROFILES = {"reference": REFERENCE, "optimized": OPTIMIZED, "xnnpack": XNNPACK}

def get_profile(name_or_profile) -> Profile:
    if isinstance(name_or_profile, Profile):
        return name_or_profile
    from .errors import InputError

    try:
        return PROFILES[name_or_profile]
    except KeyError:
        raise InputError(f"unknown profile {name_or_profile!r}; known: {sorted(PROFILES)}") from None
