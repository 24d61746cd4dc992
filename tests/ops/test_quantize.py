"""QUANTIZE and DEQUANTIZE against LiteRT BUILTIN_REF on randomized single-op models."""
import numpy as np
import pytest

from refnet import InvalidModelError, OpExecutionError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from refnet.litert import LiteRTCrashed
from refnet.profile import QUANTIZE_8BIT_TO_INT16, get_profile
from support import assert_bit_exact, random_input, run_refnet, sweep_build

QUANTIZED = [np.int8, np.uint8, np.int16]


def random_shape(rng, max_rank=5, max_elements=2000):
    rank = int(rng.integers(0, max_rank + 1))
    shape = [int(rng.integers(1, 8)) for _ in range(rank)]
    while int(np.prod(shape)) > max_elements:
        shape[int(rng.integers(0, rank))] = 1
    return tuple(shape)


def random_scale(rng, lo=-8.0, hi=4.0):
    return float(np.float32(10.0 ** rng.uniform(lo, hi)))


def random_zero_point(rng, dtype):
    if dtype == np.int16:
        return 0 if rng.random() < 0.7 else int(rng.integers(-32768, 32768))
    info = np.iinfo(dtype)
    r = rng.random()
    if r < 0.2:
        return int(info.min)
    if r < 0.4:
        return int(info.max)
    return int(rng.integers(info.min, int(info.max) + 1))


def float_values(rng, shape, scale):
    """Values around the quantized range of `scale`, with exact halves, ties and specials."""
    x = (rng.standard_normal(shape) * scale * 10.0 ** rng.uniform(0, 3)).astype(np.float32)
    flat = x.reshape(-1)
    if flat.size and rng.random() < 0.5:  # exact multiples of scale/2: the rounding ties
        k = int(rng.integers(1, flat.size + 1))
        idx = rng.choice(flat.size, k, replace=False)
        flat[idx] = (rng.integers(-600, 600, k) + 0.5).astype(np.float32) * np.float32(scale)
    if flat.size and rng.random() < 0.3:
        specials = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 0.0, -0.0, 1e-45], np.float32)
        k = int(rng.integers(1, min(flat.size, 8) + 1))
        flat[rng.choice(flat.size, k, replace=False)] = rng.choice(specials, k)
    return x


def assert_requantize(model, x, path, out_dtype):
    """assert_bit_exact, except under a swept build whose profile has no 8-bit -> int16 QUANTIZE:
    there refnet refuses with a typed error and the build's LiteRT fails to prepare the model."""
    sweep = sweep_build()
    if sweep is not None and np.dtype(x.dtype).itemsize == 1 and np.dtype(out_dtype) == np.int16 and \
            QUANTIZE_8BIT_TO_INT16 in get_profile(f"{path}@{sweep[0]}").undefined:
        with pytest.raises(UnsupportedOpError, match="rejects a QUANTIZE"):
            run_refnet(model, [x], profile=f"{path}@{sweep[0]}")
        with pytest.raises(LiteRTCrashed, match="failed to prepare"):
            sweep[1].run(model, [x], path)
        return
    assert_bit_exact(model, [x], path=path)


def build(kind, in_dtype, out_dtype, shape, in_quant=None, out_quant=None, constant=None):
    mb = ModelBuilder()
    iq = in_quant or {}
    if constant is not None:
        x = mb.tensor("c", shape, in_dtype, data=constant, **iq)
    else:
        x = mb.input("x", shape, in_dtype, **iq)
    y = mb.tensor("y", shape, out_dtype, **(out_quant or {}))
    mb.outputs.append(y)
    mb.op(kind, [x], [y])
    return mb.build()


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_quantize_float_per_tensor(dtype):
    rng = np.random.default_rng(10 + QUANTIZED.index(dtype))
    for _ in range(400):
        shape = random_shape(rng)
        scale = random_scale(rng, -40, 30) if rng.random() < 0.1 else random_scale(rng)
        zp = random_zero_point(rng, dtype)
        model = build("QUANTIZE", np.float32, dtype, shape,
                      out_quant=dict(scale=scale, zero_point=zp))
        assert_bit_exact(model, [float_values(rng, shape, scale)])


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_quantize_float_per_channel(dtype):
    rng = np.random.default_rng(20 + QUANTIZED.index(dtype))
    for _ in range(150):
        shape = random_shape(rng, max_rank=4)
        if not shape:
            shape = (3,)
        axis = int(rng.integers(0, len(shape)))
        if shape[axis] == 1:
            shape = shape[:axis] + (3,) + shape[axis + 1:]
        scales = [random_scale(rng) for _ in range(shape[axis])]
        zps = [random_zero_point(rng, dtype) for _ in range(shape[axis])]
        model = build("QUANTIZE", np.float32, dtype, shape,
                      out_quant=dict(scale=scales, zero_point=zps, axis=axis))
        assert_bit_exact(model, [float_values(rng, shape, float(np.median(scales)))])


