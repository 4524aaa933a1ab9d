"""The memory guard: before anything large is allocated, the process bytes a run will need (from the
predictor) are compared with what the machine can give, so that a typo in a cfg or a size is one line
instead of a machine swapping to a halt."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from yolo.errors import FusetileError


@dataclass(frozen=True)
class Room:
    bytes: int
    source: str  # what limits it: MemAvailable, a cgroup limit or --max-memory


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available(max_memory: int | None = None) -> Room:
    """The least of MemAvailable, the room left under this process's cgroup limit and ``max_memory``."""
    rooms = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                rooms.append(Room(int(line.split()[1]) * 1024, "MemAvailable"))
    except OSError:
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:
            rooms.append(Room(max(cap - used, 0), f"the cgroup limit ({limit})"))
    if max_memory is not None:
        rooms.append(Room(max_memory, "--max-memory"))
    if not rooms:
        return Room(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory")
    return min(rooms, key=lambda r: r.bytes)


def check(needed: int, what: str, room: Room) -> None:
    """Refuses a run whose predicted bytes exceed the room, naming both figures."""
    if needed > room.bytes:
        raise FusetileError(f"{what} needs about {needed / 2**20:,.0f} MiB ({needed:,} B, predicted) but "
                            f"{room.source} leaves {room.bytes / 2**20:,.0f} MiB: use a smaller --size, "
                            f"a smaller network, or --budget")


def reference_bytes(network) -> int:
    """The NumPy reference's activations, estimated: the live maps of each layer plus its im2col matrix."""
    from engine.memory.timeline import layer_by_layer_live_bytes
    from yolo.network import Conv
    live = layer_by_layer_live_bytes(network)
    cols = [(l.in_shape[0] // l.groups) * l.size ** 2 * l.out_shape[1] * l.out_shape[2] * 4 if isinstance(l, Conv)
            else 0 for l in network.layers]
    return max(a + b for a, b in zip(live, cols))


@dataclass(frozen=True)
class ProcessBytes:
    """What a whole run holds at its peak, predicted from its parts (the guard refuses a run with it
    before anything large exists; the report sets it beside the measured resident peak)."""
    baseline: int   # the interpreter and libraries, measured (engine.runtime.baseline)
    arena: int      # the arena (fused) or the reference's feature maps and im2col
    weights: int    # weights held in memory (all of them, unless streamed from a file) and derived from them
    picture: int    # the decoded picture (float32), its letterboxed copy and the picture drawn

    @property
    def total(self) -> int:
        return self.baseline + self.arena + self.weights + self.picture


def process_bytes(network, plan, args, picture_size: tuple[int, int]) -> ProcessBytes:
    from engine.memory.predictor import Predictor, weights_bytes
    from engine.runtime.baseline import runtime_baseline_bytes
    from yolo.weights import is_hdf5
    h5 = args.weights is not None and Path(args.weights).is_file() and is_hdf5(args.weights)
    streamed_from_file = (args.stream_weights and not args.reference and args.weights is not None
                          and not any(g.weights == "resident" for g in plan.groups))
    if args.reference:
        arena, derived = reference_bytes(network), 0
    else:
        prediction = Predictor(network, args.scratch_kib * 1024).predict(plan)
        arena, derived = prediction.arena_bytes, prediction.derived_weights_bytes
    width, height = picture_size
    return ProcessBytes(runtime_baseline_bytes(h5), arena,
                        (0 if streamed_from_file else weights_bytes(network)) + derived, width * height * 3 * 4 * 3)
