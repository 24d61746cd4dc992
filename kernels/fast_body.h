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

/* Three 64-bit lane primitives, the only part of the requantization an ISA may specialise:
 * mul_even64(a, b)  the int64 product of the low (signed) 32 bits of each 64-bit lane (pmuldq);
 * sra64(v, n)       arithmetic right shift of each 64-bit lane by n[lane] in [0, 63];
 * sub_where(v, a, b, c, d)  v - d in the lanes where a < b and c > 0, v elsewhere.
 * AVX2 has no variable 64-bit arithmetic shift: flip the sign, shift logically, flip back.
 * AVX-512's sub_where is two compares into a mask and a masked subtract. */
#if defined(RN_ISA_AVX2)
RN_INLINE VDI RN_SFX(mul_even64)(VDI a, VDI b) { return (VDI)_mm256_mul_epi32((__m256i)a, (__m256i)b); }
RN_INLINE VDI RN_SFX(sra64)(VDI v, VDI n) {
    __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), (__m256i)v);
    return (VDI)_mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256((__m256i)v, sign), (__m256i)n), sign);
}
#elif defined(RN_ISA_AVX512)
RN_INLINE VDI RN_SFX(mul_even64)(VDI a, VDI b) { return (VDI)_mm512_mul_epi32((__m512i)a, (__m512i)b); }
RN_INLINE VDI RN_SFX(sra64)(VDI v, VDI n) { return v >> n; }
RN_INLINE VDI RN_SFX(sub_where)(VDI v, VDI a, VDI b, VDI c, VDI d) {
    const __mmask8 lanes = _mm512_cmplt_epi64_mask((__m512i)a, (__m512i)b) &
                           _mm512_cmpgt_epi64_mask((__m512i)c, _mm512_setzero_si512());
    return (VDI)_mm512_mask_sub_epi64((__m512i)v, lanes, (__m512i)v, (__m512i)d);
}
#else
RN_INLINE VDI RN_SFX(mul_even64)(VDI a, VDI b) { return RN_SFX(wrap32)(a) * RN_SFX(wrap32)(b); }
RN_INLINE VDI RN_SFX(sra64)(VDI v, VDI n) { return v >> n; }
#endif
#if !defined(RN_ISA_AVX512)
RN_INLINE VDI RN_SFX(sub_where)(VDI v, VDI a, VDI b, VDI c, VDI d) {
    return v - ((VDI)(a < b) & (VDI)(c > 0) & d);
}
#endif

/* The int32 lanes of v: even ones in the low halves of 64-bit lanes, odd ones moved there. */
RN_INLINE VDI RN_SFX(even_lanes)(VSI v) { return (VDI)v; }
RN_INLINE VDI RN_SFX(odd_lanes)(VSI v) { return (VDI)((VDU)v >> 32); }
/* The low 32 bits of each 64-bit lane of even and odd, interleaved back (little-endian): the
 * even lanes, and the odd ones shifted up, blended where the ISA has a blend. */
RN_INLINE VSI RN_SFX(join_lanes)(VDI even, VDI odd) {
#if defined(RN_ISA_AVX512)  /* odd's low halves swapped up, merged into even's odd lanes: one op */
    return (VSI)_mm512_mask_shuffle_epi32((__m512i)even, 0xAAAA, (__m512i)odd, _MM_PERM_CDAB);
#endif
    const VDU lo = (VDU)even, hi = (VDU)odd << 32;
#if defined(RN_ISA_AVX2)
    return (VSI)_mm256_blend_epi32((__m256i)lo, (__m256i)hi, 0xAA);
#else
    return (VSI)((lo & 0xFFFFFFFFu) | hi);
#endif
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

/* The double-rounding forms on 64-bit lanes in one step: SaturatingRoundingDoublingHighMul
 * q = floor((p + 2**30) / 2**31) of p = a * b, then the rounding divide by 2**r, is
 *     floor((q + h) / 2**r) = floor((p + 2**30 + h * 2**31) / 2**(31 + r))
 * (nested floors of integer divisions), h = 2**(r-1) for ties up, 2**(r-1) - [q < 0] for ties
 * away from zero (gemmlowp's remainder > threshold test), h = 0 for r = 0; q < 0 exactly when
 * p < -2**30.  |p| <= 2**62, so the sum stays inside int64.  The one input where the high
 * multiply saturates (a = b = INT32_MIN) gives the right value except for r = 0 (mbqm32). */
RN_INLINE VDI RN_SFX(double_round64)(VDI a, VDI b, VDI r, int ties_up) {
    const VDI zero = {0}, one = zero + 1;
    const VDI product = RN_SFX(mul_even64)(a, b);
    const VDI nudge = (zero + (1 << 30)) + ((((one << r) >> 1)) << 31);  /* 2**30 + 2**(r-1) * 2**31 */
    VDI sum = product + nudge;
    if (!ties_up)  /* - 2**31 where q < 0 and r > 0 */
        sum = RN_SFX(sub_where)(sum, product, zero - (1LL << 30), r, zero + (1LL << 31));
    return RN_SFX(sra64)(sum, r + 31);
}

/* MultiplyByQuantizedMultiplier on int32 lanes, in the fixed-point forms of refnet/forms.py:
 * the one C definition (every ISA copy compiles it); fixedpoint.pxd has the scalar one and
 * refnet/fixedpoint.py the oracle.  shift in [RN_MIN_SHIFT, RN_MAX_SHIFT]
 * ([RN_MIN_SHIFT, RN_MAX_SHIFT_SINGLE] for the single form); > 0 shifts left.  left_shifts /
 * min_multiplier: whether some shift is > 0 and some multiplier INT32_MIN (the steps they need
 * are skipped when not: a convolution's epilogue is this function, once per 16 outputs);
 * mbqm32 assumes both. */
RN_INLINE VSI RN_SFX(mbqm32_with)(VSI x, VSI m, VSI shift, int form, int left_shifts, int min_multiplier) {
    if (form == RN_ROUNDING_SINGLE)  /* one exact product, one shift by 31 - shift, ties up */
        return RN_SFX(mul_round_shift32)(x, m, 31 - shift);
    /* the double-rounding forms: wrapping left shift, then high multiply and rounding divide by
     * 2**right as one rounding of the 64-bit product (double_round64) */
    const int ties_up = form == RN_ROUNDING_DOUBLE_TIES_UP;
    VSI right = (shift < 0) & -shift;
    VSI xs = x;
    if (left_shifts) xs = (VSI)((VSU)x << (VSU)((shift > 0) & shift));
    VDI even = RN_SFX(double_round64)(RN_SFX(even_lanes)(xs), RN_SFX(even_lanes)(m),
                                      RN_SFX(wrap32)(RN_SFX(even_lanes)(right)), ties_up);
    VDI odd = RN_SFX(double_round64)(RN_SFX(odd_lanes)(xs), RN_SFX(odd_lanes)(m),
                                     RN_SFX(odd_lanes)(right), ties_up);
    VSI q = RN_SFX(join_lanes)(even, odd);
    if (!min_multiplier) return q;
    /* INT32_MIN * INT32_MIN: the high multiply saturates to INT32_MAX, which r = 0 keeps */
    VSI saturate = (xs == INT32_MIN) & (m == INT32_MIN) & (right == 0);
    return (saturate & INT32_MAX) | (~saturate & q);
}

RN_INLINE VSI RN_SFX(mbqm32)(VSI x, VSI m, VSI shift, int form) {
    return RN_SFX(mbqm32_with)(x, m, shift, form, 1, 1);
}

/* SaturatingRoundingDoublingHighMul on int32 lanes: round(a * b / 2**31), ties toward +inf
 * (gemmlowp's nudge-and-truncate is floor((a * b + 2**30) / 2**31) for either sign), INT32_MIN *
 * INT32_MIN saturating to INT32_MAX -- mbqm32's double rounding with nothing left to divide. */
RN_INLINE VSI RN_SFX(srdhm32)(VSI a, VSI b) {
    return RN_SFX(mbqm32)(a, b, (VSI){0}, RN_ROUNDING_DOUBLE);
}

#define VHQ RN_SFX(vhq)
typedef int8_t VHQ __attribute__((vector_size(RN_VB / 4)));   /* RN_L32 int8 lanes */

RN_INLINE VSI RN_SFX(clamp32)(VSI v, int32_t lo, int32_t hi) {  /* min(max(v, lo), hi) */
#if defined(RN_ISA_AVX512)
    return (VSI)_mm512_min_epi32(_mm512_max_epi32((__m512i)v, _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
#elif defined(RN_ISA_AVX2)
    return (VSI)_mm256_min_epi32(_mm256_max_epi32((__m256i)v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
#else  /* SSE2 has no pminsd */
    VSI below = v < lo, above = v > hi;
    v = (below & lo) | (~below & v);
    return (above & hi) | (~above & v);
#endif
}

RN_INLINE VSF RN_SFX(select_f)(VSI mask, VSF a, VSF b) {
    return (VSF)((mask & (VSI)a) | (~mask & (VSI)b));
}

/* Form ROUNDING_FP32 (XNNPACK's fp32 requantization) on int32 lanes: rint(float32(x) * scale),
 * scale_bits holding each lane's float32 scale; the product clipped to [-2**31, 2**31 - 128]
 * first, as refnet.requantize.rint_scaled_fp32.  rint rounds half to even with the rounding
 * mode in the instruction (AVX2 / AVX-512), or by adding and subtracting 2**23 with x's sign
 * (exact for |v| < 2**23; larger floats are integers already): never the MXCSR's mode. */
RN_INLINE VSI RN_SFX(rint_clipped32)(VSF v) {
    /* rint of float32 lanes clipped to [-2**31, 2**31 - 128] (NaN lanes: undefined, mask them) */
    const VSF zero = {0};
    const VSF lo = zero - 2147483648.0f, hi = zero + 2147483520.0f;
#if defined(RN_ISA_AVX512)  /* max / min equal the selects on every non-NaN lane; explicit RNE */
    v = (VSF)_mm512_min_ps(_mm512_max_ps((__m512)v, (__m512)lo), (__m512)hi);
    v = (VSF)_mm512_roundscale_ps((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(RN_ISA_AVX2)
    v = (VSF)_mm256_min_ps(_mm256_max_ps((__m256)v, (__m256)lo), (__m256)hi);
    v = (VSF)_mm256_round_ps((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    const VSF two23 = zero + 8388608.0f;
    v = RN_SFX(select_f)(v < lo, lo, v);
    v = RN_SFX(select_f)(v > hi, hi, v);
    VSF magic = RN_SFX(select_f)(v < zero, zero - two23, two23);
    VSF magnitude = (VSF)((VSI)v & INT32_MAX);
    v = RN_SFX(select_f)(magnitude < two23, (v + magic) - magic, v);
#endif
    return __builtin_convertvector(v, VSI);
}

RN_INLINE VSI RN_SFX(rint_scaled32)(VSI x, VSI scale_bits) {
    return RN_SFX(rint_clipped32)(__builtin_convertvector(x, VSF) * (VSF)scale_bits);
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

RN_INLINE void RN_SFX(copy_bytes_xor)(void *dst, const void *src, size_t n, const uint8_t x) {
    char *d = (char *)dst;
    const char *s = (const char *)src;
    const VSI xs = (VSI){0} + (int32_t)(x * 0x01010101u);  /* x in every byte (0: no op) */
    for (; n >= RN_VB; n -= RN_VB, d += RN_VB, s += RN_VB) {
        VSI v;
        memcpy(&v, s, RN_VB);
        v ^= xs;
        memcpy(d, &v, RN_VB);
    }
    if (!n) return;
#if defined(RN_ISA_AVX512)
    const __mmask64 k = ((__mmask64)1 << n) - 1;  /* n < 64; masked-off bytes are not touched */
    _mm512_mask_storeu_epi8(d, k, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, s), (__m512i)xs));
#else
#define RN_COPY_STEP(bytes) \
    if (n & (bytes)) { \
        uint8_t t[bytes]; \
        memcpy(t, s, bytes); \
        for (int i = 0; i < (bytes); i++) t[i] ^= x; \
        memcpy(d, t, bytes); d += (bytes); s += (bytes); }
#if RN_VB > 16
    RN_COPY_STEP(16)
#endif
    RN_COPY_STEP(8)
    RN_COPY_STEP(4)
    RN_COPY_STEP(2)
    RN_COPY_STEP(1)
#undef RN_COPY_STEP
#endif
}

/* copy_bytes_xor that may also write up to RN_VB - 1 bytes past dst + n (whatever they hold
 * after it is unspecified): for rows filled in increasing address order with slack at the end.
 * A short copy's plain 16-byte store: the stem's 9-byte rows 0.31 -> 0.30 ms against masked
 * stores, where a 64-byte store was slower (0.36). */
RN_INLINE void RN_SFX(copy_bytes_over)(void *dst, const void *src, size_t n, const uint8_t x) {
#if defined(RN_ISA_AVX512)
    if (n <= 16) {
        const __mmask16 k = (__mmask16)((1u << n) - 1);  /* masked-off bytes are not read */
        _mm_storeu_si128((__m128i *)dst, _mm_xor_si128(_mm_maskz_loadu_epi8(k, src), _mm_set1_epi8((char)x)));
        return;
    }
#endif
    RN_SFX(copy_bytes_xor)(dst, src, n, x);
}

/* memcpy of n bytes without the library call (a gathered tile copies thousands of short rows:
 * the 9 floats / 27 bytes of a first layer's filter row cost a call each): whole vectors, then
 * the tail masked (AVX-512) or in halving constant-size steps; copy_bytes_xor flips every byte
 * by x on the way (x + 128 for int8 bytes read as unsigned). */
RN_INLINE void RN_SFX(copy_bytes)(void *dst, const void *src, size_t n) {
    RN_SFX(copy_bytes_xor)(dst, src, n, 0);
}

/* Byte lanes <-> int32 lanes.  widen8: RN_L32 int8 / uint8 values at src (all readable) as
 * int32 lanes; store8: int32 lanes already inside the destination type's range, as `count`
 * bytes.  GCC 12 scalarises __builtin_convertvector between byte and int32 vectors (one
 * insert per lane), hence the instructions spelt out. */
RN_INLINE VSI RN_SFX(widen8)(const void *src, int is_signed) {
#if defined(RN_ISA_AVX512)
    __m128i b = _mm_loadu_si128((const __m128i *)src);
    return (VSI)(is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b));
#elif defined(RN_ISA_AVX2)
    __m128i b = _mm_loadl_epi64((const __m128i *)src);
    return (VSI)(is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b));
#elif RN_X86  /* SSE2: each byte moved to the top of its lane, then shifted down */
    int32_t four;
    memcpy(&four, src, 4);
    __m128i b = _mm_cvtsi32_si128(four);
    b = _mm_unpacklo_epi16(_mm_unpacklo_epi8(b, b), _mm_unpacklo_epi8(b, b));
    return (VSI)(is_signed ? _mm_srai_epi32(b, 24) : _mm_srli_epi32(b, 24));
#else
    VSI v;
    for (int l = 0; l < RN_L32; l++)
        v[l] = is_signed ? (int32_t)((const int8_t *)src)[l] : (int32_t)((const uint8_t *)src)[l];
    return v;
#endif
}

/* widen_pairs8: the RN_VB / 2 int8 weights at src (conv_q's packing, taps in pairs) as int16
 * lanes, sign-extended: the operand pmaddwd takes. */
RN_INLINE VHI RN_SFX(widen_pairs8)(const int8_t *src) {
#if defined(RN_ISA_AVX512)
    return (VHI)_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)src));
#elif defined(RN_ISA_AVX2)
    return (VHI)_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)src));
#elif RN_X86  /* SSE2: each byte doubled into an int16 lane, then shifted down with its sign */
    __m128i b = _mm_loadl_epi64((const __m128i *)src);
    return (VHI)_mm_srai_epi16(_mm_unpacklo_epi8(b, b), 8);
#else
    VHI v;
    for (int l = 0; l < RN_VB / 2; l++) v[l] = src[l];
    return v;
#endif
}

