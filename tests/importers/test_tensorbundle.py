"""TF-slim TensorBundle checkpoints (written by TF's SaveV2 in the fixture), read without TF."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from refnet.errors import ModelFormatError
from refnet.importers import import_checkpoint
from refnet.importers.tensorbundle import TensorBundle, crc32c, read_index
from refnet.models import ArchSpec, get_net
from refnet.models.fold import fold
from refnet.models.spec import SE_GATE_SCALE_KERAS, SE_GATE_SCALE_SLIM

from test_keras_h5 import close, run
from refnet.bits import same_bits


def test_crc32c_known_answers():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
                                  "mobilenet_v3_large_minimalistic",
                                  "mobilenet_v3_small_minimalistic"])
def test_slim_checkpoint_equals_keras(keras_files, slim_checkpoints, arch):
    ck = slim_checkpoints[arch]
    bundle = TensorBundle(ck["prefix"])
    for name, value in ck["variables"].items():  # every variable, bit for bit
        assert same_bits(bundle.tensor(name), value), name
    store = import_checkpoint(str(ck["prefix"]) + ".index")
    ref = import_checkpoint(keras_files[arch]["h5"])
    assert (store.spec.arch, store.spec.depth_multiplier) == (ref.spec.arch, ref.spec.depth_multiplier)
    assert store.spec.se_gate_scale == SE_GATE_SCALE_SLIM
    assert store.provenance["source_format"] == "tf-checkpoint"
    assert sorted(store.tensors) == sorted(ref.tensors)
    for k in ref.tensors:
        assert same_bits(store.tensors[k], ref.tensors[k]), k
    # run with Keras's gate constant and resolution: Keras's output within the stated tolerance
    store.spec.se_gate_scale = SE_GATE_SCALE_KERAS
    store.spec.resolution = keras_files[arch]["x"].shape[1]
    store.spec.softmax = False
    ok, err = close(run(store.graph(), keras_files[arch]["x"]), keras_files[arch]["logits"])
    assert ok, err


def test_edgetpu_checkpoint(slim_checkpoints):
    ck = slim_checkpoints["mobilenet_edgetpu"]
    store = import_checkpoint(ck["prefix"])
    assert (store.spec.arch, store.spec.depth_multiplier) == ("mobilenet_edgetpu", 0.75)
    assert store.spec.finegrain_classification_mode
    expect = fold(get_net(ArchSpec("mobilenet_edgetpu", 0.75, 96)), ck["variables"])
    for k, v in expect.items():
        assert same_bits(store.tensors[k], v), k
    store.spec.resolution = 96
    y = run(store.graph(), np.zeros((1, 96, 96, 3), np.float32))
    assert y.shape == (1, 1001)


def test_ema_shadows_are_used(slim_checkpoints, tmp_path):
    tf = pytest.importorskip("tensorflow")
    variables = slim_checkpoints["mobilenet_v3_small_minimalistic"]["variables"]
    names = sorted(variables)
    prefix = tmp_path / "ema"
    ema = {n: variables[n] * np.float32(0.5) for n in names}
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names + [n + "/ExponentialMovingAverage" for n in names],
                      shape_and_slices=[""] * (2 * len(names)),
                      tensors=[tf.constant(variables[n]) for n in names] +
                              [tf.constant(ema[n]) for n in names])
    from refnet.importers.tensorbundle import slim_variables
    got = slim_variables(TensorBundle(prefix))
    assert all(same_bits(got[n], ema[n]) for n in names)
    assert "moving-average" in import_checkpoint(prefix).provenance["notes"]


def test_tensorbundle_without_tensorflow(slim_checkpoints):
    prefix = slim_checkpoints["mobilenet_v2"]["prefix"]
    code = f"""
import sys
from refnet.importers import import_checkpoint
s = import_checkpoint({str(prefix)!r})
assert s.spec.arch == "mobilenet_v2"
bad = [m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules]
assert not bad, bad
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _copy(prefix, tmp_path):
    dst = tmp_path / "c" / "model"
    dst.parent.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(str(prefix) + suffix, str(dst) + suffix)
    return dst


def test_corrupt_index(slim_checkpoints, tmp_path):
    src = slim_checkpoints["mobilenet_v3_small"]["prefix"]
    dst = _copy(src, tmp_path)
    index = dst.with_name("model.index")
    data = index.read_bytes()
    index.write_bytes(data[:-10])  # truncated: footer gone
    with pytest.raises(ModelFormatError, match="model.index"):
        import_checkpoint(dst)
    b = bytearray(data)
    b[len(b) // 3] ^= 0x40  # a flipped bit inside a data block
    index.write_bytes(bytes(b))
    with pytest.raises(ModelFormatError, match="CRC32C mismatch|entry|block"):
        read_index(index)
    index.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFormatError, match="magic"):
        import_checkpoint(dst)


def test_corrupt_data(slim_checkpoints, tmp_path):
    src = slim_checkpoints["mobilenet_v3_small"]["prefix"]
    dst = _copy(src, tmp_path)
    shard = dst.with_name("model.data-00000-of-00001")
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="past the end of the data file"):
        import_checkpoint(dst)
    b = bytearray(data)
    b[100] ^= 1
    shard.write_bytes(bytes(b))
    with pytest.raises(ModelFormatError, match="CRC32C mismatch"):
        import_checkpoint(dst)
    shard.unlink()
    with pytest.raises(ModelFormatError, match="data shard"):
        import_checkpoint(dst)


def test_resolution_is_said_and_taken_from_the_command_line(slim_checkpoints, tmp_path, capsys):
    """A checkpoint records no input resolution: convert says which one it used and how to change
    it, and --resolution is what the store and its provenance note carry."""
    from refnet.cli import main
    from refnet.weights_store import read_store

    prefix = str(slim_checkpoints["mobilenet_edgetpu"]["prefix"])
    assert main(["convert", prefix, str(tmp_path / "a.h5")]) == 0
    out = capsys.readouterr().out
    assert "res=224" in out and "note: resolution not recorded in the file: 224, assumed (refnet " \
                                "convert --resolution R for another)" in out
    assert main(["convert", prefix, str(tmp_path / "b.h5"), "--resolution", "96"]) == 0
    assert "res=96" in capsys.readouterr().out
    store = read_store(tmp_path / "b.h5")
    assert store.spec.resolution == 96
    assert "resolution not recorded in the file: 96, as given (--resolution)" in store.provenance["notes"]
