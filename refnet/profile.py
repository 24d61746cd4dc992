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
reference arithmetic on every path (AVERAGE_POOL_2D, float SOFTMAX, HARD_SWISH, int8 RESIZE_BILINEAR on
the optimized path, CONCATENATION, RESHAPE, ARG_MAX, DEQUANTIZE, optimized int8 ADD and MUL; optimized
8-bit SUB, quantized DIV and int8 EXP, which run LiteRT's reference code on every path: single-op
sweeps). The forms: refnet/forms.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .forms import ORDERED, FloatSum, Form


def _dtype_name(dtype) -> str | None:
    if dtype is None:
        return None
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


@dataclass(frozen=True)
class Profile:
    name: str  # the id: PATH@DIST-VERSION/ARCH, e.g. optimized@ai-edge-litert-2.3.0/aarch64
    default_rounding: int = Form.ROUNDING_DOUBLE
    # op kind -> form, (op kind, input dtype name) -> form, or (op kind, dtype, variant) -> form,
    # the most specific key winning. A variant names a class of op instances a runtime treats
    # apart: "single pixel" = a conv whose output has one pixel (a matrix-vector product).
    rounding_by_op: dict = field(default_factory=dict)
    description: str = ""
    # Which NaN a float sum keeps when both operands are NaN (x86 returns its first operand's,
    # and each compiled loop orders them its own way): op kind -> N, where the summed positions
    # in whole blocks of N (CONV_2D, FULLY_CONNECTED: the input channels of each tap; ADD: each
    # innermost row, or the flat array for equal shapes) keep the second operand's NaN (the
    # product; ADD's input2) and the others the first's (the running total; input1). Absent:
    # always the first. Measured with distinct NaN payloads (tests/ops/test_nan_payloads.py).
    float_nan_blocks: dict = field(default_factory=dict)
    # The same for a float ADD / MUL whose one operand repeats along the other (broadcast over the
    # leading dimensions): op kind -> N, input2's NaN kept at the positions of each repeated run
    # (the repeated operand's size) in whole blocks of N, input1's elsewhere; a single-value
    # input1 keeps input2's NaN everywhere. Absent: always input1's.
    float_nan_broadcast_blocks: dict = field(default_factory=dict)
    # How float32 sums of products are formed (refnet/forms.py FloatSum): op kind -> FloatSum.
    # Absent: ORDERED (products rounded, added in order, as LiteRT's reference on x86-64).
    float_sums: dict = field(default_factory=dict)
    # Op kinds whose float32 division by d is a product with float32(1 / d) (a build compiled with
    # -freciprocal-math): MEAN's sum / n, SOFTMAX's e / sum, QUANTIZE's x / scale, HARD_SWISH's
    # x * relu6 / 6, which becomes (x * (1 / 6)) * relu6.
    float_reciprocal: frozenset = frozenset()
    # Op kinds whose float32 expression a * b + c (outside the sums above) the build contracts into
    # one FMA: CONCATENATION's uint8 requantization q * scale + bias.
    float_contracted: frozenset = frozenset()
    # static_cast<int32_t>(float) of NaN or out-of-range values: INT32_MIN on x86-64, saturated
    # (NaN -> 0) on aarch64 (fixedpoint.truncate_to_int32).
    saturating_conversion: bool = False
    # The build runs with the CPU in flush-to-zero mode (a -ffast-math library sets FPCR.FZ when it
    # loads): float32 subnormals read and written as zero. Modelled at op boundaries (every float
    # input and output of an op); a subnormal inside one op's arithmetic is not.
    flush_denormals: bool = False
    # What the build computes without a defined result (feature -> what was measured): refnet
    # refuses such ops under this profile instead of inventing bits.
    undefined: dict = field(default_factory=dict)

    measured: str = ""  # which build and corpus reproduced this profile's bits
    # rounding()'s answers by (op kind, dtype, variant): ops ask at invoke, and np.dtype(...).name
    # costs ~20 us a call (not an init field: dataclasses.replace starts an empty one)
    _rounding_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def path(self) -> str:
        return self.name.split("@")[0]

    @property
    def build(self) -> str:
        return self.name.split("@")[1] if "@" in self.name else ""

    def nan_block(self, op_kind: str) -> int:
        return int(self.float_nan_blocks.get(op_kind, 0))

    def nan_broadcast_block(self, op_kind: str) -> int:
        return int(self.float_nan_broadcast_blocks.get(op_kind, 0))

    def float_sum(self, op_kind: str) -> FloatSum:
        return self.float_sums.get(op_kind, ORDERED)

    def rounding(self, op_kind: str, dtype=None, variant: str | None = None) -> Form:
        """The arithmetic form for `op_kind` (and, when given, the dtype of its input and the
        op's variant)."""
        key = (op_kind, dtype, variant)
        form = self._rounding_cache.get(key)
        if form is None:
            form = self._rounding_cache[key] = self._lookup_rounding(op_kind, dtype, variant)
        return form

    def _lookup_rounding(self, op_kind: str, dtype, variant: str | None) -> Form:
        d = _dtype_name(dtype)
        if d is not None and variant is not None and (op_kind, d, variant) in self.rounding_by_op:
            return Form(self.rounding_by_op[(op_kind, d, variant)])
        if d is not None and (op_kind, d) in self.rounding_by_op:
            return Form(self.rounding_by_op[(op_kind, d)])
        return Form(self.rounding_by_op.get(op_kind, self.default_rounding))

    def exact_rounding(self, op_kind: str, dtype, variant: str, default: int) -> Form:
        """The form of exactly (op kind, dtype, variant), else `default` (no fallback to the op's
        broader entries: for a variant measured apart from them)."""
        return Form(self.rounding_by_op.get((op_kind, _dtype_name(dtype), variant), default))

    def rounding_16x8(self, op_kind: str) -> Form:
        """The requantization form of a 16x8 weighted op (int16 input, int8 weights, int64
        accumulators): the (op kind, "int16") entry; else the float64 form where the op's own entry
        is that form (the reference FULLY_CONNECTED requantizes every quantized type in double);
        else Form.ROUNDING_INT64_REDUCED, the int64 MultiplyByQuantizedMultiplier."""
        if (op_kind, "int16") in self.rounding_by_op:
            return Form(self.rounding_by_op[(op_kind, "int16")])
        if self.rounding_by_op.get(op_kind) == Form.ROUNDING_FLOAT64:
            return Form.ROUNDING_FLOAT64
        return Form.ROUNDING_INT64_REDUCED


