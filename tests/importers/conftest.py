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


@pytest.fixture(scope="session")
def slim_checkpoints(keras_files, tmp_path_factory):
    """Per family: the Keras model's variables under the seed's slim names, saved by TF's own
    SaveV2 as a TensorBundle checkpoint (plus global_step and an optimizer slot, as real
    checkpoints hold). EdgeTPU (no Keras model) gets refnet's seeded random variables."""
    tf = pytest.importorskip("tensorflow")
    from refnet.importers.keras_h5 import keras_slim_variables
    from refnet.models import ArchSpec, get_net
    from refnet.models.fold import random_variables
    d = tmp_path_factory.mktemp("slim")
    out = {}
    sets = {arch: keras_slim_variables(f["h5"])[1] for arch, f in keras_files.items()}
    sets["mobilenet_edgetpu"] = random_variables(get_net(ArchSpec("mobilenet_edgetpu", 0.75, 96)), 7)
    for arch, variables in sets.items():
        prefix = d / arch / "model.ckpt-1000"
        names = sorted(variables)
        tensors = [tf.constant(variables[n]) for n in names]
        names += ["global_step", names[0] + "/RMSProp"]
        tensors += [tf.constant(np.int64(1000)), tf.constant(np.zeros_like(variables[names[0]]))]
        tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
        out[arch] = dict(prefix=prefix, variables=variables)
    return out
