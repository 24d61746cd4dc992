"""ADD and MUL against LiteRT BUILTIN_REF on randomized single-op models."""
import numpy as np
import pytest

from refnet import InvalidModelError, OpExecutionError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, random_input, run_refnet

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
QUANTIZED = [np.int8, np.uint8]


def random_broadcast_shapes(rng, max_rank=6, max_elements=3000):
    """(shape1, shape2): NumPy-broadcastable, ranks 0..max_rank, some dims 1, some dropped."""
    rank = int(rng.integers(0, max_rank + 1))
    out = [int(rng.integers(1, 6)) for _ in range(rank)]
    while int(np.prod(out)) > max_elements:
        out[int(rng.integers(0, rank))] = 1
    shapes = []
    for _ in range(2):
        shape = [d if rng.random() < 0.6 else 1 for d in out]
        shape = shape[int(rng.integers(0, rank + 1)):] if rng.random() < 0.3 else shape
        shapes.append(tuple(shape))
    if rng.random() < 0.3:  # the common MobileNet cases: same shape, or a per-channel vector
        shapes = [tuple(out), tuple(out) if rng.random() < 0.5 else tuple(out[-1:])]
    if rng.random() < 0.5:
        shapes.reverse()
    return shapes


def random_scale(rng, lo=-6.0, hi=3.0):
    return float(np.float32(10.0 ** rng.uniform(lo, hi)))


def random_zero_point(rng, dtype):
    info = np.iinfo(dtype)
    r = rng.random()
    if r < 0.2:
        return int(info.min)
    if r < 0.4:
        return int(info.max)
    if r < 0.5:
        return 0
    return int(rng.integers(info.min, int(info.max) + 1))


def float_values(rng, shape):
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
    if x.size and rng.random() < 0.3:  # specials: overflow, infinities, NaN, signed zeros
        flat = x.reshape(-1)
        specials = np.array([np.inf, -np.inf, np.nan, 3e38, -3e38, 0.0, -0.0, 6.0, -1.0, 1.0],
                            np.float32)
        k = int(rng.integers(1, min(flat.size, 10) + 1))
        flat[rng.choice(flat.size, k, replace=False)] = rng.choice(specials, k)
    return x


def build(kind, dtype, shapes, act, quant=None, constant=None):
    """Single ADD/MUL model; quant = [(scale, zp)] * 3; constant = (input index, value)."""
    mb = ModelBuilder()
    q = quant or [(None, None)] * 3
    ids = []
    for i in range(2):
        if constant is not None and constant[0] == i:
            ids.append(mb.tensor(f"c{i}", shapes[i], dtype, data=constant[1], scale=q[i][0],
                                 zero_point=q[i][1]))
        else:
            ids.append(mb.input(f"x{i}", shapes[i], dtype, scale=q[i][0], zero_point=q[i][1]))
    out_shape = np.broadcast_shapes(*shapes)
    y = mb.tensor("y", out_shape, dtype, scale=q[2][0], zero_point=q[2][1])
    mb.outputs.append(y)
    mb.op(kind, ids, [y], fused_activation_function=act)
    return mb.build()


def run_case(kind, dtype, shapes, act, rng, quant=None):
    values = [float_values(rng, s) if dtype == np.float32 else random_input(s, dtype, rng)
              for s in shapes]
    constant = None
    if rng.random() < 0.2:
        k = int(rng.integers(0, 2))
        constant = (k, values[k])
        values = values[:k] + values[k + 1:]
    assert_bit_exact(build(kind, dtype, shapes, act, quant, constant), values)


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
def test_float32(kind):
    rng = np.random.default_rng(1 if kind == "ADD" else 2)
    for _ in range(400):
        run_case(kind, np.float32, random_broadcast_shapes(rng), str(rng.choice(ACTIVATIONS)), rng)


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_plain_integers(kind, dtype):
    rng = np.random.default_rng(3)
    for _ in range(80):
        shapes = random_broadcast_shapes(rng, max_rank=4)
        act = str(rng.choice(["NONE", "RELU", "RELU6"]))
        values = [random_input(s, dtype, rng) for s in shapes]  # full range: wrap-around
        assert_bit_exact(build(kind, dtype, shapes, act), values)


def random_activation(rng, output_scale):
    """A fused activation whose quantized bounds fit int32 (LiteRT refuses the others)."""
    act = str(rng.choice(ACTIVATIONS))
    return act if np.float32(6.0) / np.float32(output_scale) < 2.0 ** 31 else "NONE"


def add_output_multiplier(s1, s2, so):
    f32 = np.float32
    return float(f32(2) * max(f32(s1), f32(s2))) / float(f32(1 << 20) * f32(so))


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_quantized_add(dtype):
    rng = np.random.default_rng(4 + (dtype == np.uint8))
    done = 0
    while done < 600:
        s1, s2 = random_scale(rng), random_scale(rng)
        if rng.random() < 0.2:
            s2 = s1  # equal scales: the multipliers are exactly 1/2
        so = random_scale(rng, -4, 4) if rng.random() < 0.7 else max(s1, s2) * 10 ** rng.uniform(-5.5, 1)
        if not add_output_multiplier(s1, s2, so) < 1:
            continue  # LiteRT aborts; see test_add_multiplier_above_one
        quant = [(s1, random_zero_point(rng, dtype)), (s2, random_zero_point(rng, dtype)),
                 (so, random_zero_point(rng, dtype))]
        run_case("ADD", dtype, random_broadcast_shapes(rng), random_activation(rng, so), rng, quant)
        done += 1


