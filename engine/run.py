"""Command line: detections, a picture with boxes, and the run's memory and latency figures.

    python -m engine.run [CFG] [IMAGE] [--weights FILE] [--size N] [--json] ...

The default mode is fused: the memory-heavy early layers run as fused, tiled groups; everything runs in
one arena whose every allocation is recorded. Memory figures count activations: every live feature map,
tile and conv workspace, the input image included; weights are reported separately ("weights_bytes").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.errors import FusetileError
from engine.units import parse_size
from engine.network import Network
from engine.params import Params, random_params
from engine.fused import FusedExecutor
from engine.accounting import group_dict, group_macs, group_memory
from engine.plan import Plan, PlanError, check_reuse, default_groups, parse_grid, parse_groups
from engine.predict import Predictor
from engine.reference import layer_by_layer_live_bytes, run_reference
from engine.reuse import REUSE_MODES
from engine.schedule import DEFAULT_SCRATCH_BYTES

DEFAULT_CFG = "yolov2.cfg"
DEFAULT_REUSE = "stream"

EPILOG = """\
CFG is a path or a bundled cfg: yolov2.cfg (416x416, the classic YOLOv2), yolov2-tiny.cfg,
yolov2-voc.cfg, yolov2-tiny-voc.cfg. For the 608x608 network of pjreddie's current cfg use
--size 608 (any multiple of the network's stride, 32 for YOLOv2, works).

Without --weights the network gets deterministic random weights (--seed): the tensors are real,
the detections are meaningless. Weights may be Darknet .weights or the HDF5 store (python -m yolo.convert).

Modes: fused by default. With neither --tiles nor --groups, two groups are fused: the layers up to the
pool that reaches stride 8 on a 4x4 grid, then the layers up to the last one at stride 16 on 2x2 (yolov2:
0-7:4x4,8-16:2x2; yolov2-tiny: 0-5:4x4,6-8:2x2). --tiles RxC fuses that whole span as one group (yolov2:
0-16, yolov2-tiny: 0-8) on an R x C grid. --groups gives explicit groups with inclusive Darknet layer
indices. Layers outside every group run layer by layer, inside the same arena. --reference runs the
layer-by-layer NumPy reference instead.

Reuse (--reuse, or per group: --groups "0-7:4x4:stream,8-16:2x2:none"): "none" recomputes the overlap
between neighbouring tiles in every tile; "checkerboard" (DeepThings) runs every other tile in full and
lets the tiles between them copy the overlap from strips their neighbours saved; "stream" runs tiles in
raster order, each computing only what no earlier tile computed and keeping strips for the next tile
in its row and the tile below: no element is computed twice. Saved strips are arena buffers and count
in the measured peak.

Memory: "measured_peak_bytes" is the peak of live bytes the fused executor actually allocated in its
arena: feature maps, tiles, saved strips and conv workspaces, the input image included. "layer_by_layer_peak_bytes"
is the peak of live feature maps when running layer by layer (no workspace). Weights are excluded and
reported separately ("weights_bytes"). "predicted_process_bytes" estimates the whole process as weights +
arena + "runtime_baseline_bytes" (the interpreter and libraries, measured once per machine in a child
process that runs every kernel on a toy network); "measured_process_peak_bytes" is this process's
resident high-water mark, which also holds the image, the picture and the random weights' temporaries.

Device model (--device, --device-memory): A MODEL, NOT A MEASUREMENT. The run's schedule (every step
the executor performs, at the arena offsets it uses) is replayed as page touches, weights included,
against least-recently-used pages as large as the device memory less the runtime baseline; swap-ins
cost the device's fault latency plus a page read, evictions of written pages a page write. It reports
the steady state (a second inference) as "device" in the JSON: swap-ins, swap-outs, paging seconds and
"modelled_latency_s" = the latency measured here + paging seconds. It ignores the device's slower
compute, readahead, the page cache, other processes and the kernel's approximations of LRU.
--budget auto searches for the device: the search's picks for activation budgets from what the device
leaves (memory - runtime baseline - weights) down to the smallest feasible peak are replayed through
the model, and the one of least modelled latency (predicted compute + paging) runs.

