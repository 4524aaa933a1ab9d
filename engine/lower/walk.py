"""The lowering of one fused group: the one compiled walk that turns (layers, grid, reuse mode, workspace
budget) into flat arrays of steps and buffers (columns in ``engine.lower.table``).

Tiles run in the mode's order; in each tile, layer by layer: the tile's buffer for the region it holds is
allocated, strips saved by earlier tiles are copied in, its own parts are computed from the previous
layer's held region, and strips later tiles need are saved.

- ``none``: every tile computes its whole receptive region at every layer; overlaps are recomputed.
- ``checkerboard`` (DeepThings): tiles whose row + col is even compute everything and save what their four
  neighbours need; the odd tiles copy that in and compute only the middle. A dependent row runs right
  after the independent row below it, so strips live for about one row of tiles.
- ``stream``: tiles in raster order, each computing only its own cell and taking the rest of its input
  from the strip its left neighbour saved and the strip the tile above saved: no element is computed twice.
- ``columns``: ``stream`` down each column, its overlap with the columns beside it recomputed, so that two
  columns side by side share nothing: they run at once, one per thread, step by step (``pair_up``), each in
  buffers of its own and with half the workspace budget. Two threads splitting every step read data the
  other wrote; on cores far apart that cost 1.4-3x a step's time.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.lower.steps import alloc_buffer, compute, copy_region, save_strip, second_map
from engine.lower.table import (B_FIRST, B_LAST, B_SIDE, CONV_STEP, GROUP_OUTPUT, GROUP_OWN, GROUP_SOURCE, L_C_OUT,
                                LOAD_STEP, POOL_SPLIT, S_CHANNELS, S_DST, S_DX0, S_DY0, S_KIND, S_LAYER, S_PAIRED,
                                S_SCRATCH, S_SRC, S_SRC2, TILE_BUFFER, pooled_by_next)

STREAM, COLUMNS = 2, 3  # indices of REUSE_MODES


def capacity(tiles: int, layers: int, bands: int) -> tuple[int, int]:
    """Rows the output arrays of ``lower_group`` need at most: per tile and layer, 4 fills, 4 saves, an input
    region and a load and a compute per band (steps); a tile, 4 strips, an input region, and a weights buffer
    and 3 workspaces per band."""
    return tiles * layers * (9 + 2 * bands), tiles * layers * (6 + 4 * bands) + GROUP_OWN


@njit(cache=True)
def _checker_part(ny, nx, j, r, c, rows, cols, part, box):
    """Checkerboard: part 0-3 (from the tile above, below, left, right) that dependent tile (r, c) fills at
    layer j, or 4, the middle it computes, written into ``box``; False if empty."""
    last = ny.shape[0] - 1
    y0, y1, x0, x1 = ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1]
    if j == last:
        box[0], box[1], box[2], box[3] = y0, y1, x0, x1
        return part == 4 and y0 < y1 and x0 < x1
    # what the neighbours hold of this region; clamped, since a stride larger than the kernel leaves gaps
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


@njit(cache=True)
def tile_order(mode, rows, cols):
    """(row, col, dependent) of every tile in execution order: raster, or checkerboard's interleaving
    (independent row r, then dependent row r - 1, whose neighbours below have just run)."""
    order = np.zeros((rows * cols, 3), np.int64)
    k = 0
    for r in range(rows + 1):
        if r < rows:
            for c in range(cols):
                if mode != 1 or (r + c) % 2 == 0:
                    order[k, 0], order[k, 1] = r, c
                    k += 1
        if mode == 1 and r > 0:
            for c in range(cols):
                if (r - 1 + c) % 2 == 1:
                    order[k, 0], order[k, 1], order[k, 2] = r - 1, c, 1
                    k += 1
    return order


@njit(cache=True)
def _moved(steps, s, a0, b0, e, end):
    """Where a lifetime's first (``end`` 0) or last (1) step s goes when the tiles [a0, b0) and [b0, e) are
    interleaved: its new place, or, in a pair, the pair's first or last step."""
    if s < a0 or s >= e:
        return s
    s = a0 + 2 * (s - a0) if s < b0 else a0 + 2 * (s - b0) + 1
    first = s - (s - a0) % 2
    return first + end if steps[first, S_PAIRED] else s


@njit(cache=True)
def _beside(row):
    """Whether a step of two interleaved tiles runs beside its twin: a conv, or a step of POOL_SPLIT outputs or
    more, writing a buffer of the group's own. Handing a copy of a few rows to a helper cost more than the
    copy; and two columns writing the group's output map at once share the cache line at their border in
    every row (yolov2-tiny's last pool of 0-5:8x2:columns, paired, took 0.50 ms a run, unpaired 0.12; the two
    runs were minutes apart, not in turns). Its twin then runs after it."""
    outputs = row[S_CHANNELS] * (row[S_DY0 + 1] - row[S_DY0]) * (row[S_DX0 + 1] - row[S_DX0])
    return row[S_DST] >= GROUP_OWN and (row[S_KIND] == CONV_STEP or outputs >= POOL_SPLIT)


