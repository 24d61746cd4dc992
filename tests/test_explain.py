"""refnet explain recomputes one output element with the interpreter's own arithmetic, under every
profile, for every op kind it covers; the value must equal the interpreter's element bit for bit."""
import numpy as np
import pytest

import refnet
from refnet.errors import InputError
from refnet.explain import EXPLAINED, explain
from refnet.images import image_input
from refnet.profile import PROFILES


def _interpreter(content: bytes, profile: str, image) -> refnet.Interpreter:
    it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=profile)
    it.allocate_tensors()
    for detail in it.get_input_details():
        it.set_tensor(detail["index"], image_input(image, detail))
    it.invoke()
    return it


def _elements(shape, rng, count=3):
    """The first and last element and a few in between."""
    picks = [tuple(0 for _ in shape), tuple(s - 1 for s in shape)]
    picks += [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(count)]
    return picks


def _explain_every_kind(content: bytes, image, kinds_expected: set[str]):
    rng = np.random.default_rng(0)
    seen = set()
    for profile in PROFILES:
        it = _interpreter(content, profile, image)
        for kind in EXPLAINED:
            ops = [op for op in it.graph.ops if op.kind == kind]
            for op in ops[:1] + ops[-1:]:
                shape = it.get_tensor(op.outputs[0]).shape
                for at in _elements(shape, rng):
                    result = explain(it, op.index, at)
                    assert result.matches, "\n".join(result.lines)
                    assert result.lines[-1].endswith("(matches the interpreter)")
                    seen.add(kind)
    assert kinds_expected <= seen, kinds_expected - seen


@pytest.mark.shared
def test_uint8_model_every_profile(shared_dir):
    content = (shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    _explain_every_kind(content, shared_dir / "images" / "cat.bmp",
                        {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D"})


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("family,kinds", [
    ("v2", {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"}),
    ("v3_large", {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "MEAN", "HARD_SWISH"}),
])
@pytest.mark.parametrize("kind", ["int8", "float32"])
def test_generated_models_every_profile(shared_dir, family, kinds, kind):
    model_factory = pytest.importorskip("tools.model_factory")
    content = model_factory.get_model(family, kind, resolution=96).read_bytes()
    _explain_every_kind(content, shared_dir / "images" / "grace_hopper.bmp", kinds)


@pytest.mark.shared
def test_kinds_it_cannot_explain_are_named(shared_dir):
    content = (shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    it = _interpreter(content, "reference", shared_dir / "images" / "cat.bmp")
    softmax = next(op for op in it.graph.ops if op.kind == "SOFTMAX")
    with pytest.raises(InputError, match="explain covers CONV_2D, DEPTHWISE_CONV_2D"):
        explain(it, softmax.index, (0, 0))
    with pytest.raises(InputError, match="takes 4 coordinates"):
        explain(it, 0, (1, 2))
