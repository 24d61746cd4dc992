# cython: language_level=3
"""Fast kernels (refnet._kernels_fast): the reference sums, reorganised for speed, same bits.

C bodies in fast_body.h (GCC vector extensions, compiled for AVX-512, AVX2 and the baseline,
chosen at import from cpuid; set_isa() lowers the choice, for the tests), OpenMP over pixel
tiles / output rows.  What each kernel computes:

conv_q         CONV_2D (and 1x1 / FULLY_CONNECTED as a 1x1 conv) on int8/uint8: the int32
               accumulator bias + sum (x + in_off) * (w + w_off) -- exact modulo 2**32, so in
               any order -- then, with an int8/uint8 `out`, MultiplyByQuantizedMultiplier (a fixed-
               point form of refnet/forms.py) + zero point (int32 wrap) and the clamp, fused; with
               an int32 `out`, the raw accumulators (what conv.pyx/pointwise.pyx return).
conv_f         float32 CONV_2D: each output sums its taps k = (ky, kx, ci) in order from 0.0f,
               float32 product then float32 add (no FMA), + bias (0.0f without), clamp max then
               min: LiteRT's reference float Conv bit for bit.  Lanes are output channels.
depthwise_q/_f DEPTHWISE_CONV_2D with depth multiplier 1, same arithmetic as depthwise.pyx
               (taps in order (ky, kx), padded taps skipped), requantization fused.
elementwise_q  quantized ADD / MUL exactly as refnet/ops/elementwise.py, b repeating with a
               period (b broadcast over a's leading dimensions).

Weights are packed once (pack_q / pack_q8 / pack_f / pack_depthwise_*): panels of 16 output
channels, [panel][k][16], int8 (w + w_off - beta), int16 (depthwise: w + w_off) or float32,
channels padded with zeros; per-channel vectors (bias, multiplier, shift) are padded to the
same width (pad_channels).
"""
import numpy as np

cimport numpy as cnp
cimport fixedpoint as fp
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t

cnp.import_array()

cdef extern from "fast_dispatch.h" nogil:
    int RN_NR
    ctypedef struct rn_conv_t:
        int batches, in_h, in_w, in_c
        int out_h, out_w, out_c
        int kh, kw, sh, sw, dh, dw, pad_t, pad_l
        int pointwise
        int in_signed
        int32_t in_off
        const int16_t *wq
        const float *wf
        const int8_t *w8
        int32_t beta, pad_u8
        const int32_t *bias_q
        const float *bias_f
        const int32_t *mult
        const int32_t *shift
        int zp, qmin, qmax, rounding, out_signed
        int left_shifts, min_multiplier
        float act_min, act_max
        int threads
    ctypedef struct rn_elementwise_t:
        int n, period
        int is_signed
        int is_mul
        int32_t zp1, zp2, zpo
        int32_t m1, e1, m2, e2, mo, eo
        int32_t lo, hi
        int rounding
        float scale
        int threads
    ctypedef struct rn_quantize_t:
        long n
        int is_signed, form, reciprocal, saturating
        float scale, inv
        int32_t zp, lo, hi
        int threads
    void rn_quantize_f(const rn_quantize_t *q, const float *x, void *out)
    void rn_sum_rows8(const void *x, int is_signed, long outer, long rows, long inner, int32_t *out)
    void rn_binary_f(const float *a, const float *b, float *out, long n, long period, int b_repeats,
                     int is_mul, float lo, float hi, long nan_run, long second_limit, int threads)
    void rn_hard_swish_f(const float *x, float *out, long n, int reciprocal, int threads)
    void rn_sum_rows_f(const float *x, long outer, long rows, long inner, float *out)
    void rn_lut8(const uint8_t *table, const uint8_t *x, uint8_t *out, long n, int threads)
    void rn_lut16(const uint8_t *table, const uint8_t *a, const uint8_t *b, uint8_t *out, long n,
                  long period, int threads)
    int rn_isa
    int rn_isa_supported()
    void rn_conv_q(const rn_conv_t *p, const void *inp, void *out, int32_t *acc_out)
    void rn_conv_q8(const rn_conv_t *p, const void *inp, void *out, int32_t *acc_out)
    int rn_conv_f(const rn_conv_t *p, const float *inp, float *out)
    void rn_depthwise_q(const rn_conv_t *p, const void *inp, void *out)
    int rn_depthwise_f(const rn_conv_t *p, const float *inp, float *out)
    void rn_elementwise_q(const rn_elementwise_t *e, const void *a, const void *b, void *out)
    void rn_mbqm_array(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, long n,
                       int form)

ISA_NAMES = {0: "generic", 1: "avx2", 2: "avx512", 3: "avx512-vnni"}
cdef int _SUPPORTED = rn_isa_supported()


cdef void _set_level(int level) noexcept nogil:
    global rn_isa
    rn_isa = level


_set_level(_SUPPORTED)


def isa_supported():
    """The best ISA level this CPU runs (0 generic, 1 AVX2, 2 AVX-512, 3 AVX-512 with VNNI)."""
    return _SUPPORTED


def native_u8s8():
    """True when the chosen copy multiplies bytes natively (vpdpbusd): conv_q8 is then the
    faster integer convolution; elsewhere conv_q (int16 pairs, pmaddwd) is, and conv_q8 emulates."""
    return rn_isa >= 3


def get_isa():
    return rn_isa


