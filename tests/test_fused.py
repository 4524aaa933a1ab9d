"""Fused executor vs the reference, and the arena's invariants, on random stacks and on YOLOv2.

Tolerance: max abs diff <= 2e-5 x max |reference| (float32; the GEMM is blocked differently from the
reference's single im2col matmul, so results are not bitwise equal; measured about 2e-6).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.lower.program import build_program
from engine.lower.table import S_LAYER, S_MACS
from engine.memory.planner import overlapping_pairs
from engine.memory.timeline import program_live_bytes
from engine.runtime.executor import run_fused
from yolo.params import random_params
from engine.ir.plan import REUSE_MODES, Group, Plan, parse_groups
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from yolo.letterbox import Placement, fit
from yolo.region import detect
from tests.helpers import random_image, sharpened_params
from tests.strategies import stacks, weights_of

TOL = 1e-4  # of the output's largest magnitude: BLAS sums in another order than the reference, and random batch
# norms can amplify that (a random stack at 2.3e-5 was found); a wrong region is off by the order of 1


def assert_close(fused, ref):
    scale = float(np.abs(ref).max())
    assert float(np.abs(fused - ref).max()) <= TOL * scale, float(np.abs(fused - ref).max()) / scale


def assert_arena_invariants(run):
    buffers = run.program.buffers
    assert not overlapping_pairs(run.layout.offsets, buffers)
    predicted = program_live_bytes(buffers, len(run.program.steps))
    assert tuple(int(v) for v in predicted) == run.live_bytes  # predicted == measured, step by step
    assert run.layout.size >= run.peak_bytes
    assert sum(e.nbytes for e in run.events) == 0  # everything allocated was freed


@st.composite
def plans(draw):
    net = draw(stacks(max_layers=6, sizes=(6, 30)))
    cuts = sorted(draw(st.sets(st.integers(0, len(net) - 1), max_size=4)))
    groups, first = [], 0
    for last in cuts + [len(net) - 1]:
        if last < first:
            continue
        if draw(st.booleans()):
            _, h, w = net[last].out_shape
            groups.append(Group(first, last, draw(st.integers(1, min(h, 6))), draw(st.integers(1, min(w, 6))),
                                draw(st.sampled_from(REUSE_MODES)), *draw(weights_of(net, first, last))))
        first = last + 1
    return Plan(net, tuple(groups), draw(st.sampled_from(("resident", "streamed"))),
                draw(st.sampled_from((64, 4096, 1 << 22))))


@settings(max_examples=60, deadline=None)
@given(plan=plans(), seed=st.integers(0, 1000), threads=st.integers(1, 3))
def test_random_stacks_fused_equals_reference(plan, seed, threads):
    """On one thread or with helpers sharing the conv and maxpool steps: the same outputs and the same
    arena, step by step."""
    params = random_params(plan.network, seed)
    x = random_image(plan.network.input_shape, seed)
    ref = run_reference(plan.network, params, x)
    run = run_fused(plan, params, x, scratch_bytes=int(np.random.default_rng(seed).integers(256, 1 << 16)),
                    threads=threads)
    assert_close(run.output, ref.output)
    assert_arena_invariants(run)


def test_executed_macs_count_the_overlap():
    net = load_network("yolov2.cfg")
    assert build_program(Plan(net, ())).macs == net.macs
    steps = build_program(Plan(net, parse_groups("0-15:5x5"))).steps
    in_group = steps[(steps[:, S_LAYER] >= 0) & (steps[:, S_LAYER] <= 15), S_MACS].sum()
    assert 2.5 < in_group / sum(net[i].macs for i in range(16)) < 3.2  # overlap recomputed by every tile
    outside = steps[steps[:, S_LAYER] > 15, S_MACS].sum()
    assert outside == sum(l.macs for l in net.layers[16:])


YOLO_PLANS = {
    "yolov2-tiny.cfg": ["", "0-13:1x1", "0-8:3x3", "0-5:4x4,6-8:2x2", "0-3:6x6,4-7:3x2,8-13:2x2", "2-9:2x5"],
    "yolov2.cfg": ["0-7:4x4,8-16:2x2", "0-16:3x3", "0-3:6x6,4-9:3x3,10-16:2x2", "17-24:2x2,26-26:3x1", "0-16:1x4"],
}


@pytest.mark.parametrize("cfg, size", [("yolov2-tiny.cfg", 416), ("yolov2-tiny.cfg", 224), ("yolov2.cfg", 416),
                                       ("yolov2.cfg", 224)])
def test_yolo_fused_plans_equal_reference_with_identical_detections(cfg, size):
    net = load_network(cfg, size)
    params = sharpened_params(net, 6, 24.0 if "tiny" in cfg else 6.0)
    x = random_image(net.input_shape, 3)
    ref = run_reference(net, params, x)
    expected = detect(ref.output, net.region, (size, size), (size, size))
    assert len(expected) >= 3
    for spec in YOLO_PLANS[cfg]:
        run = run_fused(Plan(net, parse_groups(spec)), params, x)
        assert_close(run.head, ref.head)
        assert_close(run.output, ref.output)
        got = detect(run.output, net.region, (size, size), (size, size))
        assert [d.class_id for d in got] == [d.class_id for d in expected], spec
        np.testing.assert_allclose([d.box for d in got], [d.box for d in expected], atol=1e-4)
        assert_arena_invariants(run)


def test_two_groups_cut_yolov2_peak_below_a_quarter():
    net = load_network("yolov2.cfg")
    program = build_program(Plan(net, parse_groups("0-7:4x4,8-16:2x2")))
    peak = int(program_live_bytes(program.buffers, len(program.steps)).max())
    assert peak * 4 <= 27_688_960


@pytest.mark.parametrize("groups", ["", "0-5:8x1:stream"])
def test_a_large_picture_region_made_by_both_threads_gives_the_references_outputs(groups):
    """A network input region of POOL_SPLIT values or more is resized from the picture by the threads
    together, half its rows each (yolov2-tiny's whole 416x416 input layer by layer, and its strips)."""
    network = load_network("yolov2-tiny.cfg", 416)
    picture = random_image((3, 301, 517), 4)
    placement = Placement.of((517, 301), (416, 416), "letterbox")
    params = random_params(network, 4)
    ref = run_reference(network, params, fit(picture, 416, 416, placement))
    run = run_fused(Plan(network, parse_groups(groups, "stream")), params, picture, threads=2, placement=placement)
    assert_close(run.output, ref.output)
