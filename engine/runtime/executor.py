"""Fused executor: runs a lowered program with the Numba kernels, taking every activation byte from the
arena. It is the only code that allocates activation memory on the tiled path.

Each step is bound once, when the arena is made, to its kernel and the arena views it reads and writes,
so a run is a loop of calls: a step's shares, one per thread, or a pair of steps side by side (``columns``).
Weights are prepared once before the run (reshaped views and per-channel epilogue vectors) and are not
activations.
"""
from __future__ import annotations

import time
from functools import partial

import numpy as np

from engine.ir.plan import Plan, PlanError
from engine.lower.group import DEFAULT_SCRATCH_BYTES, Lowering
from engine.lower.program import build_program
from engine.lower.table import (LOAD_STEP, POOL_SPLIT, S_C0, S_C1, S_WEIGHTS, S_METHOD, DIRECT_RUN, WINOGRAD_HELD,
                                WINOGRAD_RUN, B_FIRST, B_LAST, CONV_STEP, COPY_STEP, INPUT_STEP, MAXPOOL_STEP,
                                REGION_STEP, REORG_STEP, S_BAND_COLS, S_BAND_ROWS, S_BLOCK, S_CHANNELS, S_DC0, S_DST,
                                S_DY0, S_KIND, S_LAYER, S_PAD_LEFT, S_PAD_TOP, S_SCRATCH, S_SRC, S_SY0, S_SRC2,
                                SHORTCUT_STEP, SCALE_STEP, UPSAMPLE_STEP, AVGPOOL_STEP, YOLO_STEP, S_PAIRED, S_S2X0,
                                S_POOLED, S_S2Y0)
from engine.memory.planner import plan_layout
from engine.runtime.arena import Arena
from engine.runtime.fused_run import FusedRun
from engine.runtime.workers import crew, default_threads, single_threaded_blas
from kernels import elementwise, layout as layout_kernels
from kernels.elementwise import ACT_CODES
from kernels.picture import fit_region
from kernels.pool import maxpool_tile
from engine.runtime.conv_weights import load_weights, loaded_weights, prepare_weights
from engine.runtime.conv_calls import conv_calls, direct_calls, grouped_calls, winograd_calls
from yolo.letterbox import Placement
from yolo.params import Params
from yolo.sources import ParamsSource


ONE = np.float32(1)  # the picture's values are already in [0, 1]

# Another busy process on the cores: the helpers, off their core most of the time, leave the caller to run
# most of their shares (yolov2-tiny: 32-38 of 40 split steps, against none alone), while their spinning
# takes the caller's core from it; the caller alone ran yolov2-tiny in 49.5 ms against 55.5 with them (one
# busy process beside, one process in turns). So a run whose caller ran more than CONTENDED of the helpers'
# shares (on more cores, one busy core leaves most of them to their helpers) is followed by up to ALONE_RUNS
# runs on the calling thread alone, the helpers asleep; then they are tried again, as they are for a run
# that starts IDLE_S or more after the last one ended. Helpers pinned to their cores (``workers``) claim
# their shares but run them at the pace the other process leaves them: yolov2-tiny's caller then waited for
# them 21-25 ms of a 48-54 ms run, which it ran in 48 ms on its own, and Nano's 7.9 of 16.7 (13.3 on its
# own). So a run whose caller waited for them more than WAITED of its time counts as contended too; without
# the busy process (454 runs of yolov2-tiny, 322 of Nano, layer by layer and default plan, 0.3 s apart) the
# caller waited at most 0.29 of a run (medians 0.013-0.015 and 0.042-0.048).
CONTENDED, WAITED, ALONE_RUNS, IDLE_S = 0.5, 0.4, 7, 0.05


