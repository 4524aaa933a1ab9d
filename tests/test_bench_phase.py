"""The benchmarks' probe of how far apart the CPUs are, and the split of turns by it."""
import os

from benchmarks.phase import FAR_NS, MIN_TURNS, far_turns, phase_medians, print_phases, round_trip_ns


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
    assert (0 < trip < 1e8) if len(before) >= 2 else trip is None  # a busy CPU stretches trips to time slices
    assert os.sched_getaffinity(0) == before


def test_the_phase_table_gives_each_runner_against_onnx_runtime_in_the_same_phase(capsys):
    trips = [100.0, 120.0, 110.0, 500.0, 520.0, 510.0]
    seconds = {"onnxruntime": [0.020, 0.020, 0.020, 0.030, 0.030, 0.030],
               "mine": [0.036, 0.036, 0.036, 0.019, 0.019, 0.019]}
    print_phases(["onnxruntime", "mine"], seconds, {"onnxruntime": trips, "mine": trips[::-1]})
    out = capsys.readouterr().out
    assert "6 near (median 110 ns), 6 far (median 510 ns)" in out
    assert "| mine | 19.0 | 0.95 | 36.0 | 1.20 |" in out  # its near turns are the last three
    print_phases(["onnxruntime"], {"onnxruntime": [0.02] * 3}, {"onnxruntime": [100.0] * 3})
    out = capsys.readouterr().out
    assert "3 near (median 100 ns), 0 far" in out and "|" not in out
