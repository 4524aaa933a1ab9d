"""How far apart the first two CPUs of this process are right now: the round trip of a cache line between two
threads pinned to them.

On the 2-vCPU KVM guests fusetile is developed on (AMD EPYC, Zen 4), the host places the vCPUs near each
other (this probe's round trip 45-170 ns) or, for seconds at a time, far apart (450-600 ns). Far apart,
1 MB that one thread wrote and the other reads (both ways at once) took 2.6x as long (20 such swaps: 6.1
-> 15.6 ms), 1 MB that a thread keeps to itself 1.1x (5.0 -> 5.6 ms). The split steps of a fused run hand
their maps from thread to thread at every layer: in one process, yolov2-tiny's default plan ran 25.4 ms
near and 29.9 far (899 runs), ONNX Runtime 25.6 and 27.6 (908 runs); one thread kept its 46.6 ms. So
``bench_peers`` probes before each turn and gives the two phases apart as well as together.
"""
from __future__ import annotations

import os
import statistics
import threading
import time

import numpy as np
from numba import njit

from engine.runtime.workers import first_cpus
from kernels.sync import poll, post

TRIPS = 2000     # round trips per probe: 0.1-1.2 ms
BATCH = 100      # trips between looks at the clock
LIMIT_S = 0.02   # a probe stops after this long (a busy CPU would stretch its trips to time slices)
FAR_NS = 300     # a round trip this long or longer is far: near ones took 45-170 ns here, far ones 450-600
MIN_TURNS = 3    # turns a runner needs in a phase for that phase's median
_LINE = 8        # int64s per cache line: the two directions on lines of their own
_STOP = np.int64(1) << 62  # posted instead of a trip's number: the echo returns
_SPINS = 1 << 16
_PATIENCE = 1 << 28  # looks for one trip's answer (a second or more): the other thread is gone


@njit(cache=True, nogil=True)
def _serve(counters, first, last):
    """Round trips first..last: post each number and wait for it to come back. Returns the trips made: fewer
    if one did not come back within _PATIENCE looks."""
    for i in range(first, last + 1):
        post(counters, 0, i)
        if poll(counters, _LINE, i, _PATIENCE) < 0:
            return i - first
    return last - first + 1


@njit(cache=True, nogil=True)
def _echo(counters):
    """Post every number back, until _STOP comes."""
    i = 1
    while True:
        seen = poll(counters, 0, i, _SPINS)
        if seen < 0:
            continue
        if seen >= _STOP:
            return
        post(counters, _LINE, i)
        i += 1


def _pinned(cpu: int, work) -> None:
    os.sched_setaffinity(0, {cpu})
    work()


def round_trip_ns(trips: int = TRIPS) -> float | None:
    """Nanoseconds per round trip of a cache line between threads on the process's first two CPUs (the
    first trip, which waits for the other thread to start, not counted; fewer than ``trips`` if they take
    more than LIMIT_S), or None with fewer than two CPUs."""
    cpus = first_cpus(2)
    if cpus is None:
        return None
    before = os.sched_getaffinity(0)
    counters = np.zeros(2 * _LINE, np.int64)
    counters[0] = _STOP
    _echo(counters), _serve(counters, 1, 0)  # compiled here, not while the other side waits for an answer
    counters[:] = 0
    echo = threading.Thread(target=_pinned, args=(cpus[1], lambda: _echo(counters)))
    timed = []

    def serve() -> None:
        if _serve(counters, 1, 1) < 1:
            raise RuntimeError("the probe's other thread did not answer")
        start, done = time.perf_counter(), 0
        while done < trips and time.perf_counter() - start < LIMIT_S:
            made = _serve(counters, done + 2, done + 1 + BATCH)
            if made < BATCH:
                raise RuntimeError("the probe's other thread stopped answering")
            done += made
        timed.append((time.perf_counter() - start) / done)
    echo.start()
    try:
        _pinned(cpus[0], serve)
    finally:
        post(counters, 0, _STOP)
        echo.join()
        os.sched_setaffinity(0, before)
    return timed[0] * 1e9


def far_turns(trips_ns: list[float]) -> list[bool]:
    """Which probes found the CPUs far apart: a round trip of FAR_NS or more."""
    return [t >= FAR_NS for t in trips_ns]


def phase_medians(seconds: list[float], far: list[bool]) -> tuple[float | None, float | None]:
    """(median of the near turns, of the far turns), each None with fewer than MIN_TURNS."""
    near_s = [s for s, f in zip(seconds, far) if not f]
    far_s = [s for s, f in zip(seconds, far) if f]
    return tuple(statistics.median(s) if len(s) >= MIN_TURNS else None for s in (near_s, far_s))


def print_phases(names: list[str], seconds: dict[str, list[float]], trips: dict[str, list[float | None]]) -> None:
    """How many turns found the CPUs near and far, and, when some were far, each runner's medians in either
    phase and their ratios to ONNX Runtime's in the same phase (``trips[name][i]``: the probe before
    ``seconds[name][i]``). Nothing without probes."""
    probes = [t for name in names for t in trips[name]]
    if not probes or None in probes:
        return
    far = {name: far_turns(trips[name]) for name in names}
    flags = [f for name in names for f in far[name]]
    near_ns, far_ns = [t for t, f in zip(probes, flags) if not f], [t for t, f in zip(probes, flags) if f]
    counts = [f"{len(ns)} {phase}" + (f" (median {statistics.median(ns):.0f} ns)" if ns else "")
              for phase, ns in (("near", near_ns), ("far", far_ns))]
    print(f"\ncross-core round trip before each turn: {', '.join(counts)}")
    if not far_ns:
        return
    split = {name: phase_medians(seconds[name], far[name]) for name in names}
    base = split.get("onnxruntime", (None, None))
    print("| runner | near ms | / ONNX Runtime | far ms | / ONNX Runtime |")
    print("|---|---|---|---|---|")
    for name in names:
        cells = [name]
        for mine, theirs in zip(split[name], base):
            cells += [f"{mine * 1e3:.1f}" if mine else "-", f"{mine / theirs:.2f}" if mine and theirs else "-"]
        print("| " + " | ".join(cells) + " |")
