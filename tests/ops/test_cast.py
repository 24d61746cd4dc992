"""CAST: refnet vs LiteRT on single-op models between the dtypes MobileNet graphs carry (a pose
model's uint8 image to float32, float32 indices to int32, ...), values in range, on each CPU path."""
from __future__ import annotations

import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact

PATHS = ["reference", "optimized", "xnnpack"]
TYPE_CODES = {np.float32: 0, np.int32: 2, np.uint8: 3, np.int64: 4, np.bool_: 6, np.int16: 7, np.int8: 9}
PAIRS = [(np.uint8, np.float32), (np.int8, np.float32), (np.int32, np.float32), (np.int64, np.float32),
         (np.bool_, np.float32), (np.float32, np.int32), (np.float32, np.int64), (np.float32, np.uint8),
         (np.float32, np.int8), (np.int32, np.int64), (np.int64, np.int32), (np.int32, np.uint8),
         (np.uint8, np.int32), (np.float32, np.bool_), (np.int32, np.bool_)]


def _values(dtype, to, shape, rng):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype == np.float32:
        lo, hi = {np.uint8: (0, 255), np.int8: (-128, 127)}.get(to, (-3e5, 3e5))
        v = rng.uniform(lo, hi, shape)
        return np.where(rng.random(shape) < 0.2, np.round(v), v).astype(np.float32)
    info = np.iinfo(dtype)
    if to == np.float32 and dtype in (np.int32, np.int64):  # beyond 2**24: rounding to float32
        return rng.integers(-(2 ** 30), 2 ** 30, shape).astype(dtype)
    return rng.integers(max(info.min, -(2 ** 31)), min(info.max, 2 ** 31 - 1) + 1, shape).astype(dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("src, dst", PAIRS, ids=[f"{np.dtype(a).name}-{np.dtype(b).name}" for a, b in PAIRS])
def test_cast(src, dst, path):
    rng = np.random.default_rng(PAIRS.index((src, dst)) + 50 * PATHS.index(path))
    for case in range(6):
        shape = tuple(int(d) for d in rng.integers(1, 7, size=int(rng.integers(1, 5))))
        mb = ModelBuilder()
        x = mb.input("x", shape, src)
        y = mb.tensor("y", shape, dst)
        mb.op("CAST", [x], [y], in_data_type=TYPE_CODES[src], out_data_type=TYPE_CODES[dst])
        mb.outputs.append(y)
        assert_bit_exact(mb.build(), [_values(src, dst, shape, rng)], path=path)
