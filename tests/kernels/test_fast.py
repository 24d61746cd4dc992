"""Fast kernels (_kernels_fast) vs the plain reference kernels, bit for bit, on every
instruction-set copy this CPU runs (generic always; AVX2 / AVX-512 when present).

Generated shapes cover: channel counts around the 16-lane panels, odd K (the int16 tap pairs),
pixel counts around the micro-tiles, padding on every side, strides, dilations, batches, the
three requantization forms, int8/uint8, extreme zero points, and float values that expose
summation order, -0.0, inf and NaN.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_conv as kc
from refnet import _kernels_depthwise as kd
from refnet import _kernels_fast as kf
from refnet import _kernels_hard_swish as kh
from refnet import _kernels_requantize as kr
from refnet import requantize
from refnet.forms import Form
from refnet.ops import add_nan_first, elementwise, multiply_nan_first, quieted
from refnet.ops.elementwise import ElementwisePlan, quantized_add, quantized_mul
from refnet.bits import same_bits

ISAS = list(range(kf.isa_supported() + 1))
FLT_MAX = float(np.finfo(np.float32).max)
ACT_RANGES = [(-FLT_MAX, FLT_MAX), (0.0, 6.0), (0.0, FLT_MAX), (-1.0, 1.0), (0.0, 0.0)]


@pytest.fixture(autouse=True)
def restore_isa():
    yield
    kf.set_isa(kf.isa_supported())


def qvalues(rng, dtype, shape, kind):
    info = np.iinfo(dtype)
    if kind == "extremes":
        return rng.choice(np.array([info.min, info.max], dtype=dtype), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)


def fvalues(rng, shape, kind):
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "wide":
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, size=shape)).astype(np.float32)
    if kind == "signed":  # signed zeros and subnormals, no NaN (so the bits are compared)
        return rng.choice(np.array([0.0, -0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 1.1754942e-38, 3.0, -2.5],
                                   np.float32), size=shape)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 3.0, -2.5], np.float32)
    return rng.choice(special, size=shape)


def prepared_run(kernel, *args):
    """kernel(*args) as a KernelCall: prepared (prepared=True) on an example output like args'
    out (the second last argument; the last is threads), then run on the input and a fresh
    output.  (output, nan_seen)."""
    *head, out, threads = args
    call = kernel(*head, np.empty_like(out), threads, prepared=True)
    fresh = np.full_like(out, 3)
    return fresh, call.run(args[0], fresh)


@st.composite
def conv_geometry(draw, depthwise=False):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if draw(st.booleans()) else (1, 1)
    # depthwise: rows wide enough for the interior blocks of 8 pixels at strides 1-3
    h, w = draw(st.integers(1, 13)), draw(st.integers(1, 30 if depthwise else 13))
    pad_t, pad_l = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    pad_b, pad_r = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    oh = (h + pad_t + pad_b - ((kh - 1) * dh + 1)) // sh + 1
    ow = (w + pad_l + pad_r - ((kw - 1) * dw + 1)) // sw + 1
    if draw(st.integers(0, 4)) == 0:  # the 1x1 matrix-product path
        kh = kw = sh = sw = 1
        pad_t = pad_l = 0
        oh, ow = h, w
    oh, ow = max(oh, 1), max(ow, 1)
    n = draw(st.integers(1, 2))
    cin = draw(st.sampled_from([1, 2, 3, 5, 8, 15, 16, 17, 24, 33]))
    cout = cin if depthwise else draw(st.sampled_from([1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 40, 70]))
    return n, h, w, cin, cout, oh, ow, (kh, kw, sh, sw, dh, dw, pad_t, pad_l)


@st.composite
def requant_params(draw, rng, channels):
    rounding = draw(st.sampled_from([0, 1, 2, int(Form.ROUNDING_FP32)]))
    if rounding == Form.ROUNDING_FP32:  # mult: float32 scale bits; ties (0.5), huge and tiny scales
        scale = rng.uniform(1e-5, 0.1, size=channels).astype(np.float32)
        if draw(st.booleans()):
            scale = rng.choice(np.float32([0.5, 0.25, 1.0, 1e-30, 1e-3, 3e38, 0.0, 1.5]), size=channels)
        if draw(st.booleans()):
            scale = np.full(channels, scale[0], np.float32)
        return scale.astype(np.float32).view(np.int32), np.zeros(channels, np.int32), rounding
    top = 30 if rounding == 1 else 31
    # typical and ties: no shift > 0, no INT32_MIN multiplier (the epilogue copies with the form
    # fixed at compile time); ties: power-of-two scales, exact halves of either sign; wide: the rest
    kind = draw(st.sampled_from(["typical", "ties", "wide"]))
    if kind == "typical":
        mult = rng.integers(1 << 30, (1 << 31) - 1, size=channels)
        shift = rng.integers(-14, 1, size=channels)
    elif kind == "ties":
        mult = np.full(channels, 1 << 30)
        shift = rng.integers(-6, 1, size=channels)
    else:
        mult = rng.choice(np.array([0, 1, (1 << 30), (1 << 31) - 1, -(1 << 31)]), size=channels)
        shift = rng.integers(-31, top + 1, size=channels)
    if draw(st.booleans()):  # per-tensor, broadcast
        mult, shift = np.full(channels, mult[0]), np.full(channels, shift[0])
    return mult.astype(np.int32), shift.astype(np.int32), rounding


def requantized(acc, mult, shift, zp, qmin, qmax, rounding, dtype):
    """The plain requantization: the Cython kernel (fixed point) or the NumPy oracle (fp32)."""
    if rounding == Form.ROUNDING_FP32:
        return requantize.requantize_fp32(acc, mult.view(np.float32), zp, qmin, qmax, dtype)
    channels = acc.shape[-1]
    expected = np.empty(acc.shape, dtype)
    kr.requantize(acc.reshape(-1, channels), mult, shift, zp, qmin, qmax, rounding,
                  expected.reshape(-1, channels))
    return expected


def qrange(rng, dtype):
    info = np.iinfo(dtype)
    zp = int(rng.integers(info.min, int(info.max) + 1))
    lo = int(rng.integers(info.min, int(info.max) + 1))
    return zp, lo, int(rng.integers(lo, int(info.max) + 1))


@settings(max_examples=200, deadline=None)
@given(conv_geometry(), st.sampled_from([np.int8, np.uint8]), st.data(), st.integers(0, 2**32 - 1))
def test_conv_q_matches_plain_kernels(geometry, dtype, data, seed):
    n, h, w, cin, cout, oh, ow, geom = geometry
    kh, kw, sh, sw, dh, dw, pad_t, pad_l = geom
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["uniform", "uniform", "extremes"]))
    info = np.iinfo(dtype)
    x = qvalues(rng, dtype, (n, h, w, cin), kind)
    wt = qvalues(rng, dtype, (cout, kh, kw, cin), kind)
    in_off = -int(data.draw(st.sampled_from([int(info.min), int(info.max), 0]) |
                            st.integers(int(info.min), int(info.max))))
    w_off = -int(data.draw(st.sampled_from([int(info.min), int(info.max), 0]) |
                           st.integers(int(info.min), int(info.max))))
    if dtype == np.int8 and data.draw(st.booleans()):
        w_off = 0  # the int8 models' symmetric weights: beta 0
    bias = None if data.draw(st.booleans()) else \
        rng.choice(np.array([-(2**31), 2**31 - 1, 0, 12345, -777]), size=cout).astype(np.int32)
    acc = np.empty((n, oh, ow, cout), np.int32)
    kc.conv2d_int(x, wt, bias, in_off, w_off, sh, sw, dh, dw, pad_t, pad_l, acc)
    mult, shift, rounding = data.draw(requant_params(rng, cout))
    zp, qmin, qmax = qrange(rng, dtype)
    expected = requantized(acc, mult, shift, zp, qmin, qmax, rounding, dtype)
    packed, beta = kf.pack_q(wt.reshape(cout, -1), w_off)
    pb = None if bias is None else kf.pad_channels(bias, cout, np.int32)
    pm, ps = kf.pad_channels(mult, cout, np.int32), kf.pad_channels(shift, cout, np.int32)
    for isa in ISAS:
        kf.set_isa(isa)
        threads = 1 + (isa % 2)
        raw = np.full(acc.shape, 99, np.int32)
        kf.conv_q(x, packed, pb, None, None, geom, in_off, beta, 0, 0, 0, 0, raw, threads)
        assert same_bits(raw, acc), f"isa {isa}: accumulators differ"
        out = np.full(acc.shape, 7, dtype)
        kf.conv_q(x, packed, pb, pm, ps, geom, in_off, beta, zp, qmin, qmax, rounding, out, threads)
        assert same_bits(out, expected), f"isa {isa}: {int((out != expected).sum())} differ"
        raw, _ = prepared_run(kf.conv_q, x, packed, pb, None, None, geom, in_off, beta, 0, 0, 0, 0, raw, threads)
        assert same_bits(raw, acc), f"isa {isa}: the prepared call's accumulators differ"
        out, _ = prepared_run(kf.conv_q, x, packed, pb, pm, ps, geom, in_off, beta, zp, qmin, qmax, rounding, out,
                              threads)
        assert same_bits(out, expected), f"isa {isa}: the prepared call differs"


@settings(max_examples=200, deadline=None)
@given(conv_geometry(), st.sampled_from([np.int8, np.uint8]), st.data(), st.integers(0, 2**32 - 1))
def test_conv_q8_matches_plain_kernels(geometry, dtype, data, seed):
    """The unsigned x signed byte convolution (vpdpbusd, emulated on the other copies): raw sums
    and requantized outputs, int8 weights (beta 0) and uint8 weights with zero points (beta and
    the per-pixel sum(u) term), padding with the input's zero point."""
    n, h, w, cin, cout, oh, ow, geom = geometry
    kh, kw, sh, sw, dh, dw, pad_t, pad_l = geom
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["uniform", "uniform", "extremes"]))
    info = np.iinfo(dtype)
    x = qvalues(rng, dtype, (n, h, w, cin), kind)
    wt = qvalues(rng, dtype, (cout, kh, kw, cin), kind)
    in_off = -int(data.draw(st.sampled_from([int(info.min), int(info.max), 0]) |
                            st.integers(int(info.min), int(info.max))))
    w_off = -int(data.draw(st.sampled_from([int(info.min), int(info.max), 0]) |
                           st.integers(int(info.min), int(info.max))))
    if dtype == np.int8 and data.draw(st.booleans()):
        w_off = 0  # the int8 models' symmetric weights
    bias = None if data.draw(st.booleans()) else \
        rng.choice(np.array([-(2**31), 2**31 - 1, 0, 12345, -777]), size=cout).astype(np.int32)
    acc = np.empty((n, oh, ow, cout), np.int32)
    kc.conv2d_int(x, wt, bias, in_off, w_off, sh, sw, dh, dw, pad_t, pad_l, acc)
    mult, shift, rounding = data.draw(requant_params(rng, cout))
    zp, qmin, qmax = qrange(rng, dtype)
    expected = requantized(acc, mult, shift, zp, qmin, qmax, rounding, dtype)
    packed, beta, sums = kf.pack_q8(wt.reshape(cout, -1), w_off)
    assert beta == 0 or dtype == np.uint8 or w_off != 0
    signed = dtype == np.int8
    assert kf.q8_input_fits(in_off, signed)
    pb = kf.fold_q8_bias(bias, sums, kh * kw * cin, kf.q8_alpha(in_off, signed), beta)
    pm, ps = kf.pad_channels(mult, cout, np.int32), kf.pad_channels(shift, cout, np.int32)
    for isa in ISAS:
        kf.set_isa(isa)
        threads = 1 + (isa % 2)
        raw = np.full(acc.shape, 99, np.int32)
        kf.conv_q8(x, packed, pb, None, None, geom, in_off, beta, 0, 0, 0, 0, raw, threads)
        assert same_bits(raw, acc), f"isa {isa}: accumulators differ"
        out = np.full(acc.shape, 7, dtype)
        kf.conv_q8(x, packed, pb, pm, ps, geom, in_off, beta, zp, qmin, qmax, rounding, out, threads)
        assert same_bits(out, expected), f"isa {isa}: {int((out != expected).sum())} differ"
        raw, _ = prepared_run(kf.conv_q8, x, packed, pb, None, None, geom, in_off, beta, 0, 0, 0, 0, raw, threads)
        assert same_bits(raw, acc), f"isa {isa}: the prepared call's accumulators differ"
        out, _ = prepared_run(kf.conv_q8, x, packed, pb, pm, ps, geom, in_off, beta, zp, qmin, qmax, rounding,
                              out, threads)
        assert same_bits(out, expected), f"isa {isa}: the prepared call differs"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([17, 96, 160, 330]),
       st.sampled_from([1, 24, 97]), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_conv_work_division_keeps_every_output(h, w, cout, cin, threads, seed):
    """Few pixels and many panels (the 3x3 and 1x1 maps at a network's end): with threads > 1
    the panels are split into blocks of work (rn_panels_per_block) that each compute whole
    outputs, so every thread count gives the plain kernels' bits."""
    rng = np.random.default_rng(seed)
    geom = (1, 1, 1, 1, 1, 1, 0, 0)
    x = rng.integers(-128, 128, size=(1, h, w, cin)).astype(np.int8)
    wt = rng.integers(-128, 128, size=(cout, 1, 1, cin)).astype(np.int8)
    bias = rng.integers(-5000, 5000, size=cout).astype(np.int32)
    acc = np.empty((1, h, w, cout), np.int32)
    kc.conv2d_int(x, wt, bias, 3, 0, 1, 1, 1, 1, 0, 0, acc)
    packed, beta_q = kf.pack_q(wt.reshape(cout, -1), 0)
    packed8, beta, sums = kf.pack_q8(wt.reshape(cout, -1), 0)
    pb = kf.pad_channels(bias, cout, np.int32)
    pb8 = kf.fold_q8_bias(bias, sums, cin, kf.q8_alpha(3, True), beta)
    xf, wf = x.astype(np.float32) * 0.37, wt.astype(np.float32) * 0.011
    expected_f = np.empty(acc.shape, np.float32)
    kc.conv2d_float(xf, wf, None, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, expected_f)
    packed_f = kf.pack_f(wf.reshape(cout, -1))
    for isa in ISAS:
        kf.set_isa(isa)
        raw = np.full(acc.shape, 99, np.int32)
        kf.conv_q(x, packed, pb, None, None, geom, 3, beta_q, 0, 0, 0, 0, raw, threads)
        assert same_bits(raw, acc), f"isa {isa}, conv_q, {threads} threads"
        raw = np.full(acc.shape, 99, np.int32)
        kf.conv_q8(x, packed8, pb8, None, None, geom, 3, beta, 0, 0, 0, 0, raw, threads)
        assert same_bits(raw, acc), f"isa {isa}, conv_q8, {threads} threads"
        out = np.full(acc.shape, 5.0, np.float32)
        assert not kf.conv_f(xf, packed_f, None, geom, -FLT_MAX, FLT_MAX, out, threads)
        assert same_bits(out, expected_f), f"isa {isa}, conv_f, {threads} threads"


