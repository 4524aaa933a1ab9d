"""Search: the configurations of least predicted latency whose predicted peak fits a memory budget.

The space is every way of cutting the network's fusable chains into consecutive groups (any number),
each with any grid in ``grids`` and any reuse mode; with streamed weights, also each group's weights mode
(kept for the group's run, or read per tile in 1, 2 or 4 bands of input channels), the budget then bounding
the engine peak (activations and every weight byte held), and the cost model pricing each read. A group's
peak depends only on the group and the maps live beside it, which for a chain are fixed by the network (the
group's input and output maps and the maps held for later routes), and latency is a sum over groups. So
dynamic programming over cut points returns the true optimum of the space under the model; it keeps the
``top`` best per cut point to rank alternatives.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.ir.fusion import fusion
from engine.ir.order import orders_of, run_order
from engine.ir.plan import REUSE_MODES, Group, Plan
from engine.lower.group import DEFAULT_SCRATCH_BYTES
from engine.lower.program import input_step, input_tiled, segments, whole_map_steps
from engine.lower.table import B_BYTES, B_FIRST, B_LAST, GROUP_OWN
from engine.lower.walk import lower_group
from engine.memory.predictor import Predictor, group_peak
from engine.memory.timeline import layer_by_layer_live_bytes, split_peaks
from engine.report.progress import PROGRESS
from engine.tune.costmodel import CostModel
from engine.tune.features import total_features
from engine.tune.rank import columns, handicap, rank
from yolo.network import nbytes

DEFAULT_GRIDS = tuple((r, c) for r in range(1, 9) for c in range(1, 9))
STREAMED_WEIGHTS = (("group", 1), ("tile", 1), ("tile", 2), ("tile", 4))  # (mode, bands) a streamed group may take


@dataclass(frozen=True)
class Choice:
    groups: tuple[Group, ...]   # 1x1 one-layer groups left out: they are what runs layer by layer anyway
    predicted_seconds: float
    predicted_peak_bytes: int
    order: str = "darknet"      # the run order (one of ORDERS)

    @property
    def spec(self) -> str:
        return ",".join(str(g) for g in self.groups)


class Evaluator:
    """Predicted peak and latency of single groups and whole-map layers. A group's own bytes and work
    counts are read from its lowered program, which is not kept. With ``band_bytes`` the weights are
    streamed: groups take every weights mode, and layers outside groups read theirs in bands of at most
    ``band_bytes`` (the attribute may change between searches; what depends on it is cached by it). Groups
    take each conv workspace budget of ``workspaces`` (0: the predictor's)."""

    def __init__(self, predictor: Predictor, model: CostModel, band_bytes: int | None = None,
                 workspaces: tuple[int, ...] = (0,)):
        self.predictor, self.model, self.band_bytes, self.workspaces = predictor, model, band_bytes, workspaces
        self.network = predictor.network
        self.lowering = predictor.lowering
        self._facts: dict[Group, tuple[int, int, float]] = {}
        self._coefficients = np.array(model.coefficients)
        self._options: dict[tuple, tuple] = {}
        self._held: dict[str, list[int]] = {}

    def held(self, order: str) -> list[int]:
        """[a]: the map bytes live beside a group starting at layer a: what layer by layer in ``order`` holds
        then, less a's output."""
        found = self._held.get(order)
        if found is None:
            live, at = layer_by_layer_live_bytes(self.network, order), run_order(self.network, order).position
            found = self._held[order] = [live[at[a]] - layer.out_bytes for a, layer in enumerate(self.network.layers)]
        return found

    def facts(self, group: Group) -> tuple[int, int, float]:
        """(own peak bytes while the input map lives, after it dies, predicted seconds)."""
        found = self._facts.get(group)
        if found is None:
            lowering = self.lowering
            found = self._facts[group] = _group_figures(lowering.walk_arguments(group), *lowering.work_for(group),
                                                        lowering.table, self._coefficients, self.model.threads)
        return found

    def group(self, group: Group, order: str = "darknet") -> tuple[int, float]:
        """(peak live bytes while the group runs in ``order``, predicted seconds)."""
        network = self.network
        with_source, after_source, seconds = self.facts(group)
        source = network[group.first].inputs[0]
        held = self.held(order)[group.first] + nbytes(network[group.last].out_shape)
        if group.first == 0:  # the group makes the input region by region: its own buffers hold it
            return held - nbytes(network.input_shape) + max(with_source, after_source), seconds
        peak = group_peak(held, nbytes(network.shape_of(source)), run_order(network, order).dies_by(source, group.last),
                          with_source, after_source)
        return peak, seconds

    def options(self, first: int, last: int, grids, modes, order: str = "darknet"
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[Group, ...]]]:
        """Every group over layers first..last in the space, as arrays (peaks, seconds) and the groups a
        plan names for them (none for a 1x1 one-layer group, which is what runs anyway); cached."""
        key = (first, last, tuple(grids), tuple(modes), self.band_bytes, order, self.workspaces)
        found = self._options.get(key)
        if found is None:
            _, h, w = self.network[last].out_shape
            held = self.weight_modes(first, last)
            groups = [Group(first, last, r, c, m, *weights, workspace) for r, c in grids if r <= h and c <= w
                      for m in (("none",) if (r, c) == (1, 1) else modes) for weights in held
                      for workspace in self.workspaces]
            shown = [(g,) for g in groups]
            if first == last and fusion(self.network).alone[first]:  # 1x1: as it runs outside every group
                runs_alone = [(g.rows, g.cols, g.scratch_bytes) == (1, 1, 0) for g in groups]
                groups = [g for g, alone in zip(groups, runs_alone) if not alone] + [self.outside(first)]
                shown = [(g,) for g in groups[:-1]] + [()]
            figures = [self.group(g, order) for g in groups]
            found = self._options[key] = (np.array([f[0] for f in figures], np.int64),
                                          np.array([f[1] for f in figures]), shown)
        return found

    def weight_modes(self, first: int, last: int) -> tuple[tuple[str, int], ...]:
        if self.band_bytes is None:
            return (("resident", 1),)
        fewest = min((self.network[i].in_shape[0] for i in range(first, last + 1) if self.network[i].kind == "conv"),
                     default=1)
        return tuple((mode, bands) for mode, bands in STREAMED_WEIGHTS if bands <= fewest)

    def outside(self, index: int) -> Group:
        """How a layer outside every group runs: 1x1, its weights resident or streamed in bands."""
        return self.plan(()).outside_group(index)

    def plan(self, groups: tuple[Group, ...], order: str = "darknet") -> Plan:
        """The plan that runs ``groups`` in ``order`` with this evaluator's weights."""
        if self.band_bytes is None:
            return Plan(self.network, groups, order=order)
        return Plan(self.network, groups, "streamed", self.band_bytes, order)

    def chosen(self, choice: Choice) -> Plan:
        return self.plan(choice.groups, choice.order)

    def whole_map(self, index: int, order: str = "darknet") -> tuple[int, float]:
        steps = whole_map_steps(self.network, index, [0] * len(self.network[index].inputs), 0)
        made = 0 if index in self.network.in_place_heads else self.network[index].out_bytes
        return self.held(order)[index] + made, self.model.seconds(
            total_features(steps, self.lowering.table, self.model.threads))

    def input_step(self) -> tuple[int, float]:
        """(peak, seconds) of the whole-input step that runs first unless the first layer is a group's."""
        if input_tiled(self.network):
            return 0, 0.0
        steps = input_step(self.network, 0)
        return nbytes(self.network.input_shape), self.model.seconds(
            total_features(steps, self.lowering.table, self.model.threads))

    def predicted_seconds(self, groups: tuple[Group, ...], outside=None, order: str = "darknet") -> float:
        """``outside``: how layers outside groups run (default: with this evaluator's weights)."""
        total = self.input_step()[1]
        for seg in segments(self.network, groups, outside or self.outside, order):
            total += (self.whole_map(seg, order) if isinstance(seg, int) else self.group(seg, order))[1]
        return total


