"""The independent check: OpenCV's Darknet importer vs our reference, same cfg, weights file and input.

Weights are random but sharpened at the objectness/class filters, so tens of boxes survive the threshold
and NMS is exercised. Tolerance: last-layer max abs diff <= 1e-4 * max |reference|.
"""
import cv2
import numpy as np
import pytest

from engine.runtime.reference import run_reference
from engine.runtime.reference_ops import region as region_forward
from yolo.cfg import load_network
from yolo.letterbox import letterbox, load_image
from yolo.region import decode, detect
from yolo.weights import write_darknet
from engine.cli.pipeline import default_image
from tests.helpers import bundled_text, sharpened_params

CASES = [("yolov2-tiny.cfg", 416, 24.0), ("yolov2.cfg", 416, 6.0), ("yolov2.cfg", 320, 6.0),
         ("yolov2-tiny-voc.cfg", 416, 12.0)]


@pytest.fixture(scope="module")
def photo():
    return load_image(default_image())


@pytest.mark.parametrize("cfg, size, gain", CASES, ids=[f"{c}@{s}" for c, s, _ in CASES])
def test_reference_equals_opencv(tmp_path, photo, cfg, size, gain):
    network = load_network(cfg, size)
    params = sharpened_params(network, seed=11, gain=gain)
    (tmp_path / "net.cfg").write_text(bundled_text(cfg, size))
    write_darknet(tmp_path / "net.weights", params)
    x = letterbox(photo, size, size)

    ours = run_reference(network, params, x)

    cv_net = cv2.dnn.readNetFromDarknet(str(tmp_path / "net.cfg"), str(tmp_path / "net.weights"))
    names = cv_net.getLayerNames()
    region_name = next(n for n in names if n.startswith("detection_out"))
    head_name = names[names.index(next(n for n in names if n.startswith("permute_"))) - 1]
    cv_net.setInput(x[None])
    cv_head, cv_region = cv_net.forward([head_name, region_name])

    rel = float(np.abs(ours.head - cv_head[0]).max() / np.abs(ours.head).max())
    print(f"\n{cfg}@{size}: last conv max|ours-opencv|/max|ours| = {rel:.2e}")
    assert rel <= 1e-4

    # OpenCV's own region decode (boxes relative to the network input, objectness) vs ours
    region = network.region
    cand = decode(ours.output, region, (size, size), (size, size), 0.0)
    cells = region.in_shape[1] * region.in_shape[2]
    ours_rows = cand.boxes.reshape(region.num, cells, 4).transpose(1, 0, 2).reshape(-1, 4)
    np.testing.assert_allclose(cv_region[:, :4], ours_rows, atol=1e-4)
    ours_obj = cand.objectness.reshape(region.num, cells).T.reshape(-1)
    np.testing.assert_allclose(cv_region[:, 4], ours_obj, atol=1e-4)

    # identical detections after decode + NMS, from either engine's tensor
    image_wh = (photo.shape[2], photo.shape[1])
    theirs_act = region_forward(cv_head[0], region.num, region.coords, region.classes, region.softmax)
    a = detect(ours.output, region, image_wh, (size, size))
    b = detect(theirs_act, region, image_wh, (size, size))
    assert len(a) >= 5, "weights not sharp enough to exercise NMS"
    assert [d.class_id for d in a] == [d.class_id for d in b]
    # the head agrees within 1e-4 of its largest value; a confidence is a product of two sigmoids and a softmax
    # of such logits, so it may move by a few times that relative to itself
    np.testing.assert_allclose([d.confidence for d in a], [d.confidence for d in b], rtol=5e-4, atol=1e-4)
    np.testing.assert_allclose([d.box for d in a], [d.box for d in b], atol=1e-4)
