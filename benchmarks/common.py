"""Helpers shared by the benchmark scripts: timing and the OpenCV baseline on the same cfg/weights/input."""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def median_seconds(fn, repeats: int = 7, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_samples(runners: dict, repeats: int = 5, warmup: int = 1) -> dict[object, list[float]]:
    """Seconds of each no-argument callable per turn: all run once per turn, so that drift in the
    machine's speed affects them alike and ratios within a turn cancel it."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def interleaved_medians(runners: dict, repeats: int = 5, warmup: int = 1) -> dict[object, float]:
    """Median seconds of each no-argument callable, run in turns (``interleaved_samples``)."""
    return {name: statistics.median(ts) for name, ts in interleaved_samples(runners, repeats, warmup).items()}


def opencv_runner(cfg_text: str, params, x: np.ndarray):
    """An OpenCV DNN (Darknet importer) forward over the same weights; returns a no-argument callable."""
    from yolo.weights import write_darknet
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "net.cfg").write_text(cfg_text)
        write_darknet(Path(tmp) / "net.weights", params)
        return opencv_forward(Path(tmp) / "net.cfg", Path(tmp) / "net.weights", x)


def opencv_forward(cfg: Path, weights: Path, x: np.ndarray):
    """OpenCV's forward of the files, as a no-argument callable returning the first tensor feeding a
    detection head (the layer before a permute its importer adds for [region] and [yolo]); the heads run as
    well, as the engine's do (OpenCV's decode boxes besides, so their outputs are not compared). The files
    are read now."""
    import cv2
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    names = net.getLayerNames()
    heads = [names[i - 1] for i, n in enumerate(names) if n.startswith("permute_")]
    outputs = heads + list(net.getUnconnectedOutLayersNames())
    blob = x[None]

    def forward():
        net.setInput(blob)
        return net.forward(outputs)[0]
    return forward


def cpu_name() -> str:
    """The CPU's model name, for benchmark headers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
