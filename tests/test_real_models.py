"""The real checkpoints in ../shared/models: every tensor equals LiteRT's reference kernels."""
import numpy as np
import pytest

import refnet
from refnet.images import image_input
from support import assert_bit_exact, random_input

CPU_MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite",
              "deeplabv3_mnv2_dm05_pascal_quant.tflite"]
IMAGES = ["cat.bmp", "grace_hopper.bmp", "bird.bmp", "parrot.jpg", "owl.jpg", "hot_dog.jpg"]


@pytest.mark.shared
@pytest.mark.litert
@pytest.mark.parametrize("model", CPU_MODELS)
def test_every_tensor_on_every_image(shared_dir, model):
    content = (shared_dir / "models" / model).read_bytes()
    detail = refnet.Interpreter(model_content=content).get_input_details()[0]
    for image in IMAGES:
        x = image_input(shared_dir / "images" / image, detail)
        compared = assert_bit_exact(content, [x])
        assert compared > 25


@pytest.mark.shared
@pytest.mark.litert
@pytest.mark.parametrize("model", CPU_MODELS)
def test_every_tensor_on_random_inputs(shared_dir, model):
    content = (shared_dir / "models" / model).read_bytes()
    detail = refnet.Interpreter(model_content=content).get_input_details()[0]
    rng = np.random.default_rng(7)
    for _ in range(2):
        assert_bit_exact(content, [random_input(detail["shape"], detail["dtype"], rng)])


@pytest.mark.shared
def test_cat_is_an_egyptian_cat_with_the_reference_score(shared_dir):
    """The README's LiteRT reference figure: top-1 'Egyptian cat', score 191."""
    it = refnet.Interpreter(model_path=str(shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"))
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    it.set_tensor(detail["index"], image_input(shared_dir / "images" / "cat.bmp", detail))
    it.invoke()
    scores = it.get_tensor(it.get_output_details()[0]["index"])[0]
    labels = (shared_dir / "models" / "imagenet_labels.txt").read_text().splitlines()
    top = int(np.argmax(scores))
    assert labels[top] == "Egyptian cat"
    assert scores[top] == 191


@pytest.mark.shared
def test_edgetpu_model_is_explained(shared_dir):
    path = shared_dir / "models" / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    with pytest.raises(refnet.EdgeTpuOpError, match="edgetpu-custom-op.*Edge TPU"):
        refnet.Interpreter(model_path=str(path))
