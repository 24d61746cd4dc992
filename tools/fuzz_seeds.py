"""Seed checkpoints and images for tools.fuzz, built once with TensorFlow/Keras and cached.

    python -m tools.fuzz_seeds [DIR]      # default .cache/fuzz-seeds

Per model (MobileNetV2 alpha 0.35 at 96x96, and MobileNetV3-Small minimalistic alpha 0.75 at
96x96; weights=None, then seeded random weights and batch-norm statistics, so folding is not
trivial): NAME.h5 (model.save, legacy HDF5), NAME.keras (Keras 3 zip), NAME.weights.h5 (Keras 3
save_weights) and NAME.ckpt (a TF-slim TensorBundle written by tf.raw_ops.SaveV2 from the .h5's
slim variables: NAME.ckpt.index + NAME.ckpt.data-00000-of-00001). Images: a 64x48 picture as
JPEG, PNG and BMP (Pillow only). TensorFlow is imported only when this module runs as a program.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO / ".cache" / "fuzz-seeds"
MODELS = {"v2_0.35_96": ("MobileNetV2", 0.35, {}),
          "v3s_min_0.75_96": ("MobileNetV3Small", 0.75, {"minimalistic": True,
                                                         "include_preprocessing": False})}
IMAGES = ("seed.jpg", "seed.png", "seed.bmp")
SUFFIXES = (".h5", ".keras", ".weights.h5", ".ckpt.index", ".ckpt.data-00000-of-00001")


def seed_files(seed_dir: Path = SEED_DIR) -> list[Path]:
    return [seed_dir / (m + s) for m in MODELS for s in SUFFIXES] + [seed_dir / i for i in IMAGES]


def ensure_seeds(seed_dir: Path = SEED_DIR) -> Path:
    """The seed directory, built first (in a subprocess: TensorFlow stays out of the caller) if
    any file is missing."""
    seed_dir = Path(seed_dir)
    if not all(p.exists() for p in seed_files(seed_dir)):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([sys.executable, "-m", "tools.fuzz_seeds", str(seed_dir)], cwd=REPO,
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building the fuzz seeds failed:\n{proc.stderr[-3000:]}")
    return seed_dir


def _keras_model(cls: str, alpha: float, kw: dict, seed: int):
    import keras
    m = getattr(keras.applications, cls)(weights=None, classes=1001, input_shape=(96, 96, 3),
                                         alpha=alpha, classifier_activation="softmax", **kw)
    rng = np.random.default_rng(seed)
    values = []
    for w in m.weights:
        name, shape = w.path, tuple(w.shape)
        if name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("beta", "bias", "moving_mean")):
            v = rng.normal(0, 0.1, shape)
        elif name.endswith("moving_variance"):
            v = rng.uniform(0.5, 2.0, shape)
        else:
            v = rng.standard_normal(shape) * np.sqrt(1.0 / max(1, int(np.prod(shape[:-1]))))
        values.append(v.astype(np.float32))
    m.set_weights(values)
    return m


def _images(seed_dir: Path) -> None:
    from PIL import Image
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(pixels, "RGB")
    im.save(seed_dir / "seed.jpg", quality=85)
    im.save(seed_dir / "seed.png")
    im.save(seed_dir / "seed.bmp")


def build(seed_dir: Path) -> None:
    import tensorflow as tf

    sys.path.insert(0, str(REPO))
    from refnet.importers.keras_h5 import keras_slim_variables

    seed_dir.mkdir(parents=True, exist_ok=True)
    for k, (name, (cls, alpha, kw)) in enumerate(MODELS.items()):
        m = _keras_model(cls, alpha, kw, seed=11 + k)
        m.save(seed_dir / f"{name}.h5")
        m.save(seed_dir / f"{name}.keras")
        m.save_weights(seed_dir / f"{name}.weights.h5")
        variables = keras_slim_variables(seed_dir / f"{name}.h5")[1]
        names = sorted(variables)
        tf.raw_ops.SaveV2(prefix=str(seed_dir / f"{name}.ckpt"), tensor_names=names,
                          shape_and_slices=[""] * len(names),
                          tensors=[tf.constant(variables[n]) for n in names])
    _images(seed_dir)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else SEED_DIR)
