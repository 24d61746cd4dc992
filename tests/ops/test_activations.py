"""RELU, RELU6, RELU_N1_TO_1, LOGISTIC, TANH and HARD_SWISH against LiteRT (BUILTIN_REF; TANH and int16
LOGISTIC on every CPU path); libm expf."""
import ctypes
import ctypes.util

import numpy as np
import pytest

from refnet import InvalidModelError, UnsupportedOpError
from refnet.ops.activations import libm_expf
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet
from refnet.bits import same_bits
from refnet.litert import run_litert

QUANTIZED = [np.int8, np.uint8]


def random_shape(rng, max_rank=5, max_elements=3000):
    rank = int(rng.integers(0, max_rank + 1))
    shape = [int(rng.integers(1, 9)) for _ in range(rank)]
    while int(np.prod(shape)) > max_elements:
        shape[int(rng.integers(0, rank))] = 1
    return tuple(shape)


def random_scale(rng, lo=-5.0, hi=2.0):
    return float(np.float32(10.0 ** rng.uniform(lo, hi)))


def random_zero_point(rng, dtype):
    info = np.iinfo(dtype)
    r = rng.random()
    if r < 0.2:
        return int(info.min)
    if r < 0.4:
        return int(info.max)
    return int(rng.integers(info.min, int(info.max) + 1))


def float_values(rng, shape, spread=None):
    spread = 10.0 ** rng.uniform(-2, 2) if spread is None else spread
    x = (rng.standard_normal(shape) * spread).astype(np.float32)
    flat = x.reshape(-1)
    if flat.size and rng.random() < 0.4:
        specials = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 0.0, -0.0, 6.0, -1.0, 1.0, -3.0,
                             3.0, -9.0, -9.000001, 16.619047, 16.61905, 88.8, -87.5, -104.0],
                            np.float32)
        k = int(rng.integers(1, min(flat.size, 12) + 1))
        flat[rng.choice(flat.size, k, replace=False)] = rng.choice(specials, k)
    return x


def build(kind, dtype, shape, in_quant=None, out_quant=None):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, **(in_quant or {}))
    y = mb.tensor("y", shape, dtype, **(out_quant or {}))
    mb.outputs.append(y)
    mb.op(kind, [x], [y])
    return mb.build()


# --- libm expf --------------------------------------------------------------------------------

def test_libm_expf_matches_libm():
    """The float64 shortcut agrees with libm's expf on millions of inputs, specials included."""
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.uniform(-105, 90, 300_000).astype(np.float32),
        (rng.standard_normal(200_000) * 3).astype(np.float32),
        rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.array([0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.72284, -103.97208, -87.33655,
                  1e-30, -1e-30], np.float32)])
    ours = libm_expf(x)
    sample = np.arange(0, x.size, 7)  # libm itself on a subsample (ctypes is slow)
    theirs = np.array([libm.expf(float(v)) for v in x[sample]], np.float32)
    assert same_bits(ours[sample].view(np.uint32), theirs.view(np.uint32))
    # where the shortcut and np.exp(float64) rounding disagree, libm was asked: check them all
    with np.errstate(all="ignore"):
        plain = np.exp(x.astype(np.float64)).astype(np.float32)
    differ = np.flatnonzero(plain.view(np.uint32) != ours.view(np.uint32))
    for i in differ:
        assert ours[i].view(np.uint32) == np.float32(libm.expf(float(x[i]))).view(np.uint32)


# --- RELU family ------------------------------------------------------------------------------

RELUS = ["RELU", "RELU6", "RELU_N1_TO_1"]


@pytest.mark.parametrize("kind", RELUS)
def test_relu_float32(kind):
    rng = np.random.default_rng(1 + RELUS.index(kind))
    for _ in range(100):
        shape = random_shape(rng)
        assert_bit_exact(build(kind, np.float32, shape), [float_values(rng, shape)])


