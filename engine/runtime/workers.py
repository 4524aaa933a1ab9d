"""Helper threads that compute the other shares of a step while the caller computes the first.

A run hands every split step to the helpers by posting its number to a counter each helper polls; a
helper claims its share (an atomic counter of its own), runs it and posts the number back when it is done
(``kernels.sync``). The kernels release the GIL, so the shares run at once. The caller, done with its own
share, claims any share its helper has not: a helper that another process keeps off its core (one busy
process beside a run) then costs the step one more share's time, not the wait for the scheduler. Between
steps neither thread returns to Python while the other may hold the GIL, as far as it can help it (the
helper waits about 2 µs after claiming): in yolov2-tiny's 14 strips, a conv step's two shares ran
1.0-1.5x as fast as one thread before, 1.2-1.9x after. Between runs the helpers sleep on an event. One
crew per thread count serves every executor of the process, one run at a time.

During a run each thread keeps to a CPU of its own: helper h to the process's (h + 1)-th, the caller to its
first (its own affinity given back when the run ends). Woken after a pause, a helper that the operating
system left on the caller's CPU ran its shares slowly for the whole run, and the next one:
MobileNetV2-YOLOv3-Nano, 0.3 s between runs as ``benchmarks.bench_peers`` times them, took 15.3 ms a run so,
10.1 pinned. ``FUSETILE_PIN_THREADS=0`` leaves the threads where the operating system puts them.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from threadpoolctl import ThreadpoolController

from kernels.sync import await_share, poll, post, serve, ticks

SPINS = 1 << 20            # looks per poll call (about a millisecond) before the poller takes the GIL to yield
END = np.int64(1) << 62    # posted instead of a step number when the run ends
GO, DONE, CLAIMED, SLOTS = 0, 1, 2, 3  # each helper's counters: step posted, finished, claimed
SETTLE_SECONDS = 2e-6      # a helper's wait after claiming a share, for the caller to let the GIL go (sync)
_yield = getattr(os, "sched_yield", lambda: None)
PIN_VARIABLE = "FUSETILE_PIN_THREADS"  # "0": no pinning


def first_cpus(n: int) -> list[int] | None:
    """The first ``n`` CPUs this process may run on, or None: fewer, or unknown here."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[:n] if len(cpus) >= n else None


def pinned_cpus(threads: int) -> list[int] | None:
    """The CPUs the caller and each helper keep to during a run (``first_cpus``), or None: pinning turned
    off, or unknown here, or fewer CPUs than threads."""
    return None if os.environ.get(PIN_VARIABLE, "1") == "0" else first_cpus(threads)


def _keep_to(cpus: set[int]) -> None:
    """The calling thread to ``cpus``; left where it is if the process may no longer use them (pinning only
    places threads: a run does not depend on it)."""
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:
        pass


def _await(counters: np.ndarray, slot: int, at_least: int) -> int:
    while (value := poll(counters, slot, at_least, SPINS)) < 0:
        _yield()
    return int(value)


def _settle_ticks() -> int:
    """SETTLE_SECONDS in cycle-counter ticks, the counter's rate measured against the clock (0 without one)."""
    start, clock = ticks(), time.perf_counter()
    while time.perf_counter() - clock < 2e-3:
        pass
    return int((ticks() - start) / (time.perf_counter() - clock) * SETTLE_SECONDS)


class Crew:
    """``helpers`` threads; ``begin``, ``hand`` and ``join`` for each split step, and ``end`` drive one run."""

    def __init__(self, helpers: int):
        self.helpers = helpers
        self.counters = np.zeros(SLOTS * helpers, np.int64)
        self._lock = threading.Lock()
        self.stolen = 0  # helpers' shares the caller ran itself, since the crew began (the cores were busy)
        self.waited = 0.0  # seconds the caller waited for helpers to finish their shares, since it began
        self._wake = [threading.Event() for _ in range(helpers)]
        self._shares: list = []
        self._errors: list = [None] * helpers
        self._settle = _settle_ticks()
        self.cpus = pinned_cpus(helpers + 1)
        self._caller_cpus: set[int] = set()
        self._threads = [threading.Thread(target=self._serve, args=(h,), daemon=True, name=f"fusetile-{h + 1}")
                         for h in range(helpers)]
        for thread in self._threads:
            thread.start()

    def _serve(self, h: int) -> None:
        if self.cpus:
            _keep_to({self.cpus[h + 1]})
        counters, go, done, taken = self.counters, SLOTS * h + GO, SLOTS * h + DONE, SLOTS * h + CLAIMED
        while True:
            self._wake[h].wait()
            self._wake[h].clear()
            finished, awaited = 0, 1
            while (step := serve(counters, go, taken, done, finished, awaited, SPINS, self._settle)) != END:
                finished = 0
                if step < 0:  # nothing posted for a while: let other threads run
                    awaited = -1 - step
                    _yield()
                    continue
                try:
                    self._shares[step - 1][h]()
                except BaseException as error:  # re-raised by the caller
                    self._errors[h] = error
                finished, awaited = step, step + 1
            post(counters, done, END)

    def begin(self, shares: list) -> None:
        """Start a run: ``shares[i]`` holds the helpers' calls of step i (empty if it does not split)."""
        self._lock.acquire()
        if self.cpus:
            self._caller_cpus = os.sched_getaffinity(0)
            _keep_to({self.cpus[0]})
        self.counters[:] = 0
        self._shares = shares
        for wake in self._wake:
            wake.set()

    def hand(self, i: int) -> None:
        """Post step i to the helpers that have a share of it."""
        for h in range(len(self._shares[i])):
            post(self.counters, SLOTS * h + GO, i + 1)

    def join(self, i: int) -> None:
        """The helpers' shares of step i: run here those no helper has claimed yet (counted in ``stolen``),
        wait for the others (the wait added to ``waited``); re-raise what one of them raised."""
        for h, share in enumerate(self._shares[i]):
            start = time.perf_counter()
            while (outcome := await_share(self.counters, SLOTS * h + CLAIMED, SLOTS * h + DONE, i + 1, SPINS)) < 0:
                _yield()
            if outcome:
                self.stolen += 1
                share()
            else:
                self.waited += time.perf_counter() - start
        if any(self._errors):
            error, self._errors = next(e for e in self._errors if e is not None), [None] * self.helpers
            raise error

    def end(self) -> None:
        try:
            for h in range(self.helpers):
                post(self.counters, SLOTS * h + GO, END)
            for h in range(self.helpers):
                _await(self.counters, SLOTS * h + DONE, END)
        finally:
            self._shares = []
            if self.cpus:
                _keep_to(self._caller_cpus)
            self._lock.release()


_crews: dict[int, Crew] = {}
_blas = None


def crew(threads: int) -> Crew:
    """The process's crew for runs on ``threads`` threads (the caller and threads - 1 helpers)."""
    if threads not in _crews:
        _crews[threads] = Crew(threads - 1)
    return _crews[threads]


def blas_threads(threads: int):
    """A context in which every BLAS library of the process runs on at most ``threads`` threads."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=threads, user_api="blas")


def single_threaded_blas():
    """BLAS on the calling thread only: the shares already use the cores, and BLAS threads spinning beside
    them would compete for them."""
    return blas_threads(1)


def default_threads() -> int:
    """One thread per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
