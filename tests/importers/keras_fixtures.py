"""Generate Keras MobileNets with seeded weights (TensorFlow/Keras needed only here)."""
from __future__ import annotations

import numpy as np

RES = 96
FAMILIES = {
    "mobilenet_v2": ("MobileNetV2", {}),
    "mobilenet_v3_large": ("MobileNetV3Large", {}),
    "mobilenet_v3_small": ("MobileNetV3Small", {}),
    "mobilenet_v3_large_minimalistic": ("MobileNetV3Large", {"minimalistic": True}),
    "mobilenet_v3_small_minimalistic": ("MobileNetV3Small", {"minimalistic": True}),
}


def keras_model(arch: str, alpha: float = 1.0, seed: int = 0, res: int = RES):
    import keras
    cls, kw = FAMILIES[arch]
    extra = {"include_preprocessing": False} if "V3" in cls else {}
    m = getattr(keras.applications, cls)(weights=None, classes=1001, input_shape=(res, res, 3),
                                         alpha=alpha, classifier_activation=None, **kw, **extra)
    rng = np.random.default_rng(seed)
    values = []
    for w in m.weights:
        name, shape = w.path if hasattr(w, "path") else w.name, tuple(w.shape)
        if name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("beta") or name.endswith("bias"):
            v = rng.normal(0, 0.1, shape)
        elif name.endswith("moving_mean"):
            v = rng.normal(0, 0.1, shape)
        elif name.endswith("moving_variance"):
            v = rng.uniform(0.5, 2.0, shape)
        else:  # kernels: He-scaled, depthwise by its own kernel area
            fan_in = int(np.prod(shape[:-1])) if len(shape) != 4 or shape[3] != 1 else shape[0] * shape[1]
            v = rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)
        values.append(v.astype(np.float32))
    m.set_weights(values)
    return m


def keras_tflite(model) -> bytes:
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    return conv.convert()
