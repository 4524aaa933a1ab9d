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


def plan_layout(buffers: tuple[BufferSpec, ...]) -> Layout:
    """Greedy by size; ties broken by first use so the layout is deterministic."""
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
    """Hands out views of one buffer and records what is really allocated and freed, step by step."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self._raw = np.empty(layout.size + ALIGN, np.uint8)
        start = (-self._raw.ctypes.data) % ALIGN
        self.memory = self._raw[start:start + layout.size]
        self.live: dict[str, tuple[np.ndarray, BufferSpec]] = {}
        self.events: list[Event] = []
        self.step = 0
        self._live_bytes = 0
        self.timeline: list[int] = []

    def begin(self, step: int) -> None:
        self.step = step
        self.timeline.append(self._live_bytes)

    def alloc(self, spec: BufferSpec) -> np.ndarray:
        if spec.name in self.live:
            raise RuntimeError(f"arena: {spec.name} is already live")
        offset = self.layout.offsets[spec.name]
        view = self.memory[offset:offset + spec.nbytes].view(np.float32).reshape(spec.shape)
        self.live[spec.name] = (view, spec)
        self.events.append(Event(self.step, spec.name, spec.kind, spec.nbytes))
        self._live_bytes += spec.nbytes
        self.timeline[-1] = max(self.timeline[-1], self._live_bytes)
        return view

    def free(self, name: str) -> None:
        _, spec = self.live.pop(name)
        self.events.append(Event(self.step, name, spec.kind, -spec.nbytes))
        self._live_bytes -= spec.nbytes

    def __getitem__(self, name: str) -> np.ndarray:
        return self.live[name][0]

    @property
    def peak_bytes(self) -> int:
        return max(self.timeline)
