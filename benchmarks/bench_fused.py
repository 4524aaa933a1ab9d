"""Fused plans in every reuse mode vs the layer-by-layer reference (and OpenCV) on yolov2, one run.

    python -m benchmarks.bench_fused [--repeats 5] [--size 416] [--reuse none checkerboard stream]

For each plan and mode: measured peak live bytes (from the arena) against the layer-by-layer peak,
arena size, executed MACs against the network's, and median latency against the NumPy reference and
OpenCV DNN. All configurations run in turns, so drift in the machine's speed affects all alike.
"""
from __future__ import annotations

import argparse

from benchmarks.common import interleaved_medians, opencv_runner
from engine.runtime.executor import FusedExecutor
from yolo.params import random_params
from engine.ir.plan import Plan, parse_groups
from engine.memory.timeline import layer_by_layer_live_bytes
from engine.runtime.reference import run_reference
from engine.ir.plan import REUSE_MODES
from engine.cli.pipeline import default_image
from yolo.cfg import cfg_text_at_size, load_network
from yolo.letterbox import letterbox, load_image

PLANS = ["0-7:4x4,8-16:2x2", "0-15:3x3", "0-15:5x5", "0-16:3x3", "0-3:6x6,4-9:3x3,10-16:2x2", "0-7:3x3,8-16:2x1",
         "0-3:8x8,4-16:2x2", "0-7:8x8,8-16:4x4"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--reuse", nargs="+", choices=REUSE_MODES, default=list(REUSE_MODES))
    args = ap.parse_args()
    network = load_network("yolov2.cfg", args.size)
    params = random_params(network, 0)
    x = letterbox(load_image(default_image()), args.size, args.size)
    lbl = max(layer_by_layer_live_bytes(network))
    executors = {"layer by layer (fused kernels)": FusedExecutor(Plan(network, ()), params)}
    for spec in PLANS:
        for mode in args.reuse:
            executors[f"{spec}:{mode}"] = FusedExecutor(Plan(network, parse_groups(spec, mode)), params)
    runs = {name: ex.run(x) for name, ex in executors.items()}
    runners = {name: (lambda ex=ex: ex.run(x)) for name, ex in executors.items()}
    runners["reference"] = lambda: run_reference(network, params, x)
    runners["opencv"] = opencv_runner(cfg_text_at_size("yolov2.cfg", args.size), params, x)
    seconds = interleaved_medians(runners, args.repeats)
    ref, cv = seconds["reference"], seconds["opencv"]
    print(f"yolov2-{args.size}: layer-by-layer peak {lbl / 2**20:.2f} MiB; reference {ref * 1e3:.0f} ms, "
          f"OpenCV {cv * 1e3:.0f} ms (reference/OpenCV {ref / cv:.2f}); medians of {args.repeats}, interleaved")
    print(f"| {'plan:reuse':<42} | {'peak MiB':>8} | {'peak/lbl':>8} | {'arena MiB':>9} | {'MACs x':>7} | "
          f"{'ms':>5} | {'/ref':>5} | {'/opencv':>7} |")
    print("|" + "|".join("-" * n for n in (44, 10, 10, 11, 9, 7, 7, 9)) + "|")
    for name, run in runs.items():
        s = seconds[name]
        print(f"| {name:<42} | {run.peak_bytes / 2**20:>8.2f} | {run.peak_bytes / lbl:>8.3f} | "
              f"{run.arena_bytes / 2**20:>9.2f} | {run.macs / network.macs:>7.3f} | {s * 1e3:>5.0f} | "
              f"{s / ref:>5.2f} | {s / cv:>7.2f} |")


if __name__ == "__main__":
    main()
