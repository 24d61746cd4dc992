"""Checkpoints as users hold them: Keras MobileNets fine-tuned the usual ways, saved as .h5 and
.keras, each imported by refnet and checked against Keras itself and against LiteRT.

Per pattern and format, on the six real images of ../shared/images:
  imports     refnet.model_files.load_model reads it (no TensorFlow involved)
  vs Keras    max |refnet - Keras model(x, training=False)| / max |Keras|   (float32 orders differ:
              batch norm folded at import, the reference kernels' summation order)
  vs LiteRT   refnet's export (the .tflite refnet writes from the import) run by LiteRT's
              BUILTIN_REF: every tensor bit for bit (mismatching tensors / compared)

    python -m tools.keras_patterns            # builds the models (TensorFlow), prints the table
    python -m tools.keras_patterns --json OUT

Models are built with seeded random weights (batch-norm statistics away from identity, so folding
is exercised) and cached under .cache/keras-patterns/<keras version>.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = Path(os.environ.get("REFNET_SHARED", REPO.parent / "shared")) / "images"
FORMATS = (".h5", ".keras")


def _base(keras, cls: str, res: int, alpha: float, **kw):
    extra = {"include_preprocessing": False} if "V3" in cls and "include_preprocessing" not in kw else {}
    return getattr(keras.applications, cls)(input_shape=(res, res, 3), include_top=False, weights=None,
                                            alpha=alpha, **extra, **kw)


def _nested(keras, base, head, before=()):
    inp = keras.Input(base.input_shape[1:])
    x = inp
    for layer in before:
        x = layer(x)
    x = base(x, training=False)
    for layer in head:
        x = layer(x)
    return keras.Model(inp, x)


def _flat(keras, cls: str, res: int, alpha: float, head):
    """The base's layers in the outer model (base built on the model's own input tensor)."""
    inp = keras.Input((res, res, 3))
    extra = {"include_preprocessing": False} if "V3" in cls else {}
    base = getattr(keras.applications, cls)(input_tensor=inp, include_top=False, weights=None, alpha=alpha, **extra)
    x = base.output
    for layer in head:
        x = layer(x)
    return keras.Model(inp, x)


def _v1_nested(k):
    return _nested(k, _base(k, "MobileNet", 128, 0.25),
                   [k.layers.GlobalAveragePooling2D(), k.layers.Dropout(0.3), k.layers.Dense(10, activation="softmax")])


def _v2_dog_breeds(k):  # the published dog-breed classifier's layout: V2 at 160, a 19-way head
    return _nested(k, _base(k, "MobileNetV2", 160, 0.35),
                   [k.layers.GlobalAveragePooling2D(), k.layers.Dropout(0.2), k.layers.Dense(19, activation="softmax")])


def _v2_two_dense(k):
    return _nested(k, _base(k, "MobileNetV2", 128, 0.5),
                   [k.layers.GlobalAveragePooling2D(), k.layers.Dense(64, activation="relu"),
                    k.layers.BatchNormalization(), k.layers.Dropout(0.5), k.layers.Dense(5, activation="softmax")])


def _v2_rescaling_avg(k):  # preprocessing in the model, pooling inside the base, a sigmoid output
    return _nested(k, _base(k, "MobileNetV2", 128, 0.35, pooling="avg"), [k.layers.Dense(3, activation="sigmoid")],
                   before=[k.layers.Rescaling(1 / 127.5, offset=-1)])


def _v2_normalization(k):
    norm = k.layers.Normalization()
    norm.adapt(np.random.default_rng(1).uniform(0, 255, (8, 96, 96, 3)).astype(np.float32))
    return _nested(k, _base(k, "MobileNetV2", 96, 0.35),
                   [k.layers.GlobalAveragePooling2D(keepdims=True), k.layers.Flatten(),
                    k.layers.Dense(32, activation="swish"), k.layers.Dense(7)], before=[norm])


def _v2_sequential(k):
    return k.Sequential([k.Input((128, 128, 3)), k.layers.RandomFlip("horizontal"),
                         k.layers.Rescaling(1 / 127.5, offset=-1), _base(k, "MobileNetV2", 128, 0.35),
                         k.layers.GlobalAveragePooling2D(), k.layers.Dense(4, activation="softmax")])


def _v3s_preprocessing(k):  # V3's own Rescaling (include_preprocessing=True, Keras's default)
    return _nested(k, _base(k, "MobileNetV3Small", 128, 0.75, include_preprocessing=True),
                   [k.layers.GlobalAveragePooling2D(), k.layers.Dense(128, activation="hard_silu"),
                    k.layers.Dropout(0.2), k.layers.Dense(6, activation="softmax")])


def _v3l_flat(k):
    return _flat(k, "MobileNetV3Large", 160, 0.75, [k.layers.GlobalAveragePooling2D(), k.layers.Dense(4)])


def _v3s_min_flatten(k):
    return _nested(k, _base(k, "MobileNetV3Small", 96, 1.0, minimalistic=True),
                   [k.layers.Flatten(), k.layers.Dense(3, activation="softmax")])


def _v3s_own_top(k):  # keras.applications' own top with its default preprocessing
    return k.applications.MobileNetV3Small(input_shape=(128, 128, 3), weights=None, alpha=0.75, classes=10)


def _v1_own_top(k):
    return k.applications.MobileNet(input_shape=(128, 128, 3), weights=None, alpha=0.25, classes=10)


# name -> (builder, takes raw pixels 0..255 (preprocessing in the model) else [-1, 1])
PATTERNS = {
    "v1 0.25 128, nested + GAP/Dropout/Dense softmax": (_v1_nested, False),
    "v1 0.25 128, keras.applications top": (_v1_own_top, False),
    "v2 0.35 160, nested + GAP/Dropout/Dense(19) softmax": (_v2_dog_breeds, False),
    "v2 0.5 128, nested + Dense relu/BatchNorm/Dropout/Dense": (_v2_two_dense, False),
    "v2 0.35 128, Rescaling + base(pooling=avg) + Dense sigmoid": (_v2_rescaling_avg, True),
    "v2 0.35 96, Normalization + GAP(keepdims)/Flatten/Dense swish/Dense": (_v2_normalization, True),
    "v2 0.35 128, Sequential RandomFlip/Rescaling/base/GAP/Dense": (_v2_sequential, True),
    "v3-small 0.75 128, own Rescaling + Dense hard_silu/Dropout/Dense": (_v3s_preprocessing, True),
    "v3-small 0.75 128, keras.applications top (own Rescaling)": (_v3s_own_top, True),
    "v3-large 0.75 160, flat base + GAP/Dense": (_v3l_flat, False),
    "v3-small-min 1.0 96, nested + Flatten/Dense softmax": (_v3s_min_flatten, False),
}


def seed_weights(model, seed: int) -> None:
    """Seeded weights; batch-norm statistics away from identity (folding is exercised)."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        name, shape = (w.path if hasattr(w, "path") else w.name), tuple(w.shape)
        if "normalization/" in name and not name.split("/")[-2].startswith("batch"):
            values.append(np.asarray(w))  # Normalization's adapted statistics
            continue
        if name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("beta") or name.endswith("bias"):
            v = rng.normal(0, 0.1, shape)
        elif name.endswith("moving_mean"):
            v = rng.normal(0, 0.1, shape)
        elif name.endswith("moving_variance"):
            v = rng.uniform(0.5, 2.0, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) != 4 or shape[3] != 1 else shape[0] * shape[1]
            v = rng.standard_normal(shape) * np.sqrt(1.0 / max(fan_in, 1))
        values.append(np.asarray(v, np.float32))
    model.set_weights(values)


