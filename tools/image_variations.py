"""Make N images from ../shared/images for dataset runs: random crops, flips and noise (seeded).

    python -m tools.image_variations 1000 /tmp/dataset [--seed 0] [--size 256]

Image k comes from source k mod 6 with its own generator (seed, k): the same N, seed and size
always give the same files, so two runs (or a killed and resumed one) see the same dataset.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tools.model_factory import IMAGE_NAMES, IMAGES_DIR


def variation(source: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image

    h, w, _ = source.shape
    area = rng.uniform(0.5, 1.0)
    ch, cw = int(h * np.sqrt(area)), int(w * np.sqrt(area))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = source[top:top + ch, left:left + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    im = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size))
    noisy = np.asarray(im, np.float64) + rng.normal(0, rng.uniform(0, 8), size=(size, size, 3))
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def make(count: int, out: Path, seed: int = 0, size: int = 256) -> list[Path]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    sources = [np.asarray(Image.open(IMAGES_DIR / n).convert("RGB")) for n in IMAGE_NAMES]
    written = []
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        name = Path(IMAGE_NAMES[k % len(sources)]).stem
        path = out / f"{k:05d}_{name}.png"
        if not path.exists():
            Image.fromarray(variation(sources[k % len(sources)], rng, size)).save(path)
        written.append(path)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("count", type=int)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256, help="side of the square images (default 256)")
    args = ap.parse_args(argv)
    paths = make(args.count, args.out, args.seed, args.size)
    print(f"{len(paths)} images in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
