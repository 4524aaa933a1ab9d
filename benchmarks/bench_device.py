"""Latency against device memory under the paging model (a model: see engine/paging.py), yolov2-416.

    python -m benchmarks.bench_device [--device rpi3] [--points 12] [--max-grid 8] [--plot FILE.png]

For each device memory, from severe (the weights do not all fit) to ample, the paging model replays
layer by layer and the searched configuration; their compute seconds are measured here, side by side in
one run, and the modelled latency is measured compute + modelled paging. Prints the table and the
speedups of the searched configuration.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import interleaved_medians
from engine.runtime.baseline import runtime_baseline_bytes
from engine.tune.costmodel import load_or_calibrate
from engine.device.curves import DeviceModel, memory_span
from engine.runtime.executor import FusedExecutor
from engine.device.paging import parse_device
from yolo.params import random_params
from engine.ir.plan import Plan
from engine.memory.predictor import Predictor
from engine.tune.search import Evaluator
from yolo.cfg import load_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="rpi3")
    ap.add_argument("--points", type=int, default=12)
    ap.add_argument("--max-grid", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--plot", help="write the curve as a PNG")
    args = ap.parse_args()
    network = load_network("yolov2.cfg", 416)
    evaluator = Evaluator(Predictor(network), load_or_calibrate(network, 1 << 20))
    baseline = runtime_baseline_bytes()
    model = DeviceModel(evaluator, parse_device(args.device), baseline)
    grids = tuple((r, c) for r in range(1, args.max_grid + 1) for c in range(1, args.max_grid + 1))
    points = model.curve(memory_span(model, args.points), grids)
    params = random_params(network, 0)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    configs = dict.fromkeys(g for p in points for g in (p.layer_by_layer.groups, p.searched.groups))
    runners = {g: (lambda e=FusedExecutor(Plan(network, g), params): e.run(x)) for g in configs}
    measured = interleaved_medians(runners, args.repeats)
    print(f"device {args.device} (a model); runtime baseline {baseline / 2**20:.1f} MiB measured, weights "
          f"{evaluator.predictor.weights_bytes / 2**20:.1f} MiB; compute measured here (median of {args.repeats})")
    print("| device MiB | layer by layer: swap-ins | s | searched: configuration | swap-ins | s | speedup |")
    print("|---|---|---|---|---|---|---|")
    for p in points:
        lbl = measured[p.layer_by_layer.groups] + p.layer_by_layer.paging_seconds
        ours = measured[p.searched.groups] + p.searched.paging_seconds
        print(f"| {p.memory_bytes / 2**20:.0f} | {p.layer_by_layer.swap_ins} | {lbl:.2f} | {p.searched.spec} | "
              f"{p.searched.swap_ins} | {ours:.2f} | {lbl / ours:.2f}x |")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        from engine.report import plots
        plots.save(plots.latency_vs_memory(points), args.plot)


if __name__ == "__main__":
    main()
