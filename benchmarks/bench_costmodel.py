"""Cost-model error: predicted vs measured latency of 24 configurations (yolov2-416 by default, random
weights; a bundled model with its own), measured in turns.

    python -m benchmarks.bench_costmodel [--repeats 3] [--cfg MobileNetV2-YOLOv3-Nano-coco.cfg --size 416]

Prints each configuration, then the median absolute relative error and Spearman's rank correlation, and
the error once one factor accounts for the machine's speed drifting between calibration and measurement.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.bench_predict import random_plans
from benchmarks.common import interleaved_medians
from engine.tune.costmodel import load_or_calibrate
from engine.runtime.executor import FusedExecutor
from yolo.params import random_params
from engine.ir.plan import Plan
from engine.memory.predictor import Predictor
from engine.tune.search import Evaluator
from yolo.cfg import bundled_weights, load_network
from yolo.weights import load_weights


def ranks(values) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--cfg", default="yolov2.cfg")
    ap.add_argument("--size", type=int, default=416)
    args = ap.parse_args()
    network = load_network(args.cfg, args.size)
    evaluator = Evaluator(Predictor(network), load_or_calibrate(network, 1 << 20))
    weights = bundled_weights(args.cfg)
    params = load_weights(weights, network) if weights else random_params(network, 0)
    x = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    plans = [()] + random_plans(network, args.count - 1, seed=1)
    executors = {Plan(network, g).spec or "layer by layer": FusedExecutor(Plan(network, g), params) for g in plans}
    measured = interleaved_medians({k: (lambda e=e: e.run(x)) for k, e in executors.items()}, args.repeats)
    predicted = {k: evaluator.predicted_seconds(e.plan.groups) for k, e in executors.items()}
    errors = []
    for k in executors:
        errors.append(abs(predicted[k] - measured[k]) / measured[k])
        print(f"{k:<70} predicted {predicted[k] * 1e3:6.0f} ms  measured {measured[k] * 1e3:6.0f} ms  "
              f"{(predicted[k] / measured[k] - 1) * 100:+5.1f}%")
    p, m = np.array([predicted[k] for k in executors]), np.array([measured[k] for k in executors])
    spearman = np.corrcoef(ranks(p), ranks(m))[0, 1]
    print(f"{len(errors)} configurations: median |error| {np.median(errors) * 100:.1f}%, "
          f"Spearman rank correlation {spearman:.3f}")
    # this machine's speed drifts by tens of percent within a minute; one factor for the speed during
    # the measurement against the speed during calibration separates that drift from the model's error
    scale = float(np.median(m / p))
    print(f"machine speed now / at calibration: {1 / scale:.3f}; with that one factor, median |error| "
          f"{np.median(np.abs(p * scale - m) / m) * 100:.1f}%")


if __name__ == "__main__":
    main()