X86_2_3 = "ai-edge-litert-2.3.0/x86_64"
ARM_2_3 = "ai-edge-litert-2.3.0/aarch64"
# What the measurements ran on (tools/measure_profiles.py, tools/measure_builds.py).
CORAL = "the 3 Coral uint8 models (../shared/models) on cat.bmp and grace_hopper.bmp"
FACTORY = ("tools.model_factory int8, int8_io and uint8_io V2, V3-Large, V3-Small, EdgeTPU-style at 96 "
           "and 128 (python -m tools.measure_builds)")
FACTORY_FLOAT = "tools.model_factory float32 V2, V3-Large, V3-Small, EdgeTPU-style at 96 and 128"

# An 8-bit SUB whose output multiplier exceeds 1 (C leaves its rescale undefined): what ai-edge-litert
# 2.3.0 x86-64 computes on every path, same shapes or broadcast (tests/ops/test_binary_unary.py; also
# TensorFlow 2.21). Not given for aarch64: there the result depends on the loop and the path (the
# reference same-shape loop shifts the high multiply left, its broadcast loop and the optimized path
# give the sign), so refnet refuses such a SUB under those profiles.
SUB_ABOVE_ONE = "output multiplier above 1"
SUB_ABOVE_ONE_X86 = {("SUB", "int8", SUB_ABOVE_ONE): Form.SUB_ABOVE_ONE_SIGN,
                     ("SUB", "uint8", SUB_ABOVE_ONE): Form.SUB_ABOVE_ONE_SIGN}


# ai-edge-litert 2.3.0 x86-64's int8 EXP table saturates its conversions (every input value of 40
# quantizations, tests/ops/test_binary_unary.py; TensorFlow 2.21 too, tflite-runtime 2.14.0 not).
EXP_SATURATING = {("EXP", "int8"): Form.LUT_SATURATING}


# A build whose `undefined` has this key has no int8 / uint8 -> int16 QUANTIZE (refnet refuses it).
QUANTIZE_8BIT_TO_INT16 = "QUANTIZE int8/uint8 -> int16"
# The variant of an op that XNNPACK's delegate leaves to LiteRT's own kernel (its form says when):
# (QUANTIZE, int8 / uint8, NOT_DELEGATED) is what then runs an 8-bit -> 8-bit QUANTIZE.
NOT_DELEGATED = "not delegated"
# An op XNNPACK takes on an x86-64 CPU without AVX-512F, where it picks its SSE4.1 / AVX kernels (the
# CPU refnet runs on stands for the device's: XNNPACK chooses its kernels by cpuid at run time).
BLEND_KERNELS = "XNNPACK, x86-64 without AVX-512F"
# LiteRT's optimized 8-bit -> 8-bit requantizing QUANTIZE (optimized_ops::Requantize, NEON through
# NEON_2_SSE on x86-64): whole blocks of 16 flat elements in MultiplyByQuantizedMultiplier4Rows (its
# final vrshl shift ties up), the scalar tail as the reference; int16 outputs and int16 inputs take
# the reference code. Single-op sweeps (tests/ops/test_quantize.py, int8/uint8 -> int8/uint8: every case
# on both paths; where the reference differs, only this form matched): ai-edge-litert 2.3.0 x86-64 and
# tflite-runtime 2.14.0 aarch64; ai-edge-litert 2.3.0 aarch64 (whose profiles inherit it) on the 8-bit
# pairs of test_requantize and test_requantize_ties, optimized and XNNPACK paths: 16 of 16 tests pass.
REQUANTIZE_OPTIMIZED = {("QUANTIZE", "int8"): Form.ROUNDING_TIES_UP_ELEMENTS_16,
                        ("QUANTIZE", "uint8"): Form.ROUNDING_TIES_UP_ELEMENTS_16}
