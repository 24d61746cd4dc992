/* refnet fast kernels: the bodies, compiled once per target (see fast.h).
 * Included with RN_SFX(name) defined to name the copy (name_avx512, name_avx2, name_generic).
 * Everything here is static: only the dispatchers in fast_dispatch.h are called from Cython.
 */

#define RN_INLINE static inline __attribute__((always_inline))

/* Per-target parameters, defined by the includer:
 *   RN_VB   bytes of a native vector (64 AVX-512, 32 AVX2, 16 SSE2 / NEON)
 *   RN_TMR  pixels per micro-tile (as many as the accumulators leave registers for)
 *   RN_MADD(acc, pair, w)  acc += pairwise int16 products (pmaddwd), or a plain emulation */
#define RN_NV (64 / RN_VB)              /* native vectors per 16-channel panel */
#define RN_L32 (RN_VB / 4)              /* int32 / float lanes per native vector */
#define RN_L64 (RN_VB / 8)              /* int64 lanes per native vector */
#define VSI RN_SFX(vsi)
#define VSU RN_SFX(vsu)
#define VHI RN_SFX(vhi)
#define VSF RN_SFX(vsf)
#define VDI RN_SFX(vdi)
#define VDU RN_SFX(vdu)
typedef int32_t VSI __attribute__((vector_size(RN_VB)));
typedef uint32_t VSU __attribute__((vector_size(RN_VB)));
typedef int16_t VHI __attribute__((vector_size(RN_VB)));
typedef float VSF __attribute__((vector_size(RN_VB)));
typedef int64_t VDI __attribute__((vector_size(RN_VB)));
typedef uint64_t VDU __attribute__((vector_size(RN_VB)));

/* ------------------------------------------------------------------------------------------
 * 64-bit lane helpers: requantization, RN_L64 int32 values at a time
 * ---------------------------------------------------------------------------------------- */

RN_INLINE VDI RN_SFX(wrap32)(VDI v) {
    /* low 32 bits as a signed int32 (two's complement wrap) */
    return (VDI)((VDU)v << 32) >> 32;
}

RN_INLINE VDI RN_SFX(select)(VDI mask, VDI a, VDI b) {
    return (mask & a) | (~mask & b);
}

/* Two 64-bit lane primitives, the only part of the requantization an ISA may specialise:
 * mul_even64(a, b)  the int64 product of the low (signed) 32 bits of each 64-bit lane (pmuldq);
 * sra64(v, n)       arithmetic right shift of each 64-bit lane by n[lane] in [0, 63].
 * AVX2 has no variable 64-bit arithmetic shift: flip the sign, shift logically, flip back. */
#if defined(RN_AVX2_REQUANT)
RN_INLINE VDI RN_SFX(mul_even64)(VDI a, VDI b) { return (VDI)_mm256_mul_epi32((__m256i)a, (__m256i)b); }
RN_INLINE VDI RN_SFX(sra64)(VDI v, VDI n) {
    __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), (__m256i)v);
    return (VDI)_mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256((__m256i)v, sign), (__m256i)n), sign);
}
#elif defined(RN_AVX512_REQUANT)
RN_INLINE VDI RN_SFX(mul_even64)(VDI a, VDI b) { return (VDI)_mm512_mul_epi32((__m512i)a, (__m512i)b); }
RN_INLINE VDI RN_SFX(sra64)(VDI v, VDI n) { return v >> n; }
#else
RN_INLINE VDI RN_SFX(mul_even64)(VDI a, VDI b) { return RN_SFX(wrap32)(a) * RN_SFX(wrap32)(b); }
RN_INLINE VDI RN_SFX(sra64)(VDI v, VDI n) { return v >> n; }
#endif

/* The int32 lanes of v: even ones in the low halves of 64-bit lanes, odd ones moved there. */
RN_INLINE VDI RN_SFX(even_lanes)(VSI v) { return (VDI)v; }
RN_INLINE VDI RN_SFX(odd_lanes)(VSI v) { return (VDI)((VDU)v >> 32); }
/* The low 32 bits of each 64-bit lane of even and odd, interleaved back (little-endian). */
RN_INLINE VSI RN_SFX(join_lanes)(VDI even, VDI odd) {
    return (VSI)(((VDU)even & 0xFFFFFFFFu) | ((VDU)odd << 32));
}

/* saturating rounding doubling high multiply, int32 lanes: trunc((a * b + nudge) / 2**31) with
 * nudge = 2**30 (1 - 2**30 for negative products), i.e. round(a * b / 2**31) ties toward +inf;
 * INT32_MIN * INT32_MIN saturates to INT32_MAX.  Only the result's low 32 bits are kept, so the
 * division's final shift may be logical. */
