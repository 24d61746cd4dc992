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
 * the fixed-point forms of refnet/forms.py (numbers from the generated
 * forms.h) lane by lane in 64-bit arithmetic, one definition for every ISA copy.
 */
#ifndef REFNET_FAST_H
#define REFNET_FAST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forms.h"

#define RN_NR 16  /* output channels per micro-tile (one packed weight panel) */

/* Weight panels per work item of a convolution (a work item: one tile of pixels x one block of
 * panels).  As many as keep the block's weights (panel_bytes each) within `budget` bytes of L2
 * while the tiles stream by, a multiple of `align`; with threads > 1, few enough that each thread
 * gets ~8 items even where the op has few pixel tiles (the 3x3 and 1x1 maps at a network's end,
 * which otherwise ran on one thread).  The division never changes a result: every output is
 * computed whole, in its own order, by one item. */
static inline int rn_panels_per_block(long budget, long panel_bytes, int npanels, long ntiles,
                                      int threads, int align) {
    long per = budget / (panel_bytes > 0 ? panel_bytes : 1) / align * align;
    if (per < align) per = align;
    if (threads > 1 && ntiles > 0) {
        long blocks = (8L * threads + ntiles - 1) / ntiles;  /* blocks giving ~8 items a thread */
        long fair = ((npanels + blocks - 1) / blocks + align - 1) / align * align;
        if (fair < per) per = fair;
    }
    return per > npanels ? (npanels > 0 ? npanels : 1) : (int)per;
}

/* Work items a thread takes at a time (OpenMP dynamic schedule): ~16 chunks a thread, so a map of
 * thousands of small tiles does not pay a shared-counter update per tile (112x112 maps: 1.5x ->
 * 1.9x on 2 threads), while the few items of a small map still spread one by one. */
static inline long rn_work_chunk(long items, int threads) {
    long chunk = items / (16L * (threads > 0 ? threads : 1));
    return chunk > 1 ? chunk : 1;
}

/* Elementwise work in spans.  An op out[i] = f(a[i], b[i % period]) is n / period rows of
 * `period` values (a flat op is one row); a span is at most RN_SPAN values of one row, RN_SPAN a
 * multiple of every vector width, so a span's vectors are whole but at a row's end, exactly as in
 * one pass over the row.  Threads share the spans only from RN_SPAN_THREADED values on: a fork and
 * join of the threads costs about the work of 20 000 values. */
#define RN_SPAN 8192L
#define RN_SPAN_THREADED 32768L
typedef struct { long row, start, end; } rn_span_t;  /* values [start, end) of row `row` */

static inline long rn_spans_per_row(long period) { return (period + RN_SPAN - 1) / RN_SPAN; }
static inline long rn_spans(long n, long period) {
    return period > 0 ? n / period * rn_spans_per_row(period) : 0;
}
static inline rn_span_t rn_span(long u, long period) {
    const long per_row = rn_spans_per_row(period);
    rn_span_t s;
    s.row = u / per_row;
    s.start = u % per_row * RN_SPAN;
    s.end = s.start + RN_SPAN < period ? s.start + RN_SPAN : period;
    return s;
}
static inline int rn_span_threads(long n, int threads) {
    return threads > 1 && n >= RN_SPAN_THREADED ? threads : 1;
}

