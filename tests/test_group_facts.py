"""The search's group facts, counted without a schedule, equal what the schedule itself gives: own peak
bytes while the input map lives and after, and every cost-model work count."""
import numpy as np
from hypothesis import given, settings, strategies as st

from engine.costmodel import schedule_features
from engine.group_facts import GroupFacts
from engine.plan import Group
from engine.arena import live_bytes_timeline
from engine.schedule import group_schedule
from engine.reuse import REUSE_MODES
from engine.search import chain_ends
from yolo.cfg import load_network
from tests.strategies import stacks


def assert_facts_equal(network, group, scratch):
    schedule = group_schedule(network, group, scratch)
    own = live_bytes_timeline(schedule.buffers, len(schedule.steps))  # the group's own buffers, per step
    after = own[schedule.source_last + 1:]
    expected_peaks = int(own[:schedule.source_last + 1].max()), int(after.max()) if len(after) else 0
    with_source, after_source, features = GroupFacts(network, scratch)(group)
    expected = schedule_features(schedule.steps, network)
    assert (with_source, after_source) == expected_peaks, group
    assert np.array_equal(features, expected), (group, features, expected)


@st.composite
def groups_of(draw, network):
    first = draw(st.sampled_from([i for i in range(len(network)) if chain_ends(network, i)]))
    last = draw(st.sampled_from(chain_ends(network, first)))
    _, h, w = network[last].out_shape
    return Group(first, last, draw(st.integers(1, min(8, h))), draw(st.integers(1, min(8, w))),
                 draw(st.sampled_from(REUSE_MODES)))


@settings(max_examples=150, deadline=None)
@given(st.data(), stacks(max_layers=6, sizes=(5, 30)), st.sampled_from([1 << 9, 1 << 12, 1 << 20]))
def test_random_stacks(data, network, scratch):
    assert_facts_equal(network, data.draw(groups_of(network)), scratch)


YOLO = {name: load_network(name, size) for name, size in [("yolov2.cfg", 224), ("yolov2-tiny.cfg", 160),
                                                           ("yolov2-voc.cfg", 288)]}


@settings(max_examples=120, deadline=None)
@given(st.data(), st.sampled_from(sorted(YOLO)))
def test_yolo_groups(data, name):
    network = YOLO[name]
    assert_facts_equal(network, data.draw(groups_of(network)), 1 << 20)