def cache_dir() -> Path:
    import keras
    return REPO / ".cache" / "keras-patterns" / keras.__version__


def build(name: str) -> dict[str, Path]:
    """The pattern saved in each format (cached), with the Keras outputs on the images beside it."""
    d = cache_dir() / _slug(name)
    paths = {fmt: d / f"model{fmt}" for fmt in FORMATS}
    expected = d / "keras_outputs.npz"
    if all(p.exists() for p in paths.values()) and expected.exists():
        return {**paths, "expected": expected}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    builder, raw = PATTERNS[name]
    keras.utils.set_random_seed(0)
    model = builder(keras)
    seed_weights(model, seed=sum(map(ord, name)) % 1000)
    d.mkdir(parents=True, exist_ok=True)
    res = int(model.input_shape[1])
    xs = images(res, raw)
    outs = np.stack([np.asarray(model(x, training=False)) for x in xs])
    for fmt, p in paths.items():
        tmp = p.with_name(p.stem + ".tmp" + fmt)
        model.save(tmp)
        tmp.replace(p)
    np.savez(expected, inputs=xs, outputs=outs)
    return {**paths, "expected": expected}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:80]


def images(res: int, raw: bool) -> np.ndarray:
    """The shared images as float32 [N, 1, R, R, 3]: pixels 0..255, or x / 127.5 - 1."""
    from refnet.images import load_pixels

    paths = sorted(p for p in IMAGES.iterdir() if p.suffix in (".bmp", ".jpg", ".png"))
    out = []
    for p in paths:
        px = load_pixels(p, res, res).astype(np.float32)
        out.append((px if raw else px / np.float32(127.5) - np.float32(1.0))[None])
    return np.stack(out)