typedef struct {
    /* geometry (NHWC input and output, filter taps (ky, kx, ci)) */
    int batches, in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int kh, kw, sh, sw, dh, dw, pad_t, pad_l;
    int pointwise;     /* 1x1, stride 1, no padding: rows of the input are rows of A */
    int in_signed;     /* input is int8 (1) or uint8 (0) */
    int32_t in_off;    /* added to every input value (-zero point); |in_off| <= 255 */
    /* packed weights: panels of RN_NR channels, [panel][k][RN_NR], zero-padded channels;
     * wq: depthwise_q's int16 w + w_off, wf: the float kernels' */
    const int16_t *wq;
    const float *wf;
    /* int8 s = w + w_off - beta: conv_q's packing (pack_q) [panel][ceil(K/2)][RN_NR][2],
     * conv_q8's (pack_q8) [panel][ceil(K/4)][RN_NR][4]; conv_q8 takes the input as unsigned
     * bytes u (int8 x: x + 128), padded taps u = pad_u8 */
    const int8_t *w8;
    int32_t beta, pad_u8;
    /* bias (length out_c, padded to a multiple of RN_NR with zeros); NULL: none */
    const int32_t *bias_q;
    const float *bias_f;
    /* requantization (per channel, padded like the bias); mult NULL: write raw int32 */
    const int32_t *mult, *shift;
    int zp, qmin, qmax, rounding, out_signed;
    /* facts of mult / shift that let the requantization skip steps: some shift > 0 (the left
     * shift), some multiplier INT32_MIN (the high multiply's saturation) */
    int left_shifts, min_multiplier;
    float act_min, act_max;
    int threads;
} rn_conv_t;

/* Which copy of a convolution's epilogue runs (fast_body.h q_epilogue): the form fixed at compile
 * time where the op's vectors need none of its rare steps (no shift > 0, no INT32_MIN multiplier:
 * every MobileNet's), so the loop over pixels holds no test of the form; GENERAL reads the form
 * and those steps at run time; RAW writes the int32 sums (no multipliers). */
enum rn_epilogue { RN_EPI_GENERAL, RN_EPI_RAW, RN_EPI_DOUBLE, RN_EPI_DOUBLE_TIES_UP, RN_EPI_SINGLE,
                   RN_EPI_FP32 };

static inline int rn_epilogue_of(const rn_conv_t *p) {
    if (!p->mult) return RN_EPI_RAW;
    if (p->rounding == RN_ROUNDING_FP32) return RN_EPI_FP32;      /* no shifts */
    if (p->rounding == RN_ROUNDING_SINGLE) return RN_EPI_SINGLE;  /* its one product takes any */
    if (p->left_shifts || p->min_multiplier) return RN_EPI_GENERAL;
    if (p->rounding == RN_ROUNDING_DOUBLE) return RN_EPI_DOUBLE;
    if (p->rounding == RN_ROUNDING_DOUBLE_TIES_UP) return RN_EPI_DOUBLE_TIES_UP;
    return RN_EPI_GENERAL;
}

/* The form of a fixed epilogue kind (a constant wherever kind is one). */
static inline int rn_epilogue_form(int kind) {
    return kind == RN_EPI_DOUBLE_TIES_UP ? RN_ROUNDING_DOUBLE_TIES_UP
         : kind == RN_EPI_SINGLE ? RN_ROUNDING_SINGLE
         : kind == RN_EPI_FP32 ? RN_ROUNDING_FP32 : RN_ROUNDING_DOUBLE;
}

/* An output pixel: its batch, row and column, and the input coordinates of its top-left tap. */
typedef struct { int b, oy, ox, y0, x0; } rn_pixel_t;

typedef struct {
    int n, period;      /* out[i] = f(a[i], b[i % period]); period divides n */
    int is_signed;
    int is_mul;
    int32_t zp1, zp2, zpo;
    int32_t m1, e1, m2, e2, mo, eo;
    int32_t lo, hi;
    int rounding;       /* a fixed-point form, ADD_INPUT_SHIFT_FLOOR_8, ADD_XNNPACK (m1, m2, e1 =
                           XNNPACK's multipliers and shift) or ROUNDING_FP32 (MUL: scale) */
    float scale;
    int threads;
} rn_elementwise_t;

typedef struct {
    long n;
    int is_signed;
    int form;           /* ROUNDING_DOUBLE (the reference roundf) or QUANTIZE_RECIPROCAL_RNE */
    int reciprocal;     /* ROUNDING_DOUBLE: x * inv instead of x / scale */
    int saturating;     /* the build's float -> int32 conversion saturates (aarch64) */
    float scale, inv;
    int32_t zp, lo, hi; /* lo, hi: the output type's range */
    int threads;
} rn_quantize_t;

#endif
