"""LEAKY_RELU and PRELU against LiteRT on single-op models, on each CPU path."""
import numpy as np
import pytest

from refnet import InvalidModelError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

PATHS = ["reference", "optimized", "xnnpack"]
# LiteRT's XNNPACK float32 LEAKY_RELU is x < 0 ? x * alpha : x with subnormal inputs read as zero
# (measured: -1e-40 passes unchanged, +-0 under a negative alpha keep their sign); refnet does not
# model XNNPACK's float32 kernels (README, "Profiles"), so float32 LEAKY_RELU checks the other two.
FLOAT_LEAKY_PATHS = ["reference", "optimized"]
QUANTIZED = [np.int8, np.uint8]


def random_shape(rng, max_rank=4, max_elements=2000):
    rank = int(rng.integers(1, max_rank + 1))
    shape = [int(rng.integers(1, 9)) for _ in range(rank)]
    while int(np.prod(shape)) > max_elements:
        shape[int(rng.integers(0, rank))] = 1
    return tuple(shape)


def float_values(rng, shape, with_subnormals=True):
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 3e38, -3e38] + ([1e-40, -1e-40] if with_subnormals else [])
    flat = x.reshape(-1)
    k = min(flat.size, len(specials))
    flat[rng.choice(flat.size, k, replace=False)] = np.float32(specials[:k])
    return x


def every_value(dtype):
    info = np.iinfo(dtype)
    return np.arange(int(info.min), int(info.max) + 1).astype(dtype)


def random_zero_point(rng, dtype):
    info = np.iinfo(dtype)
    return int(rng.integers(info.min, int(info.max) + 1))


def leaky(dtype, shape, alpha, in_q=None, out_q=None):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, **(in_q or {}))
    y = mb.tensor("y", shape, dtype, **(out_q or {}))
    mb.outputs.append(y)
    mb.op("LEAKY_RELU", [x], [y], alpha=float(alpha))
    return mb.build()


def prelu(dtype, shape, alpha_shape, alpha=None, in_q=None, alpha_q=None, out_q=None):
    """alpha given: a constant tensor (as converters write it); else a second model input."""
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, **(in_q or {}))
    if alpha is None:
        a = mb.input("alpha", alpha_shape, dtype, **(alpha_q or {}))
    else:
        a = mb.tensor("alpha", alpha_shape, dtype, data=alpha, **(alpha_q or {}))
    y = mb.tensor("y", shape, dtype, **(out_q or {}))
    mb.outputs.append(y)
    mb.op("PRELU", [x, a], [y])
    return mb.build()


# --- LEAKY_RELU -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", FLOAT_LEAKY_PATHS)
def test_leaky_relu_float32(path):
    rng = np.random.default_rng(1 + PATHS.index(path))
    for i in range(40):
        shape = random_shape(rng)
        alpha = np.float32([0.2, -0.5, 0.0, 1.7, 1e-3, -3.0][i % 6])
        assert_bit_exact(leaky(np.float32, shape, alpha), [float_values(rng, shape)], path=path)


def test_leaky_relu_float32_xnnpack_without_specials():
    """XNNPACK's float32 LEAKY_RELU on normal values and a positive alpha equals x * alpha."""
    rng = np.random.default_rng(3)
    for i in range(20):
        shape = random_shape(rng)
        x = (rng.standard_normal(shape) * 10.0).astype(np.float32)
        assert_bit_exact(leaky(np.float32, shape, [0.2, 0.01, 1.5][i % 3]), [x], path="xnnpack")


LEAKY_Q = [(d, p) for d in QUANTIZED + [np.int16] for p in PATHS]


@pytest.mark.parametrize("dtype,path", LEAKY_Q, ids=[f"{np.dtype(d).name}-{p}" for d, p in LEAKY_Q])
def test_leaky_relu_quantized(dtype, path):
    """Every input value; alphas of both signs; scale ratios inside and outside the range XNNPACK's
    delegate takes (outside, LiteRT's own kernel runs the op). int16 needs zero points 0."""
    rng = np.random.default_rng(10 + LEAKY_Q.index((dtype, path)))
    x = every_value(dtype)
    cases = 40 if dtype != np.int16 else 12
    for i in range(cases):
        alpha = float(np.float32(rng.choice([rng.uniform(-3, 3), rng.uniform(0, 0.5), -rng.uniform(0, 0.5)])))
        if i % 7 == 0:
            alpha = float(np.float32(rng.choice([0.0, 1e-3, 300.0, -200.0])))
        s_in = float(np.float32(10.0 ** rng.uniform(-4, 0)))
        ratio = 10.0 ** rng.uniform(-3.5, 3) if i % 3 == 0 else 10.0 ** rng.uniform(-1, 1)
        s_out = float(np.float32(s_in / ratio))
        zp_in = 0 if dtype == np.int16 else random_zero_point(rng, dtype)
        zp_out = 0 if dtype == np.int16 else random_zero_point(rng, dtype)
        model = leaky(dtype, x.shape, alpha, dict(scale=s_in, zero_point=zp_in),
                      dict(scale=s_out, zero_point=zp_out))
        assert_bit_exact(model, [x], path=path)


def test_leaky_relu_random_shapes():
    rng = np.random.default_rng(20)
    for i in range(20):
        dtype = (np.int8, np.uint8, np.int16)[i % 3]
        shape = random_shape(rng)
        zp = 0 if dtype == np.int16 else random_zero_point(rng, dtype)
        model = leaky(dtype, shape, -0.3 if i % 2 else 0.1, dict(scale=0.02, zero_point=zp),
                      dict(scale=0.015, zero_point=zp))
        assert_bit_exact(model, [random_input(shape, dtype, rng)], path=PATHS[i % 3])


