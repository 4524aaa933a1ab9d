"""The crew that shares steps between threads: every share runs once per step, in order, and a share that
raises surfaces in the caller, which can run again afterwards."""
import threading
import time

import pytest

from engine.runtime.workers import Crew


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
        crew.join(1)  # the helper is still in step 0's share
        assert ran == {1: threading.get_ident()}
        crew.join(0)
        assert ran[0] != threading.get_ident()
    finally:
        crew.end()
