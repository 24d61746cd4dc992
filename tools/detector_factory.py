"""SSD-style MobileNet detectors as deployed: a keras.applications backbone, box and class heads on
two feature maps (output strides 16 and 32), anchors, and LiteRT's TFLite_Detection_PostProcess
custom op emitted by TensorFlow's converter (the TF Object Detection API's way: a tf.function
with experimental_implements="TFLite_Detection_PostProcess ...", converted from a SavedModel with
custom ops allowed). Seeded random weights, float32 and int8 (post-training quantization on crops
of the shared images; the post-process runs on dequantized float inputs, as the converter leaves it).

    python -m tools.detector_factory          # builds (TensorFlow) and lists the cached models

Cached under .cache/detectors/<tensorflow version>/<name>.tflite.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KINDS = ("float32", "int8")
# name -> (keras.applications class, alpha, resolution, classes, NMS options)
DETECTORS = {
    "ssd_mobilenet_v2": ("MobileNetV2", 0.35, 160, 5, dict(max_detections=10, max_classes_per_detection=1,
                                                           use_regular_nms=False)),
    "ssd_mobilenet_v3_small": ("MobileNetV3Small", 0.75, 160, 7, dict(max_detections=8, max_classes_per_detection=1,
                                                                      use_regular_nms=True, detections_per_class=4)),
}
COMMON = dict(nms_score_threshold=0.3, nms_iou_threshold=0.5, y_scale=10.0, x_scale=10.0, h_scale=5.0, w_scale=5.0)
ASPECTS = (0.5, 1.0, 2.0)


def cache_dir() -> Path:
    import tensorflow as tf
    return REPO / ".cache" / "detectors" / tf.__version__


def model_path(name: str, kind: str) -> Path:
    return cache_dir() / f"{name}_{kind}.tflite"


def get_model(name: str, kind: str) -> Path:
    """The cached detector, built (with TensorFlow) when absent."""
    path = model_path(name, kind)
    if not path.exists():
        build(name)
    return path


def _options(name: str) -> dict:
    return {**COMMON, **DETECTORS[name][4], "num_classes": DETECTORS[name][3]}


def _implements(options: dict) -> str:
    def attr(k, v):
        kind = "b" if isinstance(v, bool) else "i" if isinstance(v, int) else "f"
        value = str(v).lower() if kind == "b" else (v if kind == "i" else f"{v:f}")
        return f'attr {{ key: "{k}" value {{ {kind}: {value} }} }}'
    return " ".join(['name: "TFLite_Detection_PostProcess"'] + [attr(k, v) for k, v in options.items()])


def _anchors(shapes) -> np.ndarray:
    """(y, x, h, w) per cell and aspect ratio, larger on the coarser map (SSD's layout)."""
    out = []
    for level, (h, w) in enumerate(shapes):
        size = 0.25 * (level + 1)
        for y in range(h):
            for x in range(w):
                for a in ASPECTS:
                    out.append([(y + 0.5) / h, (x + 0.5) / w, size / np.sqrt(a), size * np.sqrt(a)])
    return np.array(out, np.float32)


def _detector(keras, name: str):
    cls, alpha, res, classes, _ = DETECTORS[name]
    extra = {"include_preprocessing": False} if "V3" in cls else {}
    base = getattr(keras.applications, cls)(input_shape=(res, res, 3), include_top=False, weights=None, alpha=alpha,
                                            **extra)
    stride16 = [l for l in base.layers if len(l.output.shape) == 4 and l.output.shape[1] == res // 16]
    features = keras.Model(base.input, [stride16[-1].output, base.output])
    inp = keras.Input((res, res, 3))
    boxes, scores, shapes = [], [], []
    for i, f in enumerate(features(inp)):
        shapes.append((int(f.shape[1]), int(f.shape[2])))
        b = keras.layers.Conv2D(len(ASPECTS) * 4, 3, padding="same", name=f"box_head_{i}")(f)
        c = keras.layers.Conv2D(len(ASPECTS) * (classes + 1), 3, padding="same", name=f"class_head_{i}")(f)
        boxes.append(keras.layers.Reshape((-1, 4))(b))
        scores.append(keras.layers.Reshape((-1, classes + 1))(c))
    model = keras.Model(inp, [keras.layers.Concatenate(axis=1)(boxes),
                              keras.layers.Activation("sigmoid")(keras.layers.Concatenate(axis=1)(scores))])
    from tools.keras_patterns import seed_weights

    seed_weights(model, seed=sum(map(ord, name)))
    return model, _anchors(shapes)


def _crops(res: int, n: int = 24, raw: bool = False, seed: int = 7) -> np.ndarray:
    """Calibration inputs: the shared images ([-1, 1], or pixels with raw), then flipped and dimmed copies."""
    from tools.keras_patterns import images

    rng = np.random.default_rng(seed)
    xs = images(res, raw=raw)[:, 0]
    out = []
    for k in range(n):
        x = xs[k % len(xs)]
        if k >= len(xs):
            x = np.flip(x, axis=1) * np.float32(rng.uniform(0.7, 1.0))
        out.append(x.astype(np.float32))
    return np.stack(out)


def build(name: str) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tempfile

    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keras.utils.set_random_seed(0)
    model, anchors = _detector(keras, name)
    res = DETECTORS[name][2]
    spec = tf.TensorSpec([1, res, res, 3], tf.float32, name="input")
    # the heads as constants (Keras 3 variables would stay resource variables in the .tflite)
    frozen = convert_variables_to_constants_v2(tf.function(lambda x: model(x, training=False)).get_concrete_function(spec))

    @tf.function(experimental_implements=_implements(_options(name)))
    def postprocess(box_encodings, class_predictions, anchor_boxes):  # the converter's placeholder
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="num_detections"))

    @tf.function(input_signature=[spec])
    def serve(x):
        b, c = frozen(x)
        return postprocess(b, c, tf.constant(anchors))

    out = {}
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        module = tf.Module()
        module.serve = serve
        tf.saved_model.save(module, tmp, signatures=serve.get_concrete_function())
        rep = _crops(res)
        for kind in KINDS:
            conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
            conv.allow_custom_ops = True
            if kind == "int8":
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
                conv.representative_dataset = lambda: ([x[None]] for x in rep)
            data = conv.convert()
            path = model_path(name, kind)
            tmp_path = path.with_suffix(".tmp")
            tmp_path.write_bytes(data)
            tmp_path.replace(path)
            out[kind] = path
    return out


def main(argv=None) -> int:
    for name in DETECTORS:
        for kind in KINDS:
            print(get_model(name, kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