/* widen8 of the first `count` (< RN_L32 allowed) values; the other lanes 0. */
RN_INLINE VSI RN_SFX(widen8_part)(const void *src, int is_signed, int count) {
#if defined(RN_ISA_AVX512)  /* a masked load: no copy through memory (a store-forwarding stall) */
    const __m128i b = _mm_maskz_loadu_epi8((__mmask16)((1u << count) - 1), src);
    return (VSI)(is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b));
#endif
    int8_t bytes[16] = {0};
    memcpy(bytes, src, (size_t)count);
    return RN_SFX(widen8)(bytes, is_signed);
}

RN_INLINE void RN_SFX(store8)(VSI v, int is_signed, void *dst, int count) {
#if defined(RN_ISA_AVX512)
    (void)is_signed;  /* truncation keeps every in-range value */
    /* narrowed in a register, then stored: vpmovdb's memory form is several times slower on
     * Zen 4 (its stores were half of a 1x1 convolution's time there) */
    const __m128i bytes = _mm512_cvtepi32_epi8((__m512i)v);
    if (count >= RN_L32) _mm_storeu_si128((__m128i *)dst, bytes);
    else _mm_mask_storeu_epi8(dst, (__mmask16)((1u << count) - 1), bytes);
#else
    int8_t bytes[16];
#if defined(RN_ISA_AVX2) || RN_X86
#if defined(RN_ISA_AVX2)
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128((__m256i)v), _mm256_extracti128_si256((__m256i)v, 1));
#else
    __m128i w = _mm_packs_epi32((__m128i)v, (__m128i)v);
#endif
    /* int16 lanes in [-128, 255]: the saturating byte pack of the output's signedness is exact */
    _mm_storeu_si128((__m128i *)bytes, is_signed ? _mm_packs_epi16(w, w) : _mm_packus_epi16(w, w));
#else
    (void)is_signed;
    for (int l = 0; l < RN_L32; l++) bytes[l] = (int8_t)v[l];
#endif
    if (count >= RN_L32) memcpy(dst, bytes, RN_L32);  /* a constant size: one store */
    else RN_SFX(copy_bytes)(dst, bytes, (size_t)(count & (RN_L32 - 1)));
#endif
}

/* The output side of a requantization, copied out of rn_conv_t into a value whose address is
 * never taken: the byte stores to the output may alias anything addressable (char), which
 * made the compiler reload zp, qmin, qmax and the form after every store. */
typedef struct { int rounding, zp, qmin, qmax, out_signed, left_shifts, min_multiplier; } RN_SFX(requant_t);

RN_INLINE RN_SFX(requant_t) RN_SFX(requant_of)(const rn_conv_t *p) {
    RN_SFX(requant_t) rq = {p->rounding, p->zp, p->qmin, p->qmax, p->out_signed, p->left_shifts,
                            p->min_multiplier};
    return rq;
}

/* requant_of with the form and its flags constants where `kind` (rn_epilogue_of) fixes them. */
RN_INLINE RN_SFX(requant_t) RN_SFX(requant_as)(const rn_conv_t *p, const int kind) {
    RN_SFX(requant_t) rq = RN_SFX(requant_of)(p);
    if (kind != RN_EPI_GENERAL) {
        rq.rounding = rn_epilogue_form(kind);
        rq.left_shifts = rq.min_multiplier = 0;
    }
    return rq;
}

/* One vector of wrapped int32 accumulators requantized in the op's form, + zero point, clamped:
 * m holds the multipliers (ROUNDING_FP32: each lane's float32 scale bits), s the shifts. */
RN_INLINE VSI RN_SFX(requant32)(VSI acc, VSI m, VSI s, const RN_SFX(requant_t) rq) {
    VSI v;
    if (rq.rounding == RN_ROUNDING_FP32) {  /* clamped, then + zp, as the reference form */
        v = RN_SFX(clamp32)(RN_SFX(rint_scaled32)(acc, m), -65536, 65536);
    } else {
        v = RN_SFX(mbqm32_with)(acc, m, s, rq.rounding, rq.left_shifts, rq.min_multiplier);
    }
    v = v + rq.zp;  /* int32 addition with wrap-around (-fwrapv), as the reference */
    return RN_SFX(clamp32)(v, rq.qmin, rq.qmax);
}

/* requant32, then the bytes of the first `count` lanes stored at dst. */
RN_INLINE void RN_SFX(requant_store8)(VSI acc, VSI m, VSI s, const RN_SFX(requant_t) rq, void *dst,
                                      int count) {
    RN_SFX(store8)(RN_SFX(requant32)(acc, m, s, rq), rq.out_signed, dst, count);
}

/* ------------------------------------------------------------------------------------------
 * Integer convolution as a matrix product: A (pixels x K, shifted input) times the packed
 * weights, K = kh * kw * in_c in the order (ky, kx, ci), taken two at a time: A holds int16
 * pairs (x_k, x_k+1) and the weights [panel][k/2][16 channels][2], so one pmaddwd does two
 * taps of 16 lanes.  The weights are held as int8 s = w + w_off - beta (pack_q: beta 0 when
 * every w + w_off fits int8, as per-channel int8 weights do) and widened to int16 as loaded, so
 * (x + in_off)(w + w_off) summed over the taps is dot(a, s) + beta * sum(a), a = x + in_off:
 * the second term per pixel (pixel_term).  A padded tap is a zero in A: the reference skips it,
 * which adds nothing to an integer sum either.  Everything is exact modulo 2**32.
 * ---------------------------------------------------------------------------------------- */

/* An output pixel's position (rn_pixel_t).  A tile's pixels are consecutive: pixel_at divides
 * once per tile, pixel_next steps (a division per pixel cost a first layer's gather more than
 * its copies). */
RN_INLINE void RN_SFX(pixel_at)(const rn_conv_t *p, long pix, rn_pixel_t *q) {
    q->ox = (int)(pix % p->out_w);
    const long t = pix / p->out_w;
    q->oy = (int)(t % p->out_h);
    q->b = (int)(t / p->out_h);
    q->y0 = q->oy * p->sh - p->pad_t;
    q->x0 = q->ox * p->sw - p->pad_l;
}

RN_INLINE void RN_SFX(pixel_next)(const rn_conv_t *p, rn_pixel_t *q) {
    q->x0 += p->sw;
    if (++q->ox < p->out_w) return;
    q->ox = 0;
    q->x0 = -p->pad_l;
    q->y0 += p->sh;
    if (++q->oy < p->out_h) return;
    q->oy = 0;
    q->y0 = -p->pad_t;
    q->b++;
}

/* n input values + in_off as int16 (a loop the compiler vectorises). */
RN_INLINE void RN_SFX(widen_shifted)(const void *src, int is_signed, int32_t off, int n, int16_t *dst) {
    if (is_signed) {
        const int8_t *s = (const int8_t *)src;
        for (int i = 0; i < n; i++) dst[i] = (int16_t)(s[i] + off);
    } else {
        const uint8_t *s = (const uint8_t *)src;
        for (int i = 0; i < n; i++) dst[i] = (int16_t)(s[i] + off);
    }
}

/* A tile of A: word (kp * RN_TMR + m) of Ah holds the int16 pair (a_2kp, a_2kp+1) of pixel
 * p0 + m, a_k = x[pixel, tap k] + in_off (0 for padded taps, absent pixels and the odd tail
 * k = K); each pixel's row of K values is made in `row` (2 * Kp int16), then dealt out as words.
 * pixel_term[m]: beta * sum(a) of pixel m, modulo 2**32 (0 when beta is). */
static void RN_SFX(gather_q)(const rn_conv_t *p, const void *in, long p0, int mv, int K,
                             int16_t *Ah, int16_t *row, uint32_t *pixel_term) {
    const int32_t off = p->in_off;
    const int C = p->in_c;
    const int Kp = (K + 1) / 2;
    if (mv < RN_TMR) memset(Ah, 0, sizeof(int16_t) * 2 * (size_t)Kp * RN_TMR);
    row[2 * Kp - 1] = 0;  /* the odd tail */
    rn_pixel_t at = {0, 0, 0, 0, 0};
    if (!p->pointwise) RN_SFX(pixel_at)(p, p0, &at);
    for (int m = 0; m < mv; m++) {
        if (p->pointwise) {
            RN_SFX(widen_shifted)((const int8_t *)in + (size_t)(p0 + m) * C, p->in_signed, off, K, row);
        } else {
            if (m) RN_SFX(pixel_next)(p, &at);
            const int b = at.b, y0 = at.y0, x0 = at.x0;
            int k = 0;
            const int span = p->kw * C;  /* one filter row's taps */
            const int inside_x = p->dw == 1 && x0 >= 0 && x0 + p->kw - 1 < p->in_w;
            for (int ky = 0; ky < p->kh; ky++) {
                const int iy = y0 + ky * p->dh;
                if (inside_x && iy >= 0 && iy < p->in_h) {  /* the row's taps are contiguous in NHWC */
                    const size_t base = (((size_t)b * p->in_h + iy) * p->in_w + x0) * C;
                    RN_SFX(widen_shifted)((const int8_t *)in + base, p->in_signed, off, span, row + k);
                    k += span;
                    continue;
                }
                for (int kx = 0; kx < p->kw; kx++, k += C) {
                    const int ix = x0 + kx * p->dw;
                    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                        memset(row + k, 0, sizeof(int16_t) * (size_t)C);
                        continue;
                    }
                    const size_t base = (((size_t)b * p->in_h + iy) * p->in_w + ix) * C;
                    RN_SFX(widen_shifted)((const int8_t *)in + base, p->in_signed, off, C, row + k);
                }
            }
        }
        if (p->beta) {
            int32_t sum = 0;
            for (int k = 0; k < K; k++) sum += row[k];
            pixel_term[m] = (uint32_t)p->beta * (uint32_t)sum;
        } else {
            pixel_term[m] = 0;
        }
        for (int kp = 0; kp < Kp; kp++) memcpy(Ah + ((size_t)kp * RN_TMR + m) * 2, row + 2 * kp, 4);
    }
}

