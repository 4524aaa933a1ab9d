"""Cost model: predicted latency of a configuration as a sum over its steps of calibrated linear costs.

Each step is described by a few work counts (multiply-accumulates, GEMM calls, weights streamed per
band, packed and written elements and the rows they come in, pooled and copied elements, and one per
step for the dispatch overhead of a tile). A short run of a few plans on this machine, timing every
step, fits one non-negative coefficient per count. The fit is cached on disk and keyed by the machine, the library
versions and the network, so it is redone when any of them changes.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.network import Network
from engine.schedule import Step

FEATURES = ("macs", "gemm_calls", "weights_streamed", "packed", "written", "conv_steps", "pooled", "copied",
            "other_steps", "conv_rows")
FEATURES_VERSION = 4  # bumped whenever what a feature counts changes: cached fits are then redone
CALIBRATION_PLANS = ("", "0-7:4x4:stream,8-16:2x2:stream", "0-7:4x4:none,8-16:2x2:checkerboard",
                     "0-15:5x5:stream", "0-3:8x8:none,4-16:2x2:stream", "0-16:3x3:checkerboard")


def step_features(step: Step, network: Network) -> np.ndarray:
    f = np.zeros(len(FEATURES))
    if step.kind == "conv":
        y0, y1, x0, x1 = step.dest.region
        layer, ws = network[step.layer], step.workspace
        oh, ow = y1 - y0, x1 - x0
        c, kk = layer.in_shape[0], layer.size ** 2
        bands = -(-oh // ws.band_rows)
        f[:6] = (step.macs, bands * -(-c // ws.block_channels), layer.filters * c * kk * bands,
                 c * kk * oh * ow, layer.filters * oh * ow, 1)
        f[9] = (c * kk + layer.filters) * oh  # rows packed and written: narrow tiles have more, shorter ones
    elif step.kind == "maxpool":
        y0, y1, x0, x1 = step.dest.region
        layer = network[step.layer]
        f[6] = layer.out_shape[0] * (y1 - y0) * (x1 - x0) * layer.size ** 2
        f[8] = 1
    else:  # copies (a strip saved or filled: one operand has the region), and whole-map steps
        shape = network.shape_of(step.layer)
        region = step.dest.region or (step.sources[0].region if step.sources else None)
        f[7] = shape[0] * ((region[1] - region[0]) * (region[3] - region[2]) if region else shape[1] * shape[2])
        f[8] = 1
    return f


def schedule_features(steps, network: Network) -> np.ndarray:
    return np.sum([step_features(s, network) for s in steps], axis=0) if steps else np.zeros(len(FEATURES))


@dataclass(frozen=True)
class CostModel:
    coefficients: tuple[float, ...]  # seconds per unit of each feature

    def seconds(self, features: np.ndarray) -> float:
        return float(np.dot(features, self.coefficients))


def nonnegative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: drop the most negative one and refit until none is."""
    active = list(range(x.shape[1]))
    while True:
        coef = np.zeros(x.shape[1])
        coef[active] = np.linalg.lstsq(x[:, active], y, rcond=None)[0]
        if (coef[active] >= 0).all():
            return coef
        active.remove(active[int(np.argmin(coef[active]))])


def calibrate(network: Network, scratch_bytes: int, repeats: int = 3) -> CostModel:
    """Times every step of a few plans (median of ``repeats`` runs after a warm-up, the plans in turns so
    that drift in the machine's speed affects them alike) and fits the model."""
    from engine.fused import FusedExecutor
    from engine.params import random_params
    from engine.plan import Plan, PlanError, parse_groups
    params = random_params(network, 0)
    image = np.random.default_rng(0).random(network.input_shape, dtype=np.float32)
    executors = []
    for spec in CALIBRATION_PLANS:
        try:
            executors.append(FusedExecutor(Plan(network, parse_groups(spec)), params, scratch_bytes))
        except PlanError:
            continue
        executors[-1].run(image)
    samples = [np.zeros((repeats, len(e.schedule.steps))) for e in executors]
    for r in range(repeats):
        for executor, times in zip(executors, samples):
            executor.execute(executor.arena(), image, times[r])
    x = np.array([step_features(s, network) for e in executors for s in e.schedule.steps])
    y = np.concatenate([np.median(times, axis=0) for times in samples])
    scale = np.maximum(x.max(axis=0), 1.0)  # fit on comparable columns
    return CostModel(tuple(nonnegative_fit(x / scale, y) / scale))


def versions_key() -> str:
    """Names this machine and the library and package versions (what invalidates measured figures)."""
    import numba
    from importlib.metadata import PackageNotFoundError, version
    try:
        ours = version("fusetile")
    except PackageNotFoundError:
        ours = "source"
    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "")
    parts = [platform.node(), platform.machine(), cpu, str(os.cpu_count()), np.__version__, numba.__version__, ours]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cache_key(network: Network, scratch_bytes: int) -> str:
    parts = [versions_key(), network.name, str(network.input_shape), str(scratch_bytes)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("FUSETILE_CACHE") or Path.home() / ".cache" / "fusetile")


def load_or_calibrate(network: Network, scratch_bytes: int) -> CostModel:
    """The cached model for this machine, versions and network, or a fresh calibration (a few seconds)."""
    path = cache_dir() / f"costmodel-{cache_key(network, scratch_bytes)}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("features") == list(FEATURES) and data.get("version") == FEATURES_VERSION:
            return CostModel(tuple(data["coefficients"]))
    model = calibrate(network, scratch_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    from yolo.files import atomic_write_bytes
    record = {"features": list(FEATURES), "version": FEATURES_VERSION, "coefficients": model.coefficients}
    atomic_write_bytes(path, json.dumps(record).encode())
    return model
