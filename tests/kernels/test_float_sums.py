"""The float32 sum forms (refnet/forms.py FloatSum) in the plain kernels vs a plain-NumPy oracle.

The oracle spells each form out per channel, vectorised over output elements only; its fused
multiply-add is `fma32`, exact by construction (checked against the C library's fmaf below).
"""
import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_conv as kc
from refnet import _kernels_depthwise as kd
from refnet import _kernels_pointwise as kp
from refnet.forms import ORDERED, FloatSum
from support import assert_same_bits

FORMS = {
    "ordered": ORDERED,
    "fma except blocks of 8": FloatSum(fused=True, unfused_block=8),  # ai-edge-litert 2.3.0 aarch64
    "4 fused lanes": FloatSum(fused=True, lanes=4),  # tflite-runtime 2.14.0 aarch64
    "all fused": FloatSum(fused=True),
}
F32 = np.float32


def fma32(a, b, c):
    """float32 fma(a, b, c), correctly rounded: a * b is exact in float64; TwoSum gives the exact
    error of the float64 sum, which decides the one case where rounding the sum to float32 is
    wrong (the sum lands exactly on a float32 midpoint)."""
    a, b, c = (np.asarray(v, F32).astype(np.float64) for v in np.broadcast_arrays(a, b, c))
    p = a * b
    s = p + c
    bp = s - p
    err = (p - (s - bp)) + (c - bp)
    r = s.astype(F32)
    r64 = r.astype(np.float64)
    toward = np.where(s > r64, F32(np.inf), F32(-np.inf)).astype(F32)
    other = np.nextafter(r, toward).astype(np.float64)
    on_midpoint = (r64 != s) & ((r64 + other) * 0.5 == s) & (err != 0)
    fix = on_midpoint & ((err > 0) == (other > r64))
    return np.where(fix, other, r64).astype(F32)


def add_channels(total, xs, ws, form: FloatSum):
    """total + the products xs[c] * ws[c] over channels c (axis 0), summed in `form`'s order."""
    depth = xs.shape[0]
    lane_count, lane_end, fma_from = form.split(depth)
    if lane_end:
        lanes = [np.zeros_like(total) for _ in range(lane_count)]
        for c in range(lane_end):
            lanes[c % lane_count] = fma32(xs[c], ws[c], lanes[c % lane_count])
        while len(lanes) > 1:
            lanes = [(lanes[2 * i] + lanes[2 * i + 1]).astype(F32) for i in range(len(lanes) // 2)]
        total = (total + lanes[0]).astype(F32)
    for c in range(lane_end, depth):
        if c >= fma_from:
            total = fma32(xs[c], ws[c], total)
        else:
            total = (total + (xs[c] * ws[c]).astype(F32)).astype(F32)
    return total


def test_fma32_oracle_is_the_c_librarys_fmaf():
    libm = ctypes.CDLL("libm.so.6")
    libm.fmaf.restype = ctypes.c_float
    libm.fmaf.argtypes = [ctypes.c_float] * 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal(3000).astype(F32)
    b = (rng.standard_normal(3000) * 10.0 ** rng.integers(-6, 6, 3000)).astype(F32)
    c = rng.standard_normal(3000).astype(F32)
    c[:1000] = -(a[:1000] * b[:1000]).astype(F32)  # cancellation: the product's low bits decide
    c[1000:1500] = np.nextafter(c[:500], F32(np.inf))
    expected = np.array([libm.fmaf(float(x), float(y), float(z)) for x, y, z in zip(a, b, c)], F32)
    assert_same_bits(fma32(a, b, c), expected)


@pytest.mark.parametrize("name", sorted(FORMS))
@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 3), depth=st.integers(1, 40), units=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_matmul_float_sums_like_the_oracle(name, rows, depth, units, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, depth)).astype(F32)
    w = rng.standard_normal((units, depth)).astype(F32)
    bias = rng.standard_normal(units).astype(F32)
    out = np.empty((rows, units), F32)
    kp.matmul_float(a, w, bias, -np.inf, np.inf, out, 0, *FORMS[name].split(depth))
    total = add_channels(np.zeros((rows, units), F32), a.T[:, :, None], w.T[:, None, :], FORMS[name])
    assert_same_bits(out, (total + bias).astype(F32))


@pytest.mark.parametrize("name", sorted(FORMS))
@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 20), kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 2),
       seed=st.integers(0, 2**31))
def test_conv2d_float_sums_each_tap_like_the_oracle(name, cin, kh, kw, stride, seed):
    rng = np.random.default_rng(seed)
    h, w, cout = 5, 4, 3
    x = rng.standard_normal((1, h, w, cin)).astype(F32)
    f = rng.standard_normal((cout, kh, kw, cin)).astype(F32)
    bias = rng.standard_normal(cout).astype(F32)
    pad = (kh - 1) // 2, (kw - 1) // 2
    oh, ow = (h + 2 * pad[0] - kh) // stride + 1, (w + 2 * pad[1] - kw) // stride + 1
    out = np.empty((1, oh, ow, cout), F32)
    kc.conv2d_float(x, f, bias, stride, stride, 1, 1, pad[0], pad[1], -np.inf, np.inf, out, 0,
                    *FORMS[name].split(cin))
    expected = np.empty_like(out)
    for oy in range(oh):
        for ox in range(ow):
            total = np.zeros(cout, F32)
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * stride - pad[0] + ky, ox * stride - pad[1] + kx
                    if 0 <= iy < h and 0 <= ix < w:  # taps outside the image are skipped
                        total = add_channels(total, x[0, iy, ix][:, None], f[:, ky, kx].T, FORMS[name])
            expected[0, oy, ox] = (total + bias).astype(F32)
    assert_same_bits(out, expected)


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 12), mult=st.integers(1, 2), k=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_depthwise_float_fused_is_an_fma_chain_over_the_taps(c, mult, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 6, 6, c)).astype(F32)
    f = rng.standard_normal((1, k, k, c * mult)).astype(F32)
    bias = rng.standard_normal(c * mult).astype(F32)
    out = np.empty((1, 6 - k + 1, 6 - k + 1, c * mult), F32)
    kd.depthwise_float(x, f, bias, mult, 1, 1, 1, 1, 0, 0, -np.inf, np.inf, out, True)
    xs = np.repeat(x, mult, axis=3)
    total = np.zeros(out.shape, F32)
    for ky in range(k):
        for kx in range(k):
            total = fma32(xs[:, ky:ky + out.shape[1], kx:kx + out.shape[2]], f[0, ky, kx], total)
    assert_same_bits(out, (total + bias).astype(F32))


def test_split_names_the_channels_of_each_part():
    assert ORDERED.split(13) == (0, 0, 13)
    assert FloatSum(fused=True, unfused_block=8).split(13) == (0, 0, 8)
    assert FloatSum(fused=True, unfused_block=8).split(16) == (0, 0, 16)
    assert FloatSum(fused=True, lanes=4).split(13) == (4, 12, 12)
    assert FloatSum(fused=True, lanes=4).split(3) == (4, 0, 0)
    assert FloatSum(fused=True).split(5) == (0, 0, 0)


def test_kernels_refuse_a_split_that_does_not_fit():
    a, w, out = np.ones((1, 6), F32), np.ones((2, 6), F32), np.empty((1, 2), F32)
    for lane_count, lane_end, fma_from in ((3, 3, 3), (4, 8, 8), (4, 6, 6), (0, 4, 4), (4, 4, 2)):
        with pytest.raises(ValueError):
            kp.matmul_float(a, w, None, -np.inf, np.inf, out, 0, lane_count, lane_end, fma_from)
