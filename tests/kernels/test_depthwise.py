"""depthwise kernels vs plain NumPy oracles (see test_conv.py for the oracle conventions)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnet import _kernels_depthwise as kd
from refnet.ops import add_nan_first, multiply_nan_first
from support import assert_same_bits
from refnet.bits import same_bits

FLT_MAX = float(np.finfo(np.float32).max)
QTYPES = [(np.uint8, np.uint8), (np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8)]
ACT_RANGES = [(-FLT_MAX, FLT_MAX), (0.0, 6.0), (0.0, FLT_MAX), (-1.0, 1.0),
              (-np.inf, np.inf), (0.0, 0.0)]


def tap_positions(out_size, stride, pad, k, dilation, in_size):
    pos = np.arange(out_size) * stride - pad + k * dilation
    return np.clip(pos, 0, max(in_size - 1, 0)), (pos >= 0) & (pos < in_size)


def expand_channels(x, mult):
    """Input channel ic feeds output channels ic*M .. ic*M + M - 1."""
    return np.repeat(x, mult, axis=-1)


def depthwise_int_oracle(x, w, bias, mult, in_off, w_off, sh, sw, dh, dw, pt, pl, oh, ow):
    n, h, wd, _ = x.shape
    _, kh, kw, cout = w.shape
    xs = expand_channels(x.astype(np.int64) + in_off, mult)
    ws = w.astype(np.int64) + w_off
    acc = np.zeros((n, oh, ow, cout), np.int64)
    if bias is not None:
        acc += bias.astype(np.int64)
    for ky in range(kh):
        iy, vy = tap_positions(oh, sh, pt, ky, dh, h)
        for kx in range(kw):
            ix, vx = tap_positions(ow, sw, pl, kx, dw, wd)
            valid = (vy[:, None] & vx[None, :])[None, :, :, None]
            acc += xs[:, iy][:, :, ix] * ws[0, ky, kx] * valid
    return acc.astype(np.int32)


def clamp_like_reference(v, lo, hi):
    v = np.where(v < np.float32(lo), np.float32(lo), v)
    return np.where(np.float32(hi) < v, np.float32(hi), v)


def depthwise_float_oracle(x, w, bias, mult, sh, sw, dh, dw, pt, pl, act_min, act_max, oh, ow):
    n, h, wd, _ = x.shape
    _, kh, kw, cout = w.shape
    xe = expand_channels(x, mult)
    total = np.zeros((n, oh, ow, cout), np.float32)
    with np.errstate(all="ignore"):
        for ky in range(kh):
            iy, vy = tap_positions(oh, sh, pt, ky, dh, h)
            for kx in range(kw):
                ix, vx = tap_positions(ow, sw, pl, kx, dw, wd)
                valid = (vy[:, None] & vx[None, :])[None, :, :, None]
                product = multiply_nan_first(xe[:, iy][:, :, ix], w[0, ky, kx])
                total = np.where(valid, add_nan_first(total, product), total)  # both NaN: the total's
        b = np.zeros(cout, np.float32) if bias is None else bias
        return clamp_like_reference(add_nan_first(total, np.broadcast_to(b, total.shape)), act_min, act_max).astype(np.float32)


@st.composite
def geometry(draw):
    g = dict(n=draw(st.integers(1, 2)), h=draw(st.integers(1, 8)), w=draw(st.integers(1, 8)),
             cin=draw(st.integers(1, 6)), mult=draw(st.sampled_from([1, 1, 2, 3])),
             kh=draw(st.integers(1, 5)), kw=draw(st.integers(1, 5)),
             sh=draw(st.integers(1, 3)), sw=draw(st.integers(1, 3)),
             dh=draw(st.integers(1, 3)), dw=draw(st.integers(1, 3)))
    g["pt"] = draw(st.integers(0, (g["kh"] - 1) * g["dh"] + 1))
    g["pl"] = draw(st.integers(0, (g["kw"] - 1) * g["dw"] + 1))
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
    if kind == "bits":
        return rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, FLT_MAX, 3.0],
                       np.float32)
    return rng.choice(special, size=shape)


@settings(max_examples=250, deadline=None)
@given(geometry(), st.sampled_from(QTYPES), st.data(), st.integers(0, 2**32 - 1))
def test_depthwise_int_matches_oracle(g, qtypes, data, seed):
    tin, tw = qtypes
    rng = np.random.default_rng(seed)
    cout = g["cin"] * g["mult"]
    kind = data.draw(st.sampled_from(["uniform", "uniform", "extremes", "max", "min"]))
    x = quantized_values(rng, tin, (g["n"], g["h"], g["w"], g["cin"]), kind)
    w = quantized_values(rng, tw, (1, g["kh"], g["kw"], cout), kind)
    in_off = data.draw(offsets_for(tin))
    w_off = data.draw(offsets_for(tw))
    bias_kind = data.draw(st.sampled_from(["none", "small", "int32"]))
    bias = None
    if bias_kind == "small":
        bias = rng.integers(-(2**16), 2**16, size=cout).astype(np.int32)
    elif bias_kind == "int32":
        bias = rng.choice(np.array([-(2**31), 2**31 - 1, 0], np.int64), size=cout).astype(np.int32)
    out = np.full((g["n"], g["oh"], g["ow"], cout), 12345, np.int32)
    args = (g["mult"], in_off, w_off, g["sh"], g["sw"], g["dh"], g["dw"], g["pt"], g["pl"])
    kd.depthwise_int(x, w, bias, *args, out)
    expected = depthwise_int_oracle(x, w, bias, *args, g["oh"], g["ow"])
    assert same_bits(out, expected)


@settings(max_examples=250, deadline=None)
@given(geometry(), st.data(), st.integers(0, 2**32 - 1))
def test_depthwise_float_matches_oracle(g, data, seed):
    rng = np.random.default_rng(seed)
    cout = g["cin"] * g["mult"]
    kind = data.draw(st.sampled_from(["normal", "normal", "wide", "bits", "special"]))
    x = float_values(rng, (g["n"], g["h"], g["w"], g["cin"]), kind)
    w = float_values(rng, (1, g["kh"], g["kw"], cout), kind)
    bias = None if data.draw(st.booleans()) else float_values(rng, (cout,), kind)
    act_min, act_max = data.draw(st.sampled_from(ACT_RANGES))
    out = np.full((g["n"], g["oh"], g["ow"], cout), 7.0, np.float32)
    args = (g["mult"], g["sh"], g["sw"], g["dh"], g["dw"], g["pt"], g["pl"])
    kd.depthwise_float(x, w, bias, *args, act_min, act_max, out)
    expected = depthwise_float_oracle(x, w, bias, *args, act_min, act_max, g["oh"], g["ow"])
    assert_same_bits(out, expected)


def test_depthwise_channel_mapping():
    # Input channel ic must feed output channels ic*M + m.
    x = np.array([10, 20], np.int8).reshape(1, 1, 1, 2)
    w = np.array([1, 2, 3, 4, 5, 6], np.int8).reshape(1, 1, 1, 6)
    out = np.empty((1, 1, 1, 6), np.int32)
    kd.depthwise_int(x, w, None, 3, 0, 0, 1, 1, 1, 1, 0, 0, out)
    assert out.ravel().tolist() == [10, 20, 30, 80, 100, 120]
    out_f = np.empty((1, 1, 1, 6), np.float32)
    kd.depthwise_float(x.astype(np.float32), w.astype(np.float32), None, 3, 1, 1, 1, 1, 0, 0,
                       -FLT_MAX, FLT_MAX, out_f)
    assert out_f.ravel().tolist() == [10, 20, 30, 80, 100, 120]


def test_depthwise_float_order_is_ky_then_kx():
    x = np.array([1e8, 1.0, -1e8, 1.0], np.float32).reshape(1, 2, 2, 1)
    w = np.ones((1, 2, 2, 1), np.float32)
    out = np.empty((1, 1, 1, 1), np.float32)
    kd.depthwise_float(x, w, None, 1, 1, 1, 1, 1, 0, 0, -FLT_MAX, FLT_MAX, out)
    # (((0 + 1e8) + 1) + -1e8) + 1 = 1 in float32 (the first +1 is lost).
    assert out[0, 0, 0, 0] == 1.0


def _args(**over):
    a = dict(input=np.zeros((1, 4, 4, 3), np.uint8), filter=np.zeros((1, 3, 3, 6), np.uint8),
             bias=np.zeros(6, np.int32), depth_multiplier=2, input_offset=0, filter_offset=0,
             stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, pad_top=1, pad_left=1,
             out=np.zeros((1, 4, 4, 6), np.int32))
    a.update(over)
    return a


BAD = [
    dict(depth_multiplier=0),
    dict(depth_multiplier=3),
    dict(filter=np.zeros((2, 3, 3, 6), np.uint8)),
    dict(filter=np.zeros((1, 3, 3, 5), np.uint8)),
    dict(out=np.zeros((1, 4, 4, 5), np.int32)),
    dict(out=np.zeros((2, 4, 4, 6), np.int32)),
    dict(bias=np.zeros(5, np.int32)),
    dict(stride_h=0), dict(stride_w=0), dict(dilation_h=0), dict(dilation_w=-1),
    dict(pad_top=-1), dict(pad_left=-1),
]


@pytest.mark.parametrize("over", BAD + [dict(input_offset=40000), dict(filter_offset=-40000)])
def test_depthwise_int_rejects_bad_arguments(over):
    with pytest.raises(ValueError):
        kd.depthwise_int(**_args(**over))


@pytest.mark.parametrize("over", BAD)
def test_depthwise_float_rejects_bad_arguments(over):
    a = _args(**over)
    del a["input_offset"], a["filter_offset"]
    for key in ("input", "filter", "bias", "out"):
        a[key] = a[key].astype(np.float32)
    with pytest.raises(ValueError):
        kd.depthwise_float(**a, act_min=0.0, act_max=6.0)


@pytest.mark.parametrize("over", [
    dict(input=np.zeros((1, 4, 4, 3), np.float32)),
    dict(out=np.zeros((1, 4, 4, 6), np.float32)),
    dict(filter=np.zeros((1, 3, 3, 6), np.uint8)[..., ::-1]),
])
def test_depthwise_int_rejects_bad_types(over):
    with pytest.raises((TypeError, ValueError)):
        kd.depthwise_int(**_args(**over))
