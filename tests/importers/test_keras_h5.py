"""Keras .h5 / .weights.h5 import (no TensorFlow at run time), checked against Keras itself,
against LiteRT running Keras's own .tflite conversion, and against LiteRT running refnet's graph.

Tolerance against Keras and against Keras-converted .tflite: max |diff| <= 1e-5 x max |logit|
(observed ~1e-6). Not zero because the arithmetic differs legitimately in float32: refnet folds
batch norm into the weights at import (W * scale rounded to float32, whereas Keras applies batch
norm after the convolution; TF's converter folds in its own order), sums each convolution in the
reference kernels' order (Keras/TF use blocked GEMM kernels), and runs HARD_SWISH as one op where
Keras composes x * relu6(x + 3) / 6. Each of these is ~1 float32 ulp (6e-8) per layer; over ~50
layers it accumulates to ~1e-6. Against LiteRT running refnet's own graph the result is exact.
"""
import subprocess
import sys

import numpy as np
import pytest

import refnet
from refnet.errors import ModelFormatError
from refnet.importers import import_checkpoint
from refnet.weights_store import load_graph, read_store, write_store

from keras_fixtures import FAMILIES
from refnet.bits import same_bits

RTOL = 1e-5


def run(graph, x):
    it = refnet.Interpreter(graph=graph)
    it.allocate_tensors()
    it.set_tensor(graph.inputs[0], x)
    it.invoke()
    return it.get_tensor(graph.outputs[0])


def close(a, b):
    scale = float(np.abs(b).max())
    return float(np.abs(a - b).max()) <= RTOL * scale, float(np.abs(a - b).max()) / scale


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_import_matches_keras(keras_files, arch):
    f = keras_files[arch]
    store = import_checkpoint(f["h5"])
    assert store.spec.arch == arch
    assert store.spec.depth_multiplier == f["alpha"]
    assert store.spec.resolution == f["x"].shape[1]
    assert store.spec.softmax is False  # classifier_activation=None in the fixture
    assert store.provenance["source_format"] == "keras-h5"
    y = run(store.graph(), f["x"])
    ok, err = close(y, f["logits"])
    assert ok, f"{arch}: relative max diff {err:.3g}"


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_weights_h5_equals_h5(keras_files, arch):
    """Keras 3 .weights.h5 has no layer names: matched in model order, the tensors are the same."""
    f = keras_files[arch]
    a = import_checkpoint(f["h5"])
    b = import_checkpoint(f["weights_h5"])
    assert (b.spec.arch, b.spec.depth_multiplier) == (a.spec.arch, a.spec.depth_multiplier)
    assert sorted(a.tensors) == sorted(b.tensors)
    for k in a.tensors:
        assert same_bits(a.tensors[k], b.tensors[k]), k


@pytest.mark.litert
@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small"])
def test_matches_litert_on_keras_conversion(keras_files, arch):
    from refnet.litert import run_litert
    f = keras_files[arch]
    content = f["tflite"].read_bytes()
    g = refnet.read_tflite(model_content=content)
    theirs = run_litert(content, [f["x"]])[g.outputs[0]]
    ours = run(import_checkpoint(f["h5"]).graph(), f["x"])
    ok, err = close(ours, theirs)
    assert ok, f"{arch}: relative max diff vs LiteRT {err:.3g}"


@pytest.mark.litert
@pytest.mark.parametrize("arch", list(FAMILIES))
def test_refnet_graph_in_litert_is_exact(keras_files, arch):
    from refnet.litert import run_litert
    from refnet.tflite_writer import write_tflite
    f = keras_files[arch]
    g = import_checkpoint(f["h5"]).graph()
    theirs = run_litert(write_tflite(g), [f["x"]])[g.outputs[0]]
    assert same_bits(run(g, f["x"]), theirs)


def test_store_round_trip(keras_files, tmp_path):
    f = keras_files["mobilenet_v3_small"]
    store = import_checkpoint(f["h5"])
    path = tmp_path / "v3s.h5"
    write_store(path, store)
    back = read_store(path)
    assert back.spec == store.spec
    assert back.provenance == store.provenance
    assert back.provenance["source_file"] == f["h5"].name
    import hashlib
    assert back.provenance["source_sha256"] == hashlib.sha256(f["h5"].read_bytes()).hexdigest()
    assert back.provenance["importer"] == "refnet.importers.keras_h5"
    assert sorted(back.tensors) == sorted(store.tensors)
    for k, v in store.tensors.items():
        assert back.tensors[k].dtype == np.float32 and same_bits(back.tensors[k], v), k
    assert same_bits(run(load_graph(path), f["x"]), run(store.graph(), f["x"]))