def test_pack_q_shifts_weights_into_a_byte_or_refuses():
    w = np.array([[-128, 127]], np.int8)
    packed, beta = kf.pack_q(w, 0)
    assert beta == 0 and packed.dtype == np.int8 and packed.shape == (1, 1, 16, 2)
    assert packed.reshape(-1)[:2].tolist() == [-128, 127] and not packed.reshape(-1)[2:].any()
    packed, beta = kf.pack_q(np.array([[0, 255, 7]], np.uint8), -3)  # -3 .. 252: shifted by beta
    assert beta == -3 + 128 and packed.shape == (1, 2, 16, 2)
    assert packed.reshape(-1)[[0, 1, 32]].tolist() == [-128, 127, -121]
    assert kf.pack_q(np.array([[-200, 200]], np.int16), 0) is None


def test_pack_q8_shifts_weights_into_a_byte_or_refuses():
    w = np.array([[-128, 127]], np.int8)
    packed, beta, sums = kf.pack_q8(w, 0)
    assert beta == 0 and packed.dtype == np.int8 and sums.tolist() == [-1]
    packed, beta, sums = kf.pack_q8(w, 1)  # -127 .. 128: 256 values, a byte once shifted by beta
    assert beta == 1 and packed.reshape(-1)[:2].tolist() == [-128, 127]
    assert kf.pack_q8(np.array([[-200, 200]], np.int16), 0) is None


