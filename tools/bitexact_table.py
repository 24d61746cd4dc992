"""Print the bit-exactness table of the core issue: model x input -> tensors equal / compared.

    python -m tools.bitexact_table [--generated] [--resolutions 96 128]

Real models from ../shared/models on every image of ../shared/images plus two random inputs;
with --generated, every family x kind of tools.model_factory too. Compares every activation
tensor of refnet with LiteRT's reference kernels (BUILTIN_REF), bit for bit (refnet/bits.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import refnet
from refnet.images import image_input
from refnet.litert import compare_tensors, run_litert

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL = ["mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite",
        "deeplabv3_mnv2_dm05_pascal_quant.tflite"]


def _inputs(detail, images, n_random, rng):
    for img in images:
        yield img.name, image_input(img, detail)
    for k in range(n_random):
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            yield f"random#{k}", rng.uniform(-1, 1, size=detail["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            yield f"random#{k}", rng.integers(info.min, int(info.max) + 1, size=detail["shape"]).astype(dtype)


def compare_model(name: str, content: bytes, images, n_random: int) -> list[tuple]:
    it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    rows = []
    for input_name, x in _inputs(detail, images, n_random, np.random.default_rng(0)):
        it.set_tensor(detail["index"], x)
        it.invoke()
        ours = {t.index: it.get_tensor(t.index) for t in it.graph.tensors}
        theirs = run_litert(content, [x], path="reference")
        cmp = compare_tensors(it.graph, ours, theirs)
        rows.append((name, input_name, sum(r.equal for r in cmp), len(cmp)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generated", action="store_true", help="also every generated family x kind")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[96, 128])
    args = ap.parse_args(argv)
    images = sorted((SHARED / "images").glob("*.[bj][mp]*"))
    rows = []
    for m in REAL:
        rows += compare_model(m, (SHARED / "models" / m).read_bytes(), images, 2)
    if args.generated:
        from tools.model_factory import FAMILIES, KINDS, get_model

        for family in FAMILIES:
            for kind in KINDS:
                for res in args.resolutions:
                    path = get_model(family, kind, resolution=res)
                    rows += compare_model(f"{family} {kind} {res}", path.read_bytes(),
                                          [SHARED / "images" / "cat.bmp", SHARED / "images" / "parrot.jpg"], 1)
    print("| model | input | tensors equal / compared |")
    print("|---|---|---|")
    for model, inp, eq, n in rows:
        print(f"| {model} | {inp} | {eq} / {n} |")
    total_eq, total = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"\n{len(rows)} runs; {total_eq} / {total} tensors bit-exact")
    return 0 if total_eq == total else 1


if __name__ == "__main__":
    sys.exit(main())
