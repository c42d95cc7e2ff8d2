"""Bounding-box assertions. Boxes are rows ``[x1, y1, x2, y2]`` with x1 <= x2 and y1 <= y2."""
from typing import List, Sequence

import numpy as np

from ....utils.validation import check_in_range, check_positive_int


def _as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=float)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (k, 4) as [x1, y1, x2, y2] rows, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
        raise ValueError(f"{name} has a box with x2 < x1 or y2 < y1")
    return arr


def box_iou(a, b) -> np.ndarray:
    """Pairwise intersection over union of two box sets: shape (len(a), len(b))."""
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def assert_multibox(boxes, iou_threshold: float = 0.3, min_boxes: int = 3) -> int:
    """Severity of the *multibox* assertion on one frame's detections.

    Fires when ``min_boxes`` or more boxes overlap one another (each pair of the group with IoU above
    ``iou_threshold``): a detector reporting several boxes for one object. Returns the size of the
    largest such group, or 0 when there is none.
    """
    check_in_range("iou_threshold", iou_threshold, 0.0, 1.0, high_open=True)
    check_positive_int("min_boxes", min_boxes)
    arr = _as_boxes(boxes)
    k = len(arr)
    if k < min_boxes:
        return 0
    adj = box_iou(arr, arr) > iou_threshold
    np.fill_diagonal(adj, True)
    best = 0
    by_degree = np.argsort(-adj.sum(axis=1), kind="stable")
    # greedy clique growth from each box is exact enough for the handful of boxes per frame
    for start in range(k):
        clique = [start]
        for j in by_degree:
            if j != start and all(adj[j, m] for m in clique):
                clique.append(int(j))
        best = max(best, len(clique))
    return best if best >= min_boxes else 0


def except_flicker(frames: Sequence, iou_threshold: float = 0.5, max_gap: int = 1) -> List[int]:
    """Frames where an object *flickers*: it is detected before and after, but not in between.

    ``frames`` is a sequence of per-frame box arrays. An object seen in frame ``s`` and again (a box
    with IoU above ``iou_threshold``) in frame ``e`` with ``1 <= e - s - 1 <= max_gap`` missing frames
    in between, where it is absent, flags those missing frames. Returns their indices, sorted.
    """
    check_in_range("iou_threshold", iou_threshold, 0.0, 1.0, high_open=True)
    check_positive_int("max_gap", max_gap)
    boxes = [_as_boxes(f, f"frames[{i}]") for i, f in enumerate(frames)]
    flagged = set()
    for s in range(len(boxes)):
        for gap in range(1, max_gap + 1):
            e = s + gap + 1
            if e >= len(boxes) or len(boxes[s]) == 0 or len(boxes[e]) == 0:
                continue
            for box in boxes[s]:
                if box_iou(box[None], boxes[e]).max() <= iou_threshold:
                    continue  # not the same object at both ends
                missing = [
                    t for t in range(s + 1, e)
                    if len(boxes[t]) == 0 or box_iou(box[None], boxes[t]).max() <= iou_threshold
                ]
                if len(missing) == gap:
                    flagged.update(missing)
    return sorted(flagged)
