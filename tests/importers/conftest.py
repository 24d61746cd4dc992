import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keras_fixtures import FAMILIES, RES, keras_model, keras_tflite  # noqa: E402

# families whose Keras model is also converted to .tflite by TF's converter (slow: ~10 s each)
CONVERTED = ("mobilenet_v2", "mobilenet_v3_small")
ALPHA = {"mobilenet_v2": 1.0, "mobilenet_v3_large": 1.0, "mobilenet_v3_small": 0.75,
         "mobilenet_v3_large_minimalistic": 1.0, "mobilenet_v3_small_minimalistic": 0.75}


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory):
    """Per family: Keras .h5, .weights.h5, the Keras logits on a fixed input, and (some) the
    Keras model converted to float .tflite. Generating needs TensorFlow; importing does not."""
    pytest.importorskip("tensorflow")
    d = tmp_path_factory.mktemp("keras")
    x = np.random.default_rng(5).uniform(-1, 1, (1, RES, RES, 3)).astype(np.float32)
    out = {}
    for arch in FAMILIES:
        m = keras_model(arch, ALPHA[arch], seed=zlib.crc32(arch.encode()) % 1000)
        h5, wh5 = d / f"{arch}.h5", d / f"{arch}.weights.h5"
        m.save(h5)
        m.save_weights(wh5)
        tfl = None
        if arch in CONVERTED:
            tfl = d / f"{arch}.tflite"
            tfl.write_bytes(keras_tflite(m))
        out[arch] = dict(h5=h5, weights_h5=wh5, tflite=tfl, x=x,
                         logits=np.asarray(m(x, training=False)), alpha=ALPHA[arch])
    return out