Errors print one line on stderr and exit with status 2.
"""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, as for every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


def byte_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m engine.run", description="Run a Darknet YOLOv2 network on an image.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cfg", nargs="?", default=DEFAULT_CFG, help=f"Darknet cfg path or bundled name (default {DEFAULT_CFG})")
    ap.add_argument("image", nargs="?", help="input image (default: matplotlib's sample grace_hopper.jpg)")
    ap.add_argument("--weights", help="Darknet .weights or fusetile .h5 (default: deterministic random weights)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights used without --weights (default 0)")
    ap.add_argument("--size", type=positive_int, help="network input width = height, a multiple of the network's stride")
    ap.add_argument("--thresh", type=fraction, default=0.5, help="detection threshold (default 0.5)")
    ap.add_argument("--nms", type=fraction, default=0.45, help="NMS IoU threshold (default 0.45)")
    ap.add_argument("--out", default="predictions.png", help="picture with boxes (default predictions.png)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")
    ap.add_argument("--save-output", metavar="FILE.npy", help="save the raw output feeding [region] as float32 (C, H, W)")
    ap.add_argument("--tiles", metavar="RxC", help="fuse the default span as one group on an R x C grid (e.g. 3x3)")
    ap.add_argument("--groups", metavar="SPEC", help='explicit fused groups, e.g. "0-7:4x4,8-16:2x2" (inclusive layers)')
    ap.add_argument("--reuse", default=DEFAULT_REUSE, metavar="|".join(REUSE_MODES),
                    help=f"how tiles share overlapping work, for groups that name no mode (default {DEFAULT_REUSE})")
    ap.add_argument("--scratch-kib", type=positive_int, default=DEFAULT_SCRATCH_BYTES // 1024,
                    help=f"workspace budget of one conv step in KiB (default {DEFAULT_SCRATCH_BYTES // 1024})")
    ap.add_argument("--budget", type=budget_arg, metavar="SIZE|auto",
                    help="search the fastest configuration whose predicted peak fits SIZE (e.g. 6MB, 5MiB), run it; "
                         "auto: the least modelled latency on --device")
    ap.add_argument("--max-grid", type=positive_int, default=8, metavar="N",
                    help="--budget searches grids up to N x N, non-square included (default 8)")
    ap.add_argument("--device", metavar="NAME[:FIELDS]",
                    help="model paging on a device: rpi3, rpi4-usb-ssd or zram, fields overridable as in "
                         "rpi3:fault=1ms,read=10MB/s (a model, see below)")
    ap.add_argument("--device-memory", type=byte_size, metavar="SIZE",
                    help="the device's memory for --device (default: the preset's, e.g. 1GB for rpi3)")
    ap.add_argument("--plot", metavar="DIR", help="write profile.png, timeline.png and (fused) arena.png into DIR")
    ap.add_argument("--reference", action="store_true", help="run the layer-by-layer NumPy reference")
    return ap


def default_image() -> Path:
    import matplotlib.cbook
    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def check_writable(path: str | None, what: str) -> None:
    if path is not None and not Path(path).absolute().parent.is_dir():
        raise FusetileError(f"{what} {path!r}: folder {Path(path).absolute().parent} does not exist")


def load_params(args, network: Network) -> Params:
    if args.weights is None:
        print(f"warning: no --weights given: using deterministic random weights (seed {args.seed}); "
              f"detections are meaningless", file=sys.stderr)
        return random_params(network, args.seed)
    from yolo.weights import load_weights
    if not Path(args.weights).is_file():
        raise FusetileError(f"--weights {args.weights!r}: no such file")
    return load_weights(args.weights, network)


def run(args) -> dict:
    from yolo.cfg import load_network
    from yolo.draw import draw_detections, save_picture
    from yolo.letterbox import letterbox, load_image
    from yolo.names import class_names
    from yolo.region import detect

    check_writable(args.out, "--out")
    check_writable(args.save_output, "--save-output")
    if args.plot is not None and not Path(args.plot).is_dir():
        check_writable(args.plot, "--plot")  # a new folder is made, inside an existing one
    target = device_target(args) if args.device or args.device_memory else None
    network = load_network(args.cfg, args.size)
    if network.region is None:
        raise FusetileError(f"cfg {args.cfg!r} has no [region] layer: engine.run detects with YOLOv2 networks")
    searched = None
    if args.budget is not None:
        searched = search_plan(args, network, target)
        plan = Plan(network, searched[0].groups)
    else:
        plan = make_plan(args, network)
    image_path = Path(args.image) if args.image else default_image()
    image = load_image(image_path)
    params = load_params(args, network)
    _, net_h, net_w = network.input_shape
    x = letterbox(image, net_w, net_h)

    run = execute(args, plan, params, x)
    detections = detect(run.output, network.region, (image.shape[2], image.shape[1]), (net_w, net_h),
                        args.thresh, args.nms)
    names = class_names(network.region.classes)

    if args.save_output:
        from yolo.files import atomic_write_bytes
        import io
        buffer = io.BytesIO()
        np.save(buffer, run.head.astype(np.float32))
        atomic_write_bytes(args.save_output, buffer.getvalue())
    save_picture(draw_detections(image, detections, names), args.out)
    if args.plot is not None:
        write_plots(Path(args.plot), plan, run, args)

    lbl_peak = max(layer_by_layer_live_bytes(network))
    memory = {"layer_by_layer_peak_bytes": lbl_peak, "weights_bytes": params.nbytes,
              "counts": "live activation bytes: feature maps, tiles, saved strips and conv workspaces, input image included; "
                        "weights excluded"}
    macs = {"network": network.macs}
    if args.reference:
        memory |= {"measured_peak_bytes": run.peak_bytes}
        macs |= {"executed": network.macs, "overhead": 1.0}
    else:
        predicted = Predictor(network, args.scratch_kib * 1024).predict(plan)
        memory |= {"measured_peak_bytes": run.peak_bytes, "predicted_peak_bytes": predicted.peak_bytes,
                   "arena_bytes": run.arena_bytes, "predicted_arena_bytes": predicted.arena_bytes,
                   "groups": group_memory(run.schedule, run.live_bytes)}
        macs |= {"executed": run.macs, "overhead": round(run.macs / network.macs, 6),
                 "groups": group_macs(run.schedule)}
    memory |= process_memory(args, params.nbytes, None if args.reference else memory["predicted_arena_bytes"])
    report = {
        "config": {"cfg": str(args.cfg), "size": [net_w, net_h], "mode": "reference" if args.reference else "fused",
                   "weights": params.source, "image": str(image_path),
                   "groups": [group_dict(g) for g in plan.groups],
                   "scratch_bytes": args.scratch_kib * 1024} | search_report(args, searched),
        "detections": [{"class": names[d.class_id], "class_id": d.class_id, "confidence": round(d.confidence, 6),
                        "box": [round(v, 2) for v in d.pixel_box(image.shape[2], image.shape[1])]}
                       for d in detections],
        "latency_s": round(run.seconds, 6),
        "memory": memory,
        "macs": macs,
        "outputs": {"picture": str(args.out), "raw_output": args.save_output, "plots": args.plot},
    }
    if target is not None:
        report["device"] = model_device(*target, args, plan, run)
    return report


def device_target(args):
    """(device, its memory bytes, the runtime baseline) from --device and --device-memory, checked up front."""
    from engine.baseline import runtime_baseline_bytes
    from engine.paging import parse_device
    if args.device is None:
        raise FusetileError("--device-memory needs --device (rpi3, rpi4-usb-ssd or zram)")
    device = parse_device(args.device)
    memory = args.device_memory if args.device_memory is not None else device.memory_bytes
    baseline = runtime_baseline_bytes()
    if memory <= baseline + device.page_bytes:
        raise FusetileError(f"--device-memory {memory} B: no larger than the runtime baseline ({baseline} B "
                            f"measured); the model needs memory for weights and activations")
    return device, memory, baseline


def model_device(device, memory: int, baseline: int, args, plan: Plan, run) -> dict:
    """The paging model of this run's schedule (in reference mode: of the layer-by-layer schedule)."""
    from engine.paging import simulate
    if args.reference:
        from engine.arena import plan_layout
        from engine.schedule import build_schedule
        schedule = build_schedule(Plan(plan.network, ()), args.scratch_kib * 1024)
        layout = plan_layout(schedule.buffers)
    else:
        schedule, layout = run.schedule, run.layout
    return simulate(schedule, layout, device, memory, baseline).report(run.seconds)


