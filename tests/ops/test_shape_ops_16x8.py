"""int16 RESHAPE, PAD and CONCATENATION (the 16x8 models' data movement) single-op models vs
LiteRT, every path: generated shapes, paddings, axes; zero points 0 (CONCATENATION inputs with
scales unlike the output's too: LiteRT's int16 concatenation copies, it does not requantize)."""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from test_weighted_16x8 import int16_input

PATHS = ["reference", "optimized", "xnnpack"]


def _reshape(rng, mb):
    shape = tuple(int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 5))))
    x = mb.input("x", shape, np.int16, scale=0.001, zero_point=0)
    new_shape = (int(np.prod(shape)),) if rng.random() < 0.5 else (1, int(np.prod(shape)), 1)
    target = mb.tensor("shape", (len(new_shape),), np.int32, data=np.array(new_shape, np.int32))
    y = mb.tensor("y", new_shape, np.int16, scale=0.001, zero_point=0)
    mb.op("RESHAPE", [x, target], [y], new_shape=list(new_shape))
    return y


def _pad(rng, mb):
    shape = tuple(int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 5))))
    pads = rng.integers(0, 3, size=(len(shape), 2))
    x = mb.input("x", shape, np.int16, scale=0.002, zero_point=0)
    p = mb.tensor("pads", pads.shape, np.int32, data=pads.astype(np.int32))
    y = mb.tensor("y", tuple(int(d + a + b) for d, (a, b) in zip(shape, pads)), np.int16, scale=0.002, zero_point=0)
    mb.op("PAD", [x, p], [y])
    return y


def _concatenation(rng, mb):
    rank = int(rng.integers(1, 5))
    base = [int(rng.integers(1, 5)) for _ in range(rank)]
    axis = int(rng.integers(-rank, rank))
    inputs, total = [], 0
    for i in range(int(rng.integers(1, 4))):
        shape = list(base)
        shape[axis] = int(rng.integers(1, 4))
        total += shape[axis]
        scale = np.float32(0.003) if rng.random() < 0.7 else np.float32(rng.uniform(0.001, 0.01))
        inputs.append(mb.input(f"x{i}", tuple(shape), np.int16, scale=scale, zero_point=0))
    out_shape = list(base)
    out_shape[axis] = total
    y = mb.tensor("y", tuple(out_shape), np.int16, scale=0.003, zero_point=0)
    mb.op("CONCATENATION", inputs, [y], axis=axis, fused_activation_function="NONE")
    return y


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["RESHAPE", "PAD", "CONCATENATION"])
def test_int16_data_movement_matches_litert(kind, path):
    rng = np.random.default_rng(sum(map(ord, kind + path)))
    make = {"RESHAPE": _reshape, "PAD": _pad, "CONCATENATION": _concatenation}[kind]
    for case in range(25):
        mb = ModelBuilder()
        mb.outputs.append(make(rng, mb))
        inputs = [int16_input(mb.tensors[i].shape, rng) for i in mb.inputs]
        assert assert_bit_exact(mb.build(), inputs, path=path) == len(inputs) + 1, case
