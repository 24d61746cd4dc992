"""int16 ADD and SUB (general and power-of-two paths) and MUL single-op models vs LiteRT, every path.

Generated shapes (same and broadcast), scales (arbitrary for the general path, powers of two for
the pot path), activations; inputs with the int16 ends over-represented; zero points 0.
"""
import numpy as np
import pytest

import refnet
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from test_weighted_16x8 import int16_input

PATHS = ["reference", "optimized", "xnnpack"]
ACTIVATIONS = ["NONE", "RELU", "RELU6"]


def _shapes(rng, same: bool):
    rank = int(rng.integers(1, 5))
    shape = tuple(int(rng.integers(1, 7)) for _ in range(rank))
    if same or rng.random() < 0.4:
        return shape, shape
    other = tuple(d if rng.random() < 0.5 else 1 for d in shape)[int(rng.integers(0, rank)):]
    return (shape, other) if rng.random() < 0.5 else (other, shape)


def _model(rng, kind, pot: bool):
    a_shape, b_shape = _shapes(rng, same=pot)
    if pot:  # power-of-two scales: one input on the output's scale, the other's finer
        so = np.float32(2.0 ** int(rng.integers(-14, -4)))
        scales = [so, np.float32(so * 2.0 ** -int(rng.integers(0, 16)))]
        rng.shuffle(scales)
        s1, s2 = scales
    else:
        s1, s2 = (np.float32(10.0 ** rng.uniform(-5, -2)) for _ in range(2))
        so = np.float32(max(s1, s2) * 10.0 ** rng.uniform(-1.5, 1.0)) if kind != "MUL" else \
            np.float32(s1 * s2 * 10.0 ** rng.uniform(2, 6))
    mb = ModelBuilder()
    a = mb.input("a", a_shape, np.int16, scale=s1, zero_point=0)
    b = mb.input("b", b_shape, np.int16, scale=s2, zero_point=0)
    y = mb.tensor("y", np.broadcast_shapes(a_shape, b_shape), np.int16, scale=so, zero_point=0)
    mb.outputs.append(y)
    options = dict(fused_activation_function=str(rng.choice(ACTIVATIONS)))
    if kind != "MUL":
        options["pot_scale_int16"] = pot
    mb.op(kind, [a, b], [y], version={"ADD": 3, "SUB": 3, "MUL": 4}[kind], **options)
    return mb


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind, pot", [("ADD", False), ("ADD", True), ("SUB", False), ("SUB", True), ("MUL", False)],
                         ids=["ADD-general", "ADD-pot", "SUB-general", "SUB-pot", "MUL"])
def test_int16_add_mul_match_litert(kind, pot, path):
    rng = np.random.default_rng(sum(map(ord, f"{kind}{pot}{path}")))
    for case in range(40):
        mb = _model(rng, kind, pot)
        inputs = [int16_input(mb.tensors[i].shape, rng) for i in mb.inputs]
        assert assert_bit_exact(mb.build(), inputs, path=path) == 3, case


def test_int16_add_nonzero_zero_point_is_a_typed_error():
    mb = ModelBuilder()
    a = mb.input("a", (4,), np.int16, scale=0.01, zero_point=1)
    b = mb.input("b", (4,), np.int16, scale=0.01, zero_point=0)
    y = mb.tensor("y", (4,), np.int16, scale=0.02, zero_point=0)
    mb.outputs.append(y)
    mb.op("ADD", [a, b], [y], pot_scale_int16=False)
    with pytest.raises(refnet.InvalidModelError, match=r"ADD.*zero points 0"):
        refnet.Interpreter(model_content=mb.build()).allocate_tensors()
