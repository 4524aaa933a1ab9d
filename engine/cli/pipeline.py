"""The run itself: network, plan (given or searched), weights, image, execution, detections and outputs,
and the report's figures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engine.cli.planning import make_plan, search_plan
from engine.ir.plan import Plan
from engine.lower.group import DEFAULT_SCRATCH_BYTES
from engine.memory.predictor import Predictor
from engine.memory.timeline import layer_by_layer_live_bytes
from engine.report.accounting import group_dict, group_macs, group_memory
from engine.report.progress import PROGRESS, kernels_cached
from engine.report.schema import process_memory, search_report
from engine.runtime.executor import FusedExecutor
from engine.runtime.reference import run_reference
from engine.cli.head_outputs import DEFAULT_THRESH, check_save_output, save_heads
from engine.runtime.workers import blas_threads, default_threads
from yolo.errors import FusetileError
from yolo.files import Outputs
from yolo.network import Network
from yolo.params import Params, random_params


def default_image() -> Path:
    """Darknet's sample photo, bundled (the trained Nano COCO model finds a dog, a bicycle and cars in it)."""
    from yolo.cfg import BUNDLED_DIR
    return BUNDLED_DIR / "dog.jpg"


def check_writable(path: str | None, what: str) -> None:
    if path is not None and not Path(path).absolute().parent.is_dir():
        raise FusetileError(f"{what} {path!r}: folder {Path(path).absolute().parent} does not exist")


def check_weights_path(args) -> None:
    """A missing weights file is said before any long work (search, runtime baseline)."""
    if args.weights is not None and not Path(args.weights).is_file():
        found = "a folder, not a weights file" if Path(args.weights).is_dir() else "no such file"
        raise FusetileError(f"--weights {args.weights!r}: {found}")


def load_params(args, network: Network, plan: Plan):
    """(parameters in memory, or None; the source load steps read from, or None). With streamed weights
    and a file, the file is opened and read layer by layer as the run needs it, never whole."""
    if args.weights is None:
        from yolo.cfg import bundled_weights
        if bundled_weights(args.cfg) is not None:
            return load_params(argparse.Namespace(**{**vars(args), "weights": str(bundled_weights(args.cfg))}),
                               network, plan)
        print(f"warning: no --weights given: using deterministic random weights (seed {args.seed}); "
              f"detections are meaningless", file=sys.stderr)
        return random_params(network, args.seed), None
    if args.stream_weights and not args.reference and not any(g.weights == "resident" for g in plan.groups):
        from yolo.sources import open_source
        return None, open_source(args.weights, network)
    from yolo.weights import load_weights
    return load_weights(args.weights, network), None


