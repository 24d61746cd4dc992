"""A small, cached factory of MobileNet test models, built with TensorFlow/Keras and converted
to .tflite by LiteRT's converter.

Random (seeded) weights, but calibrated so the models behave like trained ones: batch-norm
statistics come from training-mode passes over random crops of the real images in
../shared/images, and the classifier is scaled so the logits span a few units (LiteRT's
reference int8 SOFTMAX aborts on a huge input scale).

    from tools.model_factory import get_model, load_image, FAMILIES, KINDS
    path = get_model("v3_small", "int8", resolution=96)       # builds once, then cached

    python -m tools.model_factory --all [--resolutions 96 128]
    python -m tools.model_factory --write-default
    python -m tools.model_factory --prune        # drop models of older factory versions

Families: v2, v3_large, v3_small, v3_large_minimalistic, v3_small_minimalistic (keras
applications, include_preprocessing=False: the input is the image normalized to [-1, 1]) and
edgetpu (a MobileNet-EdgeTPU-style net written here: fused 3x3 expansion convolutions in the
early stages, first block a bare 1x1 projection).

Kinds: float32, float16 (float16 weights + DEQUANTIZE), dynamic (int8 weights, float
activations, hybrid ops), int8 (full integer, float input/output through QUANTIZE and
DEQUANTIZE), int8_io and uint8_io (full integer, int8 / uint8 input and output).

The Keras model is built and calibrated once per (family, resolution, alpha, seed) and every
kind is converted from it. Files live in $REFNET_CACHE (default <repo>/.cache/models/), named
after every parameter plus a short hash of this file and of the TensorFlow/Keras versions, so
editing the factory or upgrading TensorFlow invalidates the cache. A cache hit does not import
TensorFlow.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REFNET_SHARED", REPO.parent / "shared"))
IMAGES_DIR = SHARED / "images"
IMAGE_NAMES = ("cat.bmp", "grace_hopper.bmp", "bird.bmp", "parrot.jpg", "owl.jpg", "hot_dog.jpg")
DATA_DIR = REPO / "refnet" / "data"

FAMILIES = (
    "v2",
    "v3_large",
    "v3_small",
    "v3_large_minimalistic",
    "v3_small_minimalistic",
    "edgetpu",
)
KINDS = ("float32", "float16", "dynamic", "int8", "int8_io", "uint8_io")
DEFAULT_ALPHA = {
    "v2": 0.35,
    "v3_large": 0.35,
    "v3_small": 0.75,
    "v3_large_minimalistic": 0.35,
    "v3_small_minimalistic": 0.75,
    "edgetpu": 0.75,
}
NUM_CLASSES = 1001
LOGIT_STD = 2.0          # target standard deviation of the logits on the calibration crops
BN_CROPS_PER_IMAGE = 8   # crops per image for the batch-norm statistics (one batch of 48)
REP_CROPS_PER_IMAGE = 4  # crops per image for the int8 representative dataset (24 samples)

# The embedded default model of `refnet run`.
DEFAULT_MODEL = dict(family="v2", kind="int8", resolution=128, alpha=0.35, seed=0)


# --------------------------------------------------------------------------------------------
# cache naming

_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos",
                   "tf-nightly", "tf-nightly-cpu"),
    "keras": ("keras", "keras-nightly"),
}


def _versions() -> str:
    """'tensorflow=X;keras=Y' from the installed distributions (without importing them)."""
    out = []
    for name, dists in _DISTRIBUTIONS.items():
        version = "?"
        for dist in dists:
            try:
                version = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        out.append(f"{name}={version}")
    return ";".join(out)


def factory_hash() -> str:
    """Short hash of this file's source and of the TensorFlow/Keras versions."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(_versions().encode())
    return h.hexdigest()[:10]


def cache_dir() -> Path:
    return Path(os.environ.get("REFNET_CACHE", REPO / ".cache" / "models"))


def _alpha(family: str, alpha: float | None) -> float:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return float(DEFAULT_ALPHA[family] if alpha is None else alpha)


def _group_stem(family: str, resolution: int, alpha: float, seed: int) -> str:
    return f"{family}_a{alpha:g}_r{resolution}_s{seed}"


