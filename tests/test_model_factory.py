"""Smoke tests of tools/model_factory.py: each family builds, and its ops are the expected ones.

The building tests are `slow` (TensorFlow builds, calibrates and converts; about 10-25 s per
family the first time, then the models come from the cache in $REFNET_CACHE).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tools import model_factory as mf
from support import assert_same_bits

HAVE_TF = importlib.util.find_spec("tensorflow") is not None
HAVE_IMAGES = all((mf.IMAGES_DIR / n).exists() for n in mf.IMAGE_NAMES)

needs_images = pytest.mark.skipif(not HAVE_IMAGES, reason=f"shared images absent ({mf.IMAGES_DIR})")
needs_tf = pytest.mark.skipif(not HAVE_TF, reason="tensorflow not installed")

RES = 96


def graph(path):
    """[(op name, [input tensor shapes], [input tensor dtypes])] of subgraph 0, and the
    model's input/output tensor types."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.TensorType import TensorType

    op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
    m = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    g = m.Subgraphs(0)
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        shapes, types = [], []
        for j in range(op.InputsLength()):
            t = op.Inputs(j)
            if t < 0:
                shapes.append(None)
                types.append(None)
                continue
            tensor = g.Tensors(t)
            shapes.append(tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ())
            types.append(type_names[tensor.Type()])
        ops.append((op_names[codes[op.OpcodeIndex()]], shapes, types))
    io = (type_names[g.Tensors(g.Inputs(0)).Type()], type_names[g.Tensors(g.Outputs(0)).Type()])
    return ops, io


def counts(ops):
    return Counter(name for name, _, _ in ops)


# ------------------------------------------------------------------------------ cheap tests

def test_api_names_and_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("REFNET_CACHE", str(tmp_path))
    assert set(mf.FAMILIES) == {"v2", "v3_large", "v3_small", "v3_large_minimalistic",
                                "v3_small_minimalistic", "edgetpu"}
    assert set(mf.KINDS) == {"float32", "float16", "dynamic", "int8", "int8_io", "uint8_io"}
    p = mf.model_path("v3_small", "int8_io", resolution=128, alpha=0.5, seed=3)
    assert p.parent == tmp_path
    for part in ("v3_small", "int8_io", "r128", "a0.5", "s3", mf.factory_hash()):
        assert part in p.name
    assert mf.model_path("v2", "int8", 96) != mf.model_path("v2", "int8_io", 96)
    assert mf.model_path("v2", "int8", 96, seed=0) != mf.model_path("v2", "int8", 96, seed=1)
    with pytest.raises(ValueError):
        mf.model_path("v4", "int8")
    with pytest.raises(ValueError):
        mf.model_path("v2", "int4")


@pytest.mark.shared
@needs_images
def test_load_image():
    x = mf.load_image(mf.IMAGES_DIR / "cat.bmp", 96)
    assert x.shape == (1, 96, 96, 3) and x.dtype == np.float32
    assert -1.0 <= x.min() < -0.5 and 0.5 < x.max() <= 1.0
    assert_same_bits(x, mf.load_image(mf.IMAGES_DIR / "cat.bmp", 96))


def test_default_model_matches_its_description():
    tfl = mf.DATA_DIR / "default_model.tflite"
    desc = json.loads((mf.DATA_DIR / "default_model.json").read_text())
    data = tfl.read_bytes()
    assert hashlib.sha256(data).hexdigest() == desc["sha256"]
    assert len(data) == desc["bytes"] <= 2 * 1024 * 1024
    for key in ("family", "alpha", "resolution", "kind", "seed", "factory_command"):
        assert key in desc
    assert desc["family"] in mf.FAMILIES and desc["kind"] in mf.KINDS
    ops, io = graph(tfl)
    assert dict(counts(ops)) == desc["ops"]
    assert "SOFTMAX" in desc["ops"]
    if desc["kind"] == "int8":
        assert io == ("FLOAT32", "FLOAT32")
        # full integer inside: every CONV_2D takes int8 activations and weights
        assert all(t[:2] == ["INT8", "INT8"] for n, _, t in ops if n == "CONV_2D")


# ------------------------------------------------------------------------------ building tests

