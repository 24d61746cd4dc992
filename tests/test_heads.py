"""MobileNets with dense-prediction heads as TensorFlow's converter writes them (tools/head_factory.py):
a MoveNet-like pose model (uint8 pixels in, the argmax / gather decode in the graph, keypoints out) and a
DeepLab-like segmentation model (ASPP-lite head, bilinear upsampling, ARG_MAX), float32 and int8 (and
uint8 io), on shared images: every tensor bit-exact with each LiteRT path (float32: the reference path,
the other paths' float sums are not modelled); `refnet run` prints the keypoints and the class map."""
import numpy as np
import pytest

import refnet
from refnet.cli import main
from refnet.images import image_input
from refnet.litert import compare_tensors, run_litert
from refnet.verify import run_all_tensors
from tools import head_factory

pytestmark = [pytest.mark.litert, pytest.mark.shared]
IMAGES = ("grace_hopper.bmp", "parrot.jpg")
CASES = [(name, kind) for name, (_, _, kinds) in head_factory.MODELS.items() for kind in kinds]


@pytest.fixture(scope="module", autouse=True)
def _tensorflow():
    pytest.importorskip("tensorflow")  # builds the models once (the test extras install it)


@pytest.mark.parametrize("name, kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_head_model_bit_exact_on_every_tensor(name, kind, shared_dir):
    content = head_factory.get_model(name, kind).read_bytes()
    graph = refnet.read_tflite(model_content=content)
    paths = ["reference"] if kind == "float32" else ["reference", "optimized", "xnnpack"]
    for image in IMAGES:
        for litert_path in paths:
            it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=litert_path)
            it.allocate_tensors()
            x = image_input(shared_dir / "images" / image, it.get_input_details()[0])
            rows = compare_tensors(graph, run_all_tensors(it, [x]), run_litert(content, [x], path=litert_path))
            bad = [r for r in rows if not r.equal]
            assert not bad and len(rows) == 1 + sum(len(op.outputs) for op in graph.ops), (image, litert_path, bad[:3])
    out = it.get_tensor(graph.outputs[0])
    if name == "movenet_like":
        assert out.shape == (1, 1, head_factory.KEYPOINTS, 3) and out.dtype == np.float32
        assert ((out[..., 2] > 0) & (out[..., 2] < 1)).all()  # scores are sigmoids
    else:
        assert out.shape == (1, 128, 128) and np.issubdtype(out.dtype, np.integer)
        assert ((out >= 0) & (out < head_factory.SEG_CLASSES)).all()


def test_run_prints_keypoints_and_class_map(shared_dir, capsys):
    image = str(shared_dir / "images" / "grace_hopper.bmp")
    assert main(["run", str(head_factory.get_model("movenet_like", "float32")), "--image", image]) == 0
    out = capsys.readouterr().out
    assert "17 keypoints (y, x as fractions of the image)" in out
    assert "left_shoulder" in out and "right_ankle" in out
    line = next(l for l in out.splitlines() if l.startswith("reference "))
    assert "bit-exact with refnet's" in line, line
    assert main(["run", str(head_factory.get_model("deeplab_like", "int8")), "--image", image]) == 0
    out = capsys.readouterr().out
    assert "a class per pixel (128x128)" in out and "share" in out
    for litert_path in ("reference", "optimized", "xnnpack"):
        line = next(l for l in out.splitlines() if l.startswith(litert_path + " "))
        assert "bit-exact with refnet's" in line and "class " in line, line
