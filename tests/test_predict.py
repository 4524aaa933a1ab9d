"""The predictor agrees with the executor's schedule and arena to the byte on hundreds of random
configurations; on a mismatch the message names the first differing segment, its step and buffers."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.arena import live_bytes_timeline, plan_layout
from engine.fused import run_fused
from engine.params import random_params
from engine.plan import Group, Plan, PlanError
from engine.predict import Predictor, weights_bytes
from engine.reuse import REUSE_MODES
from engine.schedule import build_schedule
from yolo.cfg import load_network
from tests.helpers import random_image
from tests.strategies import stacks

NETWORKS = {name: load_network(name, size) for name, size in
            [("yolov2.cfg", 416), ("yolov2-tiny.cfg", 416), ("yolov2-voc.cfg", 416), ("yolov2.cfg", 224)]}
PREDICTORS = {}


def predictor(network, scratch):
    key = (id(network), scratch)
    if key not in PREDICTORS:
        PREDICTORS[key] = Predictor(network, scratch)
    return PREDICTORS[key]


@st.composite
def configurations(draw, network):
    """Random cut points, 1-4 groups, grids up to 8x8 (non-square), every reuse mode; retried until valid."""
    while True:
        n_groups = draw(st.integers(1, 4))
        cuts = sorted(draw(st.lists(st.integers(0, len(network) - 1), min_size=2 * n_groups, max_size=2 * n_groups)))
        groups = []
        for first, last in zip(cuts[::2], cuts[1::2]):
            _, h, w = network[last].out_shape
            groups.append(Group(first, last, draw(st.integers(1, min(8, h))), draw(st.integers(1, min(8, w))),
                                draw(st.sampled_from(REUSE_MODES))))
        try:
            return Plan(network, tuple(groups))
        except PlanError:
            continue


def assert_prediction_exact(plan, scratch):
    pred = predictor(plan.network, scratch)
    got = pred.predict(plan)
    schedule = build_schedule(plan, scratch, cache=pred.schedules)
    timeline = live_bytes_timeline(schedule.buffers, len(schedule.steps))
    if got.peak_bytes != int(timeline.max()):
        # per segment: the step where the schedule's peak within the segment lies
        bounds = np.flatnonzero(np.diff([-2] + [s.group if s.group is not None else -1 - s.index
                                                for s in schedule.steps]))
        for k, start in enumerate(bounds):
            stop = bounds[k + 1] if k + 1 < len(bounds) else len(timeline)
            peak = int(timeline[start:stop].max())
            if peak != got.segment_peaks[k]:
                at = start + int(timeline[start:stop].argmax())
                live = [b.name for b in schedule.buffers if b.first_step <= at <= b.last_step]
                pytest.fail(f"{plan}: segment {k} predicted {got.segment_peaks[k]} B, schedule {peak} B at step {at} "
                            f"({schedule.steps[at].kind} L{schedule.steps[at].layer}); live: {live}")
        pytest.fail(f"{plan}: peak {got.peak_bytes} != {int(timeline.max())}")
    assert got.arena_bytes == plan_layout(schedule.buffers).size, plan
    return got


@pytest.mark.parametrize("name", list(NETWORKS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_yolo_predictions_are_exact(name, data):
    network = NETWORKS[name]
    plan = data.draw(configurations(network))
    assert_prediction_exact(plan, data.draw(st.sampled_from([1 << 16, 1 << 20])))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_stack_predictions_are_exact_and_match_the_executor(data):
    network = data.draw(stacks(max_layers=6, sizes=(6, 30)))
    plan = data.draw(configurations(network))
    got = assert_prediction_exact(plan, 1 << 12)
    run = run_fused(plan, random_params(network, 0), random_image(network.input_shape), scratch_bytes=1 << 12)
    assert (got.peak_bytes, got.arena_bytes) == (run.peak_bytes, run.arena_bytes)


def test_weights_bytes_counts_every_float():
    network = NETWORKS["yolov2-tiny.cfg"]
    assert weights_bytes(network) == random_params(network, 0).nbytes