RN_INLINE VDI RN_SFX(high_mul_half)(VDI product) {
    const VDI zero = {0};
    VDI s = product + RN_SFX(select)(product >= 0, zero + (1 << 30), zero + (1 - (1 << 30)));
    s = s + ((s < 0) & 0x7FFFFFFF);  /* truncating (not flooring) division by 2**31 */
    return (VDI)((VDU)s >> 31);
}

RN_INLINE VSI RN_SFX(srdhm32)(VSI a, VSI b) {
    VDI even = RN_SFX(high_mul_half)(RN_SFX(mul_even64)(RN_SFX(even_lanes)(a), RN_SFX(even_lanes)(b)));
    VDI odd = RN_SFX(high_mul_half)(RN_SFX(mul_even64)(RN_SFX(odd_lanes)(a), RN_SFX(odd_lanes)(b)));
    VSI q = RN_SFX(join_lanes)(even, odd);
    VSI saturate = (a == INT32_MIN) & (b == INT32_MIN);
    return (saturate & INT32_MAX) | (~saturate & q);
}

/* (x * m + 2**(total - 1)) >> total, wrapped to int32, total in [1, 62]: the single rounding. */
RN_INLINE VDI RN_SFX(round_shift_half)(VDI product, VDI total) {
    const VDI zero = {0};
    return RN_SFX(sra64)(product + (((zero + 1) << total) >> 1), total);
}

RN_INLINE VSI RN_SFX(mul_round_shift32)(VSI x, VSI m, VSI total) {
    VDI even = RN_SFX(round_shift_half)(RN_SFX(mul_even64)(RN_SFX(even_lanes)(x), RN_SFX(even_lanes)(m)),
                                        RN_SFX(wrap32)(RN_SFX(even_lanes)(total)));
    VDI odd = RN_SFX(round_shift_half)(RN_SFX(mul_even64)(RN_SFX(odd_lanes)(x), RN_SFX(odd_lanes)(m)),
                                       RN_SFX(odd_lanes)(total));
    return RN_SFX(join_lanes)(even, odd);
}

/* MultiplyByQuantizedMultiplier on int32 lanes, in the fixed-point forms of refnet/forms.py:
 * the one C definition (every ISA copy compiles it); fixedpoint.pxd has the scalar one and
 * refnet/fixedpoint.py the oracle.  shift in [RN_MIN_SHIFT, RN_MAX_SHIFT]
 * ([RN_MIN_SHIFT, RN_MAX_SHIFT_SINGLE] for the single form); > 0 shifts left. */
RN_INLINE VSI RN_SFX(mbqm32)(VSI x, VSI m, VSI shift, int form) {
    const VSI zero = {0}, one = zero + 1;
    if (form == RN_ROUNDING_SINGLE)  /* one exact product, one shift by 31 - shift, ties up */
        return RN_SFX(mul_round_shift32)(x, m, 31 - shift);
    /* the double-rounding forms: wrapping left shift, high multiply, rounding divide by 2**right */
    VSI left = (shift > 0) & shift;
    VSI right = (shift < 0) & -shift;
    VSI q = RN_SFX(srdhm32)((VSI)((VSU)x << (VSU)left), m);
    VSI mask = (one << right) - 1;
    VSI rem = q & mask;
    if (form == RN_ROUNDING_DOUBLE_TIES_UP) {  /* floor(q / 2**right + 1/2), without overflow */
        VSI half = (VSI)((VSU)(one << right) >> 1);
        return (q >> right) + (VSI)((VSU)(rem + half) >> (VSU)right);
    }
    /* RN_ROUNDING_DOUBLE: ties away from zero (a tie rounds up for q >= 0, down for q < 0) */
    VSI threshold = (mask >> 1) - (q < 0);
    return (q >> right) - (rem > threshold);
}

#define VHQ RN_SFX(vhq)
typedef int8_t VHQ __attribute__((vector_size(RN_VB / 4)));   /* RN_L32 int8 lanes */

RN_INLINE VSI RN_SFX(clamp32)(VSI v, int32_t lo, int32_t hi) {
    VSI below = v < lo, above = v > hi;
    v = (below & lo) | (~below & v);
    return (above & hi) | (~above & v);
}

RN_INLINE VSF RN_SFX(select_f)(VSI mask, VSF a, VSF b) {
    return (VSF)((mask & (VSI)a) | (~mask & (VSI)b));
}

/* Form ROUNDING_FP32 (XNNPACK's fp32 requantization) on int32 lanes: rint(float32(x) * scale),
 * scale_bits holding each lane's float32 scale; the product clipped to [-2**31, 2**31 - 128]
 * first, as refnet.requantize.rint_scaled_fp32.  rint rounds half to even by adding and
 * subtracting 2**23 with x's sign (exact for |v| < 2**23; larger floats are integers already),
 * so no ISA's conversion mode is involved. */
