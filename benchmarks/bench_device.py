"""Latency against device memory under the paging model (a model: see engine/paging.py), yolov2-416.

    python -m benchmarks.bench_device [--device rpi3] [--points 12] [--max-grid 8] [--plot FILE.png]

For each device memory, from severe (room for an eighth of the weights) to ample, the paging model
replays layer by layer (resident weights, as Darknet runs), the best searched configuration with resident
weights and the best with streamed weights (read from the channel-major HDF5 store as clean file pages);
their compute seconds are measured here, side by side in one run (streamed plans reading a real file), and
the modelled latency is measured compute + modelled paging. Prints the table and the speedups of the best
configuration over layer by layer.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_name
from benchmarks.common import interleaved_medians
from engine.runtime.baseline import runtime_baseline_bytes
from engine.tune.costmodel import load_or_calibrate
from engine.device.curves import DeviceModel, memory_span
from engine.runtime.executor import FusedExecutor
from engine.device.paging import parse_device
from yolo.params import random_params
from engine.memory.predictor import Predictor
from engine.tune.search import Evaluator
from yolo.cfg import cfg_text_at_size, load_network
from yolo.h5store import write_h5
from yolo.sources import open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="rpi3")
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--max-grid", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--plot", help="write the curve as a PNG")
    args = ap.parse_args()
    network = load_network("yolov2.cfg", 416)
    predictor = Predictor(network)
    cost = load_or_calibrate(network, 1 << 20)
    baseline = runtime_baseline_bytes()
    device = parse_device(args.device)
    model = DeviceModel(Evaluator(predictor, cost), device, baseline)
    streaming = DeviceModel(Evaluator(predictor, cost, band_bytes=1 << 20), device, baseline)
    grids = tuple((r, c) for r in range(1, args.max_grid + 1) for c in range(1, args.max_grid + 1))
    points = model.curve(memory_span(model, args.points), grids, streaming)
    params = random_params(network, 0)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    plans = dict.fromkeys(m.plan for p in points for m in (p.layer_by_layer, p.searched, p.streamed))
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "weights.h5"
        write_h5(store, params, network, cfg_text_at_size("yolov2.cfg", 416))
        source = open_source(store, network)
        runners = {plan: (lambda e=FusedExecutor(plan, None if plan.weights == "streamed" else params,
                                                 source=source if plan.weights == "streamed" else None): e.run(x))
                   for plan in plans}
        measured = interleaved_medians(runners, args.repeats)
    print(f"device {args.device} (a model); runtime baseline {baseline / 2**20:.1f} MiB measured, weights "
          f"{predictor.weights_bytes / 2**20:.1f} MiB; compute measured here (median of {args.repeats}, warm page "
          f"cache; CPU {cpu_name()})")
    print("| device MiB | layer by layer: swap-ins | s | resident: s | streamed: configuration | swap-ins | "
          "file MiB read | s | best / layer by layer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in points:
        lbl, res, st = (measured[m.plan] + m.paging_seconds for m in (p.layer_by_layer, p.searched, p.streamed))
        print(f"| {p.memory_bytes / 2**20:.0f} | {p.layer_by_layer.swap_ins} | {lbl:.2f} | {res:.2f} | "
              f"{p.streamed.spec} | {p.streamed.swap_ins} | {p.streamed.file_reads * device.page_bytes / 2**20:.0f} | "
              f"{st:.2f} | {lbl / min(res, st):.2f}x |")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        from engine.report import plots
        plots.save(plots.latency_vs_memory(points), args.plot)


if __name__ == "__main__":
    main()
