"""The search's pick against a measured sweep (yolov2-416 unless ``--cfg`` names another network), at
three budgets (tight, medium, loose).

    python -m benchmarks.bench_search [--cfg yolov2.cfg] [--count 100] [--repeats 3] [--max-grid 8]

Every configuration of the sweep (random cut points, 1-4 groups, grids up to 8x8, every reuse mode, 1 MiB
workspaces) and every pick (each group's workspace searched, as ``engine.run --budget`` does) is measured
in turns; for each budget the pick and the five fastest configurations of the
sweep whose peak fits are measured again in turns, and the pick is compared with each of them turn by turn
(the median of the per-turn ratios); the table shows the one the pick is slowest against.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.bench_predict import random_plans
from benchmarks.common import interleaved_medians, interleaved_samples
from engine.tune.costmodel import load_or_calibrate
from engine.runtime.executor import FusedExecutor
from yolo.params import random_params
from engine.ir.plan import Plan
from engine.memory.predictor import Predictor
from engine.tune.search import Evaluator, beside, search
from yolo.cfg import load_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cfg", default="yolov2.cfg")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--final-repeats", type=int, default=21)
    ap.add_argument("--max-grid", type=int, default=8)
    args = ap.parse_args()
    network = load_network(args.cfg, 416)
    predictor = Predictor(network)
    # the picks, as ``engine.run --budget``'s, give each group its conv workspace budget; the sweep runs at 1 MiB
    evaluator = Evaluator(predictor, load_or_calibrate(network, 1 << 20), workspaces=beside(predictor.scratch_bytes))
    sweep = [()] + random_plans(network, args.count - 1, seed=2)
    peaks = {g: predictor.predict_peak(g) for g in sweep}
    budgets = {name: int(np.quantile(list(peaks.values()), q)) for name, q in
               (("tight", 0.1), ("medium", 0.5), ("loose", 0.9))}
    grids = tuple((r, c) for r in range(1, args.max_grid + 1) for c in range(1, args.max_grid + 1))
    picks = {name: search(evaluator, b, grids=grids, top=1)[0] for name, b in budgets.items()}
    configs = list(dict.fromkeys(sweep + [p.groups for p in picks.values()]))
    params = random_params(network, 0)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    runners = {}
    for groups in configs:
        executor = FusedExecutor(Plan(network, groups), params)
        runners[groups] = lambda e=executor: e.run(x)
    seconds = interleaved_medians(runners, args.repeats)
    # the fastest of a hundred noisy measurements is biased low: measure the pick and the five fastest
    # that fit each budget again, in turns, and compare them turn by turn (ratios within a turn cancel
    # the machine's drift); "best" is the finalist the pick is slowest against
    print(f"{len(configs)} configurations measured (median of {args.repeats}, in turns); the pick and the five "
          f"fastest that fit each budget measured again ({args.final_repeats} turns, ratios within each turn)")
    print("| budget | MiB | search pick | predicted ms | measured ms | finalist | measured ms | pick / finalist |")
    print("|---|---|---|---|---|---|---|---|")
    spec = lambda g: Plan(network, g).spec or "layer by layer"
    for name, budget in budgets.items():
        pick = picks[name].groups
        finalists = [pick] + [g for g in sorted((g for g in sweep if peaks[g] <= budget), key=lambda g: seconds[g])
                              if g != pick][:5]
        samples = interleaved_samples({g: runners[g] for g in finalists}, args.final_repeats)
        ratio = {g: float(np.median(np.array(samples[pick]) / np.array(samples[g]))) for g in finalists[1:]}
        best = max(ratio, key=ratio.get)
        print(f"| {name} | {budget / 2**20:.2f} | {spec(pick)} | {picks[name].predicted_seconds * 1e3:.0f} | "
              f"{np.median(samples[pick]) * 1e3:.0f} | {spec(best)} | {np.median(samples[best]) * 1e3:.0f} | "
              f"{ratio[best]:.3f} |")

if __name__ == "__main__":
    main()
