/* refnet fast kernels: one copy of fast_body.h per target, and the run-time choice. */
#ifndef REFNET_FAST_DISPATCH_H
#define REFNET_FAST_DISPATCH_H

#include "fast.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RN_X86 1
#else
#define RN_X86 0
#endif

/* acc (int32 lanes) += pairwise int16 products of pair and w: exact modulo 2**32 (the build
 * passes -fwrapv, so the int32 lane additions wrap as defined behaviour). */
#define RN_MADD_WITH(madd, ivec, acc, pair, w) \
    ((acc) = (acc) + (__typeof__(acc))madd((ivec)(pair), (ivec)(w)))

#if RN_X86
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,bmi2,popcnt")
#define RN_SFX(name) name##_avx512vnni
#define RN_VB 64
#define RN_TMR 12
#define RN_ISA_AVX512 1
#define RN_ISA_VNNI 1
/* vpdpwssd: the pmaddwd and the add in one instruction, the same sum modulo 2**32 */
#define RN_MADD(acc, pair, w) \
    ((acc) = (__typeof__(acc))_mm512_dpwssd_epi32((__m512i)(acc), (__m512i)(pair), (__m512i)(w)))
#include "fast_body.h"
#undef RN_ISA_VNNI
#undef RN_ISA_AVX512
#undef RN_MADD
#undef RN_TMR
#undef RN_VB
#undef RN_SFX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,bmi2,popcnt")
#define RN_SFX(name) name##_avx512
#define RN_VB 64
#define RN_TMR 12
#define RN_ISA_AVX512 1
#define RN_MADD(acc, pair, w) RN_MADD_WITH(_mm512_madd_epi16, __m512i, acc, pair, w)
#include "fast_body.h"
#undef RN_ISA_AVX512
#undef RN_MADD
#undef RN_TMR
#undef RN_VB
#undef RN_SFX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,bmi2,popcnt")
#define RN_SFX(name) name##_avx2
#define RN_VB 32
/* 5 pixels: 10 accumulators, 2 weight vectors, a broadcast and a product fit the 16 registers
 * (with 6, GCC kept one accumulator on the stack inside the tap loop: V2 int8's CONV_2D 10.2 ->
 * 8.7 ms with 5, its float32 1x1 convolutions 23 -> 34 GMAC/s, on a Zen 3 core) */
#define RN_TMR 5
#define RN_ISA_AVX2 1
#define RN_MADD(acc, pair, w) RN_MADD_WITH(_mm256_madd_epi16, __m256i, acc, pair, w)
#include "fast_body.h"
#undef RN_ISA_AVX2
#undef RN_MADD
#undef RN_TMR
#undef RN_VB
#undef RN_SFX
#pragma GCC pop_options

#define RN_SFX(name) name##_generic
#define RN_VB 16
#define RN_TMR 2
#define RN_MADD(acc, pair, w) RN_MADD_WITH(_mm_madd_epi16, __m128i, acc, pair, w)
#include "fast_body.h"
#undef RN_MADD
#undef RN_TMR
#undef RN_VB
#undef RN_SFX

#else  /* any other target: plain vector code, the compiler's baseline */

#define RN_SFX(name) name##_generic
#define RN_VB 16
#define RN_TMR 2
#define RN_MADD(acc, pair, w) do { \
        for (int rn_l = 0; rn_l < RN_VB / 4; rn_l++) \
            (acc)[rn_l] = (int32_t)((uint32_t)(acc)[rn_l] \
                + (uint32_t)((int32_t)(pair)[2 * rn_l] * (int32_t)(w)[2 * rn_l]) \
                + (uint32_t)((int32_t)(pair)[2 * rn_l + 1] * (int32_t)(w)[2 * rn_l + 1])); \
    } while (0)
#include "fast_body.h"
#undef RN_MADD
#undef RN_TMR
#undef RN_VB
#undef RN_SFX
#endif

/* ISA levels: 0 generic (the compiler's baseline), 1 AVX2, 2 AVX-512, 3 AVX-512 with VNNI. */
static int rn_isa_supported(void) {
#if RN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2"))
        return __builtin_cpu_supports("avx512vnni") ? 3 : 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2"))
        return 1;
#endif
    return 0;
}

static int rn_isa = 0;

