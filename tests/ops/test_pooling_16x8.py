"""int16 AVERAGE_POOL_2D and MAX_POOL_2D single-op models vs LiteRT, every path: generated
windows, strides, paddings (SAME windows that cover fewer inputs at the edges), activations,
global pools; zero points 0; int16 ends over-represented."""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from test_weighted_16x8 import int16_input

PATHS = ["reference", "optimized", "xnnpack"]


def _model(rng, kind):
    n, h, w, c = 1, int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 12))
    if rng.random() < 0.25:  # a global pool, as a classifier head
        fh, fw, sh, sw, padding = h, w, 1, 1, "VALID"
    else:
        fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        padding = str(rng.choice(["SAME", "VALID"]))
        if padding == "VALID":
            h, w = max(h, fh), max(w, fw)

    def out(size, k, s):
        return (size + s - 1) // s if padding == "SAME" else (size - k + s) // s

    scale = np.float32(10.0 ** rng.uniform(-4, -2))
    mb = ModelBuilder()
    x = mb.input("x", (n, h, w, c), np.int16, scale=scale, zero_point=0)
    y = mb.tensor("y", (n, out(h, fh, sh), out(w, fw, sw), c), np.int16, scale=scale, zero_point=0)
    mb.outputs.append(y)
    mb.op(kind, [x], [y], version=3, padding=padding, stride_h=sh, stride_w=sw, filter_height=fh,
          filter_width=fw, fused_activation_function=str(rng.choice(["NONE", "RELU", "RELU6"])))
    return mb


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_int16_pools_match_litert(kind, path):
    rng = np.random.default_rng(sum(map(ord, kind + path)))
    for case in range(40):
        mb = _model(rng, kind)
        x = mb.tensors[mb.inputs[0]]
        assert assert_bit_exact(mb.build(), [int16_input(x.shape, rng)], path=path) == 2, case
