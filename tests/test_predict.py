"""The predictor agrees with the executor's program and arena to the byte on hundreds of random
configurations; on a mismatch the message names the first differing segment, its step and buffers."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.lower.program import build_program
from engine.lower.group import DEFAULT_SCRATCH_BYTES
from engine.lower.table import (B_FIRST, B_LAST, S_KIND, S_LAYER, S_SEGMENT, S_METHOD, STEP_KINDS, WINOGRAD_HELD,
                                WINOGRAD_RUN)
from engine.runtime.reference import run_reference
from engine.memory.planner import plan_layout
from engine.memory.timeline import program_live_bytes
from engine.runtime.executor import run_fused
from yolo.params import random_params
from engine.ir.plan import REUSE_MODES, Group, Plan, PlanError
from engine.memory.predictor import Predictor, weights_bytes
from yolo.cfg import load_network
from tests.helpers import random_image
from tests.strategies import stacks, weights_of

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
    """Random cut points, 1-4 groups, grids up to 8x8 (non-square), every reuse mode, weights resident, kept
    per group or loaded per tile in bands, the plan's workspace budget or the group's own; layers outside
    groups resident or streamed; retried until valid."""
    while True:
        n_groups = draw(st.integers(1, 4))
        cuts = sorted(draw(st.lists(st.integers(0, len(network) - 1), min_size=2 * n_groups, max_size=2 * n_groups)))
        groups = []
        for first, last in zip(cuts[::2], cuts[1::2]):
            _, h, w = network[last].out_shape
            groups.append(Group(first, last, draw(st.integers(1, min(8, h))), draw(st.integers(1, min(8, w))),
                                draw(st.sampled_from(REUSE_MODES)), *draw(weights_of(network, first, last)),
                                draw(st.sampled_from((0, 1 << 12, 1 << 16, 1 << 20)))))
        try:
            return Plan(network, tuple(groups), draw(st.sampled_from(("resident", "streamed"))),
                        draw(st.sampled_from((1 << 16, 1 << 20, 1 << 24))))
        except PlanError:
            continue


def assert_prediction_exact(plan, scratch):
    pred = predictor(plan.network, scratch)
    got = pred.predict(plan)
    program = build_program(plan, scratch, pred.lowering)
    timeline = program_live_bytes(program.buffers, len(program.steps))
    if got.peak_bytes != int(timeline.max()):
        # per segment: the step where the program's peak within the segment lies
        seg = program.steps[:, S_SEGMENT]
        bounds = np.flatnonzero(np.diff(np.concatenate([[-2], np.where(seg >= 0, seg, -1 - np.arange(len(seg)))])))
        for k, start in enumerate(bounds):
            stop = bounds[k + 1] if k + 1 < len(bounds) else len(timeline)
            peak = int(timeline[start:stop].max())
            if peak != got.segment_peaks[k]:
                at = start + int(timeline[start:stop].argmax())
                b = program.buffers
                live = [program.name(i) for i in np.flatnonzero((b[:, B_FIRST] <= at) & (at <= b[:, B_LAST]))]
                row = program.steps[at]
                pytest.fail(f"{plan}: segment {k} predicted {got.segment_peaks[k]} B, program {peak} B at step {at} "
                            f"({STEP_KINDS[row[S_KIND]]} L{row[S_LAYER]}); live: {live}")
        pytest.fail(f"{plan}: peak {got.peak_bytes} != {int(timeline.max())}")
    assert got.arena_bytes == plan_layout(program.buffers).size, plan
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
    assert got.resident_weights_bytes == run.resident_weights_bytes


@pytest.mark.parametrize("groups", [(), (Group(0, 5, 2, 2, "stream"),)])
def test_winograd_layers_resident_weights_are_predicted(groups):
    """yolov2-tiny's 208- to 52-wide 3x3 layers run Winograd and hold their filters transformed as well (36
    floats for 9): the predictor says what the executor holds, and the output is the reference's."""
    network = NETWORKS["yolov2-tiny.cfg"]
    plan, params = Plan(network, groups), random_params(network, 0)
    image = random_image(network.input_shape)
    run = run_fused(plan, params, image)
    steps = run.program.steps
    winograd = set(steps[np.isin(steps[:, S_METHOD], (WINOGRAD_RUN, WINOGRAD_HELD)), S_LAYER].tolist())
    assert winograd == {2, 4, 6} and (steps[:, S_METHOD] == WINOGRAD_RUN).any()
    assert predictor(network, DEFAULT_SCRATCH_BYTES).predict(plan).resident_weights_bytes == run.resident_weights_bytes
    assert run.resident_weights_bytes > weights_bytes(network)
    np.testing.assert_allclose(run.output, run_reference(network, params, image).output, rtol=1e-3, atol=1e-3)


def test_weights_bytes_counts_every_float():
    network = NETWORKS["yolov2-tiny.cfg"]
    assert weights_bytes(network) == random_params(network, 0).nbytes