/* The epilogue of one channel vector (channels c .. c + count - 1, count >= 1) over `rows`
 * pixels from pix0, pixel m's sums at acc[m * stride]: + bias + pixel_term[m] (beta * sum(a),
 * modulo 2**32; NULL: none), then written raw (RAW: acc_out) or requantized, clamped and packed (out), in
 * the epilogue kind KIND (a constant: rn_epilogue_of).  Channel vector outermost, so its bias,
 * multipliers and shifts (and what the requantization derives from them) stay in registers
 * over the pixels. */
RN_INLINE void RN_SFX(q_epilogue_as)(const rn_conv_t *p, const VSI *acc, int stride, int rows, long pix0,
                                     const uint32_t *pixel_term, int c, int count, void *out,
                                     int32_t *acc_out, const int KIND) {
    VSU bias = {0};
    VSI mult = {0}, shift = {0};
    if (p->bias_q) memcpy(&bias, p->bias_q + c, RN_VB);
    const int raw = KIND == RN_EPI_RAW;  /* rn_epilogue_of: every op without multipliers */
    if (!raw) {
        memcpy(&mult, p->mult + c, RN_VB);
        memcpy(&shift, p->shift + c, RN_VB);
    }
    const RN_SFX(requant_t) rq = RN_SFX(requant_as)(p, KIND);
    const size_t out_c = (size_t)p->out_c;
    char *dst = (char *)out + (size_t)pix0 * out_c + c;
    int32_t *raw_dst = acc_out + (size_t)pix0 * out_c + c;
    if (raw) {
        for (int m = 0; m < rows; m++) {
            VSI r = (VSI)((VSU)acc[m * stride] + bias + (pixel_term ? pixel_term[m] : 0));
            if (count >= RN_L32) memcpy(raw_dst + m * out_c, &r, RN_VB);
            else memcpy(raw_dst + m * out_c, &r, sizeof(int32_t) * (size_t)count);
        }
    } else if (pixel_term) {
        for (int m = 0; m < rows; m++)
            RN_SFX(requant_store8)((VSI)((VSU)acc[m * stride] + bias + pixel_term[m]), mult, shift, rq,
                                   dst + m * out_c, count);
    } else if (count >= RN_L32) {  /* whole vectors, no pixel terms (int8 weights): the common case */
        for (int m = 0; m < rows; m++)
            RN_SFX(requant_store8)((VSI)((VSU)acc[m * stride] + bias), mult, shift, rq, dst + m * out_c, RN_L32);
    } else {
        for (int m = 0; m < rows; m++)
            RN_SFX(requant_store8)((VSI)((VSU)acc[m * stride] + bias), mult, shift, rq, dst + m * out_c, count);
    }
}

/* One out-of-line copy of q_epilogue_as per epilogue kind, and the call choosing among them. */
#define RN_Q_EPILOGUE_ARGS const rn_conv_t *p, const VSI *acc, int stride, int rows, long pix0, \
    const uint32_t *pixel_term, int c, int count, void *out, int32_t *acc_out
#define RN_Q_EPILOGUE_COPY(name, KIND) \
    static __attribute__((noinline)) void RN_SFX(name)(RN_Q_EPILOGUE_ARGS) { \
        RN_SFX(q_epilogue_as)(p, acc, stride, rows, pix0, pixel_term, c, count, out, acc_out, KIND); }
RN_Q_EPILOGUE_COPY(q_epilogue_general, RN_EPI_GENERAL)
RN_Q_EPILOGUE_COPY(q_epilogue_raw, RN_EPI_RAW)
RN_Q_EPILOGUE_COPY(q_epilogue_double, RN_EPI_DOUBLE)
RN_Q_EPILOGUE_COPY(q_epilogue_double_ties_up, RN_EPI_DOUBLE_TIES_UP)
RN_Q_EPILOGUE_COPY(q_epilogue_single, RN_EPI_SINGLE)
RN_Q_EPILOGUE_COPY(q_epilogue_fp32, RN_EPI_FP32)
#undef RN_Q_EPILOGUE_COPY

RN_INLINE void RN_SFX(q_epilogue)(RN_Q_EPILOGUE_ARGS) {
    void (*copy)(RN_Q_EPILOGUE_ARGS);
    switch (rn_epilogue_of(p)) {
    case RN_EPI_RAW: copy = RN_SFX(q_epilogue_raw); break;
    case RN_EPI_DOUBLE: copy = RN_SFX(q_epilogue_double); break;
    case RN_EPI_DOUBLE_TIES_UP: copy = RN_SFX(q_epilogue_double_ties_up); break;
    case RN_EPI_SINGLE: copy = RN_SFX(q_epilogue_single); break;
    case RN_EPI_FP32: copy = RN_SFX(q_epilogue_fp32); break;
    default: copy = RN_SFX(q_epilogue_general);
    }
    copy(p, acc, stride, rows, pix0, pixel_term, c, count, out, acc_out);
}
#undef RN_Q_EPILOGUE_ARGS

/* q_epilogue of one panel (RN_NV channel vectors) over `rows` pixels, acc[m][v]. */
RN_INLINE void RN_SFX(q_store_panel)(const rn_conv_t *p, const VSI (*acc)[RN_NV], int rows, int pan, long pix0,
                                     const uint32_t *pixel_term, void *out, int32_t *acc_out) {
    const int c0 = pan * RN_NR;
    const int nc = p->out_c - c0 < RN_NR ? p->out_c - c0 : RN_NR;
#pragma GCC unroll 4
    for (int v = 0; v < RN_NV; v++) {
        if (v * RN_L32 >= nc) break;
        RN_SFX(q_epilogue)(p, &acc[0][v], RN_NV, rows, pix0, pixel_term, c0 + v * RN_L32, nc - v * RN_L32,
                           out, acc_out);
    }
}

/* Pixel m of a gathered tile times np (1..4) panels from pan: a short tile (a FULLY_CONNECTED
 * batch row, a small map's last pixels) computed pixel by pixel, so it does not pay for the
 * RN_TMR pixels of a whole tile; four panels keep four independent chains of sums. */
RN_INLINE void RN_SFX(q_pixel)(const rn_conv_t *p, const int16_t *Ah, int m, int pan, int np, int Kp,
                               VSI acc[4][RN_NV]) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) acc[j][v] = (VSI){0};
    const int8_t *W = p->w8 + (size_t)pan * Kp * 2 * RN_NR;
    const size_t panel = (size_t)Kp * 2 * RN_NR;
    for (int kp = 0; kp < Kp; kp++) {
        int32_t pair;
        memcpy(&pair, Ah + ((size_t)kp * RN_TMR + m) * 2, 4);
        VHI pv = (VHI)((VSI){0} + pair);
#pragma GCC unroll 4
        for (int j = 0; j < np; j++)
#pragma GCC unroll 4
            for (int v = 0; v < RN_NV; v++) {
                VHI w = RN_SFX(widen_pairs8)(W + j * panel + ((size_t)kp * RN_NR + v * RN_L32) * 2);
                RN_MADD(acc[j][v], pv, w);
            }
    }
}

static void RN_SFX(conv_q)(const rn_conv_t *shared, const void *in, void *out, int32_t *acc_out) {
    const rn_conv_t *p = shared;
    const int K = p->kh * p->kw * p->in_c;
    const int Kp = (K + 1) / 2;
    const long P = (long)p->batches * p->out_h * p->out_w;
    const int npanels = (p->out_c + RN_NR - 1) / RN_NR;
    const long ntiles = (P + RN_TMR - 1) / RN_TMR;
    if (P == 0 || p->out_c == 0) return;
    const int threads = p->threads > 0 ? p->threads : 1;
    /* a block of panels whose weights stay in L2 while the pixel tiles stream by */
    const int bpan = rn_panels_per_block(196608L, (long)Kp * RN_NR * 2, npanels, ntiles, threads, 1);
    const int nblocks = (npanels + bpan - 1) / bpan;
    const long total = (long)nblocks * ntiles;
    const long chunk = rn_work_chunk(total, threads);

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        /* each thread's own copy (and its own pointer: declared here, so private): the output
         * stores (char *) may alias *shared, which would make the compiler reload every
         * parameter after each store */
        const rn_conv_t params = *shared;
        const rn_conv_t *p = &params;
        int16_t *Ah = (int16_t *)malloc(sizeof(int16_t) * (2 * (size_t)Kp * RN_TMR + 32));
        int16_t *row = (int16_t *)malloc(sizeof(int16_t) * (2 * (size_t)Kp + 16));
        uint32_t pixel_term[RN_TMR] = {0};
#pragma omp for schedule(dynamic, chunk)
        for (long it = 0; it < total; it++) {
            if (!Ah || !row) continue;
            long tile = it % ntiles;
            int block = (int)(it / ntiles);
            long p0 = tile * RN_TMR;
            int mv = (int)(P - p0 < RN_TMR ? P - p0 : RN_TMR);
            RN_SFX(gather_q)(p, in, p0, mv, K, Ah, row, pixel_term);
            const uint32_t *terms = p->beta ? pixel_term : NULL;
            int pan_end = (block + 1) * bpan < npanels ? (block + 1) * bpan : npanels;
            if (2 * mv <= RN_TMR) {  /* a short tile: pixel by pixel, 4 panels at a time */
                for (int pan = block * bpan; pan < pan_end; pan += 4) {
                    int np = pan_end - pan < 4 ? pan_end - pan : 4;
                    for (int m = 0; m < mv; m++) {
                        VSI acc[4][RN_NV];
                        if (np == 4) RN_SFX(q_pixel)(p, Ah, m, pan, 4, Kp, acc);
                        else RN_SFX(q_pixel)(p, Ah, m, pan, np, Kp, acc);
                        for (int j = 0; j < np; j++)
                            RN_SFX(q_store_panel)(p, (const VSI (*)[RN_NV])acc[j], 1, pan + j, p0 + m,
                                                  terms ? terms + m : NULL, out, acc_out);
                    }
                }
                continue;
            }
            for (int pan = block * bpan; pan < pan_end; pan++) {
                const int8_t *W = p->w8 + (size_t)pan * Kp * 2 * RN_NR;
                VSI acc[RN_TMR][RN_NV];
#pragma GCC unroll 16
                for (int m = 0; m < RN_TMR; m++)
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) acc[m][v] = (VSI){0};
                for (int kp = 0; kp < Kp; kp++) {
                    VHI w[RN_NV];
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) w[v] = RN_SFX(widen_pairs8)(W + ((size_t)kp * RN_NR + v * RN_L32) * 2);
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
                VSI sums[RN_TMR][RN_NV];  /* a copy: acc's own address taken kept it in memory */
#pragma GCC unroll 16
                for (int m = 0; m < RN_TMR; m++)
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) sums[m][v] = acc[m][v];
                RN_SFX(q_store_panel)(p, (const VSI (*)[RN_NV])sums, mv, pan, p0, terms, out, acc_out);
            }
        }
        free(Ah);
        free(row);
    }
}

/* ------------------------------------------------------------------------------------------
 * Integer convolution on unsigned x signed bytes (vpdpbusd in the copy with AVX-512 VNNI).
 * (x + in_off)(w + w_off) = (u + alpha)(s + beta), u = x (int8 x: x + 128) in [0, 255] and
 * s = w + w_off - beta in [-128, 127]; summed over the K taps that is
 *     dot(u, s) + beta * sum(u) + alpha * sum(s) + K * alpha * beta.
 * The last two terms are per channel, folded into the bias at load (pack_q8 / fold_q8_bias,
 * exact modulo 2**32); beta * sum(u) is per pixel (beta is 0 for int8 weights).  A padded tap
 * holds u = -alpha (the input's zero point as an unsigned byte), so its u + alpha is 0, as
 * the reference's skipped tap.  Weights [panel][ceil(K/4)][RN_NR][4], zero past K.
 * ---------------------------------------------------------------------------------------- */

#define RN_Q8_TILE 12  /* pixels gathered per tile: two halves of 6 for 3-4 panels, 12 for 1-2 */

#define VUH RN_SFX(vuh)
typedef uint16_t VUH __attribute__((vector_size(RN_VB)));

/* acc (int32 lanes) += the sum of the 4 products of a's unsigned and w's signed bytes per lane */
RN_INLINE VSI RN_SFX(dot4_u8s8)(VSI acc, VSI a, VSI w) {
#if defined(RN_ISA_VNNI)
    return (VSI)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)a, (__m512i)w);
#else
    /* exact emulation: bytes 0, 2 and bytes 1, 3 of each lane as int16 pairs, two pmaddwd */
    VHI a16 = (VHI)a, w16 = (VHI)w;
    VHI a_even = a16 & 0xFF, a_odd = (VHI)((VUH)a16 >> 8);
    VHI w_even = (VHI)(w16 << 8) >> 8, w_odd = w16 >> 8;
    RN_MADD(acc, a_even, w_even);
    RN_MADD(acc, a_odd, w_odd);
    return acc;
