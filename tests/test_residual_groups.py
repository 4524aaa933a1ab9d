"""Groups through residual blocks, channel splits, two-source routes and upsampling: on random
MobileNetV2-like networks, every reuse mode gives the reference's output, the network input is made region
by region from a letterboxed picture, and the predictor's peak is the measured one."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.ir.fusion import fusion
from engine.ir.order import orders_of
from engine.ir.plan import REUSE_MODES, Group, Plan, PlanError, parse_groups
from engine.memory.predictor import Predictor
from engine.runtime.executor import run_fused
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from yolo.letterbox import Placement, fit
from yolo.params import random_params
from tests.helpers import random_image
from tests.strategies import residual_nets, weights_of
from tests.test_fused import assert_arena_invariants, assert_close


@st.composite
def residual_plans(draw):
    net = draw(residual_nets())
    rule, groups, first = fusion(net), [], 0
    while first < len(net):
        ends = rule.ends(first)
        if not ends or not draw(st.booleans()):
            first += 1
            continue
        last = draw(st.sampled_from(ends))
        _, h, w = net[last].out_shape
        groups.append(Group(first, last, draw(st.integers(1, min(h, 5))), draw(st.integers(1, min(w, 5))),
                            draw(st.sampled_from(REUSE_MODES)), *draw(weights_of(net, first, last))))
        first = last + 1
    return Plan(net, tuple(groups), order=draw(st.sampled_from(orders_of(net))))


@settings(max_examples=150, deadline=None)
@given(plan=residual_plans(), seed=st.integers(0, 1000), wide=st.booleans(), threads=st.integers(1, 2))
def test_residual_groups_equal_the_reference_and_the_prediction(plan, seed, wide, threads):
    net = plan.network
    c, h, w = net.input_shape
    picture = random_image((c, h + 3, 2 * w + 1) if wide else (c, h, w), seed)
    placement = Placement.of((picture.shape[2], picture.shape[1]), (w, h), "letterbox")
    params = random_params(net, seed)
    ref = run_reference(net, params, fit(picture, w, h, placement))
    scratch = int(np.random.default_rng(seed).integers(256, 1 << 16))
    run = run_fused(plan, params, picture, scratch_bytes=scratch, threads=threads, placement=placement)
    assert_close(run.output, ref.output)
    for head in net.heads:
        assert_close(run.head_outputs[head.index], ref.head_outputs[head.index])
    assert_arena_invariants(run)
    predicted = Predictor(net, scratch).predict(plan)
    assert (predicted.peak_bytes, predicted.arena_bytes) == (run.peak_bytes, run.arena_bytes)


@pytest.fixture(scope="module")
def nano():
    return load_network("MobileNetV2-YOLOv3-Nano-coco.cfg", 416)


def test_nano_groups_run_through_blocks_and_the_second_head_s_route(nano):
    """Spans cross every inverted residual block up to the map the second head's route keeps (47), and the
    route to the second head (70-78: upsample, concatenation with layer 47 held whole, six convs)."""
    spans = fusion(nano).spans()
    assert (0, 47) in spans and (70, 78) in spans
    params = random_params(nano, 1)
    x = random_image(nano.input_shape, 1)
    ref = run_reference(nano, params, x)
    for reuse in REUSE_MODES:
        run = run_fused(Plan(nano, parse_groups("0-9:4x4,10-16:2x2,48-57:2x2,70-78:3x3", reuse)), params, x)
        for head in nano.heads:
            assert_close(run.head_outputs[head.index], ref.head_outputs[head.index])


@pytest.mark.parametrize("spec, message", [
    ("0-6:2x2", "layer 5's output is read by layer 9 outside the group"),
    ("63-64:2x2", "layer 63 is a route that a group cannot run"),
    ("64-66:2x2", "layer 64's output is read by layer 70 outside the group"),
    ("69-70:1x1", "layer 69 is a yolo that a group cannot run"),
])
def test_groups_that_cannot_run_say_why(nano, spec, message):
    with pytest.raises(PlanError, match=message):
        Plan(nano, parse_groups(spec))


def test_heads_write_over_their_input_which_is_still_returned(nano):
    """Nothing reads a [yolo] layer's input after it, so the head takes that buffer: one map fewer at the
    head, and the input still comes back as a result (copied out before the head ran)."""
    plan = Plan(nano, parse_groups("0-9:4x4:stream"))
    params = random_params(nano, 2)
    x = random_image(nano.input_shape, 2)
    run = run_fused(plan, params, x)
    ref = run_reference(nano, params, x)
    assert set(nano.in_place_heads) == {69, 79}
    for head in nano.heads:
        assert run.program.maps[head.index] == run.program.maps[head.inputs[0]]
        assert_close(run.head_inputs[head.inputs[0]], ref.head_inputs[head.inputs[0]])
        assert_close(run.head_outputs[head.index], ref.head_outputs[head.index])
    assert Predictor(nano).predict(plan).peak_bytes == run.peak_bytes


def test_stream_passes_on_what_a_lagging_reader_needs():
    """Found by the property test: at 1x4 the shortcut reads layer 0 one column behind layer 1 does, so a
    tile whose own cell of layer 0 is empty must still hold, and pass on, what the next tile's shortcut reads."""
    from tests.helpers import network_from_text
    conv = ("[convolutional]\nbatch_normalize=1\nfilters=2\nsize={}\nstride={}\npad=1\ngroups={}\n"
            "activation=leaky\n")
    net = network_from_text("[net]\nwidth=6\nheight=6\nchannels=1\n" + conv.format(3, 2, 1) + conv.format(1, 1, 1)
                            + conv.format(3, 1, 2) + conv.format(1, 1, 1) + "[shortcut]\nfrom=-4\n[upsample]\nstride=2\n")
    params, x = random_params(net, 0), random_image(net.input_shape, 0)
    run = run_fused(Plan(net, (Group(0, 5, 1, 4, "stream"),)), params, x)
    assert_close(run.output, run_reference(net, params, x).output)