RN_INLINE VSI RN_SFX(rint_scaled32)(VSI x, VSI scale_bits) {
    const VSF zero = {0};
    const VSF lo = zero - 2147483648.0f, hi = zero + 2147483520.0f, two23 = zero + 8388608.0f;
    VSF v = __builtin_convertvector(x, VSF) * (VSF)scale_bits;
    v = RN_SFX(select_f)(v < lo, lo, v);
    v = RN_SFX(select_f)(v > hi, hi, v);
    VSF magic = RN_SFX(select_f)(v < zero, zero - two23, two23);
    VSF magnitude = (VSF)((VSI)v & INT32_MAX);
    v = RN_SFX(select_f)(magnitude < two23, (v + magic) - magic, v);
    return __builtin_convertvector(v, VSI);
}

/* mbqm32 over arrays (tests: the C vector definition against the oracle, on every ISA copy). */
static void RN_SFX(mbqm_array)(const int32_t *x, const int32_t *m, const int32_t *shift, int32_t *out,
                               long n, int form) {
    for (long i = 0; i < n; i += RN_L32) {
        int count = n - i < RN_L32 ? (int)(n - i) : RN_L32;
        int32_t xa[RN_L32] = {0}, ma[RN_L32] = {0}, sa[RN_L32] = {0}, ra[RN_L32];
        memcpy(xa, x + i, sizeof(int32_t) * count);
        memcpy(ma, m + i, sizeof(int32_t) * count);
        memcpy(sa, shift + i, sizeof(int32_t) * count);
        VSI xv, mv, sv;
        memcpy(&xv, xa, RN_VB);
        memcpy(&mv, ma, RN_VB);
        memcpy(&sv, sa, RN_VB);
        VSI r = RN_SFX(mbqm32)(xv, mv, sv, form);
        memcpy(ra, &r, RN_VB);
        memcpy(out + i, ra, sizeof(int32_t) * count);
    }
}

/* Requantize the 16 wrapped int32 accumulators of one panel and store `count` bytes. */
RN_INLINE void RN_SFX(requant_store16)(const int32_t *acc, const int32_t *mult,
                                       const int32_t *shift, const rn_conv_t *p, char *dst,
                                       int count) {
    int8_t bytes[16];
    for (int j = 0; j < 16 && j < count; j += RN_L32) {
        VSI x, m, s;
        memcpy(&x, acc + j, RN_VB);
        memcpy(&m, mult + j, RN_VB);
        memcpy(&s, shift + j, RN_VB);
        VSI v;
        if (p->rounding == RN_ROUNDING_FP32) {  /* m: float32 scale bits; clamped, then + zp */
            v = RN_SFX(clamp32)(RN_SFX(rint_scaled32)(x, m), -65536, 65536);
        } else {
            v = RN_SFX(mbqm32)(x, m, s, p->rounding);
        }
        v = v + p->zp;  /* int32 addition with wrap-around (-fwrapv), as the reference */
        v = RN_SFX(clamp32)(v, p->qmin, p->qmax);
        VHQ b = __builtin_convertvector(v, VHQ);
        memcpy(bytes + j, &b, sizeof b);
    }
    if (count == 16) memcpy(dst, bytes, 16);
    else memcpy(dst, bytes, (size_t)count);
}

/* ------------------------------------------------------------------------------------------
 * Integer convolution as a matrix product: A (pixels x K, shifted input) times the packed
 * weights, K = kh * kw * in_c in the order (ky, kx, ci), taken two at a time: A holds int16
 * pairs (x_k, x_k+1) and the weights [panel][k/2][16 channels][2], so one pmaddwd does two
 * taps of 16 lanes.  A padded tap is a zero in A: the reference skips it, which adds nothing
 * to an integer sum either.  Everything is exact modulo 2**32.
 * ---------------------------------------------------------------------------------------- */

RN_INLINE void RN_SFX(pixel_origin)(const rn_conv_t *p, long pix, int *b, int *y0, int *x0) {
    int ox = (int)(pix % p->out_w);
    long t = pix / p->out_w;
    int oy = (int)(t % p->out_h);
    *b = (int)(t / p->out_h);
    *y0 = oy * p->sh - p->pad_t;
    *x0 = ox * p->sw - p->pad_l;
}

/* Ah[k * RN_TMR * 2 + 2 m + (k & 1)] layout: int16 pairs; Ah[k][m] = x[pixel p0 + m, tap k]
 * + in_off (0 for padded taps, absent pixels and the odd tail k = K). */
RN_INLINE void RN_SFX(put)(int16_t *Ah, int k, int m, int16_t v) {
    Ah[((k >> 1) * RN_TMR + m) * 2 + (k & 1)] = v;
}

