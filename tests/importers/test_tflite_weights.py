"""Float .tflite -> weights, and `refnet info MODEL.tflite`."""
import json
import subprocess
import sys

import numpy as np
import pytest

from refnet.importers import import_checkpoint
from refnet.models import count
from refnet.tflite_writer import write_tflite

from test_keras_h5 import close, run
from refnet.bits import same_bits


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small"])
def test_keras_converted_tflite(keras_files, arch):
    f = keras_files[arch]
    store = import_checkpoint(f["tflite"])
    assert (store.spec.arch, store.spec.depth_multiplier) == (arch, f["alpha"])
    ok, err = close(run(store.graph(), f["x"]), f["logits"])
    assert ok, err
    # the converter folded batch norm itself (float32): close to refnet's folding, not equal
    ref = import_checkpoint(f["h5"]).tensors
    for k, v in store.tensors.items():
        assert np.allclose(v, ref[k], rtol=1e-5, atol=1e-6), k


def test_refnet_tflite_round_trip(tmp_path):
    from refnet.models import mobilenet_edgetpu
    g = mobilenet_edgetpu(depth_multiplier=0.75, resolution=64)
    p = tmp_path / "e.tflite"
    p.write_bytes(write_tflite(g))
    store = import_checkpoint(p)
    assert store.spec.arch == "mobilenet_edgetpu" and store.spec.resolution == 64
    consts = {t.name: t.data for t in g.tensors if t.data is not None}
    for k, v in store.tensors.items():
        w = consts[k]
        w = np.transpose(w, (1, 2, 3, 0)) if w.ndim == 4 else w
        assert same_bits(v, w), k


def test_info_tflite(keras_files):
    f = keras_files["mobilenet_v3_small"]
    out = subprocess.run([sys.executable, "-m", "refnet", "info", str(f["tflite"]), "--json"],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    store = import_checkpoint(f["tflite"])
    assert info["macs"] == count(store.net())["macs"]
    kinds = {r["op"] for r in info["ops"]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH"} <= kinds
    text = subprocess.run([sys.executable, "-m", "refnet", "info", str(f["tflite"])],
                          capture_output=True, text=True, check=True).stdout
    assert "quantization" in text and "total:" in text
