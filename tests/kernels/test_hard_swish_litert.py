"""hard_swish kernels vs LiteRT's reference kernels (BUILTIN_REF), bit for bit.

Single-op HARD_SWISH models are written with refnet's ModelBuilder (float32, int8, uint8, over
many scales and zero points, including the extreme exponents); one more test converts a Keras
model with TensorFlow's converter, to check the op as the converter emits it.
"""
import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from refnet import _kernels_hard_swish as khs  # noqa: E402
from refnet import fixedpoint as fx  # noqa: E402
from refnet.tflite_writer import ModelBuilder  # noqa: E402
from support import assert_same_bits
from refnet.bits import same_bits

pytestmark = pytest.mark.litert


def run_reference(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=model, num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def hard_swish_model(dtype, size, in_scale=None, in_zp=None, out_scale=None, out_zp=None):
    mb = ModelBuilder()
    x = mb.input("x", (size,), dtype, scale=in_scale, zero_point=in_zp)
    y = mb.tensor("y", (size,), dtype, scale=out_scale, zero_point=out_zp)
    mb.outputs.append(y)
    mb.op("HARD_SWISH", [x], [y])
    return mb.build()


def test_float_matches_litert():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        (rng.standard_normal(50_000) * 4).astype(np.float32),
        (np.arange(-5 * 4096, 5 * 4096) / 4096).astype(np.float32),
        rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -3.0, 3.0, 1e-45, -1e-45,
                  3.4028235e38, -3.4028235e38], np.float32),
    ])
    expected = run_reference(hard_swish_model(np.float32, x.size), x)
    out = np.empty_like(x)
    khs.hard_swish_float(x, out)
    assert_same_bits(out, expected)


def _scale_cases():
    rng = np.random.default_rng(1)
    cases = []
    for i in range(60):
        dtype = (np.int8, np.uint8)[i % 2]
        info = np.iinfo(dtype)
        in_scale = float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0))))
        out_scale = float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0))))
        cases.append((dtype, in_scale, int(rng.integers(info.min, info.max + 1)), out_scale,
                      int(rng.integers(info.min, info.max + 1))))
    # MobileNetV3-like scales, zero points at the range ends, and extreme exponents:
    # output exponent <= -16 (the int16 rounding-divide quirk), reluish exponent < -16 and > 8.
    cases += [
        (np.int8, 0.0235, -128, 0.0137, -128), (np.int8, 0.0235, 127, 0.0137, 127),
        (np.uint8, 0.0235, 0, 0.0137, 255), (np.uint8, 0.05, 255, 0.03, 0),
        (np.int8, 1e-4, 3, 0.9, -5), (np.uint8, 2e-5, 100, 1.5, 20),
        (np.int8, 1e-7, 0, 1e-7, 0), (np.int8, 20.0, 0, 1.0, 0), (np.uint8, 60.0, 128, 0.5, 3),
    ]
    return cases


@pytest.mark.parametrize("dtype,in_scale,in_zp,out_scale,out_zp", _scale_cases())
def test_quantized_matches_litert(dtype, in_scale, in_zp, out_scale, out_zp):
    info = np.iinfo(dtype)
    x = np.arange(info.min, int(info.max) + 1).astype(dtype)
    model = hard_swish_model(dtype, x.size, in_scale, in_zp, out_scale, out_zp)
    try:
        params = fx.hard_swish_params(in_scale, in_zp, out_scale, out_zp)
    except ValueError:
        # Refused (positive output exponent): LiteRT's Prepare must refuse it as well.
        with pytest.raises(Exception):
            run_reference(model, x)
        return
    out = np.empty_like(x)
    khs.hard_swish_quantized(x, out, *params, int(info.min), int(info.max))
    expected = run_reference(model, x)
    assert same_bits(out, expected), (params, np.flatnonzero(out != expected)[:5])


def test_extreme_exponents_are_exercised():
    exponents = [fx.hard_swish_params(s_in, 0, s_out, 0) for _, s_in, _, s_out, _ in _scale_cases()
                 if s_in / (128 * s_out) < 0.99]
    assert min(p.output_multiplier_exponent for p in exponents) <= -16
    assert min(p.reluish_multiplier_exponent for p in exponents) <= -16
    assert max(p.reluish_multiplier_exponent for p in exponents) >= 8


def test_positive_output_exponent_is_refused_by_both():
    # input_scale / (128 * output_scale) >= 1: LiteRT's Prepare fails, hard_swish_params raises.
    with pytest.raises(ValueError):
        fx.hard_swish_params(1.0, 0, 1.0 / 256, 0)
    with pytest.raises(Exception):
        run_reference(hard_swish_model(np.int8, 4, 1.0, 0, 1.0 / 256, 0), np.zeros(4, np.int8))


@pytest.mark.slow
def test_converted_keras_model_matches_litert():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(2)
    inputs = tf.keras.Input((64,), batch_size=1)
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("hard_swish")(inputs))

    float_model = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([(rng.standard_normal((1, 64)) * 4)
                                                  .astype(np.float32)] for _ in range(50))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    int8_model = converter.convert()

    for content in (float_model, int8_model):
        interpreter = Interpreter(model_content=content)
        ops = {d["op_name"] for d in interpreter._get_ops_details()}
        assert "HARD_SWISH" in ops, ops

    x = (rng.standard_normal((1, 64)) * 4).astype(np.float32)
    out = np.empty(64, np.float32)
    khs.hard_swish_float(x.ravel(), out)
    assert_same_bits(out, run_reference(float_model, x).ravel())

    interpreter = Interpreter(model_content=int8_model)
    in_detail = interpreter.get_input_details()[0]
    out_detail = interpreter.get_output_details()[0]
    (in_scale, in_zp), (out_scale, out_zp) = in_detail["quantization"], out_detail["quantization"]
    xq = np.arange(-128, 128).astype(np.int8).reshape(4, 64)
    params = fx.hard_swish_params(in_scale, in_zp, out_scale, out_zp)
    for row in xq:
        got = np.empty(64, np.int8)
        khs.hard_swish_quantized(row, got, *params, -128, 127)
        assert same_bits(got, run_reference(int8_model, row[None]).ravel())
