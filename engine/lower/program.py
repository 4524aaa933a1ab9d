"""A plan's program: every step the executor performs and every buffer it needs, as two integer tables.

The input copy (unless the first group makes the input region by region), each fused group's lowered
program (layers outside every group run as 1x1 one-layer groups) and the whole-map layers (a route is one
channel-offset copy per source; reorg; heads, which write over their input when nothing else reads it)
are spliced in order. Group buffers are renumbered into the plan's table; feature maps live from their
producing step to the last step that touches them. The executor, the arena, the paging model, the cost
model's calibration and the reports all read this one description.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ir.fusion import fusion
from engine.ir.order import run_order
from engine.ir.plan import Group, Plan, PlanError
from engine.lower.group import DEFAULT_SCRATCH_BYTES, Lowering, step_lines
from engine.lower.table import (SCRATCH_BUFFER, WEIGHTS_BUFFER, BUFFER_KINDS, B_C, B_FIRST, B_H, B_KIND, B_LAST,
                                B_SEGMENT, B_W, COPY_STEP, GROUP_OUTPUT, GROUP_OWN, GROUP_SOURCE, INPUT_BUFFER,
                                INPUT_STEP, MAP_BUFFER, REGION_STEP, REORG_STEP, STEP_COLUMNS, S_CHANNELS, S_DC0,
                                S_DST, S_DY0, S_KIND, S_LAYER, S_MACS, S_PAIRED, S_SCRATCH, S_SEGMENT, S_SRC, S_SY0,
                                S_TILE, S_WEIGHTS, S_C0, S_C1, S_SRC2, SHORTCUT_STEP, SCALE_STEP, UPSAMPLE_STEP,
                                AVGPOOL_STEP, YOLO_STEP)
from yolo.network import (FLOAT_BYTES, INPUT, AvgPool, Network, Region, Reorg, Route, ScaleChannels, Shortcut,
                          Upsample, Yolo)

WHOLE_MAP_KINDS = {Reorg: REORG_STEP, Region: REGION_STEP, Shortcut: SHORTCUT_STEP, ScaleChannels: SCALE_STEP,
                   Upsample: UPSAMPLE_STEP, AvgPool: AVGPOOL_STEP, Yolo: YOLO_STEP}


def map_name(index: int) -> str:
    return "input" if index == INPUT else f"L{index}"


def segments(network: Network, groups: tuple[Group, ...], outside=None, order: str = "darknet") -> list[Group | int]:
    """A plan in execution order (``order``, one of ORDERS): its groups (tileable layers outside every group
    become one-layer groups, ``outside(i)``, 1x1 with resident weights by default) and the indices of
    whole-map layers."""
    by_first = {g.first: g for g in groups}
    alone = fusion(network).alone
    layers = run_order(network, order).layers
    out, k = [], 0
    while k < len(layers):
        i = layers[k]
        layer = network[i]
        if i in by_first or alone[i] or (i == 0 and input_tiled(network)):
            group = by_first.get(i) or (outside(i) if outside else Group(i, i, 1, 1))
            out.append(group)
            k += group.last - group.first + 1
        elif isinstance(layer, (Route, *WHOLE_MAP_KINDS)):
            out.append(i)
            k += 1
        else:
            raise PlanError(f"layer {i} is a {layer.kind}: the fused executor runs conv, maxpool, route, reorg, "
                            f"shortcut, scale_channels, upsample, avgpool, region and yolo layers; use --reference")
    return out


def input_tiled(network: Network) -> bool:
    """Whether the first layer runs in a group (in every plan, when it can be tiled), which then makes the
    network input region by region from the picture: the whole input never exists."""
    return fusion(network).can_tile[0]


def whole_map_steps(network: Network, index: int, source_ids, dest_id: int) -> np.ndarray:
    """The steps of one whole-map layer (a route: one copy per source at its channel offset)."""
    layer = network[index]
    _, h, w = layer.out_shape
    if isinstance(layer, Route):
        rows, c0 = [], 0
        for src, sid in zip(layer.inputs, source_ids):
            lo, hi = layer.channel_range(network.shape_of(src)[0])
            row = _step_row(COPY_STEP, index, sid, (0, h, 0, w), dest_id, (0, h, 0, w), hi - lo, c0)
            if layer.groups > 1:
                row[S_C0], row[S_C1] = lo, hi
            rows.append(row)
            c0 += hi - lo
        return np.array(rows, np.int64)
    c, sh, sw = network.shape_of(layer.inputs[0])
    row = _step_row(WHOLE_MAP_KINDS[type(layer)], index, source_ids[0], (0, sh, 0, sw), dest_id, (0, h, 0, w), c)
    if len(source_ids) > 1:
        row[S_SRC2] = source_ids[1]
    return row[None]


def input_step(network: Network, dest_id: int) -> np.ndarray:
    c, h, w = network.input_shape
    return np.array([_step_row(INPUT_STEP, INPUT, -1, (0, h, 0, w), dest_id, (0, h, 0, w), c)], np.int64)


def _step_row(kind, layer, src, src_box, dst, dst_box, channels, c0=0) -> np.ndarray:
    row = np.zeros(STEP_COLUMNS, np.int64)
    row[[S_KIND, S_LAYER, S_SRC, S_DST, S_CHANNELS, S_DC0, S_TILE, S_SCRATCH, S_SEGMENT, S_WEIGHTS, S_SRC2]] = \
        kind, layer, src, dst, channels, c0, -1, -1, -1, -1, -1
    row[S_SY0:S_SY0 + 4] = src_box[0], src_box[1], src_box[2], src_box[3]
    row[S_DY0:S_DY0 + 4] = dst_box[0], dst_box[1], dst_box[2], dst_box[3]
    return row


@dataclass(frozen=True, eq=False)
class Program:
    plan: Plan
    groups: tuple[Group, ...]   # index = S_SEGMENT / B_SEGMENT: the plan's groups and one-layer groups
    steps: np.ndarray           # (steps, STEP_COLUMNS) int64
    buffers: np.ndarray         # (buffers, BUFFER_COLUMNS) int64
    maps: dict[int, int]        # Darknet layer (INPUT: the image) -> id of the buffer holding its whole map
    scratch_bytes: int

    @property
    def network(self) -> Network:
        return self.plan.network

    @property
    def output_buffer(self) -> int:
        return self.maps[len(self.network) - 1]

    @property
    def macs(self) -> int:
        return int(self.steps[:, S_MACS].sum())

    def shape(self, buffer: int) -> tuple[int, ...]:
        row = self.buffers[buffer]
        return (int(row[B_C]),) if row[B_KIND] in (SCRATCH_BUFFER, WEIGHTS_BUFFER) else \
            (int(row[B_C]), int(row[B_H]), int(row[B_W]))

    def name(self, buffer: int) -> str:
        found = next((map_name(i) for i, b in self.maps.items() if b == buffer), None)
        return found or f"G{self.buffers[buffer, B_SEGMENT]}.{BUFFER_KINDS[self.buffers[buffer, B_KIND]]}{buffer}"

    def describe(self, limit: int = 60) -> str:
        """A readable listing of the first ``limit`` steps (for notebooks and debugging)."""
        return "\n".join([f"{self.plan!r}: {len(self.steps)} steps, {len(self.buffers)} buffers, "
                          f"{self.macs / 1e9:.2f} GMAC"] + step_lines(self.steps, self.name, limit))

    def __repr__(self) -> str:
        return f"Program({self.plan!r}, steps={len(self.steps)}, buffers={len(self.buffers)})"


def build_program(plan: Plan, scratch_bytes: int = DEFAULT_SCRATCH_BYTES, lowering: Lowering | None = None) -> Program:
    """``lowering`` (whose group programs are cached) lets callers that build many programs share them."""
    network = plan.network
    lowering = lowering or Lowering(network, scratch_bytes)
    if lowering.scratch_bytes != scratch_bytes:
        raise ValueError("the lowering's workspace budget differs from the program's")
    steps, buffers, maps, groups = [], [], {}, []
    held_through = {}  # a group's last step -> maps held before it that its members read (kept to its end)
    count = [0, 0]  # steps, buffers so far

    def add_map(index: int, kind: int) -> int:
        c, h, w = network.shape_of(index)
        buffers.append(np.array([[c * h * w * FLOAT_BYTES, kind, count[0], count[0], c, h, w, -1, index, 0, 0, 0]],
                                    np.int64))
        maps[index] = count[1]
        count[1] += 1
        return maps[index]

    def add_steps(rows: np.ndarray) -> None:
        steps.append(rows)
        count[0] += len(rows)

    order = segments(network, plan.groups, plan.outside_group, plan.order)
    in_place = set(network.in_place_heads)
    if not input_tiled(network):
        add_steps(input_step(network, add_map(INPUT, INPUT_BUFFER)))
    for seg in order:
        if isinstance(seg, int):
            sources = [maps[s] for s in network[seg].inputs]
            if seg in in_place:  # the head's output takes its input's buffer
                maps[seg] = sources[0]
            add_steps(whole_map_steps(network, seg, sources, maps[seg] if seg in in_place else
                                      add_map(seg, MAP_BUFFER)))
            continue
        program = lowering.lower(seg)
        gi, offset, side_maps = len(groups), count[0], set()
        groups.append(seg)
        ids = np.arange(len(program.buffers), dtype=np.int64) - GROUP_OWN + count[1] + 1
        ids[GROUP_SOURCE] = maps.get(network[seg.first].inputs[0], -1)  # none: the input, region by region
        ids[GROUP_OUTPUT] = add_map(seg.last, MAP_BUFFER)
        rows = program.steps.copy()
        for col in (S_SRC, S_DST, S_SCRATCH, S_WEIGHTS, S_SRC2):  # buffer ids; -1 (none) stays
            named, side = rows[:, col] >= 0, rows[:, col] <= -2
            rows[named, col] = ids[rows[named, col]]
            rows[side, col] = [maps[-2 - v] for v in rows[side, col].tolist()]  # maps held before the group
            side_maps.update(rows[side, col].tolist())
        rows[:, S_SEGMENT] = gi
        own = program.buffers[GROUP_OWN:].copy()
        own[:, B_FIRST:B_LAST + 1] += offset
        own[:, B_SEGMENT] = gi
        buffers.append(own)
        count[1] += len(own)
        add_steps(rows)
        held_through[count[0] - 1] = side_maps
    steps = np.concatenate(steps)
    buffers = np.concatenate(buffers)
    # a map lives from its producer's first step to the last step that touches it
    touched = np.concatenate([steps[:, S_SRC], steps[:, S_DST], steps[:, S_SRC2]])
    at = np.concatenate([np.arange(len(steps))] * 3)
    last = np.full(len(buffers), -1, np.int64)
    np.maximum.at(last, touched[touched >= 0], at[touched >= 0])
    map_ids = np.array(sorted(set(maps.values())))
    buffers[map_ids, B_LAST] = last[map_ids]
    for end, held in held_through.items():  # as the predictor counts them: to the group's end
        for b in held:
            buffers[b, B_LAST] = max(buffers[b, B_LAST], end)
    pairs = np.flatnonzero(steps[:, S_PAIRED])  # run at once: a map either of the two touches lives across both
    buffers[np.isin(buffers[:, B_LAST], pairs), B_LAST] += 1
    results = [maps[i] for i, use in network.last_use.items() if use == len(network)]
    buffers[results, B_LAST] = len(steps) - 1  # the caller reads them after the run
    return Program(plan, tuple(groups), steps, buffers, maps, scratch_bytes)
