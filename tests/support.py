"""Test support: run a model in refnet and in LiteRT's reference kernels, compare every tensor."""
from __future__ import annotations

import numpy as np

import refnet
from refnet.litert import compare_tensors, run_litert


def run_refnet(model_content: bytes, inputs: list, profile: str = "reference") -> dict[int, np.ndarray]:
    it = refnet.Interpreter(model_content=model_content, experimental_preserve_all_tensors=True,
                            profile=profile)
    it.allocate_tensors()
    for detail, value in zip(it.get_input_details(), inputs):
        it.set_tensor(detail["index"], value)
    it.invoke()
    return {t.index: it.get_tensor(t.index) for t in it.graph.tensors}


def assert_bit_exact(model_content: bytes, inputs: list, path: str = "reference") -> int:
    """Every activation tensor of refnet equals LiteRT's (np.array_equal). Returns the count."""
    graph = refnet.read_tflite(model_content=model_content)
    ours = run_refnet(model_content, inputs, profile=path)
    theirs = run_litert(model_content, inputs, path=path)
    rows = compare_tensors(graph, ours, theirs)
    bad = [r for r in rows if not r.equal]
    if bad:
        lines = [f"tensor {r.index} '{r.name}': {r.mismatched}/{r.total} differ, max |diff| {r.max_abs_diff}"
                 for r in bad[:10]]
        first = bad[0].index
        a, b = ours.get(first), theirs.get(first)
        detail = ""
        if a is not None and b is not None and a.shape == b.shape:
            idx = np.argwhere(a != b)[:3]
            detail = "; first diffs: " + ", ".join(f"{tuple(i)}: refnet {a[tuple(i)]} litert {b[tuple(i)]}"
                                                    for i in idx)
        raise AssertionError(f"{len(bad)}/{len(rows)} tensors differ:\n" + "\n".join(lines) + detail)
    assert rows, "no tensor was compared"
    return len(rows)


def random_input(detail_shape, dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(detail_shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=detail_shape).astype(dtype)