#if RN_X86
#define RN_DISPATCH(name, args) \
    do { if (rn_isa >= 3) name##_avx512vnni args; else if (rn_isa == 2) name##_avx512 args; \
         else if (rn_isa == 1) name##_avx2 args; else name##_generic args; } while (0)
#else
#define RN_DISPATCH(name, args) name##_generic args
#endif

static void rn_conv_q(const rn_conv_t *p, const void *in, void *out, int32_t *acc_out) {
    RN_DISPATCH(conv_q, (p, in, out, acc_out));
}
static void rn_conv_q8(const rn_conv_t *p, const void *in, void *out, int32_t *acc_out) {
    RN_DISPATCH(conv_q8, (p, in, out, acc_out));
}
static int rn_conv_f(const rn_conv_t *p, const float *in, float *out) {
    int nan_seen = 0;
    RN_DISPATCH(nan_seen = conv_f, (p, in, out));
    return nan_seen;
}
static void rn_depthwise_q(const rn_conv_t *p, const void *in, void *out) {
    RN_DISPATCH(depthwise_q, (p, in, out));
}
static int rn_depthwise_f(const rn_conv_t *p, const float *in, float *out) {
    int nan_seen = 0;
    RN_DISPATCH(nan_seen = depthwise_f, (p, in, out));
    return nan_seen;
}
static void rn_mbqm_array(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, long n,
                          int form) {
    RN_DISPATCH(mbqm_array, (x, m, s, out, n, form));
}
static void rn_elementwise_q(const rn_elementwise_t *e, const void *a, const void *b, void *out) {
    RN_DISPATCH(elementwise_q, (e, a, b, out));
}
static void rn_quantize_f(const rn_quantize_t *q, const float *x, void *out) {
    RN_DISPATCH(quantize_f, (q, x, out));
}
static void rn_sum_rows8(const void *x, int is_signed, long outer, long rows, long inner, int32_t *out) {
    RN_DISPATCH(sum_rows8, (x, is_signed, outer, rows, inner, out));
}

static void rn_binary_f(const float *a, const float *b, float *out, long n, long period, int b_repeats,
                        int is_mul, float lo, float hi, long nan_run, long second_limit, int threads) {
    RN_DISPATCH(binary_f, (a, b, out, n, period, b_repeats, is_mul, lo, hi, nan_run, second_limit, threads));
}
static void rn_hard_swish_f(const float *x, float *out, long n, int reciprocal, int threads) {
    RN_DISPATCH(hard_swish_f, (x, out, n, reciprocal, threads));
}
static void rn_sum_rows_f(const float *x, long outer, long rows, long inner, float *out) {
    RN_DISPATCH(sum_rows_f, (x, outer, rows, inner, out));
}

/* out[i] = table[(uint8_t)x[i]]: a 256-entry byte table (a unary 8-bit op, tabulated at prepare).
 * AVX-512 VBMI (ISA level >= 2 with VBMI): two vpermi2b over the table's halves, the index's top
 * bit choosing; otherwise one byte at a time. */
static void rn_lut8_plain(const uint8_t *table, const uint8_t *x, uint8_t *out, long n) {
    for (long i = 0; i < n; i++) out[i] = table[x[i]];
}
#if RN_X86
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static void rn_lut8_vbmi(const uint8_t *table, const uint8_t *x, uint8_t *out, long n) {
    __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    for (long i = 0; i < n; i += 64) {
        __mmask64 live = n - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - i)) - 1);
        __m512i idx = _mm512_maskz_loadu_epi8(live, x + i);
        __m512i low = _mm512_permutex2var_epi8(t0, idx, t1), high = _mm512_permutex2var_epi8(t2, idx, t3);
        _mm512_mask_storeu_epi8(out + i, live, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high));
    }
}
static int rn_vbmi_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
}
#else
static int rn_vbmi_supported(void) { return 0; }
#endif
/* out[j] = table[256 * a[j] + b[j]] for j < n: one span of lut16.  A function of its own: the
 * same loop written inline in lut16's span loop ran at half this speed (GCC 12, Zen 3: 75264
 * values 107 -> 48 us); gathers (AVX2) were no faster, the 64 KiB table being read from L2. */
static void rn_lut16_span(const uint8_t *table, const uint8_t *a, const uint8_t *b, uint8_t *out, long n) {
    for (long j = 0; j < n; j++) out[j] = table[((size_t)a[j] << 8) | b[j]];
}
/* out[i] = table[256 * (uint8_t)a[i] + (uint8_t)b[i % period]]: a 65536-entry byte table of a
 * binary 8-bit op (ADD, MUL: tabulated at prepare over every input pair); b repeats with a period
 * dividing n. */
static void rn_lut16(const uint8_t *table, const uint8_t *a, const uint8_t *b, uint8_t *out, long n,
                     long period, int threads) {
    const long spans = rn_spans(n, period);
    threads = rn_span_threads(n, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long u = 0; u < spans; u++) {
        const rn_span_t sp = rn_span(u, period);
        const size_t row = (size_t)sp.row * period + sp.start;
        rn_lut16_span(table, a + row, b + sp.start, out + row, sp.end - sp.start);
    }
}
static int rn_vbmi = -1;
static void rn_lut8(const uint8_t *table, const uint8_t *x, uint8_t *out, long n, int threads) {
    if (rn_vbmi < 0) rn_vbmi = rn_vbmi_supported();
    const int vbmi = RN_X86 && rn_isa >= 2 && rn_vbmi;
    (void)vbmi;  /* read on x86-64 only */
    const long spans = rn_spans(n, n);
    threads = rn_span_threads(n, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long u = 0; u < spans; u++) {
        const rn_span_t sp = rn_span(u, n);
#if RN_X86
        if (vbmi) { rn_lut8_vbmi(table, x + sp.start, out + sp.start, sp.end - sp.start); continue; }
#endif
        rn_lut8_plain(table, x + sp.start, out + sp.start, sp.end - sp.start);
    }
}

#endif
