"""MobileNet backbones with the dense-prediction heads people deploy beside classifiers, built with
TensorFlow and converted by LiteRT's converter (seeded random weights, calibrated on the shared images):

- ``movenet_like``: MoveNet-style single-pose model. uint8 pixels in (the graph casts and normalizes them,
  as MoveNet does), a MobileNetV2 backbone with a small feature pyramid (stride 16 upsampled onto
  stride 8), keypoint heatmap and offset heads, and the decode in the graph: the heatmap's argmax per
  keypoint, its cell as row = index floordiv width and column = index - row * width, the offsets and the
  score gathered at that cell (GATHER_ND), keypoints out as float32 [1, 1, 17, 3] = (y, x, score) in [0, 1].
- ``deeplab_like``: DeepLab-V3-style segmentation: MobileNetV2 at output stride 16, an ASPP-lite head
  (a 1x1 branch and an image-pooling branch resized back and concatenated), class logits resized to the
  input (bilinear) and ARG_MAX per pixel.

Kinds: float32 and int8 (post-training full-integer quantization; the decode's integer ops stay int32;
float or uint8 io as the model's own input has it); deeplab_like also uint8_io.

    python -m tools.head_factory          # builds (TensorFlow) and lists the cached models

Cached under .cache/heads/<tensorflow version>-<hash of this file>/<name>_<kind>.tflite.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEYPOINTS = 17  # COCO's, as MoveNet
MODELS = {
    # name -> (resolution, alpha, kinds)
    "movenet_like": (128, 0.35, ("float32", "int8")),
    "deeplab_like": (128, 0.5, ("float32", "int8", "uint8_io")),
}
SEG_CLASSES = 21  # PASCAL VOC's, as Coral's DeepLab


def cache_dir() -> Path:
    import tensorflow as tf

    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    return REPO / ".cache" / "heads" / f"{tf.__version__}-{digest}"


def model_path(name: str, kind: str) -> Path:
    return cache_dir() / f"{name}_{kind}.tflite"


def get_model(name: str, kind: str) -> Path:
    """The cached model, built (with TensorFlow) when absent."""
    if kind not in MODELS[name][2]:
        raise ValueError(f"{name} has no kind {kind!r} (kinds: {', '.join(MODELS[name][2])})")
    path = model_path(name, kind)
    if not path.exists():
        build(name)
    return path


def _stride_features(base, res: int, *strides: int) -> list:
    """The backbone's last feature map at each output stride asked for."""
    out = []
    for s in strides:
        layers = [l for l in base.layers if len(l.output.shape) == 4 and l.output.shape[1] == res // s]
        out.append(layers[-1].output)
    return out


def _pose_keras(keras, res: int, alpha: float):
    base = keras.applications.MobileNetV2(input_shape=(res, res, 3), include_top=False, weights=None, alpha=alpha)
    features = keras.Model(base.input, _stride_features(base, res, 8, 16))
    x = keras.Input((res, res, 3))
    s8, s16 = features(x)
    width = 32
    lateral = keras.layers.Conv2D(width, 1, name="lateral_s8")(s8)
    top = keras.layers.Conv2D(width, 1, name="lateral_s16")(s16)
    top = keras.layers.UpSampling2D(2, interpolation="bilinear")(top)
    fpn = keras.layers.ReLU(6.0)(keras.layers.Add()([lateral, top]))

    def head(name, channels):
        h = keras.layers.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(fpn)
        h = keras.layers.ReLU(6.0)(h)
        return keras.layers.Conv2D(channels, 1, name=f"{name}_out")(h)

    heat = keras.layers.Activation("sigmoid")(head("heatmap", KEYPOINTS))
    offsets = head("offsets", 2 * KEYPOINTS)
    return keras.Model(x, [heat, offsets])


def _pose_decode(tf, heat, offsets):
    """Heatmap [1, H, W, K], offsets [1, H, W, 2K] -> keypoints [1, 1, K, 3] = (y, x, score)."""
    h, w = int(heat.shape[1]), int(heat.shape[2])
    flat = tf.reshape(heat, [1, h * w, KEYPOINTS])
    index = tf.math.argmax(flat, axis=1, output_type=tf.int32)[0]  # [K]
    row = tf.math.floordiv(index, w)
    col = index - row * w
    k = tf.range(KEYPOINTS, dtype=tf.int32)
    score = tf.gather_nd(heat[0], tf.stack([row, col, k], axis=1))  # [K]
    pairs = tf.reshape(offsets[0], [h, w, KEYPOINTS, 2])
    offset = tf.gather_nd(pairs, tf.stack([row, col, k], axis=1))  # [K, 2]
    cell = tf.cast(tf.stack([row, col], axis=1), tf.float32)
    yx = (cell + offset) / tf.constant([float(h), float(w)])
    return tf.reshape(tf.concat([yx, score[:, None]], axis=1), [1, 1, KEYPOINTS, 3])


def _seg_keras(keras, res: int, alpha: float):
    base = keras.applications.MobileNetV2(input_shape=(res, res, 3), include_top=False, weights=None, alpha=alpha)
    features = keras.Model(base.input, _stride_features(base, res, 16)[0])
    x = keras.Input((res, res, 3))
    f = features(x)
    size = (int(f.shape[1]), int(f.shape[2]))
    branch = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(64, 1, use_bias=False)(f)))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(f)
    pooled = keras.layers.ReLU()(keras.layers.Conv2D(64, 1)(pooled))
    pooled = keras.layers.Resizing(*size, interpolation="bilinear")(pooled)
    y = keras.layers.Concatenate()([branch, pooled])
    y = keras.layers.ReLU()(keras.layers.Conv2D(64, 1)(y))
    logits = keras.layers.Conv2D(SEG_CLASSES, 1, name="logits")(y)
    return keras.Model(x, logits)


def build(name: str) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tools.keras_patterns import seed_weights

    res, alpha, kinds = MODELS[name]
    keras.utils.set_random_seed(0)
    if name == "movenet_like":
        model = _pose_keras(keras, res, alpha)
        spec = tf.TensorSpec([1, res, res, 3], tf.uint8, name="input")

        def forward(pixels):
            x = tf.cast(pixels, tf.float32) / 127.5 - 1.0  # MoveNet's graph takes the pixels as they are
            heat, offsets = model(x, training=False)
            return _pose_decode(tf, heat, offsets)
    else:
        model = _seg_keras(keras, res, alpha)
        spec = tf.TensorSpec([1, res, res, 3], tf.float32, name="input")

        def forward(x):
            logits = model(x, training=False)
            logits = tf.image.resize(logits, [res, res], method="bilinear")
            return tf.math.argmax(logits, axis=3, output_type=tf.int32)
    seed_weights(model, seed=sum(map(ord, name)))
    concrete = convert_variables_to_constants_v2(tf.function(forward).get_concrete_function(spec))
    from tools.detector_factory import _crops

    rep = _crops(res, raw=name == "movenet_like", seed=11)
    if name == "movenet_like":
        rep = np.clip(np.round(rep), 0, 255).astype(np.uint8)
    out = {}
    cache_dir().mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        if kind != "float32":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([x[None]] for x in rep)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if kind == "uint8_io":
            conv.inference_input_type = tf.uint8
        data = conv.convert()
        path = model_path(name, kind)
        tmp_path = path.with_suffix(f".tmp{os.getpid()}")
        tmp_path.write_bytes(data)
        tmp_path.replace(path)
        out[kind] = path
    return out


def main(argv=None) -> int:
    for name, (_, _, kinds) in MODELS.items():
        for kind in kinds:
            print(get_model(name, kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