def process_memory(args, weights: int, arena: int | None) -> dict:
    """The whole-process estimate (weights + arena + measured runtime baseline; fused mode) beside this
    process's resident peak."""
    from engine.baseline import resident_high_water, runtime_baseline_bytes
    baseline = runtime_baseline_bytes()
    estimate = {} if arena is None else {"predicted_process_bytes": weights + arena + baseline}
    return {"runtime_baseline_bytes": baseline, **estimate, "measured_process_peak_bytes": resident_high_water()}


def write_plots(folder: Path, plan: Plan, run, args) -> None:
    folder.mkdir(exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    from engine import plots
    plots.save(plots.layer_profile(plan.network, plan.groups), folder / "profile.png")
    if args.reference:
        plots.save(plots.live_timeline(run.live_bytes, label="(reference, per layer)"), folder / "timeline.png")
        return
    from engine.arena import live_bytes_timeline
    predicted = live_bytes_timeline(run.schedule.buffers, len(run.schedule.steps))
    plots.save(plots.live_timeline(run.live_bytes, predicted), folder / "timeline.png")
    plots.save(plots.arena_map(run.schedule, run.layout), folder / "arena.png")


def budget_arg(text: str):
    """A size, or "auto": what the --device leaves for activations."""
    return "auto" if text.strip().lower() == "auto" else byte_size(text)


AUTO_BUDGET = ("--budget auto: the searched configurations for activation budgets from what the device leaves "
               "down to the smallest feasible peak, replayed through the paging model; the least modelled latency "
               "(compute + paging) wins")


def search_plan(args, network: Network, target):
    """(the chosen configuration, the activation budget searched, how it was chosen)."""
    from engine.costmodel import load_or_calibrate
    from engine.search import Choice, Evaluator, search, smallest_feasible_peak
    scratch = args.scratch_kib * 1024
    predictor = Predictor(network, scratch)
    evaluator = Evaluator(predictor, load_or_calibrate(network, scratch))
    grids = tuple((r, c) for r in range(1, args.max_grid + 1) for c in range(1, args.max_grid + 1))
    if args.budget == "auto":
        if target is None:
            raise PlanError("--budget auto fits the device: give --device (and --device-memory)")
        from engine.device_curves import DeviceModel
        device, memory, baseline = target
        best = DeviceModel(evaluator, device, baseline).best_searched(memory, grids)
        return (Choice(best.groups, best.compute_seconds, predictor.predict_peak(best.groups)),
                memory - baseline - predictor.weights_bytes, AUTO_BUDGET)
    found = search(evaluator, args.budget, grids=grids, progress=not args.json and sys.stderr.isatty())
    if not found:
        low = smallest_feasible_peak(evaluator, grids=grids)
        raise PlanError(f"--budget {args.budget} B: no configuration fits; the smallest feasible predicted "
                        f"peak is {low} B ({low / 2**20:.2f} MiB)")
    return found[0], args.budget, "the fastest predicted configuration whose predicted peak fits"


def search_report(args, searched) -> dict:
    if searched is None:
        return {}
    choice, budget, how = searched
    return {"budget_bytes": budget,
            "search": {"predicted_seconds": round(choice.predicted_seconds, 6),
                       "predicted_peak_bytes": choice.predicted_peak_bytes, "max_grid": args.max_grid,
                       "chosen": how,
                       "model": "latency: calibrated per-step linear cost model; peak: exact predictor"}}


def make_plan(args, network: Network) -> Plan:
    if args.tiles and args.groups:
        raise PlanError("--tiles and --groups both given: use one (--tiles applies a grid to the default span)")
    if args.budget is not None and (args.tiles or args.groups or args.reference):
        raise PlanError("--budget searches the plan: drop --tiles, --groups and --reference")
    if args.reference:
        if args.tiles or args.groups:
            raise PlanError("--reference runs layer by layer: drop --tiles/--groups, or drop --reference")
        return Plan(network, ())
    reuse = check_reuse(args.reuse)
    if args.groups is not None:
        groups = parse_groups(args.groups, reuse)
    else:
        groups = default_groups(network, parse_grid(args.tiles) if args.tiles else None, reuse)
    return Plan(network, groups)


def execute(args, plan: Plan, params: Params, x: np.ndarray):
    """One warm-up run (JIT cache load, page faults), then the measured run."""
    if args.reference:
        run_reference(plan.network, params, x)
        return run_reference(plan.network, params, x)
    executor = FusedExecutor(plan, params, args.scratch_kib * 1024)
    executor.run(x)
    return executor.run(x)


def print_human(report: dict) -> None:
    cfg = report["config"]
    w, h = cfg["size"]
    print(f"{cfg['cfg']} {w}x{h}, {cfg['mode']} mode, weights {cfg['weights']}, image {cfg['image']}")
    for d in report["detections"]:
        print(f"{d['class']}: {d['confidence'] * 100:.0f}%")
    mem, macs = report["memory"], report["macs"]
    print(f"latency: {report['latency_s'] * 1e3:.1f} ms ({macs['network'] / 1e9:.2f} GMAC, "
          f"{macs['overhead']:.3f}x executed)")
    groups = ", ".join(f"{a}-{b}:{n}x{m}:{g['reuse']}" for g in report["config"]["groups"]
                       for (a, b), (n, m) in [(g["layers"], g["grid"])]) or "none"
    print(f"peak activation memory: {mem['measured_peak_bytes'] / 2**20:.2f} MiB measured "
          f"({cfg['mode']}, groups {groups}) vs {mem['layer_by_layer_peak_bytes'] / 2**20:.2f} MiB layer by layer; "
          f"weights {mem['weights_bytes'] / 2**20:.1f} MiB (not counted)")
    if "device" in report:
        dev = report["device"]
        print(f"device model ({dev['device']}, {dev['device_memory_bytes'] / 2**20:.0f} MiB, a model): "
              f"{dev['swap_ins']} swap-ins and {dev['swap_outs']} swap-outs per inference, "
              f"{dev['paging_seconds']:.2f} s paging; modelled latency {dev['modelled_latency_s']:.2f} s "
              f"vs {report['latency_s']:.2f} s measured here")
    print(f"picture written to {report['outputs']['picture']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except FusetileError as err:
        print(f"engine.run: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"engine.run: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        print_human(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