@njit(cache=True)
def pair_up(steps, buffers, count, a0, b0):
    """Interleaves the steps of two tiles, [a0, b0) and [b0, count[0]), step by step, if they match one for
    one in kind and layer and neither loads weights (a load may fill what the other reads; the two would
    read the weights file at once); the twins worth it (``_beside``) become pairs that run at once. Every
    lifetime that starts or ends at a pair of twins then spans both."""
    e, n = count[0], b0 - a0
    if e - b0 != n:
        return
    for k in range(n):
        a, b = steps[a0 + k], steps[b0 + k]
        if a[S_KIND] != b[S_KIND] or a[S_LAYER] != b[S_LAYER] or a[S_KIND] == LOAD_STEP:
            return
    both = steps[a0:e].copy()
    for k in range(n):
        steps[a0 + 2 * k], steps[a0 + 2 * k + 1] = both[k], both[n + k]
        steps[a0 + 2 * k, S_PAIRED] = _beside(both[k]) and _beside(both[n + k])
        for side in range(2):  # what each thread writes and reads, but the weights, which both may read
            row = both[k + side * n]
            scratch = row[S_SCRATCH]
            for b in (row[S_SRC], row[S_DST], row[S_SRC2], scratch, scratch + 1, scratch + 2):
                if b >= GROUP_OWN:
                    buffers[b, B_SIDE] = side + 1
    for b in range(GROUP_OWN, count[1]):
        buffers[b, B_FIRST] = _moved(steps, buffers[b, B_FIRST], a0, b0, e, 0)
        buffers[b, B_LAST] = _moved(steps, buffers[b, B_LAST], a0, b0, e, 1)
    count[2] = _moved(steps, count[2], a0, b0, e, 1)


