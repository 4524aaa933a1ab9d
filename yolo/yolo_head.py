"""YOLOv3/v4 [yolo] decoding as AlexeyAB's Darknet does it (get_yolo_detections, correct_yolo_boxes), and
detection over every head of a network, [region] or [yolo]."""
from __future__ import annotations

import numpy as np

from yolo.network import Network, Region, Yolo
from yolo.region import Candidates, Detection, correct_boxes, decode, nms


def decode_yolo(activated: np.ndarray, layer: Yolo, image_wh: tuple[int, int], net_wh: tuple[int, int],
                thresh: float, letterboxed: bool) -> Candidates:
    """``activated`` is the [yolo] layer's output, (len(mask)*(5+classes), H, W). Candidates come cell by cell,
    each cell's anchors in mask order (Darknet's order), only those whose objectness exceeds ``thresh``."""
    f32 = np.float32
    _, h, w = activated.shape
    num, classes = layer.num, layer.classes
    p = activated.reshape(num, 5 + classes, h * w).transpose(2, 0, 1)  # (cell, anchor, entries)
    rows, cols = np.divmod(np.arange(h * w), w)
    anchors = np.asarray(layer.anchors, np.float64).reshape(-1, 2)[list(layer.mask)]
    net_w, net_h = net_wh
    bx = (cols[:, None].astype(np.float32) + p[:, :, 0]) / f32(w)
    by = (rows[:, None].astype(np.float32) + p[:, :, 1]) / f32(h)
    bw = np.exp(p[:, :, 2].astype(np.float64)) * anchors[None, :, 0] / net_w  # exp and the rest in double, as C's exp
    bh = np.exp(p[:, :, 3].astype(np.float64)) * anchors[None, :, 1] / net_h
    boxes = np.stack([bx, by, bw.astype(np.float32), bh.astype(np.float32)], axis=-1).reshape(-1, 4)
    objectness = p[:, :, 4].reshape(-1)
    keep = objectness > f32(thresh)
    probs = objectness[:, None] * p[:, :, 5:].reshape(-1, classes)
    probs = np.where(probs > f32(thresh), probs, f32(0)).astype(np.float32)
    return Candidates(correct_boxes(boxes[keep], image_wh, net_wh, letterboxed), objectness[keep].astype(np.float32),
                      probs[keep])


def detect_all(network: Network, head_outputs: dict[int, np.ndarray], image_wh: tuple[int, int],
               thresh: float, nms_thresh: float, letterboxed: bool) -> list[Detection]:
    """Detections of every head: a [region] network as pjreddie's Darknet, [yolo] heads as AlexeyAB's (boxes of
    all heads in layer order, then the NMS kind of the last head)."""
    _, net_h, net_w = network.input_shape
    heads = network.heads
    if isinstance(heads[-1], Region):
        return nms(decode(head_outputs[heads[-1].index], heads[-1], image_wh, (net_w, net_h), thresh), nms_thresh)
    found = [decode_yolo(head_outputs[h.index], h, image_wh, (net_w, net_h), thresh, letterboxed) for h in heads]
    merged = Candidates(np.concatenate([c.boxes for c in found]), np.concatenate([c.objectness for c in found]),
                        np.concatenate([c.probs for c in found]))
    return nms(merged, nms_thresh, heads[-1].nms_kind, heads[-1].beta_nms)