# LiteRT has no int16 RELU_N1_TO_1, so that pair is not a case.
@pytest.mark.parametrize("kind,dtype", [(k, d) for k in RELUS for d in QUANTIZED + [np.int16]
                                        if not (k == "RELU_N1_TO_1" and d == np.int16)])
def test_relu_quantized(kind, dtype):
    rng = np.random.default_rng(10 + RELUS.index(kind) + 3 * [np.int8, np.uint8, np.int16].index(dtype))
    for i in range(200):
        shape = random_shape(rng)
        s_in = random_scale(rng)
        r = rng.random()
        if r < 0.15:
            s_out = s_in  # the usual case: same scale, multiplier exactly 1
        elif r < 0.25:  # tiny output scale: 6 / s_out beyond int32 (x86 conversion overflow)
            s_out = float(np.float32(10.0 ** rng.uniform(-14, -9)))
            s_in = float(np.float32(s_out * 2.0 ** rng.uniform(-10, 20)))
        else:  # ratios 2**-36 .. 2**30.9: right shifts to wrapping left shifts
            s_out = float(np.float32(s_in / 2.0 ** rng.uniform(-36, 30.9 if r < 0.5 else 3)))
        zp_in = 0 if dtype == np.int16 else random_zero_point(rng, dtype)
        zp_out = 0 if dtype == np.int16 else random_zero_point(rng, dtype)
        model = build(kind, dtype, shape, dict(scale=s_in, zero_point=zp_in),
                      dict(scale=s_out, zero_point=zp_out))
        assert_bit_exact(model, [random_input(shape, dtype, rng)])


# --- LOGISTIC ---------------------------------------------------------------------------------

def test_logistic_float32_random():
    rng = np.random.default_rng(20)
    for _ in range(100):
        shape = random_shape(rng)
        assert_bit_exact(build("LOGISTIC", np.float32, shape), [float_values(rng, shape, 10.0)])


def test_logistic_float32_dense_sweep():
    """Every float32 in [-20, 20] with a stride: both cutoffs and the whole curve."""
    negative = np.arange(0x80000000, int(np.float32(-20).view(np.uint32)), 331,
                         dtype=np.uint32).view(np.float32)
    positive = np.arange(0, int(np.float32(20).view(np.uint32)), 331, dtype=np.uint32).view(np.float32)
    x = np.concatenate([negative, positive, np.float32([-9, 16.619047164916992188])])
    x = np.concatenate([x, np.nextafter(x[-2:], np.float32(np.inf)),
                        np.nextafter(x[-2:], np.float32(-np.inf))])
    assert_bit_exact(build("LOGISTIC", np.float32, x.shape), [x])


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_logistic_quantized(dtype):
    rng = np.random.default_rng(21 + QUANTIZED.index(dtype))
    every_value = np.arange(np.iinfo(dtype).min, int(np.iinfo(dtype).max) + 1).astype(dtype)
    for i in range(200):
        s_in = random_scale(rng, -4, 3) if i % 10 else random_scale(rng, -40, 37)
        zp_in, zp_out = random_zero_point(rng, dtype), random_zero_point(rng, dtype)
        model = build("LOGISTIC", dtype, every_value.shape, dict(scale=s_in, zero_point=zp_in),
                      dict(scale=1 / 256, zero_point=zp_out))
        assert_bit_exact(model, [every_value])  # the whole table


def test_logistic_output_scale_must_be_1_over_256():
    model = build("LOGISTIC", np.int8, (4,), dict(scale=0.1, zero_point=0),
                  dict(scale=1 / 255, zero_point=-128))
    with pytest.raises(InvalidModelError, match="1/256"):
        run_refnet(model, [np.zeros(4, np.int8)])


# --- HARD_SWISH -------------------------------------------------------------------------------

