import numpy as np

from yolo.network import Region
from engine.runtime.reference_ops import region as region_forward
from yolo.region import Candidates, correct_boxes, decode, iou, nms, Detection

LAYER = Region(1, (0,), (2 * 7, 2, 3), (2 * 7, 2, 3), anchors=(1.0, 2.0, 3.0, 1.5), classes=2, coords=4, num=2)


def raw_output(cell, anchor, tx, ty, tw, th, obj_logit, class_logits):
    x = np.full((2, 7, 2, 3), -10.0, np.float32)  # everything improbable by default
    x[:, 2:4] = 0
    y, c = cell
    x[anchor, 0:5, y, c] = [tx, ty, tw, th, obj_logit]
    x[anchor, 5:, y, c] = class_logits
    return region_forward(x.reshape(14, 2, 3), 2, 4, 2, True)


def test_decode_box_math_and_thresholds():
    out = raw_output((1, 2), 1, 0.0, 0.0, np.log(2.0), 0.0, 4.0, [3.0, -3.0])
    c = decode(out, LAYER, (416, 416), (416, 416), 0.5)
    k = 1 * 6 + 1 * 3 + 2  # anchor-major, then row-major cell
    sig = 1 / (1 + np.exp(-4.0))
    np.testing.assert_allclose(c.boxes[k], [(2 + 0.5) / 3, (1 + 0.5) / 2, 2 * 3.0 / 3, 1.5 / 2], rtol=1e-6)
    assert abs(c.objectness[k] - sig) < 1e-6
    p0 = sig * np.exp(3) / (np.exp(3) + np.exp(-3))
    assert abs(c.probs[k, 0] - p0) < 1e-6 and c.probs[k, 1] == 0
    assert np.count_nonzero(c.objectness) == 1
    dets = nms(c, 0.45)
    assert len(dets) == 1 and dets[0].class_id == 0


def test_correct_boxes_undoes_letterbox():
    # a 200x100 image in a 100x100 net: content rows 25..75; a box at the content's centre maps to the image centre
    boxes = np.array([[0.5, 0.5, 0.2, 0.25], [0.25, 0.25, 0.1, 0.1]], np.float32)
    out = correct_boxes(boxes, (200, 100), (100, 100))
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.25, 0.0, 0.1, 0.2], atol=1e-6)


def test_nms_per_class_and_suppressed_do_not_suppress():
    boxes = np.array([[0.50, 0.5, 0.2, 0.2], [0.54, 0.5, 0.2, 0.2], [0.59, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]],
                     np.float32)
    probs = np.array([[0.9, 0], [0.8, 0], [0.7, 0], [0, 0.6]], np.float32)
    c = Candidates(boxes, np.ones(4, np.float32), probs)
    assert iou(boxes[0], boxes[1:2])[0] > 0.45 and iou(boxes[1], boxes[2:3])[0] > 0.45
    assert iou(boxes[0], boxes[2:3])[0] < 0.45
    dets = nms(c, 0.45)
    # box 1 is suppressed by box 0, so it cannot suppress box 2; class 1 is independent of class 0
    assert [(d.class_id, round(d.confidence, 2)) for d in dets] == [(0, 0.9), (0, 0.7), (1, 0.6)]


def test_zero_objectness_boxes_never_become_detections():
    c = Candidates(np.array([[0.5, 0.5, 0.1, 0.1]], np.float32), np.zeros(1, np.float32),
                   np.array([[0.9]], np.float32))
    assert nms(c, 0.45) == []


def test_pixel_box_clips_like_darknet_draw():
    d = Detection(0, 0.9, (0.05, 0.5, 0.2, 0.5), 0.9)
    x, y, w, h = d.pixel_box(100, 200)
    assert (x, y) == (0.0, 50.0) and abs(w - 15.0) < 1e-9 and abs(h - 100.0) < 1e-9
