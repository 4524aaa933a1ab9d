"""The rows one step of a group's program adds: buffers allocated, steps emitted with the lifetimes of what
they touch, strips copied and saved, weights loaded, and one layer's computation of a region (conv in bands,
maxpool, shortcut, upsample, a route's copies). ``engine.lower.walk`` decides which regions; these write them.
"""
from __future__ import annotations

from numba import njit

from engine.lower.geometry import input_span
from engine.lower.table import (B_BYTES, B_C, B_FIRST, B_H, B_KIND, B_LAST, B_LAYER, B_SEGMENT, B_SIDE, B_W, B_X0, B_Y0,
                                CONV_STEP, COPY_STEP, DIRECT_RUN, GROUP_OUTPUT, GROUP_OWN, GROUP_SOURCE, INPUT_BUFFER,
                                INPUT_STEP, LOAD_STEP, L_BN, L_C_IN, L_C_OUT, L_GROUPS, L_IN_W, L_KIND, L_OUT_W,
                                L_PART, L_SIZE, L_SRC2, L_STRIDE, L_WINOGRAD, MAXPOOL_STEP, SCRATCH_BUFFER,
                                SHORTCUT_STEP, STRIP_BUFFER, S_BAND_COLS, S_BAND_ROWS, S_BLOCK, S_C0, S_C1, S_CHANNELS,
                                S_DC0, S_DST, S_DX0, S_DY0, S_KIND, S_LAYER, S_MACS, S_METHOD, S_PAD_LEFT, S_PAD_TOP,
                                S_POOLED, S_S2X0, S_S2Y0, S_SCRATCH, S_SRC, S_SRC2, S_SX0, S_SY0, S_TILE, S_WEIGHTS,
                                TILE_CONV, TILE_MAXPOOL, TILE_ROUTE, TILE_SHORTCUT, TILE_UPSAMPLE, UPSAMPLE_STEP,
                                WEIGHTS_BUFFER, WINOGRAD_HELD, WINOGRAD_RUN, is_direct, vector_floats, winograd_gains)
from kernels.conv import workspace_sizes
from kernels.pooled import THIN_POOL_ROWS
from kernels.winograd import winograd_sizes
from kernels.winograd_transforms import TILE, tiles_across

F32 = 4
RESIDENT, PER_GROUP, PER_TILE = 0, 1, 2  # WEIGHT_MODES


@njit(cache=True)
def alloc_buffer(buffers, count, kind, c, h, w, now, layer=-1, y0=0, x0=0):
    b = count[1]
    count[1] += 1
    buffers[b, B_LAYER], buffers[b, B_Y0], buffers[b, B_X0], buffers[b, B_SEGMENT] = layer, y0, x0, -1
    buffers[b, B_SIDE] = 0
    buffers[b, B_BYTES] = c * h * w * F32
    buffers[b, B_KIND] = kind
    buffers[b, B_FIRST] = now
    buffers[b, B_LAST] = now
    buffers[b, B_C], buffers[b, B_H], buffers[b, B_W] = c, h, w
    return b


@njit(cache=True)
def emit(steps, buffers, count, kind, layer, tile, src, sy0, sy1, sx0, sx1, dst, dy0, dy1, dx0, dx1, channels):
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
def copy_region(steps, buffers, count, layer, tile, channels, src, s_origin_y, s_origin_x, dst, d_origin_y, d_origin_x,
                y0, y1, x0, x1):
    """A strip copied between two buffers; the region is absolute, each side given by its buffer's origin."""
    return emit(steps, buffers, count, COPY_STEP, layer, tile, src, y0 - s_origin_y, y1 - s_origin_y,
                x0 - s_origin_x, x1 - s_origin_x, dst, y0 - d_origin_y, y1 - d_origin_y, x0 - d_origin_x,
                x1 - d_origin_x, channels)


@njit(cache=True)
def save_strip(steps, buffers, count, layer, tile, channels, src, s_origin_y, s_origin_x, y0, y1, x0, x1):
    """A strip of the region [y0, y1) x [x0, x1) saved out of ``src`` for a later tile; returns its buffer."""
    strip = alloc_buffer(buffers, count, STRIP_BUFFER, channels, y1 - y0, x1 - x0, count[0], layer, y0, x0)
    copy_region(steps, buffers, count, layer, tile, channels, src, s_origin_y, s_origin_x, strip, y0, x0, y0, y1,
                x0, x1)
    return strip


