"""A group's lowered program, and the lowering of any group of one network (geometry cached per axis)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ir.fusion import fusion
from engine.ir.plan import REUSE_MODES, WEIGHT_MODES, Group
from engine.lower.geometry import axis_geometry
from engine.lower.table import (BUFFER_COLUMNS, BUFFER_KINDS, B_KIND, GROUP_OUTPUT, GROUP_SOURCE, L_WINOGRAD,
                                STEP_COLUMNS, STEP_KINDS, S_DST, S_KIND, S_LAYER, S_MACS, S_SRC, S_TILE, layer_table,
                                winograd_layer)
from engine.lower.walk import capacity, lower_group
from yolo.network import Network

DEFAULT_SCRATCH_BYTES = 1 << 20  # per conv step: im2col band + GEMM result


@dataclass(frozen=True, eq=False)
class GroupProgram:
    """One group's steps and its buffers, numbered locally (0: its input map, 1: its output map, owned by the
    plan; 2..: its own). It depends only on the group and the layers' shapes, so it is cached and spliced."""
    group: Group
    steps: np.ndarray    # (steps, STEP_COLUMNS) int64
    buffers: np.ndarray  # (buffers, BUFFER_COLUMNS) int64; rows 0 and 1 unused (the plan's maps)
    source_last: int     # the last step reading the group's input map

    @property
    def macs(self) -> int:
        return int(self.steps[:, S_MACS].sum())

    def describe(self, limit: int = 40) -> str:
        """A readable listing of the first ``limit`` steps (for notebooks and debugging)."""
        names = {GROUP_SOURCE: "input", GROUP_OUTPUT: "output"}
        name = lambda b: names.get(b, f"{BUFFER_KINDS[self.buffers[b, B_KIND]]}{b}")
        return "\n".join([f"group {self.group}: {len(self.steps)} steps, {len(self.buffers) - 2} own buffers, "
                          f"{self.macs / 1e6:.1f} MMAC"] + step_lines(self.steps, name, limit))

    def __repr__(self) -> str:
        return f"GroupProgram({self.group}, steps={len(self.steps)}, buffers={len(self.buffers) - 2})"


def step_lines(steps: np.ndarray, name, limit: int) -> list[str]:
    """One line per step: index, tile, layer, kind, source buffer and box -> destination buffer and box."""
    lines = []
    for s, row in enumerate(steps[:limit].tolist()):
        src = name(row[S_SRC]) if row[S_SRC] >= 0 else "image"
        lines.append(f"{s:>5} tile {row[S_TILE]:>3} L{row[S_LAYER]:<3} {STEP_KINDS[row[S_KIND]]:<7} "
                     f"{src}{tuple(row[S_SRC + 1:S_SRC + 5])} -> {name(row[S_DST])}{tuple(row[S_DST + 1:S_DST + 5])}")
    if len(steps) > limit:
        lines.append(f"... {len(steps) - limit} more")
    return lines


class Lowering:
    """Lowers any group of one network under one workspace budget, or the group's own (``of``). Per-axis
    geometry depends only on the group's last layer and its number of parts, so it is computed once and
    shared by every group ending there; ``lower_into`` writes into caller-owned arrays so that a search can
    lower thousands of groups without keeping them."""

    def __init__(self, network: Network, scratch_bytes: int = DEFAULT_SCRATCH_BYTES):
        self.network, self.scratch_bytes = network, scratch_bytes
        self.table = layer_table(network)
        self.table[:, L_WINOGRAD] = [winograd_layer(layer, scratch_bytes) for layer in network.layers]
        self.fusion = fusion(network)
        self._geometry: dict[tuple[int, int, int], tuple] = {}
        self._grids: dict[tuple[int, int, int], tuple] = {}
        self._programs: dict[Group, GroupProgram] = {}
        self._work = (np.empty((0, STEP_COLUMNS), np.int64), np.empty((0, BUFFER_COLUMNS), np.int64))
        self._budgets: dict[int, Lowering] = {scratch_bytes: self}

    def of(self, group: Group) -> Lowering:
        """The lowering under the group's own workspace budget, if it names one, else this one."""
        budget = group.scratch_bytes or self.scratch_bytes
        found = self._budgets.get(budget)
        if found is None:
            found = self._budgets[budget] = Lowering(self.network, budget)
        return found

    def geometry(self, last: int, parts: int, axis: int):
        key = (last, parts, axis)
        found = self._geometry.get(key)
        if found is None:
            first = self.fusion.chain_start(last)
            found = self._geometry[key] = (first, self.table[first:last + 1]) + axis_geometry(
                self.table[first:last + 1], parts, axis, first)
        return found

    def walk_arguments(self, group: Group) -> tuple:
        """The arguments of ``lower_group`` for this group, but the output arrays."""
        own = self.of(group)
        if own is not self:
            return own.walk_arguments(group)
        key = (group.last, group.rows, group.cols)
        grid = self._grids.get(key)
        if grid is None:
            first, chain, ny, by, sy = self.geometry(group.last, group.rows, 0)
            _, _, nx, bx, sx = self.geometry(group.last, group.cols, 1)
            grid = self._grids[key] = (first, (chain, ny, nx, by, sy, bx, sx))
        first, geometry = grid
        return (REUSE_MODES.index(group.reuse), WEIGHT_MODES.index(group.weights), group.bands, group.rows, group.cols,
                group.first - first, group.first, *geometry, self.scratch_bytes, group.first == 0,
                self.network[group.first].inputs[0])

    def lower_into(self, group: Group, steps: np.ndarray, buffers: np.ndarray) -> tuple[int, int, int]:
        """(steps, buffers, last step reading the input map) written into ``steps`` and ``buffers``."""
        return lower_group(*self.walk_arguments(group), steps, buffers)

    def work_for(self, group: Group) -> tuple[np.ndarray, np.ndarray]:
        """Arrays large enough to lower ``group`` into, reused from call to call."""
        n_steps, n_buffers = capacity(group.rows * group.cols, group.last - group.first + 1, group.bands)
        steps, buffers = self._work
        if len(steps) < n_steps or len(buffers) < n_buffers:
            steps, buffers = self._work = (np.empty((n_steps, STEP_COLUMNS), np.int64),
                                           np.empty((n_buffers, BUFFER_COLUMNS), np.int64))
        return steps, buffers

    def lower_transient(self, group: Group) -> tuple[np.ndarray, np.ndarray, int]:
        """(steps, buffers, last step reading the input map) in arrays reused by the next call: for callers
        that read a group's program once and keep only figures of it."""
        steps, buffers = self.work_for(group)
        used_steps, used_buffers, source_last = self.lower_into(group, steps, buffers)
        return steps[:used_steps], buffers[:used_buffers], int(source_last)

    def lower(self, group: Group) -> GroupProgram:
        found = self._programs.get(group)
        if found is None:
            steps, buffers, source_last = self.lower_transient(group)
            found = self._programs[group] = GroupProgram(group, steps.copy(), buffers.copy(), source_last)
        return found