@pytest.mark.parametrize("dtype", QUANTIZED)
def test_quantized_mul(dtype):
    rng = np.random.default_rng(6 + (dtype == np.uint8))
    for i in range(600):
        s1, s2 = random_scale(rng), random_scale(rng)
        # Output scales from "multiplier tiny" to "multiplier ~2**30" (left shifts that wrap).
        so = float(np.float32(s1 * s2 / 2.0 ** rng.uniform(-34, 30.9 if i % 3 else 8)))
        quant = [(s1, random_zero_point(rng, dtype)), (s2, random_zero_point(rng, dtype)),
                 (so, random_zero_point(rng, dtype))]
        run_case("MUL", dtype, random_broadcast_shapes(rng), random_activation(rng, so), rng, quant)


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
def test_mobilenet_shapes(kind):
    """Residual ADD (same shapes) and squeeze-excite MUL ((1,H,W,C) * (1,1,1,C)) at real sizes."""
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.int8, np.uint8):
        shapes = [(1, 28, 28, 32), (1, 28, 28, 32) if kind == "ADD" else (1, 1, 1, 32)]
        quant = None
        if dtype != np.float32:
            quant = [(0.05, random_zero_point(rng, dtype)), (0.02, random_zero_point(rng, dtype)),
                     (0.04, random_zero_point(rng, dtype))]
        run_case(kind, dtype, shapes, "NONE", rng, quant)


def test_add_multiplier_above_one():
    """Output scale ~2**-20 of the inputs': LiteRT's CHECK aborts; refnet raises a typed error."""
    model = build("ADD", np.int8, [(1, 4), (1, 4)], "NONE", [(1.0, 0), (1.0, 0), (1e-7, 0)])
    with pytest.raises(OpExecutionError, match="LiteRT's reference ADD aborts"):
        run_refnet(model, [np.zeros((1, 4), np.int8)] * 2)


def test_activation_bound_beyond_int32():
    """6 / output_scale beyond int32: LiteRT refuses at Prepare, refnet raises InvalidModelError."""
    model = build("MUL", np.int8, [(1, 4), (1, 4)], "RELU6", [(1e-6, 0), (1e-6, 0), (1e-12, 0)])
    with pytest.raises(InvalidModelError, match="beyond int32"):
        run_refnet(model, [np.zeros((1, 4), np.int8)] * 2)


def test_bad_models():
    with pytest.raises(InvalidModelError, match="do not broadcast"):
        run_refnet(build_unchecked("ADD", np.float32, [(2, 3), (4, 3)], (2, 3)),
                   [np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)])
    with pytest.raises(InvalidModelError, match="broadcast shape"):
        run_refnet(build_unchecked("MUL", np.float32, [(2, 3), (1, 3)], (3, 3)),
                   [np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32)])
    with pytest.raises(InvalidModelError, match="no quantization"):  # int16: the 16x8 path's
        run_refnet(build_unchecked("ADD", np.int16, [(2,), (2,)], (2,)),
                   [np.zeros(2, np.int16)] * 2)
    with pytest.raises(InvalidModelError, match="no quantization"):
        run_refnet(build_unchecked("ADD", np.int8, [(2,), (2,)], (2,)), [np.zeros(2, np.int8)] * 2)


def build_unchecked(kind, dtype, shapes, out_shape):
    mb = ModelBuilder()
    ids = [mb.input(f"x{i}", s, dtype) for i, s in enumerate(shapes)]
    y = mb.tensor("y", out_shape, dtype)
    mb.outputs.append(y)
    mb.op(kind, ids, [y], fused_activation_function="NONE")
    return mb.build()


def _uint8_add(n: int) -> bytes:
    """The uint8 ADD of a DeepLab head (issue 15's case that no form reproduced)."""
    mb = ModelBuilder()
    a = mb.input("a", (1, n), np.uint8, scale=0.24857626855373383, zero_point=133)
    b = mb.input("b", (1, n), np.uint8, scale=0.38582080602645874, zero_point=125)
    y = mb.tensor("y", (1, n), np.uint8, scale=0.45569220185279846, zero_point=125)
    mb.op("ADD", [a, b], [y], fused_activation_function="NONE")
    mb.outputs.append(y)
    return mb.build()


@pytest.mark.litert
@pytest.mark.parametrize("path", ["reference", "optimized", "xnnpack"])
def test_uint8_add_every_input_pair_and_a_tail(path):
    """All 65536 input pairs (one of them a tie where the optimized path's flooring input shift
    decides: 150 + 117 gives 127 in its 8-element blocks, 128 in the tail and the reference), then
    that pair 13 times (8 in a block, 5 in the tail)."""
    pairs = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij")).reshape(2, 1, -1)
    assert_bit_exact(_uint8_add(65536), [pairs[0].astype(np.uint8), pairs[1].astype(np.uint8)], path)
    tie = [np.full((1, 13), 150, np.uint8), np.full((1, 13), 117, np.uint8)]
    assert_bit_exact(_uint8_add(13), tie, path)
    expected = [127] * 8 + [128] * 5 if path == "optimized" else [128] * 13
    assert run_refnet(_uint8_add(13), tie, profile=path)[2].ravel().tolist() == expected