@njit(cache=True)
def _group_figures(walk, steps, buffers, layers, coefficients, workers):
    """One group lowered into ``steps`` and ``buffers``, read at once: (own peak bytes while its input map
    lives, after, predicted seconds). One compiled call: the search asks this of every group in its space."""
    n_steps, n_buffers, source_last = lower_group(*walk, steps, buffers)
    own = buffers[GROUP_OWN:n_buffers]
    before, after = split_peaks(own[:, B_BYTES], own[:, B_FIRST], own[:, B_LAST], n_steps, source_last)
    return before, after, float(np.dot(total_features(steps[:n_steps], layers, workers), coefficients))


def search(evaluator: Evaluator, budget_bytes: int, grids=DEFAULT_GRIDS, modes=REUSE_MODES,
           top: int = 5, orders=None) -> list[Choice]:
    """The ``top`` feasible configurations in order of predicted latency ([] if none fits), over every run
    order in ``orders`` (default: each the network has)."""
    found = [choice for order in orders or orders_of(evaluator.network)
             for choice in _search(evaluator, budget_bytes, grids, modes, top, order)]
    return sorted(found, key=lambda c: rank(c.predicted_seconds, c.predicted_peak_bytes, c.groups))[:top]


WORKSPACES = (1 << 18, 1 << 19, 1 << 20, 1 << 21)  # 256 KiB .. 2 MiB: the conv workspace budgets searched


