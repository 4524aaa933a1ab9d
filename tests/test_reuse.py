"""Reuse modes: the executed MACs are what the modes promise; outputs equal `none` and the reference (the
geometry of each mode is checked in test_lowering)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.lower.program import build_program
from engine.lower.table import (B_BYTES, B_FIRST, B_LAST, B_SIDE, CONV_STEP, S_DST, S_KIND, S_LAYER, S_MACS, S_PAIRED,
                                S_SEGMENT, S_TILE)
from engine.memory.planner import plan_layout
from engine.runtime.executor import run_fused
from yolo.params import random_params
from engine.ir.plan import REUSE_MODES, Group, Plan, parse_groups
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from tests.helpers import random_image
from tests.strategies import stacks
from tests.test_fused import assert_arena_invariants, assert_close


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
    assert_close(outputs["columns"], outputs["none"])


@pytest.fixture(scope="module")
def yolov2():
    return load_network("yolov2.cfg")


def group_overhead(net, spec):
    plan = Plan(net, parse_groups(spec))
    steps = build_program(plan).steps
    first, last = plan.groups[0].first, plan.groups[-1].last
    executed = steps[(steps[:, S_LAYER] >= first) & (steps[:, S_LAYER] <= last), S_MACS].sum()
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
                                  "0-3:6x6:stream,4-9:3x3:checkerboard,10-16:2x2:stream",
                                  "0-7:4x2:columns,8-16:3x3:columns"])
def test_yolov2_reuse_plans_equal_the_reference(yolov2, spec):
    params = random_params(yolov2, 1)
    x = random_image(yolov2.input_shape, 1)
    ref = run_reference(yolov2, params, x)
    run = run_fused(Plan(yolov2, parse_groups(spec)), params, x)
    assert_close(run.output, ref.output)
    assert_arena_invariants(run)


def test_columns_run_two_at_a_time_in_buffers_of_their_own(yolov2):
    """The steps of a two-column group alternate with their twins; every conv pairs with its twin but those
    writing the group's output map (the last conv, its pool folded in), which no step does; a lifetime
    touching a pair spans both of its steps; the two threads' buffers never share a byte; the overlap across
    columns is recomputed."""
    program = build_program(Plan(yolov2, parse_groups("0-7:4x2:columns")))
    steps, buffers = program.steps, program.buffers
    group = np.flatnonzero(steps[:, S_SEGMENT] == 0)
    assert (steps[group[1::2], S_TILE] == steps[group[::2], S_TILE] + 1).all()  # column 0, then column 1
    firsts = group[steps[group, S_PAIRED] == 1]
    convs = group[::2][steps[group[::2], S_KIND] == CONV_STEP]
    into_output = steps[convs, S_DST] == steps[group[-1], S_DST]
    assert into_output.sum() == 4 and np.isin(convs[~into_output], firsts).all()  # one a row of tiles
    assert len(firsts) > len(convs[~into_output])  # convs, and the large inputs
    assert not np.isin(steps[firsts, S_DST], steps[group[-1], S_DST]).any()
    assert not np.isin(buffers[:, B_FIRST], firsts + 1).any() and not np.isin(buffers[:, B_LAST], firsts).any()
    layout = plan_layout(buffers)
    ends = layout.offsets + buffers[:, B_BYTES]
    one, two = (np.flatnonzero(buffers[:, B_SIDE] == side) for side in (1, 2))
    assert len(one) == len(two) > 0
    assert ends[one].max() <= layout.offsets[two].min() or ends[two].max() <= layout.offsets[one].min()
    assert 1.0 < group_overhead(yolov2, "0-7:4x2:columns") < 1.03  # 1.021


def test_columns_that_load_weights_per_tile_run_one_after_the_other(yolov2):
    """A tile's loads fill weights the other column would read at once: such tiles are not paired."""
    steps = build_program(Plan(yolov2, parse_groups("0-7:4x2:columns:tile"))).steps
    assert not steps[:, S_PAIRED].any()
