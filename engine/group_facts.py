"""What the search needs of a group, counted without building its schedule.

Building a group's schedule takes milliseconds and yolov2's search space holds tens of thousands of
groups. Everything the search needs of one (its own live bytes while its input map is live and after,
and the cost model's work counts) follows from the tile geometry of ``engine.reuse`` and the order in
which the schedule builder emits steps and allocates buffers. So a compiled walk replays that order over
the same geometry, keeping only sizes and lifetimes. The geometry along each axis depends only on the
group's last layer and its number of parts, so it is computed once per (last layer, parts) and shared by
every group ending there. Tests hold these counts equal to the schedule's on random groups.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.costmodel import FEATURES
from engine.network import Conv, MaxPool, Network
from engine.plan import Group
from engine.reuse import REUSE_MODES, _cells, _needed
from kernels.conv import workspace_sizes

F32 = 4
assert FEATURES == ("macs", "gemm_calls", "weights_streamed", "packed", "written", "conv_steps", "pooled", "copied",
                    "other_steps", "conv_rows"), "the compiled walk counts features in this order"
MODES = {mode: k for k, mode in enumerate(REUSE_MODES)}  # none, checkerboard, stream


class GroupFacts:
    """(peak own bytes while the input map lives, after it dies, work counts) of any group of a network."""

    def __init__(self, network: Network, scratch_bytes: int):
        self.network, self.scratch_bytes = network, scratch_bytes
        self._chains: dict[int, tuple[int, np.ndarray]] = {}
        self._geometry: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _chain(self, last: int) -> tuple[int, np.ndarray]:
        """The first layer of the longest conv/maxpool chain ending at ``last``, and its layers' parameters
        (is conv, input channels, output channels, kernel size)."""
        if last not in self._chains:
            net = self.network
            first = last
            while first > 0 and isinstance(net[first - 1], (Conv, MaxPool)) and net[first].inputs == (first - 1,):
                first -= 1
            params = np.array([(isinstance(net[i], Conv), net[i].in_shape[0], net[i].out_shape[0], net[i].size)
                               for i in range(first, last + 1)], np.int64)
            self._chains[last] = (first, params)
        return self._chains[last]

    def _axis(self, last: int, parts: int, axis: int):
        """Along one axis, for layers first..last of the chain: the spans each part needs ([j, r, 2]), and
        the stream cells' bounds ([j, parts + 1]) and held starts ([j, parts])."""
        key = (last, parts, axis)
        if key not in self._geometry:
            first, _ = self._chain(last)
            layers = tuple(self.network[i] for i in range(first, last + 1))
            bounds, starts = _cells(layers, parts, axis)
            self._geometry[key] = (np.array(_needed(layers, parts, axis), np.int64).reshape(len(layers), parts, 2),
                                   np.array(bounds, np.int64), np.array(starts, np.int64))
        return self._geometry[key]

    def __call__(self, group: Group) -> tuple[int, int, np.ndarray]:
        first, params = self._chain(group.last)
        ny, by, sy = self._axis(group.last, group.rows, 0)
        nx, bx, sx = self._axis(group.last, group.cols, 1)
        with_source, after_source, features = _count(MODES[group.reuse], group.rows, group.cols, group.first - first,
                                                     params, ny, nx, by, sy, bx, sx, self.scratch_bytes)
        return int(with_source), int(after_source), features


# The compiled walk. state = (steps so far, last step reading the group's input map); delta is the
# difference array of own live bytes over steps; feats the cost model's counts (FEATURES' order).


@njit(cache=True)
def _live(delta, first, last, nbytes):
    delta[first] += nbytes
    delta[last + 1] -= nbytes


