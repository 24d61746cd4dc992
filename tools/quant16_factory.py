"""16x8 quantized MobileNets: int16 activations, int8 weights (TensorFlow's
`EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`), float32 input and output through
QUANTIZE/DEQUANTIZE. The Keras models and their calibration are tools/model_factory.py's (its
functions are imported, so the weights equal its int8 models'); only the conversion differs.

    python -m tools.quant16_factory            # builds (TensorFlow) and lists the cached models

Cached under .cache/quant16/<name>_<hash>.tflite, the hash of this file, model_factory.py and the
TensorFlow/Keras versions (model_factory's own cache is left alone).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tools import model_factory as mf

FAMILIES = ("v2", "v3_small", "v3_large", "edgetpu")
RESOLUTION = 96


def factory_hash() -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(mf.factory_hash().encode())
    return h.hexdigest()[:10]


def cache_dir() -> Path:
    return Path(os.environ.get("REFNET_QUANT16_CACHE", mf.REPO / ".cache" / "quant16"))


def model_path(family: str, resolution: int = RESOLUTION, alpha: float | None = None,
               seed: int = 0) -> Path:
    a = mf._alpha(family, alpha)
    return cache_dir() / f"{mf._group_stem(family, resolution, a, seed)}_16x8_{factory_hash()}.tflite"


def get_model(family: str, resolution: int = RESOLUTION, alpha: float | None = None,
              seed: int = 0) -> Path:
    """Path of the 16x8 .tflite, built (with TensorFlow) when absent."""
    path = model_path(family, resolution, alpha, seed)
    if not path.exists():
        build(family, resolution, alpha, seed)
    return path


def _convert16x8(tf, frozen, rep_data: np.ndarray) -> bytes:
    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for x in rep_data:
            yield [x[None]]

    conv.representative_dataset = representative
    # The converter has no 16x8 HARD_SWISH (TensorFlow 2.21): with TFLITE_BUILTINS beside the 16x8
    # set it stays float32 between a DEQUANTIZE and a QUANTIZE (V3); every other op is 16x8.
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv.convert()


def build(family: str, resolution: int = RESOLUTION, alpha: float | None = None,
          seed: int = 0) -> dict:
    """Build, calibrate (model_factory's way), convert to 16x8 and check the file under LiteRT's
    reference kernels on a real image; writes the model and a JSON record beside it."""
    a = mf._alpha(family, alpha)
    path = model_path(family, resolution, a, seed)
    meta_path = path.with_suffix(".json")
    with mf._lock(path.with_suffix(".lock")):
        if path.exists() and meta_path.exists():
            return json.loads(meta_path.read_text())
        image = mf.load_image(mf.image_paths()[0], resolution)
        t0 = time.perf_counter()
        tf, keras = mf._import_tf()
        with mf._quiet():
            keras.utils.set_random_seed(seed)
            model = mf._keras_model(keras, family, resolution, a)
            mf._calibrate(tf, keras, model, resolution, seed)
            rep = mf._random_crops(resolution, mf.REP_CROPS_PER_IMAGE,
                                   np.random.default_rng([seed, resolution, 2]))
            from tensorflow.python.framework.convert_to_constants import (
                convert_variables_to_constants_v2)

            fn = tf.function(lambda x: model(x, training=False))
            cf = fn.get_concrete_function(
                tf.TensorSpec([1, resolution, resolution, 3], tf.float32, name="input"))
            frozen = convert_variables_to_constants_v2(cf)
            data = _convert16x8(tf, frozen, rep)
        cache_dir().mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        try:
            check = mf._check([tmp], image)[str(tmp)]
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        meta = {"family": family, "alpha": a, "resolution": resolution, "seed": seed,
                "factory_hash": factory_hash(), "versions": mf._versions(),
                "bytes": len(data), "ops": mf.op_counts(path), "check_cat": check,
                "seconds": time.perf_counter() - t0}
        mf._atomic_write(meta_path, json.dumps(meta, indent=1).encode())
        keras.backend.clear_session()
        return meta


def main(argv=None) -> int:
    families = (argv if argv is not None else sys.argv[1:]) or FAMILIES
    for family in families:
        get_model(family)
        meta = json.loads(model_path(family).with_suffix(".json").read_text())
        print(f"{model_path(family).name}: {meta['bytes']} bytes, {meta['check_cat']}, "
              f"ops {meta['ops']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