static void RN_SFX(gather_q)(const rn_conv_t *p, const void *in, long p0, int mv, int K,
                             int16_t *Ah) {
    const int32_t off = p->in_off;
    const int C = p->in_c;
    const int Kp = (K + 1) / 2;
    if (mv < RN_TMR || (K & 1)) memset(Ah, 0, sizeof(int16_t) * 2 * (size_t)Kp * RN_TMR);
    for (int m = 0; m < mv; m++) {
        if (p->pointwise) {
            size_t base = (size_t)(p0 + m) * C;
            if (p->in_signed) {
                const int8_t *src = (const int8_t *)in + base;
                for (int k = 0; k < K; k++) RN_SFX(put)(Ah, k, m, (int16_t)(src[k] + off));
            } else {
                const uint8_t *src = (const uint8_t *)in + base;
                for (int k = 0; k < K; k++) RN_SFX(put)(Ah, k, m, (int16_t)(src[k] + off));
            }
            continue;
        }
        int b, y0, x0, k = 0;
        RN_SFX(pixel_origin)(p, p0 + m, &b, &y0, &x0);
        for (int ky = 0; ky < p->kh; ky++) {
            int iy = y0 + ky * p->dh;
            for (int kx = 0; kx < p->kw; kx++, k += C) {
                int ix = x0 + kx * p->dw;
                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                    for (int ci = 0; ci < C; ci++) RN_SFX(put)(Ah, k + ci, m, 0);
                    continue;
                }
                size_t base = (((size_t)b * p->in_h + iy) * p->in_w + ix) * C;
                if (p->in_signed) {
                    const int8_t *src = (const int8_t *)in + base;
                    for (int ci = 0; ci < C; ci++) RN_SFX(put)(Ah, k + ci, m, (int16_t)(src[ci] + off));
                } else {
                    const uint8_t *src = (const uint8_t *)in + base;
                    for (int ci = 0; ci < C; ci++) RN_SFX(put)(Ah, k + ci, m, (int16_t)(src[ci] + off));
                }
            }
        }
    }
}

static void RN_SFX(conv_q)(const rn_conv_t *p, const void *in, void *out, int32_t *acc_out) {
    const int K = p->kh * p->kw * p->in_c;
    const int Kp = (K + 1) / 2;
    const long P = (long)p->batches * p->out_h * p->out_w;
    const int npanels = (p->out_c + RN_NR - 1) / RN_NR;
    const long ntiles = (P + RN_TMR - 1) / RN_TMR;
    if (P == 0 || p->out_c == 0) return;
    /* a block of panels whose int16 weights stay in L2 while the pixel tiles stream by */
    long per_block = 196608L / ((long)(Kp > 0 ? Kp : 1) * RN_NR * 4);
    int bpan = per_block < 1 ? 1 : (per_block > npanels ? npanels : (int)per_block);
    const int nblocks = (npanels + bpan - 1) / bpan;
    const long total = (long)nblocks * ntiles;
    const int threads = p->threads > 0 ? p->threads : 1;

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int16_t *Ah = (int16_t *)malloc(sizeof(int16_t) * (2 * (size_t)Kp * RN_TMR + 32));
#pragma omp for schedule(dynamic, 4)
        for (long it = 0; it < total; it++) {
            if (!Ah) continue;
            long tile = it % ntiles;
            int block = (int)(it / ntiles);
            long p0 = tile * RN_TMR;
            int mv = (int)(P - p0 < RN_TMR ? P - p0 : RN_TMR);
            RN_SFX(gather_q)(p, in, p0, mv, K, Ah);
            int pan_end = (block + 1) * bpan < npanels ? (block + 1) * bpan : npanels;
            for (int pan = block * bpan; pan < pan_end; pan++) {
                const int16_t *W = p->wq + (size_t)pan * Kp * 2 * RN_NR;
                VSI acc[RN_TMR][RN_NV];
#pragma GCC unroll 16
                for (int m = 0; m < RN_TMR; m++)
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) acc[m][v] = (VSI){0};
                for (int kp = 0; kp < Kp; kp++) {
                    VHI w[RN_NV];
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) memcpy(&w[v], W + ((size_t)kp * RN_NR + v * RN_L32) * 2, RN_VB);
                    const int16_t *a = Ah + (size_t)kp * RN_TMR * 2;
#pragma GCC unroll 16
                    for (int m = 0; m < RN_TMR; m++) {
                        int32_t pair;
                        memcpy(&pair, a + 2 * m, 4);
                        VHI pv = (VHI)((VSI){0} + pair);
#pragma GCC unroll 4
                        for (int v = 0; v < RN_NV; v++) RN_MADD(acc[m][v], pv, w[v]);
                    }
                }
                int c0 = pan * RN_NR;
                int nc = p->out_c - c0 < RN_NR ? p->out_c - c0 : RN_NR;
                int32_t bias[16] = {0};
                if (p->bias_q) memcpy(bias, p->bias_q + c0, sizeof bias);
                for (int m = 0; m < mv; m++) {
                    int32_t tmp[16];
                    memcpy(tmp, acc[m], sizeof tmp);
                    for (int j = 0; j < 16; j++) tmp[j] = (int32_t)((uint32_t)tmp[j] + (uint32_t)bias[j]);
                    if (!p->mult) {
                        memcpy(acc_out + (size_t)(p0 + m) * p->out_c + c0, tmp, sizeof(int32_t) * nc);
                        continue;
                    }
                    RN_SFX(requant_store16)(tmp, p->mult + c0, p->shift + c0, p,
                                            (char *)out + (size_t)(p0 + m) * p->out_c + c0, nc);
                }
            }
        }
        free(Ah);
    }
}

