"""The schedule: every step the fused executor performs and every buffer it needs, with exact lifetimes.

This is the one description of memory. The arena planner places its buffers, the predictor sums them,
and the executor walks its steps (allocating and freeing in the arena as it goes). Layers outside every
group run as one-tile groups of a single layer, so all activations of the network live in the arena.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from engine.network import FLOAT_BYTES, INPUT, Conv, MaxPool, Network, Region, Reorg, Route
from engine.plan import Group, Plan, PlanError
from engine.reuse import group_work
from engine.tiling import Region as Box, input_span
from kernels.conv import Workspace, conv_workspace

DEFAULT_SCRATCH_BYTES = 1 << 20  # per conv step: im2col band + GEMM result


@dataclass(frozen=True)
class BufferSpec:
    name: str
    shape: tuple[int, ...]  # float32 elements
    first_step: int
    last_step: int
    kind: str  # "input", "map", "tile", "strip" or "scratch"
    segment: int = -1  # the group whose own buffer this is (index into Schedule.groups); -1 for maps

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * FLOAT_BYTES


@dataclass(frozen=True)
class Operand:
    buffer: str
    region: Box | None = None  # in the buffer's own coordinates; None = the whole buffer


@dataclass(frozen=True)
class Step:
    index: int
    kind: str                      # "input", "conv", "maxpool", "copy", "route", "reorg", "region"
    layer: int                     # INPUT for the input copy
    sources: tuple[Operand, ...]
    dest: Operand
    pad_top: int = 0
    pad_left: int = 0
    group: int | None = None       # index into Schedule.groups (None for whole-map layers)
    tile: int | None = None
    workspace: Workspace | None = None
    scratch: tuple[str, ...] = ()  # (cols, acc, part) buffer names for conv steps
    macs: int = 0


@dataclass(frozen=True)
class Schedule:
    plan: Plan
    steps: tuple[Step, ...]
    buffers: tuple[BufferSpec, ...]
    scratch_bytes: int
    groups: tuple[Group, ...] = field(default=())  # the plan's groups plus one-layer groups for the rest

    @property
    def output_buffer(self) -> str:
        return map_name(len(self.plan.network) - 1)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)


def map_name(index: int) -> str:
    return "input" if index == INPUT else f"L{index}"


class _Builder:
    """Steps and buffer lifetimes in order; ``external`` buffers (maps owned by the caller) only have
    their last touching step recorded."""

    def __init__(self, external: tuple[str, ...] = ()):
        self.specs: dict[str, list] = {}
        self.steps: list[Step] = []
        self.external_last = {name: -1 for name in external}

    @property
    def now(self) -> int:
        return len(self.steps)

    def alloc(self, name: str, shape: tuple[int, ...], kind: str) -> str:
        if name in self.specs:
            raise AssertionError(f"buffer {name} allocated twice")
        self.specs[name] = [shape, self.now, self.now, kind, -1]
        return name

    def touch(self, *names: str) -> None:
        for name in names:
            if name in self.external_last:
                self.external_last[name] = self.now
            else:
                self.specs[name][2] = self.now

    def emit(self, **fields) -> None:
        step = Step(index=self.now, **fields)
        self.touch(*(s.buffer for s in step.sources), step.dest.buffer, *step.scratch)
        self.steps.append(step)

    def buffers(self) -> tuple[BufferSpec, ...]:
        return tuple(BufferSpec(name, tuple(shape), first, last, kind, segment)
                     for name, (shape, first, last, kind, segment) in self.specs.items())


@dataclass(frozen=True)
class GroupSchedule:
    """One group's steps and its own buffers (tiles, strips, workspaces), numbered from 0. It depends only
    on the group and the layers' shapes, so the predictor caches it and the schedule splices it in."""
    group: Group
    steps: tuple[Step, ...]
    buffers: tuple[BufferSpec, ...]
    source_last: int  # the last step that reads the group's input map

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)


def group_schedule(network: Network, group: Group, scratch_bytes: int = DEFAULT_SCRATCH_BYTES) -> GroupSchedule:
    source = map_name(network[group.first].inputs[0])
    b = _Builder(external=(source, map_name(group.last)))
    _emit_group(b, network, group, scratch_bytes)
    return GroupSchedule(group, tuple(b.steps), b.buffers(), b.external_last[source])


def segments(network: Network, groups: tuple[Group, ...]) -> list[Group | int]:
    """A plan in execution order: its groups (layers outside every group become 1x1 one-layer groups)
    and the indices of whole-map layers (route, reorg, region)."""
    by_first = {g.first: g for g in groups}
    out, i = [], 0
    while i < len(network):
        layer = network[i]
        if i in by_first or isinstance(layer, (Conv, MaxPool)):
            group = by_first.get(i, Group(i, i, 1, 1))
            out.append(group)
            i = group.last + 1
        elif isinstance(layer, (Route, Reorg, Region)):
            out.append(i)
            i += 1
        else:
            raise PlanError(f"layer {i} is a {layer.kind}: the fused executor runs conv, maxpool, route, "
                            f"reorg and region layers")
    return out


