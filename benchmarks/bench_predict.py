"""Predictor throughput on yolov2-416: configurations per second, cold (every group profile built) and
warm (profiles cached, as in a search), over random cut points, 1-4 groups, grids up to 8x8, all modes.

    python -m benchmarks.bench_predict [--count 2000]
"""
from __future__ import annotations

import argparse
import random
import time

from engine.ir.fusion import fusion
from engine.ir.plan import REUSE_MODES, Group, Plan
from engine.memory.predictor import Predictor
from yolo.cfg import load_network


def random_plans(network, count: int, seed: int = 0) -> list[tuple[Group, ...]]:
    """``count`` random valid plans: 1-4 groups, each from a random layer to a random place it may end."""
    rng, plans, rule = random.Random(seed), [], fusion(network)
    starts = [i for i in range(len(network)) if rule.ends(i)]
    while len(plans) < count:
        groups, after = [], -1
        for first in sorted(rng.sample(starts, rng.randint(1, 4))):
            if first <= after:
                continue
            last = rng.choice(rule.ends(first))
            _, h, w = network[last].out_shape
            groups.append(Group(first, last, rng.randint(1, min(8, h)), rng.randint(1, min(8, w)),
                                rng.choice(REUSE_MODES)))
            after = last
        plans.append(Plan(network, tuple(groups)).groups)
    return plans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    network = load_network("yolov2.cfg", 416)
    plans = random_plans(network, args.count)
    predictor = Predictor(network)
    start = time.perf_counter()
    for groups in plans:
        predictor.predict(groups)
    cold = time.perf_counter() - start
    for measure in ("peak and arena", "peak only"):
        start = time.perf_counter()
        repeats = 5
        for _ in range(repeats):
            for groups in plans:
                predictor.predict(groups) if measure == "peak and arena" else predictor.predict_peak(groups)
        warm = (time.perf_counter() - start) / repeats
        print(f"{measure}, warm: {len(plans) / warm:,.0f} configurations/s")
    print(f"peak and arena, cold (lowering {len(predictor._own_arena)} groups and laying out their own buffers): "
          f"{len(plans) / cold:,.1f} configurations/s")
    fresh = Predictor(network)
    start = time.perf_counter()
    for groups in plans:
        fresh.predict_peak(groups)
    print(f"peak only, cold (each group lowered once, its own peaks read): "
          f"{len(plans) / (time.perf_counter() - start):,.0f} configurations/s")


if __name__ == "__main__":
    main()
