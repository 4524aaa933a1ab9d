"""Constrained-memory model: the time a configuration loses to paging on a device with little memory.

This is a model, not a measurement. It replays the lowered program (every step the fused executor
performs, at the exact arena offsets it uses) as page touches: each step reads its source regions and writes
its destination region and workspaces, and each conv step reads its weights. A least recently used set of
pages, as large as the device's memory less the measured runtime baseline, decides which touches fault.

- Resident weights are anonymous memory: they start resident and dirty in load order (as after loading),
  and page like the arena. A fault on a page that was swapped out costs the device's fault latency plus a
  page read at its swap bandwidth; evicting a page written since it was last read back costs a page write.
- Streamed weights are clean file pages (the channel-major HDF5 store: each load step reads one
  contiguous range): a load step reads them into its arena buffer. Those still in the page cache cost
  nothing; the others are read sequentially at the storage's read bandwidth (readahead: no per-page fault
  latency). File pages share the LRU with everything else and are never written to swap: evicting them is
  free.

The model runs the program once to warm up and reports the second run, the steady state of repeated
inference. Ignored: the compute slowdown of the device (compute time stays this machine's), the
runtime's own pages (taken as always resident, which is pessimistic when cold library code could be
swapped out), other processes and the kernel's approximations of LRU (true LRU is harsh on a working set
that cycles just beyond memory: every page then faults).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from numba import njit

from yolo.errors import FusetileError
from yolo.network import FLOAT_BYTES, Conv, Network
from engine.memory.predictor import conv_weights_bytes
from engine.lower.program import Program
from engine.lower.table import (CONV_STEP, COPY_STEP, LOAD_STEP, S_CHANNELS, S_DC0, S_DST, S_DY0, S_C0, S_C1,
                                S_KIND, S_LAYER, S_SCRATCH, S_SRC, S_SRC2, S_SY0, S_WEIGHTS, S_S2X0, S_S2Y0,
                                S_DX0, SCALE_STEP)
from engine.memory.planner import Layout
from engine.units import parse_size

MODEL_NOTE = ("model: LRU page simulation of the program's buffer touches and weight reads on the device's "
              "memory less the measured runtime baseline; counts swap-ins and swap-outs of resident weights and arena "
              "pages, and streamed weights read from storage (clean file pages, sequential); ignores the device's "
              "slower compute and other processes")


@dataclass(frozen=True)
class Device:
    name: str
    page_bytes: int
    fault_seconds: float        # latency of one major fault (storage access and the kernel's work)
    read_bytes_per_s: float     # swap-in bandwidth
    write_bytes_per_s: float    # swap-out bandwidth
    memory_bytes: int           # the board's memory, the default --device-memory
    about: str = ""

    def seconds(self, swap_ins: int, swap_outs: int, file_reads: int = 0) -> float:
        """Swap-ins (a fault and a page read each), swap-outs, and file pages read sequentially."""
        return swap_ins * (self.fault_seconds + self.page_bytes / self.read_bytes_per_s) \
            + swap_outs * self.page_bytes / self.write_bytes_per_s + file_reads * self.page_bytes / self.read_bytes_per_s


DEVICES = {
    "rpi3": Device("rpi3", 4096, 0.4e-3, 20e6, 10e6, 2**30,
                   "Raspberry Pi 3, swap on a class-10 SD card (about 2,000 random 4 KiB reads/s)"),
    "rpi4-usb-ssd": Device("rpi4-usb-ssd", 4096, 0.1e-3, 300e6, 250e6, 2 * 2**30,
                           "Raspberry Pi 4, swap on a USB 3 SSD"),
    "zram": Device("zram", 4096, 20e-6, 1e9, 600e6, 2**30, "compressed swap in RAM (zram, lz4) on an ARM board"),
}

_FIELDS = {"page": "page_bytes", "fault": "fault_seconds", "read": "read_bytes_per_s", "write": "write_bytes_per_s"}


def parse_device(text: str) -> Device:
    """A preset name, or a preset with fields overridden: 'rpi3:fault=1ms,read=10MB/s,write=5MB/s,page=4KiB'."""
    name, _, overrides = text.partition(":")
    if name not in DEVICES:
        raise FusetileError(f"--device {text!r}: unknown device {name!r}, expected one of {', '.join(DEVICES)} "
                            f"(optionally with :fault=1ms,read=20MB/s,write=10MB/s,page=4KiB)")
    fields = {}
    for item in filter(None, overrides.split(",")):
        key, _, value = item.partition("=")
        m = re.fullmatch(r"\s*([\d.]+)\s*(ms|us|s)\s*", value) if key == "fault" else None
        try:
            if key == "fault":
                if not m:
                    raise ValueError
                fields["fault_seconds"] = float(m[1]) * {"s": 1, "ms": 1e-3, "us": 1e-6}[m[2]]
            elif key in ("read", "write"):
                fields[_FIELDS[key]] = float(parse_size(value.removesuffix("/s")))
            elif key == "page":
                fields["page_bytes"] = parse_size(value)
            else:
                raise KeyError(key)
        except (ValueError, KeyError) as err:
            raise FusetileError(f"--device {text!r}: bad field {item!r}, expected fault=<n>ms, read=<size>/s, "
                                f"write=<size>/s or page=<size>") from err
    device = replace(DEVICES[name], **fields)
    if device.page_bytes < 512 or min(device.read_bytes_per_s, device.write_bytes_per_s) <= 0:
        raise FusetileError(f"--device {text!r}: page must be at least 512 B and bandwidths positive")
    return device


@dataclass(frozen=True)
class Paging:
    device: Device
    memory_bytes: int          # the device's memory
    runtime_bytes: int         # the measured runtime baseline, taken as resident
    working_set_bytes: int     # weights + arena pages the run touches
    swap_ins: int              # per inference, steady state
    swap_outs: int
    file_reads: int = 0        # pages of streamed weights read from storage (not in the page cache)

    @property
    def seconds(self) -> float:
        return self.device.seconds(self.swap_ins, self.swap_outs, self.file_reads)

    def report(self, compute_seconds: float) -> dict:
        return {"model": MODEL_NOTE, "device": self.device.name, "device_memory_bytes": self.memory_bytes,
                "runtime_baseline_bytes": self.runtime_bytes, "working_set_bytes": self.working_set_bytes,
                "swap_ins": self.swap_ins, "swap_outs": self.swap_outs, "file_page_reads": self.file_reads,
                "paging_seconds": round(self.seconds, 6),
                "modelled_latency_s": round(compute_seconds + self.seconds, 6)}


def weight_blocks(network: Network, base: int, page_bytes: int) -> dict[int, tuple[int, int]]:
    """Each conv layer's weights (filters, BN and bias vectors) as one page-aligned block after ``base``."""
    blocks, at = {}, base
    for layer in network.layers:
        if isinstance(layer, Conv):
            size = conv_weights_bytes(layer)
            blocks[layer.index] = (at, at + size)
            at = -(-(at + size) // page_bytes) * page_bytes
    return blocks


def _ranges(offset: int, shape: tuple[int, ...], c0: int, c1: int, box) -> tuple[np.ndarray, np.ndarray]:
    """Byte ranges that channels [c0, c1) of a (C, H, W) buffer's region cover, one per row (or plane); a
    flat buffer is one range."""
    if len(shape) != 3:
        return np.array([offset]), np.array([offset + shape[0] * FLOAT_BYTES])
    _, h, w = shape
    y0, y1, x0, x1 = box
    if x0 == 0 and x1 == w:
        starts = offset + (np.arange(c0, c1) * h + y0) * w * FLOAT_BYTES
        return starts, starts + (y1 - y0) * w * FLOAT_BYTES
    rows = (np.arange(c0, c1)[:, None] * h + np.arange(y0, y1)[None, :]).ravel()
    starts = offset + (rows * w + x0) * FLOAT_BYTES
    return starts, starts + (x1 - x0) * FLOAT_BYTES


def touch_trace(program: Program, layout: Layout, page_bytes: int):
    """(starts, ends, writes, file) byte ranges in the order the executor touches them, and the blocks of the
    resident weights (preloaded). Streamed weights live in a file region after those blocks, each layer's
    vectors then its channel-major filters, so a load step's band is one range."""
    arena_end = -(-layout.size // page_bytes) * page_bytes
    blocks = weight_blocks(program.network, arena_end, page_bytes)
    file_base = -(-max((b for _, b in blocks.values()), default=arena_end) // page_bytes) * page_bytes
    starts, ends, writes, files = [], [], [], []

    def add(buffer: int, c0: int, c1: int, box, write: bool) -> None:
        s, e = _ranges(int(layout.offsets[buffer]), program.shape(buffer), c0, c1, box)
        starts.append(s)
        ends.append(e)
        writes.append(np.full(len(s), write))
        files.append(np.zeros(len(s), np.bool_))

    def add_range(a: int, b: int, file: bool) -> None:
        starts.append(np.array([a]))
        ends.append(np.array([b]))
        writes.append(np.array([False]))
        files.append(np.array([file]))

    resident = set()
    for row in program.steps.tolist():
        channels = row[S_CHANNELS]
        # a conv step reads its band of input channels, a route's channel split its part of the source
        first = row[S_C0] if row[S_KIND] in (CONV_STEP, COPY_STEP) else 0
        if row[S_SRC] >= 0:
            add(row[S_SRC], first, first + channels, row[S_SY0:S_SY0 + 4], False)
        if row[S_SRC2] >= 0:  # a shortcut's second map at its region; scale_channels' scales, whole
            h, w = row[S_DY0 + 1] - row[S_DY0], row[S_DX0 + 1] - row[S_DX0]
            if row[S_KIND] == SCALE_STEP:
                h, w = program.shape(row[S_SRC2])[1:]
            box = (row[S_S2Y0], row[S_S2Y0] + h, row[S_S2X0], row[S_S2X0] + w)
            add(row[S_SRC2], 0, program.shape(row[S_SRC2])[0], box, False)
        if row[S_KIND] == CONV_STEP:
            if row[S_WEIGHTS] < 0:  # resident weights
                resident.add(row[S_LAYER])
                add_range(*blocks[row[S_LAYER]], False)
            else:
                add(row[S_WEIGHTS], 0, 1, None, False)
            for k in range(3):  # packed input, GEMM result, pooled band
                add(row[S_SCRATCH] + k, 0, 1, None, True)
        if row[S_KIND] == LOAD_STEP:  # the band read from the file
            layer = program.network[row[S_LAYER]]
            base = file_base + blocks[row[S_LAYER]][0] - arena_end  # the layer's place in the file
            per_channel = FLOAT_BYTES * layer.filters * layer.size ** 2
            vectors = conv_weights_bytes(layer) - per_channel * layer.weight_shape[1]
            add_range(base + vectors + row[S_C0] * per_channel, base + vectors + row[S_C1] * per_channel, True)
            if row[S_C1] == layer.weight_shape[1]:
                add_range(base, base + vectors, True)
        dst = row[S_DST]
        c0, c1 = (row[S_DC0], row[S_DC0] + channels) if row[S_KIND] == COPY_STEP else (0, program.shape(dst)[0])
        add(dst, c0, c1, row[S_DY0:S_DY0 + 4], True)
    starts, ends = np.concatenate(starts).astype(np.int64), np.concatenate(ends).astype(np.int64)
    writes, files = np.concatenate(writes), np.concatenate(files)
    used = ends > starts  # empty workspaces touch nothing
    return (starts[used], ends[used], writes[used], files[used]), {i: blocks[i] for i in sorted(resident)}


@njit(cache=True)
def _touch(page, write, file, run, lru, prev, nxt, state, dirty, counts, capacity):
    """One page touch against the LRU list (head = most recent); counts faults (swap-ins, first touches,
    file pages read) and evictions of dirty pages of ``run``."""
    head = lru[0]
    if state[page] == 1:
        if page != head:  # unlink, then push at the head
            p, n = prev[page], nxt[page]
            nxt[p] = n
            if n >= 0:
                prev[n] = p
            else:
                lru[1] = p
            prev[page] = -1
            nxt[page] = head
            prev[head] = page
            lru[0] = page
    else:
        if run >= 0:
            counts[run, 3 if file else (0 if state[page] == 2 else 2)] += 1
        if lru[2] >= capacity:  # evict the least recently used page
            victim = lru[1]
            lru[1] = prev[victim]
            if lru[1] >= 0:
                nxt[lru[1]] = -1
            else:
                lru[0] = -1  # the list is empty
            state[victim] = 2
            if dirty[victim] and run >= 0:
                counts[run, 1] += 1
            dirty[victim] = False
            lru[2] -= 1
        state[page] = 1
        prev[page] = -1
        nxt[page] = lru[0]
        if lru[0] >= 0:
            prev[lru[0]] = page
        else:
            lru[1] = page
        lru[0] = page
        lru[2] += 1
    if write:
        dirty[page] = True


@njit(cache=True)
def _simulate(preload_starts, preload_ends, starts, ends, writes, files, page_bytes, capacity, total_pages, runs):
    """[run] = (swap-ins, swap-outs, first touches, file pages read) of each run of the trace after the
    preload."""
    prev = np.full(total_pages, -1, np.int64)
    nxt = np.full(total_pages, -1, np.int64)
    state = np.zeros(total_pages, np.int8)
    dirty = np.zeros(total_pages, np.bool_)
    lru = np.array([-1, -1, 0], np.int64)  # head, tail, resident pages
    counts = np.zeros((runs, 4), np.int64)
    for i in range(len(preload_starts)):
        for page in range(preload_starts[i] // page_bytes, (preload_ends[i] - 1) // page_bytes + 1):
            _touch(page, True, False, -1, lru, prev, nxt, state, dirty, counts, capacity)
    for run in range(runs):
        for i in range(len(starts)):
            for page in range(starts[i] // page_bytes, (ends[i] - 1) // page_bytes + 1):
                _touch(page, writes[i], files[i], run, lru, prev, nxt, state, dirty, counts, capacity)
    return counts


def simulate(program: Program, layout: Layout, device: Device, memory_bytes: int, runtime_bytes: int) -> Paging:
    """Steady-state paging of one inference of ``program`` on ``device`` with ``memory_bytes`` of memory."""
    free = memory_bytes - runtime_bytes
    if free < device.page_bytes:
        raise FusetileError(f"--device-memory {memory_bytes} B: no larger than the runtime baseline "
                            f"({runtime_bytes} B measured); the model needs memory for weights and activations")
    (starts, ends, writes, files), blocks = touch_trace(program, layout, device.page_bytes)
    pre_s = np.array([a for a, _ in blocks.values()], np.int64)
    pre_e = np.array([b for _, b in blocks.values()], np.int64)
    total_pages = int(max(ends.max(), pre_e.max(initial=0)) // device.page_bytes) + 1
    counts = _simulate(pre_s, pre_e, starts, ends, writes, files, device.page_bytes, free // device.page_bytes,
                       total_pages, 2)
    cover = np.zeros(total_pages + 1, np.int64)  # pages touched: a difference array over the ranges
    np.add.at(cover, starts // device.page_bytes, 1)
    np.add.at(cover, (ends - 1) // device.page_bytes + 1, -1)
    touched = np.cumsum(cover[:-1]) > 0
    swap_ins, swap_outs, _, file_reads = (int(v) for v in counts[1])
    return Paging(device, memory_bytes, runtime_bytes, int(touched.sum()) * device.page_bytes, swap_ins, swap_outs,
                  file_reads)
