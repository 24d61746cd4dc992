"""Which NaN a float sum keeps when both operands are NaN (refnet.profile's float_nan_blocks).

x86 returns the first operand's NaN, and each loop of LiteRT's build orders its operands its own
way; with every input a NaN of its own payload, the output's payload says which operand won at
every step. Bit for bit against LiteRT's reference kernels."""
import numpy as np
import pytest

from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact

pytestmark = pytest.mark.litert

WEIGHT = 1.5
NAN_WEIGHT = np.array(0x7FD00000, np.uint32).view(np.float32)  # NaN x NaN: the input's NaN wins


def _payloads(shape, base=0x7FC00001, sign=0):
    n = int(np.prod(shape))
    return ((base + np.arange(n)) | sign).astype(np.uint32).view(np.float32).reshape(shape)


def _conv_model(kind, k, cin, cout, bias_bits=0, weight=WEIGHT):
    mb = ModelBuilder()
    x = mb.input("x", (1, k + 1, k + 1, cin), np.float32)
    filter_shape = (cout, k, k, cin) if kind == "CONV_2D" else (1, k, k, cin)
    w = mb.tensor("w", filter_shape, np.float32, data=np.full(filter_shape, weight, np.float32))
    channels = cout if kind == "CONV_2D" else cin
    bias = np.full(channels, bias_bits, np.uint32).view(np.float32)
    b = mb.tensor("b", (channels,), np.float32, data=bias)
    y = mb.tensor("y", (1, 2, 2, channels), np.float32)
    options = dict(padding="VALID", stride_h=1, stride_w=1, fused_activation_function="NONE")
    if kind == "DEPTHWISE_CONV_2D":
        options["depth_multiplier"] = 1
    mb.op(kind, [x, w, b], [y], **options)
    mb.outputs.append(y)
    return mb.build()


@pytest.mark.parametrize("bias_bits", [0, 0x7FD00000])  # zero, or a NaN bias (the total's NaN wins)
@pytest.mark.parametrize("cin", [1, 3, 4, 5, 7, 8, 9, 16])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_conv_family(kind, k, cin, bias_bits):
    model = _conv_model(kind, k, cin, 3, bias_bits)
    assert_bit_exact(model, [_payloads((1, k + 1, k + 1, cin))])
    assert_bit_exact(model, [_payloads((1, k + 1, k + 1, cin), sign=0x80000000)])


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_nan_weights(kind):
    model = _conv_model(kind, 3, 5, 2, weight=NAN_WEIGHT)
    assert_bit_exact(model, [_payloads((1, 4, 4, 5))])


@pytest.mark.parametrize("weight", [WEIGHT, NAN_WEIGHT])
@pytest.mark.parametrize("depth", [1, 3, 4, 5, 8, 9, 17])
def test_fully_connected(depth, weight):
    mb = ModelBuilder()
    x = mb.input("x", (2, depth), np.float32)
    w = mb.tensor("w", (3, depth), np.float32, data=np.full((3, depth), weight, np.float32))
    b = mb.tensor("b", (3,), np.float32, data=np.zeros(3, np.float32))
    y = mb.tensor("y", (2, 3), np.float32)
    mb.op("FULLY_CONNECTED", [x, w, b], [y], fused_activation_function="NONE")
    mb.outputs.append(y)
    assert_bit_exact(mb.build(), [_payloads((2, depth))])


@pytest.mark.parametrize("shape_a,shape_b", [
    ((1, 1, 1, 20), (1, 1, 1, 20)), ((1, 2, 2, 20), (1, 2, 2, 20)), ((1, 1, 1, 37), (1, 1, 1, 37)),
    ((1, 1, 1, 7), (1, 1, 1, 7)), ((1, 2, 2, 3), (1, 1, 1, 3)), ((1, 2, 2, 20), (1, 2, 1, 20)),
    ((1, 1, 1, 20), (1, 2, 2, 20)), ((1, 3, 1, 1), (1, 3, 5, 1)), ((1, 2, 2, 20), (1,)),
])
def test_add(shape_a, shape_b):
    mb = ModelBuilder()
    a = mb.input("a", shape_a, np.float32)
    b = mb.input("b", shape_b, np.float32)
    y = mb.tensor("y", np.broadcast_shapes(shape_a, shape_b), np.float32)
    mb.op("ADD", [a, b], [y], fused_activation_function="NONE")
    mb.outputs.append(y)
    assert_bit_exact(mb.build(), [_payloads(shape_a), _payloads(shape_b, base=0x7FC10001, sign=0x80000000)])


BROADCASTS = [  # one operand repeating along the other: rows around the 8- and 16-wide blocks
    ((1, 2, 3, 8), (1, 1, 1, 8)), ((1, 2, 3, 9), (1, 1, 1, 9)), ((1, 2, 3, 12), (1, 1, 1, 12)),
    ((1, 3, 3, 24), (1, 1, 1, 24)), ((1, 1, 1, 17), (1, 2, 3, 17)), ((2, 3, 20), (3, 20)),
    ((1,), (1, 1, 1, 37)), ((1, 1, 1, 37), (1,)),
]


@pytest.mark.parametrize("shape_a,shape_b", BROADCASTS)
def test_add_repeating(shape_a, shape_b):
    test_add(shape_a, shape_b)


@pytest.mark.parametrize("shape_a,shape_b", [
    ((1, 2, 2, 20), (1, 2, 2, 20)), ((1, 1, 1, 37), (1, 1, 1, 37)), ((1, 1, 1, 7), (1, 1, 1, 7)),
    ((1, 2, 1, 20), (1, 2, 2, 20)),
] + BROADCASTS)
def test_mul(shape_a, shape_b):
    mb = ModelBuilder()
    a = mb.input("a", shape_a, np.float32)
    b = mb.input("b", shape_b, np.float32)
    y = mb.tensor("y", np.broadcast_shapes(shape_a, shape_b), np.float32)
    mb.op("MUL", [a, b], [y], fused_activation_function="NONE")
    mb.outputs.append(y)
    assert_bit_exact(mb.build(), [_payloads(shape_a), _payloads(shape_b, base=0x7FC10001, sign=0x80000000)])


@pytest.mark.parametrize("shape", [(1, 3, 3, 20), (2, 4, 5, 37)])
def test_mean(shape):
    # every input a NaN of its own payload: the running sum's NaN (the first element's) is kept
    mb = ModelBuilder()
    x = mb.input("x", shape, np.float32)
    axes = mb.tensor("axes", (2,), np.int32, data=np.array([1, 2], np.int32))
    y = mb.tensor("y", (shape[0], 1, 1, shape[3]), np.float32)
    mb.op("MEAN", [x, axes], [y], keep_dims=True)
    mb.outputs.append(y)
    assert_bit_exact(mb.build(), [_payloads(shape)])
