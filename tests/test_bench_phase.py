"""The benchmarks' probe of how far apart the CPUs are, and the split of turns by it."""
import os

from benchmarks.phase import FAR_NS, MIN_TURNS, far_turns, phase_medians, round_trip_ns


def test_far_turns_are_the_probes_of_far_round_trips():
    assert far_turns([47.0, 118.0, 170.0, FAR_NS - 1, FAR_NS, 490.0]) == [False] * 4 + [True, True]


def test_a_phase_gets_a_median_only_from_enough_turns():
    seconds = [1.0, 2.0, 3.0, 10.0, 20.0]
    assert phase_medians(seconds, [False, False, False, True, True]) == (2.0, None)
    assert phase_medians(seconds, [True] * 5) == (None, 3.0)
    assert MIN_TURNS == 3


def test_the_probe_times_round_trips_and_leaves_the_affinity_as_it_was():
    before = os.sched_getaffinity(0)
    trip = round_trip_ns(200)
    assert (0 < trip < 1e6) if len(before) >= 2 else trip is None
    assert os.sched_getaffinity(0) == before
