"""fusetile beside what users would otherwise run: ONNX Runtime, OpenVINO and OpenCV DNN, same network,
weights and input.

    pip install -e ".[bench]"
    python -m benchmarks.bench_peers [--cfg yolov2.cfg] [--size 416] [--rounds 20] [--threads 2] [--under-load]

Every runner lives in its own process (its libraries, threads and caches apart) and answers "run" with the
seconds of one inference. The rounds go through all runners in turn, alternately forwards and backwards,
so drift in the machine's speed touches all alike. Each turn starts 0.3 s after the previous one ended,
once that runner's threads have stopped spinning (OpenBLAS's spin about 0.1 s before they sleep): without
the pause, yolov2-tiny layer by layer, whose turn followed the NumPy reference's, ran 47.7 ms against 37.3
with it, while ONNX Runtime, whose turns follow its own or OpenVINO's, did not move. In its turn a runner
infers twice back to back and only the second counts: the first warms the caches the previous runner
filled, as in a service that infers frame after frame. The table gives medians and ratios to ONNX Runtime.
Every runner runs the whole network, its heads included ([region] or [yolo]). Before timing, each runner's
tensors feeding the heads, and the heads' outputs where the runner gives them in the engine's form, are
checked against the NumPy reference (max difference over the tensor's largest magnitude, at most 1e-4).
``--under-load`` adds a second condition, one busy process running beside the runners: each round then
times every runner once without it and once with it (the process is stopped and continued, in alternating
order), so the slowdowns compare like with like. Before each turn without the busy process, the parent
times a cache line's round trip between its first two CPUs (``benchmarks.phase``); when some turns found
them far apart, a second table gives the near and far turns' medians apart.

The peers read the network as ONNX built from the same description (``benchmarks.onnx_graph``), except
OpenCV, which reads the cfg and Darknet weights itself. fusetile runs: the NumPy reference, the fused
executor layer by layer, the default plan of ``engine.run``, the same with its first group in two columns
side by side (``columns`` reuse: one per thread) and the plan the search finds fastest under 1/8 of the
layer-by-layer peak (each group's conv workspace budget searched as well, as ``engine.run --budget`` does).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_name, opencv_forward
from benchmarks.phase import print_phases, round_trip_ns
from engine.runtime.workers import default_threads

TOLERANCE = 1e-4
PEERS = ("onnxruntime", "openvino", "opencv")
SETTLE_S = 0.3  # seconds before each turn, for the previous runner's spinning threads to go to sleep


# --- the runners, each made inside its own process ---------------------------------------------------

def _network(folder: Path):
    from yolo.weights import read_darknet
    setup = json.loads((folder / "setup.json").read_text())
    network = benchmarked_network(setup["cfg"], setup["size"])
    return setup, network, read_darknet(folder / "net.weights", network)


def benchmarked_network(cfg: str, size: int):
    """The network every runner computes: its batch norm divides as OpenCV's importer does (each fork adds
    its epsilon elsewhere; AlexeyAB's networks then differ from OpenCV by 1.6e-4 of a head's largest value on
    MobileNetV2-YOLOv3-Nano), so that every runner is held to TOLERANCE. The speed is the same either way."""
    from dataclasses import replace
    from yolo.cfg import load_network
    from yolo.network import Conv
    network = load_network(cfg, size)
    return replace(network, layers=tuple(replace(layer, bn_rule="opencv") if isinstance(layer, Conv) else layer
                                         for layer in network.layers))


def make_runner(name: str, folder: Path, threads: int):
    """A no-argument callable returning the tensors feeding the heads and the heads' outputs (``results``;
    OpenCV only the first head's input: its heads decode boxes besides)."""
    x = np.load(folder / "input.npy")
    if name == "onnxruntime":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(folder / "net.onnx"), options, providers=["CPUExecutionProvider"])
        feed = {"image": x[None]}
        return lambda: [out[0] for out in session.run(None, feed)]
    if name == "openvino":
        import openvino as ov
        compiled = ov.Core().compile_model(str(folder / "net.onnx"), "CPU",
                                           {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                            "INFERENCE_PRECISION_HINT": "f32"})  # not bf16: same numerics
        request = compiled.create_infer_request()
        return lambda: [out[0] for out in request.infer({0: x[None]}).values()]
    if name == "opencv":
        import cv2
        cv2.setNumThreads(threads)
        forward = opencv_forward(folder / "net.cfg", folder / "net.weights", x)
        return lambda: [forward()[0]]
    setup, network, params = _network(folder)
    if name == "reference":
        from engine.runtime.reference import run_reference
        from engine.runtime.workers import blas_threads

        def reference():
            with blas_threads(threads):
                return results(run_reference(network, params, x), network)
        return reference
    from engine.ir.plan import Plan, parse_groups
    from engine.lower.group import DEFAULT_SCRATCH_BYTES
    from engine.runtime.executor import FusedExecutor
    spec, _, workspace = setup["plans"][name].partition(" @")  # "<groups> @512 KiB": a conv workspace budget
    groups = parse_groups(spec, "stream") if spec != "none" else ()
    scratch = int(workspace.split()[0]) * 1024 if workspace else DEFAULT_SCRATCH_BYTES
    if name.endswith(", 1 thread"):
        executor = FusedExecutor(Plan(network, groups), params, scratch, threads=1)
        return lambda: blas_run(executor, x, threads)
    executor = FusedExecutor(Plan(network, groups), params, scratch, threads=threads)
    return lambda: results(executor.run(x), network)


