"""Hybrid ("dynamic range") CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: float32 input,
int8 weights, float32 output, as LiteRT 2.3.0's BUILTIN_REF kernels compute them in the x86-64
wheel.

The wheel is built with SSE4.1/SSSE3, so the `tensor_utils` helpers the hybrid kernels call are
not the portable C++ ones: input quantization and the zero test are LiteRT's NEON code run
through the NEON_2_SSE translation header, and the int8 matrix-times-vector product is the SSSE3
one. Their observable differences from the portable code are reproduced below:

* Rounding while quantizing an input row of n values: the first n & ~7 values are rounded as
  trunc(m + (m < 0 ? -0.5f : 0.5f)) with the addition in float32 (so 0.49999997 becomes 1),
  the last n % 8 values with std::round (ties away from zero). Float-to-int conversion works
  like cvttps2dq: NaN and out-of-range values give INT32_MIN, except that the vector part turns
  a positive overflow into INT32_MAX. In the asymmetric quantizer the zero point is added to
  the vector part in int32 (wrapping), while its postamble adds it in float32 and clamps in
  float32 before converting (the compiler's doing), so a NaN there becomes 0, not -128.
* Minimum and maximum: the symmetric quantizer uses libstdc++'s std::minmax_element (pairwise;
  NaN never compares, so which values it returns depends on where NaNs sit); the asymmetric one
  a four-lane minps/maxps fold over the first n & ~3 values, folded lanes (0, 2), (1, 3), then
  the halves, capped at 0, then merged with std::minmax_element over the rest. NaN can hide
  values there but never comes out, since every merge is (x < cur) ? x : cur.
* The zero test of FULLY_CONNECTED: "not |v| > 0" over the first n & ~3 values (so NaN counts
  as zero there), "v == 0" over the rest.
* The SSSE3 int8 dot product (pmaddubsw on |x| and sign(x)*w) computes x * -128 wrongly for
  x < 0: -128 negated stays -128, so the product is 128*x instead of -128*x. This only affects
  columns k < K & ~15 (16-byte blocks); the rest uses exact widening. Per such pair the sum is
  off by 256 * x.
* The SSE row sums of the weights accumulate the 16-byte blocks (and one 8-byte block) in eight
  int16 lanes that wrap around, before the lanes and the remaining columns are added in int32.

Arithmetic per op, in order (f32 = float32, f64 = double, all roundings to nearest even unless
said otherwise):

Asymmetric input quantization of one batch row v (NeonAsymmetricQuantizeFloats):
  rmin = min(0, min v), rmax = max(0, max v) (f32, as above). If rmin == rmax: all q = 0,
  scale 1, zero point 0. Else s = f64(rmax - rmin) / 255 (the subtraction in f32, unlike the
  portable code's f64), and in f64 with rmin, rmax widened: zp_min = -128 - rmin / s,
  zp_max = 127 - rmax / s; pick zp_min if 128 + |rmin / s| < 127 + |rmax / s| else zp_max;
  zero point = -128 if <= -128, 127 if >= 127, else round-half-away (NaN, from an infinite
  input, gives 0: the low byte of INT32_MIN). Scale = f32(s);
  inv = f32(1.0 / f64(scale)); q = clamp(round(v * inv) + zero point, -128, 127) with the
  rounding above and v * inv in f32.
Symmetric input quantization (NeonSymmetricQuantizeFloats):
  range = max(|min v|, |max v|) (f32). If 0: all q = 0, scale 1. Else scale = range / 127.0f,
  inv = 127.0f / range, q = clamp(round(v * inv), -127, 127).

CONV_2D, per-channel (filter scales not all equal, or a grouped convolution): asymmetric
  quantization per batch; acc = sum over in-image taps of w * (q - zp[b]) (int32, reference
  order is irrelevant for integers); out = ((f32(acc) * scale[c]) * sf[b]) + bias[c], clamped
  to the activation range (NONE clamps to +-FLT_MAX).
CONV_2D, per-tensor (one scale, or all scales equal): symmetric quantization per batch, then
  sf[b] *= filter scale (f32); im2col with zero padding, then the matrix-times-vector product
  (a GEMM when Cout % 4 == 0, exact; else the SSSE3 loop, with the -128 defect above);
  out = 0.0f + f32(acc) * sf[b]; then out = clamp(out + bias[c]) (LiteRT's Prepare rejects a
  CONV_2D without a bias, so there always is one).
DEPTHWISE_CONV_2D (always per-channel): asymmetric quantization per batch; acc as for the
  per-channel convolution over one input channel; out = f32(acc) * (scale[c] * sf[b]) (the
  scales multiplied first, unlike CONV_2D), + bias[c], clamped.
FULLY_CONNECTED: out = bias (or 0). If the whole input is zero (the NEON zero test above), only
  the activation is applied. Else each batch row is quantized, asymmetrically if
  asymmetric_quantize_inputs else symmetrically (zero point 0); per-tensor weights fold their
  scale into sf[b] (f32 product); dot = sum q * w (SSSE3, with the -128 defect);
  sum = dot - zp[b] * rowsum[r] (int32, SSE row sums); row_scale = scale[r] * sf[b] per
  channel, else sf[b]; out += f32(sum) * row_scale; then the activation as
  ApplyActivationToVector does it: NONE nothing (no FLT_MAX clamp), RELU max(0, v) with
  NaN -> 0, RELU_N1_TO_1 max(-1, min(v, 1)) with NaN -> -1, RELU6 max(0, min(v, 6)) with
  NaN -> 0.

Infinite and NaN inputs follow from the above and are compared with LiteRT in the tests.
Not modelled (rejected at prepare): uint8/int4 weights, a depthwise depth_multiplier option
that differs from the shapes (LiteRT's hybrid kernel follows the option), per-tensor scales on
grouped convolutions (LiteRT reads past the scale array), a CONV_2D without a bias, and the
TANH/SIGN_BIT/SIGMOID activations LiteRT allows on hybrid FULLY_CONNECTED.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _kernels_conv, _kernels_depthwise, _kernels_pointwise
from . import OpContext, round_half_away

F32 = np.float32
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
HYBRID_ACTIVATIONS_FC = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")


@dataclass
class HybridPlan:
    kind: str  # "conv_per_channel", "conv_per_tensor", "depthwise", "fully_connected"
    scales: np.ndarray  # float32 per channel (per-channel paths) or length 1
    per_channel: bool
    has_bias: bool
    activation: str = "NONE"
    asymmetric: bool = True  # input quantization (conv per-tensor: symmetric)


# --- input quantization ----------------------------------------------------------------------


def _cvtt(x: np.ndarray, saturate_positive: bool) -> np.ndarray:
    """float32 -> int64 holding an int32 as cvttps2dq/cvttss2si give it (truncation; NaN and
    out of range -> INT32_MIN; the NEON_2_SSE vcvtq_s32_f32 maps a positive overflow to MAX)."""
    with np.errstate(invalid="ignore"):
        out = np.trunc(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.float64)
        bad = ~((x >= -2.0**31) & (x < 2.0**31))
        out = np.where(bad, float(INT32_MIN), out)
        if saturate_positive:
            out = np.where(x >= 2.0**31, float(INT32_MAX), out)
    return out.astype(np.int64)


def _round_row(m: np.ndarray, offset: int | None = None) -> np.ndarray:
    """Round the float32 products of one quantized row as the NEON_2_SSE code does.

    Symmetric (offset None): the postamble converts with cvttss2si and clamps as integers.
    Asymmetric: the zero point is added in int32 (wrapping) after the vector conversion, and
    in float32 before the postamble's, where the compiler clamps to [-128, 127] in float32 and
    stores the low byte of the conversion (a NaN comes out as 0)."""
    n = m.shape[-1]
    vec = n & ~7
    out = np.empty(m.shape, np.int64)
    head = m[..., :vec]
    with np.errstate(invalid="ignore", over="ignore"):
        half = np.where(head < 0, F32(-0.5), F32(0.5)).astype(F32)
        out[..., :vec] = _wrap32(_cvtt((head + half).astype(F32), saturate_positive=True)
                                 + (offset or 0))
        tail = m[..., vec:]
        whole = np.trunc(tail)
        rounded = (whole + np.where(np.abs(tail - whole) >= 0.5, np.sign(tail), 0)).astype(F32)
        if offset is None:
            out[..., vec:] = _cvtt(rounded, saturate_positive=False)
        else:
            t = (F32(offset) + rounded).astype(F32)
            t = np.where(np.isnan(t), F32(0), np.clip(t, F32(-128), F32(127)))
            out[..., vec:] = t.astype(np.int64)
    return out


def _round_half_away_scalar(z: float) -> int:
    if math.isnan(z):  # static_cast<int8>(round(NaN)): cvttsd2si gives INT32_MIN, low byte 0
        return 0
    return int(round_half_away(z))


def _lt(a, b) -> bool:
    return bool(a < b)  # False whenever a NaN is involved, like C++ operator<


def minmax_element(v: np.ndarray) -> tuple[np.float32, np.float32]:
    """libstdc++'s std::minmax_element (pairs, first minimum, last maximum) by value; with
    NaNs present its comparisons decide what it returns, so it is followed step by step."""
    if v.size == 0:
        raise ValueError("empty range")
    if not np.isnan(v).any():
        return v.min(), v.max()
    vals = v.tolist()
    n = len(vals)
    if n == 1:
        return v[0], v[0]
    if _lt(vals[1], vals[0]):
        lo, hi = vals[1], vals[0]
    else:
        lo, hi = vals[0], vals[1]
    i = 2
    while i < n:
        if i + 1 == n:
            if _lt(vals[i], lo):
                lo = vals[i]
            elif not _lt(vals[i], hi):
                hi = vals[i]
            break
        a, b = vals[i], vals[i + 1]
        if _lt(b, a):
            if _lt(b, lo):
                lo = b
            if not _lt(a, hi):
                hi = a
        else:
            if _lt(a, lo):
                lo = a
            if not _lt(b, hi):
                hi = b
        i += 2
    return F32(lo), F32(hi)


def neon_min_max(v: np.ndarray) -> tuple[np.float32, np.float32]:
    """NeonMinMax as compiled for x86: four-lane running min/max over the first n & ~3 values
    (minps/maxps: (cur < x) ? cur : x), lanes folded (0, 2), (1, 3), then the two halves; the
    result is capped at 0 and merged with std::minmax_element over the rest. NaNs can only hide
    values, never come out."""
    zero = F32(0.0)
    n4 = v.size & ~3
    rmin = rmax = zero
    if n4:
        lanes = v[:n4].reshape(-1, 4)
        if np.isnan(lanes).any():
            mn = lanes[0].copy()
            mx = lanes[0].copy()
            for row in lanes[1:]:
                mn = np.where(mn < row, mn, row)
                mx = np.where(mx > row, mx, row)
        else:
            mn, mx = lanes.min(axis=0), lanes.max(axis=0)
        min02 = mn[0] if _lt(mn[0], mn[2]) else mn[2]
        min13 = mn[1] if _lt(mn[1], mn[3]) else mn[3]
        max02 = mx[0] if _lt(mx[2], mx[0]) else mx[2]
        max13 = mx[1] if _lt(mx[3], mx[1]) else mx[3]
        lmin = min13 if _lt(min13, min02) else min02
        lmax = max13 if _lt(max02, max13) else max02
        rmin = lmin if _lt(lmin, zero) else zero
        rmax = lmax if _lt(zero, lmax) else zero
    if n4 < v.size:
        tmin, tmax = minmax_element(v[n4:])
        rmin = tmin if _lt(tmin, rmin) else rmin
        rmax = tmax if _lt(rmax, tmax) else rmax
    return F32(rmin), F32(rmax)


def asymmetric_quantize(v: np.ndarray) -> tuple[np.ndarray, np.float32, int]:
    """One batch row -> (int8 values, float32 scaling factor, int32 zero point)."""
    v = np.asarray(v, F32).reshape(-1)
    if v.size == 0:
        return np.zeros(0, np.int8), F32(1.0), 0
    fmin, fmax = neon_min_max(v)
    rmin, rmax = float(fmin), float(fmax)
    if rmin == rmax:
        return np.zeros(v.shape, np.int8), F32(1.0), 0
    with np.errstate(over="ignore"):
        span = float(F32(fmax - fmin))  # a float32 subtraction (NEON rmin/rmax are floats)
    s = span / (127.0 - -128.0)
    with np.errstate(invalid="ignore"):
        r_min, r_max = np.float64(rmin) / s, np.float64(rmax) / s  # NaN when s is infinite
    zp_from_min = -128.0 - r_min
    zp_from_max = 127.0 - r_max
    err_min = abs(-128.0) + abs(r_min)
    err_max = abs(127.0) + abs(r_max)
    zpd = float(zp_from_min if err_min < err_max else zp_from_max)
    if zpd <= -128.0:
        zp = -128
    elif zpd >= 127.0:
        zp = 127
    else:
        zp = _round_half_away_scalar(zpd)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scale = F32(s)
        inv = F32(1.0 / float(scale)) if scale != 0 else F32(0.0)
        q = _round_row((v * inv).astype(F32), zp)
    return np.clip(q, -128, 127).astype(np.int8), scale, zp


def symmetric_quantize(v: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """One batch row -> (int8 values in [-127, 127], float32 scaling factor)."""
    v = np.asarray(v, F32).reshape(-1)
    if v.size == 0:
        return np.zeros(0, np.int8), F32(1.0)
    lo, hi = minmax_element(v)
    a, b = np.abs(lo), np.abs(hi)
    rng = b if _lt(a, b) else a  # std::max(|min|, |max|)
    if rng == 0:
        return np.zeros(v.shape, np.int8), F32(1.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scale = F32(rng / F32(127.0))
        inv = F32(F32(127.0) / rng)
        q = _round_row((v * inv).astype(F32))
    return np.clip(q, -127, 127).astype(np.int8), scale


def _quantize_batches(x: np.ndarray, asymmetric: bool):
    """Per batch (first dimension): int8 array of x's shape, float32 scales, int zero points."""
    n = x.shape[0]
    rows = x.reshape(n, -1)
    q = np.empty(rows.shape, np.int8)
    sf = np.empty(n, F32)
    zp = np.zeros(n, np.int64)
    for b in range(n):
        if asymmetric:
            q[b], sf[b], zp[b] = asymmetric_quantize(rows[b])
        else:
            q[b], sf[b] = symmetric_quantize(rows[b])
    return q.reshape(x.shape), sf, zp


