"""Reference engine vs OpenCV DNN on the same cfg, weights and input, measured in one run.

    python benchmarks/bench_reference.py [--repeats 7]

Prints the median latency of each (after warm-up) and the ratio reference / OpenCV.
"""
from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

from benchmarks.common import median_seconds, opencv_runner
from yolo.params import random_params
from engine.runtime.reference import run_reference
from yolo.cfg import cfg_text_at_size, load_network
from yolo.letterbox import letterbox, load_image
from engine.cli.pipeline import default_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    photo = load_image(default_image())
    print(f"cores: {os.cpu_count()}, OpenCV {cv2.__version__} threads {cv2.getNumThreads()}, numpy {np.__version__}")
    print(f"{'network':<22} {'reference ms':>12} {'opencv ms':>10} {'ref/opencv':>10}")
    for cfg, size in [("yolov2.cfg", 416), ("yolov2-tiny.cfg", 416)]:
        network = load_network(cfg, size)
        params = random_params(network, 0)
        x = letterbox(photo, size, size)
        opencv = opencv_runner(cfg_text_at_size(cfg, size), params, x)
        ref = median_seconds(lambda: run_reference(network, params, x), args.repeats)
        cv = median_seconds(opencv, args.repeats)
        print(f"{cfg + '@' + str(size):<22} {ref * 1e3:>12.1f} {cv * 1e3:>10.1f} {ref / cv:>10.2f}")


if __name__ == "__main__":
    main()
