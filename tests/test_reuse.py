"""Reuse modes: what each tile holds is exactly covered by what it computes and copies in; stream computes
every element once; the executed MACs are what the modes promise; outputs equal `none` and the reference."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.fused import FusedExecutor, run_fused
from engine.params import random_params
from engine.plan import Group, Plan, parse_groups
from engine.reference import run_reference
from engine.reuse import REUSE_MODES, group_work
from engine.tiling import input_span
from yolo.cfg import load_network
from tests.helpers import random_image
from tests.strategies import stacks
from tests.test_fused import assert_arena_invariants, assert_close


def coverage(shape, boxes):
    count = np.zeros(shape[1:], dtype=np.int32)
    for y0, y1, x0, x1 in boxes:
        count[y0:y1, x0:x1] += 1
    return count


@st.composite
def chains_and_grids(draw):
    net = draw(stacks(max_layers=6, sizes=(4, 30)))
    _, h, w = net[len(net) - 1].out_shape
    return net, draw(st.integers(1, min(h, 7))), draw(st.integers(1, min(w, 7)))


@settings(max_examples=150, deadline=None)
@given(case=chains_and_grids(), mode=st.sampled_from(REUSE_MODES))
def test_every_held_region_is_covered_once_and_reads_only_what_is_held(case, mode):
    net, rows, cols = case
    layers = net.layers
    saved = {}
    for work in group_work(layers, rows, cols, mode):
        held_before = None
        for j, (layer, lw) in enumerate(zip(layers, work.layers)):
            for fill in lw.fills:
                assert saved.pop(fill.strip) == fill.region  # a strip is saved before it is used, and used once
            if lw.held is not None:
                y0, _, x0, _ = lw.held
                parts = [(a - y0, b - y0, c - x0, d - x0) for a, b, c, d in
                         [f.region for f in lw.fills] + list(lw.computes)]
                shape = (0, lw.held[1] - y0, lw.held[3] - x0)
                assert all(0 <= a < b <= shape[1] and 0 <= c < d <= shape[2] for a, b, c, d in parts)
                assert (coverage(shape, parts) == 1).all()
            for y0, y1, x0, x1 in lw.computes:  # a computed part reads only what the tile holds
                iy0, iy1, _ = input_span(layer, y0, y1, layer.in_shape[1])
                ix0, ix1, _ = input_span(layer, x0, x1, layer.in_shape[2])
                if j > 0:
                    hy0, hy1, hx0, hx1 = held_before
                    assert hy0 <= iy0 and iy1 <= hy1 and hx0 <= ix0 and ix1 <= hx1
            for save in lw.saves:
                hy0, hy1, hx0, hx1 = lw.held
                y0, y1, x0, x1 = save.region
                assert hy0 <= y0 < y1 <= hy1 and hx0 <= x0 < x1 <= hx1
                saved[save.strip] = save.region
            held_before = lw.held
    assert not saved


@settings(max_examples=100, deadline=None)
@given(case=chains_and_grids())
def test_stream_computes_every_element_at_most_once_and_the_output_exactly_once(case):
    net, rows, cols = case
    computed = {layer.index: [] for layer in net.layers}
    for work in group_work(net.layers, rows, cols, "stream"):
        for lw in work.layers:
            computed[lw.layer] += lw.computes
    for layer in net.layers:
        count = coverage(layer.out_shape, computed[layer.index])
        assert count.max() <= 1
    assert (coverage(net[len(net) - 1].out_shape, computed[len(net) - 1]) == 1).all()


@st.composite
def reuse_plans(draw):
    net = draw(stacks(max_layers=6, sizes=(6, 30)))
    cut = draw(st.integers(0, len(net) - 1))
    groups = []
    for first, last in ((0, cut), (cut + 1, len(net) - 1)):
        if first <= last:
            _, h, w = net[last].out_shape
            groups.append((first, last, draw(st.integers(1, min(h, 6))), draw(st.integers(1, min(w, 6)))))
    return net, groups


@settings(max_examples=40, deadline=None)
@given(case=reuse_plans(), seed=st.integers(0, 1000))
def test_every_mode_equals_none_and_the_reference_on_random_stacks(case, seed):
    net, groups = case
    params = random_params(net, seed)
    x = random_image(net.input_shape, seed)
    ref = run_reference(net, params, x)
    outputs = {}
    for mode in REUSE_MODES:
        run = run_fused(Plan(net, tuple(Group(*g, mode) for g in groups)), params, x, scratch_bytes=1 << 14)
        assert_close(run.output, ref.output)
        assert_arena_invariants(run)
        outputs[mode] = run.output
    assert_close(outputs["stream"], outputs["none"])
    assert_close(outputs["checkerboard"], outputs["none"])


@pytest.fixture(scope="module")
def yolov2():
    return load_network("yolov2.cfg")


def group_overhead(net, spec):
    plan = Plan(net, parse_groups(spec))
    schedule = FusedExecutor(plan, random_params(net, 0)).schedule
    first, last = plan.groups[0].first, plan.groups[-1].last
    executed = sum(s.macs for s in schedule.steps if first <= s.layer <= last)
    return executed / sum(net[i].macs for i in range(first, last + 1))


@pytest.mark.parametrize("grid", ["1x1", "2x3", "5x5", "8x8", "7x4"])
def test_stream_executes_exactly_the_networks_macs(yolov2, grid):
    assert group_overhead(yolov2, f"0-15:{grid}:stream") == 1.0
    assert group_overhead(yolov2, f"0-7:{grid}:stream,8-16:{grid}:stream") == 1.0


def test_checkerboard_cuts_the_overlap_work(yolov2):
    none = group_overhead(yolov2, "0-15:5x5:none")
    checkerboard = group_overhead(yolov2, "0-15:5x5:checkerboard")
    assert none > 2.5
    assert checkerboard <= 1.6


@pytest.mark.parametrize("spec", ["0-7:4x4:stream,8-16:2x2:checkerboard", "0-15:3x5:checkerboard",
                                  "0-3:6x6:stream,4-9:3x3:checkerboard,10-16:2x2:stream"])
def test_yolov2_reuse_plans_equal_the_reference(yolov2, spec):
    params = random_params(yolov2, 1)
    x = random_image(yolov2.input_shape, 1)
    ref = run_reference(yolov2, params, x)
    run = run_fused(Plan(yolov2, parse_groups(spec)), params, x)
    assert_close(run.output, ref.output)
    assert_arena_invariants(run)