# --- SSE integer helpers ---------------------------------------------------------------------


def sse_dot_defect(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What the SSSE3 dot product adds to the exact sum q[p] . w[r]: 256 * x for every pair in
    the 16-byte blocks with x < 0 and w == -128. q (P, K) int8, w (R, K) int8 -> int64 (P, R)."""
    k16 = q.shape[1] & ~15
    if k16 == 0:
        return np.zeros((q.shape[0], w.shape[0]), np.int64)
    mask = (w[:, :k16] == -128)
    if not mask.any():
        return np.zeros((q.shape[0], w.shape[0]), np.int64)
    neg = np.minimum(q[:, :k16], 0).astype(np.int64)
    return 256 * (neg @ mask.T.astype(np.int64))


def sse_row_sums(w: np.ndarray) -> np.ndarray:
    """SseReductionSumVector: per row, int16 lanes (wrapping) over the 16- and 8-byte blocks,
    then int32 for the rest. w (R, K) int8 -> int64 (R,) holding int32 values."""
    rows, k = w.shape
    k16, k8 = k & ~15, k & ~7
    wi = w.astype(np.int64)
    lanes = wi[:, :k16].reshape(rows, -1, 8, 2).sum(axis=(1, 3)) if k16 else np.zeros((rows, 8), np.int64)
    if k16 < k8:
        lanes = lanes + wi[:, k16:k8]
    lanes = ((lanes + 32768) % 65536) - 32768
    return _wrap32(lanes.sum(axis=1) + wi[:, k8:].sum(axis=1))


def _wrap32(a):
    a = np.asarray(a, np.int64)
    return ((a + 2**31) % 2**32) - 2**31


# --- prepare ---------------------------------------------------------------------------------


def prepare_hybrid(ctx: OpContext, w_t, b_t, channels: int, channel_axis: int) -> HybridPlan:
    kind = ctx.op.kind
    q = w_t.quantization
    if q is None or q.scale.size == 0:
        raise ctx.fail(f"int8 weights tensor {w_t.index} '{w_t.name}' has no quantization scale")
    if b_t is not None and b_t.dtype != np.float32:
        raise ctx.fail(f"hybrid {kind} needs a float32 bias, got {b_t.dtype.name}")
    scales = np.asarray(q.scale, F32).reshape(-1)
    has_bias = b_t is not None
    if scales.size > 1 and (q.axis != channel_axis or scales.size != channels):
        raise ctx.unsupported(f"weights scales must be per-tensor or {channels} on axis "
                              f"{channel_axis}, got {scales.size} on axis {q.axis}")
    activation = ctx.op.options.get("fused_activation_function", "NONE")
    if kind == "CONV_2D":
        if not has_bias:
            raise ctx.fail("hybrid CONV_2D needs a bias tensor (LiteRT's Prepare requires one)")
        x_t = ctx.input_tensor(0)
        groups = x_t.shape[3] // w_t.shape[3]
        distinct = scales.size > 1 and bool(np.any(scales != scales[0]))
        if distinct or groups != 1:
            if scales.size != channels:
                raise ctx.unsupported("grouped hybrid convolution with one weights scale "
                                      "(LiteRT reads per-channel scales past the array)")
            return HybridPlan("conv_per_channel", scales, True, has_bias, activation)
        return HybridPlan("conv_per_tensor", scales[:1], False, has_bias, activation, asymmetric=False)
    if kind == "DEPTHWISE_CONV_2D":
        if scales.size != channels:
            raise ctx.unsupported("hybrid depthwise convolution needs one weights scale per "
                                  f"output channel ({channels}), got {scales.size}")
        x_t = ctx.input_tensor(0)
        mult = channels // x_t.shape[3]
        option = ctx.op.options.get("depth_multiplier", mult)
        if option != mult:
            raise ctx.unsupported(f"depth_multiplier option {option} differs from the shapes' "
                                  f"{mult} (LiteRT's hybrid kernel follows the option)")
        return HybridPlan("depthwise", scales, True, has_bias, activation)
    if kind == "FULLY_CONNECTED":
        if activation not in HYBRID_ACTIVATIONS_FC:
            raise ctx.unsupported(f"hybrid fully connected with activation {activation}")
        asym = bool(ctx.op.options.get("asymmetric_quantize_inputs", False))
        return HybridPlan("fully_connected", scales, scales.size > 1, has_bias, activation,
                          asymmetric=asym)
    raise ctx.unsupported(f"no hybrid kernel for {kind}")


# --- run -------------------------------------------------------------------------------------


def _clamp(v: np.ndarray, act_range) -> np.ndarray:
    lo, hi = F32(act_range[0]), F32(act_range[1])
    return np.minimum(np.maximum(v, lo), hi)  # NaN stays NaN, as std::min(std::max(..))


def _conv_acc(xq, w, plan, input_offset: int) -> np.ndarray:
    """int32 sums of (x + input_offset) * w over in-image taps (one batch or many), grouped."""
    out = np.empty(xq.shape[:1] + tuple(plan.out_shape[1:]), np.int32)
    win = plan.window
    geo = (*plan.stride, *plan.dilation, win.pad_top, win.pad_left)
    groups = plan.groups
    if groups == 1 and w.shape[1] == w.shape[2] == 1 and tuple(plan.stride) == (1, 1):
        # 1x1, stride 1: no padding, the same sums on the matrix kernel.
        _kernels_pointwise.matmul_int(xq.reshape(-1, xq.shape[-1]), w.reshape(w.shape[0], -1),
                                      None, input_offset, 0, out.reshape(-1, out.shape[-1]))
        return out
    if groups == 1:
        _kernels_conv.conv2d_int(xq, w, None, input_offset, 0, *geo, out)
        return out
    fcin = w.shape[3]
    per = w.shape[0] // groups
    for g in range(groups):
        part = np.empty(out.shape[:3] + (per,), np.int32)
        _kernels_conv.conv2d_int(np.ascontiguousarray(xq[..., g * fcin:(g + 1) * fcin]),
                                 np.ascontiguousarray(w[g * per:(g + 1) * per]), None,
                                 input_offset, 0, *geo, part)
        out[..., g * per:(g + 1) * per] = part
    return out


@np.errstate(over="ignore", invalid="ignore")  # inf/NaN propagate as in C++
def hybrid_conv(ctx: OpContext, plan, x: np.ndarray, w: np.ndarray, bias) -> np.ndarray:
    hp: HybridPlan = plan.hybrid
    x = np.ascontiguousarray(x, F32)
    w = np.ascontiguousarray(w)
    n = x.shape[0]
    if hp.kind == "conv_per_channel":
        xq, sf, zp = _quantize_batches(x, asymmetric=True)
        acc = np.concatenate([_conv_acc(xq[b:b + 1], w, plan, -int(zp[b])) for b in range(n)]) \
            if n else np.empty(plan.out_shape, np.int32)
        out = acc.astype(F32) * hp.scales * sf.reshape(-1, 1, 1, 1)
        if bias is not None:
            out = out + bias.astype(F32)
        return _clamp(out.astype(F32), plan.act_range).astype(F32)

    # Per-tensor: symmetric inputs, im2col + matrix product, then bias and clamp.
    xq, sf, _ = _quantize_batches(x, asymmetric=False)
    sf = (sf * hp.scales[0]).astype(F32)
    acc = _conv_acc(xq, w, plan, 0).astype(np.int64)
    cout = w.shape[0]
    if cout % 4 != 0:  # SseMatrixBatchVectorMultiplyAccumulateImpl rather than a GEMM
        acc = acc + _conv_defect(xq, w, plan)
    acc = _wrap32(acc).astype(np.int32)
    out = (F32(0.0) + acc.astype(F32) * sf.reshape(-1, 1, 1, 1)).astype(F32)
    return _clamp((out + bias.astype(F32)).astype(F32), plan.act_range).astype(F32)


def _conv_defect(xq, w, plan) -> np.ndarray:
    """sse_dot_defect for im2col rows: taps with flat index (ky, kx, ci) < K & ~15 only."""
    k = int(np.prod(w.shape[1:]))
    k16 = k & ~15
    mask = (w == -128).reshape(w.shape[0], -1)
    mask[:, k16:] = False
    if not mask.any():
        return np.zeros(plan.out_shape, np.int64)
    neg = np.minimum(xq, 0).astype(np.int8)
    d = _conv_acc(np.ascontiguousarray(neg), mask.astype(np.int8).reshape(w.shape), plan, 0)
    return 256 * d.astype(np.int64)


@np.errstate(over="ignore", invalid="ignore")  # inf/NaN propagate as in C++
def hybrid_depthwise(ctx: OpContext, plan, x: np.ndarray, w: np.ndarray, bias) -> np.ndarray:
    hp: HybridPlan = plan.hybrid
    x = np.ascontiguousarray(x, F32)
    w = np.ascontiguousarray(w)
    xq, sf, zp = _quantize_batches(x, asymmetric=True)
    win = plan.window
    out = np.empty(plan.out_shape, F32)
    for b in range(x.shape[0]):
        acc = np.empty((1,) + tuple(plan.out_shape[1:]), np.int32)
        _kernels_depthwise.depthwise_int(xq[b:b + 1], w, None, plan.depth_multiplier, -int(zp[b]), 0,
                                         *plan.stride, *plan.dilation, win.pad_top, win.pad_left, acc)
        scale = (hp.scales * sf[b]).astype(F32)
        v = (acc[0].astype(F32) * scale).astype(F32)
        if bias is not None:
            v = (v + bias.astype(F32)).astype(F32)
        out[b] = _clamp(v, plan.act_range)
    return out


def _is_zero_vector(x: np.ndarray) -> bool:
    v = x.reshape(-1)
    n4 = v.size & ~3
    head, tail = v[:n4], v[n4:]
    with np.errstate(invalid="ignore"):
        return bool(not np.any(np.abs(head) > 0) and np.all(tail == 0))


def _apply_activation_fc(v: np.ndarray, activation: str) -> np.ndarray:
    if activation == "NONE":
        return v
    with np.errstate(invalid="ignore"):
        if activation == "RELU":  # std::max(0.0f, v): (0 < v) ? v : 0
            return np.where(F32(0) < v, v, F32(0)).astype(F32)
        if activation == "RELU_N1_TO_1":
            m = np.where(F32(1) < v, F32(1), v)
            return np.where(F32(-1) < m, m, F32(-1)).astype(F32)
        if activation == "RELU6":
            m = np.where(F32(6) < v, F32(6), v)
            return np.where(F32(0) < m, m, F32(0)).astype(F32)
    raise ValueError(activation)


@np.errstate(over="ignore", invalid="ignore")  # inf/NaN propagate as in C++
def hybrid_fully_connected(ctx: OpContext, plan, x2d: np.ndarray, w: np.ndarray, bias) -> np.ndarray:
    hp: HybridPlan = plan.hybrid
    x2d = np.ascontiguousarray(x2d, F32)
    w = np.ascontiguousarray(w)
    batches, units = x2d.shape[0], w.shape[0]
    if bias is not None:
        out = np.broadcast_to(bias.astype(F32).reshape(1, units), (batches, units)).copy()
    else:
        out = np.zeros((batches, units), F32)
    if plan.depth == 0:
        return np.zeros((batches, units), F32)
    if _is_zero_vector(x2d):
        return _apply_activation_fc(out, hp.activation)
    xq, sf, zp = _quantize_batches(x2d, asymmetric=hp.asymmetric)
    if not hp.per_channel:
        sf = (sf * hp.scales[0]).astype(F32)
    dot = np.empty((batches, units), np.int32)
    _kernels_pointwise.matmul_int(xq, w, None, 0, 0, dot)
    total = dot.astype(np.int64) + sse_dot_defect(xq, w)
    row_sums = sse_row_sums(w)
    offsets = _wrap32(zp.reshape(-1, 1) * row_sums.reshape(1, -1))
    total = _wrap32(_wrap32(total) - offsets).astype(np.int32)
    if hp.per_channel:
        row_scale = (hp.scales.reshape(1, -1) * sf.reshape(-1, 1)).astype(F32)
    else:
        row_scale = np.broadcast_to(sf.reshape(-1, 1), (batches, units))
    out = (out + (total.astype(F32) * row_scale).astype(F32)).astype(F32)
    return _apply_activation_fc(out, hp.activation)
