"""The crew that shares steps between threads: every share runs once per step, in order, and a share that
raises surfaces in the caller, which can run again afterwards."""
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