def test_hard_swish_float32():
    rng = np.random.default_rng(30)
    for _ in range(100):
        shape = random_shape(rng)
        assert_bit_exact(build("HARD_SWISH", np.float32, shape), [float_values(rng, shape, 4.0)])


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_hard_swish_quantized(dtype):
    rng = np.random.default_rng(31 + QUANTIZED.index(dtype))
    every_value = np.arange(np.iinfo(dtype).min, int(np.iinfo(dtype).max) + 1).astype(dtype)
    done = 0
    while done < 300:
        s_in = random_scale(rng, -4, 2.5)
        s_out = float(np.float32(s_in * 10.0 ** rng.uniform(-2.1, 1)))
        if s_in / (128 * s_out) >= 0.99:  # LiteRT refuses a positive output exponent
            continue
        zp_in, zp_out = random_zero_point(rng, dtype), random_zero_point(rng, dtype)
        model = build("HARD_SWISH", dtype, every_value.shape, dict(scale=s_in, zero_point=zp_in),
                      dict(scale=s_out, zero_point=zp_out))
        assert_bit_exact(model, [every_value])
        done += 1


def test_hard_swish_output_exponent_refused():
    model = build("HARD_SWISH", np.int8, (4,), dict(scale=1.0, zero_point=0),
                  dict(scale=1e-4, zero_point=0))
    with pytest.raises(InvalidModelError):
        run_refnet(model, [np.zeros(4, np.int8)])


def test_bad_models():
    with pytest.raises(UnsupportedOpError):
        run_refnet(build("LOGISTIC", np.int32, (2,)), [np.zeros(2, np.int32)])
    with pytest.raises(InvalidModelError, match="no quantization"):
        run_refnet(build("RELU6", np.uint8, (2,)), [np.zeros(2, np.uint8)])
    mb = ModelBuilder()
    x = mb.input("x", (2,), np.float32)
    y = mb.tensor("y", (2,), np.int8, scale=1.0, zero_point=0)
    mb.outputs.append(y)
    mb.op("RELU", [x], [y])
    with pytest.raises(InvalidModelError, match="differ"):
        run_refnet(mb.build(), [np.zeros(2, np.float32)])


# --- TANH, and LOGISTIC int16 -----------------------------------------------------------------

PATHS = ["reference", "optimized", "xnnpack"]


def test_tanh_float32_dense_sweep():
    """Every float32 in [-12, 12] with a stride, and specials: libm's tanhf, bit for bit. LiteRT's
    optimized (Eigen) and XNNPACK float32 TANH are approximations refnet does not model: they
    differ from tanhf in ~60 % of these elements (measured), so only the reference path is a case."""
    negative = np.arange(0x80000000, int(np.float32(-12).view(np.uint32)), 4099,
                         dtype=np.uint32).view(np.float32)
    positive = np.arange(0, int(np.float32(12).view(np.uint32)), 4099, dtype=np.uint32).view(np.float32)
    specials = np.float32([0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-40, -1e-40, 3e38, -3e38, 9.0, 9.01])
    x = np.concatenate([negative, positive, specials])
    assert_bit_exact(build("TANH", np.float32, x.shape), [x])


def test_tanh_float32_random():
    rng = np.random.default_rng(40)
    for _ in range(30):
        shape = random_shape(rng)
        assert_bit_exact(build("TANH", np.float32, shape), [float_values(rng, shape, 3.0)])


TANH_8BIT = [(d, p) for d in QUANTIZED for p in PATHS]