def model_path(family: str, kind: str, resolution: int = 96, alpha: float | None = None,
               seed: int = 0) -> Path:
    """Where get_model() keeps (or will keep) this model; does not build it."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    a = _alpha(family, alpha)
    return cache_dir() / f"{_group_stem(family, resolution, a, seed)}_{kind}_{factory_hash()}.tflite"


def _meta_path(family: str, resolution: int, alpha: float, seed: int) -> Path:
    return cache_dir() / f"{_group_stem(family, resolution, alpha, seed)}_{factory_hash()}.json"


# --------------------------------------------------------------------------------------------
# public API

def get_model(family: str, kind: str, resolution: int = 96, alpha: float | None = None,
              seed: int = 0) -> Path:
    """Path of the .tflite for (family, kind, resolution, alpha, seed), built on demand.

    Building converts every kind of the (family, resolution, alpha, seed) group at once and
    checks each file runs on a real image under LiteRT's reference kernels.
    """
    path = model_path(family, kind, resolution, alpha, seed)
    if path.exists():
        return path
    build_group(family, resolution, alpha, seed)
    if not path.exists():
        raise RuntimeError(f"the factory did not produce {path}")
    return path


def get_metadata(family: str, resolution: int = 96, alpha: float | None = None,
                 seed: int = 0) -> dict:
    """The build record of a group (ops, sizes, build seconds, logit statistics...)."""
    a = _alpha(family, alpha)
    meta = _meta_path(family, resolution, a, seed)
    if not meta.exists():
        build_group(family, resolution, alpha, seed)
    return json.loads(meta.read_text())


def load_image(path, resolution: int) -> np.ndarray:
    """An image as float32 [1, R, R, 3] in [-1, 1]: RGB, whole image resized (no crop) to
    R x R with PIL's bicubic filter (PIL's default), then x / 127.5 - 1."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").resize((resolution, resolution), Image.BICUBIC)
        x = np.asarray(im, dtype=np.float32)
    return (x / np.float32(127.5) - np.float32(1.0))[None]


def image_paths() -> list[Path]:
    """The real images of ../shared/images (raises if the directory is absent)."""
    paths = [IMAGES_DIR / n for n in IMAGE_NAMES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"the factory needs the shared images; missing: {missing}")
    return paths


