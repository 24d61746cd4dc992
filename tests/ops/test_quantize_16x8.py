"""QUANTIZE float32 -> int16, int16 -> int16 and int16 -> int8, DEQUANTIZE int16 -> float32
single-op models vs LiteRT, every path: generated shapes and scales, float inputs with values
near rounding ties and beyond the int16 range; int16 inputs at the ends; int16 zero points 0."""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from test_weighted_16x8 import int16_input

PATHS = ["reference", "optimized", "xnnpack"]


def _case(rng, kind):
    shape = tuple(int(rng.integers(1, 7)) for _ in range(int(rng.integers(1, 5))))
    s = np.float32(10.0 ** rng.uniform(-5, -2))
    mb = ModelBuilder()
    if kind == "float->int16":
        x = mb.input("x", shape, np.float32)
        y = mb.tensor("y", shape, np.int16, scale=s, zero_point=0)
        op = "QUANTIZE"
        # half-integer multiples of the scale (ties), random values, values past +-32768 steps
        steps = np.where(rng.random(shape) < 0.3, rng.integers(-40000, 40000, shape) + 0.5,
                         rng.uniform(-40000, 40000, shape))
        value = (steps * np.float64(s)).astype(np.float32)
    else:
        x = mb.input("x", shape, np.int16, scale=s, zero_point=0)
        op = "DEQUANTIZE" if kind == "int16->float" else "QUANTIZE"
        if kind == "int16->float":
            y = mb.tensor("y", shape, np.float32)
        elif kind == "int16->int16":
            y = mb.tensor("y", shape, np.int16, scale=np.float32(s * 10.0 ** rng.uniform(-1, 1)), zero_point=0)
        else:
            y = mb.tensor("y", shape, np.int8, scale=np.float32(s * 10.0 ** rng.uniform(1, 3)),
                          zero_point=int(rng.integers(-128, 128)))
        value = int16_input(shape, rng)
    mb.outputs.append(y)
    mb.op(op, [x], [y], version=2)
    return mb, value


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["float->int16", "int16->int16", "int16->int8", "int16->float"])
def test_int16_quantize_dequantize_match_litert(kind, path):
    rng = np.random.default_rng(sum(map(ord, kind + path)))
    for case in range(30):
        mb, value = _case(rng, kind)
        assert assert_bit_exact(mb.build(), [value], path=path) == 2, case