@settings(max_examples=200, deadline=None)
@given(conv_geometry(), st.data(), st.integers(0, 2**32 - 1))
def test_conv_f_matches_plain_kernel(geometry, data, seed):
    n, h, w, cin, cout, oh, ow, geom = geometry
    kh, kw, sh, sw, dh, dw, pad_t, pad_l = geom
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["normal", "normal", "wide", "special", "signed"]))
    x = fvalues(rng, (n, h, w, cin), kind)
    wt = fvalues(rng, (cout, kh, kw, cin), kind)
    bias = None if data.draw(st.booleans()) else fvalues(rng, (cout,), kind)
    lo, hi = data.draw(st.sampled_from(ACT_RANGES))
    expected = np.empty((n, oh, ow, cout), np.float32)
    with np.errstate(all="ignore"):
        kc.conv2d_float(x, wt, bias, sh, sw, dh, dw, pad_t, pad_l, lo, hi, expected)
    packed = kf.pack_f(wt.reshape(cout, -1))
    pb = None if bias is None else kf.pad_channels(bias, cout, np.float32)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(expected.shape, 5.0, np.float32)
        nan_seen = kf.conv_f(x, packed, pb, geom, lo, hi, out, 1 + (isa % 2))
        called, called_nan = prepared_run(kf.conv_f, x, packed, pb, geom, lo, hi, out, 1 + (isa % 2))
        assert called_nan == nan_seen and (nan_seen or same_bits(called, out)), f"isa {isa}: prepared call"
        # a NaN output is reported (the op then takes the plain kernel's NaN); else same bits.
        # Padded taps are 0.0f products: only an inf / NaN weight may report a NaN the
        # reference does not have.
        if np.isfinite(wt).all() or np.isnan(expected).any():
            assert nan_seen == bool(np.isnan(expected).any()), f"isa {isa}"
        assert nan_seen or same_bits(out, expected), f"isa {isa}"


