"""refnet vs LiteRT 2.3.0 (XNNPACK / optimized / reference kernels): latency, memory, scaling.

    python bench/bench.py                  # full run, markdown to stdout (README "## Speed")
    python bench/bench.py --repeats 5 --quick

Latency: median wall time of one invoke() over --repeats rounds; within a round every runtime
runs once, in a rotating order, so machine drift hits all alike (the reference kernels, ~20x
slower, run every third round).  One thread unless stated.  Peak memory: each (model, runtime)
in a fresh child process, peak RSS (ru_maxrss) minus the RSS before the model was loaded.
Scaling: resolution (MobileNetV2 int8 96/160/224), batch 1 -> 8 (Coral uint8, the graph's
batch dimension rewritten / LiteRT's resize_tensor_input), threads 1 -> 2 (also in rounds of 4
consecutive invokes per runtime, the first not counted: an interpreter's steady state, where
one-invoke rounds make a multi-thread runtime wake threads that slept through the others).
Models: the Coral uint8 MobileNetV2 in ../shared/models and the generated ones of
tools/model_factory.py (alpha 1.0, built on first use; needs TensorFlow then).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Before anything loads libgomp (with refnet._kernels_fast): refnet/__init__.py's spin-then-sleep
# default for idle OpenMP threads (LiteRT's own pool is not OpenMP).
os.environ.setdefault("GOMP_SPINCOUNT", "300000")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("REFNET_SHARED", REPO.parent / "shared"))
CORAL = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
LITERT = {"xnnpack": "BUILTIN", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def model_path(spec: str) -> Path:
    """'coral' or 'family:kind:resolution'."""
    if spec == "coral":
        return CORAL
    from tools.model_factory import get_model

    family, kind, resolution = spec.split(":")
    return Path(get_model(family, kind, resolution=int(resolution), alpha=1.0))


def batch_graph(path: Path, batch: int):
    """refnet's graph of the model with batch dimension 1 rewritten to `batch`."""
    from refnet.tflite_reader import read_tflite

    g = read_tflite(model_path=str(path))
    for t in g.tensors:
        if t.data is None and len(t.shape) >= 2 and t.shape[0] == 1:
            t.shape = (batch,) + tuple(t.shape[1:])
    for op in g.ops:
        if op.kind == "RESHAPE":
            if len(op.inputs) > 1 and op.inputs[1] >= 0:
                s = g.tensors[op.inputs[1]]
                if s.data is not None and s.data.size and int(s.data.reshape(-1)[0]) == 1:
                    d = s.data.copy().reshape(-1)
                    d[0] = batch
                    s.data = d.reshape(s.data.shape)
            ns = op.options.get("new_shape")
            if ns and ns[0] == 1:
                op.options["new_shape"] = [batch] + list(ns[1:])
    return g


def make_runner(runtime: str, path: Path, threads: int = 1, batch: int = 1):
    """A zero-argument invoke() with a random input already set."""
    rng = np.random.default_rng(0)
    if runtime.startswith("refnet"):  # "refnet" (reference profile) or "refnet-PATH"
        import refnet

        profile = runtime.partition("-")[2] or "reference"
        it = refnet.Interpreter(graph=batch_graph(path, batch), num_threads=threads, profile=profile) \
            if batch > 1 else refnet.Interpreter(model_path=str(path), num_threads=threads, profile=profile)
    else:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        it = Interpreter(model_path=str(path), num_threads=threads,
                         experimental_op_resolver_type=getattr(OpResolverType, LITERT[runtime]))
        if batch > 1:
            d = it.get_input_details()[0]
            it.resize_tensor_input(d["index"], [batch] + list(d["shape"][1:]))
    it.allocate_tensors()
    d = it.get_input_details()[0]
    shape, dtype = tuple(d["shape"]), np.dtype(d["dtype"])
    if dtype.kind == "f":
        x = rng.uniform(-1, 1, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    it.set_tensor(d["index"], x)
    it.invoke()  # warm-up
    return it.invoke


def interleaved(runners: dict, repeats: int, slow=("reference",), block: int = 1) -> dict:
    """Median ms of one invoke per runner over `repeats` rounds, the runners in a rotating order
    each round (the slow ones every third).  block > 1: each runner invokes `block` times in a row
    per round and the first of them is not counted -- the steady state of an interpreter invoked
    again and again, where one-invoke rounds make every multi-thread runner pay for waking threads
    that slept through the other runners' invokes."""
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if name in slow and r % 3 and repeats >= 3:
                continue
            for k in range(block):
                t = time.perf_counter()
                runners[name]()
                if block == 1 or k:
                    times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items() if ts}


# ------------------------------------------------------------------------------------------
# peak memory, one child process per measurement
# ------------------------------------------------------------------------------------------

def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_memory(runtime: str, spec: str) -> None:
    path = model_path(spec)
    # The code of both runtimes is loaded before the baseline, as importing ai_edge_litert loads
    # all of LiteRT's (XNNPACK included): refnet's op modules and kernels load on first use.
    import refnet
    from refnet import kernel_checks, model_cut, model_files  # noqa: F401
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    refnet.ops.load_all()

    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    base = _rss_kib()
    run = make_runner(runtime, path)
    run()
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - base) / 1024}))