REQUANTIZE_SWEEP = "requantizing QUANTIZE single-op sweeps (tests/ops/test_quantize.py)"


def _without_sub_above_one(rounding_by_op: dict) -> dict:
    return {key: form for key, form in rounding_by_op.items() if key not in SUB_ABOVE_ONE_X86}


# LiteRT's reference FullyConnected (int8 and uint8) requantizes in double precision since 2025.
REFERENCE = Profile(f"reference@{X86_2_3}", rounding_by_op={"FULLY_CONNECTED": Form.ROUNDING_FLOAT64,
                                                            **SUB_ABOVE_ONE_X86, **EXP_SATURATING},
                    # LiteRT 2.3.0 x86-64: channel loops unrolled by 4, ADD and MUL vectorized by
                    # 16, their broadcast loops by 16 then 8
                    float_nan_blocks={"CONV_2D": 4, "FULLY_CONNECTED": 4, "ADD": 16, "MUL": 16},
                    float_nan_broadcast_blocks={"ADD": 8, "MUL": 8},
                    description="LiteRT reference kernels (BUILTIN_REF)",
                    measured=f"{X86_2_3}: {CORAL}; {FACTORY}; single-op sweeps (tests/ops)")

# The optimized int8/uint8 SOFTMAX of every build but ai-edge-litert 2.3.0 aarch64 (which defines
# TFLITE_SOFTMAX_USE_UINT16_LUT): a float32 exp table. It equals the reference's fixed point except
# near a rounding boundary: found by `refnet verify --images` on 1000 images (2 differed on the XNNPACK
# path, where SOFTMAX is not delegated), then measured on rows searched for such ties.
SOFTMAX_TABLE = {("SOFTMAX", "int8"): Form.SOFTMAX_FLOAT_TABLE, ("SOFTMAX", "uint8"): Form.SOFTMAX_FLOAT_TABLE}
SOFTMAX_TIES = ("SOFTMAX tie rows: 112 int8 and 76 uint8 rows of 1001 where the table and the fixed point "
                "differ, 112/112 and 76/76 on the optimized and XNNPACK paths")

# The optimized per-tensor int8/uint8 DEQUANTIZE (an SSD detector's scores before its post-process):
# multiply then add in blocks of 8. Found by refnet verify on tools/detector_factory.py's int8 models.
DEQUANTIZE_BLOCKS = {("DEQUANTIZE", "int8"): Form.DEQUANTIZE_MUL_ADD_8,
                     ("DEQUANTIZE", "uint8"): Form.DEQUANTIZE_MUL_ADD_8}
DEQUANTIZE_SWEEP = "DEQUANTIZE single-op sweeps (tests/ops/test_quantize.py), tools/detector_factory.py int8 models"
DEQUANTIZE_BLOCKS_ARM = {("DEQUANTIZE", "int8"): Form.DEQUANTIZE_FMA_8, ("DEQUANTIZE", "uint8"): Form.DEQUANTIZE_FMA_8}

# The optimized float32 and uint8 RESIZE_BILINEAR (int8 takes the reference's integer kernel). Found by
# single-op sweeps (tests/ops/test_resize.py): the Coral DeepLab's align_corners upsampling happens to
# give the reference's bits, random shapes do not.
RESIZE_OPTIMIZED = {("RESIZE_BILINEAR", "float32"): Form.RESIZE_BILINEAR_OPTIMIZED,
                    ("RESIZE_BILINEAR", "uint8"): Form.RESIZE_BILINEAR_OPTIMIZED}
RESIZE_OPTIMIZED_ARM = {("RESIZE_BILINEAR", "float32"): Form.RESIZE_BILINEAR_OPTIMIZED_FMA,
                        ("RESIZE_BILINEAR", "uint8"): Form.RESIZE_BILINEAR_OPTIMIZED_FMA}
