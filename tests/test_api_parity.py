"""LiteRT's Python API, call for call: one script (tests/api_parity.py) run on ai_edge_litert and on
refnet must record the same results, the same bytes and errors of the same built-in classes."""
from __future__ import annotations

import os

import numpy as np
import pytest

import refnet
from refnet.cli import default_model_path
from refnet.interpreter import profile_for_resolver

import api_parity


@pytest.fixture(scope="module")
def signature_model() -> bytes:
    """A small MobileNet-like Keras model converted by TensorFlow: a SignatureDef, a free batch
    dimension, int8 inside with float input and output."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    keras = tf.keras
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(16, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, activation="softmax", name="scores")(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, x))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)] for _ in range(20))
    return converter.convert()


@pytest.mark.litert
def test_one_script_same_records_on_litert_and_refnet(signature_model):
    from ai_edge_litert import interpreter as litert

    plain = str(default_model_path().parent / "mobilenet_v2_1.0_224_quant.tflite")
    theirs = api_parity.exercise(litert, signature_model, plain)
    ours = api_parity.exercise(refnet, signature_model, plain)
    assert list(ours) == list(theirs)
    differ = [k for k in theirs if ours[k] != theirs[k]]
    assert not differ, {k: (str(theirs[k])[:200], str(ours[k])[:200]) for k in differ}
    # the records carry real results, not only errors
    assert theirs["signature list"] == ("ok", {"serving_default": {"inputs": ["image"], "outputs": ["output_0"]}})
    assert theirs["batch 4 output"][0] == "ok" and theirs["batch 4 output"][1][2] == (4, 5)
    assert theirs["allocate at batch 2"] == ("error", ["RuntimeError"])  # the Coral RESHAPE fixes batch 1


def test_op_resolver_type_selects_the_profile():
    from refnet.profile import resolve_id

    m = str(default_model_path().parent / "mobilenet_v2_1.0_224_quant.tflite")
    expect = {"BUILTIN_REF": "reference", "BUILTIN_WITHOUT_DEFAULT_DELEGATES": "optimized",
              "BUILTIN": "xnnpack", "AUTO": "xnnpack"}
    for name, path in expect.items():
        resolver = refnet.OpResolverType[name]
        for given in (resolver, resolver.value, name):
            assert profile_for_resolver(given) == path
        it = refnet.Interpreter(model_path=m, experimental_op_resolver_type=resolver)
        assert it.profile.name == resolve_id(path)
    assert refnet.Interpreter(model_path=m).profile.name == resolve_id("reference")  # refnet's default
    explicit = refnet.Interpreter(model_path=m, profile="optimized",
                                  experimental_op_resolver_type=refnet.OpResolverType.BUILTIN_REF)
    assert explicit.profile.name == resolve_id("optimized")  # an explicit profile wins
    with pytest.raises(refnet.InputError, match="BUILTIN_REF"):
        refnet.Interpreter(model_path=m, experimental_op_resolver_type="FAST")


def test_resize_errors_are_typed(signature_model):
    it = refnet.Interpreter(model_content=signature_model)
    d = it.get_input_details()[0]
    with pytest.raises(refnet.InputError, match="not a model input"):
        it.resize_tensor_input(d["index"] + 1, [1, 2])
    with pytest.raises(refnet.InputError, match="negative"):
        it.resize_tensor_input(d["index"], [1, -32, 32, 3])
    with pytest.raises(refnet.ResizeError, match="fixed dimension"):
        it.resize_tensor_input(d["index"], [1, 33, 32, 3], strict=True)
    it.resize_tensor_input(d["index"], [2, 3])
    with pytest.raises(refnet.AllocationError, match=r"op 1 \(CONV_2D\): cannot take input shape\(s\) \[2, 3\] .*must both be 4-D"):
        it.allocate_tensors()
