"""Latency against device memory under the paging model: layer by layer against searched configurations.

At each device memory the search runs for a ladder of budgets, from what is left once the runtime
baseline (and, with resident weights, the weights) are taken down to the smallest feasible peak; its
picks are replayed through the paging model and the one of least modelled latency is kept. With streamed
weights (an evaluator with band bytes) the budgets bound the engine peak and the bands are searched too.
Compute seconds are the cost model's, so a whole curve takes no inference run.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.device.paging import Device, simulate
from engine.ir.plan import Group, Plan
from engine.lower.program import build_program
from engine.memory.planner import plan_layout
from engine.tune.search import DEFAULT_GRIDS, Evaluator, search, search_streamed, smallest_feasible_peak


@dataclass(frozen=True)
class Modelled:
    plan: Plan
    compute_seconds: float   # the cost model's prediction on this machine
    paging_seconds: float    # the paging model's, on the device
    swap_ins: int
    file_reads: int = 0      # pages of streamed weights read from storage

    @property
    def groups(self) -> tuple[Group, ...]:
        return self.plan.groups

    @property
    def seconds(self) -> float:
        return self.compute_seconds + self.paging_seconds

    @property
    def spec(self) -> str:
        spec = ",".join(map(str, self.groups)) or "layer by layer"
        return spec + (f" (streamed, bands {self.plan.band_bytes >> 10} KiB)" if self.plan.weights == "streamed" else "")


@dataclass(frozen=True)
class CurvePoint:
    memory_bytes: int
    layer_by_layer: Modelled
    searched: Modelled               # the best configuration with resident weights
    streamed: Modelled | None = None  # the best with streamed weights

    @property
    def best(self) -> Modelled:
        return min((m for m in (self.searched, self.streamed) if m is not None), key=lambda m: m.seconds)

    @property
    def speedup(self) -> float:
        return self.layer_by_layer.seconds / self.best.seconds


class DeviceModel:
    """Modelled latency of configurations on one device; programs and layouts are cached."""

    def __init__(self, evaluator: Evaluator, device: Device, runtime_bytes: int):
        """``evaluator`` searches resident weights, or streamed ones if it has band bytes."""
        self.evaluator, self.device, self.runtime_bytes = evaluator, device, runtime_bytes
        self._built: dict[Plan, tuple] = {}

    def modelled(self, plan: Plan, memory_bytes: int) -> Modelled:
        if plan not in self._built:
            predictor = self.evaluator.predictor
            program = build_program(plan, predictor.scratch_bytes, predictor.lowering)
            self._built[plan] = (program, plan_layout(program.buffers))
        paging = simulate(*self._built[plan], self.device, memory_bytes, self.runtime_bytes)
        compute = self.evaluator.predicted_seconds(plan.groups, plan.outside_group, plan.order)
        return Modelled(plan, compute, paging.seconds, paging.swap_ins, paging.file_reads)

    def best_searched(self, memory_bytes: int, grids=DEFAULT_GRIDS, rungs: int = 8) -> Modelled:
        """The search's picks for a ladder of budgets, from what the device leaves for them down to the
        smallest feasible peak, replayed through the paging model; the least modelled latency wins. (The
        search bounds the peak, but pages follow the arena, which fragmentation makes larger.)"""
        evaluator = self.evaluator
        streamed = evaluator.band_bytes is not None
        low = smallest_feasible_peak(evaluator, grids)
        held = 0 if streamed else evaluator.predictor.weights_bytes
        high = max(low, memory_bytes - self.runtime_bytes - held)
        budgets = sorted({int(low * (high / low) ** (k / (rungs - 1))) for k in range(rungs)} | {low})
        picks = set() if streamed else {evaluator.plan(())}  # layer by layer is in the resident space too
        for budget in budgets:
            if streamed:
                band, found = search_streamed(evaluator, budget, grids, top=1)
            else:
                found = search(evaluator, budget, grids=grids, top=1)
            if found:
                picks.add(evaluator.chosen(found[0]))
        return min((self.modelled(plan, memory_bytes) for plan in picks), key=lambda m: m.seconds)

    def curve(self, memories: list[int], grids=DEFAULT_GRIDS, streamed: "DeviceModel | None" = None
              ) -> list[CurvePoint]:
        """Layer by layer and the best resident configuration at each memory; with ``streamed`` (a model
        whose evaluator streams weights), the best streamed configuration too."""
        lbl = Plan(self.evaluator.network, ())
        return [CurvePoint(m, self.modelled(lbl, m), self.best_searched(m, grids),
                           streamed.best_searched(m, grids) if streamed else None) for m in memories]


def memory_span(model: DeviceModel, points: int = 12) -> list[int]:
    """Device memories from severe (room for an eighth of the weights) to ample (layer by layer fits with
    room)."""
    weights = model.evaluator.predictor.weights_bytes
    lbl_arena = model.evaluator.predictor.predict(()).arena_bytes
    low, high = model.runtime_bytes + weights // 8, model.runtime_bytes + weights + lbl_arena * 5 // 4
    return [low + (high - low) * k // (points - 1) for k in range(points)]
