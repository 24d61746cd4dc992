"""refnet's command line.

  refnet run [MODEL] [--image IMG] [--labels FILE]   top-5, and every tensor checked against
                                                      LiteRT's reference kernels when installed
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from . import Interpreter, RefnetError, __version__
from .images import image_input

DEFAULT_MODEL_NAME = "default_model.tflite"


def default_model_path() -> Path:
    return Path(str(resources.files("refnet") / "data" / DEFAULT_MODEL_NAME))


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    scale, zp = detail["quantization"]
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float64) - zp) * scale
    return values.astype(np.float64)


def _print_table(headers: list[str], rows: list[list], out=sys.stdout) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    print(line, file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)), file=out)


def cmd_run(args) -> int:
    model = Path(args.model) if args.model else default_model_path()
    if args.model is None:
        meta = model.with_suffix(".json")
        info = json.loads(meta.read_text()) if meta.exists() else {}
        desc = ", ".join(f"{k} {info[k]}" for k in ("family", "alpha", "resolution", "kind") if k in info)
        print(f"refnet {__version__}: no model given, running the embedded default "
              f"({desc or model.name}; random weights calibrated on real images, so its classes "
              f"mean nothing: it shows the machinery)")
    content = model.read_bytes() if model.exists() else None
    if content is None:
        raise RefnetError(f"{model}: no such model file")
    it = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    it.graph.source = str(model)
    it.allocate_tensors()
    inputs = []
    for detail in it.get_input_details():
        x = image_input(args.image, detail)
        it.set_tensor(detail["index"], x)
        inputs.append(x)
    print(f"model  {model}  ({len(it.graph.ops)} ops, {len(it.graph.tensors)} tensors)")
    print(f"input  {args.image or 'synthetic test pattern (no --image given)'}")
    it.invoke()
    out_detail = it.get_output_details()[0]
    raw = it.get_tensor(out_detail["index"])
    labels = None
    if args.labels:
        labels = Path(args.labels).read_text().splitlines()
    if raw.ndim == 2 and raw.shape[0] >= 1 and raw.shape[1] > 1:
        scores = raw[0]
        real = _dequantize(scores, out_detail)
        top = np.argsort(-real, kind="stable")[:args.top]
        rows = [[rank + 1, int(c), labels[c] if labels and c < len(labels) else "", scores[c],
                 f"{real[c]:.4f}"] for rank, c in enumerate(top)]
        print()
        _print_table(["rank", "class", "label", f"raw ({scores.dtype.name})", "score"], rows)
    else:
        print(f"\noutput '{out_detail['name']}': shape {list(raw.shape)} {raw.dtype.name}")
    if args.no_compare:
        return 0
    from .litert import LiteRTCrashed, INSTALL_HINT, compare_tensors, litert_available, run_litert

    print()
    if not litert_available():
        print(f"not compared with LiteRT: {INSTALL_HINT}")
        return 0
    try:
        theirs = run_litert(content, inputs, path="reference", isolated=True)
    except LiteRTCrashed as e:
        print(f"LiteRT's reference kernels crashed on this model ({e}); refnet's tensors stand alone.")
        return 0
    ours = {t.index: it.get_tensor(t.index) for t in it.graph.tensors}
    rows = compare_tensors(it.graph, ours, theirs)
    bad = [r for r in rows if not r.equal]
    if bad:
        print(f"LiteRT reference kernels: {len(rows) - len(bad)}/{len(rows)} tensors bit-exact; differing:")
        _print_table(["tensor", "name", "mismatched", "max |diff|"],
                     [[r.index, r.name[:60], f"{r.mismatched}/{r.total}", r.max_abs_diff] for r in bad[:20]])
        return 1
    print(f"LiteRT reference kernels (BUILTIN_REF): {len(rows)}/{len(rows)} tensors bit-exact (np.array_equal)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refnet",
        description="refnet: the golden reference for MobileNet inference. Runs .tflite models "
                    "with LiteRT's reference-kernel arithmetic, bit for bit, without TensorFlow.")
    p.add_argument("--version", action="version", version=f"refnet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run a model on an image: top-5, and a bit-exact check against LiteRT",
        description="Run MODEL (default: a small int8 MobileNet shipped with refnet) on IMAGE "
                    "(default: a synthetic test pattern). Prints the top classes and, when LiteRT "
                    "is installed, whether every tensor equals LiteRT's reference kernels. Exit "
                    "code 1 if any tensor differs.")
    run.add_argument("model", nargs="?", help=".tflite model (default: the embedded default model)")
    run.add_argument("--image", help="image file (bmp, jpg, png...), resized to the model's input")
    run.add_argument("--labels", help="text file, one label per line (index 0 first)")
    run.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    run.add_argument("--no-compare", action="store_true", help="skip the comparison with LiteRT")
    run.set_defaults(func=cmd_run)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["run"] + list(argv if argv is not None else sys.argv[1:]))
    try:
        return args.func(args)
    except RefnetError as e:
        print(f"refnet: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