@njit(cache=True)
def load_band(steps, buffers, count, chain, j, layer, tile, c0, c1):
    """A weights buffer for input channels [c0, c1) of layer j's filters (and, with the last channels, the
    layer's vectors), and the step that fills it; returns the buffer."""
    c_in, c_out, k = chain[j, L_C_IN] // chain[j, L_GROUPS], chain[j, L_C_OUT], chain[j, L_SIZE]
    floats = (vector_floats(chain[j, L_BN], c_out) if c1 == c_in else 0) + c_out * (c1 - c0) * k * k
    w = alloc_buffer(buffers, count, WEIGHTS_BUFFER, floats, 1, 1, count[0], layer)
    s = emit(steps, buffers, count, LOAD_STEP, layer, tile, -1, 0, 0, 0, 0, w, 0, 0, 0, 0, c1 - c0)
    steps[s, S_C0], steps[s, S_C1] = c0, c1
    return w


@njit(cache=True)
def read_second(steps, buffers, count, s, second, y0, x0):
    """Step s also reads the region starting at absolute (y0, x0) of ``second`` (buffer, origin y, origin x)."""
    b2, o2y, o2x = second
    steps[s, S_SRC2], steps[s, S_S2Y0], steps[s, S_S2X0] = b2, y0 - o2y, x0 - o2x
    if b2 == GROUP_SOURCE:
        count[2] = s
    elif b2 >= GROUP_OWN:
        buffers[b2, B_LAST] = s