def test_cli_convert_and_info(keras_files, tmp_path):
    f = keras_files["mobilenet_v2"]
    dst = tmp_path / "v2.h5"
    subprocess.run([sys.executable, "-m", "refnet", "convert", str(f["h5"]), str(dst)], check=True,
                   capture_output=True)
    out = subprocess.run([sys.executable, "-m", "refnet", "info", str(dst)], check=True,
                         capture_output=True, text=True).stdout
    assert '"arch": "mobilenet_v2"' in out and "source_sha256" in out


def test_importers_do_not_import_tensorflow(keras_files, tmp_path):
    f = keras_files["mobilenet_v3_large"]
    store = tmp_path / "s.h5"
    code = f"""
import sys
import numpy as np
from refnet.importers import import_checkpoint
from refnet.weights_store import write_store, load_graph
import refnet
s = import_checkpoint({str(f['h5'])!r})
import_checkpoint({str(f['weights_h5'])!r})
write_store({str(store)!r}, s)
g = load_graph({str(store)!r})
it = refnet.Interpreter(graph=g); it.allocate_tensors()
it.set_tensor(g.inputs[0], np.zeros((1, 96, 96, 3), np.float32)); it.invoke()
bad = [m for m in ("tensorflow", "keras", "tf_keras", "tflite_runtime", "ai_edge_litert") if m in sys.modules]
assert not bad, bad
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# --- corrupt and truncated files ---------------------------------------------------------------

def test_truncated_h5(keras_files, tmp_path):
    data = keras_files["mobilenet_v2"]["h5"].read_bytes()
    for cut in (100, len(data) // 2, len(data) - 1000):
        p = tmp_path / f"cut{cut}.h5"
        p.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError, match=str(p.name)):
            import_checkpoint(p)


def test_garbage_h5(tmp_path):
    p = tmp_path / "junk.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(ModelFormatError, match="junk.h5"):
        import_checkpoint(p)


def test_missing_and_misshapen_entries(keras_files, tmp_path):
    import h5py
    import shutil
    src = keras_files["mobilenet_v3_small"]["h5"]
    p = tmp_path / "missing.h5"
    shutil.copy(src, p)
    with h5py.File(p, "r+") as f:
        del f["model_weights/expanded_conv_3_project/expanded_conv_3_project/kernel"]
    with pytest.raises(ModelFormatError, match="expanded_conv_3_project"):
        import_checkpoint(p)
    q = tmp_path / "shape.h5"
    shutil.copy(src, q)
    with h5py.File(q, "r+") as f:
        name = "model_weights/expanded_conv_3_project/expanded_conv_3_project/kernel"
        k = f[name][()]
        del f[name]
        f[name] = k[:, :, :, :-8]
    with pytest.raises(ModelFormatError, match="expanded_conv_3/project|match no MobileNet"):
        import_checkpoint(q)
    w = tmp_path / "w.weights.h5"
    shutil.copy(keras_files["mobilenet_v3_small"]["weights_h5"], w)
    with h5py.File(w, "r+") as f:
        del f["layers/batch_normalization_3/vars/2"]
    with pytest.raises(ModelFormatError, match="batch_normalization_3"):
        import_checkpoint(w)


def test_corrupt_store(keras_files, tmp_path):
    import h5py
    p = tmp_path / "s.h5"
    write_store(p, import_checkpoint(keras_files["mobilenet_v3_small"]["h5"]))
    data = p.read_bytes()
    t = tmp_path / "t.h5"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="t.h5"):
        read_store(t)
    with h5py.File(p, "r+") as f:
        del f["tensors/MobilenetV3/Conv_2/biases"]
    with pytest.raises(ModelFormatError, match="MobilenetV3/Conv_2/biases"):
        read_store(p)
    with pytest.raises(ModelFormatError, match="not a refnet weight store"):
        read_store(keras_files["mobilenet_v2"]["h5"])


def _nested(tmp_path, head, suffix=".h5"):
    """A fine-tuned model as users save it: keras.applications MobileNetV2 (no top) nested as one
    layer, then `head`; batch norms given non-trivial statistics."""
    keras = pytest.importorskip("tensorflow").keras
    rng = np.random.default_rng(3)
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mu, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, .1, b.shape),
                               rng.normal(0, .1, mu.shape), rng.uniform(.5, 2, var.shape)])
    inp = keras.Input((96, 96, 3))
    x = base(inp, training=False)
    for layer in head(keras):
        x = layer(x)
    model = keras.Model(inp, x)
    path = tmp_path / f"fine_tuned{suffix}"
    model.save(path)
    return model, path


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_nested_base_and_head_as_users_save_them(tmp_path, suffix):
    """The transfer-learning pattern (base as one layer, GlobalAveragePooling2D, Dropout, a 7-way
    Dense softmax): imported with its class count and resolution read from the file, equal to
    Keras's own model(x, training=False) within 1e-5 of the output range."""
    from refnet.model_files import load_model

    model, path = _nested(tmp_path, lambda k: [k.layers.GlobalAveragePooling2D(), k.layers.Dropout(0.2),
                                              k.layers.Dense(7, activation="softmax")], suffix)
    loaded = load_model(str(path))
    assert "mobilenet_v2 0.35 at 96x96" in loaded.note
    it = refnet.Interpreter(graph=loaded.graph)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    for seed in (4, 5):
        x = np.random.default_rng(seed).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
        expect = np.asarray(model(x, training=False))
        it.set_tensor(d["index"], x)
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        assert got.shape == (1, 7)
        assert np.abs(got - expect).max() <= 1e-5 * np.abs(expect).max()


