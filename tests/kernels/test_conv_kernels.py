"""conv kernels vs plain NumPy oracles.

Integer oracle: exact int64 sums over the taps that fall inside the image (einsum per tap),
wrapped to int32.  Float oracle: float32 arrays accumulated one (ky, kx, ci) step at a time,
each step a float32 product and a float32 add, padded taps left out; then + bias and the
clamp max-then-min.  Float results are compared bit for bit (NaN matches any NaN).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_conv as kc
from refnet.ops import add_nan_first, multiply_nan_first
from support import assert_same_bits
from refnet.bits import same_bits

FLT_MAX = float(np.finfo(np.float32).max)
QTYPES = [(np.uint8, np.uint8), (np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8)]


# ------------------------------------------------------------------------------------------
# Oracles
# ------------------------------------------------------------------------------------------


def tap_positions(out_size, stride, pad, k, dilation, in_size):
    """Input coordinate of tap k for each output coordinate, and whether it is inside."""
    pos = np.arange(out_size) * stride - pad + k * dilation
    return np.clip(pos, 0, max(in_size - 1, 0)), (pos >= 0) & (pos < in_size)


def conv_int_oracle(x, w, bias, in_off, w_off, sh, sw, dh, dw, pt, pl, oh, ow):
    n, h, wd, _ = x.shape
    cout, kh, kw, _ = w.shape
    xs = x.astype(np.int64) + in_off
    ws = w.astype(np.int64) + w_off
    acc = np.zeros((n, oh, ow, cout), np.int64)
    if bias is not None:
        acc += bias.astype(np.int64)
    for ky in range(kh):
        iy, vy = tap_positions(oh, sh, pt, ky, dh, h)
        for kx in range(kw):
            ix, vx = tap_positions(ow, sw, pl, kx, dw, wd)
            patch = xs[:, iy][:, :, ix] * (vy[:, None] & vx[None, :])[None, :, :, None]
            acc += np.einsum("nhwc,oc->nhwo", patch, ws[:, ky, kx, :])
    return acc.astype(np.int32)  # wraps to int32


def clamp_like_reference(v, lo, hi):
    v = np.where(v < np.float32(lo), np.float32(lo), v)  # std::max(v, lo)
    return np.where(np.float32(hi) < v, np.float32(hi), v)  # std::min(v, hi)


def conv_float_oracle(x, w, bias, sh, sw, dh, dw, pt, pl, act_min, act_max, oh, ow, nan_block=0):
    n, h, wd, cin = x.shape
    cout, kh, kw, _ = w.shape
    total = np.zeros((n, oh, ow, cout), np.float32)
    blocked = (cin // nan_block) * nan_block if nan_block else 0
    with np.errstate(all="ignore"):
        for ky in range(kh):
            iy, vy = tap_positions(oh, sh, pt, ky, dh, h)
            for kx in range(kw):
                ix, vx = tap_positions(ow, sw, pl, kx, dw, wd)
                valid = (vy[:, None] & vx[None, :])[None, :, :, None]
                patch = x[:, iy][:, :, ix]
                for ci in range(cin):
                    product = multiply_nan_first(patch[..., ci:ci + 1], w[:, ky, kx, ci])  # both NaN: the input's
                    # both NaN: the product's NaN in whole blocks of nan_block, else the total's
                    added = add_nan_first(product, total) if ci < blocked else add_nan_first(total, product)
                    total = np.where(valid, added, total)
        b = np.zeros(cout, np.float32) if bias is None else bias
        return clamp_like_reference(add_nan_first(total, np.broadcast_to(b, total.shape)), act_min, act_max).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------


@st.composite
def geometry(draw):
    g = dict(n=draw(st.integers(1, 2)), h=draw(st.integers(1, 7)), w=draw(st.integers(1, 7)),
             cin=draw(st.integers(1, 5)), cout=draw(st.integers(1, 6)),
             kh=draw(st.integers(1, 4)), kw=draw(st.integers(1, 4)),
             sh=draw(st.integers(1, 3)), sw=draw(st.integers(1, 3)),
             dh=draw(st.integers(1, 3)), dw=draw(st.integers(1, 3)))
    g["pt"] = draw(st.integers(0, (g["kh"] - 1) * g["dh"] + 1))
    g["pl"] = draw(st.integers(0, (g["kw"] - 1) * g["dw"] + 1))
    # Any output size is legal for the kernel; windows entirely outside give bias only.
    g["oh"] = draw(st.integers(1, 6))
    g["ow"] = draw(st.integers(1, 6))
    return g


def quantized_values(rng, dtype, shape, kind):
    info = np.iinfo(dtype)
    if kind == "uniform":
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    if kind == "extremes":
        return rng.choice(np.array([info.min, info.max], dtype=dtype), size=shape)
    return np.full(shape, info.max if kind == "max" else info.min, dtype=dtype)


@st.composite
def offsets_for(draw, dtype):
    info = np.iinfo(dtype)
    zp = draw(st.sampled_from([int(info.min), int(info.max), 0]) |
              st.integers(int(info.min), int(info.max)))
    return draw(st.sampled_from([-zp, -zp, -zp, -(2**15), 2**15]))


def float_values(rng, shape, kind):
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "wide":
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-40, 38, size=shape)).astype(np.float32)
    if kind == "bits":  # any float32 bit pattern: NaN, inf, subnormals, -0.0
        return rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, FLT_MAX, 3.0],
                       np.float32)
    return rng.choice(special, size=shape)


ACT_RANGES = [(-FLT_MAX, FLT_MAX), (0.0, 6.0), (0.0, FLT_MAX), (-1.0, 1.0),
              (-np.inf, np.inf), (0.0, 0.0)]


# ------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(geometry(), st.sampled_from(QTYPES), st.data(), st.integers(0, 2**32 - 1))
def test_conv2d_int_matches_oracle(g, qtypes, data, seed):
    tin, tw = qtypes
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["uniform", "uniform", "extremes", "max", "min"]))
    x = quantized_values(rng, tin, (g["n"], g["h"], g["w"], g["cin"]), kind)
    w = quantized_values(rng, tw, (g["cout"], g["kh"], g["kw"], g["cin"]), kind)
    in_off = data.draw(offsets_for(tin))
    w_off = data.draw(offsets_for(tw))
    bias_kind = data.draw(st.sampled_from(["none", "small", "int32"]))
    bias = None
    if bias_kind == "small":
        bias = rng.integers(-(2**16), 2**16, size=g["cout"]).astype(np.int32)
    elif bias_kind == "int32":
        bias = rng.choice(np.array([-(2**31), 2**31 - 1, 0], np.int64), size=g["cout"]).astype(np.int32)
    out = np.full((g["n"], g["oh"], g["ow"], g["cout"]), 12345, np.int32)
    args = (in_off, w_off, g["sh"], g["sw"], g["dh"], g["dw"], g["pt"], g["pl"])
    kc.conv2d_int(x, w, bias, *args, out)
    expected = conv_int_oracle(x, w, bias, *args, g["oh"], g["ow"])
    assert same_bits(out, expected)


def test_conv2d_int_wraps_like_int32():
    # The bias pushes the exact sum past INT32_MAX; the stored value wraps as int32 would.
    x = np.full((1, 1, 1, 4), 255, np.uint8)
    w = np.full((1, 1, 1, 4), 255, np.uint8)
    bias = np.array([2**31 - 1], np.int32)
    out = np.empty((1, 1, 1, 1), np.int32)
    kc.conv2d_int(x, w, bias, 0, 0, 1, 1, 1, 1, 0, 0, out)
    assert out[0, 0, 0, 0] == np.int64(2**31 - 1 + 4 * 255 * 255).astype(np.int32)


@settings(max_examples=250, deadline=None)
@given(geometry(), st.data(), st.integers(0, 2**32 - 1))
def test_conv2d_float_matches_oracle(g, data, seed):
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["normal", "normal", "wide", "bits", "special"]))
    x = float_values(rng, (g["n"], g["h"], g["w"], g["cin"]), kind)
    w = float_values(rng, (g["cout"], g["kh"], g["kw"], g["cin"]), kind)
    bias = None if data.draw(st.booleans()) else float_values(rng, (g["cout"],), kind)
    act_min, act_max = data.draw(st.sampled_from(ACT_RANGES))
    out = np.full((g["n"], g["oh"], g["ow"], g["cout"]), 7.0, np.float32)
    args = (g["sh"], g["sw"], g["dh"], g["dw"], g["pt"], g["pl"])
    nan_block = data.draw(st.sampled_from([0, 4]))
    kc.conv2d_float(x, w, bias, *args, act_min, act_max, out, nan_block)
    expected = conv_float_oracle(x, w, bias, *args, act_min, act_max, g["oh"], g["ow"], nan_block)
    assert_same_bits(out, expected)


def test_conv2d_float_order_is_ky_kx_ci():
    # 1e8 + 1 - 1e8 in float32 depends on the order: (1e8 + 1) rounds back to 1e8.
    x = np.array([1e8, 1.0, -1e8], np.float32).reshape(1, 1, 3, 1)  # taps along kx
    w = np.ones((1, 1, 3, 1), np.float32)
    out = np.empty((1, 1, 1, 1), np.float32)
    kc.conv2d_float(x, w, None, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, out)
    assert out[0, 0, 0, 0] == 0.0  # ((0 + 1e8) + 1) + -1e8 = 0, not 1
    x2 = np.array([1.0, 1e8, -1e8], np.float32).reshape(1, 1, 1, 3)  # channels
    w2 = np.ones((1, 1, 1, 3), np.float32)
    kc.conv2d_float(x2, w2, None, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, out)
    assert out[0, 0, 0, 0] == 0.0  # ((0 + 1) + 1e8) + -1e8 = 0


def test_conv2d_float_no_bias_adds_positive_zero_and_clamps_inf():
    x = np.array([[[[-0.0]]]], np.float32)
    w = np.array([[[[1.0]]]], np.float32)
    out = np.empty((1, 1, 1, 1), np.float32)
    kc.conv2d_float(x, w, None, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, out)
    assert out[0, 0, 0, 0] == 0.0 and not np.signbit(out[0, 0, 0, 0])
    x[...] = np.inf
    kc.conv2d_float(x, w, None, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, out)
    assert out[0, 0, 0, 0] == np.float32(FLT_MAX)  # std::min(inf, FLT_MAX)


def test_conv2d_empty_reduction_gives_bias():
    x = np.zeros((1, 2, 2, 0), np.int8)
    w = np.zeros((3, 1, 1, 0), np.int8)
    out = np.empty((1, 2, 2, 3), np.int32)
    kc.conv2d_int(x, w, np.array([1, 2, 3], np.int32), 0, 0, 1, 1, 1, 1, 0, 0, out)
    assert (out == np.array([1, 2, 3])).all()
    out_f = np.empty((1, 2, 2, 3), np.float32)
    kc.conv2d_float(x.astype(np.float32), w.astype(np.float32), None, 1, 1, 1, 1, 0, 0,
                    -FLT_MAX, FLT_MAX, out_f)
    assert (out_f == 0).all()


def _int_args(**over):
    a = dict(input=np.zeros((1, 4, 4, 3), np.int8), filter=np.zeros((2, 3, 3, 3), np.int8),
             bias=np.zeros(2, np.int32), input_offset=0, filter_offset=0, stride_h=1,
             stride_w=1, dilation_h=1, dilation_w=1, pad_top=1, pad_left=1,
             out=np.zeros((1, 4, 4, 2), np.int32))
    a.update(over)
    return a


BAD_GEOMETRY = [
    dict(filter=np.zeros((2, 3, 3, 4), np.int8)),
    dict(out=np.zeros((2, 4, 4, 2), np.int32)),
    dict(out=np.zeros((1, 4, 4, 3), np.int32)),
    dict(bias=np.zeros(3, np.int32)),
    dict(stride_h=0), dict(stride_w=-1), dict(dilation_h=0), dict(dilation_w=0),
    dict(pad_top=-1), dict(pad_left=-2),
]


@pytest.mark.parametrize("over", BAD_GEOMETRY + [dict(input_offset=2**15 + 1),
                                                  dict(filter_offset=-(2**15) - 1)])
def test_conv2d_int_rejects_bad_arguments(over):
    with pytest.raises(ValueError):
        kc.conv2d_int(**_int_args(**over))


@pytest.mark.parametrize("over", BAD_GEOMETRY)
def test_conv2d_float_rejects_bad_arguments(over):
    a = _int_args(**over)
    del a["input_offset"], a["filter_offset"]
    for key in ("input", "filter", "bias", "out"):
        a[key] = a[key].astype(np.float32)
    with pytest.raises(ValueError):
        kc.conv2d_float(**a, act_min=-1.0, act_max=1.0)


@pytest.mark.parametrize("over", [
    dict(input=np.zeros((1, 4, 4, 3), np.int16)),
    dict(input=np.zeros((1, 4, 4, 3), np.int8)[:, :, :, ::-1]),
    dict(out=np.zeros((1, 4, 4, 2), np.int64)),
    dict(bias=np.zeros(2, np.int64)),
    dict(input=np.zeros((4, 4, 3), np.int8)),
    dict(input=None),
])
def test_conv2d_int_rejects_bad_types(over):
    with pytest.raises((TypeError, ValueError)):
        kc.conv2d_int(**_int_args(**over))
