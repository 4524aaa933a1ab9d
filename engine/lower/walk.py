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
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.lower.table import (B_BYTES, B_C, B_FIRST, B_H, B_KIND, B_LAST, B_LAYER, B_SEGMENT, B_W, B_X0, B_Y0,
                                CONV_STEP, COPY_STEP, GROUP_OUTPUT, GROUP_OWN, GROUP_SOURCE, L_C_IN, L_C_OUT, L_KIND,
                                L_SIZE, MAXPOOL_STEP, SCRATCH_BUFFER, STRIP_BUFFER, S_BAND_ROWS, S_BLOCK, S_CHANNELS,
                                S_DST, S_DX0, S_DY0, S_KIND, S_LAYER, S_MACS, S_PAD_LEFT, S_PAD_TOP, S_SCRATCH, S_SRC,
                                S_SX0, S_SY0, S_TILE, TILE_BUFFER, TILE_CONV, L_BN, LOAD_STEP, S_C0, S_C1,
                                S_WEIGHTS, WEIGHTS_BUFFER, L_GROUPS, S_SRC2, INPUT_BUFFER, INPUT_STEP, is_depthwise,
                                vector_floats, L_PART, L_SRC2, L_STRIDE, S_DC0, S_S2X0, S_S2Y0, SHORTCUT_STEP,
                                TILE_MAXPOOL, TILE_ROUTE, TILE_SHORTCUT, TILE_UPSAMPLE, UPSAMPLE_STEP)
from engine.lower.geometry import input_span
from kernels.conv import workspace_sizes

F32 = 4
RESIDENT, PER_GROUP, PER_TILE = 0, 1, 2  # WEIGHT_MODES


def capacity(tiles: int, layers: int, bands: int) -> tuple[int, int]:
    """Rows the output arrays of ``lower_group`` need at most: per tile and layer, 4 fills, 4 saves, an input
    region and a load and a compute per band (steps); a tile, 4 strips, an input region, and a weights buffer
    and 2 workspaces per band."""
    return tiles * layers * (9 + 2 * bands), tiles * layers * (6 + 3 * bands) + GROUP_OWN


@njit(cache=True)
def _alloc(buffers, count, kind, c, h, w, now, layer=-1, y0=0, x0=0):
    b = count[1]
    count[1] += 1
    buffers[b, B_LAYER], buffers[b, B_Y0], buffers[b, B_X0], buffers[b, B_SEGMENT] = layer, y0, x0, -1
    buffers[b, B_BYTES] = c * h * w * F32
    buffers[b, B_KIND] = kind
    buffers[b, B_FIRST] = now
    buffers[b, B_LAST] = now
    buffers[b, B_C], buffers[b, B_H], buffers[b, B_W] = c, h, w
    return b


@njit(cache=True)
def _emit(steps, buffers, count, kind, layer, tile, src, sy0, sy1, sx0, sx1, dst, dy0, dy1, dx0, dx1, channels):
    """Appends a step and extends the lifetimes of the buffers it touches; returns its index."""
    s = count[0]
    count[0] += 1
    row = steps[s]
    row[:] = 0
    row[S_KIND], row[S_LAYER], row[S_TILE], row[S_CHANNELS], row[S_SCRATCH] = kind, layer, tile, channels, -1
    row[S_WEIGHTS], row[S_SRC2] = -1, -1
    row[S_SRC], row[S_SY0], row[S_SY0 + 1], row[S_SX0], row[S_SX0 + 1] = src, sy0, sy1, sx0, sx1
    row[S_DST], row[S_DY0], row[S_DY0 + 1], row[S_DX0], row[S_DX0 + 1] = dst, dy0, dy1, dx0, dx1
    if src == GROUP_SOURCE:
        count[2] = s  # the last step reading the group's input map
    elif src >= GROUP_OWN:
        buffers[src, B_LAST] = s
    if dst >= GROUP_OWN:
        buffers[dst, B_LAST] = s
    return s


@njit(cache=True)
def _copy(steps, buffers, count, layer, tile, channels, src, s_origin_y, s_origin_x, dst, d_origin_y, d_origin_x,
          y0, y1, x0, x1):
    """A strip copied between two buffers; the region is absolute, each side given by its buffer's origin."""
    return _emit(steps, buffers, count, COPY_STEP, layer, tile, src, y0 - s_origin_y, y1 - s_origin_y,
                 x0 - s_origin_x, x1 - s_origin_x, dst, y0 - d_origin_y, y1 - d_origin_y, x0 - d_origin_x,
                 x1 - d_origin_x, channels)


