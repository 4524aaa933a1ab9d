"""YOLOv2 [region] decoding, letterbox correction and Darknet's per-class NMS (do_nms_sort and AlexeyAB's
DIoU variants)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolo.network import Region
from yolo.letterbox import fitted_size


@dataclass(frozen=True)
class Detection:
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]  # centre x, centre y, w, h relative to the original image
    objectness: float

    def pixel_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Top-left x, y, width, height in pixels, clipped to the image as Darknet draws it."""
        x, y, w, h = self.box
        left, right = max((x - w / 2) * width, 0.0), min((x + w / 2) * width, float(width - 1))
        top, bottom = max((y - h / 2) * height, 0.0), min((y + h / 2) * height, float(height - 1))
        return left, top, max(right - left, 0.0), max(bottom - top, 0.0)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Every (anchor, cell) box with its per-class probabilities, before NMS."""
    boxes: np.ndarray        # (K, 4) float32 centre x, y, w, h, relative to the original image
    objectness: np.ndarray   # (K,) float32, 0 where below threshold
    probs: np.ndarray        # (K, classes) float32, 0 where below threshold


def decode(activated: np.ndarray, layer: Region, image_wh: tuple[int, int], net_wh: tuple[int, int],
           thresh: float) -> Candidates:
    """``activated`` is the region layer's output (logistic/softmax applied), (num*(coords+1+C), H, W).

    ``image_wh`` is the original image's size, ``net_wh`` the network input's (to undo the letterbox).
    """
    f32 = np.float32
    num, coords, classes = layer.num, layer.coords, layer.classes
    _, h, w = activated.shape
    p = activated.reshape(num, coords + 1 + classes, h * w)
    rows, cols = np.divmod(np.arange(h * w), w)
    anchors = np.asarray(layer.anchors, np.float32).reshape(num, 2)
    bx = (cols[None, :].astype(np.float32) + p[:, 0]) / f32(w)
    by = (rows[None, :].astype(np.float32) + p[:, 1]) / f32(h)
    bw = np.exp(p[:, 2]) * anchors[:, 0:1] / f32(w)
    bh = np.exp(p[:, 3]) * anchors[:, 1:2] / f32(h)
    boxes = np.stack([bx, by, bw, bh], axis=-1).reshape(-1, 4).astype(np.float32)
    scale = p[:, coords].reshape(-1)
    thresh = f32(thresh)
    objectness = np.where(scale > thresh, scale, f32(0)).astype(np.float32)
    probs = objectness[:, None] * p[:, coords + 1:].transpose(0, 2, 1).reshape(-1, classes)
    probs = np.where(probs > thresh, probs, f32(0)).astype(np.float32)
    return Candidates(correct_boxes(boxes, image_wh, net_wh), objectness, probs)


def correct_boxes(boxes: np.ndarray, image_wh: tuple[int, int], net_wh: tuple[int, int],
                  letterboxed: bool = True) -> np.ndarray:
    """Undo the letterbox: map boxes relative to the network input back to the original image (a resized,
    stretched picture needs nothing undone)."""
    iw, ih = image_wh
    nw, nh = net_wh
    new_w, new_h = fitted_size(iw, ih, nw, nh) if letterboxed else (nw, nh)
    out = boxes.astype(np.float64)
    out[:, 0] = (out[:, 0] - (nw - new_w) / 2.0 / nw) / (np.float32(new_w) / np.float32(nw))
    out[:, 1] = (out[:, 1] - (nh - new_h) / 2.0 / nh) / (np.float32(new_h) / np.float32(nh))
    out[:, 2] *= np.float32(nw) / np.float32(new_w)
    out[:, 3] *= np.float32(nh) / np.float32(new_h)
    return out.astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one centre-format box ``a`` (4,) against many ``b`` (K, 4), in float32 as Darknet."""
    def overlap(c1, w1, c2, w2):
        left = np.maximum(c1 - w1 / 2, c2 - w2 / 2)
        right = np.minimum(c1 + w1 / 2, c2 + w2 / 2)
        return right - left
    ow = overlap(a[0], a[2], b[:, 0], b[:, 2])
    oh = overlap(a[1], a[3], b[:, 1], b[:, 3])
    inter = np.where((ow < 0) | (oh < 0), np.float32(0), ow * oh)
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((inter == 0) | (union == 0), np.float32(0), inter / union)


def diou_penalty(a: np.ndarray, b: np.ndarray, exponent: float) -> np.ndarray:
    """AlexeyAB's DIoU term: (centre distance^2 / enclosing box diagonal^2) ** exponent (pow in double)."""
    left = np.minimum(a[0] - a[2] / 2, b[:, 0] - b[:, 2] / 2)
    right = np.maximum(a[0] + a[2] / 2, b[:, 0] + b[:, 2] / 2)
    top = np.minimum(a[1] - a[3] / 2, b[:, 1] - b[:, 3] / 2)
    bottom = np.maximum(a[1] + a[3] / 2, b[:, 1] + b[:, 3] / 2)
    diagonal = (right - left) ** 2 + (bottom - top) ** 2
    distance = (a[0] - b[:, 0]) ** 2 + (a[1] - b[:, 1]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.power((distance / diagonal).astype(np.float64), exponent).astype(np.float32)
    return np.where(diagonal == 0, np.float32(0), term)


def overlap_measure(kind: str, beta: float):
    """The overlap NMS compares with its threshold: IoU (``default``), IoU minus the DIoU term with exponent
    0.6 (AlexeyAB's ``greedynms``) or ``beta_nms`` (``diounms``)."""
    if kind == "default":
        return iou
    exponent = 0.6 if kind == "greedynms" else beta
    return lambda a, b: iou(a, b) - diou_penalty(a, b, exponent)


def nms(c: Candidates, nms_thresh: float, kind: str = "default", beta: float = 0.6) -> list[Detection]:
    """Per class: highest probability first, drop later boxes whose overlap with a kept one exceeds the
    threshold (``overlap_measure``).

    Suppressed boxes suppress nothing, as in Darknet's do_nms_sort. Output is sorted by class, then
    confidence (descending).
    """
    overlap = overlap_measure(kind, beta)
    probs = c.probs.copy()
    alive = np.flatnonzero(c.objectness > 0)
    detections = []
    for k in range(probs.shape[1]):
        order = alive[np.argsort(-probs[alive, k], kind="stable")]
        order = order[probs[order, k] > 0]
        for pos, i in enumerate(order):
            if probs[i, k] == 0:
                continue
            rest = order[pos + 1:]
            if rest.size:
                probs[rest[overlap(c.boxes[i], c.boxes[rest]) > np.float32(nms_thresh)], k] = 0
            detections.append(Detection(k, float(probs[i, k]), tuple(float(v) for v in c.boxes[i]),
                                        float(c.objectness[i])))
    return detections


def detect(activated: np.ndarray, layer: Region, image_wh: tuple[int, int], net_wh: tuple[int, int],
           thresh: float = 0.5, nms_thresh: float = 0.45) -> list[Detection]:
    return nms(decode(activated, layer, image_wh, net_wh, thresh), nms_thresh)