@settings(max_examples=200, deadline=None)
@given(conv_geometry(depthwise=True), st.sampled_from([np.int8, np.uint8]), st.data(),
       st.integers(0, 2**32 - 1))
def test_depthwise_q_matches_plain_kernels(geometry, dtype, data, seed):
    n, h, w, c, _, oh, ow, geom = geometry
    kh, kw, sh, sw, dh, dw, pad_t, pad_l = geom
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    kind = data.draw(st.sampled_from(["uniform", "uniform", "extremes"]))
    x = qvalues(rng, dtype, (n, h, w, c), kind)
    wt = qvalues(rng, dtype, (1, kh, kw, c), kind)
    in_off = -int(rng.integers(info.min, int(info.max) + 1))
    w_off = -int(rng.integers(info.min, int(info.max) + 1)) if dtype == np.uint8 else 0
    bias = None if data.draw(st.booleans()) else rng.integers(-(2**31), 2**31, size=c).astype(np.int32)
    acc = np.empty((n, oh, ow, c), np.int32)
    kd.depthwise_int(x, wt, bias, 1, in_off, w_off, sh, sw, dh, dw, pad_t, pad_l, acc)
    mult, shift, rounding = data.draw(requant_params(rng, c))
    zp, qmin, qmax = qrange(rng, dtype)
    expected = requantized(acc, mult, shift, zp, qmin, qmax, rounding, dtype)
    packed = kf.pack_depthwise_q(wt, w_off)
    pb = None if bias is None else kf.pad_channels(bias, c, np.int32)
    pm, ps = kf.pad_channels(mult, c, np.int32), kf.pad_channels(shift, c, np.int32)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(acc.shape, 3, dtype)
        kf.depthwise_q(x, packed, pb, pm, ps, geom, in_off, zp, qmin, qmax, rounding, out, 1 + (isa % 2))
        assert same_bits(out, expected), f"isa {isa}: {int((out != expected).sum())} differ"
        out, _ = prepared_run(kf.depthwise_q, x, packed, pb, pm, ps, geom, in_off, zp, qmin, qmax, rounding, out,
                              1 + (isa % 2))
        assert same_bits(out, expected), f"isa {isa}: the prepared call differs"


@settings(max_examples=200, deadline=None)
@given(conv_geometry(depthwise=True), st.data(), st.integers(0, 2**32 - 1))
def test_depthwise_f_matches_plain_kernel(geometry, data, seed):
    n, h, w, c, _, oh, ow, geom = geometry
    kh, kw, sh, sw, dh, dw, pad_t, pad_l = geom
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["normal", "wide", "special", "signed"]))
    x = fvalues(rng, (n, h, w, c), kind)
    wt = fvalues(rng, (1, kh, kw, c), kind)
    bias = None if data.draw(st.booleans()) else fvalues(rng, (c,), kind)
    lo, hi = data.draw(st.sampled_from(ACT_RANGES))
    expected = np.empty((n, oh, ow, c), np.float32)
    with np.errstate(all="ignore"):
        kd.depthwise_float(x, wt, bias, 1, sh, sw, dh, dw, pad_t, pad_l, lo, hi, expected)
    packed = kf.pack_depthwise_f(wt)
    pb = None if bias is None else kf.pad_channels(bias, c, np.float32)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(expected.shape, 5.0, np.float32)
        nan_seen = kf.depthwise_f(x, packed, pb, geom, lo, hi, out, 1 + (isa % 2))
        assert nan_seen == bool(np.isnan(expected).any()), f"isa {isa}"
        assert nan_seen or same_bits(out, expected), f"isa {isa}"
        out, called_nan = prepared_run(kf.depthwise_f, x, packed, pb, geom, lo, hi, out, 1 + (isa % 2))
        assert called_nan == nan_seen and (nan_seen or same_bits(out, expected)), f"isa {isa}: prepared call"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.booleans(), st.sampled_from([0, 1, 2]),
       st.integers(1, 40), st.integers(1, 5), st.booleans(), st.data(), st.integers(0, 2**32 - 1))
