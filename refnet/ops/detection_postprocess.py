"""TFLite_Detection_PostProcess (custom op): an SSD detector's anchor decoding and non-max
suppression, as LiteRT's kernel computes it (one thread).

Inputs: box encodings [1, N, >=4] and class scores [1, N, C (+1 background)], float32 or uint8,
anchors [N, 4] (y, x, h, w); outputs (all float32): boxes [1, D, 4] (ymin, xmin, ymax, xmax),
classes [1, D], scores [1, D], count [1]. Options: a flexbuffer map (max_detections,
max_classes_per_detection, detections_per_class (100), use_regular_nms (false), nms_score_threshold,
nms_iou_threshold, num_classes, y_scale, x_scale, h_scale, w_scale).

Arithmetic (each step as LiteRT orders it):
  dequantize (uint8)  round(scale * (q - zero_point)) in float32 (exact either way it is written)
  decode              in double, rounded to float once: ycenter = y / y_scale * anchor_h + anchor_y,
                      half_h = 0.5 * exp(h / h_scale) * anchor_h (libm's exp, as LiteRT calls it);
                      then float32 ymin = ycenter - half_h, ymax = ycenter + half_h (x, w alike)
  one class's NMS     scores >= threshold kept, sorted by score descending, stable (ties keep
                      anchor order); greedily take the best, drop later boxes whose float32
                      IoU = inter / (area_i + area_j - inter) exceeds the IoU threshold (0 when an
                      area is <= 0); at most max_detections (per class: detections_per_class)
  fast NMS            per anchor its top min(max_classes_per_detection, C) classes (one: the first
                      maximum), NMS on each anchor's best score; D = max_detections x classes/det
  regular NMS         NMS per class, each class's picks merged stably into the running list
                      (earlier classes first on ties), kept to max_detections; D = max_detections
                      (tflite-runtime 2.14: Form.NMS_NEW_FIRST, this class's first; the profile says)
Rows past the detections: regular NMS writes zeros; fast NMS leaves LiteRT's buffer as it was
(refnet writes zeros, which is what a fresh LiteRT arena holds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..forms import Form
from . import OpContext, register

F32 = np.float32
OP_NAME = "TFLite_Detection_PostProcess"
DEFAULT_DETECTIONS_PER_CLASS = 100
MAX_DETECTED_ROWS = 1 << 20  # far above any detector's max_detections x classes per detection


@dataclass(frozen=True)
class PostProcessPlan:
    max_detections: int
    max_classes_per_detection: int
    detections_per_class: int
    use_regular_nms: bool
    score_threshold: np.float32
    iou_threshold: np.float32
    num_classes: int
    scales: tuple  # y, x, h, w (float32, as LiteRT reads them)
    num_boxes: int
    label_offset: int  # 1 when the scores carry a background column first
    num_detected: int  # rows of the boxes / classes / scores outputs


def _options(ctx: OpContext) -> dict:
    from flatbuffers import flexbuffers

    raw = ctx.op.options.get("custom_options", b"")
    try:
        m = flexbuffers.Loads(bytes(raw))
    except Exception as e:  # a damaged flexbuffer: whatever the decoder trips on
        raise ctx.fail(f"its options are not a readable flexbuffer ({type(e).__name__}: {e})") from None
    if not isinstance(m, dict):
        raise ctx.fail("its options are not a flexbuffer map")
    return m


def _number(ctx, m: dict, key: str, kind, default=None):
    if key not in m or m[key] is None:
        if default is None:
            raise ctx.fail(f"option '{key}' is missing")
        return default
    value = m[key]
    if isinstance(value, (bool, int, float)) and not (kind is int and isinstance(value, float)):
        return kind(value)
    raise ctx.fail(f"option '{key}' is {value!r}, not a {kind.__name__}")


def _prepare_postprocess(ctx: OpContext) -> PostProcessPlan:
    if len(ctx.op.inputs) != 3 or len(ctx.op.outputs) != 4:
        raise ctx.fail(f"needs 3 inputs (box encodings, class scores, anchors) and 4 outputs, has "
                       f"{len(ctx.op.inputs)} and {len(ctx.op.outputs)}")
    boxes_t, scores_t, anchors_t = (ctx.input_tensor(i) for i in range(3))
    if any(t is None for t in (boxes_t, scores_t, anchors_t)):
        raise ctx.fail("all three inputs are required")
    m = _options(ctx)
    max_det = _number(ctx, m, "max_detections", int)
    per_det = _number(ctx, m, "max_classes_per_detection", int)
    per_class = _number(ctx, m, "detections_per_class", int, DEFAULT_DETECTIONS_PER_CLASS)
    regular = bool(_number(ctx, m, "use_regular_nms", bool, False))
    num_classes = _number(ctx, m, "num_classes", int)
    with np.errstate(over="ignore"):  # static_cast<float> of a huge double: inf, as in C
        scales = tuple(F32(_number(ctx, m, k, float)) for k in ("y_scale", "x_scale", "h_scale", "w_scale"))
    iou = F32(_number(ctx, m, "nms_iou_threshold", float))
    threshold = F32(_number(ctx, m, "nms_score_threshold", float))
    if len(boxes_t.shape) != 3 or len(scores_t.shape) != 3 or len(anchors_t.shape) != 2:
        raise ctx.fail(f"box encodings {list(boxes_t.shape)} and scores {list(scores_t.shape)} must be 3-D, "
                       f"anchors {list(anchors_t.shape)} 2-D")
    n = boxes_t.shape[1]
    if boxes_t.shape[0] != 1 or scores_t.shape[0] != 1:
        raise ctx.fail("batch size must be 1 (as LiteRT's kernel)")
    if boxes_t.shape[2] < 4 or scores_t.shape[1] != n or anchors_t.shape != (n, 4):
        raise ctx.fail(f"shapes do not fit: box encodings {list(boxes_t.shape)}, scores "
                       f"{list(scores_t.shape)}, anchors {list(anchors_t.shape)} (need [1,N,>=4], "
                       f"[1,N,C], [N,4])")
    with_background = scores_t.shape[2]
    if not 0 <= with_background - num_classes <= 1:
        raise ctx.fail(f"num_classes {num_classes} does not fit scores with {with_background} columns "
                       f"(num_classes or num_classes + 1 for a background column)")
    for t, what in ((boxes_t, "box encodings"), (scores_t, "class scores")):
        if t.dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
            raise ctx.unsupported(f"{what} are {t.dtype.name}; LiteRT's kernel takes float32 or uint8")
    if boxes_t.dtype == np.uint8 and anchors_t.dtype != np.uint8 or \
            boxes_t.dtype == np.float32 and anchors_t.dtype != np.float32:
        raise ctx.unsupported(f"anchors are {anchors_t.dtype.name} with {boxes_t.dtype.name} box encodings; "
                              f"LiteRT's kernel takes both float32 or both uint8")
    for t in (boxes_t, scores_t, anchors_t):
        if t.dtype == np.uint8 and t.quantization is None:
            raise ctx.fail(f"uint8 input '{t.name}' has no quantization")
    if max_det < 0 or (regular and min(per_class, max_det) <= 0) or (not regular and per_det <= 0):
        raise ctx.fail(f"max_detections {max_det}, detections_per_class {per_class}, "
                       f"max_classes_per_detection {per_det}: LiteRT needs them positive")
    if not (F32(0) < iou <= F32(1)):
        raise ctx.fail(f"nms_iou_threshold {iou} must be in (0, 1]")
    detected = max_det if regular else max_det * per_det
    if detected > MAX_DETECTED_ROWS:  # LiteRT's int32 product overflows at 2**31; refnet stops sooner
        raise ctx.fail(f"max_detections {max_det} x max_classes_per_detection {per_det} = {detected} output "
                       f"rows: more than refnet allocates ({MAX_DETECTED_ROWS}); the options are damaged?")
    shapes = [(1, detected, 4), (1, detected), (1, detected), (1,)]
    for i, shape in enumerate(shapes):
        y = ctx.output_tensor(i)
        if y.dtype != np.float32:
            raise ctx.fail(f"output {i} '{y.name}' is {y.dtype.name}; the kernel writes float32")
        if tuple(y.shape) == () and shape != ():  # the converter leaves them unknown: sized here, as LiteRT does
            y.shape = shape
        elif tuple(y.shape) != shape:
            raise ctx.fail(f"output {i} '{y.name}' is declared {list(y.shape)}; the kernel makes {list(shape)}")
    return PostProcessPlan(max_det, per_det, per_class, regular, threshold, iou, num_classes, scales, n,
                           with_background - num_classes, detected)


def _dequantized(t, values: np.ndarray) -> np.ndarray:
    if values.dtype == np.float32:
        return values
    scale, zero_point = t.quantization.scalar()
    return F32(scale) * (values.astype(F32) - F32(zero_point))  # exact integers, one rounding


def decode_boxes(encodings: np.ndarray, anchors: np.ndarray, scales: tuple) -> np.ndarray:
    """[N, 4] float32 corners (ymin, xmin, ymax, xmax): double arithmetic rounded once, as LiteRT."""
    y_scale, x_scale, h_scale, w_scale = (float(s) for s in scales)
    with np.errstate(all="ignore"):  # a zero scale gives inf / NaN, as the C double arithmetic does
        return _decode(encodings[:, :4].astype(np.float64), anchors.astype(np.float64),
                       y_scale, x_scale, h_scale, w_scale)


def _decode(e, a, y_scale, x_scale, h_scale, w_scale) -> np.ndarray:
    ycenter = (e[:, 0] / y_scale * a[:, 2] + a[:, 0]).astype(F32)
    xcenter = (e[:, 1] / x_scale * a[:, 3] + a[:, 1]).astype(F32)
    def libm_exp(v: float) -> float:  # LiteRT's std::exp(double); C gives inf on overflow
        try:
            return math.exp(v)
        except OverflowError:
            return math.inf

    exp = np.vectorize(libm_exp, otypes=[np.float64])
    half_h = (0.5 * exp(e[:, 2] / h_scale) * a[:, 2]).astype(F32)
    half_w = (0.5 * exp(e[:, 3] / w_scale) * a[:, 3]).astype(F32)
    return np.stack([ycenter - half_h, xcenter - half_w, ycenter + half_h, xcenter + half_w], axis=1)


def _iou(boxes: np.ndarray, i: int, js: np.ndarray) -> np.ndarray:
    """float32 IoU of box i with boxes js, as LiteRT's ComputeIntersectionOverUnion."""
    bi, bj = boxes[i], boxes[js]
    with np.errstate(all="ignore"):  # inf boxes (an overflowing exp) give NaN, as in C
        area_i = (bi[2] - bi[0]) * (bi[3] - bi[1])
        area_j = (bj[:, 2] - bj[:, 0]) * (bj[:, 3] - bj[:, 1])
        inter_h = np.maximum(np.minimum(bi[2], bj[:, 2]) - np.maximum(bi[0], bj[:, 0]), F32(0))
        inter_w = np.maximum(np.minimum(bi[3], bj[:, 3]) - np.maximum(bi[1], bj[:, 1]), F32(0))
        inter = inter_h * inter_w
        iou = inter / (area_i + area_j - inter)
    return np.where((area_i <= 0) | (area_j <= 0), F32(0), iou).astype(F32)


