"""refnet dump (every tensor a LiteRT build computes, made where the build runs) and
refnet verify --against-dump (refnet's prediction for that build, compared bit for bit)."""
import subprocess
import sys

import numpy as np
import pytest

import refnet
from refnet import bits
from refnet.cli import main
from refnet.dump import dump
from refnet.images import image_input
from refnet.litert import run_litert
from refnet.verify import every_tensor_an_output

pytestmark = [pytest.mark.shared, pytest.mark.litert]


@pytest.fixture
def coral(shared_dir, tmp_path):
    model = shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    it = refnet.Interpreter(model_path=str(model))
    x = image_input(shared_dir / "images" / "cat.bmp", it.get_input_details()[0])
    np.save(tmp_path / "x.npy", x)
    return model, x, tmp_path


def test_rewrite_keeps_every_tensor_of_litert(coral):
    """On ai-edge-litert 2.3.0 the every-tensor-an-output rewrite changes no bit, on any path."""
    model, x, _ = coral
    content = model.read_bytes()
    prepared = every_tensor_an_output(content)
    assert len(refnet.read_tflite(model_content=prepared).outputs) == 66
    for path in ("reference", "optimized", "xnnpack"):
        a, b = run_litert(content, [x], path=path), run_litert(prepared, [x], path=path)
        assert set(a) == set(b) and all(bits.same_bits(a[t], b[t]) for t in a), path


def test_dump_records_the_build(coral):
    model, x, _ = coral
    out = dump(model.read_bytes(), [x], "optimized")
    assert str(out["__build__"]) == refnet.profile.installed_build()
    assert str(out["__path__"]) == "optimized"
    assert sum(k.startswith("tensor_") for k in out) >= 174


def test_dump_then_verify_against_it(coral, capsys):
    model, x, tmp = coral
    for path in ("reference", "xnnpack"):
        npz = tmp / f"{path}.npz"
        assert main(["dump", str(model), "--input", str(tmp / "x.npy"), "--out", str(npz), "--path", path]) == 0
        assert main(["verify", str(model), "--against-dump", str(npz), "--input", str(tmp / "x.npy"), "-q"]) == 0
        out = capsys.readouterr().out
        assert f"refnet profile: {path}@ai-edge-litert-2.3.0/" in out
        assert "every compared tensor is bit-exact" in out
    # refnet's reference arithmetic against the XNNPACK dump: the departures are found
    assert main(["verify", str(model), "--against-dump", str(tmp / "xnnpack.npz"), "--input",
                 str(tmp / "x.npy"), "--profile", "reference", "-q"]) == 1


def test_dump_runs_alone_as_a_script(coral):
    """dump.py needs NumPy and LiteRT only: run it as a plain script on the prepared model."""
    model, _, tmp = coral
    assert main(["dump", str(model), "--prepare-only", "--out", str(tmp / "m.tflite")]) == 0
    proc = subprocess.run([sys.executable, refnet.dump.__file__, str(tmp / "m.tflite"), "--input",
                           str(tmp / "x.npy"), "--out", str(tmp / "d.npz")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert main(["verify", str(model), "--against-dump", str(tmp / "d.npz"), "--input", str(tmp / "x.npy"), "-q"]) == 0


def test_dump_errors_are_typed(coral, shared_dir, capsys):
    model, _, tmp = coral
    other = shared_dir / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    assert main(["dump", str(model), "--input", str(tmp / "x.npy"), "--out", str(tmp / "d.npz")]) == 0
    assert main(["verify", str(other), "--against-dump", str(tmp / "d.npz"), "--input", str(tmp / "x.npy")]) == 2
    assert "made from another model" in capsys.readouterr().err
    np.save(tmp / "bad.npy", np.zeros((1, 5), np.float32))
    assert main(["dump", str(model), "--input", str(tmp / "bad.npy"), "--out", str(tmp / "e.npz")]) == 2
    assert "needs uint8 [1, 224, 224, 3]" in capsys.readouterr().err
    assert main(["verify", str(model), "--against-dump", str(tmp / "d.npz")]) == 2
    assert "needs --input" in capsys.readouterr().err
