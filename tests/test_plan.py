from dataclasses import replace

import pytest

from engine.cli.planning import default_plan
from engine.ir.plan import Group, Plan, PlanError, default_groups, parse_grid, parse_groups
from engine.lower.program import build_program
from engine.lower.table import CONV_STEP, S_KIND, S_LAYER, S_METHOD, WINOGRAD_RUN, winograd_layer
from engine.memory.predictor import Predictor
from engine.tune.search import WORKSPACES
from yolo.cfg import load_network


@pytest.fixture(scope="module")
def yolov2():
    return load_network("yolov2.cfg")


def test_parse_groups_and_defaults(yolov2):
    assert parse_groups("0-7:4x4, 8-16:2x3") == (Group(0, 7, 4, 4), Group(8, 16, 2, 3))
    assert parse_groups("") == ()
    assert default_groups(yolov2) == (Group(0, 7, 8, 1), Group(8, 16, 4, 1))
    assert default_groups(yolov2, (3, 3)) == (Group(0, 16, 3, 3),)
    tiny = load_network("yolov2-tiny.cfg")
    assert default_groups(tiny) == (Group(0, 5, 8, 1), Group(6, 8, 4, 1))
    assert Plan(yolov2, parse_groups("0-16:5x5")).spec == "0-16:5x5:none"
    # a group's own conv workspace budget, in KiB
    assert parse_groups("8-11:13x1:stream@1024,28-30:1x1:none:tile/2@256") == (
        Group(8, 11, 13, 1, "stream", scratch_bytes=1 << 20), Group(28, 30, 1, 1, "none", "tile", 2, 1 << 18))
    assert Plan(yolov2, parse_groups("8-11:13x1:stream@1024")).spec == "8-11:13x1:stream@1024"


def test_reuse_modes_per_group_and_by_default(yolov2):
    groups = parse_groups("0-7:4x4:stream,8-16:2x2", reuse="checkerboard")
    assert [g.reuse for g in groups] == ["stream", "checkerboard"]
    assert Plan(yolov2, groups).spec == "0-7:4x4:stream,8-16:2x2:checkerboard"
    assert {g.reuse for g in default_groups(yolov2, reuse="stream")} == {"stream"}
    assert default_groups(yolov2, reuse="columns") == (Group(0, 7, 8, 2, "columns"), Group(8, 16, 4, 2, "columns"))
    assert {g.cols for g in default_plan(yolov2, reuse="columns").groups} == {2}  # kept by lean: for the threads
    with pytest.raises(PlanError, match=r"--groups '0-7:4x4:cache': reuse mode 'cache': expected one of none, "
                                        r"checkerboard, stream"):
        parse_groups("0-7:4x4:cache")
    with pytest.raises(PlanError, match="reuse mode 'all'"):
        Plan(yolov2, (Group(0, 7, 2, 2, "all"),))


