"""Cost model: predicted latency of a configuration as a sum over its steps of calibrated linear costs.

Each step is described by a few work counts (multiply-accumulates, GEMM calls, weights streamed per
band, packed and written elements and the rows they come in, the rows each Winograd transform, direct
conv and maxpool loops over (narrow tiles have more, shorter ones), pooled and copied elements, weights
read into the arena and the reads, and one per step for the dispatch overhead of a tile). A short run of
a few plans on this machine, timing every step, fits one non-negative coefficient per count. The fit is
cached on disk and keyed by the machine, the library versions and the network, so it is redone when any
of them changes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from engine.cache import cache_dir, versions_key
from yolo.letterbox import Placement
from yolo.network import Network
from engine.runtime.workers import default_threads
from engine.tune.features import FEATURES, FEATURES_VERSION, features_of

# plans timed to fit the model: layer by layer, square grids, strips of whole rows and columns, every reuse
# mode, over the network's early span ({S}), cut into two groups after its pool at stride 8 ({A}, {B}: as
# ``default_groups`` cuts it, else at its middle). Written for yolov2 with its layer numbers, the plans did
# not fit other networks' layers and were skipped: yolov2-tiny's model was fitted on 3 of the 11, and priced
# tiles in columns as those in rows; the MobileNetV2 and yoloface networks' on 2-6.
CALIBRATION_PLANS = ("", "{A}:4x4:stream,{B}:2x2:stream", "{A}:4x4:none,{B}:2x2:checkerboard", "{S}:5x5:stream",
                     "{A}:8x8:none,{B}:2x2:stream", "{S}:3x3:checkerboard", "{A}:8x1:stream,{B}:4x1:stream",
                     "{A}:6x1:checkerboard,{B}:1x3:none", "{A}:8x2:columns,{B}:4x2:columns")
# plans run with their weights streamed from a channel-major store in a temporary file (band bytes), so the
# reads (from the page cache) and the bands' extra GEMM calls are timed as well
STREAMED_CALIBRATION_PLANS = (("", 1 << 20), ("{A}:4x4:stream:group,{B}:2x2:stream:tile/2", 4 << 20),
                              ("{A}:3x3:none:tile,{B}:2x2:checkerboard:tile/4", 1 << 19))


def calibration_plans(network: Network) -> list[tuple[str, int | None]]:
    """The calibration plans for ``network`` (spec, and the band bytes of those that stream their weights):
    the templates above over its early span, the groups' cut where ``default_groups`` makes it (else the
    span's middle)."""
    from engine.ir.plan import default_groups, default_span
    first, last = default_span(network)
    cut = default_groups(network)[0].last
    cut = cut if cut < last else (first + last) // 2
    spans = {"S": f"{first}-{last}", "A": f"{first}-{cut}", "B": f"{cut + 1}-{last}"}
    return ([(spec.format(**spans), None) for spec in CALIBRATION_PLANS]
            + [(spec.format(**spans), band) for spec, band in STREAMED_CALIBRATION_PLANS])


@dataclass(frozen=True)
class CostModel:
    coefficients: tuple[float, ...]  # seconds per unit of each feature
    threads: int = 1                 # the threads each step runs on, as calibrated (the features depend on it)

    def seconds(self, features: np.ndarray) -> float:
        return float(np.dot(features, self.coefficients))


def nonnegative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0 (Lawson-Hanson, which may bring a dropped count back)."""
    from scipy.optimize import nnls
    return nnls(x, y)[0]


def calibrate(network: Network, scratch_bytes: int, repeats: int = 3) -> CostModel:
    """Times every step of a few plans, some reading streamed weights from a file (median of ``repeats`` runs
    after a warm-up, the plans in turns so that drift in the machine's speed affects them alike) and fits
    the model."""
    import tempfile
    from pathlib import Path
    from engine.lower.table import layer_table
    from engine.runtime.executor import FusedExecutor
    from engine.ir.plan import Plan, PlanError, parse_groups
    from yolo.h5store import write_h5
    from yolo.params import random_params
    from yolo.sources import h5_source
    params = random_params(network, 0)
    image = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        write_h5(Path(folder) / "weights.h5", params, network, "")
        source = h5_source(Path(folder) / "weights.h5", network)
        executors = []
        for spec, band in calibration_plans(network):
            try:
                plan = Plan(network, parse_groups(spec), "streamed", band) if band else Plan(network, parse_groups(spec))
                executors.append(FusedExecutor(plan, None if band else params, scratch_bytes,
                                               source=source if band else None))
            except PlanError:
                continue
            executors[-1].run(image)
        samples = time_steps(executors, image, repeats)
        source.close()
    table = layer_table(network)
    x = np.concatenate([features_of(e.program.steps, table, e.threads) for e in executors])
    y = np.concatenate([np.median(times, axis=0) for times in samples])
    scale = np.maximum(x.max(axis=0), 1.0)  # fit on comparable columns
    return CostModel(tuple(nonnegative_fit(x / scale, y) / scale), executors[0].threads)


def time_steps(executors, image: np.ndarray, repeats: int) -> list[np.ndarray]:
    """(repeats, steps) seconds of every step of each executor, the executors in turns."""
    samples = [np.zeros((repeats, len(e.program.steps))) for e in executors]
    placement = Placement(image.shape[2], image.shape[1])  # the image is the network input
    for r in range(repeats):
        for executor, times in zip(executors, samples):
            executor.arena()
            executor.execute(image, placement, times[r])
    return samples


def cache_key(network: Network, scratch_bytes: int) -> str:
    parts = [versions_key(), network.name, str(network.input_shape), str(scratch_bytes)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def load_or_calibrate(network: Network, scratch_bytes: int) -> CostModel:
    """The cached model for this machine, versions and network, or a fresh calibration (a few seconds)."""
    path = cache_dir() / f"costmodel-{cache_key(network, scratch_bytes)}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if (data.get("features") == list(FEATURES) and data.get("version") == FEATURES_VERSION
                and data.get("threads") == default_threads()):
            return CostModel(tuple(data["coefficients"]), data["threads"])
    from engine.report.progress import PROGRESS
    PROGRESS.note(f"calibrating the cost model for {network.name} on this machine (once; about 15 s) ...")
    model = calibrate(network, scratch_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    from yolo.files import atomic_write_bytes
    record = {"features": list(FEATURES), "version": FEATURES_VERSION, "coefficients": model.coefficients,
              "threads": model.threads}
    atomic_write_bytes(path, json.dumps(record).encode())
    return model
