"""L2_NORMALIZATION against LiteRT on single-op models, on each CPU path (LiteRT's optimized kernel
and XNNPACK's path, which leaves the op to it, were measured to equal the reference)."""
import numpy as np
import pytest

from refnet import InvalidModelError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

PATHS = ["reference", "optimized", "xnnpack"]
OUTPUT_Q = {np.int8: dict(scale=1 / 128, zero_point=0), np.uint8: dict(scale=1 / 128, zero_point=128)}


def build(dtype, shape, in_q=None, out_q=None, **options):
    mb = ModelBuilder()
    x = mb.input("x", shape, dtype, **(in_q or {}))
    y = mb.tensor("y", shape, dtype, **(out_q or {}))
    mb.outputs.append(y)
    mb.op("L2_NORMALIZATION", [x], [y], **options)
    return mb.build()


def random_shape(rng):
    rank = int(rng.integers(1, 5))
    shape = [int(rng.integers(1, 6)) for _ in range(rank)]
    shape[-1] = int(rng.choice([1, 2, 3, 7, 16, 64, 333, 1280]))
    while int(np.prod(shape)) > 6000:
        shape[0] = 1
        shape[-1] = min(shape[-1], 1280)
        if int(np.prod(shape)) > 6000:
            shape = [1] * (rank - 1) + [shape[-1]]
    return tuple(shape)


@pytest.mark.parametrize("path", PATHS)
def test_l2_normalization_float32(path):
    """Random rows of every magnitude (sums that overflow to inf, that fall under epsilon, rows of
    zeros), specials in some rows. NaN rows: LiteRT's and refnet's NaN (x / NaN) have one payload."""
    rng = np.random.default_rng(1 + PATHS.index(path))
    for i in range(40):
        shape = random_shape(rng)
        x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-25, 20)).astype(np.float32)
        rows = x.reshape(-1, shape[-1])
        if i % 4 == 1:
            rows[0] = 0.0
        if i % 4 == 2 and path != "xnnpack":  # XNNPACK's float32 subnormal handling: not modelled
            rows[-1, 0] = np.float32(rng.choice([np.inf, -np.inf, np.nan, -0.0, 1e-40]))
        assert_bit_exact(build(np.float32, shape), [x], path=path)


L2_Q = [(d, p) for d in (np.int8, np.uint8) for p in PATHS]


@pytest.mark.parametrize("dtype,path", L2_Q, ids=[f"{np.dtype(d).name}-{p}" for d, p in L2_Q])
def test_l2_normalization_quantized(dtype, path):
    """Random zero points (all-zero-point rows: the sum below 2 case), depths 1..1280 (sums
    of squares up to ~8e7: every exponent of the inverse square root), random and extreme rows."""
    rng = np.random.default_rng(10 + L2_Q.index((dtype, path)))
    info = np.iinfo(dtype)
    for i in range(40):
        shape = random_shape(rng)
        zp = int(rng.choice([info.min, info.max, 0, 128 if dtype == np.uint8 else -1,
                             int(rng.integers(info.min, int(info.max) + 1))]))
        x = random_input(shape, dtype, rng)
        rows = x.reshape(-1, shape[-1])
        if i % 3 == 0:  # a row at the zero point, a row at one step from it, a small-amplitude row
            rows[0] = zp
            if rows.shape[0] > 1:
                rows[1] = zp
                rows[1, 0] = zp + 1 if zp < info.max else zp - 1
            if rows.shape[0] > 2:
                rows[2] = np.clip(zp + rng.integers(-2, 3, shape[-1]), info.min, info.max)
        model = build(dtype, shape, dict(scale=float(np.float32(10.0 ** rng.uniform(-3, 1))), zero_point=zp),
                      OUTPUT_Q[dtype])
        assert_bit_exact(model, [x], path=path)


def test_l2_normalization_output_quantization_refused():
    x = np.zeros((1, 4), np.int8)
    for dtype, out_q in [(np.int8, dict(scale=1 / 127, zero_point=0)), (np.int8, dict(scale=1 / 128, zero_point=1)),
                         (np.uint8, dict(scale=1 / 128, zero_point=0)), (np.uint8, dict(scale=0.01, zero_point=128))]:
        with pytest.raises(InvalidModelError, match="1/128"):
            run_refnet(build(dtype, (1, 4), dict(scale=0.1, zero_point=0), out_q), [x.astype(dtype)])


def test_l2_normalization_bad_models():
    with pytest.raises(InvalidModelError, match="activation"):
        run_refnet(build(np.float32, (1, 4), fused_activation_function="RELU"), [np.ones((1, 4), np.float32)])
    with pytest.raises(UnsupportedOpError):
        run_refnet(build(np.int16, (1, 4), dict(scale=0.1, zero_point=0), dict(scale=1 / 128, zero_point=0)),
                   [np.ones((1, 4), np.int16)])
    with pytest.raises(InvalidModelError, match="rank"):
        run_refnet(build(np.float32, ()), [np.float32(1)])
