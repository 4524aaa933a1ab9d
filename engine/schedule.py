"""The schedule: every step the fused executor performs and every buffer it needs, with exact lifetimes.

This is the one description of memory. The arena planner places its buffers, the predictor sums them,
and the executor walks its steps (allocating and freeing in the arena as it goes). Layers outside every
group run as one-tile groups of a single layer, so all activations of the network live in the arena.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.network import FLOAT_BYTES, INPUT, Conv, MaxPool, Network, Region, Reorg, Route
from engine.plan import Group, Plan, PlanError
from engine.tiling import Region as Box, tile_chain
from kernels.conv import Workspace, conv_workspace

DEFAULT_SCRATCH_BYTES = 1 << 20  # per conv step: im2col band + GEMM result


@dataclass(frozen=True)
class BufferSpec:
    name: str
    shape: tuple[int, ...]  # float32 elements
    first_step: int
    last_step: int
    kind: str  # "input", "map", "tile" or "scratch"

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
    kind: str                      # "input", "conv", "maxpool", "route", "reorg", "region"
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
    def __init__(self):
        self.specs: dict[str, list] = {}
        self.steps: list[Step] = []

    @property
    def now(self) -> int:
        return len(self.steps)

    def alloc(self, name: str, shape: tuple[int, ...], kind: str) -> str:
        if name in self.specs:
            raise AssertionError(f"buffer {name} allocated twice")
        self.specs[name] = [shape, self.now, self.now, kind]
        return name

    def touch(self, *names: str) -> None:
        for name in names:
            self.specs[name][2] = self.now

    def emit(self, **fields) -> None:
        step = Step(index=self.now, **fields)
        self.touch(*(s.buffer for s in step.sources), step.dest.buffer, *step.scratch)
        self.steps.append(step)


def build_schedule(plan: Plan, scratch_bytes: int = DEFAULT_SCRATCH_BYTES) -> Schedule:
    network = plan.network
    b = _Builder()
    b.alloc("input", network.input_shape, "input")
    b.emit(kind="input", layer=INPUT, sources=(), dest=Operand("input"))
    groups = list(plan.groups)
    all_groups: list[Group] = []
    i = 0
    while i < len(network):
        layer = network[i]
        group = next((g for g in groups if g.first == i), None)
        if group is None and isinstance(layer, (Conv, MaxPool)):
            group = Group(i, i, 1, 1)
        if group is not None:
            all_groups.append(group)
            _emit_group(b, network, group, len(all_groups) - 1, scratch_bytes)
            i = group.last + 1
            continue
        if isinstance(layer, (Route, Reorg, Region)):
            b.alloc(map_name(i), layer.out_shape, "map")
            b.emit(kind=layer.kind, layer=i, sources=tuple(Operand(map_name(s)) for s in layer.inputs),
                   dest=Operand(map_name(i)))
        else:
            raise PlanError(f"layer {i} is a {layer.kind}: the fused executor runs conv, maxpool, route, "
                            f"reorg and region layers")
        i += 1
    # the result's lifetime ends with the last step; the executor keeps it until the caller copies it out
    buffers = tuple(BufferSpec(name, tuple(shape), first, last, kind)
                    for name, (shape, first, last, kind) in b.specs.items())
    return Schedule(plan, tuple(b.steps), buffers, scratch_bytes, tuple(all_groups))


def _emit_group(b: _Builder, network: Network, group: Group, gi: int, scratch_bytes: int) -> None:
    layers = tuple(network[j] for j in group.layers)
    source = map_name(layers[0].inputs[0])
    out_map = map_name(group.last)
    for t, tile in enumerate(tile_chain(layers, group.rows, group.cols)):
        if t == 0:
            b.alloc(out_map, layers[-1].out_shape, "map")
        previous = None
        for layer, ts in zip(layers, tile.steps):
            src = Operand(source, ts.inp) if previous is None else Operand(previous)
            if layer.index == group.last:
                dest = Operand(out_map, ts.out)
            else:
                dest = Operand(b.alloc(f"T{gi}.{t}.L{layer.index}", (layer.out_shape[0], *ts.out_hw), "tile"))
            fields = dict(kind=layer.kind, layer=layer.index, sources=(src,), dest=dest,
                          pad_top=ts.pad_top, pad_left=ts.pad_left, group=gi, tile=t)
            if isinstance(layer, Conv):
                oh, ow = ts.out_hw
                channels = layer.in_shape[0]
                ws = conv_workspace(channels, layer.size, layer.filters, oh, ow, scratch_bytes)
                scratch = tuple(b.alloc(f"S{b.now}.{part}", (n,), "scratch")
                                for part, n in (("cols", ws.cols), ("acc", ws.acc), ("part", ws.part)))
                fields.update(workspace=ws, scratch=scratch,
                              macs=layer.filters * oh * ow * channels * layer.size * layer.size)
            b.emit(**fields)
            previous = dest.buffer
