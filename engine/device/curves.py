"""Latency against device memory under the paging model: layer by layer against searched configurations.

At each device memory the search runs for a ladder of activation budgets, from what is left once the
runtime baseline and the weights are taken down to the smallest feasible peak; its picks are replayed
through the paging model and the one of least modelled latency is kept. Compute seconds are the cost
model's, so a whole curve takes no inference run.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.device.paging import Device, simulate
from engine.ir.plan import Group, Plan
from engine.lower.program import build_program
from engine.memory.planner import plan_layout
from engine.tune.search import DEFAULT_GRIDS, Evaluator, search, smallest_feasible_peak


@dataclass(frozen=True)
class Modelled:
    groups: tuple[Group, ...]
    compute_seconds: float   # the cost model's prediction on this machine
    paging_seconds: float    # the paging model's, on the device
    swap_ins: int

    @property
    def seconds(self) -> float:
        return self.compute_seconds + self.paging_seconds

    @property
    def spec(self) -> str:
        return ",".join(map(str, self.groups)) or "layer by layer"


@dataclass(frozen=True)
class CurvePoint:
    memory_bytes: int
    layer_by_layer: Modelled
    searched: Modelled

    @property
    def speedup(self) -> float:
        return self.layer_by_layer.seconds / self.searched.seconds


class DeviceModel:
    """Modelled latency of configurations on one device; programs and layouts are cached."""

    def __init__(self, evaluator: Evaluator, device: Device, runtime_bytes: int):
        self.evaluator, self.device, self.runtime_bytes = evaluator, device, runtime_bytes
        self._built: dict[tuple[Group, ...], tuple] = {}

    def modelled(self, groups: tuple[Group, ...], memory_bytes: int) -> Modelled:
        if groups not in self._built:
            predictor = self.evaluator.predictor
            program = build_program(Plan(predictor.network, groups), predictor.scratch_bytes, predictor.lowering)
            self._built[groups] = (program, plan_layout(program.buffers))
        paging = simulate(*self._built[groups], self.device, memory_bytes, self.runtime_bytes)
        return Modelled(groups, self.evaluator.predicted_seconds(groups), paging.seconds, paging.swap_ins)

    def best_searched(self, memory_bytes: int, grids=DEFAULT_GRIDS, rungs: int = 8) -> Modelled:
        """The search's picks for a ladder of activation budgets, from what the device leaves for them down
        to the smallest feasible peak, replayed through the paging model; the least modelled latency wins.
        (The search bounds the peak, but pages follow the arena, which fragmentation makes larger.)"""
        low = smallest_feasible_peak(self.evaluator, grids)
        high = max(low, memory_bytes - self.runtime_bytes - self.evaluator.predictor.weights_bytes)
        budgets = sorted({int(low * (high / low) ** (k / (rungs - 1))) for k in range(rungs)} | {low})
        picks = {found[0].groups for b in budgets if (found := search(self.evaluator, b, grids=grids, top=1))}
        picks.add(())  # layer by layer is in the space too
        return min((self.modelled(groups, memory_bytes) for groups in picks), key=lambda m: m.seconds)

    def curve(self, memories: list[int], grids=DEFAULT_GRIDS) -> list[CurvePoint]:
        return [CurvePoint(m, self.modelled((), m), self.best_searched(m, grids)) for m in memories]


def memory_span(model: DeviceModel, points: int = 12) -> list[int]:
    """Device memories from severe (the weights do not all fit) to ample (layer by layer fits with room)."""
    fixed = model.runtime_bytes + model.evaluator.predictor.weights_bytes
    lbl_arena = model.evaluator.predictor.predict(()).arena_bytes
    low, high = fixed - model.evaluator.predictor.weights_bytes // 8, fixed + lbl_arena * 5 // 4
    return [low + (high - low) * k // (points - 1) for k in range(points)]
