/* Generated from refnet/forms.py (python refnet/forms.py > kernels/forms.h): do not edit. */
#ifndef REFNET_FORMS_H
#define REFNET_FORMS_H

enum rn_form {
    RN_ROUNDING_DOUBLE = 0,  /* double rounding (gemmlowp, ties away from zero) */
    RN_ROUNDING_SINGLE = 1,  /* single rounding (64-bit product, ties up) */
    RN_ROUNDING_DOUBLE_TIES_UP = 2,  /* double rounding, final shift ties up */
    RN_ROUNDING_FLOAT64 = 3,  /* float64 scale, round half away from zero */
    RN_ROUNDING_FP32 = 4,  /* float32 scale, round half to even (XNNPACK fp32 requantization) */
    RN_MEAN_OPTIMIZED_4D = 5,  /* optimized 4-D MEAN (raw sum, float32 scale folded with 1/n, 16-channel blocks ties up, tail ties away) */
    RN_MEAN_FP32 = 6,  /* XNNPACK MEAN (raw int32 sum, float32 convert, round half to even) */
    RN_QUANTIZE_RECIPROCAL_RNE = 7,  /* float32 multiply by 1/scale, round half to even */
    RN_QUANTIZE_VCVT = 8,  /* XNNPACK vcvt: 8.8 fixed-point multiplier, ties up */
    RN_ADD_XNNPACK = 9,  /* XNNPACK vadd: 21-bit multipliers from float32 scale ratios, one shift, ties up */
    RN_MEAN_OPTIMIZED_4D_SCALAR = 10,  /* optimized 4-D MEAN as MEAN_OPTIMIZED_4D, every channel ties away */
    RN_QUANTIZE_FLOAT64 = 11,  /* double(x) / double(scale), round half away from zero, + zero point */
    RN_ROUNDING_RNDNU = 12,  /* exact product with the float32 scale, round half up (XNNPACK rndnu) */
    RN_MEAN_FP32_FMA = 13,  /* XNNPACK MEAN as MEAN_FP32, the float32 multiply-add fused */
    RN_ADD_INPUT_SHIFT_FLOOR_8 = 14,  /* optimized ADD: inputs' final shift floors in blocks of 8 elements, tail as the reference */
    RN_SOFTMAX_UINT16_LUT = 15,  /* aarch64 optimized SOFTMAX: uint16 exp table, integer sum, one multiplier */
    RN_SOFTMAX_FLOAT_TABLE = 16,  /* optimized SOFTMAX: float32 exp table, float32 sum and reciprocal, rounded per output type */
    RN_NMS_NEW_FIRST = 17,  /* regular NMS: a class's picks before the kept ones on ties (tflite-runtime 2.14) */
    RN_DEQUANTIZE_MUL_ADD_8 = 18,  /* optimized DEQUANTIZE: q * s + (-zp * s) in float32, blocks of 8, tail as the reference */
    RN_DEQUANTIZE_FMA_8 = 19,  /* optimized DEQUANTIZE: fmaf(q, s, -zp * s), blocks of 8, tail as the reference */
    RN_RESIZE_BILINEAR_Q11 = 20,  /* XNNPACK 8-bit RESIZE_BILINEAR: 11-bit weights from float32 coordinates, ties up */
    RN_RESIZE_BILINEAR_OPTIMIZED = 21,  /* optimized RESIZE_BILINEAR: corner weights formed first, summed from 0; 2x kernel */
    RN_RESIZE_BILINEAR_LERP = 22,  /* XNNPACK float32 RESIZE_BILINEAR: float32 lerps, row first */
    RN_RESIZE_BILINEAR_OPTIMIZED_FMA = 23,  /* optimized RESIZE_BILINEAR as RESIZE_BILINEAR_OPTIMIZED, multiply-adds fused */
    RN_RESIZE_BILINEAR_LERP_FMA = 24,  /* XNNPACK float32 RESIZE_BILINEAR as RESIZE_BILINEAR_LERP, multiply-adds fused */
    RN_RESIZE_BILINEAR_REFERENCE_FMA = 25,  /* reference float RESIZE_BILINEAR with its multiply-adds fused (aarch64) */
    RN_ROUNDING_TIES_UP_CHANNELS_8 = 26,  /* double rounding: whole blocks of 8 channels ties up, the other channels ties away */
    RN_ROUNDING_TIES_UP_ELEMENTS_16 = 27,  /* double rounding: whole blocks of 16 flat elements ties up, the tail ties away */
    RN_LEAKY_RELU_SIGNED_ALPHA = 28,  /* LEAKY_RELU: signed alpha multiplier, double rounding */
    RN_LEAKY_RELU_XNNPACK = 29,  /* XNNPACK lrelu: 8.8 fixed-point multipliers, one shift ties up */
    RN_SIGMOID_INT16_GEMMLOWP = 30,  /* optimized int16 LOGISTIC / TANH, power-of-two input scale: gemmlowp int16 fixed point */
    RN_ROUNDING_INT64_REDUCED = 31,  /* int64 accumulator, multiplier reduced to 15 bits, one rounding ties up */
    RN_ADD_INT16_INPUT_SHIFT_16 = 32,  /* optimized int16 ADD: inputs' shift folded before the high multiply in blocks of 16 elements, tail as the reference */
    RN_QUANTIZE_RECIPROCAL_RNE_8 = 33,  /* float32 -> int16: multiply by 1/scale, round half to even in blocks of 8; tail double division, half away */
    RN_SUM_FP32_ROUND = 34,  /* optimized quantized SUM: float32 scale and bias, round half away */
    RN_SUM_FP32 = 35,  /* XNNPACK quantized SUM (raw int32 sum, float32 scale s_x/s_y, round half to even) */
    RN_REDUCE_FROM_FIRST = 36,  /* optimized SUM/REDUCE_MAX/REDUCE_MIN: from each output's first input, MAX/MIN keep the running value only when strictly better */
    RN_SUM_FP32_HALF_AWAY = 37,  /* XNNPACK quantized SUM as SUM_FP32, rounded half away from zero */
    RN_SUB_ABOVE_ONE_SIGN = 38,  /* 8-bit SUB, output multiplier above 1: the sign of the high multiply (x86-64) */
    RN_LUT_SATURATING = 39,  /* int8 lookup table built with a saturating float-to-int32 conversion */
    RN_PRELU_SIGN_SELECT = 40,  /* float32 PRELU: signbit(x) ? x * alpha : x (XNNPACK's blend kernels) */
};

#define RN_MIN_SHIFT (-31)
#define RN_MAX_SHIFT 31
#define RN_MAX_SHIFT_SINGLE 30

#endif
