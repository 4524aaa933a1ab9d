"""Memory and latency of the bundled trained models (and yolov2-416): layer by layer, the default plan and
the smallest feasible peak at exactly 1.00x the network's MACs (stream reuse), each with the network input
(made region by region by the first group) and without it; latencies of the reference, layer by layer in
the arena and the default plan beside OpenCV DNN on the same cfg, weights and input. fusetile's runners run
in interleaved turns, OpenCV right after them in its own block: interleaved, OpenCV's idle pool threads kept
spinning and slowed fusetile's two-thread steps several times over.

    python -m benchmarks.bench_models [--models NAME ...] [--sizes 320 416] [--repeats 15]
"""
from __future__ import annotations

import argparse


from benchmarks.common import cpu_name, interleaved_medians, median_seconds, opencv_runner
from engine.cli.pipeline import default_image
from engine.cli.planning import default_plan
from engine.ir.plan import Plan
from engine.memory.predictor import Predictor
from engine.lower.program import build_program
from engine.lower.table import B_BYTES, B_FIRST, B_KIND, B_LAST, INPUT_BUFFER, WEIGHTS_BUFFER
from engine.memory.timeline import layer_by_layer_live_bytes, live_bytes
from engine.runtime.executor import FusedExecutor
from engine.runtime.reference import run_reference
from engine.runtime.workers import default_threads
from engine.tune.costmodel import load_or_calibrate
from engine.tune.search import Evaluator, search, smallest_feasible_peak
from yolo.cfg import bundled_weights, cfg_text_at_size, load_network
from yolo.letterbox import Placement, fit, load_image
from yolo.params import random_params
from yolo.weights import load_weights

MIB = 2 ** 20


def without_input(plan: Plan) -> int:
    """The plan's peak of live activation bytes not counting the network input (whole, or its regions)."""
    program = build_program(plan)
    buffers = program.buffers
    kept = buffers[(buffers[:, B_KIND] != INPUT_BUFFER) & (buffers[:, B_KIND] != WEIGHTS_BUFFER)]
    return int(live_bytes(kept[:, B_BYTES], kept[:, B_FIRST], kept[:, B_LAST], len(program.steps)).max())


def smallest_at_full_macs(network) -> tuple[int, Plan]:
    """The smallest predicted peak over stream-reuse plans (which execute exactly the network's MACs)."""
    predictor = Predictor(network)
    evaluator = Evaluator(predictor, load_or_calibrate(network, predictor.scratch_bytes))
    grids = tuple((r, c) for r in range(1, 9) for c in range(1, 9))
    low = smallest_feasible_peak(evaluator, grids=grids, modes=("stream",))
    found = search(evaluator, low, grids=grids, modes=("stream",))
    return low, evaluator.chosen(found[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["MobileNetV2-YOLOv3-Nano-coco", "MobileNetV2-YOLO-Fastest-voc",
                                                    "yoloface-500k", "yolov2"])
    ap.add_argument("--sizes", nargs="*", type=int, default=[320, 416])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}, {default_threads()} threads")
    print(f"{'model':<30} {'size':>4} {'layer by layer':>14} {'default plan':>18} {'w/o input':>9}"
          f" {'smallest at 1.00x MACs':>22} {'w/o input':>9}   ms: {'OpenCV':>7} {'reference':>10} {'l-b-l':>7}"
          f" {'default':>8}")
    photo = load_image(default_image())
    for name in args.models:
        for size in args.sizes if name != "yolov2" else [416]:
            network = load_network(f"{name}.cfg", size)
            weights = bundled_weights(f"{name}.cfg")
            params = load_weights(weights, network) if weights else random_params(network, 0)
            _, h, w = network.input_shape
            placement = Placement.of((photo.shape[2], photo.shape[1]), (w, h), network.default_preprocess)
            x = fit(photo, w, h, placement)
            lbl = max(layer_by_layer_live_bytes(network))
            default = default_plan(network)
            peak = Predictor(network).predict(default).activation_peak_bytes
            low, smallest = smallest_at_full_macs(network)
            fused = FusedExecutor(default, params)
            by_layer = FusedExecutor(Plan(network, ()), params)
            cv = opencv_runner(cfg_text_at_size(f"{name}.cfg", size), params, x)
            times = interleaved_medians({"reference": lambda: run_reference(network, params, x),
                                         "lbl": lambda: by_layer.run(photo, placement),
                                         "default": lambda: fused.run(photo, placement)}, repeats=args.repeats)
            times["opencv"] = median_seconds(cv, args.repeats)  # after ours: its idle threads spin a while
            ms = {k: v * 1000 for k, v in times.items()}
            print(f"{name:<30} {size:>4} {lbl / MIB:>9.2f} MiB {peak / MIB:>7.2f} MiB (1/{lbl / peak:>4.1f})"
                  f" {without_input(default) / MIB:>5.2f} {low / MIB:>7.2f} MiB (1/{lbl / low:>4.1f})"
                  f" {without_input(smallest) / MIB:>5.2f}"
                  f"   {ms['opencv']:>9.1f} {ms['reference']:>10.1f} {ms['lbl']:>7.1f} {ms['default']:>8.1f}"
                  f"   smallest ({smallest.order}): {smallest.spec[:80]}")
    print("ratios to OpenCV: the ms columns divided by OpenCV's, measured one after the other in this run")


if __name__ == "__main__":
    main()
