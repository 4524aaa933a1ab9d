"""The command line's arguments: parsing, value checks, and the combinations refused up front."""
from __future__ import annotations

import argparse

from engine.ir.order import ORDERS
from engine.ir.plan import DEFAULT_BAND_BYTES, MAX_SCRATCH_BYTES, REUSE_MODES
from engine.lower.group import DEFAULT_SCRATCH_BYTES
from engine.units import parse_size
from yolo.errors import FusetileError

DEFAULT_CFG = "MobileNetV2-YOLOv3-Nano-coco.cfg"
DEFAULT_REUSE = "stream"

EPILOG = """\
CFG is a path or a bundled cfg. Bundled trained models (their weights bundled too, so they detect
offline): MobileNetV2-YOLOv3-Nano-coco.cfg (the default; 80 COCO classes, 320x320),
MobileNetV2-YOLOv3-Nano-voc.cfg, MobileNetV2-YOLO-Fastest-voc.cfg, MobileNetV2-YOLO-Fastest-voc-v2.cfg,
yoloface-500k.cfg, yoloface-500k-v2.cfg, yoloface-50k.cfg. Bundled YOLOv2 cfgs (random weights unless
--weights): yolov2.cfg (416x416, the classic YOLOv2), yolov2-tiny.cfg, yolov2-voc.cfg, yolov2-tiny-voc.cfg.
--size runs a network at another input size (a multiple of its stride, 32 for these).

Without --weights a bundled trained model uses its own weights; any other network gets deterministic
random weights (--seed): the tensors are real, the detections are meaningless. Weights may be Darknet
.weights or the HDF5 store (python -m yolo.convert).

Semantics: a network whose heads are [yolo] follows AlexeyAB's Darknet (batch norm divides by
sqrt(var + 1e-5); the picture is resized to the network's size, stretched, unless the cfg's [net] says
letter_box=1; detection threshold 0.25; the NMS kind of the last [yolo] layer, greedynms or diounms with
its beta_nms); a [region] network follows pjreddie's (sqrt(var) + 1e-6; letterbox; threshold 0.5;
plain NMS). --preprocess letterbox|resize and --thresh override.

Modes: fused by default. With neither --tiles nor --groups, the default plan starts from two groups: the
layers up to the pool that reaches stride 8 in 8 strips of whole rows (an 8x1 grid), then the layers up to
the last one at stride 16 in 4 (yolov2: 0-7:8x1,8-16:4x1; yolov2-tiny: 0-5:8x1,6-8:4x1); then every further
conv-and-maxpool chain of two or more layers ending at stride 8 or finer in 4 strips (MobileNetV2's blocks).
It then drops, the latest first, every group without which the predicted peak is no higher, and trims the
others' last layers and strips while the peak stays no higher (yolov2 runs 0-7:8x1; yolov2-tiny
0-5:8x1,6-7:2x1; Nano COCO 0-5:4x1,6-8:4x1,10-11:2x1). Strips keep rows contiguous, which the kernels run fastest on.
A group is a chain of conv (grouped and depthwise included), maxpool, shortcut, upsample and route (one or
two sources, channel split) layers, each reading the previous one; a shortcut's or route's other map is a
member or a map held before the group, and only the last member may be read outside it (--budget searches
these groups). Squeeze-excitation, global avgpool, reorg, routes of three or more maps and the heads run
whole-map between groups. --tiles RxC fuses the default span as one group (yolov2:
0-16, yolov2-tiny: 0-8) on an R x C grid. --groups gives explicit groups with inclusive Darknet layer
indices. Layers outside every group run layer by layer, inside the same arena. --reference runs the
layer-by-layer NumPy reference instead.

Order (--order): Darknet runs layers in index order. A head's branch (the layers from a fork to a [yolo]
or [region] head before the last, which nothing else reads) may run after the rest of the network
instead ("heads-last"): the values are the same, its output is not held while the rest runs, and the
fork's map is held longer. Which is smaller depends on the network; --budget tries both.

Reuse (--reuse, or per group: --groups "0-7:4x4:stream,8-16:2x2:none"): "none" recomputes the overlap
between neighbouring tiles in every tile; "checkerboard" (DeepThings) runs every other tile in full and
lets the tiles between them copy the overlap from strips their neighbours saved; "stream" runs tiles in
raster order, each computing only what no earlier tile computed and keeping strips for the next tile
in its row and the tile below: no element is computed twice; "columns" streams down each column and
recomputes the overlap across, so that two columns side by side share nothing and run at once, one per
thread, in buffers of their own (each with half the conv workspace): faster when the cores are slow to
read each other's writes. Saved strips are arena buffers and count in the measured peak.

Memory: "measured_peak_bytes" is the peak of live bytes the fused executor actually allocated in its
arena: feature maps, tiles, saved strips and conv workspaces, the network input included (the first group makes
each region of it from the picture when it reads it, so the whole input never exists). "layer_by_layer_peak_bytes"
is the peak of live feature maps when running layer by layer (no workspace). Weights are excluded and
reported separately ("weights_bytes"). "predicted_process_bytes" estimates the whole process as
"runtime_baseline_bytes" (the interpreter and libraries, measured once per machine in a child process
that runs every kernel on a toy network, kernels already compiled) + the arena + the weights held in
memory (all of them unless streamed from a file) and what the engine derives from them (Winograd's
transformed filters, the epilogue's vectors) + the decoded picture and its copies;
"measured_process_peak_bytes" is this process's resident high-water mark (--plot adds matplotlib).

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

Images: any mode Pillow opens (16/32-bit grey scaled to [0, 1], transparency over the letterbox grey,
EXIF orientation applied); a JPEG far larger than needed is decoded at 1/2, 1/4 or 1/8 scale; other
pictures above 50 megapixels are refused. A cfg with channels=1 runs on the picture's luma.

Memory guard: before anything large is allocated, the predicted process bytes are compared with what
the machine can give (MemAvailable, the cgroup limit, or --max-memory); a run that would not fit stops.

Errors print one line on stderr and exit with status 2; Ctrl-C and SIGTERM exit 130 and 143. The
picture, --save-output and --plot files appear together at the end of a run, or not at all.
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


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text}: expected an integer from 0 to 4294967295")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_int_to(most: int, what: str):
    """``positive_int`` of at most ``most`` (``what``: the bound in words)."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > most:
            raise argparse.ArgumentTypeError(f"{text}: expected at most {most} ({what})")
        return value
    return parse


