"""int16 MEAN single-op models vs LiteRT, every path: generated shapes, axes (the 4-D H, W
mean of the 16x8 MobileNets among them), keep_dims, scales; zero points 0; int16 ends."""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from test_weighted_16x8 import int16_input

PATHS = ["reference", "optimized", "xnnpack"]


def _model(rng):
    if rng.random() < 0.4:
        shape, axes = (1, int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 40))), [1, 2]
    else:
        rank = int(rng.integers(1, 5))
        shape = tuple(int(rng.integers(1, 6)) for _ in range(rank))
        axes = sorted(set(int(a) for a in rng.integers(0, rank, size=int(rng.integers(1, rank + 1)))))
    keep = bool(rng.random() < 0.5)
    s_in = np.float32(10.0 ** rng.uniform(-5, -2))
    s_out = np.float32(s_in * 10.0 ** rng.uniform(-1.0, 1.0))
    mb = ModelBuilder()
    x = mb.input("x", shape, np.int16, scale=s_in, zero_point=0)
    axis = mb.tensor("axis", (len(axes),), np.int32, data=np.array(axes, np.int32))
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    y = mb.tensor("y", out_shape, np.int16, scale=s_out, zero_point=0)
    mb.outputs.append(y)
    mb.op("MEAN", [x, axis], [y], version=2, keep_dims=keep)
    return mb


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
def test_int16_mean_matches_litert(path):
    rng = np.random.default_rng(sum(map(ord, "MEAN16" + path)))
    for case in range(40):
        mb = _model(rng)
        x = mb.tensors[mb.inputs[0]]
        assert assert_bit_exact(mb.build(), [int16_input(x.shape, rng)], path=path) == 2, case