@pytest.mark.parametrize("spec, message", [
    ("0-17:2x2", "layer 16's output is read by layer 25 outside the group (valid spans: 0-16, 17-24"),
    ("20-27:2x2", "layer 27 is a reorg that a group cannot run (valid spans: 0-16, 17-24, 25-26, 28-30)"),
    ("8-16:27x2", "grid 27x2 exceeds the group's 26x26 output map; at most 26x26"),
    ("0-7:2x2,5-9:2x2", "group 5-9:2x2:none overlaps or precedes the group ending at layer 7"),
    ("0-40:1x1", "layers 0-40 out of range: yolov2 has layers 0-31"),
    ("9-8:1x1", "layers 9-8 are reversed"),
])
def test_bad_plans_say_what_is_wrong_and_what_is_valid(yolov2, spec, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Plan(yolov2, parse_groups(spec))


@pytest.mark.parametrize("text", ["0-7", "0-7:4", "a-b:1x1", "0-7:0x2", "0-7:2x2@", "0-7:2x2@1.5"])
def test_bad_group_syntax(text):
    with pytest.raises(PlanError, match="expected FIRST-LAST:ROWSxCOLS\\[:REUSE|at least 1x1"):
        Plan(load_network("yolov2-tiny.cfg"), parse_groups(text))


def test_bad_workspace_says_what_is_expected():
    with pytest.raises(PlanError, match=r"--groups '0-7:2x2@0': workspace @0: expected at least 1 KiB"):
        parse_groups("0-7:2x2@0")
    with pytest.raises(PlanError, match="workspace of 1000 bytes: expected whole KiB"):
        Plan(load_network("yolov2-tiny.cfg"), (Group(0, 7, 2, 2, scratch_bytes=1000),))


def test_bad_grid_syntax():
    with pytest.raises(PlanError, match="expected ROWSxCOLS"):
        parse_grid("3")
    assert parse_grid("2x5") == (2, 5)


@pytest.mark.parametrize("cfg, kept", [("yolov2.cfg", "0-7:5x1:stream,8-11:2x1:stream"),
                                       ("yolov2-tiny.cfg", "0-5:6x1:stream,6-7:2x1:stream"),
                                       ("MobileNetV2-YOLOv3-Nano-coco.cfg",
                                        "0-5:4x1:stream,6-8:4x1:stream,10-11:2x1:stream"),
                                       ("yoloface-500k.cfg", "")])  # no fusion lowers its peak
def test_default_plan_keeps_only_the_fusion_that_lowers_the_peak(cfg, kept):
    network = load_network(cfg)
    predictor = Predictor(network)
    shaped = Plan(network, default_groups(network, reuse="stream"))
    plan = predictor.lean(shaped)
    assert plan.spec == kept
    assert set(plan.groups) <= set(default_plan(network).groups)
    peak = predictor.predict_peak(plan)
    assert peak <= predictor.predict_peak(shaped)  # trimming may lower it (a pool's band for a wider strip)
    for i, group in enumerate(plan.groups):  # every group kept, every layer and strip of it, pays in memory
        others = plan.groups[:i] + plan.groups[i + 1:]
        assert predictor.predict_peak(Plan(network, others)) > peak
        for field in ("last", "rows"):
            smaller = replace(group, **{field: getattr(group, field) - 1})
            if smaller.last > smaller.first and smaller.rows * smaller.cols > 1:
                assert predictor.predict_peak(Plan(network, others[:i] + (smaller,) + others[i:])) > peak


def test_default_plan_gives_a_layer_the_workspace_it_needs_for_winograd_where_the_peak_has_room():
    """yolov2-tiny's 26-wide layer 8 has bands of 7 tiles at 1 MiB, too few for Winograd: the default plan
    runs it alone at 2 MiB, where they hold 14, at the same peak (set by the early layers). Where the peak
    has no room (a plan tiled for 1/8 of it, at 512 KiB), or the weights are streamed, nothing changes."""
    network = load_network("yolov2-tiny.cfg")
    predictor = Predictor(network)
    lean = predictor.lean(Plan(network, default_groups(network, reuse="stream")))
    plan = default_plan(network)
    assert plan.groups == (*lean.groups, Group(8, 8, scratch_bytes=2 << 20))
    assert not winograd_layer(network[8], 1 << 20) and winograd_layer(network[8], 2 << 20)
    assert predictor.predict_peak(plan) == predictor.predict_peak(lean)
    steps = build_program(plan, 1 << 20).steps
    assert set(steps[(steps[:, S_KIND] == CONV_STEP) & (steps[:, S_LAYER] == 8), S_METHOD]) == {WINOGRAD_RUN}
    tight = Predictor(network, 1 << 19)
    tiled = Plan(network, parse_groups("0-7:14x1:stream"))
    assert tight.widen(tiled, WORKSPACES) == tiled
    assert predictor.widen(replace(lean, weights="streamed"), WORKSPACES) == replace(lean, weights="streamed")