REQUANTIZE = [(a, b) for a in (np.int8, np.uint8) for b in QUANTIZED] + [
    (np.int16, np.int8), (np.int16, np.int16)]


@pytest.mark.parametrize("path", ["reference", "optimized", "xnnpack"])
@pytest.mark.parametrize("in_dtype,out_dtype", REQUANTIZE)
def test_requantize(in_dtype, out_dtype, path):
    """Every path: the optimized 8-bit -> 8-bit kernel rounds ties up in whole blocks of 16
    (Form.ROUNDING_TIES_UP_ELEMENTS_16); XNNPACK converts int8 -> int8 and uint8 -> uint8 within its
    scale ratios (Form.QUANTIZE_VCVT) and leaves the rest to LiteRT's kernels."""
    rng = np.random.default_rng(30 + REQUANTIZE.index((in_dtype, out_dtype)))
    for i in range(150):
        shape = random_shape(rng)
        s_in = random_scale(rng)
        r = rng.random()
        if r < 0.2:
            s_out = s_in  # same scale: the int8 <-> uint8 shift-by-128 fast path when zp differ by 128
        else:  # ratios from 2**-40 to 2**30.9 (left shifts that wrap at 32 bits)
            s_out = float(np.float32(s_in / 2.0 ** rng.uniform(-40, 30.9 if r < 0.6 else 4)))
        zp_in, zp_out = random_zero_point(rng, in_dtype), random_zero_point(rng, out_dtype)
        if in_dtype == out_dtype == np.int16:
            zp_in = zp_out = 0
        elif r < 0.2 and {np.dtype(in_dtype), np.dtype(out_dtype)} == {np.dtype(np.int8), np.dtype(np.uint8)}:
            zp_in = int(rng.integers(-128, 128)) if in_dtype == np.int8 else int(rng.integers(0, 256))
            zp_out = zp_in + 128 if in_dtype == np.int8 else zp_in - 128
        model = build("QUANTIZE", in_dtype, out_dtype, shape,
                      in_quant=dict(scale=s_in, zero_point=zp_in),
                      out_quant=dict(scale=s_out, zero_point=zp_out))
        assert_requantize(model, random_input(shape, in_dtype, rng), path, out_dtype)


@pytest.mark.parametrize("path", ["reference", "optimized", "xnnpack"])
@pytest.mark.parametrize("in_dtype,out_dtype", REQUANTIZE)
def test_requantize_ties(in_dtype, out_dtype, path):
    """Tie-rich requantizations: power-of-two scale ratios (every odd centred input is a tie of the
    final shift for 2**-1, ...), ratios at and just past XNNPACK's bounds 1/256 and 128, and sizes
    around the 16-element vector blocks."""
    rng = np.random.default_rng(70 + REQUANTIZE.index((in_dtype, out_dtype)) + 20 * ["reference", "optimized",
                                                                                    "xnnpack"].index(path))
    ratios = [2.0 ** -k for k in (1, 2, 3, 5, 8)] + [1.0, 3.0 / 8.0, 2.0 ** -8 * 0.999, 128.0, 128.5, 1.5 * 2 ** -9]
    for i, ratio in enumerate(ratios):
        for n in (7, 16, 17, 33, 300):
            s_in = random_scale(rng)
            s_out = float(np.float32(s_in / ratio))
            if in_dtype == out_dtype == np.int16:
                zp_in = zp_out = 0
            else:
                zp_in, zp_out = random_zero_point(rng, in_dtype), random_zero_point(rng, out_dtype)
            info = np.iinfo(in_dtype)
            x = np.resize(np.arange(info.min, int(info.max) + 1), n) if i % 2 else random_input((n,), in_dtype, rng)
            model = build("QUANTIZE", in_dtype, out_dtype, (n,), in_quant=dict(scale=s_in, zero_point=zp_in),
                          out_quant=dict(scale=s_out, zero_point=zp_out))
            assert_requantize(model, np.asarray(x, in_dtype), path, out_dtype)


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_dequantize(dtype):
    rng = np.random.default_rng(40 + QUANTIZED.index(dtype))
    for i in range(300):
        shape = random_shape(rng, max_rank=4)
        per_channel = dtype != np.int16 and len(shape) > 0 and rng.random() < 0.4
        if per_channel:
            axis = int(rng.integers(0, len(shape)))
            quant = dict(scale=[random_scale(rng, -40, 37) for _ in range(shape[axis])],
                         zero_point=[random_zero_point(rng, dtype) for _ in range(shape[axis])],
                         axis=axis)
            if shape[axis] == 1:  # one scale is per-tensor: keep it so
                quant = dict(scale=quant["scale"][0], zero_point=quant["zero_point"][0])
        else:
            quant = dict(scale=random_scale(rng, -40, 37) if i % 4 == 0 else random_scale(rng),
                         zero_point=0 if dtype == np.int16 else random_zero_point(rng, dtype))
        value = random_input(shape, dtype, rng)
        if rng.random() < 0.2:  # constant weights, dequantized once (LiteRT persists them)
            assert_bit_exact(build("DEQUANTIZE", dtype, np.float32, shape, in_quant=quant,
                                   constant=value), [])
        else:
            assert_bit_exact(build("DEQUANTIZE", dtype, np.float32, shape, in_quant=quant), [value])


