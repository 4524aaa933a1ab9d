"""Fused executor: walks a schedule with the Numba kernels, taking every activation byte from the arena.

It is the only code that allocates activation memory on the tiled path. Weights are prepared once
before the run (reshaped views and per-channel epilogue vectors) and are not activations.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.arena import Arena, Event, Layout, plan_layout
from engine.network import Conv, Network
from engine.params import Params
from engine.plan import Plan, PlanError
from engine.schedule import DEFAULT_SCRATCH_BYTES, Operand, Schedule, Step, build_schedule
from kernels import layout as layout_kernels
from kernels.conv import ACT_CODES, conv_tile
from kernels.pool import maxpool_tile


@dataclass(frozen=True)
class ConvWeights:
    w2d: np.ndarray   # (N, C/g*k*k) view of the filters
    epilogue: tuple[np.ndarray, np.ndarray]  # per-channel multiplier and offset (BN and bias folded)
    act: int


def prepare_weights(network: Network, params: Params) -> dict[int, ConvWeights]:
    prepared = {}
    for layer in network.layers:
        if not isinstance(layer, Conv):
            continue
        if layer.groups != 1:
            raise PlanError(f"layer {layer.index}: groups={layer.groups}: the fused executor runs only ungrouped "
                            f"convolutions; use --reference")
        p = params[layer.index]
        prepared[layer.index] = ConvWeights(np.ascontiguousarray(p.weights.reshape(layer.filters, -1)),
                                            p.epilogue(), ACT_CODES[layer.activation])
    return prepared


@dataclass(frozen=True, eq=False)
class FusedRun:
    output: np.ndarray               # copy of the last layer's output, taken after the run
    head: np.ndarray                 # copy of the tensor feeding [region]
    schedule: Schedule
    layout: Layout
    events: tuple[Event, ...]        # every alloc and free the executor made
    live_bytes: tuple[int, ...]      # measured live bytes per step
    seconds: float

    @property
    def peak_bytes(self) -> int:
        return max(self.live_bytes)

    @property
    def arena_bytes(self) -> int:
        return self.layout.size

    @property
    def macs(self) -> int:
        return self.schedule.macs


def view(arena: Arena, operand: Operand) -> np.ndarray:
    array = arena[operand.buffer]
    if operand.region is None:
        return array
    y0, y1, x0, x1 = operand.region
    return array[:, y0:y1, x0:x1]


class FusedExecutor:
    """Prepared once for a plan and weights; ``run`` may be called many times."""

    def __init__(self, plan: Plan, params: Params, scratch_bytes: int = DEFAULT_SCRATCH_BYTES):
        self.plan = plan
        self.network = plan.network
        self.weights = prepare_weights(self.network, params)
        self.schedule = build_schedule(plan, scratch_bytes)
        self.layout = plan_layout(self.schedule.buffers)
        n = len(self.schedule.steps)
        self.allocs = [[] for _ in range(n)]
        self.frees = [[] for _ in range(n)]
        for spec in self.schedule.buffers:
            self.allocs[spec.first_step].append(spec)
            self.frees[spec.last_step].append(spec.name)
        self._arena: Arena | None = None

    def new_arena(self) -> Arena:
        return Arena(self.layout, self.schedule.buffers, len(self.schedule.steps))

    def arena(self) -> Arena:
        """The executor's own arena, made on first use and reset for every later run: like any engine
        that serves repeated inferences, it does not map fresh memory each time."""
        if self._arena is None:
            self._arena = self.new_arena()
        else:
            self._arena.reset()
        return self._arena

    def run(self, image: np.ndarray, arena: Arena | None = None) -> FusedRun:
        if image.shape != self.network.input_shape:
            raise ValueError(f"input shape {image.shape} != network input {self.network.input_shape}")
        arena = arena or self.arena()
        start = time.perf_counter()
        self.execute(arena, image)
        seconds = time.perf_counter() - start
        # results are copied out after the measured run, then the last buffers are released
        output = arena[self.schedule.output_buffer].copy()
        head_name = f"L{self.network.head_index}"
        head = output if head_name == self.schedule.output_buffer else arena[head_name].copy()
        for name in self.frees[-1]:
            arena.free(name)
        return FusedRun(output, head, self.schedule, self.layout, arena.events,
                        tuple(int(v) for v in arena.timeline), seconds)

    def execute(self, arena: Arena, image: np.ndarray, step_seconds: np.ndarray | None = None) -> None:
        """The measured part: every step's allocations, kernel call and frees (the last step's buffers,
        which hold the result and the tensor feeding [region], stay live for the caller).
        ``step_seconds``, if given, receives each step's duration (for calibrating the cost model)."""
        last = len(self.schedule.steps) - 1
        clock = time.perf_counter
        for step in self.schedule.steps:
            start = clock() if step_seconds is not None else 0.0
            arena.begin(step.index)
            for spec in self.allocs[step.index]:
                arena.alloc(spec)
            self._run_step(arena, step, image)
            if step.index != last:
                for name in self.frees[step.index]:
                    arena.free(name)
            if step_seconds is not None:
                step_seconds[step.index] = clock() - start

    def _run_step(self, arena: Arena, step: Step, image: np.ndarray) -> None:
        dest = view(arena, step.dest)
        if step.kind == "conv":
            w = self.weights[step.layer]
            layer = self.network[step.layer]
            cols, acc, part = (arena[name] for name in step.scratch)
            conv_tile(dest, view(arena, step.sources[0]), step.pad_top, step.pad_left, w.w2d, w.epilogue, w.act,
                      layer.size, layer.stride, step.workspace, cols, acc, part)
        elif step.kind == "maxpool":
            layer = self.network[step.layer]
            maxpool_tile(dest, view(arena, step.sources[0]), layer.size, layer.stride, step.pad_top, step.pad_left)
        elif step.kind == "copy":
            layout_kernels.copy_channels(dest, view(arena, step.sources[0]), 0)
        elif step.kind == "input":
            dest[...] = image
        elif step.kind == "route":
            c0 = 0
            for src in step.sources:
                x = view(arena, src)
                layout_kernels.copy_channels(dest, x, c0)
                c0 += x.shape[0]
        elif step.kind == "reorg":
            x = view(arena, step.sources[0])
            c, h, w = x.shape
            layout_kernels.reorg(dest.reshape(-1), x.reshape(-1), c, h, w, self.network[step.layer].stride)
        elif step.kind == "region":
            layer = self.network[step.layer]
            layout_kernels.region(dest, view(arena, step.sources[0]), layer.num, layer.coords, layer.classes,
                                  layer.softmax)
        else:
            raise AssertionError(step.kind)


def run_fused(plan: Plan, params: Params, image: np.ndarray, scratch_bytes: int = DEFAULT_SCRATCH_BYTES) -> FusedRun:
    return FusedExecutor(plan, params, scratch_bytes).run(image)
