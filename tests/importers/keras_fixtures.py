"""Generate Keras MobileNets with seeded weights (TensorFlow/Keras needed only here)."""
from __future__ import annotations


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
    from tools.keras_patterns import seed_weights

    seed_weights(m, seed)
    return m


def keras_tflite(model) -> bytes:
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    return conv.convert()