def op_counts(path) -> dict[str, int]:
    """{builtin op name: count} over every subgraph of a .tflite (custom ops by custom code)."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    buf = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == BuiltinOperator.CUSTOM:
            codes.append("CUSTOM:" + (oc.CustomCode() or b"").decode())
        else:
            codes.append(names.get(code, str(code)))
    counts: Counter = Counter()
    for s in range(model.SubgraphsLength()):
        g = model.Subgraphs(s)
        for i in range(g.OperatorsLength()):
            counts[codes[g.Operators(i).OpcodeIndex()]] += 1
    return dict(counts)


# --------------------------------------------------------------------------------------------
# quiet TensorFlow

@contextlib.contextmanager
def _quiet():
    """Silence TensorFlow/converter chatter at the file-descriptor level (C++ logging and the
    MLIR quantizer write straight to fd 2). On an exception the captured text is attached to
    the error message."""
    import logging
    import warnings

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                logging.getLogger("tensorflow").setLevel(logging.ERROR)
                logging.getLogger("absl").setLevel(logging.ERROR)
                yield
        except BaseException as exc:
            sys.stdout.flush()
            sys.stderr.flush()
            sink.seek(0)
            tail = sink.read()[-4000:].decode(errors="replace")
            if tail.strip() and isinstance(exc, Exception):
                exc.args = (*exc.args, f"[captured TensorFlow output]\n{tail}")
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        with _quiet():
            import tensorflow as tf
            import keras
    except ImportError as e:
        raise ImportError(f"building test models needs TensorFlow/Keras "
                          f"(pip install -e '.[test]'): {e}") from e
    with _quiet():
        tf.get_logger().setLevel("ERROR")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:
            pass
    return tf, keras


# --------------------------------------------------------------------------------------------
# calibration data

def _random_crops(resolution: int, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """Random-resized crops (area 30-100 %, aspect 3/4-4/3) with random horizontal flips of
    the shared images, as float32 [N, R, R, 3] in [-1, 1]."""
    from PIL import Image

    out = []
    for p in image_paths():
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            for _ in range(per_image):
                for _attempt in range(20):
                    area = rng.uniform(0.30, 1.0) * w * h
                    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
                    cw = int(round(np.sqrt(area * aspect)))
                    ch = int(round(np.sqrt(area / aspect)))
                    if cw <= w and ch <= h:
                        break
                else:
                    cw = ch = min(w, h)
                x0 = int(rng.integers(0, w - cw + 1))
                y0 = int(rng.integers(0, h - ch + 1))
                crop = im.crop((x0, y0, x0 + cw, y0 + ch)).resize(
                    (resolution, resolution), Image.BICUBIC)
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                out.append(np.asarray(crop, dtype=np.float32) / np.float32(127.5) - np.float32(1))
    return np.stack(out).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Keras models

def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# MobileNet-EdgeTPU-style stages after the stem and the bare 1x1 projection:
# (block, kernel, expansion of the first block, expansion of the repeats, channels, stride, n)
EDGETPU_STAGES = (
    ("fused", 3, 8, 4, 32, 2, 2),
    ("fused", 3, 8, 4, 48, 2, 2),
    ("ir", 3, 8, 4, 96, 2, 2),
    ("ir", 5, 8, 4, 160, 2, 2),
    ("ir", 3, 8, 8, 192, 1, 1),
)


def _edgetpu(keras, resolution: int, alpha: float):
    L = keras.layers
    eps = 1e-3

    def conv_bn(x, filters, kernel, stride, act, name):
        x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                     name=f"{name}_conv")(x)
        x = L.BatchNormalization(epsilon=eps, name=f"{name}_bn")(x)
        if act:
            x = L.ReLU(name=f"{name}_relu")(x)
        return x

    inputs = keras.Input(shape=(resolution, resolution, 3), name="input")
    x = conv_bn(inputs, _make_divisible(32 * alpha), 3, 2, True, "stem")
    # first block: a bare 1x1 projection (linear)
    x = conv_bn(x, _make_divisible(16 * alpha), 1, 1, False, "block0_project")
    b = 1
    for kind, k, e_first, e_rest, c, s, n in EDGETPU_STAGES:
        out_ch = _make_divisible(c * alpha)
        for i in range(n):
            stride = s if i == 0 else 1
            e = e_first if i == 0 else e_rest
            in_ch = x.shape[-1]
            name = f"block{b}"
            shortcut = x
            if kind == "fused":
                # expansion is a full kxk convolution carrying the stride
                y = conv_bn(x, in_ch * e, k, stride, True, f"{name}_fused")
            else:
                y = conv_bn(x, in_ch * e, 1, 1, True, f"{name}_expand")
                y = L.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False,
                                      name=f"{name}_dw")(y)
                y = L.BatchNormalization(epsilon=eps, name=f"{name}_dw_bn")(y)
                y = L.ReLU(name=f"{name}_dw_relu")(y)
            y = conv_bn(y, out_ch, 1, 1, False, f"{name}_project")
            if stride == 1 and in_ch == out_ch:
                y = L.Add(name=f"{name}_add")([shortcut, y])
            x = y
            b += 1
    x = conv_bn(x, _make_divisible(1280 * alpha), 1, 1, True, "head")
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = L.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_edgetpu_{alpha:g}_{resolution}")


def _keras_model(keras, family: str, resolution: int, alpha: float):
    shape = (resolution, resolution, 3)
    apps = keras.applications
    if family == "v2":
        return apps.MobileNetV2(input_shape=shape, alpha=alpha, weights=None,
                                classes=NUM_CLASSES)
    if family.startswith("v3_"):
        ctor = apps.MobileNetV3Large if family.startswith("v3_large") else apps.MobileNetV3Small
        return ctor(input_shape=shape, alpha=alpha, weights=None, classes=NUM_CLASSES,
                    minimalistic=family.endswith("_minimalistic"),
                    include_preprocessing=False, dropout_rate=0.0)
    if family == "edgetpu":
        return _edgetpu(keras, resolution, alpha)
    raise ValueError(family)


def _classifier(keras, model):
    """The final classifier layer: keras V3's 1x1 'logits' Conv2D, else the last Dense."""
    for layer in reversed(model.layers):
        if layer.name == "logits" or isinstance(layer, keras.layers.Dense):
            return layer
    raise RuntimeError("no classifier layer found")