#endif
}

/* The sum of n bytes as unsigned (flipped first: int8 x as x + 128); a loop GCC vectorises. */
RN_INLINE int32_t RN_SFX(unsigned_byte_sum)(const uint8_t *src, int n, int flipped) {
    const uint8_t flip = flipped ? 0x80 : 0;
    int32_t sum = 0;
    for (int k = 0; k < n; k++) sum += (uint8_t)(src[k] ^ flip);
    return sum;
}

/* The tile's unsigned bytes, pixel-major: word At[m * K4 + g] holds taps 4g..4g+3 of pixel
 * p0 + m (zero past K and for absent pixels); usum[m] their sum over the K taps (only when
 * beta != 0).  Each pixel's bytes are copied and flipped (int8: x + 128) in increasing address
 * order (copy_bytes_over), then its row's padding zeroed; At has RN_VB bytes of slack at its end. */
static void RN_SFX(gather_q8)(const rn_conv_t *p, const void *in, long p0, int mv, int K,
                              uint32_t *At, int32_t *usum) {
    const int K4 = (K + 3) / 4, C = p->in_c;
    const uint8_t flip = p->in_signed ? 0x80 : 0;
    const uint8_t pad = (uint8_t)p->pad_u8;  /* the input's bytes are flipped as they are copied */
    rn_pixel_t at = {0, 0, 0, 0, 0};
    if (!p->pointwise) RN_SFX(pixel_at)(p, p0, &at);
    for (int m = 0; m < mv; m++) {
        uint8_t *row = (uint8_t *)(At + (size_t)m * K4);
        if (p->pointwise) {
            RN_SFX(copy_bytes_over)(row, (const uint8_t *)in + (size_t)(p0 + m) * C, (size_t)K, flip);
        } else {
            if (m) RN_SFX(pixel_next)(p, &at);
            const int b = at.b, y0 = at.y0, x0 = at.x0;
            const int span = p->kw * C;  /* one filter row's taps */
            const int inside_x = x0 >= 0 && x0 + (p->kw - 1) * p->dw < p->in_w;
#if defined(RN_ISA_AVX512)
            if (inside_x && p->dw == 1 && 4 * K4 <= 64) {
                /* a short row (a first layer's 27 bytes) assembled in one register, its filter
                 * rows merged in by masked loads, and stored whole: separate short copies cost
                 * twice as much on Zen 4 (the store overruns into later rows or At's slack) */
                const __m512i flips = _mm512_set1_epi8((char)flip), pads = _mm512_set1_epi8((char)pad);
                const __mmask64 one_row = span >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << span) - 1;
                __m512i whole = _mm512_setzero_si512();  /* the taps past K stay zero */
                const uint8_t *corner = (const uint8_t *)in + (size_t)b * p->in_h * p->in_w * C + (size_t)x0 * C;
                for (int ky = 0; ky < p->kh; ky++) {
                    const __mmask64 taps = one_row << (ky * span);  /* ky * span < 64 */
                    const int iy = y0 + ky * p->dh;
                    if (iy < 0 || iy >= p->in_h) {
                        whole = _mm512_mask_mov_epi8(whole, taps, pads);
                    } else {  /* byte ky * span of the load is this filter row's first tap */
                        const uintptr_t at_row = (uintptr_t)(corner + (size_t)iy * p->in_w * C) - (uintptr_t)(ky * span);
                        whole = _mm512_mask_mov_epi8(whole, taps, _mm512_xor_si512(
                            _mm512_maskz_loadu_epi8(taps, (const void *)at_row), flips));
                    }
                }
                _mm512_storeu_si512(row, whole);
                if (p->beta) usum[m] = RN_SFX(unsigned_byte_sum)(row, K, 0);
                continue;
            }
#endif
            for (int ky = 0; ky < p->kh; ky++) {
                uint8_t *dst = row + (size_t)ky * span;
                const int iy = y0 + ky * p->dh;
                if (iy < 0 || iy >= p->in_h) {
                    memset(dst, pad, (size_t)span);
                    continue;
                }
                const uint8_t *line = (const uint8_t *)in + ((size_t)b * p->in_h + iy) * p->in_w * C;
                if (inside_x && p->dw == 1) {  /* the row's taps are contiguous in NHWC */
                    RN_SFX(copy_bytes_over)(dst, line + (size_t)x0 * C, (size_t)span, flip);
                    continue;
                }
                for (int kx = 0; kx < p->kw; kx++) {
                    const int ix = x0 + kx * p->dw;
                    if (ix < 0 || ix >= p->in_w) memset(dst + kx * C, pad, (size_t)C);
                    else RN_SFX(copy_bytes_over)(dst + kx * C, line + (size_t)ix * C, (size_t)C, flip);
                }
            }
        }
        for (int k = K; k < 4 * K4; k++) row[k] = 0;
        if (p->beta) usum[m] = RN_SFX(unsigned_byte_sum)(row, K, 0);
    }
    /* absent pixels' rows (and the last row's overrun, copy_bytes_over) zero */
    if (mv < RN_Q8_TILE) memset(At + (size_t)mv * K4, 0, sizeof(uint32_t) * (size_t)K4 * (RN_Q8_TILE - mv));
}

/* MR pixels (tile rows m0 ..) times NP panels from pan0: the dot products, stored at
 * sums[m0 + m][j * RN_NV + v] (rows of 4 * RN_NV vectors) for q8_epilogue.  Pixel m's words are
 * At[m * astride + g], each byte flipped when FLIP (a pointwise op's int8 input rows read in
 * place: x + 128). */
RN_INLINE void RN_SFX(q8_tile)(const rn_conv_t *p, const uint32_t *At, int astride, const int FLIP,
                               int m0, const int MR, int pan0, const int NP, int K4, VSI *sums) {
    VSI acc[24 * RN_NV];
    const int8_t *W[4];
#pragma GCC unroll 4
    for (int j = 0; j < NP; j++) W[j] = p->w8 + (size_t)(pan0 + j) * K4 * RN_NR * 4;
#pragma GCC unroll 96
    for (int i = 0; i < MR * NP * RN_NV; i++) acc[i] = (VSI){0};
    for (int g = 0; g < K4; g++) {
        VSI w[4 * RN_NV];
#pragma GCC unroll 4
        for (int j = 0; j < NP; j++)
#pragma GCC unroll 4
            for (int v = 0; v < RN_NV; v++)
                memcpy(&w[j * RN_NV + v], W[j] + ((size_t)g * RN_NR + v * RN_L32) * 4, RN_VB);
        const uint32_t *a = At + (size_t)m0 * astride + g;
#pragma GCC unroll 12
        for (int m = 0; m < MR; m++) {
            VSI am = (VSI){0} + (int32_t)a[(size_t)m * astride];
            if (FLIP) am ^= (int32_t)0x80808080u;  /* a constant: no instruction when 0 */
#pragma GCC unroll 16
            for (int i = 0; i < NP * RN_NV; i++)
                acc[m * NP * RN_NV + i] = RN_SFX(dot4_u8s8)(acc[m * NP * RN_NV + i], am, w[i]);
        }
    }
    /* stored only now: with acc's own address taken, GCC stored every accumulator at each step */
#pragma GCC unroll 12
    for (int m = 0; m < MR; m++)
#pragma GCC unroll 16
        for (int i = 0; i < NP * RN_NV; i++) sums[(m0 + m) * 4 * RN_NV + i] = acc[m * NP * RN_NV + i];
}

/* The epilogue of a tile's sums (q8_tile) over its mv pixels from p0 and np panels from pan0,
 * channel vector by channel vector (q_epilogue): beta * sum(u) per pixel, the folded bias,
 * requantization or the raw int32 sums. */
static void RN_SFX(q8_epilogue)(const rn_conv_t *p, const VSI *sums, const int32_t *usum, long p0, int mv,
                                int pan0, int np, void *out, int32_t *acc_out) {
    uint32_t pixel_terms[RN_Q8_TILE] = {0}, *pixel_term = NULL;
    if (p->beta) {
        pixel_term = pixel_terms;
        for (int m = 0; m < mv; m++) pixel_term[m] = (uint32_t)p->beta * (uint32_t)usum[m];
    }
    for (int j = 0; j < np; j++) {
        const int c0 = (pan0 + j) * RN_NR;
        const int nc = p->out_c - c0 < RN_NR ? p->out_c - c0 : RN_NR;
        for (int v = 0; v < RN_NV && v * RN_L32 < nc; v++)
            RN_SFX(q_epilogue)(p, &sums[j * RN_NV + v], 4 * RN_NV, mv, p0, pixel_term, c0 + v * RN_L32,
                               nc - v * RN_L32, out, acc_out);
    }
}

static void RN_SFX(conv_q8)(const rn_conv_t *p, const void *in, void *out, int32_t *acc_out) {
    const int K = p->kh * p->kw * p->in_c;
    const int K4 = (K + 3) / 4;
    const long P = (long)p->batches * p->out_h * p->out_w;
    const int npanels = (p->out_c + RN_NR - 1) / RN_NR;
    const long ntiles = (P + RN_Q8_TILE - 1) / RN_Q8_TILE;
    if (P == 0 || p->out_c == 0) return;
    const int threads = p->threads > 0 ? p->threads : 1;
    /* a block of panels (a multiple of 4) whose weights stay in L2 while the tiles stream by */
    const int bpan = rn_panels_per_block(262144L, (long)K4 * RN_NR * 4, npanels, ntiles, threads, 4);
    const int nblocks = (npanels + bpan - 1) / bpan;
    const long total = (long)nblocks * ntiles;
    const long chunk = rn_work_chunk(total, threads);

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        uint32_t *At = (uint32_t *)malloc(sizeof(uint32_t) * ((size_t)K4 * RN_Q8_TILE + 16));
        int32_t usum[RN_Q8_TILE] = {0};
        VSI sums[RN_Q8_TILE * 4 * RN_NV];  /* a tile's sums, pixel-major, 4 panels a row */
#pragma omp for schedule(dynamic, chunk)
        for (long it = 0; it < total; it++) {
            if (!At) continue;
            long tile = it % ntiles;
            int block = (int)(it / ntiles);
            long p0 = tile * RN_Q8_TILE;
            int mv = (int)(P - p0 < RN_Q8_TILE ? P - p0 : RN_Q8_TILE);
            /* a whole tile of a pointwise op whose rows are whole words reads its input in place */
            const int direct = p->pointwise && (K & 3) == 0 && mv == RN_Q8_TILE;
            const uint32_t *a = At;
            if (direct) {
                a = (const uint32_t *)((const uint8_t *)in + (size_t)p0 * K);
                if (p->beta)
                    for (int m = 0; m < RN_Q8_TILE; m++)
                        usum[m] = RN_SFX(unsigned_byte_sum)((const uint8_t *)a + (size_t)m * K, K, p->in_signed);
            } else {
                RN_SFX(gather_q8)(p, in, p0, mv, K, At, usum);
            }
            const int flip = direct && p->in_signed;
            int pan_end = (block + 1) * bpan < npanels ? (block + 1) * bpan : npanels;
            for (int pan = block * bpan; pan < pan_end; pan += 4) {
                int np = pan_end - pan < 4 ? pan_end - pan : 4;
#define RN_Q8_TILE_CALL(m0, MR, NP) do { \
        if (flip) RN_SFX(q8_tile)(p, a, K4, 1, m0, MR, pan, NP, K4, sums); \
        else RN_SFX(q8_tile)(p, a, K4, 0, m0, MR, pan, NP, K4, sums); } while (0)
                if (np == 4) {
                    RN_Q8_TILE_CALL(0, 6, 4);
                    if (mv > 6) RN_Q8_TILE_CALL(6, 6, 4);
                } else if (np == 3) {
                    RN_Q8_TILE_CALL(0, 6, 3);
                    if (mv > 6) RN_Q8_TILE_CALL(6, 6, 3);
                } else if (np == 2) {
                    RN_Q8_TILE_CALL(0, 12, 2);
                } else {
                    RN_Q8_TILE_CALL(0, 12, 1);
                }
#undef RN_Q8_TILE_CALL
                RN_SFX(q8_epilogue)(p, sums, usum, p0, mv, pan, np, out, acc_out);
            }
        }
        free(At);
    }
}

/* Float helpers: x86's NaN rule spelt out, the activation clamp, partial vector loads / stores. */

/* r with x86's NaN rule applied: first's NaN (quieted) if first is NaN, else second's. */
RN_INLINE VSF RN_SFX(nan_first)(VSF r, VSF first, VSF second) {
    const VSI quiet_bit = (VSI){0} + 0x00400000;
    r = RN_SFX(select_f)((VSI)(second != second), (VSF)((VSI)second | quiet_bit), r);
    return RN_SFX(select_f)((VSI)(first != first), (VSF)((VSI)first | quiet_bit), r);
}

