"""`refnet verify MODEL --images DIR | --image-list FILE`: a dataset, streamed, with a summary.

The engine is refnet/dataset.py; this module is the command: options checked before any work, a
progress bar with images/s and ETA, the summary as a table, JSON and HTML.
"""
from __future__ import annotations

import hashlib
import html
import json
import sys
import time
from pathlib import Path

from .cli_format import print_table
from .errors import RefnetError

PROJECTED_IMAGES = 50_000  # ImageNet val: the projection the summary prints


def verify_dataset(args, content: bytes, graph, float_pixels: bool = False) -> tuple[int, dict | None]:
    from tqdm import tqdm

    from .dataset import DatasetSummary, ResultsFile, list_images, read_results, run_local, run_ray
    from .litert import INSTALL_HINT, LITERT_RESOLVERS, litert_available

    for option, bad in (("--isolated", args.isolated), ("--random", args.random), ("--image", args.image),
                        ("--against-dump", args.against_dump), ("--profile", args.profile)):
        if bad:
            raise RefnetError(f"{option} works on single inputs, not with --images/--image-list: verify "
                              f"one image of the summary with --image IMG {option if option != '--image' else ''}".strip())
    if args.resume and not args.results:
        raise RefnetError("--resume needs --results FILE.jsonl: the file of the run to resume")
    if args.results and not Path(args.results).resolve().parent.is_dir():
        raise RefnetError(f"--results {args.results}: the directory {Path(args.results).parent} does not exist")
    if args.address and args.engine != "ray":
        raise RefnetError("--address is for --engine ray")
    if not litert_available():
        print(f"refnet verify needs LiteRT to compare with: {INSTALL_HINT}", file=sys.stderr)
        return 2, None
    images = list_images(args.images, args.image_list)
    paths = list(LITERT_RESOLVERS) if args.against == "all" else [args.against]
    _preflight(content, graph, paths)
    header = {"model_sha256": hashlib.sha256(content).hexdigest(), "paths": paths,
              "preprocess": args.preprocess}
    summary = DatasetSummary(model=args.model, paths=paths)
    done = set()
    if args.resume:
        for result in read_results(args.results)[1:]:
            if result.get("image") in done:
                continue
            done.add(result["image"])
            summary.add(result)
    results = ResultsFile(args.results, header, args.resume)
    todo = [name for name in images if name not in done]
    if args.engine == "ray":
        stream = run_ray(content, paths, todo, args.jobs, args.preprocess, args.address, float_pixels)
    else:
        stream = run_local(content, paths, todo, args.jobs or 1, args.preprocess, float_pixels)
    from .cli import _show_progress

    start = time.perf_counter()
    try:
        with tqdm(total=len(images), initial=len(images) - len(todo), unit="img", desc="verify",
                  disable=not _show_progress(args), smoothing=0.1) as bar:
            for result in stream:
                results.append(result)
                summary.add(result)
                bar.update(1)
    finally:
        results.close()
    seconds = time.perf_counter() - start
    summary.seconds = seconds
    summary.images_per_second = len(todo) / seconds if todo and seconds > 0 else None
    report = summary.to_json()
    import resource

    report["engine"] = {"engine": args.engine, "jobs": args.jobs or (None if args.engine == "ray" else 1),
                        "images_this_run": len(todo), "resumed": len(done), "seconds": round(seconds, 3),
                        # this process only (workers are separate processes): flat in the image count
                        "coordinator_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print_summary(report)
    if args.json and args.json != "-":
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"\nJSON summary: {args.json}")
    if args.html:
        Path(args.html).write_text(summary_html(report))
        print(f"HTML summary: {args.html}")
    if args.results:
        print(f"results, one line per image: {args.results} (--resume continues it)")
    ok = report["errors"] == 0 and all(p["profile"]["bit_exact"] == p["images"] for p in report["paths"].values())
    print("\nverdict: " + ("refnet reproduces every path on every image, bit for bit" if ok else
                           "DIFFERENCES FOUND (see the profile column and the findings)"))
    return (0 if ok else 1), report


def _preflight(content: bytes, graph, paths: list[str]) -> None:
    """Each path once in a child process: a LiteRT that aborts on this model (its reference int8
    Softmax can) is a clear error here, not a dead worker later."""
    import numpy as np

    from .interpreter import Interpreter
    from .litert import LiteRTCrashed, run_litert

    it = Interpreter(graph=graph)
    zeros = [np.zeros(d["shape"], d["dtype"]) for d in it.get_input_details()]
    for path in paths:
        try:
            run_litert(content, zeros, path=path, isolated=True)
        except LiteRTCrashed as e:
            raise RefnetError(f"LiteRT's {path} path crashes on this model ({e}); leave it out with "
                              f"--against") from None