@pytest.mark.parametrize("head, message", [
    (lambda k: [k.layers.Conv2D(8, 1), k.layers.GlobalAveragePooling2D(), k.layers.Dense(3)],
     r"layer 'conv2d\w*' \(Conv2D\) after the base"),
    (lambda k: [k.layers.GlobalAveragePooling2D(), k.layers.Dense(3, activation="tanh")],
     r"Dense 'dense\w*' has activation 'tanh'"),
    (lambda k: [k.layers.GlobalAveragePooling2D(), k.layers.LeakyReLU(), k.layers.Dense(3)],
     r"\(LeakyReLU\) after the base"),
])
def test_heads_refnet_cannot_read_are_typed_errors(tmp_path, head, message):
    from refnet.model_files import load_model

    for suffix in (".h5", ".keras"):
        _, path = _nested(tmp_path, head, suffix)
        with pytest.raises(ModelFormatError, match=message):
            load_model(str(path))


def test_models_that_are_not_a_chain_or_scale_with_ops_are_typed_errors(tmp_path):
    """Two heads on one base (not a chain), and preprocess_input written as tensor arithmetic
    (Keras records it as op layers, not a Rescaling): each a one-line error saying what to do."""
    keras = pytest.importorskip("tensorflow").keras
    from refnet.model_files import load_model

    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35)
    inp = keras.Input((96, 96, 3))
    f = keras.layers.GlobalAveragePooling2D()(base(inp))
    two = keras.Model(inp, keras.layers.Concatenate()([keras.layers.Dense(2)(f), keras.layers.Dense(3)(f)]))
    inp2 = keras.Input((96, 96, 3))
    ops = keras.Model(inp2, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(inp2 / 127.5 - 1))))
    for model, message in ((two, r"reads \[.*\], not the layer before it"), (ops, r"before the base: refnet reads "
                                                                             r"Rescaling and Normalization")):
        for suffix in (".h5", ".keras"):
            path = tmp_path / f"m{suffix}"
            model.save(path)
            with pytest.raises(ModelFormatError, match=message):
                load_model(str(path))


def test_a_plain_keras_archive(tmp_path):
    """keras.applications MobileNetV2 with its own top saved as .keras: read through config.json."""
    keras = pytest.importorskip("tensorflow").keras
    from refnet.model_files import load_model

    rng = np.random.default_rng(6)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None, alpha=0.35, classes=10)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mu, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, .1, b.shape),
                               rng.normal(0, .1, mu.shape), rng.uniform(.5, 2, var.shape)])
    path = tmp_path / "plain.keras"
    model.save(path)
    x = rng.uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    expect = np.asarray(model(x, training=False))
    it = refnet.Interpreter(graph=load_model(str(path)).graph)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    assert got.shape == (1, 10) and np.ptp(expect) > 1e-3  # the scores are not uniform
    assert np.abs(got - expect).max() <= 1e-5 * np.abs(expect).max()