def run(args) -> dict:
    from yolo.cfg import load_network
    from yolo.draw import draw_detections, picture_format
    from yolo.letterbox import Placement, image_size, load_image, to_grey
    from yolo.names import class_names
    from yolo.yolo_head import detect_all

    check_output_paths(args)
    check_weights_path(args)
    target = device_target(args) if args.device or args.device_memory else None
    network = load_network(args.cfg, args.size)
    if not network.heads:
        raise FusetileError(f"cfg {args.cfg!r} has no [region] or [yolo] layer: engine.run runs detectors")
    check_save_output(args, network)
    preprocess = args.preprocess or network.default_preprocess
    thresh = args.thresh if args.thresh is not None else DEFAULT_THRESH[network.fork]
    searched = None
    workspace_searched = args.scratch_kib is None and args.budget not in (None, "auto") and not args.stream_weights
    args.scratch_kib = args.scratch_kib or DEFAULT_SCRATCH_BYTES // 1024
    if args.budget is not None:
        plan, searched = search_plan(args, network, target, workspace_searched)
    else:
        plan = make_plan(args, network)
    image_path = Path(args.image) if args.image else default_image()
    _, net_h, net_w = network.input_shape
    process = guard_memory(args, network, plan, image_path)
    image = load_image(image_path, (net_w, net_h))  # a large JPEG arrives at a reduced scale
    original_size = image_size(image_path)
    params, source = load_params(args, network, plan)
    picture = to_grey(image) if network.input_shape[0] == 1 else image
    placement = Placement.of((picture.shape[2], picture.shape[1]), (net_w, net_h), preprocess)

    if not kernels_cached():
        PROGRESS.note("compiling the kernels on first use (about 20 s on 2 cores; cached for later runs) ...")
    run, latencies, alone = execute(args, plan, params, source, picture, placement)
    detections = detect_all(network, run.head_outputs, (image.shape[2], image.shape[1]), thresh, args.nms,
                            preprocess == "letterbox")
    names = class_names(network.heads[-1].classes)

    memory, macs = memory_report(args, network, plan, run, process)
    report = {
        "config": {"cfg": str(args.cfg), "size": [net_w, net_h], "mode": "reference" if args.reference else "fused",
                   "semantics": network.fork, "preprocess": preprocess, "thresh": thresh,
                   "weights": (source or params).source, "image": str(image_path),
                   "groups": [group_dict(g) for g in plan.groups], "order": plan.order,
                   "stream_weights": plan.weights == "streamed",
                   "band_bytes": plan.band_bytes if plan.weights == "streamed" else None,
                   "threads": args.threads or default_threads(),
                   "scratch_bytes": args.scratch_kib * 1024} | search_report(args, searched),
        "detections": [{"class": names[d.class_id], "class_id": d.class_id, "confidence": round(d.confidence, 6),
                        "box": [round(v, 2) for v in d.pixel_box(*original_size)]}
                       for d in detections],
        "latency_s": round(float(np.median(latencies)), 6),
        "latencies_s": [round(t, 6) for t in latencies],
        "runs_alone": alone,  # timed runs made on one thread, the cores being busy (engine/runtime/executor.py)
        "memory": memory,
        "macs": macs,
        "outputs": {"picture": str(args.out), "raw_output": args.save_output, "plots": args.plot},
    }
    if target is not None:
        report["device"] = model_device(*target, args, plan, run, report["latency_s"])
    with Outputs() as outputs:  # the picture, the raw output and the plots appear together or not at all
        if args.save_output:
            outputs.write(args.save_output, "--save-output", lambda tmp: save_heads(tmp, run.head_inputs))
        picture = draw_detections(image, detections, names)
        outputs.write(args.out, "--out", lambda tmp: picture.save(tmp, format=picture_format(args.out)))
        if args.plot is not None:
            write_plots(outputs.folder(args.plot, "--plot"), plan, run, args, outputs)
    return report


COUNTS = ("measured_peak_bytes: live activation bytes (feature maps, tiles, saved strips and conv workspaces, the "
          "network input included: its regions, made from the picture as the first group reads them); "
          "engine_peak_bytes: everything the engine holds at its peak, those and every weight byte "
          "(resident, or streamed into the arena)")


def memory_report(args, network: Network, plan: Plan, run, process) -> tuple[dict, dict]:
    """The JSON's memory and MACs sections: measured beside predicted."""
    from engine.memory.predictor import weights_bytes
    weights = weights_bytes(network)
    memory = {"layer_by_layer_peak_bytes": max(layer_by_layer_live_bytes(network)), "weights_bytes": weights,
              "counts": COUNTS}
    macs = {"network": network.macs}
    if args.reference:
        memory |= {"measured_peak_bytes": run.peak_bytes, "engine_peak_bytes": run.peak_bytes + weights,
                   "weights_resident_peak_bytes": weights, "weights_read_bytes": 0}
        macs |= {"executed": network.macs, "overhead": 1.0}
        return memory | process_memory(process), macs
    predicted = Predictor(network, args.scratch_kib * 1024).predict(plan)
    memory |= {"measured_peak_bytes": run.activation_peak_bytes, "predicted_peak_bytes": predicted.activation_peak_bytes,
               "engine_peak_bytes": run.engine_peak_bytes, "predicted_engine_peak_bytes": predicted.engine_peak_bytes,
               "weights_resident_peak_bytes": run.weights_resident_peak_bytes,
               "weights_read_bytes": run.weights_read_bytes,
               "arena_bytes": run.arena_bytes, "predicted_arena_bytes": predicted.arena_bytes,
               "groups": group_memory(run.program, run.live_bytes)}
    macs |= {"executed": run.macs, "overhead": round(run.macs / network.macs, 6), "groups": group_macs(run.program)}
    return memory | process_memory(process), macs