@njit(cache=True)
def _save(steps, buffers, count, layer, tile, channels, src, s_origin_y, s_origin_x, y0, y1, x0, x1):
    """A strip of the region [y0, y1) x [x0, x1) saved out of ``src`` for a later tile; returns its buffer."""
    strip = _alloc(buffers, count, STRIP_BUFFER, channels, y1 - y0, x1 - x0, count[0], layer, y0, x0)
    _copy(steps, buffers, count, layer, tile, channels, src, s_origin_y, s_origin_x, strip, y0, x0, y0, y1, x0, x1)
    return strip


@njit(cache=True)
def _load(steps, buffers, count, chain, j, layer, tile, c0, c1):
    """A weights buffer for input channels [c0, c1) of layer j's filters (and, with the last channels, the
    layer's vectors), and the step that fills it; returns the buffer."""
    c_in, c_out, k = chain[j, L_C_IN] // chain[j, L_GROUPS], chain[j, L_C_OUT], chain[j, L_SIZE]
    floats = (vector_floats(chain[j, L_BN], c_out) if c1 == c_in else 0) + c_out * (c1 - c0) * k * k
    w = _alloc(buffers, count, WEIGHTS_BUFFER, floats, 1, 1, count[0], layer)
    s = _emit(steps, buffers, count, LOAD_STEP, layer, tile, -1, 0, 0, 0, 0, w, 0, 0, 0, 0, c1 - c0)
    steps[s, S_C0], steps[s, S_C1] = c0, c1
    return w


@njit(cache=True)
def _read_second(steps, buffers, count, s, second, y0, x0):
    """Step s also reads the region starting at absolute (y0, x0) of ``second`` (buffer, origin y, origin x)."""
    b2, o2y, o2x = second
    steps[s, S_SRC2], steps[s, S_S2Y0], steps[s, S_S2X0] = b2, y0 - o2y, x0 - o2x
    if b2 == GROUP_SOURCE:
        count[2] = s
    elif b2 >= GROUP_OWN:
        buffers[b2, B_LAST] = s


@njit(cache=True)
def _route_copy(steps, buffers, count, chain, j, layer, tile, src, oy, ox, dst, dy, dx, y0, y1, x0, x1, taken,
                c0):
    """One source of a route: its part of the channels (all of them, or its split part) of region
    [y0, y1) x [x0, x1), copied to the route's channels from ``c0``."""
    s = _copy(steps, buffers, count, layer, tile, taken, src, oy, ox, dst, dy, dx, y0, y1, x0, x1)
    steps[s, S_DC0] = c0
    if chain[j, L_GROUPS] > 1:
        steps[s, S_C0], steps[s, S_C1] = taken * chain[j, L_PART], taken * (chain[j, L_PART] + 1)


@njit(cache=True)
def second_map(chain, j, j0, first_layer, source_layer, held, held_y, held_x):
    """(buffer, origin y, origin x) of the second map row j reads: a row of the group (its buffer in this tile),
    the group's input map, or another map held whole before the group (named -2 - its layer: the plan's
    program resolves it); (-1, 0, 0) if none."""
    a = chain[j, L_SRC2]
    if a < 0:
        return -1, 0, 0
    if a >= first_layer:
        row = a - first_layer + j0
        return held[row], held_y[row], held_x[row]
    if a == source_layer:
        return GROUP_SOURCE, 0, 0
    return -2 - a, 0, 0


