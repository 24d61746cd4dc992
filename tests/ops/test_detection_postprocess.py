"""TFLite_Detection_PostProcess (custom op): refnet vs LiteRT, every output bit for bit, on
single-op models: float32 and uint8 inputs, fast and regular NMS, ties in scores (between anchors
and between classes), zero detections, more candidates than max_detections, a background column
or none, boxes that overlap heavily."""
from __future__ import annotations

import numpy as np
import pytest
from flatbuffers import flexbuffers

from refnet.errors import InvalidModelError, UnsupportedOpError
from refnet.tflite_writer import ModelBuilder
from support import assert_bit_exact, run_refnet


def options(**over) -> bytes:
    o = {"max_detections": 10, "max_classes_per_detection": 1, "detections_per_class": 100,
         "use_regular_nms": False, "nms_score_threshold": 0.3, "nms_iou_threshold": 0.6,
         "num_classes": 5, "y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}
    o.update(over)
    return bytes(flexbuffers.Dumps(o))


def anchors_grid(n: int, rng) -> np.ndarray:
    """Anchors (y, x, h, w) on a jittered grid, sizes 0.1..0.4: many overlap."""
    g = int(np.ceil(np.sqrt(n)))
    yx = (np.stack(np.meshgrid(np.arange(g), np.arange(g), indexing="ij"), -1).reshape(-1, 2)[:n] + 0.5) / g
    hw = rng.uniform(0.1, 0.4, (n, 2))
    return np.concatenate([yx + rng.normal(0, 0.01, (n, 2)), hw], 1).astype(np.float32)


def model(n: int, classes_in: int, opts: bytes, dtype=np.float32, anchors=None, rng=None, box_width=4,
          max_det=10, per_det=1, regular=False):
    mb = ModelBuilder()
    anchors = anchors_grid(n, rng) if anchors is None else anchors
    if dtype == np.uint8:
        boxes = mb.input("box_encodings", (1, n, box_width), np.uint8, scale=0.05, zero_point=128)
        scores = mb.input("class_predictions", (1, n, classes_in), np.uint8, scale=1 / 256, zero_point=0)
        q = np.clip(np.round(anchors / 0.004), 0, 255).astype(np.uint8)
        a = mb.tensor("anchors", (n, 4), np.uint8, data=q, scale=0.004, zero_point=0)
    else:
        boxes = mb.input("box_encodings", (1, n, box_width), np.float32)
        scores = mb.input("class_predictions", (1, n, classes_in), np.float32)
        a = mb.tensor("anchors", (n, 4), np.float32, data=anchors)
    d = max_det if regular else max_det * per_det
    outs = [mb.tensor("detection_boxes", (1, d, 4), np.float32), mb.tensor("detection_classes", (1, d), np.float32),
            mb.tensor("detection_scores", (1, d), np.float32), mb.tensor("num_detections", (1,), np.float32)]
    mb.op("CUSTOM", [boxes, scores, a], outs, custom_code="TFLite_Detection_PostProcess", custom_options=opts)
    mb.outputs.extend(outs)
    return mb.build()


def inputs(n, classes_in, dtype, rng, ties=False, box_width=4):
    enc = rng.normal(0, 1, (1, n, box_width))
    if ties:  # few distinct score values: ties between anchors and between classes
        sc = rng.choice([0.1, 0.35, 0.5, 0.5, 0.75, 0.9], size=(1, n, classes_in))
    else:
        sc = rng.uniform(0, 1, (1, n, classes_in))
    if dtype == np.uint8:
        return [np.clip(np.round(enc / 0.05) + 128, 0, 255).astype(np.uint8),
                np.clip(np.round(sc * 256), 0, 255).astype(np.uint8)]
    return [enc.astype(np.float32), sc.astype(np.float32)]


CASES = [  # (name, n, classes with background, option overrides, ties)
    ("fast", 64, 6, {}, False),
    ("fast, ties", 64, 6, {}, True),
    ("fast, 3 classes per detection, ties", 49, 6, {"max_classes_per_detection": 3}, True),
    ("fast, classes per detection > classes", 30, 5, {"max_classes_per_detection": 7, "num_classes": 5}, True),
    ("fast, no background column", 64, 5, {}, False),
    ("fast, nothing above the threshold", 40, 6, {"nms_score_threshold": 0.999}, False),
    ("fast, more candidates than max_detections", 200, 6, {"max_detections": 5, "nms_iou_threshold": 0.95}, False),
    ("regular", 64, 6, {"use_regular_nms": True}, False),
    ("regular, ties", 64, 6, {"use_regular_nms": True}, True),
    ("regular, detections_per_class 2", 81, 6, {"use_regular_nms": True, "detections_per_class": 2}, True),
    ("regular, max_detections 3", 100, 11, {"use_regular_nms": True, "max_detections": 3, "num_classes": 10}, True),
    ("regular, nothing above the threshold", 40, 6, {"use_regular_nms": True, "nms_score_threshold": 1.5}, False),
    ("regular, IoU threshold 1", 36, 6, {"use_regular_nms": True, "nms_iou_threshold": 1.0}, True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("name, n, classes_in, over, ties", CASES, ids=[c[0] for c in CASES])
def test_postprocess_matches_litert(name, n, classes_in, over, ties, dtype):
    rng = np.random.default_rng(abs(hash((name, np.dtype(dtype).name))) % 2**32)
    opts = {"max_detections": 10, "max_classes_per_detection": 1, "use_regular_nms": False, "num_classes": 5}
    opts.update(over)
    content = model(n, classes_in, options(**over), dtype, rng=rng, max_det=opts["max_detections"],
                    per_det=opts["max_classes_per_detection"], regular=opts["use_regular_nms"])
    for trial in range(3):
        xs = inputs(n, classes_in, dtype, rng, ties)
        assert assert_bit_exact(content, xs) == 4 + 2  # the two inputs and the four outputs
        assert assert_bit_exact(content, xs, path="xnnpack") == 6


def test_detections_are_what_the_scores_say():
    """An independent check: one clear box per class far apart, regular NMS finds exactly those."""
    n = 4
    anchors = np.array([[0.2, 0.2, 0.2, 0.2], [0.2, 0.8, 0.2, 0.2], [0.8, 0.2, 0.2, 0.2], [0.8, 0.8, 0.2, 0.2]],
                       np.float32)
    content = model(n, 3, options(num_classes=2, use_regular_nms=True, max_detections=4), anchors=anchors,
                    max_det=4, regular=True)
    scores = np.array([[[0, 0.9, 0.1], [0, 0.2, 0.8], [0, 0.1, 0.1], [0, 0.7, 0.05]]], np.float32)
    out = run_refnet(content, [np.zeros((1, n, 4), np.float32), scores])
    g = __import__("refnet").read_tflite(model_content=content)
    boxes, classes, sc, count = (out[i] for i in g.outputs)
    assert count.tolist() == [3.0]
    assert sc[0, :3].tolist() == pytest.approx([0.9, 0.8, 0.7]) and sc[0, 3] == 0
    assert classes[0, :3].tolist() == [0.0, 1.0, 0.0]
    assert boxes[0, 0].tolist() == pytest.approx([0.1, 0.1, 0.3, 0.3])  # zero encodings: the anchor itself


def test_bad_options_and_inputs_are_typed_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidModelError, match="option 'num_classes' is missing"):
        o = flexbuffers.Loads(options())
        del o["num_classes"]
        run_refnet(model(16, 6, bytes(flexbuffers.Dumps(o)), rng=rng), inputs(16, 6, np.float32, rng))
    with pytest.raises(InvalidModelError, match="not a readable flexbuffer|not a flexbuffer map"):
        run_refnet(model(16, 6, b"\x01\x02\x03", rng=rng), inputs(16, 6, np.float32, rng))
    with pytest.raises(InvalidModelError, match="num_classes 9 does not fit scores with 6 columns"):
        run_refnet(model(16, 6, options(num_classes=9), rng=rng), inputs(16, 6, np.float32, rng))
    with pytest.raises(InvalidModelError, match=r"nms_iou_threshold 0.0 must be in \(0, 1\]"):
        run_refnet(model(16, 6, options(nms_iou_threshold=0.0), rng=rng), inputs(16, 6, np.float32, rng))
    with pytest.raises(InvalidModelError, match="declared"):
        run_refnet(model(16, 6, options(max_detections=4), rng=rng), inputs(16, 6, np.float32, rng))
    with pytest.raises(InvalidModelError, match="output rows: more than refnet allocates"):
        run_refnet(model(16, 6, options(max_detections=2 ** 30, max_classes_per_detection=4), rng=rng,
                         max_det=1), inputs(16, 6, np.float32, rng))


def test_damaged_options_are_typed_errors_or_run():
    """200 mutants of the flexbuffer options (bit flips, bytes set to extremes, truncation): each
    either runs or fails with a refnet error, never another exception."""
    from refnet.errors import RefnetError

    rng = np.random.default_rng(11)
    good = bytearray(options())
    xs = inputs(16, 6, np.float32, rng)
    outcomes = {"ran": 0, "typed": 0}
    for k in range(200):
        raw = bytearray(good)
        if k % 3 == 0:
            raw = raw[:int(rng.integers(0, len(raw)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(0, len(raw)))
                raw[i] = int(rng.choice([0, 255, 127, 128])) if k % 3 == 1 else raw[i] ^ (1 << int(rng.integers(0, 8)))
        content = model(16, 6, bytes(raw), rng=np.random.default_rng(0))
        try:
            run_refnet(content, xs)
            outcomes["ran"] += 1
        except RefnetError:
            outcomes["typed"] += 1
    assert outcomes["typed"] > 0 and sum(outcomes.values()) == 200


@pytest.mark.parametrize("regular", [False, True])
def test_overflowing_box_sizes_match_litert(regular):
    """exp(h / h_scale) beyond double's range: inf boxes (LiteRT's C arithmetic), NaN IoUs."""
    rng = np.random.default_rng(21)
    content = model(36, 6, options(use_regular_nms=regular), rng=rng, max_det=10, regular=regular)
    boxes, scores = inputs(36, 6, np.float32, rng)
    boxes[0, ::5, 2] = np.float32(5000.0)  # exp(1000): overflows
    boxes[0, 1::7, 3] = np.float32(-5000.0)  # exp(-1000): 0, a degenerate box
    assert assert_bit_exact(content, [boxes, scores]) == 6
