"""The crew that shares steps between threads: every share runs once per step, in order, and a share that
raises surfaces in the caller, which can run again afterwards; runs that find the cores busy are followed by
runs on the caller alone."""
import os
import threading
import time

import numpy as np
import pytest

from engine.ir.plan import Plan, parse_groups
from engine.runtime import executor as executor_module
from engine.runtime.executor import ALONE_RUNS, FusedExecutor
from engine.runtime.workers import PIN_VARIABLE, Crew, crew
from yolo.cfg import load_network
from yolo.params import random_params


def test_every_share_runs_once_and_errors_reach_the_caller():
    crew = Crew(2)
    seen = []

    def share(i, h):
        return lambda: seen.append((i, h))

    shares = [(share(0, 1), share(0, 2)), (), (share(2, 1),)]  # step 1 does not split, step 2 has one helper
    for _ in range(2):
        seen.clear()
        crew.begin(shares)
        for i, helpers in enumerate(shares):
            if helpers:
                crew.hand(i)
                crew.join(i)
        crew.end()
        assert sorted(seen) == [(0, 1), (0, 2), (2, 1)]

    def fail():
        raise ValueError("share failed")
    crew.begin([(fail,)])
    with pytest.raises(ValueError, match="share failed"):
        try:
            crew.hand(0)
            crew.join(0)
        finally:
            crew.end()
    crew.begin([(share(0, 1),)])  # usable again
    seen.clear()
    crew.hand(0)
    crew.join(0)
    crew.end()
    assert seen == [(0, 1)]


def test_during_a_run_each_thread_keeps_to_a_cpu_of_its_own(monkeypatch):
    """The helper keeps to the process's second CPU, the caller to its first during a run and to its own
    affinity again after; with FUSETILE_PIN_THREADS=0 (or a single CPU) nothing is pinned, and CPUs the
    process may no longer use leave the threads where they are."""
    before = os.sched_getaffinity(0)
    for pin in ("1", "0"):
        monkeypatch.setenv(PIN_VARIABLE, pin)
        team, seen = Crew(1), {}

        def record():
            seen[threading.current_thread() is threading.main_thread()] = os.sched_getaffinity(0)
        team.begin([(record,)])
        record()
        team.hand(0)
        time.sleep(0.05)  # the helper claims its share
        team.join(0)
        team.end()
        assert os.sched_getaffinity(0) == before
        if pin == "1" and len(before) >= 2:
            assert team.cpus == sorted(before)[:2]
            assert seen == {True: {team.cpus[0]}, False: {team.cpus[1]}}
        else:
            assert team.cpus is None and seen == {True: before, False: before}
    team = Crew(1)
    team.cpus = [1 << 12, (1 << 12) + 1]  # CPUs the process may not use: the run goes on where it is
    team.begin([(lambda: None,)])
    assert os.sched_getaffinity(0) == before
    team.hand(0)
    team.join(0)
    team.end()
    assert os.sched_getaffinity(0) == before


def test_the_caller_runs_a_share_its_helper_has_not_claimed():
    """A helper kept busy (as when another process takes its core) does not hold up the next step: the
    caller, done with its own share, claims the helper's and runs it; each share runs once."""
    crew = Crew(1)
    started, ran = threading.Event(), {}

    def slow():
        started.set()
        time.sleep(0.3)
        ran[0] = threading.get_ident()

    def quick():
        ran[1] = threading.get_ident()

    crew.begin([(slow,), (quick,)])
    try:
        crew.hand(0)
        started.wait()
        crew.hand(1)
        stolen = crew.stolen
        crew.join(1)  # the helper is still in step 0's share
        assert ran == {1: threading.get_ident()} and crew.stolen == stolen + 1
        crew.join(0)
        assert ran[0] != threading.get_ident() and crew.stolen == stolen + 1
    finally:
        crew.end()


@pytest.mark.parametrize("signal", ["stolen", "waited"])
def test_after_a_run_whose_helpers_were_off_their_cores_the_caller_runs_alone_for_a_while(monkeypatch, signal):
    """A run in which the caller ran more than CONTENDED of the helpers' shares, or waited for them more than
    WAITED of its time (as when another process has their cores: here every share is counted so, or as a
    second's wait) is followed by ALONE_RUNS runs with every share on the calling thread and the helpers
    asleep, with the same results; then the helpers are tried again. An executor's first run is not judged."""
    monkeypatch.setattr(executor_module, "IDLE_S", 1e9)  # a slow machine's pauses between runs do not count
    network = load_network("yolov2-tiny.cfg", 96)
    executor = FusedExecutor(Plan(network, parse_groups("0-5:4x1:stream")), random_params(network, 0), threads=2)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    team = crew(2)
    join = team.join

    def join_counting_all(i):  # the helper ran its share; counted as if the caller had, or had waited long
        join(i)
        if signal == "stolen":
            team.stolen += 1
        else:
            team.waited += 1.0
    monkeypatch.setattr(team, "join", join_counting_all)
    hands = []
    monkeypatch.setattr(team, "hand", lambda i, hand=team.hand: (hands.append(i), hand(i))[-1])
    expected = executor.run(x).head
    assert executor.alone_runs == 0  # the first run (compiling, mapping pages) is not judged
    np.testing.assert_array_equal(executor.run(x).head, expected)
    assert executor.alone_runs == ALONE_RUNS and hands
    for left in reversed(range(ALONE_RUNS)):
        hands.clear()
        run = executor.run(x)
        np.testing.assert_array_equal(run.head, expected)
        assert run.alone and executor.alone_runs == left and not hands  # no step handed to the helpers
    hands.clear()
    run = executor.run(x)
    np.testing.assert_array_equal(run.head, expected)
    assert not run.alone and hands and executor.alone_runs == ALONE_RUNS  # tried again, still busy


def test_a_run_after_a_pause_tries_the_helpers_again(monkeypatch):
    """The load may have gone: a run that starts IDLE_S after the last one ended uses the helpers again."""
    network = load_network("yolov2-tiny.cfg", 96)
    executor = FusedExecutor(Plan(network, parse_groups("0-5:4x1:stream")), random_params(network, 0), threads=2)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    executor.run(x)
    executor.alone_runs = ALONE_RUNS
    monkeypatch.setattr(executor_module, "IDLE_S", 0.0)
    hands = []
    team = crew(2)
    monkeypatch.setattr(team, "hand", lambda i, hand=team.hand: (hands.append(i), hand(i))[-1])
    executor.run(x)
    assert hands


def test_one_helper_of_several_off_its_core_keeps_the_helpers(monkeypatch):
    """On more cores one busy core is not contention enough: with two helpers, the caller running one of the
    two helper shares of every step (half of them, not more) leaves the crew at work."""
    monkeypatch.setattr(executor_module, "IDLE_S", 1e9)
    monkeypatch.setattr(executor_module, "WAITED", 1e9)  # 3 threads on 2 cores wait for each other for real
    network = load_network("yolov2-tiny.cfg", 96)
    executor = FusedExecutor(Plan(network, parse_groups("0-5:4x1:stream")), random_params(network, 0), threads=3)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    executor.run(x)
    team = crew(3)
    join, counted = team.join, []

    def join_counting_one(i):  # as if the caller had run one helper's share of each step (on 2 cores, 3
        stolen = team.stolen   # threads contend for real: what the caller really ran is not counted here)
        join(i)
        team.stolen = stolen + 1
        counted.append(i)
    monkeypatch.setattr(team, "join", join_counting_one)
    executor.run(x)
    shares = sum(len(calls) - 1 for calls in executor._bound)
    assert counted and 2 * len(counted) <= shares and executor.alone_runs == 0