# The optimized int16 kernels (single-op sweeps over every int16 input, tests/ops/test_parametric_relu.py
# and test_activations.py): LEAKY_RELU keeps the alpha multiplier's sign.
# A power-of-two input scale takes gemmlowp's int16 LOGISTIC / TANH (same sweeps).
SIGMOID_INT16 = {("LOGISTIC", "int16"): Form.SIGMOID_INT16_GEMMLOWP, ("TANH", "int16"): Form.SIGMOID_INT16_GEMMLOWP}
LEAKY_RELU_INT16 = {("LEAKY_RELU", "int16"): Form.LEAKY_RELU_SIGNED_ALPHA, **SIGMOID_INT16}
# 16x8 FULLY_CONNECTED (int16 input, int64 accumulators): the optimized kernel (and XNNPACK, which
# leaves int16 to it) requantizes in double as the reference does, beyond int32 x86's INT32_MIN
# conversion (tests/ops/test_weighted_16x8.py: 0 of 40 cases differ; the int64 fixed point missed 82).
FC_16X8_FLOAT64 = {("FULLY_CONNECTED", "int16"): Form.ROUNDING_FLOAT64}
SWEEP_16X8 = "16x8 single-op sweeps (tests/ops/test_*_16x8.py), tools/quant16_factory.py models"
# The optimized same-shape int16 ADD (XNNPACK does not take int16: the same kernel). Found on the
# EdgeTPU-style 16x8 model (1 element by 1); on 25 same-shape ADDs (452k elements, 4 where the reference
# differs) 0 mismatches. Blocks of 8 matched too (the source's NEON loop takes 16).
ADD_16X8 = {("ADD", "int16"): Form.ADD_INT16_INPUT_SHIFT_16,
            # float32 -> int16 QUANTIZE: x * float32(1 / s), rint in blocks of 8, the tail in double (the V3s'
            # QUANTIZEs after their float32 HARD_SWISH: 0 of 742k elements differ, the reference division
            # missed 36 / 43; 30 single-op cases of ties: 0, blocks of 4 / 16 missed 10 / 20)
            ("QUANTIZE", "float32", "int16 output"): Form.QUANTIZE_RECIPROCAL_RNE_8}
# The optimized SUM / REDUCE_MAX / REDUCE_MIN (optimized_ops::ReduceGeneric, QuantizedMeanOrSum):
# single-op sweeps (tests/ops/test_reduce.py), ai-edge-litert 2.3.0 x86-64.
REDUCE_OPTIMIZED = {("SUM", "float32"): Form.REDUCE_FROM_FIRST, ("REDUCE_MAX", "float32"): Form.REDUCE_FROM_FIRST,
                    ("REDUCE_MIN", "float32"): Form.REDUCE_FROM_FIRST,
                    ("SUM", "int8"): Form.SUM_FP32_ROUND, ("SUM", "uint8"): Form.SUM_FP32_ROUND}

# LiteRT BUILTIN_WITHOUT_DEFAULT_DELEGATES on x86-64 (measured).
OPTIMIZED = Profile(
    f"optimized@{X86_2_3}",
    rounding_by_op={
        "CONV_2D": Form.ROUNDING_DOUBLE_TIES_UP,  # int8 (1x1 and 3x3) and uint8 (1x1; 3x3 can't tell)
        ("DEPTHWISE_CONV_2D", "int8"): Form.ROUNDING_DOUBLE_TIES_UP,
        ("DEPTHWISE_CONV_2D", "uint8"): Form.ROUNDING_DOUBLE,  # ties-up also matched: no negative ties
        "FULLY_CONNECTED": Form.ROUNDING_DOUBLE_TIES_UP,  # int8 measured
        ("MEAN", "int8"): Form.MEAN_OPTIMIZED_4D,  # keep_dims 4-D over H, W; other MEANs: reference
        # 2 x 300 random keep_dims global pools: 0 of 31745 elements differ; the reference form
        # missed 353 of the first 14846 (its uint8 kernel has the int8 one's arithmetic)
        ("MEAN", "uint8"): Form.MEAN_OPTIMIZED_4D,
        ("QUANTIZE", "float32"): Form.QUANTIZE_RECIPROCAL_RNE,  # x / s with rint matched too
        # the issue-15 case, reproduced exhaustively (all 65536 input pairs: 1 tie, 8-element blocks)
        ("ADD", "uint8"): Form.ADD_INPUT_SHIFT_FLOOR_8,
        # optimized_ops::Quantize after the gemm + col2im (single-op sweeps, tests/ops/test_transpose_conv.py)
        ("TRANSPOSE_CONV", "int8"): Form.ROUNDING_TIES_UP_CHANNELS_8,
        ("TRANSPOSE_CONV", "uint8"): Form.ROUNDING_TIES_UP_ELEMENTS_16,
        **SOFTMAX_TABLE,
        **DEQUANTIZE_BLOCKS,
        **REQUANTIZE_OPTIMIZED,
        **RESIZE_OPTIMIZED,
        **LEAKY_RELU_INT16,
        **FC_16X8_FLOAT64,
        **ADD_16X8,
        **REDUCE_OPTIMIZED,
        **SUB_ABOVE_ONE_X86,
        **EXP_SATURATING,
    },
    description="LiteRT builtin optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES)",
    measured=f"{X86_2_3}: {CORAL}; {FACTORY}; {SOFTMAX_TIES}; {DEQUANTIZE_SWEEP}; {SWEEP_16X8}; {REQUANTIZE_SWEEP}")

