"""int16 -> int16 SOFTMAX (LiteRT's interpolated exp and reciprocal tables) single-op models vs
LiteRT, every path: generated row lengths (up to a 1001-class classifier's), input scales and
betas, inputs from the int16 ends to near-equal rows; zero points 0."""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from test_weighted_16x8 import int16_input

PATHS = ["reference", "optimized", "xnnpack"]


def _case(rng):
    depth = int(rng.choice([1, 2, int(rng.integers(3, 40)), 1001]))
    shape = (int(rng.integers(1, 4)), depth)
    mb = ModelBuilder()
    x = mb.input("x", shape, np.int16, scale=np.float32(10.0 ** rng.uniform(-5, -2.5)), zero_point=0)
    y = mb.tensor("y", shape, np.int16, scale=np.float32(1 / 32768), zero_point=0)
    mb.outputs.append(y)
    mb.op("SOFTMAX", [x], [y], version=3, beta=float(rng.choice([1.0, 1.0, rng.uniform(0.2, 3.0)])))
    if rng.random() < 0.3:  # a narrow row: many values near the maximum
        values = rng.integers(-200, 200, size=shape).astype(np.int16) + np.int16(rng.integers(-3000, 3000))
    else:
        values = int16_input(shape, rng)
    return mb, values


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
def test_int16_softmax_matches_litert(path):
    rng = np.random.default_rng(sum(map(ord, "SOFTMAX16" + path)))
    for case in range(40):
        mb, values = _case(rng)
        assert assert_bit_exact(mb.build(), [values], path=path) == 2, case