/* std::min(std::max(v, lo), hi): max keeps v unless v < lo, min keeps it unless hi < it (NaN
 * passes through). */
RN_INLINE VSF RN_SFX(clamp_f)(VSF v, float lo, float hi) {
    const VSF zero = {0};
    v = RN_SFX(select_f)((VSI)(v < lo), zero + lo, v);
    return RN_SFX(select_f)((VSI)(hi < v), zero + hi, v);
}

/* The first `count` floats at src (count < RN_L32: masked, the other lanes 0.0f); store_f writes
 * the first `count` lanes of v. */
#if !defined(RN_ISA_AVX512)
/* A partial vector through memory, out of line: inlined, copying v's bytes made GCC keep every
 * vector of the loop in memory, full ones included (a 32-byte store and reload per vector:
 * binary_f 18816 values 14.3 -> 4 us on AVX2). */
__attribute__((noinline)) static VSF RN_SFX(load_f_part)(const float *src, int count) {
    float tail[RN_L32] = {0};
    VSF v;
    RN_SFX(copy_bytes)(tail, src, sizeof(float) * (size_t)(count & (RN_L32 - 1)));  /* < RN_L32 */
    memcpy(&v, tail, RN_VB);
    return v;
}

__attribute__((noinline)) static void RN_SFX(store_f_part)(float *dst, VSF v, int count) {
    float tail[RN_L32];
    memcpy(tail, &v, RN_VB);
    RN_SFX(copy_bytes)(dst, tail, sizeof(float) * (size_t)(count & (RN_L32 - 1)));
}
#endif

RN_INLINE VSF RN_SFX(load_f)(const float *src, int count) {
    VSF v;
    if (count >= RN_L32) { memcpy(&v, src, RN_VB); return v; }
#if defined(RN_ISA_AVX512)
    return (VSF)_mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), src);
#else
    return RN_SFX(load_f_part)(src, count);
#endif
}

RN_INLINE void RN_SFX(store_f)(float *dst, VSF v, int count) {
    if (count >= RN_L32) { memcpy(dst, &v, RN_VB); return; }
#if defined(RN_ISA_AVX512)
    _mm512_mask_storeu_ps(dst, (__mmask16)((1u << count) - 1), (__m512)v);
#else
    RN_SFX(store_f_part)(dst, v, count);
#endif
}

/* ------------------------------------------------------------------------------------------
 * Float convolution.  Each output's sum runs k = 0, 1, ... from 0.0f, one float32 product and
 * one float32 add per tap; lanes are output channels.  Every tile runs as a matrix product, a
 * padded tap as the product 0.0f * w: that adds +-0.0 to a sum which is never -0.0 (it starts
 * at +0.0, and under round-to-nearest x + y is -0.0 only when both are), so it leaves the sum's
 * bits as the reference's skipped tap does -- unless w is inf or NaN, which makes the output
 * NaN, and a NaN output sends the op to the plain kernel.
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
#pragma GCC unroll 4
    for (int v = 0; v < RN_NV; v++) {
        VSF r = RN_SFX(finish_f)(acc[v], p, c0 + v * RN_L32);
        *nan |= (VSI)(r != r);
        if (nc > v * RN_L32) RN_SFX(store_f)(dst + v * RN_L32, r, nc - v * RN_L32);
    }
}

/* 1 when a lane of v is set. */
RN_INLINE int RN_SFX(any_lane)(VSI v) {
#if defined(RN_ISA_AVX512)
    return _mm512_test_epi32_mask((__m512i)v, (__m512i)v) != 0;
#elif defined(RN_ISA_AVX2)
    return !_mm256_testz_si256((__m256i)v, (__m256i)v);
#elif RN_X86
    return _mm_movemask_epi8(_mm_cmpeq_epi32((__m128i)v, _mm_setzero_si128())) != 0xFFFF;
#else
    int32_t lanes[RN_L32], any = 0;  /* per lane: a loop over a vector in memory */
    memcpy(lanes, &v, RN_VB);
    for (int l = 0; l < RN_L32; l++) any |= lanes[l];
    return any != 0;
#endif
}

/* The tile's taps pixel-major, At[m * K + k] = x[pixel p0 + m, tap k]: 0.0f for padded taps and
 * absent pixels. */
static void RN_SFX(gather_f)(const rn_conv_t *p, const float *in, long p0, int mv, int K,
                             float *At) {
    const int C = p->in_c;
    if (mv < RN_TMR) memset(At + (size_t)mv * K, 0, sizeof(float) * (size_t)K * (RN_TMR - mv));
    rn_pixel_t at = {0, 0, 0, 0, 0};
    if (!p->pointwise) RN_SFX(pixel_at)(p, p0, &at);
    for (int m = 0; m < mv; m++) {
        float *dst = At + (size_t)m * K;
        if (p->pointwise) {
            RN_SFX(copy_bytes)(dst, in + (size_t)(p0 + m) * C, sizeof(float) * (size_t)K);
            continue;
        }
        if (m) RN_SFX(pixel_next)(p, &at);
        const int b = at.b, y0 = at.y0, x0 = at.x0;
        const int span = p->kw * C;  /* one filter row's taps */
        const int inside_x = p->dw == 1 && x0 >= 0 && x0 + p->kw - 1 < p->in_w;
        for (int ky = 0; ky < p->kh; ky++, dst += span) {
            const int iy = y0 + ky * p->dh;
            if (iy < 0 || iy >= p->in_h) {
                memset(dst, 0, sizeof(float) * (size_t)span);
                continue;
            }
            const float *line = in + ((size_t)b * p->in_h + iy) * p->in_w * C;
            if (inside_x) {  /* the row's taps are contiguous in NHWC */
                RN_SFX(copy_bytes)(dst, line + (size_t)x0 * C, sizeof(float) * (size_t)span);
                continue;
            }
            for (int kx = 0; kx < p->kw; kx++) {
                const int ix = x0 + kx * p->dw;
                if (ix < 0 || ix >= p->in_w) memset(dst + kx * C, 0, sizeof(float) * (size_t)C);
                else RN_SFX(copy_bytes)(dst + kx * C, line + (size_t)ix * C, sizeof(float) * (size_t)C);
            }
        }
    }
}

/* One pixel x np (1..4) panels from pan: a tile of fewer than RN_TMR pixels
 * (a FULLY_CONNECTED of batch 1, the last tile), whose sums would otherwise wait on one add
 * chain per panel and compute the absent pixels' zeros. */
RN_INLINE void RN_SFX(f_pixel4)(VSF acc[4][RN_NV], const float *a, const float *wf, int pan, int np, int K) {
    const float *W[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        W[j] = wf + (size_t)(pan + (j < np ? j : 0)) * K * RN_NR;
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) acc[j][v] = (VSF){0};
    }
    for (int k = 0; k < K; k++) {
        const float am = a[k];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
            for (int v = 0; v < RN_NV; v++) {
                VSF w;
                memcpy(&w, W[j] + (size_t)k * RN_NR + v * RN_L32, RN_VB);
                acc[j][v] = acc[j][v] + am * w;
            }
    }
}

/* RN_TMR pixels x one panel: a[m * K + k] is pixel m's tap k (the gathered tile, or a pointwise
 * op's input rows themselves), W the panel's weights [k][RN_NR]. */
RN_INLINE void RN_SFX(f_tile)(VSF acc[RN_TMR][RN_NV], const float *a, const float *W, int K) {
#pragma GCC unroll 16
    for (int m = 0; m < RN_TMR; m++)
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) acc[m][v] = (VSF){0};
    for (int k = 0; k < K; k++) {
        VSF w[RN_NV];
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) memcpy(&w[v], W + (size_t)k * RN_NR + v * RN_L32, RN_VB);
#pragma GCC unroll 16
        for (int m = 0; m < RN_TMR; m++) {
            const float am = a[(size_t)m * K + k];
#pragma GCC unroll 4
            for (int v = 0; v < RN_NV; v++) acc[m][v] = acc[m][v] + am * w[v];
        }
    }
}

/* Float convolution; returns 1 when an output is NaN (or a padded lane, which only a NaN or inf
 * input makes; so does an inf or NaN weight at a padded tap).  Which NaN a sum keeps depends on
 * the operand order of each addition (x86 returns the first NaN operand), which these vector sums
 * do not fix: the caller recomputes such an op with the plain kernel, which does. */