def blas_run(executor, x: np.ndarray, threads: int) -> list[np.ndarray]:
    from engine.runtime.workers import blas_threads
    with blas_threads(threads):
        return results(executor.run(x), executor.network)


def results(run, network) -> list[np.ndarray]:
    """A run's tensors feeding the heads, then the heads' outputs, in the order of ``onnx_graph``'s outputs."""
    return ([run.head_inputs[i] for i in network.head_inputs]
            + [run.head_outputs[head.index] for head in network.heads])


def serve(name: str, folder: Path, threads: int) -> None:
    """The child: check its results, warm up, then answer every "run" with the seconds of the second of two
    inferences back to back."""
    run = make_runner(name, folder, threads)
    expected = np.load(folder / "results.npz")
    got = run()
    if len(got) not in (1, len(expected.files)):
        raise SystemExit(f"{name}: {len(got)} results, expected {len(expected.files)}")
    error = max(float(np.abs(np.asarray(g, np.float32).reshape(e.shape) - e).max() / np.abs(e).max())
                for g, e in zip(got, (expected[f] for f in sorted(expected.files))))
    for _ in range(2):
        run()
    print(json.dumps({"error": error}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        run()
        start = time.perf_counter()
        run()
        print(time.perf_counter() - start, flush=True)


# --- the parent -----------------------------------------------------------------------------------------

def prepare(folder: Path, cfg: str, size: int, single_thread_too: bool) -> dict[str, str]:
    """Write the cfg, weights, ONNX graph, input and reference results the children read; return the plans."""
    from benchmarks.onnx_graph import onnx_model
    from engine.cli.pipeline import default_image
    from engine.cli.planning import default_plan, search_grids
    from engine.lower.group import DEFAULT_SCRATCH_BYTES
    from engine.memory.timeline import layer_by_layer_live_bytes
    from engine.runtime.reference import run_reference
    from engine.tune.costmodel import load_or_calibrate
    from engine.tune.search import search_workspaces, smallest_feasible_peak
    from yolo.cfg import cfg_text_at_size
    from yolo.letterbox import letterbox, load_image
    from yolo.params import random_params
    from yolo.weights import write_darknet

    network = benchmarked_network(cfg, size)
    params = random_params(network, 0)
    x = letterbox(load_image(default_image()), size, size)
    (folder / "net.cfg").write_text(cfg_text_at_size(cfg, size))
    write_darknet(folder / "net.weights", params)
    (folder / "net.onnx").write_bytes(onnx_model(network, params))
    np.save(folder / "input.npy", x)
    reference = results(run_reference(network, params, x), network)
    np.savez(folder / "results.npz", **{f"result{i}": r for i, r in enumerate(reference)})
    default = default_plan(network)
    budget = max(layer_by_layer_live_bytes(network)) // 8
    grids = search_grids(network, 8)
    evaluator, found = search_workspaces(network, load_or_calibrate(network, DEFAULT_SCRATCH_BYTES), budget,
                                         grids=grids)
    plans = {"layer by layer": "none", "default plan": default.spec}
    fine = default.groups[0] if default.groups else None
    if fine and fine.cols == 1:  # its first group in two columns, side by side on the two threads
        plans["default, columns"] = replace(default, groups=(replace(fine, cols=2, reuse="columns"),)
                                            + default.groups[1:]).spec
    if found:  # with the conv workspace searched along (engine.run --budget does the same)
        plans["fastest under 1/8 peak"] = found[0].spec + f" @{evaluator.predictor.scratch_bytes // 1024} KiB"
    else:
        low = smallest_feasible_peak(evaluator, grids=grids)
        print(f"no configuration peaks under 1/8 of layer by layer ({budget} B); the smallest feasible peak is "
              f"{low} B, 1/{max(layer_by_layer_live_bytes(network)) / low:.1f}", file=sys.stderr)
    if single_thread_too:
        plans |= {f"{name}, 1 thread": spec for name, spec in plans.items()}
    (folder / "setup.json").write_text(json.dumps({"cfg": cfg, "size": size, "plans": plans}))
    return plans


def start(name: str, folder: Path, threads: int) -> tuple[subprocess.Popen, float]:
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_peers", "--serve", name, "--folder",
                              str(folder), "--threads", str(threads)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if not line:
        raise SystemExit(f"{name}: the runner failed to start (see its error above)")
    return child, json.loads(line)["error"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfg", default="yolov2.cfg")
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--under-load", action="store_true", help="one busy process runs beside the runners")
    ap.add_argument("--only", nargs="+", help="run only these runners (names as in the table)")
    ap.add_argument("--single-thread-too", action="store_true",
                    help="also run each fusetile plan with its steps on one thread (BLAS threads as many as --threads)")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, Path(args.folder), args.threads)

    from engine.blas_cpu import openblas_kernels
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plans = prepare(folder, args.cfg, args.size, args.single_thread_too)
        names = [n for n in (*PEERS, "reference", *plans) if not args.only or n in args.only]
        children, errors = {}, {}
        try:
            for name in names:
                children[name], errors[name] = start(name, folder, args.threads)
            bad = {n: e for n, e in errors.items() if not e <= TOLERANCE}
            if bad:
                raise SystemExit(f"results differ from the reference by more than {TOLERANCE}: {bad}")
            seconds = {(name, loaded): [] for name in names for loaded in (False, True)}
            trips = {name: [] for name in names}  # the CPUs' round trip (``benchmarks.phase``) before each turn
            load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.under_load else None
            try:
                for r in range(args.rounds):
                    for loaded in ((False, True) if r % 2 == 0 else (True, False)) if load else (False,):
                        if load:
                            os.kill(load.pid, signal.SIGCONT if loaded else signal.SIGSTOP)
                        for name in names if r % 2 == 0 else names[::-1]:
                            time.sleep(SETTLE_S)
                            if not loaded:  # a busy process would stretch the probe's trips
                                trips[name].append(round_trip_ns())
                            children[name].stdin.write("run\n")
                            children[name].stdin.flush()
                            seconds[name, loaded].append(float(children[name].stdout.readline()))
            finally:
                if load is not None:
                    load.kill()
        finally:
            for child in children.values():
                child.stdin.close()
                child.wait()
    medians = {key: statistics.median(s) for key, s in seconds.items() if s}
    kernels = ", ".join(sorted(set(openblas_kernels().values())))
    print(f"{args.cfg} at {args.size}, {args.threads} threads, {cpu_name()}, OpenBLAS kernels {kernels}; "
          f"medians of {args.rounds} rounds{', each also with one busy process beside' if args.under_load else ''}")
    conditions = (False, True) if args.under_load else (False,)
    titles = ["runner", "plan"] + [title + tag for tag in ("", " loaded")[:len(conditions)]
                                   for title in ("ms", "/ ONNX Runtime")]
    titles += ["slowdown"] * args.under_load + ["max error"]
    rows = []
    for name in names:
        row = [name, plans.get(name, "")]
        for loaded in conditions:
            base = medians.get(("onnxruntime", loaded))
            row += [f"{medians[name, loaded] * 1e3:.1f}", f"{medians[name, loaded] / base:.2f}" if base else "-"]
        if args.under_load:
            row.append(f"{medians[name, True] / medians[name, False]:.2f}")
        rows.append(row + [f"{errors[name]:.1e}"])
    widths = [max(len(t), *(len(r[i]) for r in rows)) for i, t in enumerate(titles)]

    def line(cells: list[str]) -> str:  # runner and plan to the left, figures to the right
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(line(titles))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print_phases(names, {name: seconds[name, False] for name in names}, trips)


if __name__ == "__main__":
    main()