def search_workspaces(network, model: CostModel, budget_bytes: int, workspaces=WORKSPACES,
                      **options) -> tuple[Evaluator, list[Choice]]:
    """``search`` with each group under any conv workspace budget of ``workspaces``: the evaluator (its
    predictor's budget, for layers outside groups, is 1 MiB if searched, else the first) and the
    configurations ([] if none fits). A smaller workspace leaves room under a tight budget for larger tiles
    (yolov2 under 1/8 of its peak: at 1 MiB its 13-wide layers 23 and 24 ran in 14 tiles each, reading their
    weights 14 times; at 512 KiB whole), a larger one runs faster where the peak allows: with one budget for
    the whole plan, yolov2's early groups ran at the 512 KiB those layers need (layers 8 and 10 in 7 strips
    took 16.0 ms, against 9.2 at 1 MiB in 13). One cost model serves them all: its features count what the
    workspace changes (GEMM calls, weights read once per band, the method)."""
    base = DEFAULT_SCRATCH_BYTES if DEFAULT_SCRATCH_BYTES in workspaces else workspaces[0]
    evaluator = Evaluator(Predictor(network, base), model, workspaces=beside(base, workspaces))
    return evaluator, search(evaluator, budget_bytes, **options)


def beside(base: int, workspaces=WORKSPACES) -> tuple[int, ...]:
    """``workspaces`` as an Evaluator's groups name them beside a predictor under ``base``: that one as 0."""
    return tuple(0 if workspace == base else workspace for workspace in workspaces)


def _search(evaluator: Evaluator, budget_bytes: int, grids, modes, top: int, order: str) -> list[Choice]:
    """Dynamic programming over the positions of one run order: a group is a run of consecutive layers."""
    network = evaluator.network
    n = len(network)
    run, rule = run_order(network, order), fusion(network)
    peak0, cost0 = evaluator.input_step()
    if peak0 > budget_bytes:
        return []
    # best[k]: up to ``top`` (seconds, peak, groups) ways to run the layers at positions 0..k-1
    best: list[list[tuple[float, int, tuple[Group, ...]]]] = [[] for _ in range(n + 1)]
    best[0] = [(cost0, peak0, ())]
    for k, p in enumerate(run.layers):
        PROGRESS.step("search: layers", k, n)
        if not best[k]:
            continue
        options = []
        if rule.can_tile[p]:
            for q in rule.ends(p):
                peaks, seconds, shown = evaluator.options(p, q, grids, modes, order)
                fits = np.flatnonzero(peaks <= budget_bytes)
                across = np.array([columns(shown[i]) for i in fits], np.int64)
                ranked = seconds[fits] + np.array([handicap(shown[i]) for i in fits])
                for i in fits[np.lexsort((across, peaks[fits], ranked))[:top]]:  # as ``rank`` orders
                    options.append((k + q - p + 1, float(seconds[i]), int(peaks[i]), shown[i]))
        else:
            peak, seconds = evaluator.whole_map(p, order)
            if peak <= budget_bytes:
                options.append((k + 1, seconds, peak, ()))
        for end, seconds, peak, shown in options:
            merged = best[end] + [(c + seconds, max(pk, peak), gs + shown) for c, pk, gs in best[k]]
            best[end] = heapq.nsmallest(top, merged, key=lambda t: rank(*t))
    return [Choice(tuple(sorted(groups, key=lambda g: g.first)), seconds, peak, order)
            for seconds, peak, groups in best[n]]


def smallest_feasible_peak(evaluator: Evaluator, grids=DEFAULT_GRIDS, modes=REUSE_MODES, orders=None) -> int:
    """The least predicted peak any configuration in the space reaches (a min-max over cut points, in the
    best of ``orders``)."""
    network = evaluator.network
    n = len(network)
    rule, lows = fusion(network), []
    for order in orders or orders_of(network):
        run = run_order(network, order)
        low = [float("inf")] * (n + 1)
        low[0] = evaluator.input_step()[0]
        for k, p in enumerate(run.layers):
            if rule.can_tile[p]:
                for q in rule.ends(p):
                    end = k + q - p + 1
                    low[end] = min(low[end], max(low[k], int(evaluator.options(p, q, grids, modes, order)[0].min())))
            else:
                low[k + 1] = min(low[k + 1], max(low[k], evaluator.whole_map(p, order)[0]))
        lows.append(low[n])
    return int(min(lows))


BAND_SIZES = tuple(1 << k for k in range(18, 25))  # 256 KiB .. 16 MiB: bands of layers outside groups


def search_streamed(evaluator: Evaluator, budget_bytes: int, grids=DEFAULT_GRIDS, band_sizes=BAND_SIZES,
                    top: int = 5, modes=REUSE_MODES, orders=None) -> tuple[int, list[Choice]]:
    """The band size for layers outside groups and the ``top`` configurations under it: the size whose best
    configuration is predicted fastest (the groups' weights modes are searched with everything else)."""
    found = []
    for band in band_sizes:
        evaluator.band_bytes = band
        choices = search(evaluator, budget_bytes, grids, modes, top, orders)
        if choices:
            found.append((choices[0].predicted_seconds, band, choices))
    if not found:
        return band_sizes[-1], []
    _, band, choices = min(found, key=lambda f: (f[0], -f[1]))
    evaluator.band_bytes = band
    return band, choices