def test_elementwise_q_matches_numpy(dtype, is_mul, rounding, period, repeats, broadcast, data, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    n = period * repeats
    a = qvalues(rng, dtype, (n,), "uniform")
    b = qvalues(rng, dtype, (period if broadcast else n,), data.draw(st.sampled_from(["uniform", "extremes"])))
    zps = tuple(int(v) for v in rng.integers(info.min, int(info.max) + 1, size=3))
    _, lo, hi = qrange(rng, dtype)

    def pair(small=True):
        top = 30 if rounding == 1 else 31
        return (int(rng.integers(1 << 30, (1 << 31) - 1)),
                int(rng.integers(-20, 1)) if small else int(rng.integers(-31, top + 1)))

    plan = ElementwisePlan("quantized", (n,), act_range=(lo, hi), rounding=rounding, zero_points=zps,
                           input_multipliers=(pair(), pair()), output_multiplier=pair(is_mul))
    if is_mul and plan.output_multiplier[1] > 0:
        plan.output_multiplier = (plan.output_multiplier[0], min(plan.output_multiplier[1], 14))
    bb = np.tile(b, repeats) if broadcast else b
    raw = (quantized_mul if is_mul else quantized_add)(plan, a, bb)
    expected = np.minimum(hi, np.maximum(lo, raw)).astype(dtype)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.empty(n, dtype)
        kf.elementwise_q(a, b, out, is_mul, *zps, *plan.input_multipliers, plan.output_multiplier,
                         lo, hi, rounding, 1 + (isa % 2))
        assert same_bits(out, expected), f"isa {isa}"


def test_float_sum_keeps_reference_order():
    # long K where sequential float32 accumulation differs from pairwise / reordered sums
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 7, 700)).astype(np.float32)
    wt = rng.standard_normal((37, 1, 1, 700)).astype(np.float32)
    expected = np.empty((1, 5, 7, 37), np.float32)
    kc.conv2d_float(x, wt, None, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, expected)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.empty_like(expected)
        kf.conv_f(x, kf.pack_f(wt.reshape(37, -1)), None, (1, 1, 1, 1, 1, 1, 0, 0), -FLT_MAX, FLT_MAX, out)
        assert same_bits(out, expected)


def test_set_isa_clamps_and_reports():
    assert kf.set_isa(99) == kf.isa_supported()
    assert kf.set_isa(-3) == 0
    assert kf.get_isa() == 0


def test_bad_arguments_are_rejected():
    x = np.zeros((1, 4, 4, 3), np.uint8)
    out = np.zeros((1, 4, 4, 5), np.uint8)
    packed, beta = kf.pack_q(np.zeros((5, 3), np.uint8), 0)
    vec = kf.pad_channels(np.zeros(5), 5, np.int32)
    geom = (1, 1, 1, 1, 1, 1, 0, 0)
    with pytest.raises(ValueError):  # wrong K
        kf.conv_q(x, kf.pack_q(np.zeros((5, 6), np.uint8), 0)[0], vec, vec, vec, geom, 0, 0, 0, 0, 255, 0, out)
    with pytest.raises(ValueError):  # int16 pairs (the old packing) are refused
        kf.conv_q(x, packed.astype(np.int16), vec, vec, vec, geom, 0, 0, 0, 0, 255, 0, out)
    with pytest.raises(ValueError):  # rounding form
        kf.conv_q(x, packed, vec, vec, vec, geom, 0, beta, 0, 0, 255, 3, out)
    with pytest.raises(ValueError):  # shift range
        kf.conv_q(x, packed, vec, vec, kf.pad_channels(np.full(5, 40), 5, np.int32), geom, 0, beta, 0, 0, 255, 0, out)
    with pytest.raises(ValueError):  # clamp range outside the type
        kf.conv_q(x, packed, vec, vec, vec, geom, 0, beta, 0, -5, 255, 0, out)
    with pytest.raises(ValueError):  # offset beyond int16
        kf.conv_q(x, packed, vec, vec, vec, geom, 40000, beta, 0, 0, 255, 0, out)
    with pytest.raises(ValueError):
        kf.conv_q(x[:, :, :, :2], packed, vec, vec, vec, geom, 0, beta, 0, 0, 255, 0, out)
    call = kf.conv_q(x, packed, vec, vec, vec, geom, 0, beta, 0, 0, 255, 0, out, 1, prepared=True)
    call.run(x, out)
    with pytest.raises(ValueError):  # a prepared call runs on its own shapes and dtypes only
        call.run(np.zeros((1, 4, 5, 3), np.uint8), out)
    with pytest.raises(ValueError):
        call.run(x.view(np.int8), out)
    with pytest.raises(ValueError):
        call.run(np.zeros((1, 4, 4, 6), np.uint8)[..., ::2], out)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.integers(1, 300), st.data(), st.integers(0, 2**32 - 1))
