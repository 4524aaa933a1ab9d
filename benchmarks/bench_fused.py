"""Fused plans vs the layer-by-layer reference (and OpenCV) on yolov2-416, measured in one run.

    python -m benchmarks.bench_fused [--repeats 5] [--size 416]

For each plan: measured peak live bytes (from the arena) against the layer-by-layer peak, executed MACs
against the network's, and median latency against the NumPy reference and OpenCV DNN.
"""
from __future__ import annotations

import argparse

from benchmarks.common import median_seconds, opencv_runner
from engine.fused import FusedExecutor
from engine.params import random_params
from engine.plan import Plan, parse_groups
from engine.reference import layer_by_layer_live_bytes, run_reference
from engine.run import default_image
from yolo.cfg import cfg_text_at_size, load_network
from yolo.letterbox import letterbox, load_image

PLANS = ["", "0-7:4x4,8-16:2x2", "0-16:3x3", "0-15:5x5", "0-5:6x6,6-11:3x3,12-16:2x2", "0-7:3x3,8-16:2x1",
         "0-3:8x8,4-16:2x2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=416)
    args = ap.parse_args()
    network = load_network("yolov2.cfg", args.size)
    params = random_params(network, 0)
    x = letterbox(load_image(default_image()), args.size, args.size)
    lbl = max(layer_by_layer_live_bytes(network))
    ref = median_seconds(lambda: run_reference(network, params, x), args.repeats)
    cv = median_seconds(opencv_runner(cfg_text_at_size("yolov2.cfg", args.size), params, x), args.repeats)
    print(f"yolov2-{args.size}: layer-by-layer peak {lbl / 2**20:.2f} MiB; reference {ref * 1e3:.0f} ms, "
          f"OpenCV {cv * 1e3:.0f} ms (reference/OpenCV {ref / cv:.2f})")
    print(f"{'plan':<30} {'peak MiB':>8} {'peak/lbl':>8} {'arena MiB':>9} {'MACs x':>7} {'ms':>6} "
          f"{'/ref':>5} {'/opencv':>7}")
    for spec in PLANS:
        executor = FusedExecutor(Plan(network, parse_groups(spec)), params)
        run = executor.run(x)
        seconds = median_seconds(lambda: executor.run(x), args.repeats)
        print(f"{spec or 'layer by layer (fused kernels)':<30} {run.peak_bytes / 2**20:>8.2f} "
              f"{run.peak_bytes / lbl:>8.3f} {run.arena_bytes / 2**20:>9.2f} {run.macs / network.macs:>7.3f} "
              f"{seconds * 1e3:>6.0f} {seconds / ref:>5.2f} {seconds / cv:>7.2f}")


if __name__ == "__main__":
    main()
