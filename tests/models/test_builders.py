"""Builders: every family builds a float Graph the interpreter runs, with the seed's names,
the seed's channel rounding, and exactly keras.applications' variables where Keras has the model."""
import numpy as np
import pytest

import refnet
import refnet.models as M
from refnet.models import ArchSpec, count, get_net, make_divisible
from refnet.tflite_writer import write_tflite


def test_make_divisible_is_the_seeds():
    assert make_divisible(32 * 0.35) == 16  # 8 would lose more than 10 %
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(96 * 0.35) == 32
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(184 / 80 * 80) == 184
    for v in np.linspace(1, 2000, 997):
        d = make_divisible(v)
        assert d % 8 == 0 and d >= 0.9 * v and d >= 8


@pytest.mark.parametrize("arch", sorted(M.FAMILIES))
def test_builder_runs(arch):
    g = getattr(M, arch)(resolution=64, depth_multiplier=0.5)
    it = refnet.Interpreter(graph=g)
    it.allocate_tensors()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    assert y.shape == (1, 1001) and np.isfinite(y).all()
    assert abs(float(y.sum()) - 1) < 1e-4
    # the MACs of the graph's ops equal the architecture's count
    from refnet.cli_models import op_macs_params
    assert sum(op_macs_params(g, op)[0] for op in g.ops) == \
        count(get_net(ArchSpec(arch, 0.5, 64)))["macs"]


def test_seed_names():
    n = get_net(ArchSpec("mobilenet_v2"))
    names = [l.name for l in n.layers]
    assert names[0] == "MobilenetV2/Conv"
    assert "MobilenetV2/expanded_conv/depthwise" in names
    assert "MobilenetV2/expanded_conv/expand" not in names  # first block: factor 1, no expansion
    assert "MobilenetV2/expanded_conv_16/project" in names
    assert "MobilenetV2/Conv_1" in names and "MobilenetV2/Logits/Conv2d_1c_1x1" in names
    v = n.variables()
    assert v["MobilenetV2/Conv/weights"] == (3, 3, 3, 32)
    assert v["MobilenetV2/expanded_conv_1/depthwise/depthwise_weights"] == (3, 3, 96, 1)
    assert v["MobilenetV2/Conv/BatchNorm/moving_variance"] == (32,)
    assert v["MobilenetV2/Logits/Conv2d_1c_1x1/biases"] == (1001,)
    v3 = get_net(ArchSpec("mobilenet_v3_large")).variables()
    assert v3["MobilenetV3/expanded_conv_3/squeeze_excite/Conv/weights"] == (1, 1, 72, 24)
    assert v3["MobilenetV3/Conv_2/weights"] == (1, 1, 960, 1280)
    e = get_net(ArchSpec("mobilenet_edgetpu")).variables()
    assert e["MobilenetEdgeTPU/expanded_conv/project/weights"] == (1, 1, 32, 16)  # bare projection
    assert e["MobilenetEdgeTPU/expanded_conv_1/expand/weights"] == (3, 3, 16, 128)  # fused 3x3
    assert "MobilenetEdgeTPU/expanded_conv_1/depthwise/depthwise_weights" not in e
    v1 = get_net(ArchSpec("mobilenet_v1", 0.25)).variables()
    assert v1["MobilenetV1/Conv2d_13_pointwise/weights"] == (1, 1, 256, 256)


def test_finegrain_edgetpu_075():
    fine = get_net(ArchSpec("mobilenet_edgetpu", 0.75, finegrain_classification_mode=True))
    plain = get_net(ArchSpec("mobilenet_edgetpu", 0.75, finegrain_classification_mode=False))
    assert fine.layer("MobilenetEdgeTPU/Conv_1").cout == 1280
    assert plain.layer("MobilenetEdgeTPU/Conv_1").cout == 960
    assert get_net(ArchSpec("mobilenet_edgetpu", 0.75)).layer("MobilenetEdgeTPU/Conv_1").cout == 1280


def test_graph_serializes_and_reads_back():
    g = M.mobilenet_v3_small(resolution=32)
    g2 = refnet.read_tflite(model_content=write_tflite(g))
    assert [t.name for t in g2.tensors] == [t.name for t in g.tensors]
    assert [op.kind for op in g2.ops] == [op.kind for op in g.ops]


KERAS = [("MobileNetV2", dict(alpha=0.35), "mobilenet_v2"),
         ("MobileNetV2", dict(alpha=1.4), "mobilenet_v2"),
         ("MobileNetV3Large", dict(alpha=0.75), "mobilenet_v3_large"),
         ("MobileNetV3Small", dict(alpha=1.0), "mobilenet_v3_small"),
         ("MobileNetV3Small", dict(alpha=0.75), "mobilenet_v3_small"),
         ("MobileNetV3Large", dict(alpha=1.0, minimalistic=True), "mobilenet_v3_large_minimalistic"),
         ("MobileNetV3Small", dict(alpha=1.0, minimalistic=True), "mobilenet_v3_small_minimalistic")]


@pytest.mark.slow
@pytest.mark.parametrize("cls,kw,arch", KERAS, ids=[f"{c}-{k}" for c, k, _ in KERAS])
def test_variables_equal_keras_applications(cls, kw, arch):
    """Same layers as keras.applications (which follows the seed): identical variable count,
    so the seed's Small rows that refnet cannot meet are not refnet's miscount."""
    keras = pytest.importorskip("keras")
    extra = {"include_preprocessing": False} if "V3" in cls else {}
    m = getattr(keras.applications, cls)(weights=None, classes=1001, input_shape=(224, 224, 3),
                                         **kw, **extra)
    net = get_net(ArchSpec(arch, kw["alpha"]))
    assert count(net)["params_checkpoint"] == m.count_params()
    assert len(net.variables()) == len(m.weights)
