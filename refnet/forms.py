"""The arithmetic forms: every way a measured runtime turns exact integers into its output.

This enumeration is the one source of the form numbers. The Cython and C kernels take them from
kernels/forms.h, which is generated from this file (`python refnet/forms.py > kernels/forms.h`;
tests/test_forms.py fails when the two disagree). A Profile names one form per op kind; each form
has one definition per language:

  Python (the oracle)  refnet/fixedpoint.py (fixed-point forms), refnet/requantize.py (the rest)
  Cython (scalar)      kernels/fixedpoint.pxd (fixed-point forms)
  C (vector)           kernels/fast_body.h, RN_SFX(mbqm) (fixed-point forms; every ISA copy)

This module imports nothing from refnet (setup-free: the header generator reads it alone).
"""
from __future__ import annotations

import enum
import sys
from dataclasses import dataclass

__all__ = ["Form", "FIXED_POINT_FORMS", "max_shift", "c_header", "FloatSum", "ORDERED"]


class Form(enum.IntEnum):
    """Arithmetic forms (IntEnum: a form is also its number, as the kernels see it)."""

    description: str

    def __new__(cls, value: int, description: str):
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    # MultiplyByQuantizedMultiplier in its fixed-point forms (the kernels implement these).
    ROUNDING_DOUBLE = (0, "double rounding (gemmlowp, ties away from zero)")
    ROUNDING_SINGLE = (1, "single rounding (64-bit product, ties up)")
    ROUNDING_DOUBLE_TIES_UP = (2, "double rounding, final shift ties up")
    # round(double(acc) * (double(s_x) * double(s_w) / double(s_y))), ties away (reference FC).
    ROUNDING_FLOAT64 = (3, "float64 scale, round half away from zero")
    # XNNPACK fp32 requantization: clamp(rint(float(acc) * s) + y_zp), rint = round half to even,
    # s = float32(float32(s_x * s_w[c]) / s_y) (conv, depthwise, FC), or float32(float32(s_a * s_b)
    # / s_y) with acc = (a - a_zp) * (b - b_zp) (MUL).
    ROUNDING_FP32 = (4, "float32 scale, round half to even (XNNPACK fp32 requantization)")
    # MEAN over H, W of a 4-D keep_dims int8 tensor, LiteRT optimized_integer_ops::Mean built for
    # x86 (NEON through NEON_2_SSE): raw sum, one multiplier from QuantizeMultiplier(float32(s_x /
    # float32(n * s_y))); whole 16-channel blocks round the final shift ties up, the tail ties away.
    MEAN_OPTIMIZED_4D = (5, "optimized 4-D MEAN (raw sum, float32 scale folded with 1/n, "
                            "16-channel blocks ties up, tail ties away)")
    # XNNPACK MEAN: raw int32 sum, then y = clamp(rint(float32(sum) * s + zp')).
    MEAN_FP32 = (6, "XNNPACK MEAN (raw int32 sum, float32 convert, round half to even)")
    # QUANTIZE float32 -> q8, optimized vector path: clamp(rint(x * float32(1 / s)) + zp).
    QUANTIZE_RECIPROCAL_RNE = (7, "float32 multiply by 1/scale, round half to even")
    # XNNPACK q8 -> q8 QUANTIZE: m = lrintf(256 * float32(s_x / s_y)), arithmetic shift by 8.
    QUANTIZE_VCVT = (8, "XNNPACK vcvt: 8.8 fixed-point multiplier, ties up")
    # XNNPACK ADD (vadd): 21-bit multipliers from float32 scale ratios, one shift, ties up.
    ADD_XNNPACK = (9, "XNNPACK vadd: 21-bit multipliers from float32 scale ratios, one shift, ties up")
    # MEAN_OPTIMIZED_4D without the 16-channel vector path: every channel rounds ties away.
    MEAN_OPTIMIZED_4D_SCALAR = (10, "optimized 4-D MEAN as MEAN_OPTIMIZED_4D, every channel ties away")
    # QUANTIZE float32 -> q8 in double precision: round half away from zero of double(x) / double(s),
    # then + zp (tflite-runtime 2.14's optimized kernel; the reference divides in float32).
    QUANTIZE_FLOAT64 = (11, "double(x) / double(scale), round half away from zero, + zero point")
    # XNNPACK's rndnu requantization (its aarch64 uint8 conv and depthwise): the exact product of
    # acc and the float32 scale float32(float32(s_x * s_w) / s_y), rounded half toward +inf.
    ROUNDING_RNDNU = (12, "exact product with the float32 scale, round half up (XNNPACK rndnu)")
    # MEAN_FP32 with the multiply-add fused (XNNPACK on aarch64, TensorFlow's XNNPACK on x86-64).
    MEAN_FP32_FMA = (13, "XNNPACK MEAN as MEAN_FP32, the float32 multiply-add fused")
    # LiteRT's optimized same-shape ADD (NEON AddElementwise; NEON_2_SSE on x86-64): in whole
    # blocks of 8 elements each input's rescale ends in a flooring shift (vshl) after the high
    # multiply; the scalar tail and the output rescale are the reference's double rounding.
    ADD_INPUT_SHIFT_FLOOR_8 = (14, "optimized ADD: inputs' final shift floors in blocks of 8 elements, "
                                   "tail as the reference")
    # LiteRT's aarch64 optimized int8/uint8 SOFTMAX (TFLITE_SOFTMAX_USE_UINT16_LUT): a 256-entry
    # table round(expf(s * beta * (v - 255)) * 65535), an integer sum of the row's entries, then
    # one multiplier from float32(1 / float32(sum * s_out)) for every output.
    SOFTMAX_UINT16_LUT = (15, "aarch64 optimized SOFTMAX: uint16 exp table, integer sum, one multiplier")
    # LiteRT's optimized int8/uint8 SOFTMAX without that define (x86-64): a float32 table
    # expf(float32(-s * beta) * v), a float32 sum in order, p = entry * float32(1 / float32(sum * s_out)),
    # then uint8 (int)(p + 0.5f), int8 round half away from zero, + zero point.
    SOFTMAX_FLOAT_TABLE = (16, "optimized SOFTMAX: float32 exp table, float32 sum and reciprocal, "
                               "rounded per output type")

    # TFLite_Detection_PostProcess, regular NMS, as tflite-runtime 2.14.0 merges the classes: each
    # class's picks go before the kept ones among equal scores (then the best max_detections stay);
    # later builds merge stably with the kept ones first (std::inplace_merge). Measured, single-op.
    NMS_NEW_FIRST = (17, "regular NMS: a class's picks before the kept ones on ties (tflite-runtime 2.14)")
    # LiteRT's optimized per-tensor int8/uint8 DEQUANTIZE (NEON; NEON_2_SSE on x86-64): in whole blocks
    # of 8 elements float32(q) * float32(s) + float32(double(-zp) * s), two float32 roundings; the
    # tail as the reference (the exact product rounded once).
    DEQUANTIZE_MUL_ADD_8 = (18, "optimized DEQUANTIZE: q * s + (-zp * s) in float32, blocks of 8, tail as the reference")
    # The same on aarch64 (ai-edge-litert 2.3.0, tflite-runtime 2.14.0): the multiply-add fused (one rounding).
    DEQUANTIZE_FMA_8 = (19, "optimized DEQUANTIZE: fmaf(q, s, -zp * s), blocks of 8, tail as the reference")
    # XNNPACK's 8-bit RESIZE_BILINEAR: float32 source coordinates (clamped to the input), weights
    # lrintf(alpha * 2**11), rows then columns interpolated in int32, (acc + 2**21) >> 22.
    RESIZE_BILINEAR_Q11 = (20, "XNNPACK 8-bit RESIZE_BILINEAR: 11-bit weights from float32 coordinates, ties up")
    # LiteRT's optimized RESIZE_BILINEAR, float32 and uint8: each corner's weight formed first
    # ((1 - dy) * (1 - dx), ...), the four products summed from 0 in the order top-left, top-right,
    # bottom-left, bottom-right (uint8: + 0.5, truncated); float32 upsampling by exactly 2 without
    # align_corners or half-pixel centers takes averages of neighbours instead.
    RESIZE_BILINEAR_OPTIMIZED = (21, "optimized RESIZE_BILINEAR: corner weights formed first, summed from 0; 2x kernel")
    # XNNPACK's float32 RESIZE_BILINEAR: XNNPACK's coordinates as RESIZE_BILINEAR_Q11, the weights kept in
    # float32, two lerps along the row (t = tl + (tr - tl) * a) then one between them, unfused.
    RESIZE_BILINEAR_LERP = (22, "XNNPACK float32 RESIZE_BILINEAR: float32 lerps, row first")
    # The same two on aarch64 builds, each multiply-add fused (NEON fmla, clang's contraction).
    RESIZE_BILINEAR_OPTIMIZED_FMA = (23, "optimized RESIZE_BILINEAR as RESIZE_BILINEAR_OPTIMIZED, multiply-adds fused")
    RESIZE_BILINEAR_LERP_FMA = (24, "XNNPACK float32 RESIZE_BILINEAR as RESIZE_BILINEAR_LERP, multiply-adds fused")
    # The reference float kernel (float32, uint8) on aarch64: its sum and half-pixel coordinates contracted.
    RESIZE_BILINEAR_REFERENCE_FMA = (25, "reference float RESIZE_BILINEAR with its multiply-adds fused (aarch64)")
    # LiteRT's optimized TRANSPOSE_CONV requantization (optimized_ops::Quantize, NEON through NEON_2_SSE
    # on x86-64): the vector body is the double rounding with its final shift ties up (vrshl), the
    # scalar tail MultiplyByQuantizedMultiplier (ties away). int8 (per channel): the body is every
    # whole block of 8 channels; uint8 (one multiplier): every whole block of 16 elements of the flat output.
    ROUNDING_TIES_UP_CHANNELS_8 = (26, "double rounding: whole blocks of 8 channels ties up, the other "
                                       "channels ties away")
    ROUNDING_TIES_UP_ELEMENTS_16 = (27, "double rounding: whole blocks of 16 flat elements ties up, the "
                                        "tail ties away")
    # LiteRT's optimized int16 LEAKY_RELU (AVX2 body and scalar tail alike): the alpha multiplier keeps
    # its sign, MBQM(d, m_alpha, e_alpha) in double rounding, where the reference computes
    # -MBQM(d, |m_alpha|, e_alpha); the two differ on the high multiply's ties when alpha < 0.
    LEAKY_RELU_SIGNED_ALPHA = (28, "LEAKY_RELU: signed alpha multiplier, double rounding")
    # XNNPACK int8/uint8 LEAKY_RELU: 8.8 fixed-point multipliers lrintf(256 * r) for r = float32(s_x /
    # s_y) and float32(r * alpha), y = zp_y + ((d * m + 128) >> 8). The delegate takes the op only when
    # 1/256 <= r <= 128 and 1/256 <= |r * alpha|, -127.99609375 <= r * alpha <= 128; otherwise LiteRT's
    # own kernel runs it (the reference arithmetic).
    LEAKY_RELU_XNNPACK = (29, "XNNPACK lrelu: 8.8 fixed-point multipliers, one shift ties up")
    # LiteRT's optimized int16 LOGISTIC / TANH when the input scale is a power of two (2**-12; TANH
    # also 2**-11): gemmlowp's int16 fixed-point logistic / tanh on the raw input (Q3.12), not the
    # reference's table. Other input scales run the reference kernel on that path too.
    SIGMOID_INT16_GEMMLOWP = (30, "optimized int16 LOGISTIC / TANH, power-of-two input scale: gemmlowp int16 fixed point")
    # MultiplyByQuantizedMultiplier(int64 acc, m, shift) of the 16x8 ops (int16 activations, int8
    # weights, int64 accumulators): m reduced to 15 fractional bits ((m + 2**15) >> 16), then one
    # rounding of the int64 product, ties toward +inf.
    ROUNDING_INT64_REDUCED = (31, "int64 accumulator, multiplier reduced to 15 bits, one rounding ties up")
    # LiteRT's optimized same-shape int16 ADD (NEON AddElementwiseInt16; NEON_2_SSE on x86-64): in
    # whole blocks of 16 elements each input is shifted by 15 + its exponent (<= 0: a flooring right
    # shift) and high-multiplied (ties up), with no rounding shift after; the sum's rescale and the
    # scalar tail are the reference's double rounding.
    ADD_INT16_INPUT_SHIFT_16 = (32, "optimized int16 ADD: inputs' shift folded before the high multiply "
                                    "in blocks of 16 elements, tail as the reference")

    # LiteRT's optimized float32 -> int16 QUANTIZE: whole blocks of 8 elements (flat order) as
    # QUANTIZE_RECIPROCAL_RNE, the tail in double as QUANTIZE_FLOAT64.
    QUANTIZE_RECIPROCAL_RNE_8 = (33, "float32 -> int16: multiply by 1/scale, round half to even in blocks of 8; "
                                     "tail double division, half away")
    # LiteRT's optimized int8/uint8 SUM (optimized_ops::QuantizedMeanOrSum): the raw int32 sum, then
    # int32(round(float32(sum) * s + b)) + zp_out in float32, s = float32(s_in / s_out),
    # b = float32(float32(-zp_in * s) * count), round half away from zero; int8 read as int8.
    SUM_FP32_ROUND = (34, "optimized quantized SUM: float32 scale and bias, round half away")
    # LiteRT's optimized SUM / REDUCE_MAX / REDUCE_MIN (optimized_ops::ReduceGeneric): every output
    # starts at its first input (no identity: an all -0.0 SUM stays -0.0) and takes the rest in
    # row-major order; MAX keeps the running value only when `current > input` (MIN: `<`), so NaN
    # and ties take the input; an empty axis list copies the input.
    # XNNPACK's int8/uint8 SUM: MEAN_FP32 with s = float32(s_x / s_y): clamp(rint(float32(sum) * s + zp')),
    # zp' = float32(y_zp - float32(count * x_zp) * s), unfused (measured on sums where fused differs).
    SUM_FP32 = (35, "XNNPACK quantized SUM (raw int32 sum, float32 scale s_x/s_y, round half to even)")
    REDUCE_FROM_FIRST = (36, "optimized SUM/REDUCE_MAX/REDUCE_MIN: from each output's first input, "
                             "MAX/MIN keep the running value only when strictly better")
    # SUM_FP32 rounding half away from zero (TensorFlow 2.21's XNNPACK on x86-64; measured on sums
    # where the fused multiply-add, the exact product and half-to-even would round elsewhere).
    SUM_FP32_HALF_AWAY = (37, "XNNPACK quantized SUM as SUM_FP32, rounded half away from zero")
    # LiteRT's 8-bit SUB when its output multiplier exceeds 1 (sub.cc allows it; the rescale after the
    # high multiply is RoundingDivideByPOT with a negative exponent, undefined in C). The profile key
    # is (SUB, dtype, "output multiplier above 1"); x86-64 gives zp +- 1 by the high multiply's sign.
    SUB_ABOVE_ONE_SIGN = (38, "8-bit SUB, output multiplier above 1: the sign of the high multiply (x86-64)")
    # An int8 lookup table (LUTPopulate) whose float-to-int32 conversion saturates: a value beyond
    # int32 (an exp overflowing to inf) gives the type's max where a bare x86 conversion gives INT32_MIN
    # (ai-edge-litert 2.3.0 x86-64's EXP table; tflite-runtime 2.14.0 x86-64 converts bare).
    LUT_SATURATING = (39, "int8 lookup table built with a saturating float-to-int32 conversion")
    # XNNPACK's float32 PRELU (constant alpha) on an x86-64 CPU without AVX-512F: its SSE4.1 / AVX
    # kernels blend on the sign bit, signbit(x) ? x * alpha : x, so -0 takes the product (-0 * alpha:
    # +0 for a negative alpha) and a NaN with the sign bit clear passes unchanged (not quieted).
    # Measured on a Zen 1 AVX2 CPU (ai-edge-litert 2.3.0); its AVX-512 kernel compares (x < 0), which
    # gives the reference's -0 (tests/ops/test_parametric_relu.py on AVX-512 CPUs).
    PRELU_SIGN_SELECT = (40, "float32 PRELU: signbit(x) ? x * alpha : x (XNNPACK's blend kernels)")

    @property
    def is_fixed_point(self) -> bool:
        """A MultiplyByQuantizedMultiplier form: the Cython and C kernels compute it."""
        return self in FIXED_POINT_FORMS