# LiteRT BUILTIN (XNNPACK delegate applied by default) on x86-64 (measured).
XNNPACK = Profile(
    f"xnnpack@{X86_2_3}",
    rounding_by_op={
        "CONV_2D": Form.ROUNDING_FP32,  # int8: half-away, single and float64 matched too
        "DEPTHWISE_CONV_2D": Form.ROUNDING_FP32,
        "TRANSPOSE_CONV": Form.ROUNDING_FP32,
        "FULLY_CONNECTED": Form.ROUNDING_FP32,  # int8: every candidate matched (1001 outputs)
        ("MUL", "int8"): Form.ROUNDING_FP32,
        ("ADD", "int8"): Form.ADD_XNNPACK,  # the reference matched too (no ties in the data)
        ("ADD", "uint8"): Form.ADD_XNNPACK,  # the reference missed 1 tie in ~3.7M elements
        # vadd with input2's scale negated (single-op sweeps, tests/ops/test_binary_unary.py)
        ("SUB", "int8"): Form.ADD_XNNPACK, ("SUB", "uint8"): Form.ADD_XNNPACK,
        ("MEAN", "int8"): Form.MEAN_FP32,  # keep_dims and not
        # 300 random global pools each with and without keep_dims: 0 of 29649 elements differ; the
        # reference form missed 38
        ("MEAN", "uint8"): Form.MEAN_FP32,
        ("SUM", "int8"): Form.SUM_FP32,  # single-op sweeps and sums searched where the fma differs
        ("SUM", "uint8"): Form.SUM_FP32,
        # float32 REDUCE_MAX / MIN: NaN, ties and -inf as the optimized kernel (single-op sweeps);
        # float32 SUM sums in another order, not modelled (README, "Profiles")
        ("REDUCE_MAX", "float32"): Form.REDUCE_FROM_FIRST, ("REDUCE_MIN", "float32"): Form.REDUCE_FROM_FIRST,
        **SUB_ABOVE_ONE_X86,  # XNNPACK leaves such a SUB to LiteRT's kernel
        **EXP_SATURATING,  # XNNPACK leaves int8 EXP to LiteRT's kernel
        ("QUANTIZE", "float32"): Form.QUANTIZE_RECIPROCAL_RNE,
        # int8 -> int8 and uint8 -> uint8 within the delegate's scale ratios: its convert (tools/head_factory.py
        # movenet_like int8, op 59; single-op sweeps); int8 <-> uint8 and other ratios: the optimized kernel
        ("QUANTIZE", "int8"): Form.QUANTIZE_VCVT,
        ("QUANTIZE", "uint8"): Form.QUANTIZE_VCVT,
        ("QUANTIZE", "int8", NOT_DELEGATED): Form.ROUNDING_TIES_UP_ELEMENTS_16,
        ("QUANTIZE", "uint8", NOT_DELEGATED): Form.ROUNDING_TIES_UP_ELEMENTS_16,
        ("RESIZE_BILINEAR", "int8"): Form.RESIZE_BILINEAR_Q11,
        ("RESIZE_BILINEAR", "uint8"): Form.RESIZE_BILINEAR_Q11,
        ("RESIZE_BILINEAR", "float32"): Form.RESIZE_BILINEAR_LERP,
        **SOFTMAX_TABLE,  # not delegated: the optimized kernel
        ("LEAKY_RELU", "int8"): Form.LEAKY_RELU_XNNPACK,
        ("LEAKY_RELU", "uint8"): Form.LEAKY_RELU_XNNPACK,
        **LEAKY_RELU_INT16,  # not delegated: the optimized kernel
        **FC_16X8_FLOAT64,  # int16 is not delegated
        **ADD_16X8,
        ("PRELU", "float32", BLEND_KERNELS): Form.PRELU_SIGN_SELECT,
    },
    description="LiteRT with its default XNNPACK delegate (BUILTIN)",
    measured=f"{X86_2_3} (AVX2 and AVX-512 + VNNI CPUs): {CORAL}; {FACTORY}; {SOFTMAX_TIES}; {SWEEP_16X8}; "
             f"{REQUANTIZE_SWEEP}")

# ai-edge-litert 2.3.0 aarch64 (emulated Cortex-A76, ../shared/tools/arm-litert.sh): the quantized
# reference kernels equal x86-64's; float32 sums contract multiply-add into FMA (clang), except in the
# channel blocks of 8 its loop vectoriser took. x86's NaN-payload rules are not measured here.
# aarch64 (ai-edge-litert 2.3.0, clang contracting multiply-adds): RESIZE_BILINEAR's float kernels fused
# (single-op sweeps, 30 cases x 3 modes per dtype and path). tflite-runtime 2.14.0 aarch64 (-ffast-math)
# differs again and is not modelled (2-10 of 10 cases per mode differ).
RESIZE_REFERENCE_ARM = {("RESIZE_BILINEAR", "float32"): Form.RESIZE_BILINEAR_REFERENCE_FMA,
                        ("RESIZE_BILINEAR", "uint8"): Form.RESIZE_BILINEAR_REFERENCE_FMA}
