"""Arena: one pre-allocated byte buffer; buffers are float32 views at planned offsets; every alloc and
free is recorded, so the peak is measured from what the executor really held."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.lower.table import B_BYTES, BUFFER_KINDS, B_KIND, WEIGHTS_BUFFER
from engine.memory.planner import ALIGN


@dataclass(frozen=True)
class Event:
    step: int
    buffer: int
    kind: str
    nbytes: int  # positive for alloc, negative for free


def events(record: np.ndarray, buffers: np.ndarray) -> tuple[Event, ...]:
    """An arena's ``record`` as events: building them takes about 1.5 µs each (0.9 ms for yolov2-tiny in 14
    strips), so runs keep the record and build the events only when asked."""
    return tuple(Event(step, i, BUFFER_KINDS[buffers[i, B_KIND]], n) for step, i, n in record.tolist())


class Arena:
    """Hands out views of one buffer and records what is really allocated and freed, step by step.

    The views are cut once, when the arena is made; the record lives in arrays sized before the run, so
    bookkeeping allocates nothing while it runs.
    """

    def __init__(self, offsets: np.ndarray, size: int, buffers: np.ndarray, shapes: list[tuple[int, ...]],
                 steps: int):
        self.size = size
        self._raw = np.empty(size + ALIGN, np.uint8)
        start = (-self._raw.ctypes.data) % ALIGN
        self.memory = self._raw[start:start + size]
        self.views = [self.memory[o:o + int(b)].view(np.float32).reshape(shape)
                      for o, b, shape in zip(offsets.tolist(), buffers[:, B_BYTES], shapes)]
        self._bytes = buffers[:, B_BYTES].tolist()
        self._is_weights = (buffers[:, B_KIND] == WEIGHTS_BUFFER).tolist()
        self.live = np.zeros(len(buffers), np.bool_)
        self._record = np.zeros((2 * len(buffers), 3), np.int64)    # step, buffer id, signed bytes
        self._count = 0
        self.timeline = np.zeros(steps, np.int64)                   # peak live bytes within each step
        self.weights_timeline = np.zeros(steps, np.int64)           # of which weights (loaded at a step's start)
        self.step = 0
        self._live_bytes = 0
        self._live_weights = 0

    def reset(self) -> None:
        """Ready for another run in the same memory (whose pages are then already mapped)."""
        self.live[:] = False
        self._count = 0
        self.timeline[:] = 0
        self.weights_timeline[:] = 0
        self.step = 0
        self._live_bytes = 0
        self._live_weights = 0

    def begin(self, step: int) -> None:
        self.step = step
        self.timeline[step] = self._live_bytes
        self.weights_timeline[step] = self._live_weights

    def _log(self, buffer: int, nbytes: int) -> None:
        self._record[self._count] = (self.step, buffer, nbytes)
        self._count += 1

    def alloc(self, buffer: int) -> np.ndarray:
        if self.live[buffer]:
            raise RuntimeError(f"arena: buffer {buffer} is already live")
        self.live[buffer] = True
        nbytes = self._bytes[buffer]
        self._log(buffer, nbytes)
        self._live_bytes += nbytes
        if self._live_bytes > self.timeline[self.step]:
            self.timeline[self.step] = self._live_bytes
        if self._is_weights[buffer]:
            self._live_weights += nbytes
            self.weights_timeline[self.step] = self._live_weights
        return self.views[buffer]

    def free(self, buffer: int) -> None:
        self.live[buffer] = False
        self._log(buffer, -self._bytes[buffer])
        self._live_bytes -= self._bytes[buffer]
        if self._is_weights[buffer]:
            self._live_weights -= self._bytes[buffer]

    @property
    def record(self) -> np.ndarray:
        """A copy of what was allocated and freed so far, one (step, buffer, signed bytes) row each: cheap to
        take after every run, unlike ``events`` of it."""
        return self._record[:self._count].copy()

    @property
    def peak_bytes(self) -> int:
        return int(self.timeline.max())