def set_isa(int level):
    """Use the kernels compiled for `level` (clamped to what the CPU supports); returns it."""
    _set_level(max(0, min(level, _SUPPORTED)))
    return rn_isa


# ------------------------------------------------------------------------------------------
# Load-time packing (NumPy)
# ------------------------------------------------------------------------------------------

def panels(int channels):
    return (channels + RN_NR - 1) // RN_NR


def pad_channels(values, int channels, dtype):
    """A 1-D vector of `channels` values (or one value, broadcast), zero-padded to panels."""
    v = np.broadcast_to(np.asarray(values).reshape(-1), (channels,)).astype(dtype)
    out = np.zeros(panels(channels) * RN_NR, dtype)
    out[:channels] = v
    return out


def _shifted_range(w, int w_off):
    """(min, max) of w + w_off, without an array of the shifted weights."""
    return (int(w.min()) + w_off, int(w.max()) + w_off) if w.size else (0, 0)


def _pack_panels(w, int w_off, int group, dtype):
    """(Cout, K) weights -> dtype (panels, ceil(K/group), 16, group) of w + w_off, channels and
    the K tail zero-padded; one panel at a time, so the only temporary is one panel's weights
    (a model's largest layer, 1280 x 1001, would otherwise take ~10 MB of temporaries)."""
    cout, k = w.shape
    kg = (k + group - 1) // group
    packed = np.zeros((panels(cout), kg, RN_NR, group), dtype)
    for pan in range(panels(cout)):
        c0 = pan * RN_NR
        rows = w[c0:c0 + RN_NR]
        panel = np.zeros((rows.shape[0], kg * group), dtype)
        panel[:, :k] = np.add(rows, w_off, dtype=np.int16)  # fits dtype: checked by the caller
        packed[pan, :, :rows.shape[0], :] = panel.reshape(rows.shape[0], kg, group).transpose(1, 0, 2)
    return packed


def _byte_shift(w, int w_off):
    """beta with every w + w_off - beta in [-128, 127] (0 when w + w_off already is), or None
    when the shifted weights span more than 256 values."""
    lo, hi = _shifted_range(w, w_off)
    if hi - lo > 255:
        return None
    return 0 if lo >= -128 and hi <= 127 else lo + 128


def pack_q(w, int w_off):
    """(Cout, K) int8/uint8 weights -> (int8 (panels, ceil(K/2), 16, 2) of s = w + w_off - beta,
    beta) for conv_q: taps in pairs for pmaddwd (widened to int16 as loaded), channels and the
    odd tail zero-padded; beta 0 when every w + w_off fits int8 (per-channel int8 weights), else
    the shift that brings them into [-128, 127].  Bytes, not int16 pairs: half the memory, and
    half the bandwidth where the weights stream (FULLY_CONNECTED).  None when the shifted
    weights span more than 256 values (then the caller keeps the plain kernels)."""
    w = np.asarray(w)
    beta = _byte_shift(w, w_off)
    if beta is None:
        return None
    return _pack_panels(w, w_off - beta, 2, np.int8), beta


def pack_q8(w, int w_off):
    """(Cout, K) int8/uint8 weights -> (int8 (panels, ceil(K/4), 16, 4) of s = w + w_off - beta,
    beta, each channel's sum of s (int64)) for conv_q8: beta 0 when every w + w_off fits int8,
    else the shift that brings them into [-128, 127].  None when they span more than 256
    values (then conv_q takes the op)."""
    w = np.asarray(w)
    cout, k = w.shape
    beta = _byte_shift(w, w_off)
    if beta is None:
        return None
    sums = w.sum(axis=1, dtype=np.int64) + k * (w_off - beta)
    return _pack_panels(w, w_off - beta, 4, np.int8), beta, sums


def q8_alpha(int in_off, bint in_signed):
    """x + in_off = u + alpha with u the input as unsigned bytes (int8 x: x + 128)."""
    return in_off - 128 if in_signed else in_off


def q8_input_fits(int in_off, bint in_signed):
    """conv_q8 pads with the byte -alpha: it must be one (a zero point of the input's type)."""
    return 0 <= -q8_alpha(in_off, in_signed) <= 255


def fold_q8_bias(bias, s_sums, int k, int alpha, int beta):
    """conv_q8's bias: bias + alpha * sum(s) + K * alpha * beta per channel, wrapped to int32 as
    the reference's int32 sums (exact modulo 2**32), padded to panels."""
    cout = len(s_sums)
    b = np.zeros(cout, np.int64) if bias is None else np.asarray(bias).reshape(-1).astype(np.int64)
    total = b + alpha * np.asarray(s_sums, np.int64) + k * alpha * beta
    wrapped = ((total + 2**31) % 2**32 - 2**31).astype(np.int32)
    return pad_channels(wrapped, cout, np.int32)


def input_offset_fits(int in_off):
    """conv_q holds x + in_off in int16: true for every int8/uint8 x when this holds."""
    return -32768 + 128 <= in_off <= 32767 - 255


def pack_f(w):
    """(Cout, K) float32 weights -> float32 (panels, K, 16)."""
    w = np.asarray(w, np.float32)
    cout, k = w.shape
    full = np.zeros((panels(cout) * RN_NR, k), np.float32)
    full[:cout] = w
    return np.ascontiguousarray(full.reshape(-1, RN_NR, k).transpose(0, 2, 1))


