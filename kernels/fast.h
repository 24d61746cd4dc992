/* refnet fast kernels: declarations, fixed-point vector helpers and run-time ISA dispatch.
 *
 * The kernel bodies live in fast_body.h, which is compiled three times on x86-64: for
 * AVX-512 (F/BW/DQ/VL), for AVX2 and for the x86-64 baseline (SSE2); elsewhere once, for the
 * compiler's default target.  The bodies use GCC vector extensions, so each copy is lowered
 * to the widest vectors of its target; the choice is made once at import from cpuid
 * (rn_set_isa can lower it, which is how the tests run every path).
 *
 * Bits: integer sums are exact modulo 2**32 whatever the order (the reference accumulates
 * in int32 with wrap-around; we use unsigned lanes so the wrap is defined C).  Float sums keep
 * each output's own order -- k = 0, 1, ... (ky, kx, ci) as the reference, one float32 product
 * then one float32 add (the build passes -ffp-contract=off: never an FMA) -- and vectorise
 * only across output channels, whose lanes are independent.  Requantization reproduces
 * fixedpoint.pxd's forms 0/1/2 lane by lane in 64-bit arithmetic.
 */
#ifndef REFNET_FAST_H
#define REFNET_FAST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RN_MR 8   /* output pixels per micro-tile */
#define RN_NR 16  /* output channels per micro-tile (one packed weight panel) */

typedef int32_t rn_v16si __attribute__((vector_size(64)));
typedef uint32_t rn_v16su __attribute__((vector_size(64)));
typedef int16_t rn_v16hi __attribute__((vector_size(32)));
typedef int8_t rn_v16qi __attribute__((vector_size(16)));
typedef uint8_t rn_v16qu __attribute__((vector_size(16)));
typedef float rn_v16sf __attribute__((vector_size(64)));
typedef int64_t rn_v8di __attribute__((vector_size(64)));
typedef uint64_t rn_v8du __attribute__((vector_size(64)));
typedef int32_t rn_v8si __attribute__((vector_size(32)));
typedef int8_t rn_v8qi __attribute__((vector_size(8)));
typedef uint8_t rn_v8qu __attribute__((vector_size(8)));

typedef struct {
    /* geometry (NHWC input and output, filter taps (ky, kx, ci)) */
    int batches, in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int kh, kw, sh, sw, dh, dw, pad_t, pad_l;
    int pointwise;     /* 1x1, stride 1, no padding: rows of the input are rows of A */
    int in_signed;     /* input is int8 (1) or uint8 (0) */
    int32_t in_off;    /* added to every input value (-zero point); |in_off| <= 255 */
    /* packed weights: panels of RN_NR channels, [panel][k][RN_NR], zero-padded channels */
    const int16_t *wq;
    const float *wf;
    /* bias (length out_c, padded to a multiple of RN_NR with zeros); NULL: none */
    const int32_t *bias_q;
    const float *bias_f;
    /* requantization (per channel, padded like the bias); mult NULL: write raw int32 */
    const int32_t *mult, *shift;
    int zp, qmin, qmax, rounding, out_signed;
    float act_min, act_max;
    int threads;
} rn_conv_t;

typedef struct {
    int n, period;      /* out[i] = f(a[i], b[i % period]); period divides n */
    int is_signed;
    int is_mul;
    int32_t zp1, zp2, zpo;
    int32_t m1, e1, m2, e2, mo, eo;
    int32_t lo, hi;
    int rounding;
    int threads;
} rn_elementwise_t;

#endif
