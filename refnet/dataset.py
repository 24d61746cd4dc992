"""Verify a model over a dataset: one image at a time, in worker processes or Ray actors, each
image's result appended to a results file, and a summary that is the same whatever the order.

Per image, a worker runs refnet's reference arithmetic once and, for each LiteRT path, LiteRT and
refnet under that path's profile, every tensor. Two questions per path:
- the runtime against the reference ("vs reference"): is every tensor the reference's, is the
  output, is the top-1, and at which op does it first depart;
- refnet's profile for that path against the runtime ("profile"): expected bit-exact everywhere;
  any image that is not is a finding.
A result is a small dict (no tensors); the coordinator folds results into a DatasetSummary (bounded
state) and appends them, one JSON line each, to the results file, so a killed run resumes.
"""
from __future__ import annotations

import heapq
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, RefnetError

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".ppm", ".tif", ".tiff")
WORST_KEPT = 10  # images kept per path in the summary's "worst" list


# --------------------------------------------------------------------------------------------
# The image list
# --------------------------------------------------------------------------------------------

def list_images(images_dir: str | None = None, image_list: str | None = None) -> list[str]:
    """Image paths, sorted for a directory, in file order for a list (one path per line,
    relative paths taken from the list's folder; blank lines and # comments skipped)."""
    if images_dir is not None:
        d = Path(images_dir)
        if not d.is_dir():
            raise InputError(f"--images {images_dir}: not a directory")
        found = sorted(str(p) for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"--images {images_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        return found
    try:
        lines = Path(image_list).read_text().splitlines()
    except OSError as e:
        raise InputError(f"--image-list {image_list}: {e.strerror}") from None
    base = Path(image_list).parent
    paths = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            paths.append(line if Path(line).is_absolute() else str(base / line))
    if not paths:
        raise InputError(f"--image-list {image_list}: no image paths in it")
    return paths


# --------------------------------------------------------------------------------------------
# The worker: one per process (or Ray actor), interpreters made once
# --------------------------------------------------------------------------------------------

def _top1(values: np.ndarray, detail: dict) -> tuple[int, float] | None:
    """(class, real score) of a classifier output's top class."""
    from .verify import top_class

    top = top_class(values, detail)
    return None if top is None else (top[0], top[2])


class DatasetWorker:
    """Interpreters for one model, made once: refnet's reference and each path's profile, and
    LiteRT per path (in this process). verify(name, data) -> a result dict."""

    def __init__(self, model_content: bytes, paths: list[str], preprocess: str = "resize",
                 float_pixels: bool = False):
        import warnings

        from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter, OpResolverType

        from .interpreter import Interpreter
        from .litert import LITERT_RESOLVERS, compared_tensor_indexes
        from .profile import resolve_id
        from .tflite_reader import read_tflite

        self.graph = read_tflite(model_content=model_content)
        self.paths, self.preprocess, self.float_pixels = list(paths), preprocess, float_pixels
        self.compared = compared_tensor_indexes(self.graph)
        self.producer = {t: op for op in self.graph.ops for t in op.outputs}
        self.reference = Interpreter(graph=self.graph, experimental_preserve_all_tensors=True)
        self.reference.allocate_tensors()
        self.profiles, self.litert = {}, {}
        for path in self.paths:
            profile = resolve_id(path)
            ours = self.reference if profile == self.reference.profile.name else Interpreter(
                graph=self.graph, experimental_preserve_all_tensors=True, profile=profile)
            ours.allocate_tensors()
            self.profiles[path] = ours
            with warnings.catch_warnings():  # LiteRT warns that keeping every tensor costs memory
                warnings.simplefilter("ignore", UserWarning)
                theirs = LiteRTInterpreter(
                    model_content=model_content, num_threads=1, experimental_preserve_all_tensors=True,
                    experimental_op_resolver_type=getattr(OpResolverType, LITERT_RESOLVERS[path]))
            theirs.allocate_tensors()
            self.litert[path] = theirs
        self.input_details = self.reference.get_input_details()
        self.output_index = self.graph.outputs[0]
        self.output_detail = self.reference.get_output_details()[0]

    def _inputs(self, data: bytes) -> list[np.ndarray]:
        """The image (its encoded bytes travel to workers, not its path) as each model input."""
        from .images import load_pixels, pixels_to_input

        out = []
        for detail in self.input_details:
            shape = [int(s) for s in detail["shape"]]
            if len(shape) != 4:
                raise InputError(f"input '{detail['name']}' has shape {shape}; images need NHWC")
            pixels = load_pixels(io.BytesIO(data), shape[1], shape[2], self.preprocess)
            out.append(pixels_to_input(pixels, detail, self.float_pixels))
        return out

    @staticmethod
    def _run(interp, inputs, indexes) -> dict[int, np.ndarray]:
        for detail, value in zip(interp.get_input_details(), inputs):
            interp.set_tensor(detail["index"], value)
        interp.invoke()
        return {i: np.array(interp.get_tensor(i), copy=True) for i in indexes}

    def _compare(self, ours: dict, theirs: dict) -> dict:
        """Every compared tensor bit for bit (litert.compare_tensors): how many differ, the first op
        whose output differs (op order), its first differing element, and the model output's max
        difference."""
        from .litert import compare_tensors

        rows = compare_tensors(self.graph, ours, theirs)
        bad = [r for r in rows if not r.equal and r.index in self.producer]
        first = min(bad, key=lambda r: self.producer[r.index].index, default=None)
        op = None if first is None else self.producer[first.index]
        out = next(r for r in rows if r.index == self.output_index)
        return {"equal": all(r.equal for r in rows), "tensors_differ": sum(not r.equal for r in rows),
                "first_op": None if op is None else op.index,
                "first_kind": None if op is None else op.kind,
                "first_at": None if first is None or first.first is None else list(first.first),
                "output_equal": out.equal,
                "output_max_diff": 0.0 if out.equal else float(out.max_abs_diff)}

    def verify(self, name: str, data: bytes) -> dict:
        try:
            return self._verify(name, self._inputs(data))
        except Exception as e:  # an unreadable image, or a runtime failing on one: a result, not the end
            return {"image": name, "error": f"{type(e).__name__}: {e}"}

    def _verify(self, name: str, inputs: list) -> dict:
        reference = self._run(self.reference, inputs, self.compared)
        result = {"image": name, "reference": _top1(reference[self.output_index], self.output_detail),
                  "paths": {}}
        for path in self.paths:
            theirs = self._run(self.litert[path], inputs, self.compared)
            ours = self.profiles[path]
            mine = reference if ours is self.reference else self._run(ours, inputs, self.compared)
            vs_reference = self._compare(reference, theirs)
            vs_reference["top1"] = _top1(theirs[self.output_index], self.output_detail)
            result["paths"][path] = {"vs_reference": vs_reference,
                                     "profile": {"id": ours.profile.name, **self._compare(mine, theirs)}}
        return result


# --------------------------------------------------------------------------------------------
# The summary: folded from results in any order
# --------------------------------------------------------------------------------------------

@dataclass
class PathSummary:
    images: int = 0
    bit_exact: int = 0  # every tensor equal to the reference
    output_differs: int = 0
    top1_compared: int = 0
    top1_equal: int = 0
    score_diff_sum: float = 0.0
    score_diff_max: float = 0.0
    first_ops: Counter = field(default_factory=Counter)  # "op N (KIND)" -> images departing there
    worst: list = field(default_factory=list)  # heap of (output_max_diff, image, first_op, first_at)
    profile_id: str = ""
    profile_equal: int = 0
    profile_findings: list = field(default_factory=list)  # (image, first op) where refnet != LiteRT

    def add(self, image: str, reference_top1, r: dict) -> None:
        v, p = r["vs_reference"], r["profile"]
        self.images += 1
        self.bit_exact += v["equal"]
        self.output_differs += not v["output_equal"]
        if reference_top1 is not None and v.get("top1") is not None:
            self.top1_compared += 1
            self.top1_equal += v["top1"][0] == reference_top1[0]
            diff = abs(v["top1"][1] - reference_top1[1])
            self.score_diff_sum += diff
            self.score_diff_max = max(self.score_diff_max, diff)
        if v["first_op"] is not None:
            self.first_ops[f"op {v['first_op']} ({v['first_kind']})"] += 1
        if not v["output_equal"]:  # keep the WORST_KEPT largest; ties broken by image name
            item = (v["output_max_diff"], _reverse_key(image), image, v["first_op"], v["first_kind"],
                    v["first_at"])
            if len(self.worst) < WORST_KEPT:
                heapq.heappush(self.worst, item)
            elif item > self.worst[0]:
                heapq.heapreplace(self.worst, item)
        self.profile_id = p["id"]
        self.profile_equal += p["equal"]
        if not p["equal"] and len(self.profile_findings) < WORST_KEPT:
            self.profile_findings.append((image, p["first_op"], p["first_kind"]))

    def worst_images(self) -> list[dict]:
        return [{"image": image, "output_max_diff": diff, "first_op": op, "first_kind": kind, "first_at": at}
                for diff, _, image, op, kind, at in sorted(self.worst, reverse=True)]


def _reverse_key(name: str) -> tuple:
    """Orders names so that, among equal differences, the alphabetically first image ranks worst."""
    return tuple(-ord(c) for c in name)


@dataclass
class DatasetSummary:
    model: str
    paths: list[str]
    images: int = 0
    errors: list = field(default_factory=list)  # (image, error), the first WORST_KEPT
    error_count: int = 0
    per_path: dict = field(default_factory=dict)
    images_per_second: float | None = None
    seconds: float | None = None

    def __post_init__(self):
        for path in self.paths:
            self.per_path.setdefault(path, PathSummary())

    def add(self, result: dict) -> None:
        self.images += 1
        if "error" in result:
            self.error_count += 1
            if len(self.errors) < WORST_KEPT:
                self.errors.append((result["image"], result["error"]))
            return
        for path in self.paths:
            self.per_path[path].add(result["image"], result["reference"], result["paths"][path])

    def to_json(self, explain_model: str | None = None, profile_hint: str = "reference") -> dict:
        out = {"model": self.model, "images": self.images, "errors": self.error_count,
               "error_examples": [{"image": i, "error": e} for i, e in self.errors],
               "images_per_second": self.images_per_second, "paths": {}}
        for path, s in self.per_path.items():
            worst = s.worst_images()
            for w in worst:
                w["explain"] = explain_command(explain_model or self.model, w, path)
            out["paths"][path] = {
                "images": s.images, "bit_exact": s.bit_exact, "output_differs": s.output_differs,
                "top1_equal": s.top1_equal, "top1_compared": s.top1_compared,
                "mean_abs_score_diff": s.score_diff_sum / s.top1_compared if s.top1_compared else None,
                "max_abs_score_diff": s.score_diff_max if s.top1_compared else None,
                "first_divergent_op": dict(sorted(s.first_ops.items(), key=lambda kv: (-kv[1], kv[0]))),
                "worst": worst,
                "profile": {"id": s.profile_id, "bit_exact": s.profile_equal,
                            "findings": [{"image": i, "first_op": op, "first_kind": k}
                                         for i, op, k in s.profile_findings]},
            }
        return out


def explain_command(model: str, worst: dict, path: str) -> str | None:
    """The next command for one of the worst images: explain its first differing element when
    explain covers that op, else verify that image op by op (--isolated names the arithmetic)."""
    from .explain import EXPLAINERS

    if worst["first_op"] is None:
        return None
    if worst["first_kind"] in EXPLAINERS and worst["first_at"] is not None:
        at = ",".join(map(str, worst["first_at"]))
        return (f"refnet explain {model} --op {worst['first_op']} --at {at} --image {worst['image']} "
                f"--profile reference")
    return f"refnet verify {model} --image {worst['image']} --against {path} --profile reference --isolated"


# --------------------------------------------------------------------------------------------
# Results file: one JSON line per image, appended as each completes
# --------------------------------------------------------------------------------------------

def read_results(path: str) -> list[dict]:
    """The results already on file (a line cut short by a kill is dropped)."""
    done = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    done.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # the last line of a killed run
    except FileNotFoundError:
        pass
    return done


class ResultsFile:
    """Appends one result per line, flushed (and fsync'd) so a kill loses at most the images in flight."""

    def __init__(self, path: str | None, header: dict, resume: bool):
        self.path = path
        self._f = None
        if path is None:
            return
        if not resume or not os.path.exists(path):
            with open(path, "w") as f:
                f.write(json.dumps({"header": header}) + "\n")
        else:
            first = read_results(path)[:1]
            if not first or first[0].get("header") != header:
                raise RefnetError(f"--results {path}: made for another model, paths or preprocessing "
                                  f"({(first[0].get('header') if first else None)}); start it anew "
                                  f"without --resume or name another file")
            self._truncate_partial_line(path)
        self._f = open(path, "a")

    @staticmethod
    def _truncate_partial_line(path: str) -> None:
        with open(path, "rb+") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                f.truncate(end)

    def append(self, result: dict) -> None:
        if self._f is not None:
            self._f.write(json.dumps(result) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


# --------------------------------------------------------------------------------------------
# Engines: in this process, N worker processes, or Ray actors
# --------------------------------------------------------------------------------------------

_WORKER: DatasetWorker | None = None


def _init_process_worker(model_content: bytes, paths: list[str], preprocess: str, float_pixels: bool) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER = DatasetWorker(model_content, paths, preprocess, float_pixels)


def _verify_in_process_worker(name: str, data: bytes) -> dict:
    return _WORKER.verify(name, data)


def _read_image(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except OSError:
        return b""  # the worker reports it as an unreadable image


def run_local(model_content: bytes, paths: list[str], images: list[str], jobs: int, preprocess: str,
              float_pixels: bool = False):
    """Yield results as images complete: in this process (jobs=1) or a pool of `jobs` processes,
    at most 2 x jobs images in flight (the coordinator's memory stays flat)."""
    if jobs <= 1:
        worker = DatasetWorker(model_content, paths, preprocess, float_pixels)
        for name in images:
            yield worker.verify(name, _read_image(name))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # no fork of a process holding LiteRT and threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_process_worker,
                             initargs=(model_content, paths, preprocess, float_pixels)) as pool:
        pending, queue = {}, iter(images)
        for name in queue:
            pending[pool.submit(_verify_in_process_worker, name, _read_image(name))] = name
            if len(pending) >= 2 * jobs:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                name = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise RefnetError(f"a worker process died (LiteRT aborted?) on one of the images in "
                                      f"flight, among them {name}; --resume continues after the "
                                      f"images already on file") from None
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(_verify_in_process_worker, nxt, _read_image(nxt))] = nxt


def run_ray(model_content: bytes, paths: list[str], images: list[str], jobs: int | None, preprocess: str,
            address: str | None = None, float_pixels: bool = False):
    """Yield results from Ray actors (one DatasetWorker each) on the cluster at `address` (a local
    one when None). ActorPool keeps every actor busy with one image and no more (backpressure)."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise RefnetError("--engine ray needs Ray: pip install 'ray[default]' (or pip install -e '.[ray]')") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}, **({} if address else {"num_cpus": jobs}))
    try:
        count = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(DatasetWorker)
        model_ref = ray.put(model_content)
        pool = ActorPool([actor.remote(model_ref, paths, preprocess, float_pixels) for _ in range(count)])
        yield from pool.map_unordered(lambda a, name: a.verify.remote(name, _read_image(name)), images)
    finally:
        if started_here:
            ray.shutdown()
