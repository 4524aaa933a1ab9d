"""Run orders: a head's branch may run after the rest of the network; the values do not change, the
predictor follows the order, and on the Nano model at 416 it is what brings the peak under an eighth."""
import json

import numpy as np
import pytest

from engine.cli.main import main
from engine.ir.order import head_branches, orders_of, run_order
from engine.ir.plan import Plan, parse_groups
from engine.lower.program import segments
from engine.memory.predictor import Predictor
from engine.runtime.executor import run_fused
from yolo.cfg import load_network
from yolo.params import random_params
from tests.helpers import random_image
from tests.test_fused import assert_arena_invariants


@pytest.fixture(scope="module")
def nano():
    return load_network("MobileNetV2-YOLOv3-Nano-coco.cfg", 416)


def test_head_branches_are_the_layers_only_a_head_needs(nano):
    assert head_branches(nano) == (range(65, 70),)  # 64 forks to the first head (65-69) and the route at 70
    layers = run_order(nano, "heads-last").layers
    assert layers == tuple(range(65)) + tuple(range(70, 80)) + tuple(range(65, 70))
    tiny = load_network("tests/data/yolov3-tiny.cfg")
    assert head_branches(tiny) == (range(14, 17),)
    assert orders_of(load_network("yolov2.cfg")) == ("darknet",)  # one head, last: nothing can move


def test_last_readers_follow_the_order(nano):
    darknet, late = run_order(nano, "darknet"), run_order(nano, "heads-last")
    assert darknet.last_reader[64] == 70 and late.last_reader[64] == 65  # the fork lives until its branch runs
    assert late.dies_by(47, 72) and not late.dies_by(64, 73)
    assert late.last_reader[69] == darknet.last_reader[69] == len(nano)  # a head's output is a result


def test_heads_last_gives_the_same_values_and_its_own_exact_peak(nano):
    params = random_params(nano, 2)
    x = random_image(nano.input_shape, 2)
    groups = parse_groups("0-12:4x4:stream,13-47:2x1:stream,64-64:2x1,65-68:2x2:checkerboard,70-73:4x4:stream,"
                          "74-78:3x3:none")
    runs, route_group = {}, {}
    for order in ("darknet", "heads-last"):
        plan = Plan(nano, groups, order=order)
        run = runs[order] = run_fused(plan, params, x)
        assert_arena_invariants(run)
        predicted = Predictor(nano).predict(plan)
        assert predicted.peak_bytes == run.peak_bytes
        at = segments(nano, groups, None, order).index(groups[4])
        route_group[order] = predicted.segment_peaks[at]
    for head in nano.heads:
        np.testing.assert_array_equal(runs["darknet"].head_outputs[head.index],
                                      runs["heads-last"].head_outputs[head.index])
    # while 70-73 runs, the first head's output is not yet made
    assert route_group["darknet"] - route_group["heads-last"] == nano[69].out_bytes


def test_nano_416_runs_in_an_eighth_at_exactly_its_macs_with_the_same_detections(capsys, tmp_path):
    """Issue 15's goal: the whole activation peak, input included, at most 1/8 of layer by layer, with
    exactly the network's MACs (stream reuse) and the reference's detections; --budget finds it."""
    def run(*extra):
        status = main(["--size", "416", "--json", "--quiet", "--out", str(tmp_path / "p.png"), *extra])
        assert status == 0
        return json.loads(capsys.readouterr().out)
    reference = run("--reference")
    eighth = reference["memory"]["layer_by_layer_peak_bytes"] // 8
    fused = run("--budget", str(eighth), "--reuse", "stream")
    mem, macs = fused["memory"], fused["macs"]
    assert mem["measured_peak_bytes"] == mem["predicted_peak_bytes"] <= eighth
    assert macs["executed"] == macs["network"] and fused["config"]["order"] == "heads-last"
    assert [d["class"] for d in fused["detections"]] == [d["class"] for d in reference["detections"]]
    np.testing.assert_allclose([d["confidence"] for d in fused["detections"]],
                               [d["confidence"] for d in reference["detections"]], atol=1e-5)
    np.testing.assert_allclose([d["box"] for d in fused["detections"]],
                               [d["box"] for d in reference["detections"]], atol=0.01)