@dataclass
class Row:
    pattern: str
    fmt: str
    imports: str  # "yes" or the error
    arch: str = ""
    max_rel_diff_vs_keras: float = float("nan")
    litert_tensors_mismatched: int = -1
    litert_tensors_compared: int = 0


def check(name: str, fmt: str) -> Row:
    from refnet import Interpreter, RefnetError
    from refnet.litert import compare_tensors, run_litert
    from refnet.model_files import load_model
    from refnet.verify import run_all_tensors

    files = build(name)
    data = np.load(files["expected"])
    row = Row(name, fmt, "yes")
    try:
        loaded = load_model(str(files[fmt]))
    except RefnetError as e:
        row.imports = str(e)
        return row
    row.arch = loaded.note.split(" imported as ")[1].split(",")[0] if " imported as " in loaded.note else ""
    it = Interpreter(model_content=loaded.content, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    worst, mismatched, compared = 0.0, 0, 0
    for x, expect in zip(data["inputs"], data["outputs"]):
        ours = run_all_tensors(it, [x])
        got = ours[loaded.graph.outputs[0]]
        if got.shape != expect.shape:
            row.imports = f"output shape {got.shape}, Keras's {expect.shape}"
            return row
        worst = max(worst, float(np.abs(got - expect).max() / np.abs(expect).max()))
        rows = compare_tensors(loaded.graph, ours, run_litert(loaded.content, [x]))
        mismatched += sum(not r.equal for r in rows)
        compared += len(rows)
    row.max_rel_diff_vs_keras = worst
    row.litert_tensors_mismatched, row.litert_tensors_compared = mismatched, compared
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--pattern", action="append", help="only these patterns (substring match)")
    args = ap.parse_args(argv)
    names = [n for n in PATTERNS if not args.pattern or any(p in n for p in args.pattern)]
    rows = []
    print(f"| pattern | format | imports as | max |diff| / max |Keras| | LiteRT reference (tensors equal) |")
    print("|---|---|---|---:|---|")
    for name in names:
        for fmt in FORMATS:
            r = check(name, fmt)
            rows.append(r)
            litert = (f"{r.litert_tensors_compared - r.litert_tensors_mismatched}/{r.litert_tensors_compared}"
                      if r.litert_tensors_compared else "-")
            print(f"| {name} | {fmt} | {r.arch if r.imports == 'yes' else 'ERROR: ' + r.imports} | "
                  f"{r.max_rel_diff_vs_keras:.2g} | {litert} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    bad = [r for r in rows if r.imports != "yes" or not r.max_rel_diff_vs_keras <= 1e-5 or r.litert_tensors_mismatched]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