def memory(runtime: str, spec: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child-memory", runtime, spec],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


# ------------------------------------------------------------------------------------------

MODELS = [
    ("MobileNetV2 1.0 224 uint8 (Coral)", "coral"),
    ("MobileNetV2 1.0 224 int8", "v2:int8:224"),
    ("MobileNetV2 1.0 224 float32", "v2:float32:224"),
    ("MobileNetV3-Large 1.0 224 int8", "v3_large:int8:224"),
    ("MobileNetV3-Large 1.0 224 float32", "v3_large:float32:224"),
    ("MobileNetV3-Small 1.0 224 int8", "v3_small:int8:224"),
    ("MobileNetV3-Small 1.0 224 float32", "v3_small:float32:224"),
    ("EdgeTPU-style 1.0 224 int8", "edgetpu:int8:224"),
    ("TF2 PTQ MobileNetV2 1.0 224 (int8 inside, uint8 io)", "v2:uint8_io:224"),
]


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="latency table only")
    ap.add_argument("--models", nargs="*", help="subset of model specs (coral, v2:int8:224, ...)")
    ap.add_argument("--child-memory", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_memory:
        child_memory(*args.child_memory)
        return 0

    from refnet import _kernels_fast

    models = [(n, s) for n, s in MODELS if not args.models or s in args.models]
    isa = _kernels_fast.ISA_NAMES[_kernels_fast.get_isa()]
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, refnet kernels: {isa}; "
             f"load average at start {os.getloadavg()[0]:.1f}. Median of {args.repeats} interleaved "
             f"runs, one thread, ms.", ""]
    lines += ["| model | XNNPACK | optimized | reference | refnet | refnet / XNNPACK | "
              "refnet / optimized | reference / refnet | refnet, optimized profile | refnet, xnnpack profile |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    results = {}
    for name, spec in models:
        path = model_path(spec)
        runners = {rt: make_runner(rt, path) for rt in ("refnet", "xnnpack", "optimized", "reference",
                                                         "refnet-optimized", "refnet-xnnpack")}
        ms = interleaved(runners, args.repeats)
        results[spec] = ms
        lines.append(f"| {name} | {ms['xnnpack']:.1f} | {ms['optimized']:.1f} | {ms['reference']:.1f} | "
                     f"{ms['refnet']:.1f} | {ms['refnet'] / ms['xnnpack']:.2f}x | "
                     f"{ms['refnet'] / ms['optimized']:.2f}x | {ms['reference'] / ms['refnet']:.1f}x | "
                     f"{ms['refnet-optimized']:.1f} ({ms['refnet-optimized'] / ms['refnet']:.2f}x) | "
                     f"{ms['refnet-xnnpack']:.1f} ({ms['refnet-xnnpack'] / ms['refnet']:.2f}x) |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines.append("")
    if args.quick:
        print("\n".join(lines))
        return 0

    lines += ["Peak memory (MiB above the process before loading; fresh process each):", "",
              "| model | refnet | XNNPACK | optimized | reference |", "|---|---:|---:|---:|---:|"]
    for name, spec in models:
        mem = {rt: memory(rt, spec) for rt in ("refnet", "xnnpack", "optimized", "reference")}
        lines.append(f"| {name} | {mem['refnet']:.1f} | {mem['xnnpack']:.1f} | {mem['optimized']:.1f} | "
                     f"{mem['reference']:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines.append("")

    lines += ["Scaling (ms; with 2 threads, refnet's one-thread time of the same rounds and its "
              "speed-up, and XNNPACK's own 1 -> 2 speed-up in those rounds: how much of a second core "
              "the machine gave):", "",
              "| case | refnet | XNNPACK | refnet / XNNPACK | refnet, 1 thread | 1 -> 2 threads | "
              "XNNPACK 1 -> 2 threads | 1 -> 2, consecutive invokes: refnet / XNNPACK |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    cases = [(f"MobileNetV2 int8, {r}x{r}", f"v2:int8:{r}", 1, 1) for r in (96, 160, 224)]
    cases += [("MobileNetV2 int8 224, batch 8 (ms per image)", "v2:int8:224", 1, 8),
              ("Coral uint8, 2 threads", "coral", 2, 1),
              ("MobileNetV2 int8, 2 threads", "v2:int8:224", 2, 1),
              ("MobileNetV2 float32, 2 threads", "v2:float32:224", 2, 1)]
    for label, spec, threads, batch in cases:
        path = model_path(spec)
        runners, notes = {}, []
        for rt in ("refnet", "xnnpack"):
            try:
                runners[rt] = make_runner(rt, path, threads=threads, batch=batch)
            except Exception as e:  # e.g. a reshape that does not follow the batch
                notes.append(f"{rt}: {type(e).__name__}: {str(e)[:50]}")
        if threads > 1:  # the speed-ups from the same interleaved rounds (twice as many: cheap)
            runners["refnet-1"] = make_runner("refnet", path, threads=1, batch=batch)
            runners["xnnpack-1"] = make_runner("xnnpack", path, threads=1, batch=batch)
        rounds = max(3, 2 * args.repeats if threads > 1 else args.repeats // 2)
        ms = {k: v / batch for k, v in interleaved(runners, rounds).items()}
        ratio = f"{ms['refnet'] / ms['xnnpack']:.2f}x" if "xnnpack" in ms and "refnet" in ms else "; ".join(notes)
        one = ms.get("refnet-1")
        speedup = f"{one / ms['refnet']:.2f}x" if one and "refnet" in ms else "-"
        xnn_one = ms.get("xnnpack-1")
        xnn_speedup = f"{xnn_one / ms['xnnpack']:.2f}x" if xnn_one and "xnnpack" in ms else "-"
        steady = "-"
        if threads > 1 and len(runners) == 4:  # the same four runners, invoked in blocks
            bl = interleaved(runners, max(3, args.repeats), block=4)
            steady = f"{bl['refnet-1'] / bl['refnet']:.2f}x / {bl['xnnpack-1'] / bl['xnnpack']:.2f}x"
        lines.append(f"| {label} | {fmt(ms.get('refnet'))} | {fmt(ms.get('xnnpack'))} | {ratio} | "
                     f"{fmt(one) if one else '-'} | {speedup} | {xnn_speedup} | {steady} |")
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