def test_leaky_relu_bad_models():
    with pytest.raises(InvalidModelError, match="zero points 0"):
        run_refnet(leaky(np.int16, (2,), 0.1, dict(scale=0.1, zero_point=1), dict(scale=0.1, zero_point=0)),
                   [np.zeros(2, np.int16)])
    with pytest.raises(UnsupportedOpError):
        run_refnet(leaky(np.int32, (2,), 0.1), [np.zeros(2, np.int32)])
    with pytest.raises(InvalidModelError, match="no quantization"):
        run_refnet(leaky(np.int8, (2,), 0.1), [np.zeros(2, np.int8)])


# --- PRELU ------------------------------------------------------------------------------------

def alpha_shape_for(rng, shape):
    """A shape that broadcasts to `shape`: its trailing axes, some of them 1 (per-channel alpha
    is the common case)."""
    tail = shape[int(rng.integers(0, len(shape))):]
    return tuple(d if rng.random() < 0.6 else 1 for d in tail) or (1,)


@pytest.mark.parametrize("path", PATHS)
def test_prelu_float32(path):
    rng = np.random.default_rng(30 + PATHS.index(path))
    for i in range(30):
        shape = random_shape(rng)
        a_shape = alpha_shape_for(rng, shape)
        alpha = (rng.standard_normal(a_shape) * 0.5).astype(np.float32)
        # XNNPACK's float32 kernels treat subnormals their own way (not modelled)
        x = float_values(rng, shape, with_subnormals=path != "xnnpack")
        if i % 2:
            assert_bit_exact(prelu(np.float32, shape, a_shape, alpha=alpha), [x], path=path)
        else:
            assert_bit_exact(prelu(np.float32, shape, a_shape), [x, alpha], path=path)


PRELU_Q = [(d, p) for d in QUANTIZED for p in PATHS]


@pytest.mark.parametrize("dtype,path", PRELU_Q, ids=[f"{np.dtype(d).name}-{p}" for d, p in PRELU_Q])
def test_prelu_quantized(dtype, path):
    """Every input value against every alpha value (a 256 x 256 grid: alpha broadcast along the
    first axis), then random broadcast shapes; random scales and zero points."""
    rng = np.random.default_rng(40 + PRELU_Q.index((dtype, path)))
    values = every_value(dtype)
    for i in range(16):
        s_in, s_alpha = (float(np.float32(10.0 ** rng.uniform(-3, 0))) for _ in range(2))
        s_out = float(np.float32(s_in * 10.0 ** rng.uniform(-1.5, 1.5)))
        q = [dict(scale=s, zero_point=random_zero_point(rng, dtype)) for s in (s_in, s_alpha, s_out)]
        if i < 4:
            x = np.repeat(values[:, None], 256, axis=1)
            alpha = values[None, :]
        else:
            shape = random_shape(rng)
            alpha = random_input(alpha_shape_for(rng, shape), dtype, rng)
            x = random_input(shape, dtype, rng)
        model = prelu(dtype, x.shape, alpha.shape, alpha=alpha if i % 2 else None, in_q=q[0],
                      alpha_q=q[1], out_q=q[2])
        assert_bit_exact(model, [x] if i % 2 else [x, alpha], path=path)


def test_prelu_bad_models():
    q = dict(scale=0.1, zero_point=0)
    with pytest.raises(InvalidModelError, match="broadcast"):
        run_refnet(prelu(np.float32, (2, 3), (4,)), [np.zeros((2, 3), np.float32), np.zeros(4, np.float32)])
    with pytest.raises(InvalidModelError, match="input's"):  # alpha may not grow the output
        run_refnet(prelu(np.float32, (1, 3), (2, 3)), [np.zeros((1, 3), np.float32), np.zeros((2, 3), np.float32)])
    with pytest.raises(UnsupportedOpError, match="int32"):
        run_refnet(prelu(np.int32, (2,), (2,)), [np.zeros(2, np.int32), np.zeros(2, np.int32)])
    with pytest.raises(InvalidModelError, match="no quantization"):
        run_refnet(prelu(np.int8, (2,), (2,), in_q=q, out_q=q), [np.zeros(2, np.int8), np.zeros(2, np.int8)])


@pytest.mark.parametrize("path", PATHS)
def test_prelu_float32_signed_zeros_and_nans(path):
    """-0 and NaNs against alphas of both signs (constant alpha: XNNPACK takes the op). On an
    x86-64 CPU without AVX-512F XNNPACK blends on the sign bit (Form.PRELU_SIGN_SELECT: -0 * alpha,
    a NaN with the sign bit clear unchanged, signalling ones too, as measured on such a CPU);
    signalling NaNs are left out elsewhere (not measured there)."""
    from refnet.ops.parametric_relu import _xnnpack_blends
    alpha = np.array([-0.5, 0.5, -0.0, 0.0, -2.0, 3.0, -1.0, 1.0], np.float32)
    nans = [0x7FC00002, 0xFFC00002] + ([0x7FA00001, 0xFFA00001] if _xnnpack_blends() else [0x7FC00003, 0xFFC00003])
    x = np.array([[-0.0] * 8, [0.0] * 8, [-1.0] * 8, [0.0] * 8], np.float32)
    x[3] = np.array(nans * 2, np.uint32).view(np.float32)
    assert_bit_exact(prelu(np.float32, (4, 8), (8,), alpha=alpha), [x], path=path)
