"""Command line: detections, a picture with boxes, and the run's memory and latency figures.

    python -m engine.run [CFG] [IMAGE] [--weights FILE] [--size N] [--json] ...

The default mode is fused: the memory-heavy early layers run as fused, tiled groups; everything runs in
one arena whose every allocation is recorded. Memory figures count activations: every live feature map,
tile and conv workspace, the input image included; weights are reported separately ("weights_bytes").
"""
from __future__ import annotations

import json
import sys

from engine.cli.args import build_parser, check_combinations
from yolo.errors import run_command


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("engine.run", lambda: command(args))


def command(args) -> int:
    check_combinations(args)
    from engine.report.progress import PROGRESS
    PROGRESS.enabled = not args.quiet
    from engine.cli.pipeline import run
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        from engine.report.text import print_human
        print_human(report, report["config"]["thresh"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