static int RN_SFX(conv_f)(const rn_conv_t *p, const float *in, float *out) {
    const int K = p->kh * p->kw * p->in_c;
    const long P = (long)p->batches * p->out_h * p->out_w;
    const int npanels = (p->out_c + RN_NR - 1) / RN_NR;
    const long ntiles = (P + RN_TMR - 1) / RN_TMR;
    if (P == 0 || p->out_c == 0) return 0;
    const int threads = p->threads > 0 ? p->threads : 1;
    const int bpan = rn_panels_per_block(196608L, (long)K * RN_NR * 4, npanels, ntiles, threads, 1);
    const int nblocks = (npanels + bpan - 1) / bpan;
    const long total = (long)nblocks * ntiles;
    const long chunk = rn_work_chunk(total, threads);
    const int C = p->in_c;

    int nan_seen = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(|:nan_seen)
    {
        /* a local copy: the float output stores may alias *p (act_min, the bias pointer), which
         * would make the compiler reload them for every pixel */
        const rn_conv_t params = *p;
        const rn_conv_t *p = &params;
        float *At = (float *)malloc(sizeof(float) * ((size_t)K * RN_TMR + 16));
#pragma omp for schedule(dynamic, chunk)
        for (long it = 0; it < total; it++) {
            if (!At) continue;
            long tile = it % ntiles;
            int block = (int)(it / ntiles);
            long p0 = tile * RN_TMR;
            int mv = (int)(P - p0 < RN_TMR ? P - p0 : RN_TMR);
            VSI nan_lanes = {0};
            /* a whole tile of a pointwise op reads its input rows in place */
            const int direct = p->pointwise && mv == RN_TMR;
            if (!direct) RN_SFX(gather_f)(p, in, p0, mv, K, At);
            const float *rows = direct ? in + (size_t)p0 * C : At;
            int pan_end = (block + 1) * bpan < npanels ? (block + 1) * bpan : npanels;
            if (mv < RN_TMR) {  /* a short tile: pixel by pixel, 4 panels at a time */
                for (int pan = block * bpan; pan < pan_end; pan += 4) {
                    const int np = pan_end - pan < 4 ? pan_end - pan : 4;
                    for (int m = 0; m < mv; m++) {
                        VSF acc[4][RN_NV];
                        RN_SFX(f_pixel4)(acc, rows + (size_t)m * K, p->wf, pan, np, K);
                        for (int j = 0; j < np; j++) {
                            const int c0 = (pan + j) * RN_NR;
                            const int nc = p->out_c - c0 < RN_NR ? p->out_c - c0 : RN_NR;
                            RN_SFX(store_panel_f)(acc[j], p, c0, nc, out + (size_t)(p0 + m) * p->out_c + c0, &nan_lanes);
                        }
                    }
                }
                nan_seen |= RN_SFX(any_lane)(nan_lanes);
                continue;
            }
            for (int pan = block * bpan; pan < pan_end; pan++) {
                const float *W = p->wf + (size_t)pan * K * RN_NR;
                int c0 = pan * RN_NR;
                int nc = p->out_c - c0 < RN_NR ? p->out_c - c0 : RN_NR;
                VSF acc[RN_TMR][RN_NV];
                RN_SFX(f_tile)(acc, rows, W, K);
                for (int m = 0; m < mv; m++)
                    RN_SFX(store_panel_f)(acc[m], p, c0, nc, out + (size_t)(p0 + m) * p->out_c + c0, &nan_lanes);
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

/* Vector v of a 16-channel panel's bytes at src as int32 lanes: a full panel loads whole
 * vectors; the op's last, partial panel (nc channels) only its present lanes (v * RN_L32 < nc). */
RN_INLINE VSI RN_SFX(panel_lanes8)(const char *src, int v, int nc, const int is_signed, const int full) {
    if (full) return RN_SFX(widen8)(src + v * RN_L32, is_signed);
    int count = nc - v * RN_L32;
    return RN_SFX(widen8_part)(src + v * RN_L32, is_signed, count < RN_L32 ? count : RN_L32);
}

/* interior pixels per pass of depthwise_q_row / depthwise_f_row: as many as keep their sums in
 * registers */
#define RN_DW_PIX (RN_NV > 2 ? 2 : 8 / RN_NV)

/* NPIX (a constant) consecutive interior pixels of depthwise_q_row, from (y0, x0) in the image:
 * every tap present, so each sum starts at bias_all and adds x * w alone; the pixels' chains of
 * dependent multiply-adds (5 cycles each with VNNI) interleave.  KW: the filter width where it
 * is a constant (3, 5), else 0. */
RN_INLINE void RN_SFX(depthwise_q_interior)(const char *image, size_t row_bytes, int C, int y0, int x0,
                                            int kh, int kw, int dh, int sw, int dw, const VSI *wv,
                                            const VSI *bias_all, const VSI *mult, const VSI *shift,
                                            const RN_SFX(requant_t) rq, int nc, const int is_signed,
                                            const int full, const int NPIX, const int KW, char *dst) {
    VSI accs[RN_DW_PIX][RN_NV];
#pragma GCC unroll 8
    for (int j = 0; j < NPIX; j++)
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) accs[j][v] = bias_all[v];
    if (KW && NPIX > 1 && sw == 1 && dw == 1) {
        /* unit stride: pixel j's tap kx is pixel j + 1's tap kx - 1, so each of the row's
         * NPIX + KW - 1 input columns is widened once, not once per tap */
        for (int ky = 0; ky < kh; ky++) {
            const char *row = image + (size_t)(y0 + ky * dh) * row_bytes + (size_t)x0 * C;
            const VSI *wk = wv + (size_t)ky * KW * RN_NV;
#pragma GCC unroll 4
            for (int v = 0; v < RN_NV; v++) {
                if (!full && v * RN_L32 >= nc) continue;
                VSI xs[RN_DW_PIX + 4];
#pragma GCC unroll 12
                for (int col = 0; col < NPIX + KW - 1; col++)
                    xs[col] = RN_SFX(panel_lanes8)(row + (size_t)col * C, v, nc, is_signed, full);
#pragma GCC unroll 5
                for (int kx = 0; kx < KW; kx++) {
                    const VSI w = wk[kx * RN_NV + v];
#pragma GCC unroll 8
                    for (int j = 0; j < NPIX; j++) RN_MADD(accs[j][v], (VHI)xs[j + kx], (VHI)w);
                }
            }
        }
    } else {
        for (int ky = 0; ky < kh; ky++) {
            const char *row = image + (size_t)(y0 + ky * dh) * row_bytes + (size_t)x0 * C;
            const VSI *wk = wv + (size_t)ky * kw * RN_NV;
#pragma GCC unroll 5
            for (int kx = 0; kx < kw; kx++)
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) {
                    if (!full && v * RN_L32 >= nc) continue;
                    const VSI w = wk[kx * RN_NV + v];
#pragma GCC unroll 8
                    for (int j = 0; j < NPIX; j++) {
                        const char *src = row + ((size_t)j * sw + (size_t)kx * dw) * C;
                        VSI x = RN_SFX(panel_lanes8)(src, v, nc, is_signed, full);
                        RN_MADD(accs[j][v], (VHI)x, (VHI)w);
                    }
                }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NPIX; j++)
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++)
            if (full || v * RN_L32 < nc)
                RN_SFX(requant_store8)(accs[j][v], mult[v], shift[v], rq, dst + (size_t)j * C + v * RN_L32,
                                       nc - v * RN_L32);
}

/* One output row of one channel panel (all RN_NV vectors full, or the op's last, partial
 * panel): weights, bias and requantization parameters held in registers while the pixels go
 * by; taps with their row outside the image skipped once per row, columns checked only near
 * the edges (interior pixels [ox_lo, ox_hi) take every tap).  The product (x + in_off) * w
 * is one pmaddwd: x + in_off fits int16 (input_offset_fits) so its int32 lane is that int16
 * sign-extended, and the weight lane holds the int16 weight with a zero high half. */
RN_INLINE void RN_SFX(depthwise_q_row)(const rn_conv_t *p, const void *in, void *out, int b, int oy,
                                       int pan, const VSI *wv, const VSI *wsum, int ox_lo,
                                       int ox_hi, const int is_signed, const int full, const int KW,
                                       const int KIND) {
    /* the geometry as locals (never addressed): a byte store to the output may alias anything
     * addressable, *p included, which made the compiler reload these after every store */
    const int kh = p->kh, dh = p->dh, dw = p->dw, sw = p->sw, pad_l = p->pad_l;
    const int in_w = p->in_w, out_w = p->out_w;
    const int32_t in_off = p->in_off;
    const RN_SFX(requant_t) rq = RN_SFX(requant_as)(p, KIND);  /* KIND: rn_epilogue_of, a constant */
    const int kw = KW ? KW : p->kw;  /* 3 and 5 are constants: the column taps unrolled */
    const int C = p->out_c, c0 = pan * RN_NR;
    const int nc = C - c0 < RN_NR ? C - c0 : RN_NR;
    const int y0 = oy * p->sh - p->pad_t;
    int ky0 = 0, ky1 = kh;
    while (ky0 < ky1 && y0 + ky0 * dh < 0) ky0++;
    while (ky1 > ky0 && y0 + (ky1 - 1) * dh >= p->in_h) ky1--;
    /* bias_all: the bias plus in_off * (the sum of every tap's weight), for pixels that take
     * every tap: their products are then x * w alone (exact modulo 2**32, as the int32 sums) */
    VSI bias[RN_NV], bias_all[RN_NV], mult[RN_NV], shift[RN_NV];
    const int every_row = ky0 == 0 && ky1 == kh;
#pragma GCC unroll 4
    for (int v = 0; v < RN_NV; v++) {
        bias[v] = (VSI){0};
        if (p->bias_q) memcpy(&bias[v], p->bias_q + c0 + v * RN_L32, RN_VB);
        bias_all[v] = (VSI)((VSU)bias[v] + (VSU)wsum[v] * (uint32_t)in_off);
        memcpy(&mult[v], p->mult + c0 + v * RN_L32, RN_VB);
        memcpy(&shift[v], p->shift + c0 + v * RN_L32, RN_VB);
    }
    const size_t row_bytes = (size_t)in_w * C;
    const char *image = (const char *)in + (size_t)b * p->in_h * row_bytes + c0;
    char *dst = (char *)out + (((size_t)b * p->out_h + oy) * out_w) * C + c0;
    for (int ox = 0; ox < out_w; ox++, dst += C) {
        const int x0 = ox * sw - pad_l;
        const int inside = ox >= ox_lo && ox < ox_hi;
        if (inside && every_row) {  /* RN_DW_PIX at a time while they last, then one */
#define RN_DWQ_INTERIOR(NPIX) \
    RN_SFX(depthwise_q_interior)(image, row_bytes, C, y0, x0, kh, kw, dh, sw, dw, wv, bias_all, mult, \
                                 shift, rq, nc, is_signed, full, NPIX, KW, dst)
            if (ox + RN_DW_PIX <= ox_hi) {
                RN_DWQ_INTERIOR(RN_DW_PIX);
                ox += RN_DW_PIX - 1;
                dst += (size_t)(RN_DW_PIX - 1) * C;
            } else {
                RN_DWQ_INTERIOR(1);
            }
#undef RN_DWQ_INTERIOR
            continue;
        }
        /* an edge pixel (or a row missing taps): each present tap's (x + in_off) * w */
        VSI acc[RN_NV];
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) acc[v] = bias[v];
        for (int ky = ky0; ky < ky1; ky++) {
            const char *row = image + (size_t)(y0 + ky * dh) * row_bytes;
            const VSI *wk = wv + (size_t)ky * kw * RN_NV;
#pragma GCC unroll 5
            for (int kx = 0; kx < kw; kx++) {
                const int ix = x0 + kx * dw;
                if (!inside && (ix < 0 || ix >= in_w)) continue;
                const char *src = row + (size_t)ix * C;
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) {
                    if (!full && v * RN_L32 >= nc) continue;
                    VSI x = RN_SFX(panel_lanes8)(src, v, nc, is_signed, full);
                    RN_MADD(acc[v], (VHI)(x + in_off), (VHI)wk[kx * RN_NV + v]);
                }
            }
        }
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++)
            if (full || v * RN_L32 < nc)
                RN_SFX(requant_store8)(acc[v], mult[v], shift[v], rq, dst + v * RN_L32, nc - v * RN_L32);
    }
}

static void RN_SFX(depthwise_q)(const rn_conv_t *p, const void *in, void *out) {
    const int C = p->out_c;
    const int npanels = (C + RN_NR - 1) / RN_NR;
    const int cpad = npanels * RN_NR;
    const int taps = p->kh * p->kw;
    const long rows = (long)p->batches * p->out_h;
    const int threads = p->threads > 0 ? p->threads : 1;
    if (rows == 0 || C == 0 || p->out_w == 0) return;
    /* interior columns: every tap inside the image */
    int ox_lo = 0, ox_hi = p->out_w;
    while (ox_lo < p->out_w && ox_lo * p->sw - p->pad_l < 0) ox_lo++;
    while (ox_hi > ox_lo && (ox_hi - 1) * p->sw - p->pad_l + (p->kw - 1) * p->dw >= p->in_w) ox_hi--;
    const long chunk = rn_work_chunk((long)npanels * rows, threads);
    const int kind = rn_epilogue_of(p);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        /* one panel's weights as int32 lanes: the int16 weight, high half zero (see above) */
        VSI *wv = (VSI *)aligned_alloc(RN_VB, sizeof(VSI) * ((size_t)taps + 1) * RN_NV);
        VSI *wsum = wv + (size_t)taps * RN_NV;  /* each channel's sum over the taps */
        int loaded = -1;  /* the panel whose weights wv holds */
#pragma omp for schedule(dynamic, chunk)
        for (long work = 0; work < (long)npanels * rows; work++) {
            if (!wv) continue;
            int pan = (int)(work / rows);
            long row = work % rows;
            if (pan != loaded) {
                loaded = pan;
                for (int v = 0; v < RN_NV; v++) wsum[v] = (VSI){0};
                for (int t = 0; t < taps; t++)
                    for (int v = 0; v < RN_NV; v++) {
                        VH32 wh;
                        memcpy(&wh, p->wq + (size_t)t * cpad + pan * RN_NR + v * RN_L32, sizeof wh);
                        VSI wide = __builtin_convertvector(wh, VSI);
                        wv[t * RN_NV + v] = wide & 0xFFFF;
                        wsum[v] = (VSI)((VSU)wsum[v] + (VSU)wide);
                    }
            }
            int b = (int)(row / p->out_h), oy = (int)(row % p->out_h);
            int full = (pan + 1) * RN_NR <= C;
            /* a copy per filter width (3, 5, any), and for whole panels per requantization form
             * the profiles use (the reference's, optimized's and XNNPACK's: its steps constants,
             * 10-15 % of a depthwise layer on Zen 4); the rest, and the partial last panel, read
             * the form at run time */
#define RN_DW_ROW(is_signed, full, kw, KIND) \
    RN_SFX(depthwise_q_row)(p, in, out, b, oy, pan, wv, wsum, ox_lo, ox_hi, is_signed, full, kw, KIND)
#define RN_DW_ROW_KW(is_signed, full, KIND) \
    do { if (p->kw == 3) RN_DW_ROW(is_signed, full, 3, KIND); \
         else if (p->kw == 5) RN_DW_ROW(is_signed, full, 5, KIND); \
         else RN_DW_ROW(is_signed, full, 0, KIND); } while (0)
#define RN_DW_ROW_KIND(is_signed) \
    do { if (!full) RN_DW_ROW_KW(is_signed, 0, RN_EPI_GENERAL); \
         else if (kind == RN_EPI_DOUBLE) RN_DW_ROW_KW(is_signed, 1, RN_EPI_DOUBLE); \
         else if (kind == RN_EPI_DOUBLE_TIES_UP) RN_DW_ROW_KW(is_signed, 1, RN_EPI_DOUBLE_TIES_UP); \
         else if (kind == RN_EPI_FP32) RN_DW_ROW_KW(is_signed, 1, RN_EPI_FP32); \
         else RN_DW_ROW_KW(is_signed, 1, RN_EPI_GENERAL); } while (0)
            if (p->in_signed) RN_DW_ROW_KIND(1);
            else RN_DW_ROW_KIND(0);
#undef RN_DW_ROW_KIND
#undef RN_DW_ROW_KW
#undef RN_DW_ROW
        }
        free(wv);
    }
}


/* One output row of one channel panel, float (all RN_NV vectors full, or the op's last, partial
 * panel): the panel's tap weights wv [tap][RN_NV] and its bias held while the pixels go by; filter
 * rows outside the image skipped once per row, columns checked only outside the interior
 * [ox_lo, ox_hi).  Each output: acc = 0, then acc + x * w over the present taps in order (ky, kx),
 * + bias, the clamp (as finish_f); lanes holding a NaN are marked in *nan. */