MAX_THREADS = 256  # threads a run may start: more than cores only wait for them
MAX_REPEAT = 100_000  # --repeat: every latency is kept and reported
MAX_GRID = 32  # --max-grid: the search weighs about N^2 grids per span (yolov2 at 32: 189 s, 654 MB)


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m engine.run",
                        description="Run a Darknet detector on an image in a fraction of the memory.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cfg", nargs="?", default=DEFAULT_CFG,
                    help=f"Darknet cfg path or bundled name (default {DEFAULT_CFG})")
    ap.add_argument("image", nargs="?", help="input image (default: the bundled sample photo dog.jpg)")
    ap.add_argument("--weights", help="Darknet .weights or fusetile .h5 (default: deterministic random weights)")
    ap.add_argument("--seed", type=seed, default=0, help="seed of the random weights used without --weights (default 0)")
    ap.add_argument("--size", type=positive_int, help="network input width = height, a multiple of the network's stride")
    ap.add_argument("--thresh", type=fraction,
                    help="detection threshold (default 0.25 for [yolo] networks, 0.5 for [region] ones)")
    ap.add_argument("--preprocess", choices=("letterbox", "resize"),
                    help="fit the picture to the network by letterbox (aspect kept, grey bars) or resize (stretched) "
                         "(default: the network's Darknet fork, see below)")
    ap.add_argument("--nms", type=fraction, default=0.45, help="NMS IoU threshold (default 0.45)")
    ap.add_argument("--out", default="predictions.png", help="picture with boxes (default predictions.png)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else there")
    ap.add_argument("--save-output", metavar="FILE.npz|FILE.npy",
                    help="save the raw tensor feeding each head ([yolo] or [region]) as float32 (C, H, W): a .npz keyed "
                         "L<i> (Darknet's index of the layer feeding the head), or a .npy for a one-head network")
    ap.add_argument("--tiles", metavar="RxC", help="fuse the default span as one group on an R x C grid (e.g. 3x3)")
    ap.add_argument("--groups", metavar="SPEC", help='explicit fused groups, e.g. "0-7:4x4,8-16:2x2" (inclusive layers)')
    ap.add_argument("--order", choices=ORDERS,
                    help="when heads' branches run: where Darknet runs them, or heads-last, after the rest of the "
                         "network, so their outputs are not held meanwhile (same values; default darknet; "
                         "--budget tries both unless this names one)")
    ap.add_argument("--reuse", metavar="|".join(REUSE_MODES),
                    help=f"how tiles share overlapping work, for groups that name no mode (default {DEFAULT_REUSE}); "
                         f"with --budget, the only mode searched (stream: exactly the network's MACs)")
    ap.add_argument("--scratch-kib", type=positive_int_to(MAX_SCRATCH_BYTES // 1024, "1 TiB"),
                    help=f"workspace budget of one conv step in KiB (default {DEFAULT_SCRATCH_BYTES // 1024}; a group "
                         f"may name its own, as 8-11:13x1:stream@1024; with --budget SIZE, each group's is searched "
                         f"among 256, 512, 1024 and 2048)")
    ap.add_argument("--budget", type=budget_arg, metavar="SIZE|auto",
                    help="search the fastest configuration whose predicted peak fits SIZE (e.g. 6MB, 5MiB), run it; "
                         "with --stream-weights SIZE bounds the engine peak (activations and weights) and the weights' "
                         "modes and bands are searched too; auto: the least modelled latency on --device")
    ap.add_argument("--max-grid", type=positive_int_to(MAX_GRID, "the search's time grows with its square"),
                    default=8, metavar="N",
                    help=f"--budget searches grids up to N x N, non-square included, and strips of whole rows up to "
                         f"8N (default 8, at most {MAX_GRID}: yolov2's search took 3.5 s at 8, 27 s at 16, "
                         f"189 s at 32)")
    ap.add_argument("--device", metavar="NAME[:FIELDS]",
                    help="model paging on a device: rpi3, rpi4-usb-ssd or zram, fields overridable as in "
                         "rpi3:fault=1ms,read=10MB/s (a model, see below)")
    ap.add_argument("--device-memory", type=byte_size, metavar="SIZE",
                    help="the device's memory for --device (default: the preset's, e.g. 1GB for rpi3)")
    ap.add_argument("--max-memory", type=byte_size, metavar="SIZE",
                    help="refuse a run whose predicted process bytes exceed SIZE (default: what the machine has "
                         "available: MemAvailable or the cgroup limit)")
    ap.add_argument("--stream-weights", action="store_true",
                    help="read each conv layer's weights into the arena just before the steps that use them and "
                         "release them after: groups keep a layer's weights for their run (or per tile: "
                         "0-7:4x4:stream:tile/2), other layers read them in bands of input channels (--band-kib)")
    ap.add_argument("--band-kib", type=positive_int_to(MAX_SCRATCH_BYTES // 1024, "1 TiB"), metavar="KIB",
                    help=f"with --stream-weights, the largest piece of weights a layer outside groups holds "
                         f"(default: searched with --budget, else {DEFAULT_BAND_BYTES // 1024})")
    ap.add_argument("--threads", type=positive_int_to(MAX_THREADS, "threads"), metavar="N",
                    help="threads sharing each conv and maxpool step (BLAS runs single-threaded inside each share; "
                         "with --reference, BLAS's threads) (default: one per core this process may use)")
    ap.add_argument("--repeat", type=positive_int_to(MAX_REPEAT, "runs, each listed in latencies_s"), default=1,
                    metavar="N",
                    help="time N runs after the warm-up; latency_s is their median, latencies_s all N (default 1)")
    ap.add_argument("--quiet", action="store_true",
                    help="no progress lines on stderr (by default long work says what it does every few seconds)")
    ap.add_argument("--plot", metavar="DIR", help="write profile.png, timeline.png and (fused) arena.png into DIR")
    ap.add_argument("--reference", action="store_true", help="run the layer-by-layer NumPy reference")
    return ap


def budget_arg(text: str):
    """A size, or "auto": what the --device leaves for activations."""
    return "auto" if text.strip().lower() == "auto" else byte_size(text)



def check_combinations(args) -> None:
    """Options that cannot go together are refused before anything runs."""
    chosen = [name for name, given in (("--tiles", args.tiles), ("--groups", args.groups is not None),
                                       ("--reference", args.reference)) if given]
    if args.budget is not None and chosen:
        raise FusetileError(f"--budget searches the plan: drop {' and '.join(chosen)}, or drop --budget")
    if len(chosen) > 1:
        raise FusetileError(f"{' and '.join(chosen)} both given: each chooses the plan; use one")
    if args.order is not None and args.reference:
        raise FusetileError(f"--order {args.order} orders the fused path; --reference runs in Darknet's order: "
                            f"drop one")
    if args.device_memory is not None and args.device is None:
        raise FusetileError("--device-memory needs --device (rpi3, rpi4-usb-ssd or zram)")
    if args.device is not None and not args.device.strip():
        raise FusetileError("--device '': expected a device name: rpi3, rpi4-usb-ssd or zram")
    if args.band_kib is not None and not args.stream_weights:
        raise FusetileError("--band-kib sizes the bands of streamed weights: add --stream-weights")
    if args.groups is not None and args.groups.strip() != "none" and not any(
            part.strip() for part in args.groups.split(",")):
        raise FusetileError(f"--groups {args.groups!r}: expected groups such as 0-7:4x4,8-16:2x2, or 'none' to run "
                            f"every layer layer by layer in the arena")
    if args.budget == "auto" and args.device is None:
        raise FusetileError("--budget auto fits the device: give --device (and --device-memory)")
