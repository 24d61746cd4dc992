"""SSD-style MobileNet detectors as TensorFlow's converter writes them (tools/detector_factory.py:
MobileNetV2 and MobileNetV3-Small backbones, box and class heads, anchors, TFLite_Detection_PostProcess
with fast and regular NMS), float32 and int8, on the six shared images: every tensor bit-exact with
LiteRT's reference path (float32 and int8) and, for int8, its optimized and XNNPACK paths; `refnet run`
prints the detections, `refnet info` the post-process options."""
import numpy as np
import pytest

import refnet
from refnet.cli import main
from refnet.images import image_input
from refnet.litert import compare_tensors, run_litert
from refnet.verify import run_all_tensors
from tools import detector_factory

pytestmark = [pytest.mark.litert, pytest.mark.shared]
IMAGES = ("bird.bmp", "cat.bmp", "grace_hopper.bmp", "hot_dog.jpg", "owl.jpg", "parrot.jpg")


@pytest.fixture(scope="module", autouse=True)
def _tensorflow():
    pytest.importorskip("tensorflow")  # builds the detectors once (the test extras install it)


@pytest.mark.parametrize("kind", detector_factory.KINDS)
@pytest.mark.parametrize("name", list(detector_factory.DETECTORS))
def test_detector_bit_exact_on_every_tensor(name, kind, shared_dir):
    path = detector_factory.get_model(name, kind)
    content = path.read_bytes()
    graph = refnet.read_tflite(model_content=content)
    assert graph.ops[-1].custom_code == "TFLite_Detection_PostProcess"
    paths = ["reference"] + (["optimized", "xnnpack"] if kind == "int8" else [])
    counts = []
    for image in IMAGES:
        for litert_path in paths:
            it = refnet.Interpreter(model_content=content, experimental_preserve_all_tensors=True, profile=litert_path)
            it.allocate_tensors()
            x = image_input(shared_dir / "images" / image, it.get_input_details()[0])
            rows = compare_tensors(graph, run_all_tensors(it, [x]), run_litert(content, [x], path=litert_path))
            bad = [r for r in rows if not r.equal]
            assert not bad and len(rows) == 1 + sum(len(op.outputs) for op in graph.ops), (image, litert_path, bad[:3])
        counts.append(float(it.get_tensor(graph.ops[-1].outputs[3])[0]))
    assert max(counts) > 0  # the post-process found something on some image


def test_run_prints_detections_and_info_the_options(shared_dir, capsys):
    path = str(detector_factory.get_model("ssd_mobilenet_v3_small", "int8"))
    assert main(["run", path, "--image", str(shared_dir / "images" / "owl.jpg")]) == 0
    out = capsys.readouterr().out
    assert "detection(s)" in out and "box (ymin, xmin, ymax, xmax)" in out
    for litert_path in ("reference", "optimized", "xnnpack"):
        line = next(l for l in out.splitlines() if l.startswith(litert_path + " "))
        assert "bit-exact with refnet's" in line, line
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert "custom op 117 TFLite_Detection_PostProcess: " in out and "use_regular_nms=1" in out
    assert "output 237 'PartitionedCall:0': float32 1x8x4" in out  # sized by the op, as LiteRT does
