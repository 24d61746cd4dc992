"""Runtime misuse of refnet.Interpreter: each a clear typed error, or LiteRT's defined result.

- set_tensor with a wrong dtype or shape, or on a constant; invoke/set_tensor/get_tensor before
  allocate_tensors; get_tensor/set_tensor of an index that does not exist; missing, empty or
  unreadable files: a refnet.RefnetError subclass naming the tensor or the file.
- NaN, +-Inf, -0, denormals and FLT_MAX in float inputs: the same result as LiteRT's reference
  path, bit for bit (NaN matches NaN), through every float op refnet implements.
"""
from __future__ import annotations

import numpy as np
import pytest

import refnet
from refnet import (InputError, InterpreterStateError, ModelFormatError, RefnetError)
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact
from tools import fuzz
from refnet.bits import same_bits

FLT_MAX = np.finfo(np.float32).max
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, 1.2e-38, FLT_MAX, -FLT_MAX,
                     1.0, -1.0, 6.0, 3.0, -3.0], np.float32)


@pytest.fixture(scope="module")
def mini_float():
    return fuzz._mini_model("float32")


@pytest.fixture
def interpreter(mini_float):
    it = refnet.Interpreter(model_content=mini_float)
    it.allocate_tensors()
    return it


# ------------------------------------------------------------------------------------------
# Misuse: typed errors
# ------------------------------------------------------------------------------------------

def test_set_tensor_wrong_dtype(interpreter):
    d = interpreter.get_input_details()[0]
    with pytest.raises(InputError) as info:
        interpreter.set_tensor(d["index"], np.zeros(d["shape"], np.float64))
    assert "'input'" in str(info.value) and "float32" in str(info.value) and "float64" in str(info.value)
    assert isinstance(info.value, ValueError)  # as LiteRT's ValueError, for callers that catch it


@pytest.mark.parametrize("shape", [(1, 12, 12), (1, 12, 12, 4), (2, 12, 12, 3), (), (0, 12, 12, 3)])
def test_set_tensor_wrong_shape(interpreter, shape):
    d = interpreter.get_input_details()[0]
    with pytest.raises(InputError) as info:
        interpreter.set_tensor(d["index"], np.zeros(shape, np.float32))
    assert "'input'" in str(info.value) and "shape" in str(info.value)


def test_set_tensor_of_a_constant(interpreter):
    const = next(t for t in interpreter.graph.tensors if t.is_constant)
    with pytest.raises(InputError, match="constant"):
        interpreter.set_tensor(const.index, np.zeros(const.shape, const.dtype))


def test_set_tensor_not_an_array(interpreter):
    d = interpreter.get_input_details()[0]
    with pytest.raises(InputError):
        interpreter.set_tensor(d["index"], "not an array")
    with pytest.raises(InputError):
        interpreter.set_tensor(d["index"], [[1.0, 2.0]])


@pytest.mark.parametrize("index", [-1, 10**6, 2**31, 2**64, 1.5, "0", None])
def test_tensor_index_that_does_not_exist(interpreter, index):
    with pytest.raises(InputError, match="does not exist"):
        interpreter.get_tensor(index)
    with pytest.raises(InputError, match="does not exist"):
        interpreter.set_tensor(index, np.zeros((1, 12, 12, 3), np.float32))


def test_use_before_allocate_tensors(mini_float):
    it = refnet.Interpreter(model_content=mini_float)
    d = it.get_input_details()[0]  # details are fine before allocation, as in LiteRT
    for call in (it.invoke, lambda: it.get_tensor(d["index"]),
                 lambda: it.set_tensor(d["index"], np.zeros(d["shape"], np.float32))):
        with pytest.raises(InterpreterStateError, match="allocate_tensors"):
            call()
    it.allocate_tensors()
    it.set_tensor(d["index"], np.zeros(d["shape"], np.float32))
    it.invoke()


def test_invoke_twice_and_reallocate(interpreter):
    d, o = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32)
    interpreter.set_tensor(d["index"], x)
    interpreter.invoke()
    first = interpreter.get_tensor(o["index"])
    interpreter.invoke()
    assert same_bits(first, interpreter.get_tensor(o["index"]))
    interpreter.allocate_tensors()
    interpreter.set_tensor(d["index"], x)
    interpreter.invoke()
    assert same_bits(first, interpreter.get_tensor(o["index"]))


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tflite"
    with pytest.raises(ModelFormatError) as info:
        refnet.Interpreter(model_path=str(path))
    assert str(path) in str(info.value) and "no such file" in str(info.value)


def test_directory_empty_and_unreadable_files(tmp_path):
    with pytest.raises(ModelFormatError, match=str(tmp_path)):
        refnet.Interpreter(model_path=str(tmp_path))
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="too short"):
        refnet.Interpreter(model_path=str(empty))
    with pytest.raises(ModelFormatError, match="not a .tflite"):
        refnet.Interpreter(model_content=b"PK\x03\x04" + b"\x00" * 100)  # e.g. a .zip or .h5


def test_neither_or_both_model_sources(mini_float):
    with pytest.raises(RefnetError):
        refnet.Interpreter()
    with pytest.raises(RefnetError):
        refnet.Interpreter(model_path="x.tflite", model_content=mini_float)


# ------------------------------------------------------------------------------------------
# NaN / Inf in float inputs: LiteRT's reference result, bit for bit
# ------------------------------------------------------------------------------------------