def pack_depthwise_q(w, int w_off):
    """(1, KH, KW, C) int8/uint8 depthwise weights -> int16 (KH*KW, C padded) of w + w_off,
    or None when a shifted weight does not fit int16."""
    w = np.asarray(w)
    _, kh, kw, c = w.shape
    lo, hi = _shifted_range(w, w_off)
    if lo < -32768 or hi > 32767:
        return None
    out = np.zeros((kh * kw, panels(c) * RN_NR), np.int16)
    out[:, :c] = np.add(w.reshape(kh * kw, c), w_off, dtype=np.int16)
    return out


def pack_depthwise_f(w):
    w = np.asarray(w, np.float32)
    _, kh, kw, c = w.shape
    out = np.zeros((kh * kw, panels(c) * RN_NR), np.float32)
    out[:, :c] = w.reshape(kh * kw, c)
    return out


# ------------------------------------------------------------------------------------------
# Checks and the parameter block
# ------------------------------------------------------------------------------------------

cdef int _kind(cnp.ndarray a, str name) except -1:
    """0 uint8, 1 int8, 2 int32, 3 float32; the array must be C-contiguous."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name} must be C-contiguous")
    t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_UINT8:
        return 0
    if t == cnp.NPY_INT8:
        return 1
    if t == cnp.NPY_INT32:
        return 2
    if t == cnp.NPY_FLOAT32:
        return 3
    raise TypeError(f"{name} has unsupported dtype {a.dtype}")


cdef void* _vec(cnp.ndarray a, str name, int kind, Py_ssize_t length) except? NULL:
    if a is None:
        return NULL
    if _kind(a, name) != kind or a.ndim != 1 or a.shape[0] < length:
        raise ValueError(f"{name} must be a 1-D {'int32' if kind == 2 else 'float32'} "
                         f"vector of at least {length} values")
    return cnp.PyArray_DATA(a)


cdef int _geometry(rn_conv_t *p, cnp.ndarray x, cnp.ndarray out, geom, int threads) except -1:
    if x.ndim != 4 or out.ndim != 4:
        raise ValueError("input and output must be 4-D (NHWC)")
    kh, kw, sh, sw, dh, dw, pad_t, pad_l = geom
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pad_t, pad_l) < 0:
        raise ValueError(f"bad geometry {geom}")
    if out.shape[0] != x.shape[0]:
        raise ValueError("batch sizes differ")
    p.batches, p.in_h, p.in_w, p.in_c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    p.out_h, p.out_w, p.out_c = out.shape[1], out.shape[2], out.shape[3]
    p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.pad_t, p.pad_l = kh, kw, sh, sw, dh, dw, pad_t, pad_l
    p.pointwise = (kh == 1 and kw == 1 and sh == 1 and sw == 1 and pad_t == 0 and pad_l == 0
                   and p.in_h == p.out_h and p.in_w == p.out_w)
    p.threads = max(1, threads)
    p.wq = NULL
    p.wf = NULL
    p.w8 = NULL
    p.beta = 0
    p.pad_u8 = 0
    p.bias_q = NULL
    p.bias_f = NULL
    p.mult = NULL
    p.shift = NULL
    return 0


cdef int _requant(rn_conv_t *p, cnp.ndarray mult, cnp.ndarray shift, int zp, int qmin,
                  int qmax, int rounding, int out_kind, Py_ssize_t padded) except -1:
    p.mult = <const int32_t*>_vec(mult, "mult", 2, padded)
    p.shift = <const int32_t*>_vec(shift, "shift", 2, padded)
    if p.mult == NULL or p.shift == NULL:
        raise ValueError("mult and shift are required")
    # ROUNDING_FP32: mult holds each channel's float32 scale (its bits), shift is unused
    cdef int top = fp.RN_MAX_SHIFT if rounding == fp.RN_ROUNDING_FP32 else fp.checked_max_shift(rounding)
    cdef Py_ssize_t i
    p.left_shifts = p.min_multiplier = 0
    for i in range(shift.shape[0]):  # a C loop: NumPy's min / max cost microseconds a call
        if p.shift[i] < fp.RN_MIN_SHIFT or p.shift[i] > top:
            raise ValueError("shift out of range for this rounding form")
        p.left_shifts |= p.shift[i] > 0
        p.min_multiplier |= p.mult[i] == -2147483647 - 1
    lo, hi = (-128, 127) if out_kind == 1 else (0, 255)
    if not lo <= qmin <= qmax <= hi:
        raise ValueError(f"need {lo} <= qmin <= qmax <= {hi}")
    p.zp, p.qmin, p.qmax, p.rounding = zp, qmin, qmax, rounding
    p.out_signed = out_kind == 1
    return 0


# ------------------------------------------------------------------------------------------
# A convolution's call checked once
# ------------------------------------------------------------------------------------------

cdef enum:
    CALL_CONV_Q, CALL_CONV_Q8, CALL_CONV_F, CALL_DEPTHWISE_Q, CALL_DEPTHWISE_F


cdef class KernelCall:
    """One convolution's kernel call, its arguments checked once.  conv_q / conv_q8 / conv_f /
    depthwise_q / depthwise_f with prepared=True validate their arguments as for a run, on
    example x and out arrays of the op's shapes and dtypes (np.empty: nothing is written), and
    return this instead of running; run(x, out) then checks only that x and out have those
    shapes and dtypes and are C-contiguous, and calls the kernel (an op's per-invoke work)."""
    cdef rn_conv_t p
    cdef int which, raw, x_type, out_type
    cdef cnp.npy_intp x_shape[4]
    cdef cnp.npy_intp out_shape[4]
    cdef object keep  # the arrays p points into (weights, bias, requantization vectors)

    def run(self, cnp.ndarray x not None, cnp.ndarray out not None):
        """The kernel on x and out; True when a float output is NaN (see conv_f)."""
        cdef int i, nan_seen = 0
        if cnp.PyArray_NDIM(x) != 4 or cnp.PyArray_NDIM(out) != 4 or cnp.PyArray_TYPE(x) != self.x_type \
                or cnp.PyArray_TYPE(out) != self.out_type or not cnp.PyArray_IS_C_CONTIGUOUS(x) \
                or not cnp.PyArray_IS_C_CONTIGUOUS(out):
            raise ValueError("x and out must be C-contiguous 4-D arrays of the prepared dtypes")
        for i in range(4):
            if cnp.PyArray_DIMS(x)[i] != self.x_shape[i] or cnp.PyArray_DIMS(out)[i] != self.out_shape[i]:
                raise ValueError(f"x {(<object>x).shape} / out {(<object>out).shape}: not the prepared call's shapes")
        cdef const void* xp = cnp.PyArray_DATA(x)
        cdef void* outp = cnp.PyArray_DATA(out)
        with nogil:
            if self.which == CALL_CONV_Q:
                rn_conv_q(&self.p, xp, NULL if self.raw else outp, <int32_t*>outp if self.raw else NULL)
            elif self.which == CALL_CONV_Q8:
                rn_conv_q8(&self.p, xp, NULL if self.raw else outp, <int32_t*>outp if self.raw else NULL)
            elif self.which == CALL_CONV_F:
                nan_seen = rn_conv_f(&self.p, <const float*>xp, <float*>outp)
            elif self.which == CALL_DEPTHWISE_Q:
                rn_depthwise_q(&self.p, xp, outp)
            else:
                nan_seen = rn_depthwise_f(&self.p, <const float*>xp, <float*>outp)
        return nan_seen != 0


cdef KernelCall _prepared(rn_conv_t *p, int which, int raw, cnp.ndarray x, cnp.ndarray out, keep):
    cdef KernelCall call = KernelCall.__new__(KernelCall)
    cdef int i
    call.p = p[0]
    call.which, call.raw, call.keep = which, raw, keep
    call.x_type, call.out_type = cnp.PyArray_TYPE(x), cnp.PyArray_TYPE(out)
    for i in range(4):
        call.x_shape[i], call.out_shape[i] = cnp.PyArray_DIMS(x)[i], cnp.PyArray_DIMS(out)[i]
    return call


# ------------------------------------------------------------------------------------------
# Kernels
# ------------------------------------------------------------------------------------------

def conv_q(cnp.ndarray x not None, cnp.ndarray wpack not None, cnp.ndarray bias, cnp.ndarray mult,
           cnp.ndarray shift, geom, int in_off, int beta, int zp, int qmin, int qmax, int rounding,
           cnp.ndarray out not None, int threads=1, bint prepared=False):
    """Quantized convolution; `out` int8/uint8 (requantized) or int32 (raw accumulators).
    prepared: return the checked call (KernelCall) instead of running.

    x (N, H, W, Cin) int8/uint8 (x + in_off must fit int16: input_offset_fits); wpack and beta
    from pack_q of the (Cout, KH*KW*Cin) filter; bias, mult, shift int32 padded to panels (bias
    may be None); geom (kh, kw, sh, sw, dh, dw, pad_top, pad_left).
    """
    cdef rn_conv_t p
    xk, ok = _kind(x, "x"), _kind(out, "out")
    if xk > 1:
        raise TypeError("x must be int8 or uint8")
    _geometry(&p, x, out, geom, threads)
    cdef Py_ssize_t K = p.kh * p.kw * p.in_c, npan = panels(p.out_c)
    cdef Py_ssize_t kp = (K + 1) // 2
    if wpack.dtype != np.int8 or wpack.ndim != 4 or wpack.shape[0] != npan or \
            wpack.shape[1] != kp or wpack.shape[2] != RN_NR or wpack.shape[3] != 2 or \
            not cnp.PyArray_IS_C_CONTIGUOUS(wpack):
        raise ValueError(f"wpack must be int8 ({npan}, {kp}, {RN_NR}, 2)")
    if not input_offset_fits(in_off):
        raise ValueError(f"in_off {in_off} does not keep x + in_off within int16")
    p.w8 = <const int8_t*>cnp.PyArray_DATA(wpack)
    p.beta = beta
    p.bias_q = <const int32_t*>_vec(bias, "bias", 2, npan * RN_NR)
    p.in_signed = xk == 1
    p.in_off = in_off
    cdef void* outp = cnp.PyArray_DATA(out)
    cdef const void* xp = cnp.PyArray_DATA(x)
    if ok > 2:
        raise TypeError("out must be int8, uint8 or int32")
    if ok != 2:
        _requant(&p, mult, shift, zp, qmin, qmax, rounding, ok, npan * RN_NR)
    if prepared:
        return _prepared(&p, CALL_CONV_Q, ok == 2, x, out, (wpack, bias, mult, shift))
    with nogil:
        if ok == 2:
            rn_conv_q(&p, xp, NULL, <int32_t*>outp)
        else:
            rn_conv_q(&p, xp, outp, NULL)


def conv_q8(cnp.ndarray x not None, cnp.ndarray wpack not None, cnp.ndarray bias not None,
            cnp.ndarray mult, cnp.ndarray shift, geom, int in_off, int beta, int zp, int qmin,
            int qmax, int rounding, cnp.ndarray out not None, int threads=1, bint prepared=False):
    """Quantized convolution on unsigned x signed bytes; as conv_q, with wpack and beta from
    pack_q8 and bias from fold_q8_bias (required: it carries the offsets' terms)."""
    cdef rn_conv_t p
    xk, ok = _kind(x, "x"), _kind(out, "out")
    if xk > 1:
        raise TypeError("x must be int8 or uint8")
    _geometry(&p, x, out, geom, threads)
    cdef Py_ssize_t K = p.kh * p.kw * p.in_c, npan = panels(p.out_c)
    cdef Py_ssize_t k4 = (K + 3) // 4
    if wpack.dtype != np.int8 or wpack.ndim != 4 or wpack.shape[0] != npan or \
            wpack.shape[1] != k4 or wpack.shape[2] != RN_NR or wpack.shape[3] != 4 or \
            not cnp.PyArray_IS_C_CONTIGUOUS(wpack):
        raise ValueError(f"wpack must be int8 ({npan}, {k4}, {RN_NR}, 4)")
    if not q8_input_fits(in_off, xk == 1):
        raise ValueError(f"in_off {in_off}: the padding byte -alpha is not in [0, 255]")
    p.w8 = <const int8_t*>cnp.PyArray_DATA(wpack)
    p.bias_q = <const int32_t*>_vec(bias, "bias", 2, npan * RN_NR)
    p.in_signed = xk == 1
    p.in_off = in_off
    p.beta = beta
    p.pad_u8 = -q8_alpha(in_off, xk == 1)
    cdef void* outp = cnp.PyArray_DATA(out)
    cdef const void* xp = cnp.PyArray_DATA(x)
    if ok > 2:
        raise TypeError("out must be int8, uint8 or int32")
    if ok != 2:
        _requant(&p, mult, shift, zp, qmin, qmax, rounding, ok, npan * RN_NR)
    if prepared:
        return _prepared(&p, CALL_CONV_Q8, ok == 2, x, out, (wpack, bias, mult, shift))
    with nogil:
        if ok == 2:
            rn_conv_q8(&p, xp, NULL, <int32_t*>outp)
        else:
            rn_conv_q8(&p, xp, outp, NULL)


def conv_f(cnp.ndarray x not None, cnp.ndarray wpack not None, cnp.ndarray bias, geom,
           float act_min, float act_max, cnp.ndarray out not None, int threads=1, bint prepared=False):
    """float32 convolution (reference order per output); wpack from pack_f.

    Returns True when an output is NaN (padded taps are 0.0f products here, so an inf or NaN
    weight makes one where the reference skips the tap): which NaN a sum keeps is not fixed here
    (the caller recomputes such an op with the plain kernel, which keeps the reference's)."""
    cdef rn_conv_t p
    if _kind(x, "x") != 3 or _kind(out, "out") != 3 or _kind(wpack, "wpack") != 3:
        raise TypeError("x, wpack and out must be float32")
    _geometry(&p, x, out, geom, threads)
    cdef Py_ssize_t K = p.kh * p.kw * p.in_c, npan = panels(p.out_c)
    if wpack.ndim != 3 or wpack.shape[0] != npan or wpack.shape[1] != K or wpack.shape[2] != RN_NR:
        raise ValueError(f"wpack must be float32 ({npan}, {K}, {RN_NR})")
    p.wf = <const float*>cnp.PyArray_DATA(wpack)
    p.bias_f = <const float*>_vec(bias, "bias", 3, npan * RN_NR)
    p.act_min, p.act_max = act_min, act_max
    if prepared:
        return _prepared(&p, CALL_CONV_F, 0, x, out, (wpack, bias))
    cdef const float* xp = <const float*>cnp.PyArray_DATA(x)
    cdef float* outp = <float*>cnp.PyArray_DATA(out)
    cdef int nan_seen
    with nogil:
        nan_seen = rn_conv_f(&p, xp, outp)
    return nan_seen != 0


cdef int _depthwise_common(rn_conv_t *p, cnp.ndarray x, cnp.ndarray wpack, cnp.ndarray out,
                           geom, int threads, int wkind) except -1:
    _geometry(p, x, out, geom, threads)
    if p.in_c != p.out_c:
        raise ValueError("depthwise kernels here need depth multiplier 1")
    if wpack.dtype != (np.int16 if wkind == 2 else np.float32):
        raise TypeError("bad wpack dtype")
    if wpack.ndim != 2 or wpack.shape[0] != p.kh * p.kw or wpack.shape[1] != panels(p.out_c) * RN_NR \
            or not cnp.PyArray_IS_C_CONTIGUOUS(wpack):
        raise ValueError(f"wpack must be ({p.kh * p.kw}, {panels(p.out_c) * RN_NR})")
    return 0


def depthwise_q(cnp.ndarray x not None, cnp.ndarray wpack not None, cnp.ndarray bias,
                cnp.ndarray mult, cnp.ndarray shift, geom, int in_off, int zp, int qmin,
                int qmax, int rounding, cnp.ndarray out not None, int threads=1, bint prepared=False):
    """Quantized depthwise conv (multiplier 1), requantization fused; wpack from
    pack_depthwise_q.  prepared: return the checked call (KernelCall)."""
    cdef rn_conv_t p
    xk, ok = _kind(x, "x"), _kind(out, "out")
    if xk > 1 or ok != xk:
        raise TypeError("x and out must both be int8 or both uint8")
    _depthwise_common(&p, x, wpack, out, geom, threads, 2)
    if wpack.dtype != np.int16:
        raise TypeError("wpack must be int16")
    cdef Py_ssize_t padded = panels(p.out_c) * RN_NR
    p.wq = <const int16_t*>cnp.PyArray_DATA(wpack)
    p.bias_q = <const int32_t*>_vec(bias, "bias", 2, padded)
    p.in_signed = xk == 1
    p.in_off = in_off
    _requant(&p, mult, shift, zp, qmin, qmax, rounding, ok, padded)
    if prepared:
        return _prepared(&p, CALL_DEPTHWISE_Q, 0, x, out, (wpack, bias, mult, shift))
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* outp = cnp.PyArray_DATA(out)
    with nogil:
        rn_depthwise_q(&p, xp, outp)


def depthwise_f(cnp.ndarray x not None, cnp.ndarray wpack not None, cnp.ndarray bias, geom,
                float act_min, float act_max, cnp.ndarray out not None, int threads=1, bint prepared=False):
    """float32 depthwise conv (multiplier 1), reference order; wpack from pack_depthwise_f.
    Returns True when an output is NaN (as conv_f)."""
    cdef rn_conv_t p
    if _kind(x, "x") != 3 or _kind(out, "out") != 3 or _kind(wpack, "wpack") != 3:
        raise TypeError("x, wpack and out must be float32")
    _depthwise_common(&p, x, wpack, out, geom, threads, 3)
    p.wf = <const float*>cnp.PyArray_DATA(wpack)
    p.bias_f = <const float*>_vec(bias, "bias", 3, panels(p.out_c) * RN_NR)
    p.act_min, p.act_max = act_min, act_max
    if prepared:
        return _prepared(&p, CALL_DEPTHWISE_F, 0, x, out, (wpack, bias))
    cdef const float* xp = <const float*>cnp.PyArray_DATA(x)
    cdef float* outp = <float*>cnp.PyArray_DATA(out)
    cdef int nan_seen
    with nogil:
        nan_seen = rn_depthwise_f(&p, xp, outp)
    return nan_seen != 0


def elementwise_q(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None,
                  bint is_mul, int zp1, int zp2, int zpo, m1_e1, m2_e2, mo_eo, int lo, int hi,
                  int rounding, int threads=1, float scale=0.0):
    """Quantized ADD (is_mul False) or MUL of a (n values) and b (period values, repeated),
    as refnet/ops/elementwise.py; out like a.  (m, e) pairs: multiplier and shift.
    rounding: a fixed-point form; ADD_INPUT_SHIFT_FLOOR_8 (ADD); ADD_XNNPACK (ADD: m1_e1 =
    (a's multiplier, shift), m2_e2 = (b's multiplier, shift), mo_eo unused); ROUNDING_FP32 (MUL:
    the float32 scale, mo_eo unused).  The zero points must lie in the type's range."""
    cdef rn_elementwise_t e
    ak, bk, ok = _kind(a, "a"), _kind(b, "b"), _kind(out, "out")
    if ak > 1 or bk != ak or ok != ak:
        raise TypeError("a, b and out must all be int8 or all uint8")
    n, period = a.size, b.size
    if out.size != n or period == 0 or n % period:
        raise ValueError("b's size must divide a's, and out must be a's size")
    if n >= 2**31:
        raise ValueError("more than 2**31 - 1 elements")
    lo_t, hi_t = (-128, 127) if ak == 1 else (0, 255)
    if not all(lo_t <= z <= hi_t for z in (zp1, zp2, zpo)):
        raise ValueError("zero points outside the type's range")
    floor8 = rounding == fp.RN_ADD_INPUT_SHIFT_FLOOR_8
    xnn_add = rounding == fp.RN_ADD_XNNPACK
    fp32_mul = rounding == fp.RN_ROUNDING_FP32
    if floor8 and (is_mul or period != n or m1_e1[1] > 0 or m2_e2[1] > 0):
        raise ValueError("ADD_INPUT_SHIFT_FLOOR_8 is a same-shape ADD with input shifts <= 0")
    if xnn_add:
        if is_mul or m1_e1[1] != m2_e2[1] or not 12 <= m1_e1[1] <= 30 or \
                max(abs(m1_e1[0]), abs(m2_e2[0])) > 2**21:
            raise ValueError("ADD_XNNPACK: one shift in [12, 30], multipliers within 2**21")
        mo_eo = (0, 0)
    elif fp32_mul:
        if not is_mul:
            raise ValueError("ROUNDING_FP32 is a MUL form here")
        mo_eo = (0, 0)
    else:
        top = fp.RN_MAX_SHIFT if floor8 else fp.checked_max_shift(rounding)
        for _, s in ((m1_e1, m2_e2, mo_eo) if not is_mul else (mo_eo,)):
            if not fp.RN_MIN_SHIFT <= s <= top:
                raise ValueError("shift out of range for this rounding form")
    e.n, e.period, e.is_signed, e.is_mul = n, period, ak == 1, is_mul
    e.zp1, e.zp2, e.zpo = zp1, zp2, zpo
    e.m1, e.e1 = m1_e1
    e.m2, e.e2 = m2_e2
    e.mo, e.eo = mo_eo
    e.lo, e.hi = max(lo, lo_t), min(hi, hi_t)
    e.rounding = rounding
    e.scale = scale
    e.threads = max(1, threads)
    if e.lo > e.hi:
        raise ValueError("empty clamp range")
    cdef const void* ap = cnp.PyArray_DATA(a)
    cdef const void* bp = cnp.PyArray_DATA(b)
    cdef void* outp = cnp.PyArray_DATA(out)
    with nogil:
        rn_elementwise_q(&e, ap, bp, outp)


def multiply_by_quantized_multiplier(x, multiplier, shift, int form):
    """The C vector MultiplyByQuantizedMultiplier (fast_body.h's mbqm, the chosen ISA copy)
    elementwise over three int32 arrays of one length; for the tests."""
    cdef cnp.ndarray xs = np.ascontiguousarray(x, np.int32).reshape(-1)
    cdef cnp.ndarray ms = np.ascontiguousarray(multiplier, np.int32).reshape(-1)
    cdef cnp.ndarray ss = np.ascontiguousarray(shift, np.int32).reshape(-1)
    if not xs.size == ms.size == ss.size:
        raise ValueError("x, multiplier and shift must have one length")
    top = fp.checked_max_shift(form)
    if ss.size and (ss.min() < fp.RN_MIN_SHIFT or ss.max() > top):
        raise ValueError(f"shift out of [{fp.RN_MIN_SHIFT}, {top}] for form {form}")
    cdef cnp.ndarray out = np.empty(xs.size, np.int32)
    cdef long n = xs.size
    cdef const int32_t *xp = <const int32_t*>cnp.PyArray_DATA(xs)
    cdef const int32_t *mp = <const int32_t*>cnp.PyArray_DATA(ms)
    cdef const int32_t *sp = <const int32_t*>cnp.PyArray_DATA(ss)
    cdef int32_t *op = <int32_t*>cnp.PyArray_DATA(out)
    with nogil:
        rn_mbqm_array(xp, mp, sp, op, n, form)
    return out


# ------------------------------------------------------------------------------------------
# The rest of the graph: QUANTIZE, row sums (MEAN, global average pool), byte tables
# ------------------------------------------------------------------------------------------

def quantize_f(cnp.ndarray x not None, cnp.ndarray out not None, int form, float scale, float inv,
               int zp, bint reciprocal=False, bint saturating=False, int threads=1):
    """Per-tensor QUANTIZE float32 -> int8/uint8 (out), as refnet/ops/quantize.py: form
    ROUNDING_DOUBLE (roundf(x / scale), or x * inv with reciprocal; the conversion of NaN and
    out-of-range values INT32_MIN, or saturating; + zp wrapping) or QUANTIZE_RECIPROCAL_RNE
    (rint(x * inv); NaN -> the type's minimum, its maximum when zp < 0); then clamped to the type.  inv is the caller's
    float32(1 / scale)."""
    cdef rn_quantize_t q
    if _kind(x, "x") != 3:
        raise TypeError("x must be float32")
    ok = _kind(out, "out")
    if ok > 1:
        raise TypeError("out must be int8 or uint8")
    if out.size != x.size:
        raise ValueError("out must have x's size")
    if form not in (fp.RN_ROUNDING_DOUBLE, fp.RN_QUANTIZE_RECIPROCAL_RNE):
        raise ValueError(f"form {form} is not a QUANTIZE form of this kernel")
    q.lo, q.hi = (-128, 127) if ok == 1 else (0, 255)
    if not -65536 + 255 <= zp <= 65536 - 255:
        raise ValueError("zero point out of range")
    q.n, q.is_signed, q.form, q.reciprocal, q.saturating = x.size, ok == 1, form, reciprocal, saturating
    q.scale, q.inv, q.zp = scale, inv, zp
    q.threads = threads
    cdef const float* xp = <const float*>cnp.PyArray_DATA(x)
    cdef void* outp = cnp.PyArray_DATA(out)
    with nogil:
        rn_quantize_f(&q, xp, outp)


def sum_rows8(cnp.ndarray x not None, long outer, long rows, long inner, cnp.ndarray out not None):
    """out[o, c] = sum_p x[o, p, c] for x an (outer, rows, inner) int8/uint8 array (raw values),
    out int32 (outer, inner).  Exact: rows * 255 must stay below 2**31."""
    k = _kind(x, "x")
    if k > 1:
        raise TypeError("x must be int8 or uint8")
    if _kind(out, "out") != 2:
        raise TypeError("out must be int32")
    if outer < 0 or rows < 0 or inner < 0 or x.size != outer * rows * inner or out.size != outer * inner:
        raise ValueError("x must hold outer * rows * inner values and out outer * inner")
    if rows >= 2**31 // 255:
        raise ValueError("too many rows for an exact int32 sum")
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef int32_t* outp = <int32_t*>cnp.PyArray_DATA(out)
    cdef int is_signed = k == 1
    with nogil:
        rn_sum_rows8(xp, is_signed, outer, rows, inner, outp)


def lut8(cnp.ndarray table not None, cnp.ndarray x not None, cnp.ndarray out not None, int threads=1):
    """out[i] = table[x[i] read as uint8]: table 256 bytes (int8 or uint8), x and out 8-bit arrays
    of one size (any of int8 / uint8)."""
    if _kind(table, "table") > 1 or table.size != 256:
        raise ValueError("table must be 256 int8 / uint8 values")
    if _kind(x, "x") > 1 or _kind(out, "out") > 1:
        raise TypeError("x and out must be int8 or uint8")
    if out.size != x.size:
        raise ValueError("out must have x's size")
    cdef const uint8_t* tp = <const uint8_t*>cnp.PyArray_DATA(table)
    cdef const uint8_t* xp = <const uint8_t*>cnp.PyArray_DATA(x)
    cdef uint8_t* outp = <uint8_t*>cnp.PyArray_DATA(out)
    cdef long n = x.size
    with nogil:
        rn_lut8(tp, xp, outp, n, threads)


def lut16(cnp.ndarray table not None, cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None,
          int threads=1):
    """out[i] = table[256 * a[i] + b[i % b.size]], a and b read as uint8: table 65536 bytes (int8 or
    uint8; row a, column b), a and out 8-bit arrays of one size, b's size dividing a's."""
    if _kind(table, "table") > 1 or table.size != 65536:
        raise ValueError("table must be 65536 int8 / uint8 values")
    if _kind(a, "a") > 1 or _kind(b, "b") > 1 or _kind(out, "out") > 1:
        raise TypeError("a, b and out must be int8 or uint8")
    if out.size != a.size or b.size == 0 or a.size % b.size:
        raise ValueError("out must have a's size, and b's size must divide it")
    cdef const uint8_t* tp = <const uint8_t*>cnp.PyArray_DATA(table)
    cdef const uint8_t* ap = <const uint8_t*>cnp.PyArray_DATA(a)
    cdef const uint8_t* bp = <const uint8_t*>cnp.PyArray_DATA(b)
    cdef uint8_t* outp = <uint8_t*>cnp.PyArray_DATA(out)
    cdef long n = a.size, period = b.size
    with nogil:
        rn_lut16(tp, ap, bp, outp, n, period, threads)


def binary_f(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None, bint is_mul,
             float lo, float hi, long nan_run=0, long second_limit=0, int threads=1):
    """Float32 ADD / MUL, fused clamp: out = clamp(a op b) with x86's NaN rule spelt out (a NaN
    operand's NaN, quieted; a's when both are, except b's at the flat positions i with
    i % nan_run < second_limit: a profile's NaN blocks).  One of a, b has out's size, the other a
    size dividing it (repeated along the flat array: broadcast over leading dimensions)."""
    if _kind(a, "a") != 3 or _kind(b, "b") != 3 or _kind(out, "out") != 3:
        raise TypeError("a, b and out must be float32")
    cdef long n = out.size
    cdef int b_repeats = a.size == n
    cdef long period = b.size if b_repeats else a.size
    if (b.size if b_repeats else a.size) == 0 or (a.size != n and b.size != n) or n % period:
        raise ValueError("one operand must have out's size and the other a size dividing it")
    if second_limit > 0 and nan_run <= 0:
        raise ValueError("a positive second_limit needs a positive nan_run")
    cdef const float* ap = <const float*>cnp.PyArray_DATA(a)
    cdef const float* bp = <const float*>cnp.PyArray_DATA(b)
    cdef float* outp = <float*>cnp.PyArray_DATA(out)
    with nogil:
        rn_binary_f(ap, bp, outp, n, period, b_repeats, is_mul, lo, hi, nan_run, second_limit, threads)


def hard_swish_f(cnp.ndarray x not None, cnp.ndarray out not None, bint reciprocal=False, int threads=1):
    """Float32 HARD_SWISH as hard_swish.pyx's hard_swish_float, vectorised."""
    if _kind(x, "x") != 3 or _kind(out, "out") != 3:
        raise TypeError("x and out must be float32")
    if out.size != x.size:
        raise ValueError("out must have x's size")
    cdef const float* xp = <const float*>cnp.PyArray_DATA(x)
    cdef float* outp = <float*>cnp.PyArray_DATA(out)
    cdef long n = x.size
    with nogil:
        rn_hard_swish_f(xp, outp, n, reciprocal, threads)


def sum_rows_f(cnp.ndarray x not None, long outer, long rows, long inner, cnp.ndarray out not None):
    """out[o, c] = sum_p x[o, p, c] in order p = 0, 1, ... from +0.0 (float32 adds, the running sum
    the first operand), x an (outer, rows, inner) float32 array, out float32 (outer, inner)."""
    if _kind(x, "x") != 3 or _kind(out, "out") != 3:
        raise TypeError("x and out must be float32")
    if outer < 0 or rows < 0 or inner < 0 or x.size != outer * rows * inner or out.size != outer * inner:
        raise ValueError("x must hold outer * rows * inner values and out outer * inner")
    cdef const float* xp = <const float*>cnp.PyArray_DATA(x)
    cdef float* outp = <float*>cnp.PyArray_DATA(out)
    with nogil:
        rn_sum_rows_f(xp, outer, rows, inner, outp)