REFERENCE_ARM = Profile(f"reference@{ARM_2_3}", rounding_by_op={"FULLY_CONNECTED": Form.ROUNDING_FLOAT64,
                                                                **RESIZE_REFERENCE_ARM},
                        saturating_conversion=True, float_contracted=frozenset({"CONCATENATION"}),
                        float_sums={"CONV_2D": FloatSum(fused=True, unfused_block=8),
                                    "FULLY_CONNECTED": FloatSum(fused=True, unfused_block=8),
                                    "DEPTHWISE_CONV_2D": FloatSum(fused=True)},
                        description="LiteRT reference kernels (BUILTIN_REF)",
                        measured=f"{ARM_2_3}: {CORAL}; {FACTORY}; {FACTORY_FLOAT}; float single-op sweeps "
                                 f"(tools/measure_builds.py --sweep)")
OPTIMIZED_ARM = dataclasses.replace(
    OPTIMIZED, name=f"optimized@{ARM_2_3}", saturating_conversion=True,
    rounding_by_op={**_without_sub_above_one(OPTIMIZED.rounding_by_op),
                    "CONV_2D": Form.ROUNDING_SINGLE,  # NEON: one exact product, one rounding shift
                    # a one-pixel output (the logits conv) takes the matrix-vector path
                    ("CONV_2D", "uint8", "single pixel"): Form.ROUNDING_DOUBLE_TIES_UP,
                    ("CONV_2D", "int8", "single pixel"): Form.ROUNDING_DOUBLE_TIES_UP,
                    # its build defines TFLITE_SOFTMAX_USE_UINT16_LUT (12 of 12 tie cases)
                    ("SOFTMAX", "int8"): Form.SOFTMAX_UINT16_LUT,
                    ("SOFTMAX", "uint8"): Form.SOFTMAX_UINT16_LUT,
                    **DEQUANTIZE_BLOCKS_ARM, **RESIZE_OPTIMIZED_ARM},
    measured=f"{ARM_2_3}: {CORAL}; {FACTORY}; SOFTMAX tie sweeps; {DEQUANTIZE_SWEEP}")
XNNPACK_ARM = dataclasses.replace(
    XNNPACK, name=f"xnnpack@{ARM_2_3}", saturating_conversion=True,
    rounding_by_op={**_without_sub_above_one(XNNPACK.rounding_by_op),
                    # NEON rndnu: the exact product with the float32 scale, ties up
                    ("CONV_2D", "uint8"): Form.ROUNDING_RNDNU,
                    ("DEPTHWISE_CONV_2D", "uint8"): Form.ROUNDING_RNDNU,
                    ("MEAN", "int8"): Form.MEAN_FP32_FMA,  # NEON vfma
                    ("RESIZE_BILINEAR", "float32"): Form.RESIZE_BILINEAR_LERP_FMA,  # neonfma ibilinear
                    # Its quantized SUM (x86's form inherited) is not reproduced: on sums searched where
                    # the candidates differ, neither SUM_FP32, its fused nor its half-away variants
                    # matched every element (int8 fused: 12 of 13).
                    # not delegated: LiteRT's aarch64 optimized SOFTMAX (V2 int8 96: 1001 of 1001)
                    ("SOFTMAX", "int8"): Form.SOFTMAX_UINT16_LUT,
                    ("SOFTMAX", "uint8"): Form.SOFTMAX_UINT16_LUT},
    measured=f"{ARM_2_3}: {CORAL}; {FACTORY}; SOFTMAX tie sweeps")

# tflite-runtime 2.14.0 (the last tflite-runtime; Coral's Python stack), measured from dumps of the
# model rewritten so that every tensor is an output (it reuses ADD/MUL/RESHAPE input buffers).
TFL_2_14_X86 = "tflite-runtime-2.14.0/x86_64"
TFL_2_14_ARM = "tflite-runtime-2.14.0/aarch64"
# Its reference FullyConnected still requantizes in fixed point (the double precision came later).
# Its per-channel quantized FULLY_CONNECTED with keep_num_dims reads uninitialized memory (bits that
# change from invoke to invoke; measured on x86-64 and aarch64: 8 of 8 random cases wrong, 2 of them
# not even repeatable); without keep_num_dims it is the reference arithmetic.
UNDEFINED_2_14 = {"FULLY_CONNECTED per-channel keep_num_dims": "tflite-runtime 2.14.0 computes a per-channel "
                  "quantized FULLY_CONNECTED with keep_num_dims from uninitialized memory (its output can "
                  "change from run to run)",
                  # its Prepare accepts only int8 / uint8 outputs from an 8-bit input (quantize.cc:136; every
                  # int8 / uint8 -> int16 case of tests/ops/test_quantize.py fails to prepare, x86-64)
                  QUANTIZE_8BIT_TO_INT16: "tflite-runtime 2.14.0 rejects a QUANTIZE from int8 / uint8 to int16 "
                                          "(its Prepare fails)"}
