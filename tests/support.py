"""Test support: run a model in refnet and in LiteRT's reference kernels, compare every tensor."""
from __future__ import annotations

import atexit
import os
import sys

import numpy as np

import refnet
from refnet import bits
from refnet.litert import BuildRunner, compare_tensors, run_litert


def run_refnet(model_content: bytes, inputs: list, profile: str = "reference",
               num_threads: int = 1) -> dict[int, np.ndarray]:
    it = refnet.Interpreter(model_content=model_content, experimental_preserve_all_tensors=True,
                            profile=profile, num_threads=num_threads)
    it.allocate_tensors()
    for detail, value in zip(it.get_input_details(), inputs):
        it.set_tensor(detail["index"], value)
    it.invoke()
    return {t.index: it.get_tensor(t.index) for t in it.graph.tensors}


def describe_element(v) -> str:
    """A value with its bits, so that NaN payloads and signed zeros are visible."""
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return f"{v!r} (bits {v.view(f'u{v.dtype.itemsize}')[()]:#0{2 + 2 * v.dtype.itemsize}x})"
    return repr(v[()])


def assert_same_bits(got, expected, what: str = "result") -> None:
    """got equals expected bit for bit (refnet/bits.py): same dtype, shape and bytes."""
    d = bits.compare(got, expected)
    if d.equal:
        return
    if d.reason is not None:
        raise AssertionError(f"{what}: {d.reason}")
    i = d.first
    raise AssertionError(f"{what}: {d.mismatched}/{d.total} elements differ (max |diff| {d.max_abs_diff:g}, "
                         f"max ULP {d.max_ulp}); first at {list(i)}: got {describe_element(np.asarray(got)[i])}, "
                         f"expected {describe_element(np.asarray(expected)[i])}")


_SWEEP_RUNNERS: dict[str, BuildRunner] = {}


def sweep_build():
    """REFNET_SWEEP_BUILD=BUILD=PYTHON[,PACKAGE] (e.g. ai-edge-litert-2.3.0/aarch64=/tmp/arm23/python)
    turns every single-op test into a sweep of that build: LiteRT runs in PYTHON (kept running),
    refnet under the profile PATH@BUILD. Returns (build, runner), or None when unset."""
    spec = os.environ.get("REFNET_SWEEP_BUILD")
    if not spec:
        return None
    build, _, runner = spec.partition("=")
    if spec not in _SWEEP_RUNNERS:
        python, _, package = runner.partition(",")
        _SWEEP_RUNNERS[spec] = BuildRunner(python or sys.executable, package or None)
        atexit.register(_SWEEP_RUNNERS[spec].close)
    return build, _SWEEP_RUNNERS[spec]


def assert_bit_exact(model_content: bytes, inputs: list, path: str = "reference", num_threads: int = 1) -> int:
    """Every activation tensor of refnet (on num_threads threads) equals LiteRT's bit for bit.
    Returns the count."""
    graph = refnet.read_tflite(model_content=model_content)
    sweep = sweep_build()
    if sweep is None:
        ours = run_refnet(model_content, inputs, profile=path, num_threads=num_threads)
        theirs = run_litert(model_content, inputs, path=path)
    else:
        build, runner = sweep
        ours = run_refnet(model_content, inputs, profile=f"{path}@{build}", num_threads=num_threads)
        theirs = runner.run(model_content, inputs, path)
    rows = compare_tensors(graph, ours, theirs)
    bad = [r for r in rows if not r.equal]
    if bad:
        lines = []
        for r in bad[:10]:
            where = r.reason or f"{r.mismatched}/{r.total} differ, max |diff| {r.max_abs_diff:g}, max ULP {r.max_ulp}"
            if r.first is not None:
                where += (f"; first at {list(r.first)}: refnet {describe_element(ours[r.index][r.first])}, "
                          f"litert {describe_element(theirs[r.index][r.first])}")
            lines.append(f"tensor {r.index} '{r.name}': {where}")
        raise AssertionError(f"{len(bad)}/{len(rows)} tensors differ:\n" + "\n".join(lines))
    assert rows, "no tensor was compared"
    return len(rows)


def random_input(detail_shape, dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(detail_shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=detail_shape).astype(dtype)