@pytest.mark.parametrize("dtype,path", TANH_8BIT, ids=[f"{np.dtype(d).name}-{p}" for d, p in TANH_8BIT])
def test_tanh_quantized(dtype, path):
    """Every input value under random scales and zero points (the whole 256-entry table), and the
    usual output quantization 1/128 (XNNPACK's own QS8/QU8 tanh would need it)."""
    rng = np.random.default_rng(41 + TANH_8BIT.index((dtype, path)))
    every_value = np.arange(np.iinfo(dtype).min, int(np.iinfo(dtype).max) + 1).astype(dtype)
    for i in range(40):
        s_in = random_scale(rng, -4, 1) if i % 10 else random_scale(rng, -40, 37)
        zp_in = random_zero_point(rng, dtype)
        if i % 2:
            out_q = dict(scale=1 / 128, zero_point=0 if dtype == np.int8 else 128)
        else:
            out_q = dict(scale=random_scale(rng, -3, 0), zero_point=random_zero_point(rng, dtype))
        model = build("TANH", dtype, every_value.shape, dict(scale=s_in, zero_point=zp_in), out_q)
        assert_bit_exact(model, [every_value], path=path)


EVERY_INT16 = np.arange(-32768, 32768).astype(np.int16)
# 2**-12 and 2**-11 are the power-of-two cases (TANH both, LOGISTIC 2**-12: on the optimized path
# gemmlowp's int16 fixed point, Form.SIGMOID_INT16_GEMMLOWP); the others go through the multiplier,
# from a left shift of 0 (large scales) to 31 (tiny ones). LiteRT's float32 log2 test accepts a
# power of two within 1e-3 in log2: 2**-12 * 1.0005 is one (0.00072), 2**-12 * 1.0008 not (0.00115).
INT16_SCALES = [2.0**-12, 2.0**-11, 2.0**-12 * 1.0005, 2.0**-11 * 0.9994, 2.0**-12 * 1.0008,
                2.0**-13, 2.0**-10, 3.1e-4, 1e-3, 0.0123, 0.4, 1.0, 7.5, 3e-7, 1e-9]
SIGMOIDS_INT16 = [(k, p) for k in ("LOGISTIC", "TANH") for p in PATHS]


@pytest.mark.parametrize("kind,path", SIGMOIDS_INT16, ids=[f"{k}-{p}" for k, p in SIGMOIDS_INT16])
def test_sigmoid_int16_every_input(kind, path):
    """All 65536 int16 inputs under each input scale (XNNPACK does not take int16: its path runs
    LiteRT's optimized kernel); a tail of 1003 elements for the vector blocks' remainder."""
    out_q = dict(scale=2.0**-15, zero_point=0)
    for s_in in INT16_SCALES:
        model = build(kind, np.int16, EVERY_INT16.shape, dict(scale=s_in, zero_point=0), out_q)
        assert_bit_exact(model, [EVERY_INT16], path=path)
    tail = EVERY_INT16[::65]
    model = build(kind, np.int16, tail.shape, dict(scale=2.0**-12, zero_point=0), out_q)
    assert_bit_exact(model, [tail], path=path)


def test_sigmoid_int16_random_shapes():
    rng = np.random.default_rng(45)
    for i in range(30):
        kind = ("LOGISTIC", "TANH")[i % 2]
        shape = random_shape(rng)
        s_in = float(np.float32(10.0 ** rng.uniform(-6, 1)))
        model = build(kind, np.int16, shape, dict(scale=s_in, zero_point=0), dict(scale=2.0**-15, zero_point=0))
        assert_bit_exact(model, [random_input(shape, np.int16, rng)])


@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_sigmoid_int16_quantization_refused(kind):
    x = np.zeros(4, np.int16)
    for in_q, out_q in [(dict(scale=1e-3, zero_point=1), dict(scale=2.0**-15, zero_point=0)),
                        (dict(scale=1e-3, zero_point=0), dict(scale=2.0**-15, zero_point=3)),
                        (dict(scale=1e-3, zero_point=0), dict(scale=2.0**-14, zero_point=0)),
                        (dict(scale=1e-3, zero_point=0), dict(scale=1e-4, zero_point=0))]:
        with pytest.raises(InvalidModelError):
            run_refnet(build(kind, np.int16, (4,), in_q, out_q), [x])
        with pytest.raises(RuntimeError):  # LiteRT's Prepare refuses them too
            run_litert(build(kind, np.int16, (4,), in_q, out_q), [x])
