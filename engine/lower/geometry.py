"""Tile geometry along one axis of a fused chain: the one implementation, compiled.

The chain's output is split into ``parts`` balanced spans and each span's receptive field is walked back
layer by layer. Spans are half-open; whatever a window reads before row 0 is border padding, so padding
appears only where a tile touches the map's border, never at a seam. Two views are derived:

- ``needed[j, r]``: the span of layer j's output that output part r needs (modes none, checkerboard);
- ``bounds[j, r]`` and ``starts[j, r]`` (mode stream): at every layer the output is cut into cells by
  walking the cell ends back; part r computes layer j's cell bounds[j, r]..bounds[j, r + 1] and holds
  starts[j, r]..bounds[j, r + 1]: what its readers' cells read, and what later parts read of cells before
  its own (a shortcut's source is read by readers that lag by different amounts), which it passes on.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.lower.table import L_IN_H, L_KIND, L_LEAD, L_OUT_H, L_SIZE, L_SRC2, L_STRIDE, TILE_UPSAMPLE


@njit(cache=True)
def input_span(layers, j, o0, o1, axis):
    """Input rows (i0, i1) that layer j's output rows [o0, o1) read, and the virtual rows before i0."""
    if layers[j, L_KIND] == TILE_UPSAMPLE:  # each input row repeated stride times
        return o0 // layers[j, L_STRIDE], (o1 - 1) // layers[j, L_STRIDE] + 1, 0
    start = o0 * layers[j, L_STRIDE] - layers[j, L_LEAD]
    stop = (o1 - 1) * layers[j, L_STRIDE] - layers[j, L_LEAD] + layers[j, L_SIZE]
    return max(start, 0), min(stop, layers[j, L_IN_H + axis]), max(-start, 0)


@njit(cache=True)
def balanced_edges(n, parts):
    """Edges of ``parts`` consecutive spans of range(n) whose lengths differ by at most one."""
    edges = np.empty(parts + 1, np.int64)
    for r in range(parts + 1):
        edges[r] = n * r // parts
    return edges


@njit(cache=True)
def reads(layers, k, j, base):
    """Whether chain row k reads row j's output: its previous row, or a shortcut's second map (rows are
    Darknet layers from ``base``)."""
    return k == j + 1 or layers[k, L_SRC2] - base == j


@njit(cache=True)
def read_span(layers, k, j, o0, o1, axis):
    """Rows of row j's output that row k's output rows [o0, o1) read (a shortcut's second map: the same)."""
    if k != j + 1:
        return o0, o1
    i0, i1, _ = input_span(layers, k, o0, o1, axis)
    return i0, i1


@njit(cache=True)
def axis_geometry(layers, parts, axis, base):
    """(needed[j, r, 2], bounds[j, parts + 1], starts[j, parts]) for the chain ``layers`` (rows of the
    layer table, first layer first, Darknet layer ``base`` first) split into ``parts`` along ``axis`` (0 rows,
    1 columns). A row read by several later rows (a shortcut's source) needs the hull of what they read."""
    n = layers.shape[0]
    edges = balanced_edges(layers[n - 1, L_OUT_H + axis], parts)
    needed = np.empty((n, parts, 2), np.int64)
    bounds = np.empty((n, parts + 1), np.int64)
    starts = np.empty((n, parts), np.int64)
    for r in range(parts):
        needed[n - 1, r, 0], needed[n - 1, r, 1] = edges[r], edges[r + 1]
        starts[n - 1, r] = edges[r]  # unused: the last layer's cells go straight into the output map
    bounds[n - 1, :] = edges
    for j in range(n - 2, -1, -1):
        bounds[j, 0] = 0
        for r in range(parts):
            lo, hi = -1, -1  # needed: the hull of what every reader's needed rows read
            for k in range(j + 1, n):
                if reads(layers, k, j, base) and needed[k, r, 0] < needed[k, r, 1]:
                    i0, i1 = read_span(layers, k, j, needed[k, r, 0], needed[k, r, 1], axis)
                    lo, hi = (i0, i1) if lo < 0 else (min(lo, i0), max(hi, i1))
            needed[j, r, 0], needed[j, r, 1] = max(lo, 0), max(hi, 0)
            at = bounds[j, r]  # stream: this part's cell starts where the previous one ended
            lo, hi = at, at
            for k in range(j + 1, n):
                if reads(layers, k, j, base) and bounds[k, r] < bounds[k, r + 1]:
                    i0, i1 = read_span(layers, k, j, bounds[k, r], bounds[k, r + 1], axis)
                    lo, hi = min(lo, i0), max(hi, i1)
            starts[j, r] = lo
            bounds[j, r + 1] = hi
        for r in range(parts - 2, -1, -1):  # a part also holds what later parts read of earlier cells, which
            starts[j, r] = min(starts[j, r], starts[j, r + 1])  # it passes on (readers that lag differently)
    return needed, bounds, starts