def build_schedule(plan: Plan, scratch_bytes: int = DEFAULT_SCRATCH_BYTES, cache: dict | None = None) -> Schedule:
    """``cache`` (group -> GroupSchedule) lets callers that build many schedules share group builds."""
    network = plan.network
    b = _Builder()
    b.alloc("input", network.input_shape, "input")
    b.emit(kind="input", layer=INPUT, sources=(), dest=Operand("input"))
    all_groups: list[Group] = []
    for seg in segments(network, plan.groups):
        if isinstance(seg, int):
            layer = network[seg]
            b.alloc(map_name(seg), layer.out_shape, "map")
            b.emit(kind=layer.kind, layer=seg, sources=tuple(Operand(map_name(s)) for s in layer.inputs),
                   dest=Operand(map_name(seg)))
            continue
        gs = cache.get(seg) if cache is not None else None
        if gs is None:
            gs = group_schedule(network, seg, scratch_bytes)
            if cache is not None:
                cache[seg] = gs
        all_groups.append(seg)
        _splice(b, gs, len(all_groups) - 1, map_name(network[seg.first].inputs[0]), map_name(seg.last),
                network[seg.last].out_shape)
    # the result's lifetime ends with the last step; the executor keeps it until the caller copies it out
    return Schedule(plan, tuple(b.steps), b.buffers(), scratch_bytes, tuple(all_groups))


def _splice(b: _Builder, gs: GroupSchedule, gi: int, source: str, out_map: str, shape: tuple[int, ...]) -> None:
    offset = b.now
    b.alloc(out_map, shape, "map")
    rename = {spec.name: f"G{gi}.{spec.name}" for spec in gs.buffers}
    moved = lambda op: replace(op, buffer=rename.get(op.buffer, op.buffer))
    for step in gs.steps:
        b.steps.append(replace(step, index=offset + step.index, group=gi, sources=tuple(map(moved, step.sources)),
                               dest=moved(step.dest), scratch=tuple(rename[n] for n in step.scratch)))
    for spec in gs.buffers:
        b.specs[rename[spec.name]] = [spec.shape, offset + spec.first_step, offset + spec.last_step, spec.kind, gi]
    b.specs[source][2] = max(b.specs[source][2], offset + gs.source_last)
    b.specs[out_map][2] = b.now - 1


def _relative(region: Box, origin: tuple[int, int]) -> Box:
    y0, y1, x0, x1 = region
    return y0 - origin[0], y1 - origin[0], x0 - origin[1], x1 - origin[1]


def _emit_group(b: _Builder, network: Network, group: Group, scratch_bytes: int) -> None:
    """Each tile through all layers of the group, in the reuse mode's order: strips copied in, own parts
    computed from the previous layer's held region, strips saved for later tiles."""
    layers = tuple(network[j] for j in group.layers)
    source = map_name(layers[0].inputs[0])
    out_map = map_name(group.last)
    strips: dict[tuple[int, int, str], str] = {}
    for work in group_work(layers, group.rows, group.cols, group.reuse):
        held_by = (source, (0, 0))  # (buffer, origin) holding the current layer's input
        for layer, lw in zip(layers, work.layers):
            if lw.held is None:
                dest = (out_map, (0, 0))
            else:
                y0, y1, x0, x1 = lw.held
                name = f"T{work.index}.L{layer.index}"
                dest = (b.alloc(name, (layer.out_shape[0], y1 - y0, x1 - x0), "tile"), (y0, x0))
            for fill in lw.fills:
                b.emit(kind="copy", layer=layer.index, sources=(Operand(strips.pop(fill.strip)),),
                       dest=Operand(dest[0], _relative(fill.region, dest[1])), tile=work.index)
            for box in lw.computes:
                _emit_compute(b, layer, box, held_by, dest, work.index, scratch_bytes)
            for save in lw.saves:
                y0, y1, x0, x1 = save.region
                name = b.alloc(f"P{work.index}.L{layer.index}.{save.strip[2]}",
                               (layer.out_shape[0], y1 - y0, x1 - x0), "strip")
                strips[save.strip] = name
                b.emit(kind="copy", layer=layer.index, sources=(Operand(dest[0], _relative(save.region, dest[1])),),
                       dest=Operand(name), tile=work.index)
            held_by = dest
    assert not strips, f"strips saved but never used: {sorted(strips)}"


def _emit_compute(b: _Builder, layer, box: Box, held_by, dest, tile: int, scratch_bytes: int) -> None:
    _, in_h, in_w = layer.in_shape
    iy0, iy1, top = input_span(layer, box[0], box[1], in_h)
    ix0, ix1, left = input_span(layer, box[2], box[3], in_w)
    src = Operand(held_by[0], _relative((iy0, iy1, ix0, ix1), held_by[1]))
    fields = dict(kind=layer.kind, layer=layer.index, sources=(src,), dest=Operand(dest[0], _relative(box, dest[1])),
                  pad_top=top, pad_left=left, tile=tile)
    if isinstance(layer, Conv):
        oh, ow = box[1] - box[0], box[3] - box[2]
        channels = layer.in_shape[0]
        ws = conv_workspace(channels, layer.size, layer.filters, oh, ow, scratch_bytes)
        scratch = tuple(b.alloc(f"S{b.now}.{part}", (n,), "scratch")
                        for part, n in (("cols", ws.cols), ("acc", ws.acc), ("part", ws.part)))
        fields.update(workspace=ws, scratch=scratch, macs=layer.filters * oh * ow * channels * layer.size ** 2)
    b.emit(**fields)
