"""Memory predictor: peak live bytes and arena bytes of a configuration, from the network and the
configuration alone (no arrays, no kernels).

A configuration's program is a sequence of segments: the input copy (unless the first group makes the
input region by region), fused groups (layers outside every group are 1x1 one-layer groups) and
whole-map layers. Inside a group only its own buffers (tiles, strips, workspaces) change, and its input
map dies at a known step; feature maps live from their producer's segment to their last reader's. So the
prediction composes per-group figures read from each group's
lowered program (its own peak bytes and its own arena, cached) with the maps' lifetimes, and reproduces
the executor's timeline and two-level arena layout to the byte.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.ir.order import run_order
from engine.ir.plan import Group, Plan, PlanError
from engine.lower.group import DEFAULT_SCRATCH_BYTES, Lowering
from engine.lower.program import input_tiled, map_name, segments
from engine.lower.table import (B_BYTES, B_FIRST, B_KIND, B_LAST, B_SIDE, GROUP_OWN, L_WINOGRAD, WEIGHTS_BUFFER,
                                winograd_layer)
from kernels.winograd import POSITIONS
from engine.memory.planner import align, greedy_by_size, own_layout
from engine.memory.timeline import live_bytes, split_peaks
from yolo.network import FLOAT_BYTES, INPUT, Conv, Network, nbytes


@dataclass(frozen=True)
class Prediction:
    peak_bytes: int          # peak live bytes in the arena: activations, workspaces and streamed weights
    arena_bytes: int         # the arena the planner will produce (alignment and fragmentation included)
    weights_bytes: int       # all the network's weights (as stored)
    segment_peaks: tuple[int, ...]  # per segment of the program, in order (the input copy first, if any)
    activation_peak_bytes: int = 0  # the arena's peak without its weights buffers
    resident_weights_bytes: int = 0  # weights held outside the arena (parameters and what is derived from them)
    derived_weights_bytes: int = 0   # of which derived: Winograd's transformed filters and epilogue vectors

    @property
    def engine_peak_bytes(self) -> int:
        return self.peak_bytes + self.resident_weights_bytes


def group_peak(maps_live: int, source_bytes: int, source_dies: bool, with_source: int, after_source: int) -> int:
    """Peak live bytes while a group runs: the maps live beside it (its input and output included) plus
    its own buffers; an input map that dies inside the group no longer counts after its last reader."""
    if source_dies:
        return maps_live - source_bytes + max(source_bytes + with_source, after_source)
    return maps_live + max(with_source, after_source)


def own_peaks(steps: np.ndarray, buffers: np.ndarray, source_last: int, weights: bool = True) -> tuple[int, int]:
    """A lowered group's own live bytes at most while its input map lives, and after (without its weights
    buffers if not ``weights``)."""
    own = buffers[GROUP_OWN:]
    if not weights:
        own = own[own[:, B_KIND] != WEIGHTS_BUFFER]
    before, after = split_peaks(own[:, B_BYTES], own[:, B_FIRST], own[:, B_LAST], len(steps), source_last)
    return int(before), int(after)


def conv_weights_bytes(layer: Conv) -> int:
    """float32 filters, biases and batch-norm vectors of one conv layer."""
    c = layer.in_shape[0] // layer.groups
    return (layer.filters * c * layer.size ** 2 + layer.filters * (4 if layer.batch_normalize else 1)) * FLOAT_BYTES


def weights_bytes(network: Network) -> int:
    return sum(conv_weights_bytes(layer) for layer in network.layers if isinstance(layer, Conv))


class Predictor:
    """Predictions for one network and workspace budget; per-group figures are cached across calls."""

    def __init__(self, network: Network, scratch_bytes: int = DEFAULT_SCRATCH_BYTES, lowering: Lowering | None = None):
        self.network = network
        self.scratch_bytes = scratch_bytes
        self.lowering = lowering or Lowering(network, scratch_bytes)
        self.weights_bytes = weights_bytes(network)
        self._peaks: dict[Group, tuple[int, int]] = {}
        self._own_arena: dict[Group, int] = {}
        self._map_layouts: dict[tuple, tuple[list[int], int]] = {}
        self._structures: dict[tuple, tuple] = {}

    def own_peaks(self, group: Group, weights: bool = True) -> tuple[int, int]:
        """A group's own live bytes at most while its input map lives, and after (from its lowered program),
        with or without its weights buffers."""
        key = (group, weights)
        found = self._peaks.get(key)
        if found is None:
            if group.weights == "resident" and not weights:
                return self.own_peaks(group)
            found = self._peaks[key] = own_peaks(*self.lowering.lower_transient(group), weights)
        return found

    def own_arena_bytes(self, group: Group) -> int:
        """The bytes a group's own buffers span, laid out among themselves."""
        found = self._own_arena.get(group)
        if found is None:
            own = self.lowering.lower_transient(group)[1][GROUP_OWN:]
            found = self._own_arena[group] = own_layout(own[:, B_BYTES], own[:, B_FIRST], own[:, B_LAST],
                                                        own[:, B_SIDE])[1]
        return found

    def derived_bytes(self, index: int, group: Group) -> int:
        """What the executor makes of a resident conv layer's parameters and holds beside them: its filters
        transformed for Winograd (36 floats for each 9) if it has Winograd steps under its group's workspace
        budget, and the epilogue's two vectors."""
        layer = self.network[index]
        transformed = (POSITIONS * layer.filters * layer.in_shape[0] * FLOAT_BYTES
                       if self.lowering.of(group).table[index, L_WINOGRAD] and group.bands == 1 else 0)
        return transformed + 2 * FLOAT_BYTES * layer.filters

    def predict_peak(self, groups: tuple[Group, ...] | Plan) -> int:
        return self.predict(groups, arena=False).peak_bytes

    def lean(self, plan: Plan) -> Plan:
        """``plan`` with no more fusion than its peak needs, the latest group first: each group is dropped if
        the plan's peak without it is no higher; each kept group loses its last layers, then strips (rows,
        then columns), while the peak stays no higher. Fusion beyond that only costs time (tiles read the
        weights again and multiply narrower GEMMs): yolov2's default 8-16 group left the peak at 5.08 MiB
        and ran 5% slower; yolov2-tiny's layer 8 in 4 strips took 2.96 ms against 2.44 whole, at the same
        2.52 MiB peak. A ``columns`` group keeps two columns: they are there for the threads, not the peak."""
        peak, groups = self.predict_peak(plan), plan.groups
        for i in reversed(range(len(groups))):
            fewer = replace(plan, groups=groups[:i] + groups[i + 1:])
            if self.predict_peak(fewer) <= peak:
                groups = fewer.groups
        for i in reversed(range(len(groups))):
            for field in ("last", "rows", "cols"):
                while True:
                    group = groups[i]
                    smaller = replace(group, **{field: getattr(group, field) - 1})
                    paired = group.reuse == "columns" and smaller.cols < 2
                    if smaller.last <= smaller.first or smaller.rows * smaller.cols < 2 or paired:
                        break
                    try:
                        trimmed = replace(plan, groups=groups[:i] + (smaller,) + groups[i + 1:])
                    except PlanError:
                        break
                    if self.predict_peak(trimmed) > peak:
                        break
                    groups = trimmed.groups
        return replace(plan, groups=groups)

    def widen(self, plan: Plan, workspaces) -> Plan:
        """``plan`` with each conv layer outside its groups that would run Winograd under a larger workspace
        budget of ``workspaces`` than the plan's, but not under the plan's, run alone (``i-i:1x1:none@KIB``)
        under the largest such that keeps the peak no higher. Only the budget held those layers back: bands
        of whole rows too few tiles for Winograd. yolov2-tiny's 26-wide layer 8 took 2.0 ms by the GEMM at
        1 MiB and 1.45 by Winograd at 2 MiB, its peak set by the early layers (one process); its transformed
        filters hold 4.7 MB beside its weights. Resident weights only: streamed ones are never transformed."""
        if plan.weights != "resident":
            return plan
        peak, groups = self.predict_peak(plan), plan.groups
        grouped = {i for group in groups for i in group.layers}
        larger = sorted((w for w in workspaces if w > self.scratch_bytes), reverse=True)
        for index, layer in enumerate(self.network):
            if index in grouped or winograd_layer(layer, self.scratch_bytes):
                continue
            for budget in (w for w in larger if winograd_layer(layer, w)):
                alone = Group(index, index, scratch_bytes=budget)
                trial = replace(plan, groups=tuple(sorted((*groups, alone), key=lambda group: group.first)))
                if self.predict_peak(trial) <= peak:
                    groups = trial.groups
                    break
        return replace(plan, groups=groups)

    def predict(self, groups: tuple[Group, ...] | Plan, arena: bool = True, order: str = "darknet") -> Prediction:
        """``groups`` must form a valid plan (build a Plan to validate user input first; a Plan brings its
        own order); without ``arena`` the arena bytes are left 0."""
        outside = None
        if isinstance(groups, Plan):
            order = groups.order
            groups, outside = groups.groups, (groups.outside_group if groups.weights != "resident" else None)
        segs, maps, live_maps, sources = self._structure(groups, outside, order)
        peaks, activations = [], []
        for k, seg in enumerate(segs):
            if not isinstance(seg, Group):
                peaks.append(int(live_maps[k]))
                activations.append(int(live_maps[k]))
                continue
            _, source_bytes, _, source_last = sources[k]
            for weights, out in ((True, peaks), (False, activations)):
                with_source, after_source = self.own_peaks(seg, weights)
                out.append(group_peak(int(live_maps[k]), source_bytes, source_last == k, with_source, after_source))
        convs = [(i, seg) for seg in segs if isinstance(seg, Group) and seg.weights == "resident"
                 for i in seg.layers if isinstance(self.network[i], Conv)]
        derived = sum(self.derived_bytes(i, seg) for i, seg in convs)
        resident = derived + sum(conv_weights_bytes(self.network[i]) for i, _ in convs)
        return Prediction(max(peaks), self._arena_bytes(maps, segs) if arena else 0, self.weights_bytes, tuple(peaks),
                          max(activations), resident, derived)

    def _structure(self, groups: tuple[Group, ...], outside=None, order: str = "darknet"):
        """What depends only on where groups start and end and on the run order (cached): the segments, the
        feature maps with their lifetimes in segments, the map bytes live in each segment and each group's
        input map. ``outside``: the one-layer groups of layers outside every group (default: resident, 1x1)."""
        key = (tuple((g.first, g.last) for g in groups), outside, order)
        found = self._structures.get(key)
        if found is not None:
            shape_segs, maps, live_maps, sources = found
            by_span = {(g.first, g.last): g for g in groups}
            segs = [by_span.get((s.first, s.last), s) if isinstance(s, Group) else s for s in shape_segs]
            return segs, maps, live_maps, sources
        network = self.network
        segs = segments(network, groups, outside, order)
        segs = segs if input_tiled(network) else [INPUT] + segs
        layers_of = [(s, s) if isinstance(s, int) else (s.first, s.last) for s in segs]
        seg_of_layer = {}
        for k, (a, b) in enumerate(layers_of):
            for i in range(a, b + 1):
                seg_of_layer[i] = k
        last_reader = run_order(network, order).last_reader
        # feature maps: one per segment, live from their producer's segment to their last reader's
        maps = []
        for k, (_, b) in enumerate(layers_of):
            shape = network.input_shape if b == INPUT else network[b].out_shape
            last = seg_of_layer.get(last_reader[b], len(segs) - 1)  # the result stays live to the end
            maps.append((map_name(b), nbytes(shape), k, max(k, last)))
        for head in network.in_place_heads:  # its output is its input's buffer, which then lives as long
            k, src = seg_of_layer[head], seg_of_layer.get(network[head].inputs[0], 0)
            maps[src] = maps[src][:3] + (max(maps[src][3], maps[k][3]),)
            maps[k] = (maps[k][0], 0) + maps[k][2:]
        sizes, first, last = (np.array([m[f] for m in maps], np.int64) for f in (1, 2, 3))
        live_maps = live_bytes(sizes, first, last, len(segs))
        sources = {k: maps[seg_of_layer.get(network[seg.first].inputs[0], 0)] if seg.first
                   else ("input", 0, k, k)  # made region by region: the group's own buffers hold it
                   for k, seg in enumerate(segs) if isinstance(seg, Group)}
        self._structures[key] = (segs, maps, live_maps, sources)
        return segs, maps, live_maps, sources

    def _arena_bytes(self, maps, segs) -> int:
        key = tuple(maps)
        layout = self._map_layouts.get(key)
        if layout is None:
            sizes, first, last = (np.array([m[f] for m in maps], np.int64) for f in (1, 2, 3))
            offsets, size = greedy_by_size(sizes, first, last)
            # where each segment's own buffers start: above the highest map live during it
            ends = offsets + sizes
            bases = [align(int(ends[(first <= k) & (k <= last)].max())) for k in range(len(maps))]
            layout = self._map_layouts[key] = (bases, size)
        bases, size = layout
        for k, seg in enumerate(segs):
            own = self.own_arena_bytes(seg) if isinstance(seg, Group) else 0
            if own:
                size = max(size, bases[k] + own)
        return align(size)
