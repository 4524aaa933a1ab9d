"""The benchmarks' probe of how far apart the CPUs are, and the split of turns by it."""
import os

from benchmarks.phase import FAR, MIN_TURNS, far_turns, phase_medians, round_trip_ns


def test_far_turns_are_the_slower_of_two_groups_of_probes_far_apart():
    near = [58.0, 118.0, 60.0, 150.0, 112.0, 168.0]
    assert far_turns(near) == [False] * 6  # near trips vary twofold: no far group
    assert far_turns(near + [490.0, 560.0]) == [False] * 6 + [True, True]
    assert far_turns([500.0, 60.0 * FAR * 0.9, 520.0, 130.0]) == [True, False, True, False]
    assert far_turns([490.0, 510.0, 600.0]) == [False] * 3  # all far: one phase, nothing to split


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