def _calibrate(tf, keras, model, resolution: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, resolution, 1])
    bn_layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    # Trained-looking affine parameters: gamma around 1, beta around 0 (not exactly 1 and 0).
    for layer in bn_layers:
        n = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.6, 1.4, n).astype(np.float32))
        layer.beta.assign(rng.normal(0.0, 0.2, n).astype(np.float32))
    # Batch-norm statistics: with momentum 0 one training-mode pass over a batch of real crops
    # sets every moving mean/variance to that batch's statistics, layer after layer.
    crops = _random_crops(resolution, BN_CROPS_PER_IMAGE, rng)
    saved = [l.momentum for l in bn_layers]
    for layer in bn_layers:
        layer.momentum = 0.0
    model(tf.constant(crops), training=True)
    for layer, m in zip(bn_layers, saved):
        layer.momentum = m

    # Classifier: scale so the logits span a few units (std LOGIT_STD) on the crops.
    clf = _classifier(keras, model)
    features = keras.Model(model.inputs, clf.input)
    f = np.asarray(features(tf.constant(crops), training=False), dtype=np.float64)
    f = f.reshape(f.shape[0], -1)
    kernel = np.asarray(clf.kernel.numpy(), dtype=np.float64)
    w = kernel.reshape(-1, kernel.shape[-1])
    z = f @ w
    scale = LOGIT_STD / float(z.std())
    bias = rng.normal(0.0, 0.25, w.shape[1])
    clf.kernel.assign((kernel * scale).astype(np.float32))
    clf.bias.assign(bias.astype(np.float32))

    logits = f @ (w * scale) + bias
    probs = np.asarray(model(tf.constant(crops), training=False))
    return {
        "bn_layers": len(bn_layers),
        "bn_crops": int(crops.shape[0]),
        "classifier": clf.name,
        "classifier_scale": scale,
        "logit_std": float(logits.std()),
        "logit_min": float(logits.min()),
        "logit_max": float(logits.max()),
        # spread across images (a trained net's logits depend on the image)
        "logit_std_across_crops": float(logits.std(axis=0).mean()),
        "top1_distinct_on_crops": int(len(set(np.argmax(probs, axis=1).tolist()))),
        "max_prob_mean": float(probs.max(axis=1).mean()),
    }


# --------------------------------------------------------------------------------------------
# conversion

def _convert(tf, frozen, kind: str, rep_data: np.ndarray) -> bytes:
    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if kind != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        conv.target_spec.supported_types = [tf.float16]
    if kind in ("int8", "int8_io", "uint8_io"):
        def representative():
            for x in rep_data:
                yield [x[None]]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if kind == "int8_io":
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    if kind == "uint8_io":
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    return conv.convert()


_CHECK_SCRIPT = r"""
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
paths = json.loads(sys.argv[1])
x = np.load(sys.argv[2])
for p in paths:
    print("START " + p, flush=True)
    it = Interpreter(model_path=p, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    i = it.get_input_details()[0]
    o = it.get_output_details()[0]
    if i["dtype"] == np.float32:
        xin = x
    else:
        s, z = i["quantization"]
        info = np.iinfo(i["dtype"])
        v = x / s   # LiteRT rounds half away from zero (numpy's round is half to even)
        xin = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + z, info.min, info.max)
        xin = xin.astype(i["dtype"])
    it.set_tensor(i["index"], xin)
    it.invoke()
    y = it.get_tensor(o["index"]).astype(np.float64)
    if o["dtype"] != np.float32:
        s, z = o["quantization"]
        y = (y - z) * s
    y = y.reshape(-1)
    print("DONE " + json.dumps({"path": p, "top1": int(y.argmax()), "max_prob": float(y.max()),
                               "sum": float(y.sum()), "input": str(np.dtype(i["dtype"])),
                               "output": str(np.dtype(o["dtype"]))}), flush=True)
"""