def check_output_paths(args) -> None:
    """Output names the run could not write are refused before anything runs."""
    from yolo.draw import picture_format
    check_writable(args.out, "--out")
    picture_format(args.out)
    check_writable(args.save_output, "--save-output")
    if args.save_output is not None and Path(args.save_output).suffix.lower() not in (".npy", ".npz"):
        raise FusetileError(f"--save-output {args.save_output!r}: expected a .npy or .npz file name (NumPy's "
                            f"formats)")
    if args.plot is not None and not Path(args.plot).is_dir():
        check_writable(args.plot, "--plot")  # a new folder is made, inside an existing one


def device_target(args):
    """(device, its memory bytes, the runtime baseline) from --device and --device-memory, checked up front."""
    from engine.runtime.baseline import runtime_baseline_bytes
    from engine.device.paging import parse_device
    device = parse_device(args.device)
    memory = args.device_memory if args.device_memory is not None else device.memory_bytes
    baseline = runtime_baseline_bytes()
    if memory <= baseline + device.page_bytes:
        raise FusetileError(f"--device-memory {memory} B: no larger than the runtime baseline ({baseline} B "
                            f"measured); the model needs memory for weights and activations")
    return device, memory, baseline


def model_device(device, memory: int, baseline: int, args, plan: Plan, run, latency: float) -> dict:
    """The paging model of this run's program (in reference mode: of the layer-by-layer program)."""
    from engine.device.paging import simulate
    if args.reference:
        from engine.lower.program import build_program
        from engine.memory.planner import plan_layout
        program = build_program(Plan(plan.network, ()), args.scratch_kib * 1024)
        layout = plan_layout(program.buffers)
    else:
        program, layout = run.program, run.layout
    return simulate(program, layout, device, memory, baseline).report(latency)


def guard_memory(args, network: Network, plan: Plan, image_path: Path):
    """Refuses, before weights, picture or arena exist, a run the machine cannot hold (the whole process as
    ``guard.process_bytes`` predicts it); returns that prediction."""
    from engine.memory import guard
    from yolo.letterbox import decoded_size
    predicted = guard.process_bytes(network, plan, args,
                                    decoded_size(image_path, (network.input_shape[2], network.input_shape[1])))
    _, h, w = network.input_shape
    guard.check(predicted.total, f"{args.cfg} at {w}x{h}", guard.available(args.max_memory))
    return predicted


def write_plots(folder: Path, plan: Plan, run, args, outputs) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from engine.report import plots
    plots.save(plots.layer_profile(plan.network, plan.groups), folder / "profile.png", outputs)
    if args.reference:
        plots.save(plots.live_timeline(run.live_bytes, label="(reference, per layer)"), folder / "timeline.png",
                   outputs)
        return
    from engine.memory.timeline import program_live_bytes
    predicted = program_live_bytes(run.program.buffers, len(run.program.steps))
    plots.save(plots.live_timeline(run.live_bytes, predicted), folder / "timeline.png", outputs)
    plots.save(plots.arena_map(run.program, run.layout), folder / "arena.png", outputs)


def execute(args, plan: Plan, params: Params | None, source, picture: np.ndarray, placement):
    """One warm-up run (JIT cache load, page faults), then ``--repeat`` timed runs: (the last run, the
    seconds of each, how many ran on one thread as the cores were busy). The reference makes the whole
    network input first; a fused run makes it region by region as its first group reads it."""
    threads = args.threads or default_threads()
    if args.reference:
        from yolo.letterbox import fit
        _, net_h, net_w = plan.network.input_shape
        x = fit(picture, net_w, net_h, placement)

        def once():
            with blas_threads(threads):
                return run_reference(plan.network, params, x)
    else:
        executor = FusedExecutor(plan, params, args.scratch_kib * 1024, source=source, threads=threads)
        once = lambda: executor.run(picture, placement)
    once()
    seconds, alone = [], 0
    for k in range(args.repeat):
        run = once()
        seconds.append(run.seconds)
        alone += not args.reference and run.alone
        PROGRESS.step("timed runs", k + 1, args.repeat)
    return run, seconds, alone