@njit(cache=True)
def _compute(state, delta, feats, params, j, j0, oh, ow, budget, tile_last, dest_is_tile, src_is_tile):
    """One conv or maxpool step: its scratch lives for the step; it touches the held input and the dest."""
    s = state[0]
    state[0] += 1
    is_conv, c_in, c_out, k = params[j, 0], params[j, 1], params[j, 2], params[j, 3]
    if is_conv:
        rows, block, cols, acc, part = workspace_sizes(c_in, k, c_out, oh, ow, budget)
        _live(delta, s, s, (cols + acc + part) * F32)
        bands = (oh + rows - 1) // rows
        feats[0] += c_out * oh * ow * c_in * k * k
        feats[1] += bands * ((c_in + block - 1) // block)
        feats[2] += c_out * c_in * k * k * bands
        feats[3] += c_in * k * k * oh * ow
        feats[4] += c_out * oh * ow
        feats[5] += 1
        feats[9] += (c_in * k * k + c_out) * oh
    else:
        feats[6] += c_out * oh * ow * k * k
        feats[8] += 1
    if j == j0:
        state[1] = s
    elif src_is_tile:
        tile_last[j - 1] = s
    if dest_is_tile:
        tile_last[j] = s


@njit(cache=True)
def _copy(state, feats, params, j, h, w):
    s = state[0]
    state[0] += 1
    feats[7] += params[j, 2] * h * w
    feats[8] += 1
    return s


@njit(cache=True)
def _count(mode, rows, cols, j0, params, ny, nx, by, sy, bx, sx, budget):
    """The schedule builder's order (``schedule._emit_group``): tiles in the mode's order; in each, layer
    by layer, the tile buffer allocated, then strips filled, parts computed, strips saved."""
    n = params.shape[0]
    last = n - 1
    tiles = rows * cols
    delta = np.zeros(tiles * (n - j0) * 9 + 4, np.int64)
    feats = np.zeros(10)
    state = np.array([0, -1], np.int64)
    strip_size = np.zeros((tiles, n, 4), np.int64)
    strip_first = np.zeros((tiles, n, 4), np.int64)
    tile_first = np.zeros(n, np.int64)
    tile_last = np.zeros(n, np.int64)
    tile_bytes = np.zeros(n, np.int64)
    box = np.zeros(4, np.int64)
    order = np.zeros((tiles, 3), np.int64)  # row, col, dependent (checkerboard)
    k = 0
    if mode == 1:
        for r in range(rows + 1):
            if r < rows:
                for c in range(cols):
                    if (r + c) % 2 == 0:
                        order[k, 0], order[k, 1], order[k, 2] = r, c, 0
                        k += 1
            if r > 0:
                for c in range(cols):
                    if (r - 1 + c) % 2 == 1:
                        order[k, 0], order[k, 1], order[k, 2] = r - 1, c, 1
                        k += 1
    else:
        for r in range(rows):
            for c in range(cols):
                order[k, 0], order[k, 1] = r, c
                k += 1
    for k in range(tiles):
        r, c, dependent = order[k, 0], order[k, 1], order[k, 2]
        t = r * cols + c
        src_is_tile = False
        for j in range(j0, n):
            # the region this tile holds of layer j (none when it is the group's last layer)
            if mode == 2:
                hy0, hy1, hx0, hx1 = sy[j, r], by[j, r + 1], sx[j, c], bx[j, c + 1]
            else:
                hy0, hy1, hx0, hx1 = ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1]
            is_tile = j < last and hy0 < hy1 and hx0 < hx1
            tile_first[j], tile_last[j] = state[0], state[0]  # allocated before the layer's first step
            tile_bytes[j] = params[j, 2] * (hy1 - hy0) * (hx1 - hx0) * F32 if is_tile else 0
            if mode == 0 or (mode == 1 and (dependent == 0 or j == last)):
                oh, ow = ny[j, r, 1] - ny[j, r, 0], nx[j, c, 1] - nx[j, c, 0]
                _compute(state, delta, feats, params, j, j0, oh, ow, budget, tile_last, is_tile, src_is_tile)
                if mode == 1 and j < last:  # an independent tile saves what its dependent neighbours need
                    for side in range(4):
                        nr = r - 1 if side == 0 else (r + 1 if side == 1 else r)
                        nc = c - 1 if side == 2 else (c + 1 if side == 3 else c)
                        if nr < 0 or nr >= rows or nc < 0 or nc >= cols:
                            continue
                        part = (1, 0, 3, 2)[side]  # which of the neighbour's fills this tile provides
                        if _checker_part(ny, nx, j, nr, nc, rows, cols, part, box):
                            h, w = box[1] - box[0], box[3] - box[2]
                            s = _copy(state, feats, params, j, h, w)
                            if is_tile:
                                tile_last[j] = s
                            nt = nr * cols + nc
                            strip_size[nt, j, part] = params[j, 2] * h * w * F32
                            strip_first[nt, j, part] = s
            elif mode == 1:  # a dependent tile: fills from its neighbours, then computes the middle
                for part in range(4):
                    if _checker_part(ny, nx, j, r, c, rows, cols, part, box):
                        s = _copy(state, feats, params, j, box[1] - box[0], box[3] - box[2])
                        _live(delta, strip_first[t, j, part], s, strip_size[t, j, part])
                        if is_tile:
                            tile_last[j] = s
                if _checker_part(ny, nx, j, r, c, rows, cols, 4, box):
                    _compute(state, delta, feats, params, j, j0, box[1] - box[0], box[3] - box[2], budget, tile_last,
                             is_tile, src_is_tile)
            else:  # stream
                cy0, cy1, cx0, cx1 = by[j, r], by[j, r + 1], bx[j, c], bx[j, c + 1]
                if j < last:
                    if hy0 < hy1 and sx[j, c] < bx[j, c]:  # from the left neighbour's right strip
                        s = _copy(state, feats, params, j, hy1 - hy0, bx[j, c] - sx[j, c])
                        _live(delta, strip_first[t - 1, j, 0], s, strip_size[t - 1, j, 0])
                        if is_tile:
                            tile_last[j] = s
                    if sy[j, r] < by[j, r] and cx0 < cx1:  # from the upper neighbour's down strip
                        s = _copy(state, feats, params, j, by[j, r] - sy[j, r], cx1 - cx0)
                        _live(delta, strip_first[t - cols, j, 1], s, strip_size[t - cols, j, 1])
                        if is_tile:
                            tile_last[j] = s
                if cy0 < cy1 and cx0 < cx1:
                    _compute(state, delta, feats, params, j, j0, cy1 - cy0, cx1 - cx0, budget, tile_last, is_tile,
                             src_is_tile)
                if j < last:
                    if c < cols - 1 and hy0 < hy1 and sx[j, c + 1] < bx[j, c + 1]:
                        h, w = hy1 - hy0, bx[j, c + 1] - sx[j, c + 1]
                        s = _copy(state, feats, params, j, h, w)
                        if is_tile:
                            tile_last[j] = s
                        strip_size[t, j, 0], strip_first[t, j, 0] = params[j, 2] * h * w * F32, s
                    if r < rows - 1 and sy[j, r + 1] < by[j, r + 1] and cx0 < cx1:
                        h, w = by[j, r + 1] - sy[j, r + 1], cx1 - cx0
                        s = _copy(state, feats, params, j, h, w)
                        if is_tile:
                            tile_last[j] = s
                        strip_size[t, j, 1], strip_first[t, j, 1] = params[j, 2] * h * w * F32, s
            src_is_tile = is_tile
            if j > j0 and tile_bytes[j - 1] > 0:  # layer j - 1's tile is read no more
                _live(delta, tile_first[j - 1], tile_last[j - 1], tile_bytes[j - 1])
    steps, source_last = state[0], state[1]
    live = np.cumsum(delta[:steps])
    with_source = live[:source_last + 1].max() if source_last >= 0 else 0
    after_source = live[source_last + 1:].max() if steps > source_last + 1 else 0
    return with_source, after_source, feats


