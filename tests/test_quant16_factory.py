"""tools/quant16_factory.py names its models apart from model_factory's: its own directory, and a
hash of its own source with model_factory's (an edit to either rebuilds the 16x8 models only)."""
from pathlib import Path

import pytest

quant16_factory = pytest.importorskip("tools.quant16_factory")
model_factory = pytest.importorskip("tools.model_factory")


def test_16x8_models_are_cached_apart_from_model_factory(monkeypatch, tmp_path):
    monkeypatch.setenv("REFNET_QUANT16_CACHE", str(tmp_path))
    path = quant16_factory.model_path("v2")
    assert path.parent == tmp_path
    assert path.name == f"v2_a0.35_r96_s0_16x8_{quant16_factory.factory_hash()}.tflite"
    assert quant16_factory.factory_hash() != model_factory.factory_hash()
    assert set(quant16_factory.FAMILIES) <= set(model_factory.FAMILIES)
    assert not path.exists()  # naming a model builds nothing
    assert Path(model_factory.cache_dir()) != tmp_path
