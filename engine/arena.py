"""Arena: one pre-allocated byte buffer, buffers as float32 views at planned offsets, every alloc/free recorded.

Offsets come from a greedy-by-size planner over the buffers' lifetimes (as TFLite Micro's): the largest
buffer first, each at the lowest aligned offset that overlaps no buffer live at the same time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.schedule import BufferSpec

ALIGN = 64  # bytes: a cache line, and enough for any SIMD load


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def overlaps_in_time(a: BufferSpec, b: BufferSpec) -> bool:
    return a.first_step <= b.last_step and b.first_step <= a.last_step


@dataclass(frozen=True)
class Layout:
    offsets: dict[str, int]
    size: int  # arena bytes, alignment and fragmentation included


def greedy_by_size(buffers) -> tuple[dict[str, int], int]:
    """Offsets (largest buffer first, each at the lowest aligned offset free for its whole lifetime) and
    the bytes spanned. Ties are broken by first use, then name, so the layout is deterministic."""
    order = sorted(buffers, key=lambda s: (-s.nbytes, s.first_step, s.name))
    placed: list[tuple[int, int, BufferSpec]] = []  # (offset, end, spec)
    offsets, size = {}, 0
    for spec in order:
        busy = sorted((o, e) for o, e, other in placed if overlaps_in_time(spec, other))
        offset = 0
        for o, e in busy:
            if offset + spec.nbytes <= o:
                break
            offset = max(offset, align(e))
        offsets[spec.name] = offset
        placed.append((offset, offset + spec.nbytes, spec))
        size = max(size, offset + spec.nbytes)
    return offsets, size


def plan_layout(buffers: tuple[BufferSpec, ...]) -> Layout:
    """Two levels, so that the predictor can reproduce the layout from cached per-group layouts: feature
    maps (and the input) are placed greedy by size among themselves; each group's own buffers (tiles,
    strips, workspaces) are placed greedy by size among themselves, above the highest map live while the
    group runs."""
    maps = [b for b in buffers if b.segment < 0]
    offsets, size = greedy_by_size(maps)
    own: dict[int, list[BufferSpec]] = {}
    for b in buffers:
        if b.segment >= 0:
            own.setdefault(b.segment, []).append(b)
    for group_buffers in own.values():
        first = min(b.first_step for b in group_buffers)
        last = max(b.last_step for b in group_buffers)
        base = align(max((offsets[m.name] + m.nbytes for m in maps
                          if m.first_step <= last and first <= m.last_step), default=0))
        local, local_size = greedy_by_size(group_buffers)
        offsets.update({name: base + offset for name, offset in local.items()})
        size = max(size, base + local_size)
    return Layout(offsets, align(size))


def live_bytes_timeline(buffers: tuple[BufferSpec, ...], steps: int) -> np.ndarray:
    """Bytes live during each step, from lifetimes alone (what the predictor computes)."""
    delta = np.zeros(steps + 1, np.int64)
    for s in buffers:
        delta[s.first_step] += s.nbytes
        delta[s.last_step + 1] -= s.nbytes
    return np.cumsum(delta[:-1])


@dataclass(frozen=True)
class Event:
    step: int
    name: str
    kind: str
    nbytes: int  # positive for alloc, negative for free


class Arena:
    """Hands out views of one buffer and records what is really allocated and freed, step by step.

    The record lives in arrays sized before the run, so bookkeeping allocates nothing while it runs.
    """

    def __init__(self, layout: Layout, buffers: tuple[BufferSpec, ...], steps: int):
        self.layout = layout
        self._raw = np.empty(layout.size + ALIGN, np.uint8)
        start = (-self._raw.ctypes.data) % ALIGN
        self.memory = self._raw[start:start + layout.size]
        self.specs = buffers
        self.ids = {spec.name: i for i, spec in enumerate(buffers)}
        self.live: dict[str, np.ndarray] = dict.fromkeys(self.ids)  # pre-sized: no dict growth mid-run
        self._record = np.zeros((2 * len(buffers), 3), np.int64)    # step, buffer id, signed bytes
        self._count = 0
        self.timeline = np.zeros(steps, np.int64)                   # peak live bytes within each step
        self.step = 0
        self._live_bytes = 0

    def reset(self) -> None:
        """Ready for another run in the same memory (whose pages are then already mapped)."""
        self.live = dict.fromkeys(self.ids)
        self._count = 0
        self.timeline[:] = 0
        self.step = 0
        self._live_bytes = 0

    def begin(self, step: int) -> None:
        self.step = step
        self.timeline[step] = self._live_bytes

    def _log(self, spec_id: int, nbytes: int) -> None:
        self._record[self._count] = (self.step, spec_id, nbytes)
        self._count += 1

    def alloc(self, spec: BufferSpec) -> np.ndarray:
        if self.live[spec.name] is not None:
            raise RuntimeError(f"arena: {spec.name} is already live")
        offset = self.layout.offsets[spec.name]
        view = self.memory[offset:offset + spec.nbytes].view(np.float32).reshape(spec.shape)
        self.live[spec.name] = view
        self._log(self.ids[spec.name], spec.nbytes)
        self._live_bytes += spec.nbytes
        if self._live_bytes > self.timeline[self.step]:
            self.timeline[self.step] = self._live_bytes
        return view

    def free(self, name: str) -> None:
        spec_id = self.ids[name]
        self.live[name] = None
        self._log(spec_id, -self.specs[spec_id].nbytes)
        self._live_bytes -= self.specs[spec_id].nbytes

    def __getitem__(self, name: str) -> np.ndarray:
        return self.live[name]

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(Event(int(step), self.specs[i].name, self.specs[i].kind, int(n))
                     for step, i, n in self._record[:self._count])

    @property
    def peak_bytes(self) -> int:
        return int(self.timeline.max())
