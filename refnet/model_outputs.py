"""What a model's output means, for the commands that print it: a classifier's scores, a pose model's
keypoints, a segmentation model's class map. Recognised from the output's shape and dtype alone
(MoveNet writes [1, 1, K, 3] float32 = (y, x, score); DeepLab an integer [1, H, W] class per pixel)."""
from __future__ import annotations

import numpy as np

# COCO's 17 keypoints in MoveNet's order
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")


def is_keypoints(values: np.ndarray) -> bool:
    return values.dtype == np.float32 and values.ndim == 4 and values.shape[:2] == (1, 1) and values.shape[3] == 3


def is_class_map(values: np.ndarray) -> bool:
    return (np.issubdtype(values.dtype, np.integer) and values.ndim in (3, 4) and values.shape[0] == 1
            and (values.ndim == 3 or values.shape[3] == 1) and values.shape[1] > 1 and values.shape[2] > 1)


def keypoint_name(k: int, count: int) -> str:
    return COCO_KEYPOINTS[k] if count == len(COCO_KEYPOINTS) else f"keypoint {k}"


def keypoint_rows(values: np.ndarray) -> list[list]:
    """Per keypoint: #, name, y, x, score (y and x as fractions of the image, as MoveNet gives them)."""
    points = values[0, 0]
    return [[k, keypoint_name(k, len(points)), f"{y:.4f}", f"{x:.4f}", f"{s:.4f}"]
            for k, (y, x, s) in enumerate(points)]


def class_map_rows(values: np.ndarray, labels) -> list[list]:
    """Per class present, most pixels first: class, label, pixels, share of the image."""
    classes, counts = np.unique(values.reshape(-1), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    total = values.size
    return [[int(classes[i]), labels[int(classes[i])] if labels and 0 <= classes[i] < len(labels) else "",
             int(counts[i]), f"{100 * counts[i] / total:.1f} %"] for i in order]


def headline(values: np.ndarray, labels) -> tuple[str, str] | None:
    """(what, how much) in one line for a pose or segmentation output: the most confident keypoint
    and its score, or the class covering the most pixels and its share; None for other outputs."""
    if is_keypoints(values):
        points = values[0, 0]
        k = int(np.argmax(points[:, 2]))
        return keypoint_name(k, len(points)), f"{points[k, 2]:.4f}"
    if is_class_map(values):
        top = class_map_rows(values, labels)[0]
        return (f"class {top[0]}" + (f" {top[1]}" if top[1] else "")), top[3]
    return None
