"""Run LiteRT (the comparison runtime) and compare its tensors with refnet's.

LiteRT is optional: `pip install 'refnet[test]'` (or `pip install ai-edge-litert`). Its
reference int8 Softmax can abort the whole process on valid models, so `run_litert` can run it
in a child process (isolated=True) and turn an abort into a typed error.
"""
from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from . import bits
from .errors import RefnetError
from .graph import Graph

INSTALL_HINT = "LiteRT is not installed: pip install ai-edge-litert==2.3.0 (or pip install 'refnet[test]')"

# refnet profile name -> LiteRT op resolver (XNNPACK is LiteRT's default delegate under AUTO).
LITERT_RESOLVERS = {"reference": "BUILTIN_REF", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
                    "xnnpack": "BUILTIN"}


class LiteRTUnavailable(RefnetError):
    pass


class LiteRTCrashed(RefnetError):
    """LiteRT killed its process (e.g. the reference int8 Softmax's abort)."""


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _run_in_process(model_content: bytes, inputs: list, path: str) -> dict[int, np.ndarray]:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise LiteRTUnavailable(INSTALL_HINT) from None
    it = Interpreter(model_content=model_content, num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, LITERT_RESOLVERS[path]),
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    for detail, value in zip(it.get_input_details(), inputs):
        it.set_tensor(detail["index"], value)
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        try:
            out[d["index"]] = np.array(it.get_tensor(d["index"]), copy=True)
        except ValueError:  # tensors without data (e.g. optional, unallocated scratch)
            pass
    return out


def run_litert(model_content: bytes, inputs: list, path: str = "reference",
               isolated: bool = False, timeout: float = 600) -> dict[int, np.ndarray]:
    """Run LiteRT on `inputs`; return every tensor it kept, by index (the file's indexes)."""
    if path not in LITERT_RESOLVERS:
        raise RefnetError(f"unknown LiteRT path {path!r}; known: {sorted(LITERT_RESOLVERS)}")
    if not isolated:
        return _run_in_process(model_content, inputs, path)
    if not litert_available():
        raise LiteRTUnavailable(INSTALL_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        job, result = os.path.join(tmp, "job.pkl"), os.path.join(tmp, "result.pkl")
        with open(job, "wb") as f:
            pickle.dump((model_content, [np.asarray(v) for v in inputs], path), f)
        proc = subprocess.run([sys.executable, "-m", "refnet.litert", job, result],
                              capture_output=True, timeout=timeout, env=_child_env())
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise LiteRTCrashed(f"LiteRT ({path}) exited with code {proc.returncode}: "
                                + " | ".join(tail))
        with open(result, "rb") as f:
            return pickle.load(f)


def _child_env() -> dict:
    """The environment for a child running `-m refnet.litert`: this refnet's directory first on its
    path, so the child imports the same refnet whatever the working directory and install."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


class BuildRunner:
    """LiteRT in another Python (a venv with another build, the emulated aarch64 one), kept running:
    refnet/dump.py --serve. run() returns every tensor, by index, as run_litert does; the model is
    first rewritten so that every tensor is an output (some builds reuse input buffers in place)."""

    def __init__(self, python: str, package: str | None = None, timeout: float = 600):
        self.timeout = timeout
        dump_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dump.py")
        self._cmd = [python, dump_py, "--serve"] + (["--package", package] if package else [])
        self._proc = None
        self._tmp = tempfile.TemporaryDirectory()
        self.python = python

    def _process(self) -> subprocess.Popen:
        """The serving process, restarted when a model crashed the previous one."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
        return self._proc

    def run(self, model_content: bytes, inputs: list, path: str = "reference") -> dict[int, np.ndarray]:
        from .verify import every_tensor_an_output

        model, x, out = (os.path.join(self._tmp.name, n) for n in ("model.tflite", "x.npz", "out.npz"))
        with open(model, "wb") as f:
            f.write(every_tensor_an_output(model_content))
        np.savez(x, **{f"x{i}": np.asarray(v) for i, v in enumerate(inputs)})
        proc = self._process()
        try:
            proc.stdin.write(f"{model}\t{x}\t{out}\t{path}\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            answer = proc.stdout.readline().strip() if ready else f"no answer within {self.timeout:g} s"
        except BrokenPipeError:
            answer = ""
        if answer != "ok":  # a refusal, a crash or a hang: the next run starts a fresh process
            proc.kill()
            code = proc.wait()
            self._proc = None
            raise LiteRTCrashed(f"{self.python} dump.py ({path}): {answer or f'exited with code {code}'}")
        with np.load(out) as d:
            return {int(k[7:]): d[k] for k in d.files if k.startswith("tensor_")}

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=60)
        self._tmp.cleanup()


@dataclass
class TensorComparison:
    index: int
    name: str
    equal: bool
    mismatched: int
    total: int
    max_abs_diff: float
    reason: str | None = None  # dtype or shape differ
    max_ulp: int = 0
    first: tuple | None = None  # index of the first element whose bits differ


def compared_tensor_indexes(graph: Graph) -> list[int]:
    """The model's own activation tensors: every op's non-constant inputs and outputs."""
    seen = set(graph.inputs)
    for op in graph.ops:
        seen.update(t for t in op.inputs + op.outputs if t >= 0)
    return sorted(t for t in seen if not graph.tensors[t].is_constant)


def compare_tensors(graph: Graph, ours: dict, theirs: dict) -> list[TensorComparison]:
    """Each activation tensor compared bit for bit (refnet/bits.py); elements an op leaves
    undefined (refnet.ops.undefined_elements: not written by LiteRT's kernel) are not compared."""
    from .ops import undefined_elements

    masks = undefined_elements(graph, ours)
    rows = []
    for i in compared_tensor_indexes(graph):
        a, b = ours.get(i), theirs.get(i)
        if i in masks and a is not None and b is not None and a.shape == b.shape == masks[i].shape:
            a = a.copy()
            a[masks[i]] = b[masks[i]]  # not LiteRT's answer: memory its kernel did not write
        t = graph.tensors[i]
        if a is None or b is None:
            rows.append(TensorComparison(i, t.name, False, -1, -1, float("nan")))
            continue
        d = bits.compare(a, b)
        if d.reason is not None:  # dtype or shape differ
            rows.append(TensorComparison(i, t.name, False, -1, b.size, float("nan"), d.reason))
            continue
        rows.append(TensorComparison(i, t.name, d.equal, d.mismatched, d.total, d.max_abs_diff,
                                     max_ulp=d.max_ulp, first=d.first))
    return rows


def _worker(job: str, result: str) -> None:
    with open(job, "rb") as f:
        model_content, inputs, path = pickle.load(f)
    out = _run_in_process(model_content, inputs, path)
    with open(result, "wb") as f:
        pickle.dump(out, f)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