RN_INLINE void RN_SFX(depthwise_f_row)(const rn_conv_t *p, const float *in, float *out, int b, int oy,
                                       int pan, const VSF *wv, int ox_lo, int ox_hi, const int full,
                                       const int KW, VSI *nan) {
    const rn_conv_t params = *p;  /* a local copy, as in q8_tile */
    p = &params;
    const int kw = KW ? KW : p->kw;  /* 3 and 5 are constants: the column taps unrolled */
    const int C = p->out_c, c0 = pan * RN_NR;
    const int nc = C - c0 < RN_NR ? C - c0 : RN_NR;
    const int y0 = oy * p->sh - p->pad_t;
    int ky0 = 0, ky1 = p->kh;
    while (ky0 < ky1 && y0 + ky0 * p->dh < 0) ky0++;
    while (ky1 > ky0 && y0 + (ky1 - 1) * p->dh >= p->in_h) ky1--;
    VSF bias[RN_NV];  /* no bias: the reference adds 0.0f */
#pragma GCC unroll 4
    for (int v = 0; v < RN_NV; v++) {
        bias[v] = (VSF){0};
        if (p->bias_f) memcpy(&bias[v], p->bias_f + c0 + v * RN_L32, RN_VB);
    }
    const size_t row_floats = (size_t)p->in_w * C;
    const float *image = in + (size_t)b * p->in_h * row_floats + c0;
    float *dst = out + (((size_t)b * p->out_h + oy) * p->out_w) * C + c0;
    VSI nan_lanes = *nan;
    for (int ox = 0; ox < p->out_w; ox++, dst += C) {
        const int x0 = ox * p->sw - p->pad_l;
        const int inside = ox >= ox_lo && ox < ox_hi;
        if (inside && ox + RN_DW_PIX <= ox_hi) {
            /* RN_DW_PIX interior pixels at once: their add chains interleave (one pixel's taps
             * are a chain of dependent adds, each waiting on the last) */
            VSF accs[RN_DW_PIX][RN_NV];
#pragma GCC unroll 8
            for (int j = 0; j < RN_DW_PIX; j++)
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) accs[j][v] = (VSF){0};
            for (int ky = ky0; ky < ky1; ky++) {
                const float *row = image + (size_t)(y0 + ky * p->dh) * row_floats + (size_t)x0 * C;
                const VSF *wk = wv + (size_t)ky * kw * RN_NV;
#pragma GCC unroll 5
                for (int kx = 0; kx < kw; kx++)
#pragma GCC unroll 4
                    for (int v = 0; v < RN_NV; v++) {
                        if (!full && v * RN_L32 >= nc) continue;
                        const VSF w = wk[kx * RN_NV + v];
#pragma GCC unroll 8
                        for (int j = 0; j < RN_DW_PIX; j++) {
                            const float *src = row + ((size_t)j * p->sw + (size_t)kx * p->dw) * C + v * RN_L32;
                            VSF x;
                            if (full) memcpy(&x, src, RN_VB);
                            else x = RN_SFX(load_f)(src, nc - v * RN_L32);
                            accs[j][v] = accs[j][v] + x * w;
                        }
                    }
            }
#pragma GCC unroll 8
            for (int j = 0; j < RN_DW_PIX; j++)
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) {
                    if (!full && v * RN_L32 >= nc) continue;
                    VSF r = RN_SFX(clamp_f)(accs[j][v] + bias[v], p->act_min, p->act_max);
                    nan_lanes |= (VSI)(r != r);
                    if (full) memcpy(dst + (size_t)j * C + v * RN_L32, &r, RN_VB);
                    else RN_SFX(store_f)(dst + (size_t)j * C + v * RN_L32, r, nc - v * RN_L32);
                }
            ox += RN_DW_PIX - 1;
            dst += (size_t)(RN_DW_PIX - 1) * C;
            continue;
        }
        VSF acc[RN_NV];
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) acc[v] = (VSF){0};
        for (int ky = ky0; ky < ky1; ky++) {
            const float *row = image + (size_t)(y0 + ky * p->dh) * row_floats;
            const VSF *wk = wv + (size_t)ky * kw * RN_NV;
#pragma GCC unroll 5
            for (int kx = 0; kx < kw; kx++) {
                const int ix = x0 + kx * p->dw;
                if (!inside && (ix < 0 || ix >= p->in_w)) continue;
                const float *src = row + (size_t)ix * C;
#pragma GCC unroll 4
                for (int v = 0; v < RN_NV; v++) {
                    if (!full && v * RN_L32 >= nc) continue;
                    VSF x;
                    if (full) memcpy(&x, src + v * RN_L32, RN_VB);
                    else x = RN_SFX(load_f)(src + v * RN_L32, nc - v * RN_L32);
                    acc[v] = acc[v] + x * wk[kx * RN_NV + v];
                }
            }
        }
#pragma GCC unroll 4
        for (int v = 0; v < RN_NV; v++) {
            if (!full && v * RN_L32 >= nc) continue;
            VSF r = RN_SFX(clamp_f)(acc[v] + bias[v], p->act_min, p->act_max);
            nan_lanes |= (VSI)(r != r);
            if (full) memcpy(dst + v * RN_L32, &r, RN_VB);
            else RN_SFX(store_f)(dst + v * RN_L32, r, nc - v * RN_L32);
        }
    }
    *nan = nan_lanes;
}

/* Float depthwise convolution; returns 1 when an output is NaN (as conv_f: the caller then takes
 * the plain kernel, whose operand order fixes which NaN a sum keeps). */
static int RN_SFX(depthwise_f)(const rn_conv_t *p, const float *in, float *out) {
    const int C = p->out_c;
    const int npanels = (C + RN_NR - 1) / RN_NR;
    const int cpad = npanels * RN_NR;
    const int taps = p->kh * p->kw;
    const long rows = (long)p->batches * p->out_h;
    const int threads = p->threads > 0 ? p->threads : 1;
    if (rows == 0 || C == 0 || p->out_w == 0) return 0;
    /* interior columns: every tap inside the image */
    int ox_lo = 0, ox_hi = p->out_w;
    while (ox_lo < p->out_w && ox_lo * p->sw - p->pad_l < 0) ox_lo++;
    while (ox_hi > ox_lo && (ox_hi - 1) * p->sw - p->pad_l + (p->kw - 1) * p->dw >= p->in_w) ox_hi--;
    int nan_seen = 0;
    const long chunk = rn_work_chunk((long)npanels * rows, threads);
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(|:nan_seen)
    {
        VSF *wv = (VSF *)aligned_alloc(RN_VB, sizeof(VSF) * ((size_t)taps * RN_NV + 1));
        int loaded = -1;  /* the panel whose weights wv holds */
        VSI nan_lanes = {0};
#pragma omp for schedule(dynamic, chunk)
        for (long work = 0; work < (long)npanels * rows; work++) {
            if (!wv) continue;
            /* an output row's panels one after another: the input rows they read stay in cache
             * (panel by panel over the image, a wide early layer streams it once per panel) */
            long row = work / npanels;
            int pan = (int)(work % npanels);
            if (pan != loaded) {
                loaded = pan;
                for (int t = 0; t < taps; t++)
                    memcpy(wv + (size_t)t * RN_NV, p->wf + (size_t)t * cpad + pan * RN_NR, sizeof(float) * RN_NR);
            }
            int b = (int)(row / p->out_h), oy = (int)(row % p->out_h);
            int full = (pan + 1) * RN_NR <= C;
#define RN_DWF_ROW(full, kw) \
    RN_SFX(depthwise_f_row)(p, in, out, b, oy, pan, wv, ox_lo, ox_hi, full, kw, &nan_lanes)
#define RN_DWF_ROW_KW(full) \
    do { if (p->kw == 3) RN_DWF_ROW(full, 3); else if (p->kw == 5) RN_DWF_ROW(full, 5); \
         else RN_DWF_ROW(full, 0); } while (0)
            if (full) RN_DWF_ROW_KW(1);
            else RN_DWF_ROW_KW(0);
#undef RN_DWF_ROW_KW
#undef RN_DWF_ROW
        }
        nan_seen |= RN_SFX(any_lane)(nan_lanes);
        free(wv);
    }
    return nan_seen;
}

/* ------------------------------------------------------------------------------------------
 * Quantized ADD / MUL (elementwise.py's arithmetic), b repeating with a period.
 * ---------------------------------------------------------------------------------------- */

/* Form ADD_INPUT_SHIFT_FLOOR_8's input rescale: in whole 8-element blocks (flat index below
 * `blocked`) the high multiply then a flooring shift (vshl; e <= 0), else the reference's. */
RN_INLINE VSI RN_SFX(add_input_floor8)(VSI x, int32_t m, int32_t e, VSI index, long blocked) {
    const VSI zero = {0};
    VSI floor = RN_SFX(srdhm32)(x, zero + m) >> (zero - e);
    VSI reference = RN_SFX(mbqm32)(x, zero + m, zero + e, RN_ROUNDING_DOUBLE);
    VSI in_block = index < (VSI)(zero + (int32_t)blocked);
    return (in_block & floor) | (~in_block & reference);
}

/* Form ADD_XNNPACK (refnet.requantize.add_xnnpack) on centred inputs |x| <= 255:
 * (2**(shift - 1) + x1 * m1 + x2 * m2) >> shift, arithmetic (ties up).  |m| <= 2**21 and shift
 * in [12, 30] (add_xnnpack_params), so the sum stays below 2**31 in magnitude. */
RN_INLINE VSI RN_SFX(add_xnnpack32)(VSI x1, VSI x2, int32_t m1, int32_t m2, int32_t shift) {
    const VSI zero = {0};
    return ((zero + (int32_t)(1 << (shift - 1))) + x1 * m1 + x2 * m2) >> shift;
}

/* One vector of the op: x1, x2 centred inputs, i the flat index of lane 0; the raw result
 * (zero point not added). */
RN_INLINE VSI RN_SFX(elementwise_raw)(const rn_elementwise_t *e, VSI x1, VSI x2, VSI lanes, size_t i,
                                      long blocked) {
    const VSI zero = {0};
    if (e->is_mul) {
        if (e->rounding == RN_ROUNDING_FP32)  /* clamped, then + zp, as requant32 */
            return RN_SFX(clamp32)(RN_SFX(rint_clipped32)(__builtin_convertvector(x1 * x2, VSF) * e->scale),
                                   -65536, 65536);
        return RN_SFX(mbqm32)(x1 * x2, zero + e->mo, zero + e->eo, e->rounding);
    }
    if (e->rounding == RN_ADD_XNNPACK)
        return RN_SFX(add_xnnpack32)(x1, x2, e->m1, e->m2, e->e1);
    if (e->rounding == RN_ADD_INPUT_SHIFT_FLOOR_8) {  /* same shapes: period == n */
        VSI index = lanes + (int32_t)i;
        VSI y1 = RN_SFX(add_input_floor8)(x1 << 20, e->m1, e->e1, index, blocked);
        VSI y2 = RN_SFX(add_input_floor8)(x2 << 20, e->m2, e->e2, index, blocked);
        return RN_SFX(mbqm32)(y1 + y2, zero + e->mo, zero + e->eo, RN_ROUNDING_DOUBLE);
    }
    VSI y1 = RN_SFX(mbqm32)(x1 << 20, zero + e->m1, zero + e->e1, e->rounding);
    VSI y2 = RN_SFX(mbqm32)(x2 << 20, zero + e->m2, zero + e->e2, e->rounding);
    return RN_SFX(mbqm32)(y1 + y2, zero + e->mo, zero + e->eo, e->rounding);
}