/* ------------------------------------------------------------------------------------------
 * Float convolution.  Each output's sum runs k = 0, 1, ... from 0.0f, one float32 product and
 * one float32 add per tap; lanes are output channels.  A tile of pixels all of whose taps are
 * inside the image runs as a matrix product; a tile touching the border runs pixel by pixel,
 * skipping padded taps exactly as the reference (adding 0 * w could turn -0.0 into +0.0 or a
 * finite sum into NaN).
 * ---------------------------------------------------------------------------------------- */

RN_INLINE VSF RN_SFX(finish_f)(VSF total, const rn_conv_t *p, int c) {
    VSF bias = {0};  /* no bias: the reference adds 0.0f */
    if (p->bias_f) memcpy(&bias, p->bias_f + c, sizeof bias);
    VSF v = total + bias;
    VSF lo = (VSF){0} + p->act_min, hi = (VSF){0} + p->act_max;
    VSI below = v < lo;       /* std::max(v, lo): v unless v < lo */
    v = (VSF)((below & (VSI)lo) | (~below & (VSI)v));
    VSI above = hi < v;       /* std::min(v, hi): v unless hi < v */
    return (VSF)((above & (VSI)hi) | (~above & (VSI)v));
}

/* Store one panel's nc outputs; lanes holding a NaN (the padded ones included) are marked in *nan. */
RN_INLINE void RN_SFX(store_panel_f)(VSF acc[RN_NV], const rn_conv_t *p, int c0, int nc, float *dst, VSI *nan) {
    float tmp[16];
#pragma GCC unroll 4
    for (int v = 0; v < RN_NV; v++) {
        VSF r = RN_SFX(finish_f)(acc[v], p, c0 + v * RN_L32);
        *nan |= (VSI)(r != r);
        memcpy(tmp + v * RN_L32, &r, RN_VB);
    }
    if (nc == 16) memcpy(dst, tmp, sizeof tmp);
    else memcpy(dst, tmp, sizeof(float) * nc);
}

/* 1 when a lane of v is set. */
RN_INLINE int RN_SFX(any_lane)(VSI v) {
    int32_t lanes[RN_L32], any = 0;
    memcpy(lanes, &v, RN_VB);
    for (int l = 0; l < RN_L32; l++) any |= lanes[l];
    return any != 0;
}

/* Returns 1 when every tap of every present pixel lies inside the image. */
static int RN_SFX(gather_f)(const rn_conv_t *p, const float *in, long p0, int mv, int K,
                            float *At) {
    const int C = p->in_c;
    if (mv < RN_TMR) memset(At, 0, sizeof(float) * (size_t)K * RN_TMR);
    for (int m = 0; m < mv; m++) {
        if (p->pointwise) {
            const float *src = in + (size_t)(p0 + m) * C;
            for (int k = 0; k < K; k++) At[k * RN_TMR + m] = src[k];
            continue;
        }
        int b, y0, x0, k = 0;
        RN_SFX(pixel_origin)(p, p0 + m, &b, &y0, &x0);
        for (int ky = 0; ky < p->kh; ky++) {
            int iy = y0 + ky * p->dh;
            for (int kx = 0; kx < p->kw; kx++, k += C) {
                int ix = x0 + kx * p->dw;
                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) return 0;
                const float *src = in + (((size_t)b * p->in_h + iy) * p->in_w + ix) * C;
                for (int ci = 0; ci < C; ci++) At[(k + ci) * RN_TMR + m] = src[ci];
            }
        }
    }
    return 1;
}

/* Float convolution; returns 1 when an output is NaN (or a padded lane, which only a NaN or inf
 * input makes).  Which NaN a sum keeps depends on the operand order of each addition (x86 returns
 * the first NaN operand), which these vector sums do not fix: the caller recomputes such an op
 * with the plain kernel, which does. */
