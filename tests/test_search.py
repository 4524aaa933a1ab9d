"""Search: the dynamic programme returns the brute-force optimum; more budget is never slower; the CLI
searches, runs what it found, and names the smallest feasible peak when nothing fits."""
import itertools
import json

import numpy as np
import pytest

from engine.tune.costmodel import CostModel, load_or_calibrate
from engine.tune.features import FEATURES
from engine.ir.plan import Group, Plan
from engine.memory.predictor import Predictor
from engine.cli.main import main
from engine.ir.fusion import fusion
from engine.tune.rank import PLAINER_BY, rank
from engine.tune.search import WORKSPACES, Evaluator, search, search_workspaces, smallest_feasible_peak
from yolo.cfg import load_network
from tests.helpers import random_stack

GRIDS = ((1, 1), (1, 2), (2, 1), (2, 2))
MODEL = CostModel(tuple(np.linspace(1e-10, 1e-4, len(FEATURES))))  # fixed: the search, not the fit, is tested


@pytest.fixture(scope="module")
def tiny():
    network = random_stack([("conv", 3, 1, 4), ("maxpool", 2, 2), ("conv", 3, 1, 8), ("conv", 1, 1, 4),
                            ("conv", 3, 2, 8)], 16)
    return network, Evaluator(Predictor(network, 1 << 12), MODEL)


def all_configurations(network):
    """Every plan of the space, by brute force: each run of tileable layers cut into groups in every way (a
    1x1 conv or maxpool alone is what runs outside every group)."""
    rule = fusion(network)

    def from_layer(p):
        if p == len(network):
            yield ()
            return
        if not rule.can_tile[p]:
            yield from from_layer(p + 1)
            return
        for q in rule.ends(p):
            _, h, w = network[q].out_shape
            for (r, c), mode in itertools.product(GRIDS, ("none", "checkerboard", "stream")):
                if r > h or c > w or ((r, c) == (1, 1) and mode != "none"):
                    continue
                group = () if (p == q and (r, c) == (1, 1) and rule.alone[p]) else (Group(p, q, r, c, mode),)
                for rest in from_layer(q + 1):
                    yield group + rest
    return from_layer(0)