@pytest.mark.parametrize("path", ["optimized", "xnnpack"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_dequantize_on_every_path(dtype, path):
    """Per-tensor int8/uint8 DEQUANTIZE as each path computes it (the optimized kernel multiplies
    then adds in blocks of 8: Form.DEQUANTIZE_MUL_ADD_8); sizes around the block, constants too."""
    rng = np.random.default_rng(60 + (dtype == np.uint8) + 2 * (path == "xnnpack"))
    for i, n in enumerate([1, 7, 8, 9, 15, 16, 24, 37, 64, 375 * 6, 3000]):
        shape = (1, n)
        quant = dict(scale=random_scale(rng), zero_point=random_zero_point(rng, dtype))
        value = random_input(shape, dtype, rng)
        constant = i % 3 == 2 and path != "xnnpack"  # LiteRT's XNNPACK fails to set up a constant-only graph
        model = build("DEQUANTIZE", dtype, np.float32, shape, in_quant=quant, constant=value if constant else None)
        assert_bit_exact(model, [] if constant else [value], path=path)


def test_dequantize_float16():
    rng = np.random.default_rng(50)
    every_half = np.arange(65536, dtype=np.uint16).view(np.float16)  # NaNs, infs, subnormals
    assert_bit_exact(build("DEQUANTIZE", np.float16, np.float32, (65536,)), [every_half])
    for _ in range(10):
        shape = random_shape(rng)
        value = (rng.standard_normal(shape) * 100).astype(np.float16)
        assert_bit_exact(build("DEQUANTIZE", np.float16, np.float32, shape, constant=value), [])


def test_quantize_non_finite_like_x86():
    """NaN, +-inf and out-of-int32 values convert to INT32_MIN before the wrapping zero-point
    add (x86-64 cvttss2si): qmin for zp >= 0, qmax for zp < 0 -- LiteRT's answer here."""
    x = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 2.5, -2.5], np.float32)
    for zp, expected in ((-5, [127, 127, 127, 127, 127, -2, -8]), (5, [-128] * 5 + [8, 2])):
        model = build("QUANTIZE", np.float32, np.int8, x.shape, out_quant=dict(scale=1.0, zero_point=zp))
        assert run_refnet(model, [x])[1].tolist() == expected
        assert_bit_exact(model, [x])


def test_requantize_multiplier_beyond_int32_shift():
    model = build("QUANTIZE", np.int8, np.int8, (4,), in_quant=dict(scale=1.0, zero_point=0),
                  out_quant=dict(scale=1e-10, zero_point=0))
    with pytest.raises(OpExecutionError, match="left shift"):
        run_refnet(model, [np.zeros(4, np.int8)])


def test_bad_models():
    with pytest.raises(InvalidModelError, match="no quantization"):
        run_refnet(build("QUANTIZE", np.float32, np.int8, (2,)), [np.zeros(2, np.float32)])
    with pytest.raises(UnsupportedOpError):
        run_refnet(build("QUANTIZE", np.float32, np.int32, (2,), out_quant=dict(scale=1.0)),
                   [np.zeros(2, np.float32)])
    with pytest.raises(UnsupportedOpError):
        run_refnet(build("QUANTIZE", np.int16, np.uint8, (2,), in_quant=dict(scale=1.0),
                         out_quant=dict(scale=1.0)), [np.zeros(2, np.int16)])
    with pytest.raises(InvalidModelError, match="zero point 0"):
        run_refnet(build("DEQUANTIZE", np.int16, np.float32, (2,),
                         in_quant=dict(scale=1.0, zero_point=3)), [np.zeros(2, np.int16)])
    with pytest.raises(InvalidModelError, match="differ"):
        mb = ModelBuilder()
        x = mb.input("x", (2,), np.float32)
        y = mb.tensor("y", (3,), np.int8, scale=1.0, zero_point=0)
        mb.outputs.append(y)
        mb.op("QUANTIZE", [x], [y])
        run_refnet(mb.build(), [np.zeros(2, np.float32)])
