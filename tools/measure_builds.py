"""The runtime matrix: every LiteRT build x path x model -> op outputs equal / compared.

Each build runs refnet/dump.py in its own Python (this one, a venv with another LiteRT, or the
emulated aarch64 Python of ../shared/tools/arm-litert.sh); refnet then compares every op output
with its profile for that build (PATH@BUILD), whole model and op by op on the build's own inputs
(isolated), and names the arithmetic forms that reproduce a divergent op.

    python -m tools.measure_builds --build ai-edge-litert-2.3.0/aarch64=/tmp/arm23/python \\
        --build tflite-runtime-2.14.0/x86_64=/tmp/tfl214/bin/python [--factory] [--quick]

A build given without =PYTHON runs in this interpreter. Results: a Markdown table on stdout.
--float measures the factory's float32 models instead (max ULP per row); --sweep runs the
single-op tests (tests/ops) against the build instead of LiteRT installed here, and lists which
fail (tests/support.py, REFNET_SWEEP_BUILD).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from refnet.errors import InputError  # noqa: E402
from refnet.images import image_input  # noqa: E402
from refnet.interpreter import Interpreter  # noqa: E402
from refnet.profile import PATHS, get_profile  # noqa: E402
from refnet.verify import every_tensor_an_output, verify_path  # noqa: E402

SHARED = REPO.parent / "shared"
CORAL = ["mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite",
         "deeplabv3_mnv2_dm05_pascal_quant.tflite"]
IMAGES = ["cat.bmp", "grace_hopper.bmp"]
DUMP = REPO / "refnet" / "dump.py"


def load_dump(path: Path) -> tuple[dict[int, np.ndarray], str]:
    d = np.load(path)
    return {int(k[7:]): d[k] for k in d.files if k.startswith("tensor_")}, str(d["__build__"])


def run_dump(python: str, model: Path, x: np.ndarray, path: str, work: Path, package: str | None = None
             ) -> tuple[dict, str]:
    """Every tensor of `model` under `path` in `python`'s LiteRT, dumped from the rewrite in which
    every activation tensor is an output (no buffer reuse: refnet.verify.every_tensor_an_output)."""
    inp, out, prepared = work / "x.npy", work / f"dump_{path}.npz", work / "model.tflite"
    np.save(inp, x)
    prepared.write_bytes(every_tensor_an_output(model.read_bytes()))
    model = prepared
    cmd = [python, str(DUMP), str(model), "--input", str(inp), "--out", str(out), "--path", path]
    proc = subprocess.run(cmd + (["--package", package] if package else []), capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} dump.py {model.name} ({path}): {proc.stderr.strip().splitlines()[-1:]}")
    return load_dump(out)


def corpus(factory: bool, quick: bool, float_models: bool = False) -> list[tuple[str, Path]]:
    if float_models:
        from tools import model_factory as mf

        return [(f"{family} float32 {res}", mf.get_model(family, "float32", resolution=res))
                for family in (("v3_small",) if quick else ("v2", "v3_large", "v3_small", "edgetpu"))
                for res in ((96,) if quick else (96, 128))]
    models = [(m, SHARED / "models" / m) for m in (CORAL[:1] if quick else CORAL)]
    if factory:
        from tools import model_factory as mf

        for family in ("v2", "v3_large") if quick else ("v2", "v3_large", "v3_small", "edgetpu"):
            for kind in ("int8",) if quick else ("int8", "int8_io", "uint8_io"):
                for res in (96,) if quick else (96, 128):
                    models.append((f"{family} {kind} {res}", mf.get_model(family, kind, resolution=res)))
    return models


def measure(build: str, python: str, models, images, paths, package: str | None = None) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models:
            content = model.read_bytes()
            it = Interpreter(model_content=content)
            xs = [image_input(SHARED / "images" / im, it.get_input_details()[0]) for im in images]
            for path in paths:
                try:
                    profile = get_profile(f"{path}@{build}")
                except InputError:
                    rows.append(f"| {build} | {path} | {name} | no profile yet | |")
                    continue
                dumps = [run_dump(python, model, x, path, Path(tmp), package)[0] for x in xs]
                cells = []
                causes = set()
                max_ulp = output_ulp = 0
                for isolated in (False, True):
                    rep = verify_path(content, [[x] for x in xs], path, isolated=isolated, litert_outputs=dumps,
                                      refnet_profile=profile.name)
                    cells.append(f"{rep.tensors_equal}/{rep.tensors_compared}")
                    if isolated:
                        causes |= {f"op {r.op} {r.kind}: {r.cause}" for r in rep.rows if not r.equal}
                        max_ulp = max([r.max_ulp for r in rep.rows] + [0])
                    else:  # what the user sees: the model's outputs, run whole
                        output_ulp = max([r.max_ulp for r in rep.rows if set(it.graph.ops[r.op].outputs)
                                          & set(it.graph.outputs)] + [0])
                by_kind = {}
                for c in sorted(causes):
                    kind, _, why = c.partition(": ")
                    by_kind.setdefault((kind.split()[-1], why), []).append(kind.split()[1])
                summary = "; ".join(f"{k} (ops {', '.join(ops)}): {why}" for (k, why), ops in by_kind.items())
                rows.append(f"| {build} | {path} | {name} | {cells[0]} | {cells[1]} | {summary} | {max_ulp} | {output_ulp} |")
                print(rows[-1], flush=True)
    return rows


def sweep(spec: str) -> int:
    """tests/ops with LiteRT replaced by BUILD (REFNET_SWEEP_BUILD): which single-op tests fail."""
    import os

    build = spec.partition("=")[0]
    env = dict(os.environ, REFNET_SWEEP_BUILD=spec if "=" in spec else f"{spec}={sys.executable}")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--tb=no",
                           str(REPO / "tests" / "ops")], env=env, capture_output=True, text=True, cwd=REPO)
    failed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    by_test: dict[str, int] = {}
    for name in failed:
        by_test[name.split("[")[0]] = by_test.get(name.split("[")[0], 0) + 1
    print(f"## {build}: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'no output'}")
    for name, n in sorted(by_test.items()):
        print(f"- {name}: {n} failed")
    return 0 if not failed else 1


def summarize(tables: list[Path]) -> str:
    """build x path -> op outputs equal / compared (isolated), over the rows of saved tables."""
    totals: dict[tuple[str, str], list] = {}
    for table in tables:
        for line in table.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 5 or "/" not in cells[4] or not cells[4].split("/")[0].isdigit():
                continue
            equal, compared = (int(v) for v in cells[4].split("/"))
            t = totals.setdefault((cells[0], cells[1]), [0, 0, set()])
            t[0] += equal
            t[1] += compared
            if equal < compared:
                t[2].add(f"{cells[2]}: {cells[5] if len(cells) > 5 else ''}".strip())
    lines = ["| build | path | op outputs equal / compared | not reproduced |", "|---|---|---:|---|"]
    for (build, path), (equal, compared, gaps) in totals.items():
        lines.append(f"| {build} | {path} | {equal} / {compared} ({100 * equal / compared:.2f} %) | "
                     f"{'; '.join(sorted(gaps)) or '—'} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", nargs="+", type=Path, help="print the build x path totals of saved tables")
    p.add_argument("--build", action="append",
                   help="BUILD[=PYTHON[,PACKAGE]], e.g. ai-edge-litert-2.3.0/aarch64=/tmp/arm23/python or "
                        "tensorflow-2.21.0/x86_64=python,tensorflow")
    p.add_argument("--path", action="append", choices=PATHS, help="paths (default all three)")
    p.add_argument("--factory", action="store_true", help="the model factory's int8 families too")
    p.add_argument("--quick", action="store_true", help="one model per kind, one image (the CI check)")
    p.add_argument("--float", dest="float_models", action="store_true",
                   help="the factory's float32 V2, V3-Large, V3-Small, EdgeTPU-style at 96 and 128 instead")
    p.add_argument("--sweep", action="store_true", help="run the single-op tests (tests/ops) against each build")
    args = p.parse_args()
    if args.summary:
        print(summarize(args.summary))
        return 0
    if not args.build:
        p.error("--build is required (or --summary)")
    if args.sweep:
        return max(sweep(spec) for spec in args.build)
    models = corpus(args.factory, args.quick, args.float_models)
    images = IMAGES[:1] if args.quick else IMAGES
    print("| build | path | model | whole model: ops equal | isolated | what reproduces a divergent op | "
          "max ULP of an op (isolated) | max ULP of the output (whole) |")
    print("|---|---|---|---:|---:|---|---:|---:|")
    for spec in args.build:
        build, _, runner = spec.partition("=")
        python, _, package = runner.partition(",")
        measure(build, python or sys.executable, models, images, args.path or PATHS, package or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