def test_elementwise_q_add_floor8_matches_numpy(dtype, n, data, seed):
    """Form.ADD_INPUT_SHIFT_FLOOR_8 (same shapes): the C copies against requantize.py's oracle,
    on sizes with and without a tail, including the witness pair of issue 15."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, int(info.max) + 1, n).astype(dtype)
    b = rng.integers(info.min, int(info.max) + 1, n).astype(dtype)
    if dtype == np.uint8 and data.draw(st.booleans()):  # the DeepLab ADD: (150, 117) is a tie
        params, zps = ((1383578759, -1), (1073741824, 0)), (133, 125, 125)
        output = (1818209459, -19)
        a[:] = 150
        b[:] = 117
    else:
        params = tuple((int(rng.integers(1 << 30, (1 << 31) - 1)), int(rng.integers(-12, 1))) for _ in range(2))
        output = (int(rng.integers(1 << 30, (1 << 31) - 1)), int(rng.integers(-24, -14)))
        zps = tuple(int(rng.integers(info.min, int(info.max) + 1)) for _ in range(3))
    raw = requantize.add_input_shift_floor_8(a, zps[0], b, zps[1], params, output, zps[2], 20)
    expected = np.clip(raw, info.min, info.max).astype(dtype)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(n, 9, dtype)
        kf.elementwise_q(a, b, out, False, zps[0], zps[1], zps[2], params[0], params[1], output,
                         int(info.min), int(info.max), int(Form.ADD_INPUT_SHIFT_FLOOR_8), 1 + (isa % 2))
        assert same_bits(out, expected), f"isa {isa}: {int((out != expected).sum())} of {n} differ"


# --- the rest of the graph: QUANTIZE, row sums, byte tables, ADD/MUL in the XNNPACK forms ---------

from refnet.fixedpoint import round_half_away, truncate_to_int32, wrap_to_int32  # noqa: E402


def _quantize_oracle(x, scale, zp, dtype, form, reciprocal, saturating):
    """refnet/ops/quantize.py's NumPy arithmetic for a per-tensor float32 -> 8-bit QUANTIZE."""
    info = np.iinfo(dtype)
    scale = np.float32(scale)
    if form == Form.QUANTIZE_RECIPROCAL_RNE:
        return requantize.quantize_reciprocal_rne(x, scale, np.int64(zp), dtype)
    with np.errstate(all="ignore"):
        steps = round_half_away(x * (np.float32(1.0) / scale) if reciprocal else x / scale)
    raw = wrap_to_int32(truncate_to_int32(steps, saturating) + zp).astype(np.int64)
    return np.clip(raw, info.min, info.max).astype(dtype)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.sampled_from([int(Form.ROUNDING_DOUBLE), int(Form.QUANTIZE_RECIPROCAL_RNE)]),
       st.booleans(), st.booleans(), st.integers(0, 70), st.sampled_from(["normal", "wide", "special", "ties"]),
       st.integers(0, 2**32 - 1))
def test_quantize_f_matches_numpy(dtype, form, reciprocal, saturating, n, kind, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    scale = np.float32(rng.choice([1 / 255, 0.0078125, 0.5, 3.0, 1e-30, 1e30, 1e-45, 0.02, 0.0]))
    zp = int(rng.choice([int(info.min), int(info.max), 0, int(rng.integers(info.min, int(info.max) + 1)), -300, 40000]))
    if kind == "ties":  # exact halves on the scale's grid, and values near 2**31 steps
        x = ((rng.integers(-400, 400, n) + 0.5) * scale).astype(np.float32)
        with np.errstate(over="ignore"):
            x[: n // 4] = (rng.choice([2.0**31, -(2.0**31), 2.0**31 - 128, 2.0**23 + 1], n // 4) * scale).astype(np.float32)
    else:
        x = fvalues(rng, (n,), kind) * np.float32(rng.choice([1.0, 100.0, 1e-3]))
    x = x.astype(np.float32)
    expected = _quantize_oracle(x, scale, zp, dtype, form, reciprocal, saturating)
    with np.errstate(all="ignore"):
        inv = np.float32(np.float32(1.0) / scale)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(n, 7, dtype)
        kf.quantize_f(x, out, form, float(scale), float(inv), zp, reciprocal, saturating)
        assert same_bits(out, expected), f"isa {isa}: {np.flatnonzero(out != expected)[:5]}"


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.integers(0, 3), st.integers(0, 40), st.integers(0, 150),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_sum_rows8_matches_numpy(dtype, outer, rows, inner, extremes, seed):
    rng = np.random.default_rng(seed)
    x = qvalues(rng, dtype, (outer, rows, inner), "extremes" if extremes else "uniform")
    expected = x.astype(np.int64).sum(axis=1).astype(np.int32)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full((outer, inner), 3, np.int32)
        kf.sum_rows8(x, outer, rows, inner, out)
        assert same_bits(out, expected), f"isa {isa}"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.sampled_from([np.int8, np.uint8]), st.integers(0, 300),
       st.integers(0, 2**32 - 1))
def test_lut8_matches_take(x_dtype, t_dtype, n, seed):
    rng = np.random.default_rng(seed)
    table = qvalues(rng, t_dtype, (256,), "uniform")
    x = qvalues(rng, x_dtype, (n,), "uniform")
    expected = table[x.view(np.uint8)]
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(n, 1, t_dtype)
        kf.lut8(table, x, out)
        assert same_bits(out, expected), f"isa {isa}"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.integers(1, 70), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_lut16_matches_take(dtype, period, repeats, seed):
    rng = np.random.default_rng(seed)
    table = qvalues(rng, dtype, (65536,), "uniform")
    a = qvalues(rng, dtype, (period * repeats,), "uniform")
    b = qvalues(rng, dtype, (period,), "uniform")
    a.view(np.uint8)[:2], b.view(np.uint8)[:2] = (255, 0)[:a.size], (255, 0)[:b.size]  # the table's ends
    expected = table[a.view(np.uint8).astype(np.int64) * 256 + np.tile(b.view(np.uint8), repeats)]
    out = np.empty_like(a)
    kf.lut16(table, a, b, out)  # plain C, one copy for every ISA
    assert same_bits(out, expected)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([np.int8, np.uint8]), st.booleans(), st.integers(1, 40), st.integers(1, 5), st.booleans(),
       st.data(), st.integers(0, 2**32 - 1))