# Its detection post-process puts each class's regular-NMS picks before the kept ones on ties (single-op
# tests/ops/test_detection_postprocess.py: every output equal on 13 cases x float32 / uint8, ties included).
NMS_2_14 = {"TFLite_Detection_PostProcess": Form.NMS_NEW_FIRST}
# (Its 8-bit SUB aborts on an output multiplier above 1, as its ADD does: refnet refuses it.)
REFERENCE_2_14_X86 = dataclasses.replace(REFERENCE, name=f"reference@{TFL_2_14_X86}", rounding_by_op=NMS_2_14,
                                         undefined=UNDEFINED_2_14,
                                         measured=f"{TFL_2_14_X86}: {CORAL}; {FACTORY}")
OPTIMIZED_2_14_X86 = Profile(
    f"optimized@{TFL_2_14_X86}",
    rounding_by_op={
        ("CONV_2D", "int8"): Form.ROUNDING_DOUBLE_TIES_UP,
        ("CONV_2D", "uint8"): Form.ROUNDING_DOUBLE,  # unlike 2.3.0: the reference rounding
        "DEPTHWISE_CONV_2D": Form.ROUNDING_DOUBLE,
        "FULLY_CONNECTED": Form.ROUNDING_DOUBLE_TIES_UP,
        ("MEAN", "int8"): Form.MEAN_OPTIMIZED_4D_SCALAR,
        ("MEAN", "uint8"): Form.MEAN_OPTIMIZED_4D_SCALAR,  # tests/ops/test_reduce.py global-pool sweep
        # 0 of 12288 elements differ on a random single-op sweep with 2000 exact float32 ties
        ("QUANTIZE", "float32"): Form.QUANTIZE_FLOAT64,
        **SOFTMAX_TABLE,
        **REDUCE_OPTIMIZED,  # the reduce sweeps under this build pass (tests/ops/test_reduce.py)
        **NMS_2_14,
        **RESIZE_OPTIMIZED,
        **SIGMOID_INT16,  # its int16 LEAKY_RELU is the reference's (single-op sweeps)
    },
    undefined=UNDEFINED_2_14,
    description="tflite-runtime builtin optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES)",
    measured=f"{TFL_2_14_X86}: {CORAL}; {FACTORY}; {SOFTMAX_TIES}")
# Its AUTO op resolver applies no XNNPACK delegate to quantized models: the optimized kernels run.
XNNPACK_2_14_X86 = dataclasses.replace(OPTIMIZED_2_14_X86, name=f"xnnpack@{TFL_2_14_X86}",
                                       description="tflite-runtime BUILTIN: no XNNPACK on quantized "
                                                   "models, so its optimized kernels")
# The aarch64 build: double rounding in CONV_2D (neither x86-64's ties-up int8 conv nor the single
# rounding of ai-edge-litert 2.3.0's aarch64 conv), ties up in int8 depthwise, NEON's vector MEAN
# and QUANTIZE.
# A -ffast-math build: its float32 sums are reassociated by the vectoriser (4 fused lanes over each
# tap's channels), divisions become reciprocal products, subnormals are flushed to zero.
REFERENCE_2_14_ARM = dataclasses.replace(
    REFERENCE_ARM, name=f"reference@{TFL_2_14_ARM}", rounding_by_op=NMS_2_14, undefined=UNDEFINED_2_14, float_contracted=frozenset(),
    float_sums={"CONV_2D": FloatSum(fused=True, lanes=4), "FULLY_CONNECTED": FloatSum(fused=True, lanes=4),
                "DEPTHWISE_CONV_2D": FloatSum(fused=True)},
    float_reciprocal=frozenset({"MEAN", "SOFTMAX", "HARD_SWISH", "QUANTIZE"}),
    flush_denormals=True,
    measured=f"{TFL_2_14_ARM}: {CORAL}; {FACTORY}; {FACTORY_FLOAT}; float single-op sweeps "
             f"(tools/measure_builds.py --sweep)")
