"""The plan a run executes: named by the arguments (groups, tiles, reuse, streamed weights) or searched for a
memory budget (--budget, --budget auto)."""
from __future__ import annotations

from engine.cli.args import DEFAULT_REUSE
from engine.ir.plan import (DEFAULT_BAND_BYTES, REUSE_MODES, Plan, PlanError, check_reuse, default_groups,
                            parse_grid, parse_groups)
from engine.lower.group import DEFAULT_SCRATCH_BYTES
from engine.memory.predictor import Predictor
from yolo.network import Network


AUTO_BUDGET = ("--budget auto: the searched configurations for activation budgets from what the device leaves "
               "down to the smallest feasible peak, replayed through the paging model; the least modelled latency "
               "(compute + paging) wins")


STRIP_FACTOR = 8  # strips of whole rows are searched up to this many times max_grid rows


def search_grids(network: Network, max_grid: int) -> tuple[tuple[int, int], ...]:
    """Grids up to max_grid x max_grid, and strips of whole rows up to STRIP_FACTOR * max_grid rows, bounded by
    the largest map a group can end on (no tile is empty). Strips keep rows whole, which every kernel runs
    fastest: under 1/8 of yolov2's peak, the plan with 18 strips for layers 0-7 ran 1.2x faster than the one
    with a 3x6 grid that the search of 8x8 grids had picked."""
    from engine.ir.fusion import fusion
    rule = fusion(network)
    side = max((max(network[i].out_shape[1:]) for i in range(len(network)) if rule.can_tile[i]), default=1)
    n = min(max_grid, side)
    strips = tuple((r, 1) for r in range(n + 1, min(STRIP_FACTOR * max_grid, side) + 1))
    return tuple((r, c) for r in range(1, n + 1) for c in range(1, n + 1)) + strips


def search_plan(args, network: Network, target, workspace_searched: bool):
    """(the plan chosen, (its configuration, the budget searched, how it was chosen, the largest grid side)).
    With --stream-weights the budget bounds the engine peak, and the weights modes and bands are searched
    too (the band size of layers outside groups as well, unless --band-kib names it). With
    ``workspace_searched`` each group's conv workspace budget is searched too (the plan names those that
    differ from ``args.scratch_kib``, which is set to the budget of the layers outside groups)."""
    from engine.tune.costmodel import load_or_calibrate
    from engine.tune.search import (BAND_SIZES, Choice, Evaluator, search, search_streamed, search_workspaces,
                                    smallest_feasible_peak)
    scratch = args.scratch_kib * 1024
    predictor = Predictor(network, scratch)
    bands = (args.band_kib * 1024,) if args.band_kib else BAND_SIZES
    model = load_or_calibrate(network, DEFAULT_SCRATCH_BYTES if workspace_searched else scratch)
    evaluator = Evaluator(predictor, model, bands[0] if args.stream_weights else None)
    grids = search_grids(network, args.max_grid)
    side = max(cols for _, cols in grids)  # the square grids' largest side (strips have one column)
    orders = (args.order,) if args.order else None
    modes = (check_reuse(args.reuse),) if args.reuse else REUSE_MODES
    if args.budget == "auto":
        from engine.device.curves import DeviceModel
        device, memory, baseline = target
        best = DeviceModel(evaluator, device, baseline).best_searched(memory, grids)
        held = 0 if args.stream_weights else predictor.weights_bytes
        chosen = Choice(best.groups, best.compute_seconds, predictor.predict_peak(best.plan), best.plan.order)
        return best.plan, (chosen,
                           memory - baseline - held, AUTO_BUDGET, side)
    if args.stream_weights:
        _, found = search_streamed(evaluator, args.budget, grids, bands, modes=modes, orders=orders)
    elif workspace_searched:
        evaluator, found = search_workspaces(network, model, args.budget, grids=grids, modes=modes, orders=orders)
        args.scratch_kib = evaluator.predictor.scratch_bytes // 1024  # the run uses the workspace chosen
    else:
        found = search(evaluator, args.budget, grids=grids, modes=modes, orders=orders)
    if not found:
        if args.stream_weights:
            evaluator.band_bytes = bands[0]  # the smallest bands hold the least
        low = smallest_feasible_peak(evaluator, grids=grids, modes=modes, orders=orders)
        what = "engine peak (activations and streamed weights)" if args.stream_weights else "peak"
        raise PlanError(f"--budget {args.budget} B: no configuration fits; the smallest feasible predicted "
                        f"{what} is {low} B ({low / 2**20:.2f} MiB)")
    how = "the fastest predicted configuration whose predicted peak fits" + (
        " (and each group's conv workspace budget)" if workspace_searched else "")
    return evaluator.chosen(found[0]), (found[0], args.budget, how, side)


def make_plan(args, network: Network) -> Plan:
    """The plan the arguments name (their combinations were checked by ``check_combinations``; the workspace
    budget, ``args.scratch_kib``, resolved)."""
    if args.reference:
        return Plan(network, ())  # in Darknet's order
    reuse = check_reuse(args.reuse or DEFAULT_REUSE)
    weights = "group" if args.stream_weights else "resident"  # for groups that name no weights mode
    mode = "streamed" if args.stream_weights else "resident"
    band_bytes, order = (args.band_kib or DEFAULT_BAND_BYTES // 1024) * 1024, args.order or "darknet"
    if args.groups is not None:
        return Plan(network, parse_groups(args.groups, reuse, weights), mode, band_bytes, order)
    if args.tiles:
        return Plan(network, default_groups(network, parse_grid(args.tiles), reuse, weights), mode, band_bytes, order)
    return default_plan(network, args.scratch_kib * 1024, reuse, weights, mode, band_bytes, order)


def default_plan(network: Network, scratch_bytes: int = DEFAULT_SCRATCH_BYTES, reuse: str = DEFAULT_REUSE,
                 weights: str = "resident", mode: str = "resident", band_bytes: int = DEFAULT_BAND_BYTES,
                 order: str = "darknet") -> Plan:
    """The plan run when no groups or tiles are named: ``default_groups``' shape, less the fusion that lowers
    no peak (``Predictor.lean``), with a larger workspace for the layers that then run Winograd, where the
    peak leaves room for it (``Predictor.widen``)."""
    from engine.tune.search import WORKSPACES
    plan = Plan(network, default_groups(network, None, reuse, weights), mode, band_bytes, order)
    predictor = Predictor(network, scratch_bytes)
    return predictor.widen(predictor.lean(plan), WORKSPACES)