def test_elementwise_q_xnnpack_forms_match_numpy(dtype, is_mul, period, repeats, broadcast, data, seed):
    """ADD_XNNPACK (ADD) and ROUNDING_FP32 (MUL): the C copies against requantize.py's oracle."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    n = period * repeats
    a = qvalues(rng, dtype, (n,), "uniform")
    b = qvalues(rng, dtype, (period if broadcast else n,), data.draw(st.sampled_from(["uniform", "extremes"])))
    zps = tuple(int(v) for v in rng.integers(info.min, int(info.max) + 1, size=3))
    _, lo, hi = qrange(rng, dtype)
    scales = np.float32(rng.choice([1e-3, 0.02, 0.1, 0.5, 1.0, 3.0], 3) * rng.uniform(0.5, 2.0, 3))
    if is_mul:
        form = Form.ROUNDING_FP32
        plan = ElementwisePlan("quantized", (n,), act_range=(lo, hi), rounding=form, zero_points=zps)
        plan.fp32_scale = requantize.fp32_scale(scales[0], scales[1], scales[2])
        if data.draw(st.booleans()):  # ties and extremes of the float32 scale
            plan.fp32_scale = np.float32(rng.choice([0.5, 0.25, 1.0, 1e-30, 3e38, 0.0, 1.5]))
        args = ((0, 0), (0, 0))
    else:
        form = Form.ADD_XNNPACK
        plan = ElementwisePlan("quantized", (n,), act_range=(lo, hi), rounding=form, zero_points=zps)
        try:
            plan.input_multipliers = requantize.add_xnnpack_params(scales[0], scales[1], scales[2])
        except ValueError:
            return
        ma, mb, shift = plan.input_multipliers
        args = ((ma, shift), (mb, shift))
    bb = np.tile(b, repeats) if broadcast else b
    raw = (quantized_mul if is_mul else quantized_add)(plan, a, bb)
    expected = np.minimum(hi, np.maximum(lo, raw)).astype(dtype)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.empty(n, dtype)
        kf.elementwise_q(a, b, out, is_mul, *zps, *args, (0, 0), lo, hi, int(form), 1 + (isa % 2),
                         float(plan.fp32_scale))
        assert same_bits(out, expected), f"isa {isa}"


# --- float elementwise: ADD / MUL, HARD_SWISH, MEAN's sums -----------------------------------

def fvalues_nans(rng, shape):
    """Special values with NaNs of random sign and payload (quiet and signalling) among them."""
    x = fvalues(rng, shape, "special")
    bits = x.view(np.uint32).copy()
    nan = rng.random(shape) < 0.3
    payload = rng.integers(1, 1 << 23, size=shape).astype(np.uint32)
    bits[nan] = (np.uint32(0x7F800000) | payload[nan] | (rng.integers(0, 2, size=shape).astype(np.uint32)[nan] << 31))
    return bits.view(np.float32)


def float_operands(rng, kind, shape):
    if kind == "nans":
        return fvalues_nans(rng, shape)
    x = fvalues(rng, shape, kind)
    return np.where(rng.random(shape) < 0.2, np.float32(1e-40), x).astype(np.float32) if kind == "normal" else x


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=4), st.integers(0, 4), st.booleans(), st.booleans(),
       st.sampled_from(["normal", "special", "nans"]), st.data(), st.integers(0, 2**32 - 1))
def test_binary_f_matches_numpy(shape, trailing, small_first, is_mul, kind, data, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    trailing = min(trailing, len(shape))  # the small operand: 1s, then shape's last `trailing` dims
    small_shape = (1,) * data.draw(st.integers(0, len(shape) - trailing)) + shape[len(shape) - trailing:]
    big, small = float_operands(rng, kind, shape), float_operands(rng, kind, small_shape)
    a, b = (small, big) if small_first else (big, small)
    lo, hi = data.draw(st.sampled_from(ACT_RANGES + [(-np.inf, np.inf)]))
    n = big.size
    run = data.draw(st.sampled_from([n, small.size]))
    limit = data.draw(st.integers(0, run))
    # x86's NaN rule made explicit (add_nan_first: a's NaN where both are), then b's NaN at the
    # positions i % run < limit where both are, then std::min(std::max(x, lo), hi)
    raw = (multiply_nan_first if is_mul else add_nan_first)(a, b)
    both = np.broadcast_to(np.isnan(a) & np.isnan(b), shape)
    second = (np.arange(n) % run < limit).reshape(shape)
    raw = np.where(both & second, quieted(np.broadcast_to(b, shape).copy()), raw)
    expected = elementwise.clamp_like_cpp(np.asarray(raw, np.float32), lo, hi)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(shape, 5.0, np.float32)
        kf.binary_f(a, b, out, is_mul, lo, hi, run, limit)
        assert same_bits(out, expected), f"isa {isa}: {int((out.view(np.uint32) != expected.view(np.uint32)).sum())} differ"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.booleans(), st.sampled_from(["normal", "wide", "special", "nans"]),
       st.integers(0, 2**32 - 1))
def test_hard_swish_f_matches_plain_kernel(n, reciprocal, kind, seed):
    rng = np.random.default_rng(seed)
    x = float_operands(rng, kind, (n,))
    if kind == "normal":
        x = (x * np.float32(4.0)).astype(np.float32)  # around the -3 and 3 corners
        x[: n // 8] = rng.choice(np.float32([-3.0, 3.0, -0.0, 0.0, np.nextafter(np.float32(-3), 0)]), n // 8)
    expected = np.empty(n, np.float32)
    kh.hard_swish_float(x, expected, reciprocal)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full(n, 5.0, np.float32)
        kf.hard_swish_f(x, out, reciprocal)
        assert same_bits(out, expected), f"isa {isa}"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(0, 70), st.integers(1, 80), st.sampled_from(["normal", "wide", "special", "nans"]),
       st.integers(0, 2**32 - 1))
def test_sum_rows_f_matches_sequential_sum(outer, rows, inner, kind, seed):
    rng = np.random.default_rng(seed)
    x = float_operands(rng, kind, (outer, rows, inner))
    if kind == "special":  # all -0.0 columns: the sum from +0.0 is +0.0
        x[:, :, : inner // 3] = np.float32(-0.0)
    # sequential from +0.0, the running sum the first operand (x86: its NaN kept)
    expected = np.zeros((outer, inner), np.float32)
    for p in range(rows):
        expected = add_nan_first(expected, x[:, p, :])
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.full((outer, inner), 5.0, np.float32)
        kf.sum_rows_f(x, outer, rows, inner, out)
        assert same_bits(out, expected), f"isa {isa}"


# --- elementwise kernels on two threads: spans of long rows, rows shorter than a span ---------

SPAN = 8192  # kernels/fast.h RN_SPAN; from 32768 values on the kernels split their spans
SPAN_PERIODS = [37, SPAN + 5, 3 * SPAN - 16, None]  # None: one row (same shapes / a flat op)


@pytest.mark.parametrize("period", SPAN_PERIODS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_threaded_elementwise_q_matches_numpy(period, dtype):
    """ADD (double rounding, and the floor-8 form on one row) and MUL over 2 threads: every span
    of every row, a row's end mid-vector, against elementwise.py's NumPy arithmetic."""
    rng = np.random.default_rng(period or 1)
    info = np.iinfo(dtype)
    n = 40003 if period is None else period * max(2, -(-40000 // period))
    period = period or n
    a, b = qvalues(rng, dtype, (n,), "uniform"), qvalues(rng, dtype, (period,), "uniform")
    zps = (int(info.min) + 3, int(info.max) - 5, 7)
    lo, hi = int(info.min) + 1, int(info.max) - 2
    pairs = ((1518500250, -1), (1276901417, -2))
    for is_mul, form in [(False, Form.ROUNDING_DOUBLE), (True, Form.ROUNDING_DOUBLE),
                         (False, Form.ADD_INPUT_SHIFT_FLOOR_8)]:
        if form == Form.ADD_INPUT_SHIFT_FLOOR_8 and period != n:
            continue
        output = (1686629713, -8 if is_mul else -19)
        if form == Form.ADD_INPUT_SHIFT_FLOOR_8:
            raw = requantize.add_input_shift_floor_8(a, zps[0], b, zps[1], pairs, output, zps[2], 20)
        else:
            plan = ElementwisePlan("quantized", (n,), act_range=(lo, hi), rounding=form, zero_points=zps,
                                   input_multipliers=pairs, output_multiplier=output)
            raw = (quantized_mul if is_mul else quantized_add)(plan, a, np.tile(b, n // period))
        expected = np.clip(raw, lo, hi).astype(dtype)
        for isa in ISAS:
            kf.set_isa(isa)
            out = np.full(n, 9, dtype)
            kf.elementwise_q(a, b, out, is_mul, *zps, *pairs, output, lo, hi, int(form), 2)
            assert same_bits(out, expected), f"isa {isa}, {form!r}, mul {is_mul}: {int((out != expected).sum())} differ"


@pytest.mark.parametrize("period", SPAN_PERIODS)
def test_threaded_tables_and_float_ops_match(period):
    """lut16 (rows), binary_f (rows, NaN blocks), and the flat lut8 / quantize_f / hard_swish_f
    over 2 threads, against NumPy and the plain kernels."""
    rng = np.random.default_rng(period or 2)
    n = 40003 if period is None else period * max(2, -(-40000 // period))
    period = period or n
    table = qvalues(rng, np.uint8, (65536,), "uniform")
    a, b = qvalues(rng, np.uint8, (n,), "uniform"), qvalues(rng, np.uint8, (period,), "uniform")
    expected16 = table[a.astype(np.int64) * 256 + np.tile(b, n // period)]
    fa, fb = fvalues_nans(rng, (n,)), fvalues_nans(rng, (period,))
    run, limit = 4096, 1000
    raw = add_nan_first(fa, np.tile(fb, n // period))
    both = np.isnan(fa) & np.isnan(np.tile(fb, n // period))
    raw = np.where(both & (np.arange(n) % run < limit), quieted(np.tile(fb, n // period)), raw)
    expected_f = elementwise.clamp_like_cpp(np.asarray(raw, np.float32), -1.0, 1.0)
    x = (float_operands(rng, "normal", (n,)) * np.float32(4.0)).astype(np.float32)
    expected_hs = np.empty(n, np.float32)
    kh.hard_swish_float(x, expected_hs, False)
    expected_q = _quantize_oracle(x, np.float32(0.05), -3, np.int8, Form.ROUNDING_DOUBLE, False, False)
    for isa in ISAS:
        kf.set_isa(isa)
        out = np.empty_like(a)
        kf.lut16(table, a, b, out, 2)
        assert same_bits(out, expected16), f"isa {isa}, lut16"
        out = np.empty(n, np.uint8)
        kf.lut8(table[:256], a, out, 2)
        assert same_bits(out, table[:256][a]), f"isa {isa}, lut8"
        out = np.full(n, 5.0, np.float32)
        kf.binary_f(fa, fb, out, False, -1.0, 1.0, run, limit, 2)
        assert same_bits(out, expected_f), f"isa {isa}, binary_f"
        out = np.full(n, 5.0, np.float32)
        kf.hard_swish_f(x, out, False, 2)
        assert same_bits(out, expected_hs), f"isa {isa}, hard_swish_f"
        out = np.full(n, 7, np.int8)
        kf.quantize_f(x, out, int(Form.ROUNDING_DOUBLE), 0.05, float(np.float32(1) / np.float32(0.05)), -3,
                      threads=2)
        assert same_bits(out, expected_q), f"isa {isa}, quantize_f"