static int RN_SFX(conv_f)(const rn_conv_t *p, const float *in, float *out) {
    const int K = p->kh * p->kw * p->in_c;
    const long P = (long)p->batches * p->out_h * p->out_w;
    const int npanels = (p->out_c + RN_NR - 1) / RN_NR;
    const long ntiles = (P + RN_TMR - 1) / RN_TMR;
    if (P == 0 || p->out_c == 0) return 0;
    long per_block = 196608L / ((long)(K > 0 ? K : 1) * RN_NR * 4);
    int bpan = per_block < 1 ? 1 : (per_block > npanels ? npanels : (int)per_block);
    const int nblocks = (npanels + bpan - 1) / bpan;
    const long total = (long)nblocks * ntiles;
    const int threads = p->threads > 0 ? p->threads : 1;
    const int C = p->in_c;

    int nan_seen = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(|:nan_seen)
    {
        float *At = (float *)malloc(sizeof(float) * ((size_t)K * RN_TMR + 16));
#pragma omp for schedule(dynamic, 4)
        for (long it = 0; it < total; it++) {
            if (!At) continue;
            long tile = it % ntiles;
            int block = (int)(it / ntiles);
            long p0 = tile * RN_TMR;
            int mv = (int)(P - p0 < RN_TMR ? P - p0 : RN_TMR);
            VSI nan_lanes = {0};
            int clean = RN_SFX(gather_f)(p, in, p0, mv, K, At);
            int pan_end = (block + 1) * bpan < npanels ? (block + 1) * bpan : npanels;
            for (int pan = block * bpan; pan < pan_end; pan++) {
                const float *W = p->wf + (size_t)pan * K * RN_NR;
                int c0 = pan * RN_NR;
                int nc = p->out_c - c0 < RN_NR ? p->out_c - c0 : RN_NR;
                if (clean) {
                    VSF acc[RN_TMR][RN_NV];
#pragma GCC unroll 16
                    for (int m = 0; m < RN_TMR; m++)
#pragma GCC unroll 4
                        for (int v = 0; v < RN_NV; v++) acc[m][v] = (VSF){0};
                    for (int k = 0; k < K; k++) {
                        VSF w[RN_NV];
#pragma GCC unroll 4
                        for (int v = 0; v < RN_NV; v++) memcpy(&w[v], W + (size_t)k * RN_NR + v * RN_L32, RN_VB);
                        const float *a = At + (size_t)k * RN_TMR;
#pragma GCC unroll 16
                        for (int m = 0; m < RN_TMR; m++) {
                            float am = a[m];
#pragma GCC unroll 4
                            for (int v = 0; v < RN_NV; v++) acc[m][v] = acc[m][v] + am * w[v];
                        }
                    }
                    for (int m = 0; m < mv; m++)
                        RN_SFX(store_panel_f)(acc[m], p, c0, nc, out + (size_t)(p0 + m) * p->out_c + c0, &nan_lanes);
                    continue;
                }
                for (int m = 0; m < mv; m++) {  /* border tile: pixel by pixel */
                    int b, y0, x0, k = 0;
                    RN_SFX(pixel_origin)(p, p0 + m, &b, &y0, &x0);
                    VSF acc[RN_NV];
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) acc[v] = (VSF){0};
                    for (int ky = 0; ky < p->kh; ky++) {
                        int iy = y0 + ky * p->dh;
                        for (int kx = 0; kx < p->kw; kx++, k += C) {
                            int ix = x0 + kx * p->dw;
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                            const float *src = in + (((size_t)b * p->in_h + iy) * p->in_w + ix) * C;
                            for (int ci = 0; ci < C; ci++) {
                                float xv = src[ci];
#pragma GCC unroll 4
                                for (int v = 0; v < RN_NV; v++) {
                                    VSF w;
                                    memcpy(&w, W + (size_t)(k + ci) * RN_NR + v * RN_L32, RN_VB);
                                    acc[v] = acc[v] + xv * w;
                                }
                            }
                        }
                    }
                    RN_SFX(store_panel_f)(acc, p, c0, nc, out + (size_t)(p0 + m) * p->out_c + c0, &nan_lanes);
                }
            }
            nan_seen |= RN_SFX(any_lane)(nan_lanes);
        }
        free(At);
    }
    return nan_seen;
}

/* ------------------------------------------------------------------------------------------
 * Depthwise (depth multiplier 1): per output pixel, channels in lanes (panels of 16), taps in
 * the order (ky, kx), padded taps skipped.  Weights packed [ky * kw + kx][channels padded].
 * ---------------------------------------------------------------------------------------- */

#define VQ32 RN_SFX(vq32)
#define VUQ32 RN_SFX(vuq32)
#define VH32 RN_SFX(vh32)
typedef int8_t VQ32 __attribute__((vector_size(RN_VB / 4)));
typedef uint8_t VUQ32 __attribute__((vector_size(RN_VB / 4)));
typedef int16_t VH32 __attribute__((vector_size(RN_VB / 2)));