@pytest.mark.slow
@pytest.mark.shared
@needs_images
@needs_tf
@pytest.mark.parametrize("family", mf.FAMILIES)
def test_family_builds_with_expected_ops(family):
    path = mf.get_model(family, "int8", resolution=RES)
    assert path.exists() and path.stat().st_size < 4 * 1024 * 1024
    ops, io = graph(path)
    c = counts(ops)
    assert io == ("FLOAT32", "FLOAT32")
    assert c["QUANTIZE"] == 1 and c["DEQUANTIZE"] == 1
    assert c["SOFTMAX"] == 1 and ops[-2][0] == "SOFTMAX"
    assert c["CONV_2D"] > 5 and c["DEPTHWISE_CONV_2D"] > 3
    dw_kernels = {s[1][1:3] for n, s, _ in ops if n == "DEPTHWISE_CONV_2D"}
    if family.startswith("v3_") and not family.endswith("_minimalistic"):
        assert c["HARD_SWISH"] > 0
        assert c["MUL"] > 0 and c["MEAN"] > 1          # squeeze-and-excite
        assert (5, 5) in dw_kernels
    if family.endswith("_minimalistic") or family in ("v2", "edgetpu"):
        assert c["HARD_SWISH"] == 0 and c["MUL"] == 0
    if family.endswith("_minimalistic"):
        assert dw_kernels == {(3, 3)}
    if family in ("v2", "edgetpu"):
        assert c["FULLY_CONNECTED"] == 1 and c["ADD"] > 0
    if family == "edgetpu":
        convs = [s[1] for n, s, _ in ops if n == "CONV_2D"]   # filter [O, H, W, I]
        fused = [f for f in convs if f[1:3] == (3, 3) and f[3] > 3]
        assert len(fused) >= 4, convs
        assert convs[0][1:] == (3, 3, 3)                       # stem
        assert convs[1][1:3] == (1, 1)                         # bare 1x1 projection
        assert ops[2][0] == "CONV_2D" and ops[3][0] == "CONV_2D"   # no depthwise before it
        assert (5, 5) in dw_kernels


@pytest.mark.slow
@pytest.mark.shared
@needs_images
@needs_tf
def test_kinds_of_one_family():
    paths = {k: mf.get_model("v3_small_minimalistic", k, resolution=RES) for k in mf.KINDS}
    g = {k: graph(p) for k, p in paths.items()}
    assert g["float32"][1] == ("FLOAT32", "FLOAT32")
    assert "DEQUANTIZE" not in counts(g["float32"][0])
    # float16: float16 weights dequantized by DEQUANTIZE ops
    f16 = g["float16"][0]
    assert counts(f16)["DEQUANTIZE"] > 10
    assert all(t == ["FLOAT16"] for n, _, t in f16 if n == "DEQUANTIZE")
    # dynamic: int8 weights under float activations (hybrid ops), no QUANTIZE
    dyn = g["dynamic"][0]
    assert "QUANTIZE" not in counts(dyn)
    assert any(n == "CONV_2D" and t[:2] == ["FLOAT32", "INT8"] for n, _, t in dyn)
    # full integer kinds
    assert g["int8_io"][1] == ("INT8", "INT8") and "QUANTIZE" not in counts(g["int8_io"][0])
    assert g["uint8_io"][1] == ("UINT8", "UINT8") and counts(g["uint8_io"][0])["QUANTIZE"] == 2
    for k in ("int8", "int8_io", "uint8_io"):
        assert all(t[:2] == ["INT8", "INT8"] for n, _, t in g[k][0] if n == "CONV_2D")
    # the same op sequence everywhere once the io/weight plumbing is set aside
    core = {k: [n for n, _, _ in ops if n not in ("QUANTIZE", "DEQUANTIZE")]
            for k, (ops, _) in g.items()}
    assert all(v == core["float32"] for v in core.values())
    meta = mf.get_metadata("v3_small_minimalistic", resolution=RES)
    assert 1.0 < meta["calibration"]["logit_std"] < 4.0
    # cached: asking again returns the same file without rebuilding
    before = paths["int8"].stat().st_mtime_ns
    assert mf.get_model("v3_small_minimalistic", "int8", resolution=RES) == paths["int8"]
    assert paths["int8"].stat().st_mtime_ns == before


@pytest.mark.slow
@pytest.mark.litert
@pytest.mark.shared
@needs_images
@needs_tf
def test_int8_runs_on_reference_kernels_and_agrees_with_float():
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    x = mf.load_image(mf.IMAGES_DIR / "grace_hopper.bmp", RES)
    out = {}
    for kind in ("float32", "int8"):
        it = Interpreter(model_path=str(mf.get_model("edgetpu", kind, resolution=RES)),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        out[kind] = it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1)
    assert abs(out["float32"].sum() - 1) < 1e-4
    assert np.abs(out["float32"] - out["int8"]).max() < 0.05
