"""The 16x8 MobileNets of tools/quant16_factory.py (int16 activations, int8 weights, float32 io;
V2, V3-Small, V3-Large, EdgeTPU-style at 96) vs LiteRT on two real images, on each path.

Whole model: every tensor bit-exact. The V3s keep HARD_SWISH in float32 (the converter has no 16x8
HARD_SWISH), and LiteRT's optimized and XNNPACK float32 HARD_SWISH is not modelled (README,
"Profiles"): on those paths each op runs on LiteRT's own inputs instead (isolated), and every op but
the float32 HARD_SWISHes must give LiteRT's bits."""
import numpy as np
import pytest

import refnet
from refnet import bits
from refnet.images import image_input
from refnet.litert import run_litert
from refnet.verify import run_op_isolated
from support import assert_bit_exact

quant16_factory = pytest.importorskip("tools.quant16_factory")

IMAGES = ("cat.bmp", "parrot.jpg")
PATHS = ["reference", "optimized", "xnnpack"]
UNMODELLED_FLOAT = {"HARD_SWISH"}  # float32 ops whose optimized / XNNPACK arithmetic refnet lacks


def _inputs(shared_dir, content):
    detail = refnet.Interpreter(model_content=content).get_input_details()[0]
    assert detail["dtype"] == np.float32
    return [image_input(shared_dir / "images" / name, detail) for name in IMAGES]


def _isolated_departures(content, x, path) -> tuple[int, list]:
    """(ops compared, [(op index, kind, output dtype)] whose outputs differ from LiteRT's), each op
    on LiteRT's own input tensors."""
    interp = refnet.Interpreter(model_content=content, profile=path)
    interp.allocate_tensors()
    theirs = run_litert(content, [x], path=path, isolated=True)
    departures = []
    for op in interp.graph.ops:
        outs = run_op_isolated(interp, op.index, theirs)
        if not all(bits.same_bits(o, theirs[t]) for t, o in zip(op.outputs, outs)):
            departures.append((op.index, op.kind, interp.graph.tensors[op.outputs[0]].dtype.name))
    return len(interp.graph.ops), departures


@pytest.mark.litert
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("family", quant16_factory.FAMILIES)
def test_16x8_model_bit_exact(shared_dir, family, path):
    content = quant16_factory.get_model(family).read_bytes()
    kinds = {op.kind for op in refnet.read_tflite(model_content=content).ops}
    for x in _inputs(shared_dir, content):
        if path == "reference" or not kinds & UNMODELLED_FLOAT:
            assert assert_bit_exact(content, [x], path=path) > 30
            continue
        compared, departures = _isolated_departures(content, x, path)
        assert compared > 100
        assert all(kind in UNMODELLED_FLOAT and dtype == "float32" for _, kind, dtype in departures), departures


@pytest.mark.parametrize("family", ["v2", "v3_small"])
def test_16x8_explain_matches_interpreter(shared_dir, family):
    """refnet explain of the 16x8 ops (int64 accumulators, the int16 ADD / MUL forms) recomputes
    the interpreter's element on each path's profile."""
    from refnet.explain import EXPLAINED, explain

    content = quant16_factory.get_model(family).read_bytes()
    rng = np.random.default_rng(1)
    seen = set()
    for path in PATHS:
        it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=path)
        it.allocate_tensors()
        detail = it.get_input_details()[0]
        it.set_tensor(detail["index"], image_input(shared_dir / "images" / IMAGES[0], detail))
        it.invoke()
        for op in it.graph.ops:
            if op.kind not in EXPLAINED or it.graph.tensors[op.outputs[0]].dtype != np.int16:
                continue
            shape = it.get_tensor(op.outputs[0]).shape
            for _ in range(2):
                at = tuple(int(rng.integers(0, s)) for s in shape)
                result = explain(it, op.index, at)
                assert result.matches, "\n".join(result.lines)
                seen.add(op.kind)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN"} <= seen
