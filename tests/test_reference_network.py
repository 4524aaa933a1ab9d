import numpy as np

from yolo.network import nbytes
from yolo.params import random_params
from engine.memory.timeline import layer_by_layer_live_bytes
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from tests.helpers import random_image


def test_layer_by_layer_peak_yolov2_416_from_shapes():
    net = load_network("yolov2.cfg")
    timeline = layer_by_layer_live_bytes(net)
    # while layer 1 (maxpool) runs: layer 0's output and its own; the image was freed after layer 0
    assert timeline[1] == nbytes((32, 416, 416)) + nbytes((32, 208, 208)) == max(timeline) == 27_688_960
    assert timeline[0] == nbytes((3, 416, 416)) + nbytes((32, 416, 416))
    # layer 16's output stays live until the route at 25 reads it
    assert timeline[17] == nbytes((512, 26, 26)) + nbytes((512, 13, 13))
    assert timeline[25] == nbytes((1024, 13, 13)) + 2 * nbytes((512, 26, 26))


def test_measured_timeline_equals_shape_timeline_and_frees_after_last_use():
    net = load_network("yolov2.cfg", 96)
    run = run_reference(net, random_params(net, 0), random_image(net.input_shape), keep=(16, 30))
    assert run.live_bytes == layer_by_layer_live_bytes(net)
    assert run.head is run.kept[30] and run.output.shape == (425, 3, 3)
    assert np.isfinite(run.output).all()


def test_reference_is_deterministic():
    net = load_network("yolov2-tiny.cfg", 64)
    p = random_params(net, 4)
    x = random_image(net.input_shape, 1)
    np.testing.assert_array_equal(run_reference(net, p, x).output, run_reference(net, p, x).output)