FIXED_POINT_FORMS = frozenset({Form.ROUNDING_DOUBLE, Form.ROUNDING_SINGLE, Form.ROUNDING_DOUBLE_TIES_UP})


@dataclass(frozen=True)
class FloatSum:
    """How a build's compiled loop sums the float32 products x[c] * w[c] over the input channels
    c of one tap (CONV_2D, FULLY_CONNECTED) or over the taps (DEPTHWISE_CONV_2D, one channel).

    The C source is the same everywhere (`total += x * w`, bias added after the loop); what
    differs is what the compiler made of it:
      fused          the multiply-add contracted into one FMA (aarch64 builds);
      unfused_block  ...except in whole blocks of this many channels, which the loop vectoriser
                     took: products rounded, then added in order (clang without reassociation);
      lanes          whole blocks of this many channels summed in `lanes` fused accumulators,
                     channel c into lane c % lanes, then reduced pairwise ((l0 + l1) + (l2 + l3))
                     and added to the total before the remaining channels (a reassociating
                     vectoriser, NEON faddp).
    Defined once in the kernels (kernels/fixedpoint.pxd add_channel_products; depthwise_float's
    `fused`); tests/kernels/test_float_sums.py holds the plain-Python oracle.
    """

    fused: bool = False
    unfused_block: int = 0
    lanes: int = 0

    def split(self, depth: int) -> tuple[int, int, int]:
        """(lane_count, lane_end, fma_from) for `depth` channels: channels below lane_end go to
        the lanes, those from fma_from on are fused, the rest are a product then an add."""
        lane_end = (depth // self.lanes) * self.lanes if self.lanes else 0
        if not self.fused:
            return self.lanes, lane_end, depth
        if self.unfused_block:
            return self.lanes, lane_end, max(lane_end, (depth // self.unfused_block) * self.unfused_block)
        return self.lanes, lane_end, lane_end

    def describe(self) -> str:
        if not self.fused:
            return "products rounded, added in order (no FMA)"
        if self.lanes:
            return (f"{self.lanes} fused lane accumulators over whole blocks of {self.lanes} channels, "
                    f"reduced pairwise; the remaining channels fused into the total")
        if self.unfused_block:
            return (f"FMA, except in whole blocks of {self.unfused_block} channels "
                    f"(products rounded, added in order)")
        return "every multiply-add fused (FMA)"


ORDERED = FloatSum()  # LiteRT's reference order on x86-64: no FMA, no reassociation


def max_shift(form: int) -> int:
    """The largest (left) shift a fixed-point form is defined for; the smallest is -31.

    The single-rounding form shifts the 64-bit product right by 31 - shift, which must be >= 1.
    """
    return 30 if form == Form.ROUNDING_SINGLE else 31


def c_header() -> str:
    """kernels/forms.h: the form numbers and the shift bounds for C and Cython."""
    lines = ["/* Generated from refnet/forms.py (python refnet/forms.py > kernels/forms.h): do not edit. */",
             "#ifndef REFNET_FORMS_H", "#define REFNET_FORMS_H", "", "enum rn_form {"]
    for form in Form:
        lines.append(f"    RN_{form.name} = {int(form)},  /* {form.description} */")
    lines += ["};", "",
              "#define RN_MIN_SHIFT (-31)",
              f"#define RN_MAX_SHIFT {max_shift(Form.ROUNDING_DOUBLE)}",
              f"#define RN_MAX_SHIFT_SINGLE {max_shift(Form.ROUNDING_SINGLE)}",
              "", "#endif", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(c_header())
