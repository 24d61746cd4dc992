"""refnet/model_files.py: every command takes a checkpoint as it takes a .tflite, the format told
by the file's contents (here beside the importer tests, whose Keras and TF-slim fixtures it uses)."""
from __future__ import annotations

import json
import shutil

import pytest

from refnet.cli import main
from refnet.model_files import load_model, sniff


def test_formats_are_told_by_contents(keras_files, slim_checkpoints, tmp_path):
    h5 = keras_files["mobilenet_v2"]["h5"]
    renamed = tmp_path / "model.bin"
    shutil.copy(h5, renamed)
    assert sniff(h5) == "hdf5" and sniff(renamed) == "hdf5"
    assert sniff(slim_checkpoints["mobilenet_v2"]["prefix"]) == "tf-checkpoint"
    from refnet.cli import default_model_path
    tfl = tmp_path / "model.weights"  # a .tflite under another name
    shutil.copy(default_model_path(), tfl)
    assert sniff(tfl) == "tflite" and load_model(str(tfl)).note is None
    zipped = tmp_path / "m.keras"
    zipped.write_bytes(b"PK\x03\x04" + bytes(40))
    from refnet import ModelFormatError

    with pytest.raises(ModelFormatError, match=r"m.keras: corrupt .keras archive"):
        load_model(str(zipped))


@pytest.mark.litert
def test_run_and_verify_a_keras_h5_against_litert_on_its_export(keras_files, capsys):
    """`refnet run model.h5`: imported, written as .tflite, and LiteRT's reference path on that export
    is bit-exact with refnet's reference on every tensor. float32 on the optimized and XNNPACK paths:
    their sums are not modelled (README "Profiles"); run reports their distance in ULP and that is not
    a failure (exit 0)."""
    h5 = str(keras_files["mobilenet_v2"]["h5"])
    assert main(["run", h5]) == 0
    out = capsys.readouterr().out
    assert f"{h5}: keras-h5 imported as mobilenet_v2" in out
    reference = next(line for line in out.splitlines() if line.startswith("reference "))
    assert "bit-exact with refnet's reference@" in reference
    for path in ("optimized", "xnnpack"):
        line = next(line for line in out.splitlines() if line.startswith(path + " "))
        assert "float32 tensors within" in line and "an order refnet does not model" in line, line
    assert main(["verify", h5, "--json", "-", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["all_equal"] and report["paths"][0]["tensors_equal"] == report["paths"][0]["tensors_compared"]


def test_info_of_a_checkpoint_prefix(slim_checkpoints, capsys):
    prefix = str(slim_checkpoints["mobilenet_v2"]["prefix"])
    assert main(["info", prefix]) == 0
    out = capsys.readouterr().out
    assert f"{prefix}: tf-checkpoint imported as mobilenet_v2" in out
    assert "resolution not recorded in the file: 224, assumed" in out and "total:" in out


@pytest.mark.litert
def test_convert_to_tflite_runs_in_litert_bit_exact(keras_files, tmp_path, capsys):
    """`refnet convert SRC --to-tflite OUT`: the float32 graph as a .tflite; LiteRT's reference path on
    it gives refnet's bytes on every tensor (refnet verify on the export)."""
    out = tmp_path / "v2.tflite"
    assert main(["convert", str(keras_files["mobilenet_v2"]["h5"]), "--to-tflite", str(out)]) == 0
    assert f"-> {out}: mobilenet_v2" in capsys.readouterr().out
    assert sniff(out) == "tflite"
    assert main(["verify", str(out), "--json", "-", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["all_equal"] is True
    assert main(["convert", str(keras_files["mobilenet_v2"]["h5"])]) == 2
    assert "needs DST.h5" in capsys.readouterr().err