def nms_single_class(boxes: np.ndarray, scores: np.ndarray, plan: PostProcessPlan, limit: int) -> list[int]:
    """Anchor indexes one class's NMS keeps, best first."""
    kept = np.flatnonzero(scores >= plan.score_threshold)
    order = kept[np.argsort(-scores[kept], kind="stable")]  # descending, ties in anchor order
    active = np.ones(order.size, bool)
    selected: list[int] = []
    for i in range(order.size):
        if len(selected) >= min(order.size, limit) or not active.any():
            break
        if not active[i]:
            continue
        selected.append(int(order[i]))
        active[i] = False
        later = np.flatnonzero(active[i + 1:]) + i + 1
        if later.size:
            active[later[_iou(boxes, int(order[i]), order[later]) > plan.iou_threshold]] = False
    return selected


def _top_classes(row: np.ndarray, k: int) -> list[int]:
    """The k best classes of one anchor: k == 1 the first maximum (ArgMaxVector), else in score
    order with ties as std::partial_sort leaves them (libstdc++'s heap select + sort)."""
    if k == 1:
        best = 0
        for i in range(1, row.size):
            if row[i] > row[best]:
                best = i
        return [best]
    return _partial_sort_desc(row, k)


def _partial_sort_desc(values: np.ndarray, k: int) -> list[int]:
    """libstdc++'s std::partial_sort(indices, +k, end, values[i] > values[j]) on iota indices."""
    idx = list(range(values.size))

    def comp(a, b):  # the kernel's comparator: a before b
        return values[a] > values[b]

    def adjust(first_len, hole, value):
        top, child = hole, hole
        while child < (first_len - 1) // 2:
            child = 2 * (child + 1)
            if comp(idx[child], idx[child - 1]):
                child -= 1
            idx[hole] = idx[child]
            hole = child
        if first_len % 2 == 0 and child == (first_len - 2) // 2:
            child = 2 * (child + 1)
            idx[hole] = idx[child - 1]
            hole = child - 1
        parent = (hole - 1) // 2
        while hole > top and comp(idx[parent], value):
            idx[hole] = idx[parent]
            hole = parent
            parent = (hole - 1) // 2
        idx[hole] = value

    if k > 1:  # make_heap on [0, k)
        parent = (k - 2) // 2
        while True:
            adjust(k, parent, idx[parent])
            if parent == 0:
                break
            parent -= 1
    for i in range(k, len(idx)):  # heap select
        if comp(idx[i], idx[0]):
            value = idx[i]
            idx[i] = idx[0]
            adjust(k, 0, value)
    for last in range(k - 1, 0, -1):  # sort_heap
        value = idx[last]
        idx[last] = idx[0]
        adjust(last, 0, value)
    return idx[:k]