static void RN_SFX(depthwise_q)(const rn_conv_t *p, const void *in, void *out) {
    const int C = p->out_c;
    const int npanels = (C + RN_NR - 1) / RN_NR;
    const int cpad = npanels * RN_NR;
    const long rows = (long)p->batches * p->out_h;
    const int threads = p->threads > 0 ? p->threads : 1;
#pragma omp parallel for schedule(dynamic, 2) num_threads(threads) if (threads > 1)
    for (long row = 0; row < rows; row++) {
        int b = (int)(row / p->out_h), oy = (int)(row % p->out_h);
        int y0 = oy * p->sh - p->pad_t;
        for (int ox = 0; ox < p->out_w; ox++) {
            int x0 = ox * p->sw - p->pad_l;
            char *dst_pixel = (char *)out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * C;
            for (int pan = 0; pan < npanels; pan++) {
                int c0 = pan * RN_NR;
                int nc = C - c0 < RN_NR ? C - c0 : RN_NR;
                int32_t bias[16] = {0};
                if (p->bias_q) memcpy(bias, p->bias_q + c0, sizeof bias);
                VSU acc[RN_NV];
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) memcpy(&acc[v], bias + v * RN_L32, RN_VB);
                for (int ky = 0; ky < p->kh; ky++) {
                    int iy = y0 + ky * p->dh;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (int kx = 0; kx < p->kw; kx++) {
                        int ix = x0 + kx * p->dw;
                        if (ix < 0 || ix >= p->in_w) continue;
                        const char *src = (const char *)in + (((size_t)b * p->in_h + iy) * p->in_w + ix) * C + c0;
                        char xb[16];
                        if (nc == 16) memcpy(xb, src, 16);
                        else { memset(xb, 0, sizeof xb); memcpy(xb, src, (size_t)nc); }
                        const int16_t *wrow = p->wq + (size_t)(ky * p->kw + kx) * cpad + c0;
#pragma GCC unroll 4
                        for (int v = 0; v < RN_NV; v++) {
                            VSI x;
                            if (p->in_signed) {
                                VQ32 q;
                                memcpy(&q, xb + v * RN_L32, sizeof q);
                                x = __builtin_convertvector(q, VSI);
                            } else {
                                VUQ32 q;
                                memcpy(&q, xb + v * RN_L32, sizeof q);
                                x = __builtin_convertvector(q, VSI);
                            }
                            VH32 wh;
                            memcpy(&wh, wrow + v * RN_L32, sizeof wh);
                            acc[v] += (VSU)(x + p->in_off) * (VSU)__builtin_convertvector(wh, VSI);
                        }
                    }
                }
                int32_t tmp[16];
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) memcpy(tmp + v * RN_L32, &acc[v], RN_VB);
                RN_SFX(requant_store16)(tmp, p->mult + c0, p->shift + c0, p, dst_pixel + c0, nc);
            }
        }
    }
}

/* Float depthwise convolution; returns 1 when an output is NaN (as conv_f). */
static int RN_SFX(depthwise_f)(const rn_conv_t *p, const float *in, float *out) {
    const int C = p->out_c;
    const int npanels = (C + RN_NR - 1) / RN_NR;
    const int cpad = npanels * RN_NR;
    const long rows = (long)p->batches * p->out_h;
    const int threads = p->threads > 0 ? p->threads : 1;
    int nan_seen = 0;
#pragma omp parallel for schedule(dynamic, 2) num_threads(threads) if (threads > 1) reduction(|:nan_seen)
    for (long row = 0; row < rows; row++) {
        int b = (int)(row / p->out_h), oy = (int)(row % p->out_h);
        int y0 = oy * p->sh - p->pad_t;
        VSI nan_lanes = {0};
        for (int ox = 0; ox < p->out_w; ox++) {
            int x0 = ox * p->sw - p->pad_l;
            float *dst_pixel = out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * C;
            for (int pan = 0; pan < npanels; pan++) {
                int c0 = pan * RN_NR;
                int nc = C - c0 < RN_NR ? C - c0 : RN_NR;
                VSF acc[RN_NV];
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) acc[v] = (VSF){0};
                for (int ky = 0; ky < p->kh; ky++) {
                    int iy = y0 + ky * p->dh;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (int kx = 0; kx < p->kw; kx++) {
                        int ix = x0 + kx * p->dw;
                        if (ix < 0 || ix >= p->in_w) continue;
                        const float *src = in + (((size_t)b * p->in_h + iy) * p->in_w + ix) * C + c0;
                        float xb[16];
                        if (nc == 16) memcpy(xb, src, sizeof xb);
                        else { memset(xb, 0, sizeof xb); memcpy(xb, src, sizeof(float) * nc); }
                        const float *wrow = p->wf + (size_t)(ky * p->kw + kx) * cpad + c0;
#pragma GCC unroll 4
                        for (int v = 0; v < RN_NV; v++) {
                            VSF x, w;
                            memcpy(&x, xb + v * RN_L32, RN_VB);
                            memcpy(&w, wrow + v * RN_L32, RN_VB);
                            acc[v] = acc[v] + x * w;
                        }
                    }
                }
                RN_SFX(store_panel_f)(acc, p, c0, nc, dst_pixel + c0, &nan_lanes);
            }
        }
        nan_seen |= RN_SFX(any_lane)(nan_lanes);
    }
    return nan_seen;
}