@njit(cache=True)
def _checker_part(ny, nx, j, r, c, rows, cols, part, box):
    """Checkerboard: part 0-3 (from the tile above, below, left, right) a dependent tile (r, c) fills at layer
    j, or 4, the middle it computes, written into ``box``; False if empty."""
    last = ny.shape[0] - 1
    y0, y1, x0, x1 = ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1]
    if j == last:
        if part != 4:
            return False
        box[0], box[1], box[2], box[3] = y0, y1, x0, x1
        return y0 < y1 and x0 < x1
    top = min(max(ny[j, r - 1, 1], y0), y1) if r > 0 else y0
    bottom = min(max(ny[j, r + 1, 0], top), y1) if r < rows - 1 else y1
    left = min(max(nx[j, c - 1, 1], x0), x1) if c > 0 else x0
    right = min(max(nx[j, c + 1, 0], left), x1) if c < cols - 1 else x1
    if part == 0:
        box[0], box[1], box[2], box[3] = y0, top, x0, x1
    elif part == 1:
        box[0], box[1], box[2], box[3] = bottom, y1, x0, x1
    elif part == 2:
        box[0], box[1], box[2], box[3] = top, bottom, x0, left
    elif part == 3:
        box[0], box[1], box[2], box[3] = top, bottom, right, x1
    else:
        box[0], box[1], box[2], box[3] = top, bottom, left, right
    return box[0] < box[1] and box[2] < box[3]