def _special_input(shape, rng, mode: str) -> np.ndarray:
    size = int(np.prod(shape))
    if mode == "nan":
        x = np.full(size, np.nan, np.float32)
    elif mode == "inf":
        x = np.full(size, np.inf, np.float32)
    elif mode == "-inf":
        x = np.full(size, -np.inf, np.float32)
    elif mode == "one_nan":  # a single NaN among ordinary values
        x = rng.standard_normal(size).astype(np.float32)
        x[size // 2] = np.nan
    else:  # mixed: every special value scattered among ordinary ones
        x = rng.standard_normal(size).astype(np.float32)
        picks = rng.random(size) < 0.3
        x[picks] = rng.choice(SPECIALS, int(picks.sum()))
    return x.reshape(shape)


MODES = ["nan", "inf", "-inf", "one_nan", "mixed"]


def _single_op_models():
    rng = np.random.default_rng(11)
    f32 = np.float32
    models = {}

    def unary(kind, shape=(1, 5, 5, 4), out_shape=None, extra_inputs=(), **options):
        mb = ModelBuilder()
        x = mb.input("x", shape, f32)
        ids = [x] + [mb.tensor(f"c{k}", np.shape(v), np.asarray(v).dtype, data=v)
                     for k, v in enumerate(extra_inputs)]
        y = mb.tensor("y", out_shape or shape, f32)
        mb.op(kind, ids, [y], **options)
        mb.outputs.append(y)
        return mb.build()

    for kind in ("RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "HARD_SWISH"):
        models[kind] = unary(kind)
    models["SOFTMAX"] = unary("SOFTMAX", shape=(2, 7), beta=1.0)
    models["MAX_POOL_2D"] = unary("MAX_POOL_2D", out_shape=(1, 2, 2, 4), padding="VALID", stride_h=2,
                                  stride_w=2, filter_height=2, filter_width=2,
                                  fused_activation_function="NONE")
    models["AVERAGE_POOL_2D"] = unary("AVERAGE_POOL_2D", out_shape=(1, 3, 3, 4), padding="SAME",
                                      stride_h=2, stride_w=2, filter_height=3, filter_width=3,
                                      fused_activation_function="RELU6")
    models["MEAN"] = unary("MEAN", out_shape=(1, 1, 1, 4), extra_inputs=(np.array([1, 2], np.int32),),
                           keep_dims=True)
    models["RESIZE_BILINEAR"] = unary("RESIZE_BILINEAR", out_shape=(1, 8, 8, 4),
                                      extra_inputs=(np.array([8, 8], np.int32),))
    models["PAD"] = unary("PAD", out_shape=(1, 7, 7, 4),
                          extra_inputs=(np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),))
    models["ADD"] = unary("ADD", extra_inputs=(rng.standard_normal((1, 1, 1, 4)).astype(f32),),
                          fused_activation_function="NONE")
    models["MUL"] = unary("MUL", extra_inputs=(rng.standard_normal((1, 5, 5, 4)).astype(f32),),
                          fused_activation_function="RELU")
    models["CONV_2D"] = unary("CONV_2D", out_shape=(1, 3, 3, 2),
                              extra_inputs=(rng.standard_normal((2, 3, 3, 4)).astype(f32),
                                            rng.standard_normal(2).astype(f32)),
                              padding="SAME", stride_h=2, stride_w=2, fused_activation_function="NONE")
    models["DEPTHWISE_CONV_2D"] = unary("DEPTHWISE_CONV_2D",
                                        extra_inputs=(rng.standard_normal((1, 3, 3, 4)).astype(f32),
                                                      rng.standard_normal(4).astype(f32)),
                                        padding="SAME", stride_h=1, stride_w=1, depth_multiplier=1,
                                        fused_activation_function="RELU6")
    models["FULLY_CONNECTED"] = unary("FULLY_CONNECTED", shape=(2, 6), out_shape=(2, 3),
                                      extra_inputs=(rng.standard_normal((3, 6)).astype(f32),
                                                    rng.standard_normal(3).astype(f32)),
                                      fused_activation_function="NONE")
    for dtype in (np.int8, np.uint8):  # float -> integer: NaN and Inf through the quantizer
        mb = ModelBuilder()
        x = mb.input("x", (1, 4, 4, 3), f32)
        y = mb.tensor("y", (1, 4, 4, 3), dtype, scale=0.05, zero_point=3 if dtype == np.int8 else 130)
        mb.op("QUANTIZE", [x], [y])
        mb.outputs.append(y)
        models[f"QUANTIZE_{np.dtype(dtype).name}"] = mb.build()
    return models


SINGLE_OPS = _single_op_models()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(SINGLE_OPS))
def test_non_finite_inputs_single_op(kind, mode):
    model = SINGLE_OPS[kind]
    it = refnet.Interpreter(model_content=model)
    d = it.get_input_details()[0]
    x = _special_input(tuple(d["shape"]), np.random.default_rng(len(kind)), mode)
    assert_bit_exact(model, [x])


@pytest.mark.parametrize("mode", MODES)
def test_non_finite_inputs_mini_mobilenet(mini_float, mode):
    it = refnet.Interpreter(model_content=mini_float)
    d = it.get_input_details()[0]
    x = _special_input(tuple(d["shape"]), np.random.default_rng(1), mode)
    assert_bit_exact(mini_float, [x])


@pytest.mark.parametrize("mode", ["nan", "inf", "mixed"])
@pytest.mark.parametrize("family,kind", [("v2", "float32"), ("v3_small_minimalistic", "float32"),
                                         ("v2", "int8")])
def test_non_finite_inputs_generated_model(family, kind, mode):
    path = fuzz._factory_path(family, kind)
    if path is None:
        pytest.skip(f"factory model {family} {kind} is not cached (python -m tools.model_factory)")
    model = path.read_bytes()
    it = refnet.Interpreter(model_content=model)
    d = it.get_input_details()[0]
    if np.dtype(d["dtype"]) != np.float32:
        pytest.skip("integer input")
    x = _special_input(tuple(d["shape"]), np.random.default_rng(2), mode)
    assert_bit_exact(model, [x])
