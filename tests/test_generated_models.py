"""Generated MobileNets of every family, kind and two resolutions: every tensor equals LiteRT's
reference kernels on real images and on random inputs."""
import numpy as np
import pytest

import refnet
from refnet.images import image_input
from support import assert_bit_exact, random_input

model_factory = pytest.importorskip("tools.model_factory")

RESOLUTIONS = (96, 128)
IMAGES = ("cat.bmp", "parrot.jpg")


@pytest.mark.slow
@pytest.mark.litert
@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("kind", model_factory.KINDS)
@pytest.mark.parametrize("family", model_factory.FAMILIES)
def test_generated_model_bit_exact(shared_dir, family, kind, resolution):
    path = model_factory.get_model(family, kind, resolution=resolution)
    content = path.read_bytes()
    detail = refnet.Interpreter(model_content=content).get_input_details()[0]
    rng = np.random.default_rng(resolution)
    inputs = [image_input(shared_dir / "images" / name, detail) for name in IMAGES]
    inputs.append(random_input(detail["shape"], detail["dtype"], rng) if detail["dtype"] != np.float32
                  else rng.uniform(-1, 1, size=detail["shape"]).astype(np.float32))
    for x in inputs:
        assert assert_bit_exact(content, [x]) > 10


@pytest.mark.litert
@pytest.mark.parametrize("threads", (2, 3))
@pytest.mark.parametrize("kind", ("int8", "float32"))
@pytest.mark.parametrize("family", model_factory.FAMILIES)
def test_threads_keep_every_tensor(shared_dir, family, kind, threads):
    """num_threads > 1 divides each kernel's work (pixel tiles x blocks of weight panels, rows of
    depthwise panels) among threads; every tensor still equals LiteRT's reference kernels."""
    content = model_factory.get_model(family, kind, resolution=96).read_bytes()
    detail = refnet.Interpreter(model_content=content).get_input_details()[0]
    x = image_input(shared_dir / "images" / "cat.bmp", detail)
    assert assert_bit_exact(content, [x], num_threads=threads) > 10
