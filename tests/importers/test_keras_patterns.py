"""Keras MobileNets fine-tuned the usual ways (tools/keras_patterns.py: V1, V2, V3 bases nested or
flat, heads of one or two Dense layers with BatchNormalization, Rescaling / Normalization / V3's
own preprocessing, Sequential), saved as .h5 and .keras: imported without TensorFlow, equal to
Keras's model(x, training=False) within 1e-5 of the output range on the six shared images, and
the .tflite refnet exports run by LiteRT's BUILTIN_REF equal to refnet on every tensor, bitwise."""
import numpy as np
import pytest

from tools import keras_patterns


@pytest.fixture(scope="module", autouse=True)
def _tensorflow():
    pytest.importorskip("tensorflow")  # builds the Keras models (the test extras install it)


@pytest.mark.litert
@pytest.mark.parametrize("fmt", keras_patterns.FORMATS)
@pytest.mark.parametrize("pattern", list(keras_patterns.PATTERNS))
def test_pattern_imports_and_matches(pattern, fmt, shared_dir):
    row = keras_patterns.check(pattern, fmt)
    assert row.imports == "yes", row.imports
    assert row.max_rel_diff_vs_keras <= 1e-5, row
    assert row.litert_tensors_compared > 0 and row.litert_tensors_mismatched == 0, row


def test_preprocessing_models_take_pixels(shared_dir):
    """A model with its own Rescaling takes pixels 0..255, and says so; refnet feeds them so."""
    from refnet.images import image_input
    from refnet.model_files import load_model

    files = keras_patterns.build("v2 0.35 128, Rescaling + base(pooling=avg) + Dense sigmoid")
    loaded = load_model(str(files[".keras"]))
    assert loaded.float_pixels and "takes pixels 0..255 (its own rescaling)" in loaded.note
    detail = {"name": "input", "shape": [1, 128, 128, 3], "dtype": np.float32}
    x = image_input(shared_dir / "images" / "owl.jpg", detail, float_pixels=True)
    assert x.dtype == np.float32 and x.max() > 200 and float(x.min()) >= 0
    plain = load_model(str(keras_patterns.build("v2 0.35 160, nested + GAP/Dropout/Dense(19) softmax")[".h5"]))
    assert not plain.float_pixels and "takes pixels" not in plain.note


@pytest.mark.litert
def test_run_a_keras_checkpoint_from_the_command_line(shared_dir):
    """README's `refnet run model.keras --image x.jpg`: the top classes, and each LiteRT path on the
    export: reference bit-exact; optimized / XNNPACK float32 within a few ULP (their float sums
    are in an order refnet does not model), which is not a failure (exit 0)."""
    import subprocess
    import sys

    path = keras_patterns.build("v2 0.35 160, nested + GAP/Dropout/Dense(19) softmax")[".keras"]
    out = subprocess.run([sys.executable, "-m", "refnet", "run", str(path), "--image",
                          str(shared_dir / "images" / "owl.jpg")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "keras-archive imported as mobilenet_v2 0.35 at 160x160" in out.stdout
    assert "rank  class" in out.stdout
    reference = next(l for l in out.stdout.splitlines() if l.startswith("reference "))
    assert "bit-exact with refnet's reference" in reference
    assert "Traceback" not in out.stderr


def test_interpreter_takes_a_checkpoint_path(shared_dir):
    """refnet.Interpreter(model_path=...) on a .keras / .h5 file: imported as load_model does (no
    TensorFlow), then LiteRT's API as for a .tflite."""
    import refnet
    from refnet.bits import same_bits

    files = keras_patterns.build("v3-small 0.75 128, own Rescaling + Dense hard_silu/Dropout/Dense")
    data = np.load(files["expected"])
    for fmt in keras_patterns.FORMATS:
        it = refnet.Interpreter(model_path=str(files[fmt]))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], data["inputs"][0])
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        expect = data["outputs"][0]
        assert got.shape == expect.shape == (1, 6)
        assert np.abs(got - expect).max() <= 1e-5 * np.abs(expect).max()
        if fmt == ".h5":
            first = got
        else:
            assert same_bits(got, first)  # the same weights, read from either format


