"""A conv with the 2x2 stride-2 maxpool after it folded in: the conv's rows computed a band at a time into a
small scratch (its epilogue applied there), each band pooled from it into the output. The conv's map never
exists, and the pool reads what the conv has just written, from the cache, without a step of its own.

Each driver computes one share (``part`` of ``parts``) of the pooled rows (of the 4x4 tiles, for Winograd: a
share may end within a tile row), in bands that fit its slice of the scratch, by calling the conv kernel on
the input under the band: a band's windows read exactly that, so what lies past it is the map's border only
where the map ends. Nothing here allocates: ``band`` is a flat float32 arena view, as the conv kernels'
workspaces are.
"""
from __future__ import annotations

from numba import njit

from kernels.conv import conv_tile
from kernels.direct import thin_tile
from kernels.pool import maxpool_tile
from kernels.winograd import band_grid, winograd_tile
from kernels.winograd_transforms import TILE, tiles_across

THIN_POOL_ROWS = 8  # conv rows of a thin conv's band at most (``thin_tile`` runs its windows 4 rows at a time)


@njit(cache=True, nogil=True, inline="always")
def _span(pad, o0, o1, size, stride, n):
    """(first, stop, virtual ones before the first) of the n input rows (or columns) that conv rows [o0, o1)
    read."""
    start, stop = o0 * stride - pad, (o1 - 1) * stride - pad + size
    first = max(0, start)
    return first, max(first, min(n, stop)), first - start


@njit(cache=True, nogil=True, inline="always")
def _slice(a, part, parts):
    return a[part * (a.size // parts):(part + 1) * (a.size // parts)]


@njit(cache=True, nogil=True, inline="always")
def _band_view(band, filters, rows, width):
    return band[:filters * rows * width].reshape((filters, rows, width))


@njit(cache=True, nogil=True)
def conv_pooled(out, x, pad_top, pad_left, w2d, channel_major, mult, offset, act, size, stride, band_rows, block,
                cols, band, part, parts):
    """``conv_tile`` of twice ``out``'s rows and columns, pooled into ``out``: the GEMM multiplies into the
    band's rows (its result workspace, ``band``) and the epilogue runs there. Bands of ``band_rows`` (even)
    conv rows, split between ``parts``, each with its slice of ``cols`` and ``band``."""
    filters, pooled_h, pooled_w = out.shape
    step = band_rows // parts // 2  # pooled rows per band
    cols, band = _slice(cols, part, parts), _slice(band, part, parts)
    for p0 in range(pooled_h * part // parts, pooled_h * (part + 1) // parts, step):
        p1 = min(pooled_h * (part + 1) // parts, p0 + step)
        lo, hi, top = _span(pad_top, 2 * p0, 2 * p1, size, stride, x.shape[1])
        conv = _band_view(band, filters, 2 * (p1 - p0), 2 * pooled_w)
        conv_tile(conv, x[:, lo:hi], top, pad_left, w2d, channel_major, mult, offset, act, size, stride,
                  2 * (p1 - p0), block, True, True, cols, band[:0], 0, 1)
        maxpool_tile(out[:, p0:p1], conv, 2, 2, 0, 0)


@njit(cache=True, nogil=True)
def winograd_pooled(out, x, pad_top, pad_left, u, mult, offset, act, band_rows, band_cols, block, v, m, band, part,
                    parts):
    """``winograd_tile`` of twice ``out``'s rows and columns, pooled into ``out``: an equal run of the tiles
    (row by row) for each of ``parts``, in bands of whole tile rows (``band_grid``'s share of the workspaces)
    or runs along one, each into its slice of ``band``. Shares of whole tile rows were uneven (yolov2-tiny's
    strips have 7 tile rows at layer 4), or none: yolov2's bands at layer 2 are one tile row."""
    filters, pooled_h, pooled_w = out.shape
    conv_h, conv_w = 2 * pooled_h, 2 * pooled_w
    tile_rows, tile_cols = band_grid(band_rows, band_cols, conv_h, conv_w, parts)[:2]
    v, m, band = _slice(v, part, parts), _slice(m, part, parts), _slice(band, part, parts)
    across = tiles_across(conv_w)
    total = across * tiles_across(conv_h)
    t, end = total * part // parts, total * (part + 1) // parts
    while t < end:
        ty, tx = t // across, t % across
        rows = min(tile_rows, (end - t) // across) if tx == 0 and tile_cols == across else 0
        c0, c1, count = 0, conv_w, rows * across
        if rows == 0:  # a run along one tile row, as long as a band's
            rows, count = 1, min(across - tx, end - t, tile_cols)
            c0, c1 = TILE * tx, min(conv_w, TILE * (tx + count))
        t += count
        r0, r1 = TILE * ty, min(conv_h, TILE * (ty + rows))
        lo, hi, top = _span(pad_top, r0, r1, 3, 1, x.shape[1])
        first, stop, left = _span(pad_left, c0, c1, 3, 1, x.shape[2])
        conv = _band_view(band, filters, r1 - r0, c1 - c0)
        winograd_tile(conv, x[:, lo:hi, first:stop], top, left, u, mult, offset, act, TILE * tile_rows,
                      TILE * tile_cols, block, v, m, 0, 1)
        maxpool_tile(out[:, r0 // 2:r1 // 2, c0 // 2:c1 // 2], conv, 2, 2, 0, 0)


@njit(cache=True, nogil=True)
def thin_pooled(out, x, pad_top, pad_left, w, mult, offset, act, stride, band_rows, band, part, parts):
    """``thin_tile`` of twice ``out``'s rows and columns, pooled into ``out``: bands of ``band_rows`` (even)
    conv rows split between ``parts``."""
    filters, pooled_h, pooled_w = out.shape
    step = band_rows // parts // 2
    band = _slice(band, part, parts)
    for p0 in range(pooled_h * part // parts, pooled_h * (part + 1) // parts, step):
        p1 = min(pooled_h * (part + 1) // parts, p0 + step)
        lo, hi, top = _span(pad_top, 2 * p0, 2 * p1, 3, stride, x.shape[1])
        conv = _band_view(band, filters, 2 * (p1 - p0), 2 * pooled_w)
        thin_tile(conv, x[:, lo:hi], top, pad_left, w, mult, offset, act, stride, True, True, 0, 1)
        maxpool_tile(out[:, p0:p1], conv, 2, 2, 0, 0)