@njit(cache=True)
def lower_group(mode, weights_mode, bands, rows, cols, j0, first_layer, chain, ny, nx, by, sy, bx, sx, budget,
                tile_input, source_layer, steps, buffers):
    """Lowers the group of chain rows j0.. (Darknet layer ``first_layer`` is chain row j0) into ``steps`` and
    ``buffers`` (sized by ``capacity``); returns (steps, buffers, last step reading the input map).
    ``tile_input``: the group reads the network input region by region, from the picture (see ``_compute``);
    ``source_layer``: the Darknet layer whose map is the group's input."""
    n = chain.shape[0]
    last = n - 1
    count = np.array([0, GROUP_OWN, -1], np.int64)  # steps, buffers, last step reading the input map
    buffers[GROUP_SOURCE, :] = 0
    buffers[GROUP_OUTPUT, :] = 0
    strips = np.full((rows * cols, n, 4), -1, np.int64)  # [consumer tile, layer, part] -> buffer
    kept = np.full(n, -1, np.int64)  # PER_GROUP: each layer's weights buffer
    box = np.zeros(4, np.int64)
    tiles = np.full(n, -1, np.int64)  # in the current tile: each row's buffer, and where it starts
    tiles_y, tiles_x = np.zeros(n, np.int64), np.zeros(n, np.int64)
    order = tile_order(mode, rows, cols)
    folded = np.zeros(n + 1, np.bool_)  # a conv whose pool's steps compute it (``pooled_by_next``)
    for j in range(j0, last):
        folded[j] = bands == 1 and pooled_by_next(chain, j, last, first_layer + j - j0)
    tile_start = 0
    for k in range(rows * cols):
        r, c, dependent = order[k, 0], order[k, 1], order[k, 2]
        t = r * cols + c
        paired = mode == COLUMNS and (c ^ 1) < cols  # runs beside the column next to it: half the workspace
        if c % 2 == 0:
            tile_start = count[0]
        pair_start = count[0]
        held, hoy, hox = GROUP_SOURCE, 0, 0  # the buffer holding the current layer's input, and its origin
        for j in range(j0, n):
            layer = first_layer + j - j0
            channels = chain[j, L_C_OUT]
            pooled = j > j0 and folded[j - 1]
            if folded[j]:  # its map never exists: nothing held, filled, saved
                tiles[j] = -1
                continue
            if mode == STREAM:
                hy0, hy1, hx0, hx1 = sy[j, r], by[j, r + 1], sx[j, c], bx[j, c + 1]
            elif mode == COLUMNS:
                hy0, hy1, hx0, hx1 = sy[j, r], by[j, r + 1], nx[j, c, 0], nx[j, c, 1]
            else:
                hy0, hy1, hx0, hx1 = ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1]
            if j == last:
                dst, doy, dox = GROUP_OUTPUT, 0, 0
            elif hy0 < hy1 and hx0 < hx1:
                dst = alloc_buffer(buffers, count, TILE_BUFFER, channels, hy1 - hy0, hx1 - hx0, count[0], layer,
                                   hy0, hx0)
                doy, dox = hy0, hx0
            else:
                dst, doy, dox = -1, 0, 0  # holds nothing of this layer: nothing below reads it
            tiles[j], tiles_y[j], tiles_x[j] = dst, doy, dox
            second = second_map(chain, j, j0, first_layer, source_layer, tiles, tiles_y, tiles_x)
            if mode == 0 or (mode == 1 and (dependent == 0 or j == last)):
                compute(steps, buffers, count, chain, j, layer, t, held, hoy, hox, dst, doy, dox,
                        ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1], budget, weights_mode, bands, kept,
                        tile_input, second, pooled)
                if mode == 1 and j < last:  # an independent tile saves what its dependent neighbours need
                    for side in range(4):
                        nr = r - 1 if side == 0 else (r + 1 if side == 1 else r)
                        nc = c - 1 if side == 2 else (c + 1 if side == 3 else c)
                        if nr < 0 or nr >= rows or nc < 0 or nc >= cols:
                            continue
                        part = (1, 0, 3, 2)[side]  # which of the neighbour's fills this tile provides
                        if _checker_part(ny, nx, j, nr, nc, rows, cols, part, box):
                            strips[nr * cols + nc, j, part] = save_strip(steps, buffers, count, layer, t, channels, dst,
                                                                         doy, dox, box[0], box[1], box[2], box[3])
            elif mode == 1:  # a dependent tile: fills from its neighbours, then computes the middle
                for part in range(4):
                    if _checker_part(ny, nx, j, r, c, rows, cols, part, box):
                        strip = strips[t, j, part]
                        copy_region(steps, buffers, count, layer, t, channels, strip, box[0], box[2], dst, doy, dox,
                                    box[0], box[1], box[2], box[3])
                if _checker_part(ny, nx, j, r, c, rows, cols, 4, box):
                    compute(steps, buffers, count, chain, j, layer, t, held, hoy, hox, dst, doy, dox,
                            box[0], box[1], box[2], box[3], budget, weights_mode, bands, kept,
                            tile_input, second, pooled)
            else:  # stream, or columns: stream down, each column's whole span across
                cy0, cy1 = by[j, r], by[j, r + 1]
                cx0, cx1 = (bx[j, c], bx[j, c + 1]) if mode == STREAM else (hx0, hx1)
                if j < last:
                    if mode == STREAM and hy0 < hy1 and sx[j, c] < cx0:  # from the left neighbour's right strip
                        copy_region(steps, buffers, count, layer, t, channels, strips[t, j, 0], hy0, sx[j, c], dst, doy,
                                    dox, hy0, hy1, sx[j, c], cx0)
                    if sy[j, r] < cy0 and cx0 < cx1:  # from the upper neighbour's down strip
                        copy_region(steps, buffers, count, layer, t, channels, strips[t, j, 1], sy[j, r], cx0, dst, doy,
                                    dox, sy[j, r], cy0, cx0, cx1)
                if cy0 < cy1 and cx0 < cx1:
                    compute(steps, buffers, count, chain, j, layer, t, held, hoy, hox, dst, doy, dox,
                            cy0, cy1, cx0, cx1, budget // 2 if paired else budget, weights_mode, bands, kept,
                            tile_input, second, pooled)
                if j < last:
                    right = mode == STREAM and c < cols - 1
                    if right and hy0 < hy1 and sx[j, c + 1] < bx[j, c + 1]:  # for the right neighbour
                        strips[t + 1, j, 0] = save_strip(steps, buffers, count, layer, t, channels, dst, doy, dox,
                                                         hy0, hy1, sx[j, c + 1], bx[j, c + 1])
                    if r < rows - 1 and sy[j, r + 1] < by[j, r + 1] and cx0 < cx1:  # for the tile below
                        strips[t + cols, j, 1] = save_strip(steps, buffers, count, layer, t, channels, dst, doy, dox,
                                                            sy[j, r + 1], by[j, r + 1], cx0, cx1)
            held, hoy, hox = dst, doy, dox
        if paired and c % 2 == 1:
            pair_up(steps, buffers, count, tile_start, pair_start)
    return count[0], count[1], count[2]
