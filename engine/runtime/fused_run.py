"""What a fused run gives back: its results, copied out of the arena after the run, and what it measured of
its memory (the arena's record and live bytes step by step) and time."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.lower.program import Program
from engine.memory.planner import Layout
from engine.runtime.arena import Event, events
from engine.runtime.reference import HeadResults


@dataclass(frozen=True, eq=False)
class FusedRun(HeadResults):
    output: np.ndarray               # copy of the last layer's output, taken after the run
    head_inputs: dict[int, np.ndarray]   # layer -> copy of its output, for each layer feeding a head
    head_outputs: dict[int, np.ndarray]  # head layer -> copy of its output
    program: Program
    layout: Layout
    record: np.ndarray               # every alloc and free the executor made: (step, buffer, signed bytes) rows
    live_bytes: tuple[int, ...]      # measured live bytes per step (streamed weights included)
    weights_live_bytes: tuple[int, ...]  # of which weights buffers
    weights_read_bytes: int          # bytes the load steps read from the weights source
    resident_weights_bytes: int      # weights held outside the arena (layers whose weights are resident)
    seconds: float
    alone: bool = False              # every share ran on the calling thread, the cores being busy (CONTENDED)

    @cached_property
    def events(self) -> tuple[Event, ...]:
        return events(self.record, self.program.buffers)

    @property
    def peak_bytes(self) -> int:
        """Peak bytes held in the arena: activations, workspaces and streamed weights."""
        return max(self.live_bytes)

    @property
    def activation_peak_bytes(self) -> int:
        return max(a - w for a, w in zip(self.live_bytes, self.weights_live_bytes))

    @property
    def engine_peak_bytes(self) -> int:
        """Everything the engine holds at its peak: the arena's live bytes and the resident weights."""
        return self.peak_bytes + self.resident_weights_bytes

    @property
    def weights_resident_peak_bytes(self) -> int:
        return max(self.weights_live_bytes) + self.resident_weights_bytes

    @property
    def arena_bytes(self) -> int:
        return self.layout.size

    @property
    def macs(self) -> int:
        return self.program.macs