static void RN_SFX(elementwise_q)(const rn_elementwise_t *e, const void *a, const void *b, void *out) {
    const long period = e->period, spans = rn_spans(e->n, period);
    const int threads = rn_span_threads(e->n, e->threads);
    const long blocked = ((long)e->n / 8) * 8;
    const int sgn = e->is_signed;
    int32_t lane_numbers[RN_L32];
    for (int l = 0; l < RN_L32; l++) lane_numbers[l] = l;
    VSI lanes;
    memcpy(&lanes, lane_numbers, RN_VB);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long u = 0; u < spans; u++) {
        const rn_span_t sp = rn_span(u, period);
        for (long j = sp.start; j < sp.end; j += RN_L32) {
            int count = sp.end - j < RN_L32 ? (int)(sp.end - j) : RN_L32;
            size_t i = (size_t)sp.row * period + j;
            const char *pa = (const char *)a + i, *pb = (const char *)b + j;
            /* |q - zp| <= 255 (zero points in the type's range): every intermediate fits int32 */
            VSI x1 = (count == RN_L32 ? RN_SFX(widen8)(pa, sgn) : RN_SFX(widen8_part)(pa, sgn, count)) - e->zp1;
            VSI x2 = (count == RN_L32 ? RN_SFX(widen8)(pb, sgn) : RN_SFX(widen8_part)(pb, sgn, count)) - e->zp2;
            VSI raw = RN_SFX(elementwise_raw)(e, x1, x2, lanes, i, blocked);
            RN_SFX(store8)(RN_SFX(clamp32)(raw + e->zpo, e->lo, e->hi), sgn, (char *)out + i, count);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * The rest of the graph: QUANTIZE float32 -> int8/uint8, sums of 8-bit rows (MEAN, global
 * AVERAGE_POOL_2D), 256-entry byte tables (unary 8-bit ops whose table prepare built).
 * ---------------------------------------------------------------------------------------- */

/* static_cast<int32_t>(roundf(v)) on float32 lanes: round half away from zero, then the build's
 * conversion of NaN and values outside int32 (x86-64: INT32_MIN; saturating: clamped, NaN 0),
 * as refnet.fixedpoint.round_half_away then truncate_to_int32.  trunc(v) and v - trunc(v) are
 * exact; a value with a fraction is below 2**23, so the +-1 cannot overflow. */
RN_INLINE VSI RN_SFX(round_half_away_cvt32)(VSF v, int saturating) {
    const VSF zero = {0};
    const VSF lim = zero + 2147483648.0f, half = zero + 0.5f;
    VSI fits = (v >= -lim) & (v < lim);  /* false for NaN */
    VSF inside = RN_SFX(select_f)(fits, v, zero);
    VSI t = __builtin_convertvector(inside, VSI);  /* in range: truncation toward zero */
    VSF frac = inside - __builtin_convertvector(t, VSF);
    t = t - (VSI)(frac >= half) + (VSI)(frac <= -half);
    VSI outside = (VSI){0} + INT32_MIN;
    if (saturating) {
        VSI is_nan = (VSI)(v != v), positive = (VSI)(v > zero);
        outside = (is_nan & 0) | (~is_nan & ((positive & INT32_MAX) | (~positive & INT32_MIN)));
    }
    return (fits & t) | (~fits & outside);
}

/* QUANTIZE float32 -> int8/uint8 (refnet/ops/quantize.py, per tensor):
 *   form ROUNDING_DOUBLE (the reference): clamp(wrap32(cvt(roundf(x / scale)) + zp)), or with
 *     q->reciprocal x * inv (inv = float32(1 / scale), computed by the caller);
 *   form QUANTIZE_RECIPROCAL_RNE: clamp(rint(clip(x * inv)) + zp); NaN: the int64 INT64_MIN + zp
 *     of refnet.requantize.quantize_reciprocal_rne (the type's minimum, its maximum when zp < 0). */
static void RN_SFX(quantize_f)(const rn_quantize_t *q, const float *x, void *out) {
    const VSF zero = {0};
    const int sgn = q->is_signed;
    const long spans = rn_spans(q->n, q->n);
    const int threads = rn_span_threads(q->n, q->threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long u = 0; u < spans; u++) {
        const rn_span_t sp = rn_span(u, q->n);
        for (long i = sp.start; i < sp.end; i += RN_L32) {
            int count = sp.end - i < RN_L32 ? (int)(sp.end - i) : RN_L32;
            const VSF v = RN_SFX(load_f)(x + i, count);
            VSI r;
            if (q->form == RN_QUANTIZE_RECIPROCAL_RNE) {
                VSF p = v * q->inv;
                VSI is_num = (VSI)(p == p);
                r = RN_SFX(clamp32)(RN_SFX(rint_clipped32)(RN_SFX(select_f)(is_num, p, zero)), -65536, 65536) + q->zp;
                /* NaN: the oracle's int64 conversion gives INT64_MIN, and + zp wraps when zp < 0 */
                r = (is_num & r) | (~is_num & (q->zp < 0 ? q->hi : q->lo));
            } else {
                VSF p = q->reciprocal ? v * q->inv : v / (zero + q->scale);
                r = RN_SFX(round_half_away_cvt32)(p, q->saturating) + q->zp;  /* wraps (-fwrapv) */
            }
            RN_SFX(store8)(RN_SFX(clamp32)(r, q->lo, q->hi), sgn, (char *)out + i, count);
        }
    }
}

/* out[o, c] = sum over p of x[o, p, c] (8-bit values, raw), int32: exact while P * 255 < 2**31. */
static void RN_SFX(sum_rows8)(const void *x, int is_signed, long outer, long rows, long inner, int32_t *out) {
    const VSI zero = {0};
    for (long o = 0; o < outer; o++) {
        const char *base = (const char *)x + (size_t)o * rows * inner;
        for (long c = 0; c < inner; c += 4 * RN_L32) {
            VSI acc[4] = {zero, zero, zero, zero};
            long width = inner - c < 4 * RN_L32 ? inner - c : 4 * RN_L32;
            if (width == 4 * RN_L32) {
                for (long p = 0; p < rows; p++) {
                    const char *src = base + (size_t)p * inner + c;
#pragma GCC unroll 4
                    for (int v = 0; v < 4; v++) acc[v] = acc[v] + RN_SFX(widen8)(src + v * RN_L32, is_signed);
                }
            } else {
                for (long p = 0; p < rows; p++) {
                    const char *src = base + (size_t)p * inner + c;
                    for (int v = 0; v * RN_L32 < width; v++) {
                        int count = width - v * RN_L32 < RN_L32 ? (int)(width - v * RN_L32) : RN_L32;
                        acc[v] = acc[v] + (count == RN_L32 ? RN_SFX(widen8)(src + v * RN_L32, is_signed)
                                                           : RN_SFX(widen8_part)(src + v * RN_L32, is_signed, count));
                    }
                }
            }
            int32_t sums[4 * RN_L32];
            memcpy(sums, acc, sizeof sums);
            memcpy(out + (size_t)o * inner + c, sums, sizeof(int32_t) * (size_t)width);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Float elementwise: ADD / MUL with a fused clamp, HARD_SWISH, the sums of MEAN.  One float32
 * operation per step as the reference, lanes independent.  Where an operation can see two NaN
 * operands, x86's rule (the first NaN operand, quieted) is spelt out by selects: the compiler
 * may commute the operands of a float add or multiply, which would change the NaN kept.
 * ---------------------------------------------------------------------------------------- */

/* out[i] = clamp(a[i] op b[i]) for i < n, one of the two read with a period dividing n:
 * b_repeats: b[i % period], else a[i % period] (a broadcast operand stays the first).  Where both
 * are NaN, a's NaN is kept, except b's where i % nan_run < second_limit (the profile's NaN
 * blocks, refnet.ops.elementwise.nan_second_run; second_limit 0: a's everywhere). */
/* binary_f's rare case, out of line (inlined, its lanes in memory kept every vector there):
 * lanes i0 + l where both operands are NaN and i % nan_run < second_limit take y's NaN, quieted. */
__attribute__((noinline)) static VSF RN_SFX(nan_blocks_second)(VSF raw, VSF x, VSF y, long i0, int count,
                                                              long nan_run, long second_limit) {
    float xs[RN_L32], ys[RN_L32], rs[RN_L32];
    memcpy(xs, &x, RN_VB);
    memcpy(ys, &y, RN_VB);
    memcpy(rs, &raw, RN_VB);
    for (int l = 0; l < count; l++) {
        if (xs[l] != xs[l] && ys[l] != ys[l] && (i0 + l) % nan_run < second_limit) {
            uint32_t bits;
            memcpy(&bits, &ys[l], 4);
            bits |= 0x00400000u;
            memcpy(&rs[l], &bits, 4);
        }
    }
    memcpy(&raw, rs, RN_VB);
    return raw;
}

static void RN_SFX(binary_f)(const float *a, const float *b, float *out, long n, long period,
                             int b_repeats, int is_mul, float lo, float hi, long nan_run,
                             long second_limit, int threads) {
    if (n <= 0 || period <= 0) return;
    const long spans = rn_spans(n, period);
    threads = rn_span_threads(n, threads);
    if (nan_run <= 0) second_limit = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long u = 0; u < spans; u++) {
        const rn_span_t sp = rn_span(u, period);
        const long r = sp.row;
        const float *ar = b_repeats ? a + (size_t)r * period : a;
        const float *br = b_repeats ? b : b + (size_t)r * period;
        float *o = out + (size_t)r * period;
        for (long j = sp.start; j < sp.end; j += RN_L32) {
            const int count = sp.end - j < RN_L32 ? (int)(sp.end - j) : RN_L32;
            VSF x = RN_SFX(load_f)(ar + j, count), y = RN_SFX(load_f)(br + j, count);
            VSF raw = is_mul ? x * y : x + y;
            raw = RN_SFX(nan_first)(raw, x, y);
            if (second_limit && RN_SFX(any_lane)((VSI)(x != x) & (VSI)(y != y)))
                raw = RN_SFX(nan_blocks_second)(raw, x, y, r * period + j, count, nan_run, second_limit);
            RN_SFX(store_f)(o + j, RN_SFX(clamp_f)(raw, lo, hi), count);
        }
    }
}

/* out = x * min(6, max(0, x + 3)) / 6 in float32 (reciprocal: (x * (1/6)) * relu6); only x can
 * be a NaN operand at any step, so the operand order cannot change a NaN. */
static void RN_SFX(hard_swish_f)(const float *x, float *out, long n, int reciprocal, int threads) {
    const VSF zero = {0}, three = zero + 3.0f, six = zero + 6.0f;
    const float sixth_scalar = 1.0f / 6.0f;  /* a float32 quotient, as the reference's */
    const VSF sixth = zero + sixth_scalar;
    const long spans = rn_spans(n, n);
    threads = rn_span_threads(n, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long u = 0; u < spans; u++) {
        const rn_span_t sp = rn_span(u, n);
        for (long i = sp.start; i < sp.end; i += RN_L32) {
            const int count = sp.end - i < RN_L32 ? (int)(sp.end - i) : RN_L32;
            VSF v = RN_SFX(load_f)(x + i, count);
            VSF shifted = v + three;
            VSF relu6 = RN_SFX(select_f)((VSI)(zero < shifted), shifted, zero);  /* std::max(0, s) */
            relu6 = RN_SFX(select_f)((VSI)(relu6 < six), relu6, six);            /* std::min(6, r) */
            VSF r = reciprocal ? (v * sixth) * relu6 : (v * relu6) / six;
            RN_SFX(store_f)(out + i, r, count);
        }
    }
}

/* The sums of NV (a constant: the accumulators stay in registers) vectors of columns over the
 * rows, in order from +0.0, the last vector `tail` columns wide (RN_L32 as a constant: whole
 * loads only); nan_rule: x86's NaN operand rule spelt out at every add (nan_first), else plain
 * adds.  Each column is one chain of dependent adds: NV chains interleave. */
RN_INLINE void RN_SFX(sum_rows_block_f)(const float *base, long rows, long inner, const int NV,
                                        const int tail, const int nan_rule, float *out) {
    VSF acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[v] = (VSF){0};
    for (long p = 0; p < rows; p++) {
        const float *src = base + (size_t)p * inner;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            VSF xv;
            if (v < NV - 1 || tail == RN_L32) memcpy(&xv, src + v * RN_L32, RN_VB);
            else xv = RN_SFX(load_f)(src + v * RN_L32, tail);
            acc[v] = nan_rule ? RN_SFX(nan_first)(acc[v] + xv, acc[v], xv) : acc[v] + xv;
        }
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) RN_SFX(store_f)(out + v * RN_L32, acc[v], v < NV - 1 ? RN_L32 : tail);
}

/* out[o, c] = sum over p of x[o, p, c] in order p = 0, 1, ... from +0.0f (MEAN's sum), the
 * running sum the first operand of each add.  Plain adds first: a NaN anywhere in a chain leaves
 * its sum NaN (inf - inf makes one too), so a sum that is not NaN never met one and has the
 * reference's bits; columns with a NaN sum are summed again with the NaN rule (which NaN the
 * reference keeps depends on the operands). */
static void RN_SFX(sum_rows_f)(const float *x, long outer, long rows, long inner, float *out) {
    for (long o = 0; o < outer; o++) {
        const float *base = x + (size_t)o * rows * inner;
        float *dst = out + (size_t)o * inner;
        for (long c = 0; c < inner; c += 8 * RN_L32) {
            const long width = inner - c < 8 * RN_L32 ? inner - c : 8 * RN_L32;
            const int nv = (int)((width + RN_L32 - 1) / RN_L32), tail = (int)(width - (nv - 1) * RN_L32);
            for (int nan_rule = 0; nan_rule < 2; nan_rule++) {
#define RN_SUM_BLOCK(NV) do { \
        if (tail == RN_L32) RN_SFX(sum_rows_block_f)(base + c, rows, inner, NV, RN_L32, nan_rule, dst + c); \
        else RN_SFX(sum_rows_block_f)(base + c, rows, inner, NV, tail, nan_rule, dst + c); } while (0)
                switch (nv) {
                    case 8: RN_SUM_BLOCK(8); break;
                    case 7: RN_SUM_BLOCK(7); break;
                    case 6: RN_SUM_BLOCK(6); break;
                    case 5: RN_SUM_BLOCK(5); break;
                    case 4: RN_SUM_BLOCK(4); break;
                    case 3: RN_SUM_BLOCK(3); break;
                    case 2: RN_SUM_BLOCK(2); break;
                    default: RN_SUM_BLOCK(1); break;
                }
#undef RN_SUM_BLOCK
                int any_nan = 0;
                for (long i = 0; i < width; i++) any_nan |= dst[c + i] != dst[c + i];
                if (!any_nan) break;
            }
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
#undef VUH
#undef VQ32
#undef VUQ32
#undef VH32
#undef RN_DW_PIX
#undef RN_NV
#undef RN_L32
#undef RN_L64