def _check(paths: list[Path], image: np.ndarray) -> dict[str, dict]:
    """Run every model once on a real image under BUILTIN_REF, in a subprocess (LiteRT's
    reference int8 SOFTMAX aborts the process on a huge input scale)."""
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "x.npy"
        np.save(npy, image)
        proc = subprocess.run(
            [sys.executable, "-c", _CHECK_SCRIPT, json.dumps([str(p) for p in paths]), str(npy)],
            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    results, started = {}, None
    for line in proc.stdout.splitlines():
        if line.startswith("START "):
            started = line[6:]
        elif line.startswith("DONE "):
            r = json.loads(line[5:])
            results[r.pop("path")] = r
            started = None
    if proc.returncode != 0 or len(results) != len(paths):
        raise RuntimeError(
            f"LiteRT (BUILTIN_REF) failed on {started or 'a model'} (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}")
    return results


# --------------------------------------------------------------------------------------------
# building

@contextlib.contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_group(family: str, resolution: int = 96, alpha: float | None = None, seed: int = 0,
                force: bool = False) -> dict:
    """Build, calibrate and convert one (family, resolution, alpha, seed) to every kind.
    Returns the group's metadata (also written as JSON beside the models)."""
    a = _alpha(family, alpha)
    meta_path = _meta_path(family, resolution, a, seed)
    paths = {k: model_path(family, k, resolution, a, seed) for k in KINDS}
    with _lock(meta_path.with_suffix(".lock")):
        if not force and meta_path.exists() and all(p.exists() for p in paths.values()):
            return json.loads(meta_path.read_text())
        image = load_image(image_paths()[0], resolution)   # fail early without the images
        t0 = time.perf_counter()
        tf, keras = _import_tf()
        t_import = time.perf_counter() - t0
        with _quiet():
            t1 = time.perf_counter()
            keras.utils.set_random_seed(seed)
            model = _keras_model(keras, family, resolution, a)
            calib = _calibrate(tf, keras, model, resolution, seed)
            rep = _random_crops(resolution, REP_CROPS_PER_IMAGE,
                                np.random.default_rng([seed, resolution, 2]))
            from tensorflow.python.framework.convert_to_constants import (
                convert_variables_to_constants_v2)

            fn = tf.function(lambda x: model(x, training=False))
            cf = fn.get_concrete_function(
                tf.TensorSpec([1, resolution, resolution, 3], tf.float32, name="input"))
            frozen = convert_variables_to_constants_v2(cf)
            expected = np.asarray(model(tf.constant(image), training=False)).reshape(-1)
            t_keras = time.perf_counter() - t1
            seconds, data = {}, {}
            for kind in KINDS:
                t2 = time.perf_counter()
                data[kind] = _convert(tf, frozen, kind, rep)
                seconds[kind] = time.perf_counter() - t2
        cache_dir().mkdir(parents=True, exist_ok=True)
        tmp_paths = {}
        for kind in KINDS:
            tmp = paths[kind].with_name(f".{paths[kind].name}.{os.getpid()}.tmp")
            tmp.write_bytes(data[kind])
            tmp_paths[kind] = tmp
        try:
            t3 = time.perf_counter()
            check = _check([tmp_paths[k] for k in KINDS], image)
            t_check = time.perf_counter() - t3
        except Exception:
            for tmp in tmp_paths.values():
                tmp.unlink(missing_ok=True)
            raise
        for kind in KINDS:
            os.replace(tmp_paths[kind], paths[kind])
        meta = {
            "family": family, "alpha": a, "resolution": resolution, "seed": seed,
            "classes": NUM_CLASSES, "factory_hash": factory_hash(), "versions": _versions(),
            "params": int(model.count_params()),
            "calibration": calib,
            "keras_top1_cat": int(expected.argmax()),
            "keras_max_prob_cat": float(expected.max()),
            "seconds": {"import_tf": t_import, "keras_build_calibrate_freeze": t_keras,
                        "litert_check": t_check,
                        "convert": seconds, "total": time.perf_counter() - t0},
            "models": {
                kind: {
                    "file": paths[kind].name,
                    "bytes": len(data[kind]),
                    "sha256": hashlib.sha256(data[kind]).hexdigest(),
                    "ops": op_counts(paths[kind]),
                    "check_cat": check[str(tmp_paths[kind])],
                }
                for kind in KINDS
            },
        }
        _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
        keras.backend.clear_session()
        return meta


# --------------------------------------------------------------------------------------------
# command line

def write_default() -> dict:
    """Regenerate refnet/data/default_model.tflite and default_model.json."""
    d = DEFAULT_MODEL
    src = get_model(d["family"], d["kind"], d["resolution"], d["alpha"], d["seed"])
    meta = get_metadata(d["family"], d["resolution"], d["alpha"], d["seed"])
    kmeta = meta["models"][d["kind"]]
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    dst = DATA_DIR / "default_model.tflite"
    shutil.copyfile(src, dst)
    data = dst.read_bytes()
    desc = {
        "file": dst.name,
        "family": d["family"],
        "alpha": d["alpha"],
        "resolution": d["resolution"],
        "kind": d["kind"],
        "seed": d["seed"],
        "classes": NUM_CLASSES,
        "weights": "random (seeded), batch-norm statistics calibrated on real images, "
                   "classifier scaled to logit std ~2; labels carry no meaning",
        "input": {"shape": [1, d["resolution"], d["resolution"], 3], "dtype": "float32",
                  "preprocessing": "RGB, resize whole image to RxR (PIL bicubic), "
                                   "x / 127.5 - 1 (tools.model_factory.load_image)"},
        "output": {"shape": [1, NUM_CLASSES], "dtype": "float32", "what": "softmax"},
        "ops": kmeta["ops"],
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "litert_reference_top1_cat": kmeta["check_cat"]["top1"],
        "litert_reference_max_prob_cat": kmeta["check_cat"]["max_prob"],
        "factory_command": "python -m tools.model_factory --write-default",
        "factory_hash": meta["factory_hash"],
        "versions": meta["versions"],
    }
    (DATA_DIR / "default_model.json").write_text(json.dumps(desc, indent=1) + "\n")
    return desc


def prune() -> list[Path]:
    """Delete cached files built by other versions of the factory (other hashes)."""
    current = factory_hash()
    removed = []
    d = cache_dir()
    if not d.is_dir():
        return removed
    for p in sorted(d.iterdir()):
        stem = p.name.rsplit(".", 1)[0]
        if p.suffix in (".tflite", ".json", ".lock") and not stem.endswith("_" + current):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _short_ops(ops: dict[str, int]) -> str:
    abbrev = {"CONV_2D": "CONV", "DEPTHWISE_CONV_2D": "DW", "FULLY_CONNECTED": "FC",
              "HARD_SWISH": "HSWISH", "DEQUANTIZE": "DEQ", "QUANTIZE": "Q",
              "AVERAGE_POOL_2D": "AVGPOOL"}
    return " ".join(f"{abbrev.get(k, k)}:{v}" for k, v in sorted(ops.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.model_factory", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="build every family x kind")
    ap.add_argument("--write-default", action="store_true",
                    help="regenerate refnet/data/default_model.{tflite,json}")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--resolutions", nargs="+", type=int, default=[96])
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--prune", action="store_true",
                    help="delete cached models built by other versions of the factory")
    args = ap.parse_args(argv)
    if not (args.all or args.write_default or args.prune):
        ap.error("nothing to do: pass --all, --write-default and/or --prune")
    if args.prune:
        removed = prune()
        print(f"pruned {len(removed)} stale files from {cache_dir()}")
    if args.all:
        t0 = time.perf_counter()
        rows = []
        for res in args.resolutions:
            for fam in args.families:
                tg = time.perf_counter()
                meta = build_group(fam, res, args.alpha, args.seed, force=args.force)
                wall = time.perf_counter() - tg
                for kind in KINDS:
                    m = meta["models"][kind]
                    rows.append((fam, f"{meta['alpha']:g}", kind, res, m["bytes"],
                                 meta["seconds"]["convert"][kind], _short_ops(m["ops"])))
                c = meta["calibration"]
                print(f"# {fam} a={meta['alpha']:g} r={res}: {meta['params']} params, group "
                      f"build {meta['seconds']['total']:.1f}s (this run {wall:.1f}s), logit std "
                      f"{c['logit_std']:.2f} range [{c['logit_min']:.1f}, {c['logit_max']:.1f}], "
                      f"{c['top1_distinct_on_crops']} distinct top-1 on {c['bn_crops']} crops",
                      flush=True)
        print()
        print(f"{'family':<22} {'alpha':>5} {'kind':<8} {'res':>4} {'bytes':>9} {'conv s':>6}  ops")
        for fam, a, kind, res, size, sec, ops in rows:
            print(f"{fam:<22} {a:>5} {kind:<8} {res:>4} {size:>9} {sec:>6.1f}  {ops}")
        print(f"\ntotal {time.perf_counter() - t0:.1f}s; cache {cache_dir()}")
    if args.write_default:
        desc = write_default()
        print(json.dumps(desc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