def print_summary(report: dict) -> None:
    n, rate = report["images"], report["images_per_second"]
    print(f"\ndataset: {n} images ({report['errors']} unreadable or failed)"
          + (f"; {rate:.2f} images/s this run ({report['engine']['images_this_run']} images"
             + (f", {report['engine']['resumed']} resumed from the results file" if report["engine"]["resumed"] else "")
             + ")" if rate else ""))
    rows = []
    for path, p in report["paths"].items():
        top = f"{p['top1_equal']}/{p['top1_compared']}" if p["top1_compared"] else "-"
        score = "-" if p["mean_abs_score_diff"] is None else f"{p['mean_abs_score_diff']:.4g} / {p['max_abs_score_diff']:.4g}"
        ops = ", ".join(f"{k}: {v}" for k, v in list(p["first_divergent_op"].items())[:3]) or "-"
        profile = f"{p['profile']['bit_exact']}/{p['images']}"
        rows.append([path, p["images"], p["bit_exact"], p["output_differs"], top, score, ops, profile])
    print_table(["path", "images", "bit-exact", "output differs", "top-1 = ref", "score diff mean/max",
                 "first departs at (images)", "refnet profile exact"], rows)
    print("   (against refnet's reference arithmetic: bit-exact = every tensor equal; output differs = the model "
          "output; top-1 = ref: same class as the reference; score diff: |top-1 score - reference's|, real "
          "units; refnet profile exact: images where refnet's profile for that path gives LiteRT's bytes "
          "on every tensor, expected all)")
    for path, p in report["paths"].items():
        for finding in p["profile"]["findings"][:3]:
            print(f"   FINDING {path}: refnet's {p['profile']['id']} differs from LiteRT on {finding['image']} "
                  f"from op {finding['first_op']} ({finding['first_kind']}): refnet verify "
                  f"{report['model']} --image {finding['image']} --against {path} --isolated")
        worst = [w for w in p["worst"] if w["explain"]][:3]
        if worst:
            print(f"   {path}, largest output differences:")
            for w in worst:
                print(f"     {w['image']}: {w['output_max_diff']:g}; first at op {w['first_op']}: {w['explain']}")
    for e in report["error_examples"][:3]:
        print(f"   unreadable or failed: {e['image']}: {e['error']}")
    if rate:
        minutes = PROJECTED_IMAGES / rate / 60
        print(f"   at this rate {PROJECTED_IMAGES:,} images take {minutes:.0f} min "
              f"({report['engine']['engine']}, jobs {report['engine']['jobs'] or 'all CPUs'})")


def summary_html(report: dict) -> str:
    """The dataset summary as a self-contained page: per-path table, first-divergence histogram,
    worst images with their explain commands."""
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>refnet verify (dataset): "
             f"{esc(report['model'])}</title><style>body{{font-family:sans-serif;margin:1.5em 2em}}"
             "table{border-collapse:collapse;margin:.4em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:left}th{background:#eee}code{font-size:.85em}</style></head><body>",
             f"<h1>refnet verify: {report['images']} images</h1><p>model <code>{esc(report['model'])}</code>"
             + (f"; {report['images_per_second']:.2f} images/s" if report["images_per_second"] else "") + "</p>",
             "<table id='summary'><tr><th>path</th><th>images</th><th>bit-exact vs reference</th>"
             "<th>output differs</th><th>top-1 = reference</th><th>refnet profile exact</th></tr>"]
    for path, p in report["paths"].items():
        parts.append(f"<tr><td>{esc(path)}</td><td>{p['images']}</td><td>{p['bit_exact']}</td>"
                     f"<td>{p['output_differs']}</td><td>{p['top1_equal']}/{p['top1_compared']}</td>"
                     f"<td>{p['profile']['bit_exact']}/{p['images']} ({esc(p['profile']['id'])})</td></tr>")
    parts.append("</table>")
    for path, p in report["paths"].items():
        if not p["first_divergent_op"]:
            continue
        parts.append(f"<h2>{esc(path)}: where divergence first appears</h2>")
        parts.append(_histogram_svg(p["first_divergent_op"], p["images"]))
        if p["worst"]:
            parts.append("<table><tr><th>image</th><th>max output difference</th><th>step by step</th></tr>")
            for w in p["worst"]:
                parts.append(f"<tr><td>{esc(w['image'])}</td><td>{w['output_max_diff']:g}</td>"
                             f"<td><code>{esc(w['explain'] or '')}</code></td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _histogram_svg(counts: dict, images: int) -> str:
    items = list(counts.items())[:15]
    bar_h, label_w, bar_w = 18, 190, 420
    height = bar_h * len(items) + 10
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_w + bar_w + 90}' height='{height}' "
             "font-family='sans-serif' font-size='12'>"]
    for k, (label, count) in enumerate(items):
        y = 5 + k * bar_h
        w = bar_w * count / max(images, 1)
        parts.append(f"<text x='{label_w - 6}' y='{y + 13}' text-anchor='end'>{html.escape(label)}</text>"
                     f"<rect x='{label_w}' y='{y + 2}' width='{w:.1f}' height='{bar_h - 4}' fill='#d62728'/>"
                     f"<text x='{label_w + w + 6:.1f}' y='{y + 13}'>{count}</text>")
    parts.append("</svg>")
    return "".join(parts)