def _run_postprocess(ctx: OpContext, inputs: list) -> list:
    plan: PostProcessPlan = ctx.params
    boxes_t, scores_t, anchors_t = (ctx.input_tensor(i) for i in range(3))
    encodings = _dequantized(boxes_t, inputs[0][0])
    anchors = _dequantized(anchors_t, inputs[2])
    scores = _dequantized(scores_t, inputs[1][0])
    boxes = decode_boxes(encodings, anchors, plan.scales)
    if np.any((boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])):
        raise ctx.arithmetic_error("a decoded box has ymin > ymax or xmin > xmax (LiteRT's kernel fails here too)")
    classes = scores[:, plan.label_offset:plan.label_offset + plan.num_classes]
    out_boxes = np.zeros((1, plan.num_detected, 4), F32)
    out_classes = np.zeros((1, plan.num_detected), F32)
    out_scores = np.zeros((1, plan.num_detected), F32)
    if plan.use_regular_nms:
        new_first = ctx.profile.rounding(OP_NAME) == Form.NMS_NEW_FIRST
        picked: list[tuple[float, int, int]] = []  # (score, anchor, class), best first
        per_class = plan.detections_per_class if new_first else min(plan.detections_per_class, plan.max_detections)
        for c in range(plan.num_classes):
            column = np.ascontiguousarray(classes[:, c])
            new = [(column[a], a, c) for a in nms_single_class(boxes, column, plan, per_class)]
            # a stable merge: the kept picks first among equal scores (NMS_NEW_FIRST: this class's)
            merged = new + picked if new_first else picked + new
            picked = sorted(merged, key=lambda p: -p[0])[:plan.max_detections]
        for row, (score, anchor, c) in enumerate(picked):
            out_boxes[0, row], out_classes[0, row], out_scores[0, row] = boxes[anchor], c, score
        count = len(picked)
    else:
        k = min(plan.max_classes_per_detection, plan.num_classes)
        if k == 1:  # the first maximum; NumPy's argmax agrees on rows without NaN
            first = np.argmax(classes, axis=1)
            nan_rows = np.isnan(classes).any(axis=1)
            top = [[int(first[a])] if not nan_rows[a] else _top_classes(classes[a], 1)
                   for a in range(plan.num_boxes)]
        else:
            top = [_top_classes(classes[a], k) for a in range(plan.num_boxes)]
        best = np.array([classes[a, top[a][0]] for a in range(plan.num_boxes)], F32)
        selected = nms_single_class(boxes, best, plan, plan.max_detections)
        for row, anchor in enumerate(selected):
            for col, c in enumerate(top[anchor]):
                at = plan.max_classes_per_detection * row + col
                out_boxes[0, at], out_classes[0, at], out_scores[0, at] = boxes[anchor], c, classes[anchor, c]
        count = len(selected)
    return [out_boxes, out_classes, out_scores, np.array([count], F32)]


def _undefined_rows(op, graph, outputs: list) -> list:
    """Fast NMS writes only the rows of its detections (max_classes_per_detection per anchor, the
    first min(that, num_classes) of them): the rest of LiteRT's buffer is whatever it held."""
    from flatbuffers import flexbuffers

    try:
        m = flexbuffers.Loads(bytes(op.options.get("custom_options", b"")))
        if m.get("use_regular_nms"):
            return [None] * 4
        per_det, k = int(m["max_classes_per_detection"]), min(int(m["max_classes_per_detection"]),
                                                                 int(m["num_classes"]))
    except Exception:  # options refnet could not run with: nothing to mask
        return [None] * 4
    rows = outputs[1].shape[1]
    count = int(outputs[3][0]) if outputs[3].size and np.isfinite(outputs[3][0]) else 0
    written = np.zeros(rows, bool)
    for r in range(min(count, rows // max(per_det, 1))):
        written[per_det * r: per_det * r + k] = True
    undefined = ~written
    return [np.broadcast_to(undefined[None, :, None], outputs[0].shape), undefined[None, :],
            undefined[None, :], None]


register(f"CUSTOM:{OP_NAME}", prepare=_prepare_postprocess, undefined=_undefined_rows)(_run_postprocess)
