"""int16 HARD_SWISH: LiteRT 2.3.0 has none (its kernels take float32, uint8 and int8; the 16x8
converter keeps HARD_SWISH in float32), so refnet refuses it with a typed error, as LiteRT fails."""
import numpy as np
import pytest

import refnet
from refnet.litert import run_litert
from refnet.tflite_writer import ModelBuilder


@pytest.mark.litert
@pytest.mark.parametrize("path", ["reference", "optimized", "xnnpack"])
def test_int16_hard_swish_is_refused_as_litert_refuses_it(path):
    mb = ModelBuilder()
    x = mb.input("x", (1, 8), np.int16, scale=0.001, zero_point=0)
    y = mb.tensor("y", (1, 8), np.int16, scale=0.001, zero_point=0)
    mb.outputs.append(y)
    mb.op("HARD_SWISH", [x], [y])
    content = mb.build()
    with pytest.raises(RuntimeError, match="Only float32, uint8 and int8 are supported currently, got INT16"):
        run_litert(content, [np.arange(8, dtype=np.int16).reshape(1, 8)], path=path)
    with pytest.raises(refnet.UnsupportedOpError, match=r"HARD_SWISH.*int16"):
        refnet.Interpreter(model_content=content, profile=path).allocate_tensors()
