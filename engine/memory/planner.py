"""Memory planners in the style of TensorFlow Lite Micro's: buffers as (bytes, first step, last step) in,
aligned offsets and the bytes spanned out.

- ``linear``: no reuse, every buffer after the previous one (an upper bound);
- ``greedy_by_size``: the largest buffer first, each at the lowest aligned offset that overlaps no buffer
  live at the same time;
- ``two_level``: what the arena uses, so that the predictor can reproduce it from per-group layouts:
  feature maps greedy by size among themselves, then each segment's own buffers greedy by size among
  themselves (each thread's of a pair in a region of its own: ``own_layout``), above the highest map live
  while the segment runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.lower.table import B_BYTES, B_FIRST, B_LAST, B_SEGMENT, B_SIDE

ALIGN = 64  # bytes: a cache line, and enough for any SIMD load


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def linear(sizes: np.ndarray) -> tuple[np.ndarray, int]:
    offsets = np.zeros(len(sizes), np.int64)
    at = 0
    for i, size in enumerate(sizes):
        offsets[i] = at
        at = align(at + int(size))
    return offsets, int(offsets[-1] + sizes[-1]) if len(sizes) else 0


@njit(cache=True)
def _greedy(sizes, first, last, order, align_to):
    n = len(sizes)
    offsets = np.zeros(n, np.int64)
    placed = np.zeros(n, np.int64)
    busy_start = np.zeros(n, np.int64)
    busy_end = np.zeros(n, np.int64)
    span = 0
    for k in range(n):
        i = order[k]
        m = 0
        for q in range(k):  # buffers already placed whose lifetimes overlap this one's
            p = placed[q]
            if first[p] <= last[i] and first[i] <= last[p]:
                busy_start[m], busy_end[m] = offsets[p], offsets[p] + sizes[p]
                m += 1
        by_start = np.argsort(busy_start[:m], kind="mergesort")  # order among equal starts cannot matter
        offset = 0
        for b in by_start:
            if offset + sizes[i] <= busy_start[b]:
                break
            offset = max(offset, -(-busy_end[b] // align_to) * align_to)
        offsets[i] = offset
        placed[k] = i
        span = max(span, offset + sizes[i])
    return offsets, span


def greedy_by_size(sizes: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, int]:
    """Largest first; ties by first use, then by position, so the layout is deterministic."""
    if len(sizes) == 0:
        return np.zeros(0, np.int64), 0
    order = np.lexsort((np.arange(len(sizes)), first, -sizes)).astype(np.int64)
    offsets, span = _greedy(np.ascontiguousarray(sizes), np.ascontiguousarray(first), np.ascontiguousarray(last),
                            order, ALIGN)
    return offsets, int(span)


def own_layout(sizes: np.ndarray, first: np.ndarray, last: np.ndarray, sides: np.ndarray) -> tuple[np.ndarray, int]:
    """A segment's own buffers: those of each side (``B_SIDE``) greedy by size among themselves, the sides'
    regions one above the other, so that the two threads of a pair write apart: on cores far apart, writing
    memory the other core touched last cost a step 1.4-3x its time, wherever the layout put it."""
    offsets, base = np.zeros(len(sizes), np.int64), 0
    for side in np.unique(sides):
        mine = np.flatnonzero(sides == side)
        offsets[mine], span = greedy_by_size(sizes[mine], first[mine], last[mine])
        offsets[mine] += base
        base = align(base + span) if side < sides.max() else base + span
    return offsets, int(base)


def two_level(buffers: np.ndarray) -> tuple[np.ndarray, int]:
    """Offsets of a program's buffers (rows of the buffer table) and the arena bytes, aligned."""
    sizes, first, last, seg = (buffers[:, col] for col in (B_BYTES, B_FIRST, B_LAST, B_SEGMENT))
    offsets = np.zeros(len(buffers), np.int64)
    maps = np.flatnonzero(seg < 0)
    offsets[maps], size = greedy_by_size(sizes[maps], first[maps], last[maps])
    map_end = offsets[maps] + sizes[maps]
    for g in np.unique(seg[seg >= 0]):
        own = np.flatnonzero(seg == g)
        lo, hi = first[own].min(), last[own].max()
        beside = (first[maps] <= hi) & (lo <= last[maps])
        base = align(int(map_end[beside].max(initial=0)))
        local, local_size = own_layout(sizes[own], first[own], last[own], buffers[own, B_SIDE])
        offsets[own] = base + local
        size = max(size, base + local_size)
    return offsets, align(size)


def overlapping_pairs(offsets: np.ndarray, buffers: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of buffers live at the same time whose bytes overlap (the invariant: there are none)."""
    sizes, first, last = buffers[:, B_BYTES], buffers[:, B_FIRST], buffers[:, B_LAST]
    bad = []
    for i in range(len(buffers)):
        j = np.arange(i + 1, len(buffers))
        j = j[(first[j] <= last[i]) & (first[i] <= last[j]) & (sizes[j] > 0) & (sizes[i] > 0)]
        clash = (offsets[j] < offsets[i] + sizes[i]) & (offsets[i] < offsets[j] + sizes[j])
        bad += [(i, int(k)) for k in j[clash]]
    return bad


@dataclass(frozen=True, eq=False)
class Layout:
    offsets: np.ndarray  # each buffer's offset in the arena (rows of the program's buffer table)
    size: int            # arena bytes, alignment and fragmentation included


def plan_layout(buffers: np.ndarray) -> Layout:
    """The arena's layout of a program's buffers (two levels; see the module's docstring)."""
    return Layout(*two_level(buffers))