def test_head_models_round_trip_through_the_weight_store(tmp_path, shared_dir):
    """The head and preprocessing are part of the spec the store records: read back, the same
    spec and tensors, bit for bit; refnet counts the head's MACs and parameters too."""
    from refnet.bits import same_bits
    from refnet.importers import import_checkpoint
    from refnet.models import count, get_net
    from refnet.weights_store import read_store, write_store

    files = keras_patterns.build("v2 0.5 128, nested + Dense relu/BatchNorm/Dropout/Dense")
    store = import_checkpoint(files[".keras"])
    assert [h["kind"] for h in store.spec.head] == ["global_pool", "dense", "batch_norm", "dense"]
    assert [h.get("activation") for h in store.spec.head] == [None, "RELU", None, "SOFTMAX"]
    write_store(tmp_path / "s.h5", store)
    back = read_store(tmp_path / "s.h5")
    assert back.spec == store.spec and sorted(back.tensors) == sorted(store.tensors)
    assert all(same_bits(back.tensors[k], store.tensors[k]) for k in store.tensors)
    c = count(get_net(store.spec))
    dense = 1280 * 64 + 64 * 5  # the head's two Dense layers (GAP -> 64 -> 5)
    plain = count(get_net(type(store.spec)("mobilenet_v2", 0.5, 128, 5)))
    assert c["macs"] - dense == plain["macs"] - 1280 * 5  # the seed's logits are a 1280 -> 5 conv


def test_weights_only_file_with_its_keras_config(tmp_path, shared_dir):
    """A fine-tuned model's save_weights() file carries no architecture: without it a typed error
    that says how to give one; with --keras-config (model.to_json()) the same model as the .keras."""
    keras = pytest.importorskip("tensorflow").keras
    from refnet.cli import main
    from refnet.errors import ModelFormatError
    from refnet.importers import import_checkpoint

    name = "v2 0.5 128, nested + Dense relu/BatchNorm/Dropout/Dense"
    files = keras_patterns.build(name)
    model = keras.models.load_model(files[".keras"])
    weights, config = tmp_path / "w.weights.h5", tmp_path / "model.json"
    model.save_weights(weights)
    config.write_text(model.to_json())
    with pytest.raises(ModelFormatError, match="--keras-config model.json"):
        import_checkpoint(weights)
    out = tmp_path / "m.tflite"
    assert main(["convert", str(weights), "--keras-config", str(config), "--to-tflite", str(out)]) == 0
    assert main(["convert", str(weights), "--keras-config", str(tmp_path / "none.json"), "--to-tflite",
                 str(out)]) == 2
    import refnet
    data = np.load(files["expected"])
    it = refnet.Interpreter(model_path=str(out))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], data["inputs"][1])
    it.invoke()
    got, expect = it.get_tensor(it.get_output_details()[0]["index"]), data["outputs"][1]
    assert got.shape == expect.shape == (1, 5)
    assert np.abs(got - expect).max() <= 1e-5 * np.abs(expect).max()


@pytest.mark.litert
def test_dataset_verify_feeds_pixels_to_a_rescaling_model(tmp_path, shared_dir):
    """`refnet verify model.keras --images DIR`: the workers feed 0..255 to a model with its own
    Rescaling (as run and verify do), and LiteRT's reference path equals refnet on every image."""
    import shutil

    from refnet.cli import main
    from refnet.dataset import DatasetWorker
    from refnet.model_files import load_model

    path = keras_patterns.build("v2 0.35 128, Rescaling + base(pooling=avg) + Dense sigmoid")[".keras"]
    loaded = load_model(str(path))
    worker = DatasetWorker(loaded.content, ["reference"], float_pixels=loaded.float_pixels)
    x = worker._inputs((shared_dir / "images" / "owl.jpg").read_bytes())[0]
    assert x.dtype == np.float32 and float(x.max()) > 200
    images = tmp_path / "images"
    images.mkdir()
    for name in ("owl.jpg", "cat.bmp", "parrot.jpg"):
        shutil.copy(shared_dir / "images" / name, images / name)
    assert main(["verify", str(path), "--images", str(images), "--against", "reference", "-q"]) == 0