class FusedExecutor:
    """Prepared once for a plan and weights; ``run`` may be called many times."""

    def __init__(self, plan: Plan, params: Params | None, scratch_bytes: int = DEFAULT_SCRATCH_BYTES,
                 lowering: Lowering | None = None, source=None, threads: int | None = None):
        """``source`` reads the weights that load steps bring into the arena (default: ``params``).
        ``threads``: how many threads share each conv and maxpool step (default: one per core)."""
        self.plan = plan
        self.threads = max(1, threads if threads is not None else default_threads())
        self.network = plan.network
        self.program = build_program(plan, scratch_bytes, lowering)
        steps = self.program.steps
        convs = steps[steps[:, S_KIND] == CONV_STEP]
        transformed = np.isin(convs[:, S_METHOD], (WINOGRAD_RUN, WINOGRAD_HELD))
        self.weights = prepare_weights(self.network, params, set(convs[convs[:, S_WEIGHTS] < 0, S_LAYER].tolist()),
                                       set(convs[transformed, S_LAYER].tolist()))
        # resident weights: the parameters as loaded (or transformed), and the epilogue vectors prepared from them
        self.resident_bytes = sum(w.held_bytes for w in self.weights.values())
        self.source = source if source is not None else (ParamsSource(params) if params is not None else None)
        if self.source is None and (steps[:, S_KIND] == LOAD_STEP).any():
            raise PlanError("the plan streams weights: give the parameters or a weights file to read them from")
        self.layout = plan_layout(self.program.buffers)
        n = len(self.program.steps)
        self.allocs = [[] for _ in range(n)]
        self.frees = [[] for _ in range(n)]
        for i, (first, last) in enumerate(self.program.buffers[:, [B_FIRST, B_LAST]].tolist()):
            self.allocs[first].append(i)
            self.frees[last].append(i)
        self._arena: Arena | None = None
        self._bound: list | None = None
        self._helper_shares = 0
        self.alone_runs = 0  # runs still to make on the calling thread alone (CONTENDED)
        self.ran_alone = False  # whether the last run did
        self._last_run = 0.0  # when the last run ended (perf_counter)
        self._picture = np.empty((0, 0, 0), np.float32)
        self._placement = (0, 0, 0, 0)
        # the maps feeding heads are results, made once outside the arena: each head copies its input there
        # before it runs (it may then write over it)
        self._head_inputs = {h.inputs[0]: np.empty(self.network.shape_of(h.inputs[0]), np.float32)
                             for h in self.network.heads}

    def new_arena(self) -> Arena:
        program = self.program
        return Arena(self.layout.offsets, self.layout.size, program.buffers,
                     [program.shape(i) for i in range(len(program.buffers))], len(program.steps))

    def arena(self) -> Arena:
        """The executor's own arena, made on first use and reset for every later run: like any engine that
        serves repeated inferences, it does not map fresh memory each time."""
        if self._arena is None:
            self._arena = self.new_arena()
            self._bound = self._bind_all(self._arena)
            self._helper_shares = sum(len(calls) - 1 for calls in self._bound)  # a run's shares for helpers
        else:
            self._arena.reset()
        return self._arena

    def run(self, picture: np.ndarray, placement: Placement | None = None) -> FusedRun:
        """``picture``: (C, H, W) float32, placed in the network input as ``placement`` says (letterbox or
        resize); without one it must be the network input itself."""
        c, h, w = self.network.input_shape
        if placement is None:
            if picture.shape != (c, h, w):
                raise ValueError(f"input shape {picture.shape} != network input {(c, h, w)}")
            placement = Placement(w, h)
        elif picture.ndim != 3 or picture.shape[0] != c or min(picture.shape) < 1:
            raise ValueError(f"picture shape {picture.shape}: expected ({c}, height, width)")
        arena = self.arena()
        if self.source is not None:
            self.source.check()
            self.source.read_bytes = 0
        start = time.perf_counter()
        self.execute(np.ascontiguousarray(picture, np.float32), placement)
        seconds = time.perf_counter() - start
        # results are copied out after the measured run, then the last buffers are released
        maps = self.program.maps
        output = arena.views[self.program.output_buffer].copy()
        head_outputs = {h.index: arena.views[maps[h.index]].copy() for h in self.network.heads}
        arena.leave(len(self.frees) - 1, self.frees[-1])
        head_inputs = {i: a.copy() for i, a in self._head_inputs.items()} or {len(self.network) - 1: output}
        return FusedRun(output, head_inputs, head_outputs, self.program, self.layout, arena.record,
                        tuple(arena.timeline), tuple(arena.weights_timeline),
                        self.source.read_bytes if self.source is not None else 0, self.resident_bytes, seconds,
                        self.ran_alone)

    def execute(self, picture: np.ndarray, placement: Placement, step_seconds: np.ndarray | None = None) -> None:
        """The measured part, in the arena of the last ``arena()`` call: every step's allocations, kernel
        calls and frees (the last step's buffers, which hold the result and the tensor feeding [region],
        stay live for the caller). ``step_seconds``, if given, receives each step's duration.

        With several threads, a split step's first share runs here while helpers run the others (all of them
        here for a while after a run that found the cores busy: CONTENDED), and BLAS runs single-threaded
        inside each share; a pair's first step runs here, its second on a helper (``_bind_all``); the
        step after a pair's first then has no calls, and its step time is 0."""
        self._picture = picture
        self._placement = (placement.width, placement.height, placement.left, placement.top)
        if self.threads == 1:
            return self._steps(step_seconds, None)
        if time.perf_counter() - self._last_run > IDLE_S:
            self.alone_runs = 0  # the load may have changed since
        try:
            with single_threaded_blas():
                self.ran_alone = self.alone_runs > 0
                if self.ran_alone:  # the cores are busy: every share runs here, and the helpers sleep
                    self.alone_runs -= 1
                    return self._steps(step_seconds, None)
                team = crew(self.threads)
                stolen, waited, start = team.stolen, team.waited, time.perf_counter()
                team.begin([calls[1:] for calls in self._bound])
                try:
                    self._steps(step_seconds, team)
                finally:
                    team.end()
                first = not self._last_run  # compiles and maps its pages: its helpers' pace says nothing
                if not first and (team.stolen - stolen > CONTENDED * self._helper_shares
                                  or team.waited - waited > WAITED * (time.perf_counter() - start)):
                    self.alone_runs = ALONE_RUNS
        finally:
            self._last_run = time.perf_counter()

    def _steps(self, step_seconds: np.ndarray | None, team) -> None:
        arena, last = self._arena, len(self._bound) - 1
        clock = time.perf_counter
        for i, calls in enumerate(self._bound):
            start = clock() if step_seconds is not None else 0.0
            arena.enter(i, self.allocs[i])
            if len(calls) > 1 and team is not None:
                team.hand(i)
                calls[0]()
                team.join(i)
            else:
                for call in calls:
                    call()
            if i != last:
                arena.leave(i, self.frees[i])
            if step_seconds is not None:
                step_seconds[i] = clock() - start

    def _fit(self, y0: int, x0: int, region: np.ndarray) -> None:
        """The network input's rows and columns from (y0, x0) into ``region``, from this run's picture."""
        fit_region(self._picture, ONE, *self._placement, y0, x0, region)

    def _head(self, x: np.ndarray, dest: np.ndarray, spec, kernel, *args):
        """A head's call: its input copied out as a result first, then the head ``kernel(dest, copy, *args)``,
        which reads the copy, so that its output may lie over its input."""
        kept = self._head_inputs[spec.inputs[0]]

        def head() -> None:
            np.copyto(kept, x)
            kernel(dest, kept, *args)
        return head

    def _bind_all(self, arena: Arena) -> list[tuple]:
        """Every step's calls. A pair (``S_PAIRED``) becomes the first step's: one call per step of the pair,
        each whole, on one thread; the second step's are then none."""
        steps, bound = self.program.steps, []
        while len(bound) < len(steps):
            row = steps[len(bound)]
            pair = steps[len(bound):len(bound) + 2]
            if row[S_PAIRED] and self.threads > 1:  # bound for one thread, a step is one call
                bound += [tuple(self._bind(arena, r, 1)[0] for r in pair), ()]
            else:
                bound.append(self._bind(arena, row, self.threads))
        return bound

    def _bind(self, arena: Arena, row: np.ndarray, threads: int) -> tuple:
        """The step as calls of its kernel on arena views cut once: one call, or one per thread when the
        step splits over ``threads`` (a conv by output rows, a maxpool by channels)."""
        (kind, layer, src, dst, top, left, c0, scratch, band_rows, band_cols, block, channels, held, f0, f1,
         second) = (int(v) for v in row[[S_KIND, S_LAYER, S_SRC, S_DST, S_PAD_TOP, S_PAD_LEFT, S_DC0, S_SCRATCH,
                                          S_BAND_ROWS, S_BAND_COLS, S_BLOCK, S_CHANNELS, S_WEIGHTS, S_C0, S_C1,
                                          S_SRC2]])
        y0, y1, x0, x1 = (int(v) for v in row[S_DY0:S_DY0 + 4])
        dest = arena.views[dst]
        sy0, sy1, sx0, sx1 = (int(v) for v in row[S_SY0:S_SY0 + 4])
        if kind == INPUT_STEP:  # the network input's region [sy0, sy1) x [sx0, sx1), from the picture, by rows
            parts = min(threads, y1 - y0) if dest[:, y0:y1, x0:x1].size >= POOL_SPLIT else 1
            cuts = [y0 + (y1 - y0) * p // parts for p in range(parts + 1)]
            return tuple(partial(self._fit, sy0 + a - y0, sx0, dest[:, a:b, x0:x1]) for a, b in zip(cuts, cuts[1:]))
        if kind == LOAD_STEP:
            return (partial(load_weights, dest, self.source, self.network[layer], f0, f1),)
        x = arena.views[src][:, sy0:sy1, sx0:sx1]
        if kind == CONV_STEP:  # over input channels [f0, f1) of each filter: all of them, or one band
            spec = self.network[layer]
            kk, first, last = spec.size ** 2, f0 == 0, f1 == spec.weight_shape[1]
            if held >= 0:  # the band's weights in the arena, as its load step left them
                channel_major = self.source.channel_major
                w2d, (mult, offset) = loaded_weights(arena.views[held], spec, f0, f1, channel_major)
            else:
                w, channel_major = self.weights[layer], False
                w2d, (mult, offset) = w.w2d[:, f0 * kk:f1 * kk], w.epilogue
            out, act = dest[:, y0:y1, x0:x1], ACT_CODES[spec.activation]
            cols, acc = arena.views[scratch], arena.views[scratch + 1]
            band = arena.views[scratch + 2] if row[S_POOLED] else None  # the pool folded in: its band
            if row[S_METHOD] == WINOGRAD_RUN:
                return winograd_calls(out, x, top, left, self.weights[layer].transformed, mult, offset, act, band_rows,
                                      band_cols, block, cols, acc, threads, band)
            if row[S_METHOD] == DIRECT_RUN:
                return direct_calls(spec, out, x if spec.groups > 1 else x[f0:f1], top, left,
                                    w2d.T if channel_major else w2d, mult, offset, act, first, last, threads, band)
            if spec.groups > 1:
                return grouped_calls(spec, out, x, top, left, w2d, channel_major, mult, offset, act, band_rows, block,
                                     cols, acc, threads)
            return conv_calls(spec, out, x[f0:f1], top, left, w2d, channel_major, mult, offset, act, band_rows, block,
                              first, last, cols, acc, threads, band is not None)
        if kind == MAXPOOL_STEP:
            spec = self.network[layer]
            parts = min(threads, x.shape[0]) if dest[:, y0:y1, x0:x1].size >= POOL_SPLIT else 1
            cuts = np.linspace(0, x.shape[0], parts + 1).astype(int)
            return tuple(partial(maxpool_tile, dest[c_lo:c_hi, y0:y1, x0:x1], x[c_lo:c_hi], spec.size, spec.stride,
                                 top, left) for c_lo, c_hi in zip(cuts[:-1], cuts[1:]))
        if kind == COPY_STEP:  # a route's channel split copies only channels [f0, f1) of its source
            return (partial(layout_kernels.copy_channels, dest[:, y0:y1, x0:x1], x[f0:f1] if f1 > f0 else x, c0),)
        spec, out = self.network[layer], dest[:, y0:y1, x0:x1]
        if kind == SHORTCUT_STEP:  # the second map's region starts at (s2y, s2x)
            s2y, s2x = int(row[S_S2Y0]), int(row[S_S2X0])
            added = arena.views[second][:, s2y:s2y + y1 - y0, s2x:s2x + x1 - x0]
            return (partial(elementwise.shortcut, out, x, added, ACT_CODES[spec.activation]),)
        if kind == SCALE_STEP:
            return (partial(elementwise.scale_channels, dest, x, arena.views[second], ACT_CODES[spec.activation]),)
        if kind == UPSAMPLE_STEP:  # a region starts ``top``, ``left`` into its first input pixel
            return (partial(elementwise.upsample, out, x, spec.stride, np.float32(spec.scale), top, left),)
        if kind == AVGPOOL_STEP:
            return (partial(elementwise.global_avgpool, dest, x),)
        if kind == YOLO_STEP:
            return (self._head(x, dest, spec, elementwise.yolo, spec.num, spec.classes, np.float32(spec.scale_x_y),
                               np.float32(-0.5 * (spec.scale_x_y - 1))),)
        if kind == REORG_STEP:
            return (partial(layout_kernels.reorg, dest.reshape(-1), x.reshape(-1), channels, sy1 - sy0, sx1 - sx0,
                            self.network[layer].stride),)
        if kind == REGION_STEP:
            spec = self.network[layer]
            return (self._head(x, dest, spec, layout_kernels.region, spec.num, spec.coords, spec.classes,
                               spec.softmax),)
        raise AssertionError(kind)


def run_fused(plan: Plan, params: Params, image: np.ndarray, scratch_bytes: int = DEFAULT_SCRATCH_BYTES,
              threads: int | None = None, placement: Placement | None = None) -> FusedRun:
    return FusedExecutor(plan, params, scratch_bytes, threads=threads).run(image, placement)