@njit(cache=True)
def route_copy(steps, buffers, count, chain, j, layer, tile, src, oy, ox, dst, dy, dx, y0, y1, x0, x1, taken,
               c0):
    """One source of a route: its part of the channels (all of them, or its split part) of region
    [y0, y1) x [x0, x1), copied to the route's channels from ``c0``."""
    s = copy_region(steps, buffers, count, layer, tile, taken, src, oy, ox, dst, dy, dx, y0, y1, x0, x1)
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
def compute(steps, buffers, count, chain, j, layer, tile, src, oy, ox, dst, dy, dx, y0, y1, x0, x1, budget,
            weights_mode, bands, kept, tile_input, second, pooled):
    """Layer j's output region [y0, y1) x [x0, x1) from the buffer ``src`` holding its input from (oy, ox).
    With ``tile_input``, the group's input map is the network input, which is not held whole: the region
    this step reads is first produced from the picture into a buffer of its own. ``second``: the buffer and
    origin of the second map a shortcut or route reads.
    A conv runs in ``bands`` steps over bands of its filters' input channels, accumulating into the region
    (each after the load of its weights in PER_TILE mode); in PER_GROUP mode the layer's weights are loaded
    at its first step and ``kept[j]`` names them. A grouped conv has one band (the lowering is asked for
    no more) and workspaces for one group at a time; a direct one (``is_direct``) needs none.
    ``pooled``: row j is a maxpool folded into the conv before it (``pooled_by_next``), which computes twice
    the region, pooled into it, band by band (one band of the weights)."""
    cy0, cy1, cx0, cx1 = y0, y1, x0, x1  # the region the layer computes
    if pooled:
        j, layer = j - 1, layer - 1
        cy0, cy1, cx0, cx1 = 2 * y0, 2 * y1, 2 * x0, 2 * x1
    iy0, iy1, top = input_span(chain, j, cy0, cy1, 0)
    ix0, ix1, left = input_span(chain, j, cx0, cx1, 1)
    c_in, kind = chain[j, L_C_IN], chain[j, L_KIND]
    if tile_input and src == GROUP_SOURCE:
        src = alloc_buffer(buffers, count, INPUT_BUFFER, c_in, iy1 - iy0, ix1 - ix0, count[0], -1, iy0, ix0)
        made = emit(steps, buffers, count, INPUT_STEP, -1, tile, -1, iy0, iy1, ix0, ix1, src, 0, iy1 - iy0, 0,
                    ix1 - ix0, c_in)
        oy, ox = iy0, ix0
        if dst >= GROUP_OWN and buffers[dst, B_FIRST] == made:  # the output tile is first touched by the compute
            buffers[dst, B_FIRST] = made + 1
    if kind == TILE_ROUTE:  # its sources' channels side by side: a copy each
        c_first = c_in // chain[j, L_GROUPS]
        route_copy(steps, buffers, count, chain, j, layer, tile, src, oy, ox, dst, dy, dx, y0, y1, x0, x1,
                   c_first, 0)
        if chain[j, L_SRC2] >= 0:
            b2, o2y, o2x = second
            route_copy(steps, buffers, count, chain, j, layer, tile, b2, o2y, o2x, dst, dy, dx, y0, y1, x0, x1,
                       chain[j, L_C_OUT] - c_first, c_first)
        return
    if kind != TILE_CONV:
        code = MAXPOOL_STEP if kind == TILE_MAXPOOL else SHORTCUT_STEP if kind == TILE_SHORTCUT else UPSAMPLE_STEP
        s = emit(steps, buffers, count, code, layer, tile, src, iy0 - oy, iy1 - oy, ix0 - ox, ix1 - ox,
                 dst, y0 - dy, y1 - dy, x0 - dx, x1 - dx, c_in)
        if kind == TILE_UPSAMPLE:  # where the region starts within its first input pixel
            top, left = y0 % chain[j, L_STRIDE], x0 % chain[j, L_STRIDE]
        steps[s, S_PAD_TOP], steps[s, S_PAD_LEFT] = top, left
        if kind == TILE_SHORTCUT:
            read_second(steps, buffers, count, s, second, y0, x0)
        return
    groups = chain[j, L_GROUPS]
    c_in //= groups
    if groups > 1:
        bands = 1
    oh, ow, c_out, k = cy1 - cy0, cx1 - cx0, chain[j, L_C_OUT], chain[j, L_SIZE]
    for band in range(bands):
        c0, c1 = c_in * band // bands, c_in * (band + 1) // bands
        w = -1
        if weights_mode == PER_TILE:
            w = load_band(steps, buffers, count, chain, j, layer, tile, c0, c1)
        elif weights_mode == PER_GROUP:
            if kept[j] < 0:
                kept[j] = load_band(steps, buffers, count, chain, j, layer, tile, 0, c_in)
            w = kept[j]
        s = emit(steps, buffers, count, CONV_STEP, layer, tile, src, iy0 - oy, iy1 - oy, ix0 - ox, ix1 - ox,
                 dst, y0 - dy, y1 - dy, x0 - dx, x1 - dx, (c1 - c0) * groups)
        row = steps[s]
        row[S_PAD_TOP], row[S_PAD_LEFT], row[S_WEIGHTS], row[S_C0], row[S_C1] = top, left, w, c0, c1
        row[S_POOLED] = pooled
        if w >= GROUP_OWN:
            buffers[w, B_LAST] = s
        width = chain[j, L_IN_W] if src == GROUP_SOURCE else buffers[src, B_W]  # of the buffer read
        in_place = k == 1 and chain[j, L_STRIDE] == 1 and top == 0 and left == 0 and ix1 - ix0 == width
        out_width = chain[j, L_OUT_W] if dst == GROUP_OUTPUT else buffers[dst, B_W]  # of the buffer written
        rows, block, cols, acc = workspace_sizes(c1 - c0, k, c_out // groups, oh, ow, budget, in_place,
                                                 ow == out_width and not pooled)
        if pooled and rows % 2:  # pooled bands of whole windows; the GEMM's result is the band pooled
            even = max(2, rows - 1)
            rows, cols, acc = even, cols // rows * even, acc // rows * even
        band = 0
        if chain[j, L_WINOGRAD] and w < 0 and bands == 1:  # Winograd where this step's bands hold enough tiles
            row[S_METHOD] = WINOGRAD_HELD
            if winograd_gains(c1 - c0, c_out, oh, ow, budget):
                rows, row[S_BAND_COLS], block, cols, acc = winograd_sizes(c1 - c0, c_out, oh, ow, budget)
                row[S_METHOD] = WINOGRAD_RUN
                # the band in whole tiles, so that each thread's runs of them fit its share of it
                band = c_out * min(rows, TILE * tiles_across(oh)) * TILE * tiles_across(ow) if pooled else 0
        if is_direct(chain, j):
            row[S_METHOD], cols, acc = DIRECT_RUN, 0, 0
            band = c_out * min(THIN_POOL_ROWS, oh) * ow if pooled else 0
        row[S_SCRATCH] = alloc_buffer(buffers, count, SCRATCH_BUFFER, cols, 1, 1, s, layer)
        alloc_buffer(buffers, count, SCRATCH_BUFFER, acc, 1, 1, s, layer)
        alloc_buffer(buffers, count, SCRATCH_BUFFER, band, 1, 1, s, layer)
        row[S_BAND_ROWS], row[S_BLOCK], row[S_MACS] = rows, block, c_out * oh * ow * (c1 - c0) * k * k