def test_search_finds_the_brute_force_optimum(tiny):
    network, evaluator = tiny
    predictor = evaluator.predictor
    configs = [(evaluator.predicted_seconds(groups), predictor.predict(groups).peak_bytes, groups)
               for groups in all_configurations(network)]
    assert len(configs) > 1000
    peaks = sorted({peak for _, peak, _ in configs})

    def ranked(seconds, peak, groups):  # predicted seconds, and PLAINER_BY for each group and budget
        return rank(seconds, peak, groups)[0]

    for budget in [peaks[0], peaks[len(peaks) // 3], peaks[len(peaks) // 2], peaks[-1]]:
        feasible = [c for c in configs if c[1] <= budget]
        found = search(evaluator, budget, grids=GRIDS)
        assert found, budget
        keys = [ranked(c.predicted_seconds, c.predicted_peak_bytes, c.groups) for c in found]
        assert keys[0] == pytest.approx(min(ranked(*c) for c in feasible), rel=1e-12)
        assert found[0].predicted_seconds == pytest.approx(evaluator.predicted_seconds(found[0].groups), rel=1e-12)
        assert found[0].predicted_peak_bytes == predictor.predict(found[0].groups).peak_bytes <= budget
        assert keys == sorted(keys)
        Plan(network, found[0].groups)  # a valid plan
    assert smallest_feasible_peak(evaluator, grids=GRIDS) == peaks[0]
    assert search(evaluator, peaks[0] - 1, grids=GRIDS) == []


def test_search_keeps_rows_whole_between_tiles_it_cannot_tell_apart():
    """With a model that counts only what tiles in rows and in columns share (multiply-accumulates, steps), a
    grid and its transpose cost and hold the same, and the search takes the one with fewer columns. (Not with
    a pool folded into a conv: its bands are rows, as wide as the tile.)"""
    network = random_stack([("conv", 3, 1, 4), ("conv", 3, 1, 8), ("conv", 1, 1, 4), ("conv", 3, 2, 8)], 16)
    counts = ("macs", "conv_steps", "other_steps")
    model = CostModel(tuple(1e-9 if f in counts else 0.0 for f in FEATURES))
    evaluator = Evaluator(Predictor(network, 1 << 12), model)
    for budget in (smallest_feasible_peak(evaluator, grids=((1, 4), (4, 1))), 1 << 30):
        found = search(evaluator, budget, grids=((1, 4), (4, 1)), modes=("none",))
        assert found and all(g.cols <= g.rows for g in found[0].groups)
        flipped = tuple(Group(g.first, g.last, g.cols, g.rows, g.reuse) for g in found[0].groups)
        assert evaluator.predicted_seconds(flipped) == found[0].predicted_seconds


def test_search_adds_no_group_that_saves_less_than_the_models_resolution():
    """With a model that prices only GEMM calls, a group whose larger workspace makes fewer of them is
    predicted faster than layer by layer. At a nanosecond a call it saves less than PLAINER_BY (a group and
    its budget), and a loose budget gets no group; at a microsecond a call the group is worth it."""
    network = random_stack([("conv", 3, 1, 8), ("conv", 3, 2, 16), ("conv", 3, 2, 16)], 32)
    predictor = Predictor(network, 1 << 12)
    wide = Group(0, 2, scratch_bytes=1 << 16)
    for price, grouped in ((1e-9, False), (1e-6, True)):
        model = CostModel(tuple(price if f == "gemm_calls" else 0.0 for f in FEATURES))
        evaluator = Evaluator(predictor, model, workspaces=(0, 1 << 16))
        plain, saved = evaluator.predicted_seconds(()), evaluator.predicted_seconds((wide,))
        assert 0 < plain - saved and (plain - saved > 2 * PLAINER_BY) == grouped
        found = search(evaluator, 1 << 30, grids=((1, 1),), modes=("none",))
        assert found[0].groups == ((wide,) if grouped else ())


TWO_HEADS = """[net]\nwidth=16\nheight=16\nchannels=3
[convolutional]\nfilters=6\nsize=3\nstride=1\npad=1\nactivation=leaky
[convolutional]\nfilters=24\nsize=1\nstride=1\npad=1\nactivation=linear
[yolo]\nmask=0,1\nanchors=2,3, 4,5\nclasses=7\nnum=2
[route]\nlayers=-3
[convolutional]\nfilters=12\nsize=3\nstride=2\npad=1\nactivation=linear
[yolo]\nmask=0,1\nanchors=2,3, 4,5\nclasses=1\nnum=2
"""


def test_search_over_run_orders_finds_the_brute_force_optimum():
    """A head's branch (1-2) may run last: the search's optimum over both orders is the brute force's, and
    what it reports for its pick is what the predictor says of the plan it makes."""
    from engine.ir.order import orders_of
    from tests.helpers import network_from_text
    network = network_from_text(TWO_HEADS)
    assert orders_of(network) == ("darknet", "heads-last")
    evaluator = Evaluator(Predictor(network, 1 << 12), MODEL)
    predictor = evaluator.predictor
    configs = [(evaluator.predicted_seconds(groups, None, order), predictor.predict(groups, False, order).peak_bytes)
               for groups in all_configurations(network) for order in orders_of(network)]
    peaks = sorted({peak for _, peak in configs})
    assert smallest_feasible_peak(evaluator, grids=GRIDS) == peaks[0]
    for budget in [peaks[0], peaks[len(peaks) // 2], peaks[-1]]:
        found = search(evaluator, budget, grids=GRIDS)
        assert found[0].predicted_seconds == pytest.approx(min(s for s, peak in configs if peak <= budget), rel=1e-12)
        for choice in found:
            assert choice.predicted_peak_bytes == predictor.predict(evaluator.chosen(choice)).peak_bytes <= budget
    lows = {order: smallest_feasible_peak(evaluator, grids=GRIDS, orders=(order,)) for order in orders_of(network)}
    assert lows["heads-last"] != lows["darknet"]  # the order matters here


def test_more_budget_is_never_slower(tiny):
    network, evaluator = tiny
    low = smallest_feasible_peak(evaluator, grids=GRIDS)
    times = [search(evaluator, budget, grids=GRIDS)[0].predicted_seconds
             for budget in np.linspace(low, 4 * low, 12).astype(int)]
    assert all(a >= b for a, b in zip(times, times[1:]))


def test_workspace_search_gives_each_group_its_workspace(tiny):
    """Each workspace budget lowers the convs differently (bands, blocks, scratch bytes); each group takes
    its own, so the search is at least as fast as under the best single budget, and what it predicts of its
    picks is what the predictor says of the plans they make, within the budget."""
    network, evaluator = tiny
    budget = 2 * smallest_feasible_peak(evaluator, grids=GRIDS)
    workspaces = (1 << 10, 1 << 12, 1 << 14)
    chosen, found = search_workspaces(network, MODEL, budget, workspaces, grids=GRIDS)
    each = {w: search(Evaluator(Predictor(network, w), MODEL), budget, grids=GRIDS) for w in workspaces}
    assert len({f[0].predicted_seconds for f in each.values() if f}) > 1  # the workspace matters here
    assert found[0].predicted_seconds <= min(f[0].predicted_seconds for f in each.values() if f) * (1 + 1e-12)
    assert chosen.predictor.scratch_bytes == workspaces[0]
    for choice in found:
        plan = chosen.chosen(choice)
        assert {g.scratch_bytes for g in plan.groups} <= {0, *workspaces[1:]}
        assert choice.predicted_peak_bytes == chosen.predictor.predict(plan).peak_bytes <= budget
        assert choice.predicted_seconds == pytest.approx(chosen.predicted_seconds(plan.groups), rel=1e-12)
    assert search_workspaces(network, MODEL, 1, workspaces, grids=GRIDS)[1] == []


def test_calibration_is_cached_per_machine_and_network(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSETILE_CACHE", str(tmp_path))
    network = load_network("yolov2-tiny.cfg", 64)
    model = load_or_calibrate(network, 1 << 16)
    assert len(model.coefficients) == len(FEATURES) and min(model.coefficients) >= 0
    assert max(model.coefficients) > 0
    files = list(tmp_path.glob("costmodel-*.json"))
    assert len(files) == 1
    assert load_or_calibrate(network, 1 << 16) == model  # read back, not refitted
    load_or_calibrate(network, 1 << 15)  # another workspace budget is another model
    assert len(list(tmp_path.glob("costmodel-*.json"))) == 2


def test_cli_budget_searches_and_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FUSETILE_CACHE", str(tmp_path))
    common = ["yolov2-tiny.cfg", "--size", "64", "--json", "--out", str(tmp_path / "p.png"), "--max-grid", "2"]
    assert main(common + ["--budget", "400KiB"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["budget_bytes"] == 400 * 1024
    assert report["memory"]["measured_peak_bytes"] == report["config"]["search"]["predicted_peak_bytes"] <= 400 * 1024
    assert report["config"]["scratch_bytes"] in WORKSPACES  # searched with the plan, unless given:
    assert report["config"]["search"]["max_grid"] == 2
    assert main(common + ["--budget", "400KiB", "--scratch-kib", "96"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["scratch_bytes"] == 96 * 1024
    assert main(common + ["--budget", "1KB", "--quiet"]) == 2  # a slow search's progress note is not the error
    err = capsys.readouterr().err.strip()
    assert "no configuration fits; the smallest feasible predicted peak is" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(common + ["--budget", "6 parsecs"])
    assert exit_info.value.code == 2 and "expected a size such as 6MB" in capsys.readouterr().err


def test_search_grids_add_strips_of_whole_rows():
    """Squares up to N x N, then strips up to 8N rows, none taller than the tallest map a group can end on."""
    from engine.cli.planning import search_grids
    yolov2 = load_network("yolov2.cfg", 416)
    grids = search_grids(yolov2, 8)
    assert set(grids) == {(r, c) for r in range(1, 9) for c in range(1, 9)} | {(r, 1) for r in range(9, 65)}
    small = load_network("yolov2-tiny.cfg", 64)  # its tallest tileable map: 64 rows
    assert max(r for r, _ in search_grids(small, 16)) == 64 and max(c for _, c in search_grids(small, 16)) == 16


def test_nonnegative_fit_is_the_constrained_least_squares_optimum():
    """Against every subset of active coefficients: no non-negative solution fits better (the old
    drop-the-most-negative loop could end worse on correlated columns)."""
    import itertools
    from engine.tune.costmodel import nonnegative_fit
    rng = np.random.default_rng(3)
    for _ in range(20):
        base = rng.standard_normal((40, 3))
        x = np.abs(np.hstack([base, base @ rng.standard_normal((3, 2)) + 0.05 * rng.standard_normal((40, 2))]))
        y = x @ rng.uniform(-1, 1, 5) + 0.1 * rng.standard_normal(40)
        coef = nonnegative_fit(x, y)
        assert (coef >= 0).all()
        # the optimum is the unconstrained fit on some subset whose coefficients are all >= 0, or zero
        best = min([np.linalg.norm(y)] + [
            np.linalg.norm(x[:, list(s)] @ np.linalg.lstsq(x[:, list(s)], y, rcond=None)[0] - y)
            for k in range(1, 6) for s in itertools.combinations(range(5), k)
            if (np.linalg.lstsq(x[:, list(s)], y, rcond=None)[0] >= 0).all()])
        assert np.linalg.norm(x @ coef - y) <= best + 1e-9


def test_streamed_search_bounds_the_engine_peak_exactly_and_prices_the_reads(tiny):
    """With streamed weights the budget bounds activations and weights together: every pick's predicted
    engine peak fits and equals the measured one; the space holds every weights mode, and a model that makes
    reads dear steers the search away from re-reading weights per tile."""
    from engine.runtime.executor import FusedExecutor
    from engine.tune.features import FEATURES
    from engine.tune.search import search_streamed
    from yolo.params import random_params
    network, resident = tiny
    predictor = resident.predictor
    params = random_params(network, 0)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    evaluator = Evaluator(predictor, MODEL, band_bytes=1 << 10)
    low = smallest_feasible_peak(evaluator, grids=GRIDS)
    assert low < smallest_feasible_peak(resident, grids=GRIDS) + predictor.weights_bytes
    modes = set()
    for budget in (low, low * 2, low * 4):
        band, found = search_streamed(evaluator, budget, GRIDS, band_sizes=(1 << 9, 1 << 10, 1 << 12), top=3)
        assert found and band in (1 << 9, 1 << 10, 1 << 12)
        for choice in found:
            plan = evaluator.chosen(choice)
            assert plan.weights == "streamed" and plan.band_bytes == band
            run = FusedExecutor(plan, params, predictor.scratch_bytes).run(x)
            assert run.engine_peak_bytes == predictor.predict(plan).engine_peak_bytes == choice.predicted_peak_bytes
            assert choice.predicted_peak_bytes <= budget
            modes |= {(g.weights, g.bands) for g in choice.groups}
    assert {"group", "tile"} <= {m for m, _ in modes}
    dear_reads = CostModel(tuple(1.0 if name in ("loaded", "loads") else c
                                 for name, c in zip(FEATURES, MODEL.coefficients)))
    pricing = Evaluator(predictor, dear_reads, 1 << 10)
    _, found = search_streamed(pricing, low * 4, GRIDS, top=1)
    run = FusedExecutor(pricing.chosen(found[0]), params, predictor.scratch_bytes).run(x)
    assert run.weights_read_bytes == predictor.weights_bytes  # each weight read once when reads are dear


def test_a_pair_on_two_threads_counts_its_work_once_each_and_its_steps_once():
    """A pair of twins that runs at once costs what both do (its work adds up) but one step's dispatch and
    one thread's GEMM calls and weights; on one thread, the two steps one after the other, everything adds."""
    from engine.lower.group import Lowering
    from engine.lower.table import S_PAIRED, layer_table
    from engine.tune.features import CONCURRENT, features_of
    network = random_stack([("conv", 3, 1, 8), ("conv", 3, 1, 8), ("maxpool", 2, 2)], 64)
    steps = Lowering(network, 1 << 14).lower(Group(0, 2, 2, 2, "columns")).steps
    first = np.flatnonzero(steps[:, S_PAIRED])
    assert len(first)
    table = layer_table(network)
    unpaired = steps.copy()
    unpaired[:, S_PAIRED] = 0
    alone, together = features_of(unpaired, table, 2), features_of(steps, table, 2)
    a, b = alone[first], alone[first + 1]
    assert np.allclose(together[first], np.where(CONCURRENT, np.maximum(a, b), a + b))
    assert not together[first + 1].any() and (a[:, CONCURRENT] > 0).any()
    assert np.array_equal(features_of(steps, table, 1), features_of(unpaired, table, 1))
