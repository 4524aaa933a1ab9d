"""Weights streamed into the arena vs resident weights, on the same plans, from real files, one run.

    python -m benchmarks.bench_streaming [--repeats 7] [--cfg yolov2.cfg yolov2-tiny.cfg] [--size 416]

Writes each network's random weights as a Darknet ``.weights`` file and as the HDF5 store in a temporary
folder. For each plan: the engine peak (activations + every weight byte held) measured in the arena and
predicted, the bytes read per inference, and the median latency against the resident-weights run of the
same plan (warm page cache; all runners in turns). Then the cost of a cold page cache: the file's pages
dropped (``posix_fadvise(DONTNEED)``) before each streamed run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import cpu_name, interleaved_medians
from engine.cli.pipeline import default_image
from engine.ir.plan import Plan, parse_groups
from engine.memory.predictor import Predictor
from engine.runtime.executor import FusedExecutor
from yolo.cfg import cfg_text_at_size, load_network
from yolo.h5store import write_h5
from yolo.letterbox import letterbox, load_image
from yolo.params import random_params
from yolo.sources import open_source
from yolo.weights import write_darknet

# (plan, band KiB for layers outside groups): the default plan's grids with every weight streamed
PLANS = {"yolov2": [("0-7:4x4:stream:group,8-16:2x2:stream:tile/2", 2048),
                    ("0-7:4x4:stream:group,8-12:2x2:stream:group", 2048),
                    ("0-7:4x4:stream:group,8-16:2x2:stream:tile/4", 1024)],
         "yolov2-tiny": [("0-9:4x4:stream:group", 2048), ("0-7:4x4:stream:group", 1024)]}


def resident_spec(spec: str) -> str:
    return ",".join(":".join(g.split(":")[:3]) for g in spec.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--cfg", nargs="+", default=["yolov2.cfg", "yolov2-tiny.cfg"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in args.cfg:
            bench(cfg, args.size, args.repeats, Path(tmp))


def bench(cfg: str, size: int, repeats: int, folder: Path) -> None:
    network = load_network(cfg, size)
    params = random_params(network, 0)
    files = {".weights": folder / f"{network.name}.weights", ".h5": folder / f"{network.name}.h5"}
    write_darknet(files[".weights"], params)
    write_h5(files[".h5"], params, network, cfg_text_at_size(cfg, size))
    x = letterbox(load_image(default_image()), size, size)
    predictor = Predictor(network)
    rows, runners = [], {}
    for spec, band_kib in PLANS[Path(cfg).stem]:
        resident = Plan(network, parse_groups(resident_spec(spec)))
        name = f"resident {resident.spec}"
        if name not in runners:
            executor = FusedExecutor(resident, params)
            rows.append((name, None, executor.run(x), predictor.predict(resident), executor))
            runners[name] = (lambda ex=executor: ex.run(x))
        plan = Plan(network, parse_groups(spec), "streamed", band_kib << 10)
        for suffix, path in files.items():
            executor = FusedExecutor(plan, None, source=open_source(path, network))
            label = f"{spec} bands {band_kib} KiB {suffix}"
            rows.append((label, name, executor.run(x), predictor.predict(plan), executor))
            runners[label] = (lambda ex=executor: ex.run(x))
    seconds = interleaved_medians(runners, repeats)
    print(f"{network.name}-{size}: weights {sum(p.nbytes for p in params.layers.values()) / 2**20:.1f} MiB; "
          f"medians of {repeats}, in turns, warm page cache; CPU {cpu_name()}")
    print(f"| {'plan':<58} | {'engine MiB':>10} | {'predicted':>9} | {'weights MiB':>11} | {'read MiB':>8} | "
          f"{'ms':>5} | {'/resident':>9} |")
    print("|" + "|".join("-" * n for n in (60, 12, 11, 13, 10, 7, 11)) + "|")
    for label, base, run, predicted, _ in rows:
        ratio = seconds[label] / seconds[base] if base else 1.0
        same = "==" if predicted.engine_peak_bytes == run.engine_peak_bytes else "!="
        print(f"| {label:<58} | {run.engine_peak_bytes / 2**20:>10.2f} | "
              f"{same:>2} {predicted.engine_peak_bytes / 2**20:>6.2f} | "
              f"{run.weights_resident_peak_bytes / 2**20:>11.2f} | {run.weights_read_bytes / 2**20:>8.1f} | "
              f"{seconds[label] * 1e3:>5.0f} | {ratio:>9.2f} |")
    for label, base, run, _, executor in rows:  # a cold page cache: the file's pages dropped before each run
        if base is None or not label.endswith(".h5"):
            continue
        fd = executor.source.fd
        times = []
        for _ in range(3):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            start = time.perf_counter()
            executor.run(x)
            times.append(time.perf_counter() - start)
        print(f"cold page cache, {label}: {statistics.median(times) * 1e3:.0f} ms "
              f"({statistics.median(times) / seconds[base]:.2f}x resident; pages dropped before each run, "
              f"so the reads come from the disk)")


if __name__ == "__main__":
    main()
