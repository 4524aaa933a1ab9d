"""Tile geometry along one axis of a fused chain: the one implementation, compiled.

The chain's output is split into ``parts`` balanced spans and each span's receptive field is walked back
layer by layer. Spans are half-open; whatever a window reads before row 0 is border padding, so padding
appears only where a tile touches the map's border, never at a seam. Two views are derived:

- ``needed[j, r]``: the span of layer j's output that output part r needs (modes none, checkerboard);
- ``bounds[j, r]`` and ``starts[j, r]`` (mode stream): at every layer the output is cut into cells by
  walking the cell ends back; part r computes layer j's cell bounds[j, r]..bounds[j, r + 1] and holds
  starts[j, r]..bounds[j, r + 1] (what its next layer's cell reads).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.lower.table import L_IN_H, L_LEAD, L_OUT_H, L_SIZE, L_STRIDE


@njit(cache=True)
def input_span(layers, j, o0, o1, axis):
    """Input rows (i0, i1) that layer j's output rows [o0, o1) read, and the virtual rows before i0."""
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
def axis_geometry(layers, parts, axis):
    """(needed[j, r, 2], bounds[j, parts + 1], starts[j, parts]) for the chain ``layers`` (rows of the
    layer table, first layer first) split into ``parts`` along ``axis`` (0 rows, 1 columns)."""
    n = layers.shape[0]
    edges = balanced_edges(layers[n - 1, L_OUT_H + axis], parts)
    needed = np.empty((n, parts, 2), np.int64)
    bounds = np.empty((n, parts + 1), np.int64)
    starts = np.empty((n, parts), np.int64)
    for r in range(parts):
        needed[n - 1, r, 0], needed[n - 1, r, 1] = edges[r], edges[r + 1]
        starts[n - 1, r] = edges[r]  # unused: the last layer's cells go straight into the output map
    bounds[n - 1, :] = edges
    for j in range(n - 1, 0, -1):
        for r in range(parts):
            i0, i1, _ = input_span(layers, j, needed[j, r, 0], needed[j, r, 1], axis)
            needed[j - 1, r, 0], needed[j - 1, r, 1] = i0, i1
        bounds[j - 1, 0] = 0
        for r in range(parts):
            at = bounds[j - 1, r]
            if bounds[j, r] == bounds[j, r + 1]:
                i0, i1 = at, at
            else:
                i0, i1, _ = input_span(layers, j, bounds[j, r], bounds[j, r + 1], axis)
            starts[j - 1, r] = min(i0, at)
            bounds[j - 1, r + 1] = max(i1, at)
    return needed, bounds, starts