@njit(cache=True)
def _compute(steps, buffers, count, chain, j, layer, tile, src, oy, ox, dst, dy, dx, y0, y1, x0, x1, budget,
             weights_mode, bands, kept, tile_input, second):
    """Layer j's output region [y0, y1) x [x0, x1) from the buffer ``src`` holding its input from (oy, ox).
    With ``tile_input``, the group's input map is the network input, which is not held whole: the region
    this step reads is first produced from the picture into a buffer of its own. ``second``: the buffer and
    origin of the second map a shortcut or route reads.
    A conv runs in ``bands`` steps over bands of its filters' input channels, accumulating into the region
    (each after the load of its weights in PER_TILE mode); in PER_GROUP mode the layer's weights are loaded
    at its first step and ``kept[j]`` names them. A grouped conv has one band (the lowering is asked for
    no more) and workspaces for one group at a time; a depthwise one needs none."""
    iy0, iy1, top = input_span(chain, j, y0, y1, 0)
    ix0, ix1, left = input_span(chain, j, x0, x1, 1)
    c_in, kind = chain[j, L_C_IN], chain[j, L_KIND]
    if tile_input and src == GROUP_SOURCE:
        src = _alloc(buffers, count, INPUT_BUFFER, c_in, iy1 - iy0, ix1 - ix0, count[0], -1, iy0, ix0)
        made = _emit(steps, buffers, count, INPUT_STEP, -1, tile, -1, iy0, iy1, ix0, ix1, src, 0, iy1 - iy0, 0,
                     ix1 - ix0, c_in)
        oy, ox = iy0, ix0
        if dst >= GROUP_OWN and buffers[dst, B_FIRST] == made:  # the output tile is first touched by the compute
            buffers[dst, B_FIRST] = made + 1
    if kind == TILE_ROUTE:  # its sources' channels side by side: a copy each
        c_first = c_in // chain[j, L_GROUPS]
        _route_copy(steps, buffers, count, chain, j, layer, tile, src, oy, ox, dst, dy, dx, y0, y1, x0, x1,
                    c_first, 0)
        if chain[j, L_SRC2] >= 0:
            b2, o2y, o2x = second
            _route_copy(steps, buffers, count, chain, j, layer, tile, b2, o2y, o2x, dst, dy, dx, y0, y1, x0, x1,
                        chain[j, L_C_OUT] - c_first, c_first)
        return
    if kind != TILE_CONV:
        code = MAXPOOL_STEP if kind == TILE_MAXPOOL else SHORTCUT_STEP if kind == TILE_SHORTCUT else UPSAMPLE_STEP
        s = _emit(steps, buffers, count, code, layer, tile, src, iy0 - oy, iy1 - oy, ix0 - ox, ix1 - ox,
                  dst, y0 - dy, y1 - dy, x0 - dx, x1 - dx, c_in)
        if kind == TILE_UPSAMPLE:  # where the region starts within its first input pixel
            top, left = y0 % chain[j, L_STRIDE], x0 % chain[j, L_STRIDE]
        steps[s, S_PAD_TOP], steps[s, S_PAD_LEFT] = top, left
        if kind == TILE_SHORTCUT:
            _read_second(steps, buffers, count, s, second, y0, x0)
        return
    groups = chain[j, L_GROUPS]
    c_in //= groups
    if groups > 1:
        bands = 1
    oh, ow, c_out, k = y1 - y0, x1 - x0, chain[j, L_C_OUT], chain[j, L_SIZE]
    for band in range(bands):
        c0, c1 = c_in * band // bands, c_in * (band + 1) // bands
        w = -1
        if weights_mode == PER_TILE:
            w = _load(steps, buffers, count, chain, j, layer, tile, c0, c1)
        elif weights_mode == PER_GROUP:
            if kept[j] < 0:
                kept[j] = _load(steps, buffers, count, chain, j, layer, tile, 0, c_in)
            w = kept[j]
        s = _emit(steps, buffers, count, CONV_STEP, layer, tile, src, iy0 - oy, iy1 - oy, ix0 - ox, ix1 - ox,
                  dst, y0 - dy, y1 - dy, x0 - dx, x1 - dx, (c1 - c0) * groups)
        row = steps[s]
        row[S_PAD_TOP], row[S_PAD_LEFT], row[S_WEIGHTS], row[S_C0], row[S_C1] = top, left, w, c0, c1
        if w >= GROUP_OWN:
            buffers[w, B_LAST] = s
        rows, block, cols, acc = workspace_sizes(c1 - c0, k, c_out // groups, oh, ow, budget)
        if is_depthwise(chain, j):
            cols, acc = 0, 0
        row[S_SCRATCH] = _alloc(buffers, count, SCRATCH_BUFFER, cols, 1, 1, s, layer)
        _alloc(buffers, count, SCRATCH_BUFFER, acc, 1, 1, s, layer)
        row[S_BAND_ROWS], row[S_BLOCK], row[S_MACS] = rows, block, c_out * oh * ow * (c1 - c0) * k * k


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
    for k in range(rows * cols):
        r, c, dependent = order[k, 0], order[k, 1], order[k, 2]
        t = r * cols + c
        held, hoy, hox = GROUP_SOURCE, 0, 0  # the buffer holding the current layer's input, and its origin
        for j in range(j0, n):
            layer = first_layer + j - j0
            channels = chain[j, L_C_OUT]
            if mode == 2:
                hy0, hy1, hx0, hx1 = sy[j, r], by[j, r + 1], sx[j, c], bx[j, c + 1]
            else:
                hy0, hy1, hx0, hx1 = ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1]
            if j == last:
                dst, doy, dox = GROUP_OUTPUT, 0, 0
            elif hy0 < hy1 and hx0 < hx1:
                dst = _alloc(buffers, count, TILE_BUFFER, channels, hy1 - hy0, hx1 - hx0, count[0], layer, hy0, hx0)
                doy, dox = hy0, hx0
            else:
                dst, doy, dox = -1, 0, 0  # holds nothing of this layer: nothing below reads it
            tiles[j], tiles_y[j], tiles_x[j] = dst, doy, dox
            second = second_map(chain, j, j0, first_layer, source_layer, tiles, tiles_y, tiles_x)
            if mode == 0 or (mode == 1 and (dependent == 0 or j == last)):
                _compute(steps, buffers, count, chain, j, layer, t, held, hoy, hox, dst, doy, dox,
                         ny[j, r, 0], ny[j, r, 1], nx[j, c, 0], nx[j, c, 1], budget, weights_mode, bands, kept,
                         tile_input, second)
                if mode == 1 and j < last:  # an independent tile saves what its dependent neighbours need
                    for side in range(4):
                        nr = r - 1 if side == 0 else (r + 1 if side == 1 else r)
                        nc = c - 1 if side == 2 else (c + 1 if side == 3 else c)
                        if nr < 0 or nr >= rows or nc < 0 or nc >= cols:
                            continue
                        part = (1, 0, 3, 2)[side]  # which of the neighbour's fills this tile provides
                        if _checker_part(ny, nx, j, nr, nc, rows, cols, part, box):
                            strips[nr * cols + nc, j, part] = _save(steps, buffers, count, layer, t, channels, dst,
                                                                    doy, dox, box[0], box[1], box[2], box[3])
            elif mode == 1:  # a dependent tile: fills from its neighbours, then computes the middle
                for part in range(4):
                    if _checker_part(ny, nx, j, r, c, rows, cols, part, box):
                        strip = strips[t, j, part]
                        _copy(steps, buffers, count, layer, t, channels, strip, box[0], box[2], dst, doy, dox,
                              box[0], box[1], box[2], box[3])
                if _checker_part(ny, nx, j, r, c, rows, cols, 4, box):
                    _compute(steps, buffers, count, chain, j, layer, t, held, hoy, hox, dst, doy, dox,
                             box[0], box[1], box[2], box[3], budget, weights_mode, bands, kept,
                         tile_input, second)
            else:  # stream
                cy0, cy1, cx0, cx1 = by[j, r], by[j, r + 1], bx[j, c], bx[j, c + 1]
                if j < last:
                    if hy0 < hy1 and sx[j, c] < cx0:  # from the left neighbour's right strip
                        _copy(steps, buffers, count, layer, t, channels, strips[t, j, 0], hy0, sx[j, c], dst, doy,
                              dox, hy0, hy1, sx[j, c], cx0)
                    if sy[j, r] < cy0 and cx0 < cx1:  # from the upper neighbour's down strip
                        _copy(steps, buffers, count, layer, t, channels, strips[t, j, 1], sy[j, r], cx0, dst, doy,
                              dox, sy[j, r], cy0, cx0, cx1)
                if cy0 < cy1 and cx0 < cx1:
                    _compute(steps, buffers, count, chain, j, layer, t, held, hoy, hox, dst, doy, dox,
                             cy0, cy1, cx0, cx1, budget, weights_mode, bands, kept,
                         tile_input, second)
                if j < last:
                    if c < cols - 1 and hy0 < hy1 and sx[j, c + 1] < bx[j, c + 1]:  # for the right neighbour
                        strips[t + 1, j, 0] = _save(steps, buffers, count, layer, t, channels, dst, doy, dox,
                                                    hy0, hy1, sx[j, c + 1], bx[j, c + 1])
                    if r < rows - 1 and sy[j, r + 1] < by[j, r + 1] and cx0 < cx1:  # for the tile below
                        strips[t + cols, j, 1] = _save(steps, buffers, count, layer, t, channels, dst, doy, dox,
                                                       sy[j, r + 1], by[j, r + 1], cx0, cx1)
            held, hoy, hox = dst, doy, dox
    return count[0], count[1], count[2]