OPTIMIZED_2_14_ARM = Profile(
    f"optimized@{TFL_2_14_ARM}", saturating_conversion=True,
    rounding_by_op={
        "CONV_2D": Form.ROUNDING_DOUBLE,
        # a one-pixel output (the logits conv) and FC take the matrix-vector path: ties up
        ("CONV_2D", "uint8", "single pixel"): Form.ROUNDING_DOUBLE_TIES_UP,
        ("CONV_2D", "int8", "single pixel"): Form.ROUNDING_DOUBLE_TIES_UP,
        ("DEPTHWISE_CONV_2D", "int8"): Form.ROUNDING_DOUBLE_TIES_UP,
        ("DEPTHWISE_CONV_2D", "uint8"): Form.ROUNDING_DOUBLE,
        "FULLY_CONNECTED": Form.ROUNDING_DOUBLE_TIES_UP,
        ("MEAN", "int8"): Form.MEAN_OPTIMIZED_4D,
        ("MEAN", "uint8"): Form.MEAN_OPTIMIZED_4D,  # tests/ops/test_reduce.py global-pool sweep
        ("QUANTIZE", "float32"): Form.QUANTIZE_RECIPROCAL_RNE,
        ("ADD", "uint8"): Form.ADD_INPUT_SHIFT_FLOOR_8,
        **REQUANTIZE_OPTIMIZED,  # NEON: as ai-edge-litert 2.3.0 x86-64's (tflite-runtime x86-64: the reference)
        **SOFTMAX_TABLE,  # unlike ai-edge-litert 2.3.0 on aarch64: no uint16 table
        **NMS_2_14,
        **DEQUANTIZE_BLOCKS_ARM,
        **SIGMOID_INT16,  # NEON gemmlowp: the same bits (single-op sweeps)
    },
    undefined=UNDEFINED_2_14,
    description="tflite-runtime builtin optimized kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES)",
    measured=f"{TFL_2_14_ARM}: {CORAL}; {FACTORY}; {SOFTMAX_TIES}; {REQUANTIZE_SWEEP}")
XNNPACK_2_14_ARM = dataclasses.replace(OPTIMIZED_2_14_ARM, name=f"xnnpack@{TFL_2_14_ARM}",
                                       description=XNNPACK_2_14_X86.description)
TFLITE_RUNTIME_2_14 = [REFERENCE_2_14_X86, OPTIMIZED_2_14_X86, XNNPACK_2_14_X86,
                   REFERENCE_2_14_ARM, OPTIMIZED_2_14_ARM, XNNPACK_2_14_ARM]

# TensorFlow 2.21's tf.lite.Interpreter: ai-edge-litert 2.3.0's kernels on x86-64 (the same bits on
# every op of the corpus), but its XNNPACK fuses the MEAN's multiply-add (on this AVX-512 machine).
TF_2_21_X86 = "tensorflow-2.21.0/x86_64"
ALIASES_TF_2_21 = [dataclasses.replace(p, name=f"{p.path}@{TF_2_21_X86}",
                                       measured=f"{TF_2_21_X86}: {CORAL}; {FACTORY}; {SOFTMAX_TIES} (= {p.name})")
                   for p in (REFERENCE, OPTIMIZED)] + [
    dataclasses.replace(XNNPACK, name=f"xnnpack@{TF_2_21_X86}",
                        rounding_by_op={**XNNPACK.rounding_by_op, ("MEAN", "int8"): Form.MEAN_FP32_FMA,
                                        # its XNNPACK SUM rounds half away (tests/ops/test_reduce.py swept
                                        # under this build, and sums searched where the roundings differ)
                                        ("SUM", "int8"): Form.SUM_FP32_HALF_AWAY,
                                        ("SUM", "uint8"): Form.SUM_FP32_HALF_AWAY},
                        description="TensorFlow's tf.lite with its default XNNPACK delegate (BUILTIN)",
                        measured=f"{TF_2_21_X86} (AVX-512 + VNNI CPU): {CORAL}; {FACTORY}; {SOFTMAX_TIES}")]

PATHS = ("reference", "optimized", "xnnpack")
PROFILES = {p.name: p for p in (REFERENCE, OPTIMIZED, XNNPACK, REFERENCE_ARM, OPTIMIZED_ARM, XNNPACK_ARM,
                                *TFLITE_RUNTIME_2_14, *ALIASES_TF_2_21)}


def machine() -> str:
    """This machine's architecture as the ids name it (x86_64, aarch64)."""
    import platform

    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def installed_build() -> str | None:
    """DIST-VERSION/ARCH of the LiteRT package installed beside refnet (not imported), or None."""
    from importlib import metadata

    for dist in ("ai-edge-litert", "tflite-runtime"):
        try:
            return f"{dist}-{metadata.version(dist)}/{machine()}"
        except metadata.PackageNotFoundError:
            continue
    return None


def resolve_id(name: str) -> str:
    """A short path name -> the id it means here: the installed LiteRT build when the table has
    it, else ai-edge-litert 2.3.0 on this machine's architecture (x86-64 when not measured)."""
    if name not in PATHS:
        return name
    for build in (installed_build(), f"ai-edge-litert-2.3.0/{machine()}", X86_2_3):
        if build and f"{name}@{build}" in PROFILES:
            return f"{name}@{build}"
    return f"{name}@{X86_2_3}"


def get_profile(name_or_profile) -> Profile:
    """A Profile by id (PATH@DIST-VERSION/ARCH) or short path name (reference, optimized, xnnpack)."""
    if isinstance(name_or_profile, Profile):
        return name_or_profile
    from .errors import InputError

    try:
        return PROFILES[resolve_id(str(name_or_profile))]
    except KeyError:
        known = ", ".join(list(PATHS) + sorted(PROFILES))
        raise InputError(f"unknown profile {name_or_profile!r}; known: {known}") from None
