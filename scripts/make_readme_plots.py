"""Regenerates the pictures in README.md (docs/*.png) from yolov2 at 416 with the default plan.

    python scripts/make_readme_plots.py
"""
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

from engine.report import plots  # noqa: E402
from engine.runtime.executor import FusedExecutor  # noqa: E402
from yolo.params import random_params  # noqa: E402
from engine.cli.planning import default_plan  # noqa: E402
from engine.memory.predictor import Predictor  # noqa: E402
from engine.runtime.baseline import runtime_baseline_bytes  # noqa: E402
from engine.tune.costmodel import load_or_calibrate  # noqa: E402
from engine.device.curves import DeviceModel, memory_span  # noqa: E402
from engine.device.paging import DEVICES  # noqa: E402
from engine.tune.search import Evaluator  # noqa: E402
from yolo.cfg import load_network  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    network = load_network("yolov2.cfg", 416)
    plan = default_plan(network)
    plots.save(plots.layer_profile(network, plan.groups), OUT / "profile.png")
    run = FusedExecutor(plan, random_params(network, 0)).run(np.zeros(network.input_shape, np.float32))
    plots.save(plots.arena_map(run.program, run.layout), OUT / "arena.png")
    plots.save(plots.overhead_vs_grid(network, 0, 15, [1, 2, 3, 4, 5, 6], Predictor(network)), OUT / "overhead.png")
    evaluator = Evaluator(Predictor(network), load_or_calibrate(network, 1 << 20))
    device = DeviceModel(evaluator, DEVICES["rpi3"], runtime_baseline_bytes())
    streaming = DeviceModel(Evaluator(evaluator.predictor, evaluator.model, band_bytes=1 << 20), DEVICES["rpi3"],
                            device.runtime_bytes)
    grids = tuple((r, c) for r in range(1, 7) for c in range(1, 7))
    plots.save(plots.latency_vs_memory(device.curve(memory_span(device, 10), grids, streaming)), OUT / "device.png")


if __name__ == "__main__":
    main()