/* ------------------------------------------------------------------------------------------
 * Quantized ADD / MUL (elementwise.py's arithmetic), b repeating with a period.
 * ---------------------------------------------------------------------------------------- */

#define VUHQ RN_SFX(vuhq)
typedef uint8_t VUHQ __attribute__((vector_size(RN_VB / 4)));

RN_INLINE VSI RN_SFX(load_q32)(const void *src, int is_signed, int count) {
    if (is_signed) {
        VHQ v = {0};
        memcpy(&v, src, (size_t)count);
        return __builtin_convertvector(v, VSI);
    }
    VUHQ v = {0};
    memcpy(&v, src, (size_t)count);
    return __builtin_convertvector(v, VSI);
}

/* Form ADD_INPUT_SHIFT_FLOOR_8's input rescale: in whole 8-element blocks (flat index below
 * `blocked`) the high multiply then a flooring shift (vshl; e <= 0), else the reference's. */
RN_INLINE VSI RN_SFX(add_input_floor8)(VSI x, int32_t m, int32_t e, VSI index, long blocked) {
    const VSI zero = {0};
    VSI floor = RN_SFX(srdhm32)(x, zero + m) >> (zero - e);
    VSI reference = RN_SFX(mbqm32)(x, zero + m, zero + e, RN_ROUNDING_DOUBLE);
    VSI in_block = index < (VSI)(zero + (int32_t)blocked);
    return (in_block & floor) | (~in_block & reference);
}

static void RN_SFX(elementwise_q)(const rn_elementwise_t *e, const void *a, const void *b, void *out) {
    const long periods = e->period ? (long)e->n / e->period : 0;
    const int threads = e->threads > 0 ? e->threads : 1;
    const VSI zero = {0};
    const long blocked = ((long)e->n / 8) * 8;
    int32_t lane_numbers[RN_L32];
    for (int l = 0; l < RN_L32; l++) lane_numbers[l] = l;
    VSI lanes;
    memcpy(&lanes, lane_numbers, RN_VB);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && periods > 1)
    for (long r = 0; r < periods; r++) {
        for (int j = 0; j < e->period; j += RN_L32) {
            int count = e->period - j < RN_L32 ? e->period - j : RN_L32;
            size_t i = (size_t)r * e->period + j;
            /* |q - zp| <= 255: every intermediate below fits int32 */
            VSI x1 = RN_SFX(load_q32)((const char *)a + i, e->is_signed, count) - e->zp1;
            VSI x2 = RN_SFX(load_q32)((const char *)b + j, e->is_signed, count) - e->zp2;
            VSI raw;
            if (e->is_mul) {
                raw = RN_SFX(mbqm32)(x1 * x2, zero + e->mo, zero + e->eo, e->rounding);
            } else if (e->rounding == RN_ADD_INPUT_SHIFT_FLOOR_8) {  /* same shapes: period == n */
                VSI index = lanes + (int32_t)i;
                VSI y1 = RN_SFX(add_input_floor8)(x1 << 20, e->m1, e->e1, index, blocked);
                VSI y2 = RN_SFX(add_input_floor8)(x2 << 20, e->m2, e->e2, index, blocked);
                raw = RN_SFX(mbqm32)(y1 + y2, zero + e->mo, zero + e->eo, RN_ROUNDING_DOUBLE);
            } else {
                VSI y1 = RN_SFX(mbqm32)(x1 << 20, zero + e->m1, zero + e->e1, e->rounding);
                VSI y2 = RN_SFX(mbqm32)(x2 << 20, zero + e->m2, zero + e->e2, e->rounding);
                raw = RN_SFX(mbqm32)(y1 + y2, zero + e->mo, zero + e->eo, e->rounding);
            }
            VSI v = RN_SFX(clamp32)(raw + e->zpo, e->lo, e->hi);
            VHQ bytes = __builtin_convertvector(v, VHQ);
            memcpy((char *)out + i, &bytes, (size_t)count);
        }
    }
}

#undef VSI
#undef VSU
#undef VHI
#undef VSF
#undef VDI
#undef VDU
#undef VHQ
#undef VUHQ
#undef VQ32
#undef VUQ32
#undef VH32
#undef RN_NV
#undef RN_L32
#undef RN_L64
