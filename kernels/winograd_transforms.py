"""The transforms of Winograd's F(4x4, 3x3) (``kernels.winograd``) between pixels and its 36 positions:
the filters' G g G^T (once, when weights are prepared), each band's input patches' B^T d B, and the GEMM
sums' A^T m A back into output rows, with the epilogue. The interpolation points are 0, 1, -1, 2, -2 and
infinity: the smallest that give F(4x4, 3x3), whose float32 rounding stays within the reference's tolerance.

The input transform runs as loops over many tiles at once, the output transform over many tiles' or
filters' sums at once, which vectorize: they then cost about as much as F(2x2, 3x3)'s, which handle fewer
values per tile. Input outside ``x`` reads as zero (the padding); tiles past an edge compute rows or
columns that are not stored. Nothing here allocates.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, floats_at, row_at
from kernels.epilogue import ZERO, finish_row

TILE = 4        # output rows and columns of a tile
PATCH = 6       # input rows and columns a tile reads
POSITIONS = PATCH * PATCH  # values of a transformed patch
TWO, FOUR, FIVE, EIGHT = (np.float32(k) for k in (2, 4, 5, 8))  # the transforms' factors, kept in float32


def transform_filters(weights: np.ndarray) -> np.ndarray:
    """U = G g G^T of every (filter, channel) 3x3 kernel: (36, C, N) float32, position major, so that each
    position's (C, N) matrix is one GEMM operand. Made in float64 a few filters at a time, so that the
    temporaries stay small beside U (whole, they were as large as U: 150 MB more at the peak for yolov2's
    13-wide layers)."""
    g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    filters, channels = weights.shape[:2]
    u = np.empty((PATCH, PATCH, channels, filters), np.float32)
    step = max(1, (1 << 19) // max(1, channels * 9))  # about 4 MiB of float64 filters at a time
    for a in range(0, filters, step):
        u[:, :, :, a:a + step] = np.einsum("ik,nckl,jl->ijcn", g, weights[a:a + step].astype(np.float64), g,
                                           optimize=True)
    return u.reshape(POSITIONS, channels, filters)


@njit(cache=True)
def tiles_across(length):
    """4x4 tiles that cover ``length`` output rows or columns (the last may stick out)."""
    return -(-length // TILE)


@njit(cache=True, nogil=True, inline="always")
def _times_b(d0, d1, d2, d3, d4, d5):
    """d B for one row d of a patch (B^T d for a column): its six values, positions in order."""
    odd, even = d4 - d2, d3 - d1
    return (FOUR * d0 - FIVE * d2 + d4, (d3 + d4) - FOUR * (d1 + d2), (d4 - d3) + FOUR * (d1 - d2), odd + TWO * even,
            odd - TWO * even, FOUR * d1 - FIVE * d3 + d5)


@njit(cache=True, nogil=True, inline="always")
def _at(x, c, y, col):
    w = x.shape[2]
    return x[c, y, col] if 0 <= col < w else ZERO


@njit(cache=True, nogil=True, inline="always")
def _in(row, col):
    return row[col] if 0 <= col < row.shape[0] else ZERO


@njit(cache=True, nogil=True)
def transform_input(v, plane, x, pad_top, pad_left, row0, tile_rows, tiles_w, c_lo, c_hi):
    """v[p * plane + (c - c_lo) * tiles + t] = (B^T d B)[p] of the 6x6 patch under tile t of channel c, for the
    tile rows starting at output row ``row0``. In two passes, each a loop over many tiles that vectorizes:
    every input row of a patch times B into the planes of its row of positions (a row outside ``x`` gives
    zeros; the tiles whose columns leave it, each on its own), then B^T over the columns of positions, in
    place, for all the block's tiles at once."""
    _, h, w = x.shape
    tiles = tile_rows * tiles_w
    inner_lo = max(0, min(tiles_w, -(-pad_left // TILE)))  # tiles whose six columns are inside x
    inner_hi = max(inner_lo, min(tiles_w, (w - PATCH + pad_left) // TILE + 1))
    runs = x.strides[2] == F32  # rows are runs (arena views): read as such
    if not runs:
        inner_lo = inner_hi = 0
    for c in range(c_lo, c_hi):
        for ty in range(tile_rows):
            top = row0 + TILE * ty - pad_top
            at = (c - c_lo) * tiles + ty * tiles_w
            for k in range(PATCH):
                y = top + k
                if y < 0 or y >= h:
                    for p in range(PATCH * k, PATCH * k + PATCH):
                        v[at + p * plane:at + p * plane + tiles_w] = ZERO
                    continue
                row = floats_at(x.ctypes.data + c * x.strides[0] + y * x.strides[1], w if runs else 0)
                for tx in range(tiles_w):
                    if inner_lo <= tx < inner_hi:
                        continue
                    left = TILE * tx - pad_left
                    if runs:  # from the row as a run: indexing x took the transform 3x longer, 4.8x on a strip's view
                        d = _times_b(_in(row, left), _in(row, left + 1), _in(row, left + 2), _in(row, left + 3),
                                     _in(row, left + 4), _in(row, left + 5))
                    else:
                        d = _times_b(_at(x, c, y, left), _at(x, c, y, left + 1), _at(x, c, y, left + 2),
                                     _at(x, c, y, left + 3), _at(x, c, y, left + 4), _at(x, c, y, left + 5))
                    _store_row(v, at + tx + PATCH * k * plane, plane, d)
                if inner_hi > inner_lo:
                    _rows_times_b(v, at + inner_lo + PATCH * k * plane, plane,
                                  row[TILE * inner_lo - pad_left:], inner_hi - inner_lo)
    for q in range(PATCH):
        _bt_column(v, q * plane, plane, (c_hi - c_lo) * tiles)


@njit(cache=True, nogil=True, inline="always")
def _six(a, at, step):
    """Six views of ``a`` from ``at``, ``step`` apart, for loops that index them from 0 (an index offset by a
    variable might be negative, which Numba checks at every access, keeping a loop scalar)."""
    return a[at:], a[at + step:], a[at + 2 * step:], a[at + 3 * step:], a[at + 4 * step:], a[at + 5 * step:]


@njit(cache=True, nogil=True, inline="always")
def _store_row(v, at, plane, values):
    """Six values a plane apart."""
    v[at], v[at + plane], v[at + 2 * plane] = values[0], values[1], values[2]
    v[at + 3 * plane], v[at + 4 * plane], v[at + 5 * plane] = values[3], values[4], values[5]


@njit(cache=True, nogil=True, inline="always")
def _rows_times_b(v, at, plane, row, n):
    """One input row times B for n tiles side by side (columns 4t to 4t + 5): six planes written from one row
    read."""
    v0, v1, v2, v3, v4, v5 = _six(v, at, plane)
    for t in range(n):
        q = TILE * t
        v0[t], v1[t], v2[t], v3[t], v4[t], v5[t] = _times_b(row[q], row[q + 1], row[q + 2], row[q + 3], row[q + 4],
                                                            row[q + 5])


@njit(cache=True, nogil=True, inline="always")
def _bt_column(v, at, plane, n):
    """B^T times one column of positions (at, at + 6 planes, ..., at + 30 planes) of n tiles, in place."""
    v0, v1, v2, v3, v4, v5 = _six(v, at, PATCH * plane)
    for t in range(n):
        d0, d1, d2, d3, d4, d5 = v0[t], v1[t], v2[t], v3[t], v4[t], v5[t]
        v0[t], v1[t], v2[t], v3[t], v4[t], v5[t] = _times_b(d0, d1, d2, d3, d4, d5)


@njit(cache=True, nogil=True, inline="always")
def _times_a(m0, m1, m2, m3, m4, m5):
    """A^T m for one column m of a tile's sums (m A for a row), A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]: its four values."""
    plus, minus = m1 + m2, m1 - m2
    plus2, minus2 = m3 + m4, m3 - m4
    return m0 + plus + plus2, minus + TWO * minus2, plus + FOUR * plus2, minus + EIGHT * minus2 + m5


@njit(cache=True, nogil=True)
def transform_output(out, m, plane, mult, offset, act, row0, rows, tiles_w):
    """Rows [row0, row0 + rows) of ``out`` from the GEMM results m[p * plane + t * N + n] (each position's
    tiles x filters): A^T m A. First A^T over each column of positions, in place into its first four, for
    every tile and filter in one loop; then each tile's row of outputs for all filters at once (a loop along
    the filters, which lie together), and the epilogue over the rows written."""
    n_out, _, out_w = out.shape
    tile_rows = tiles_across(rows)
    tiles = tile_rows * tiles_w
    step = PATCH * plane
    for q in range(PATCH):
        m0, m1, m2, m3, m4, m5 = _six(m, q * plane, step)
        for t in range(n_out * tiles):
            m0[t], m1[t], m2[t], m3[t] = _times_a(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])
    for ty in range(tile_rows):
        y = row0 + TILE * ty
        for a in range(min(TILE, row0 + rows - y)):
            for tx in range(tiles_w):
                s0, s1, s2, s3, s4, s5 = _six(m, a * step + (ty * tiles_w + tx) * n_out, plane)
                q = TILE * tx
                if q + TILE <= out_w:
                    for n in range(n_out):
                        out[n, y + a, q], out[n, y + a, q + 1], out[n, y + a, q + 2], out[n, y + a, q + 3] = _times_a(
                            s0[n], s1[n], s2[n], s3[n], s4[n], s5[n])
                    continue
                for n in range(n_out):
                    last = _times_a(s0[n], s1[n], s2[n], s3[n], s4[n], s5[n])
                    for e in range(out_w - q):
                        out[n, y + a, q + e] = last[e]
    for n in range(n_out):
        for r in range(row0, row0 + rows):
            if out.strides[2] == F32:
                row = row_at(out, n, r)
                finish_row(row, row, 0, mult[n], offset[n], False, act)
            else:
                finish_row(out[n, r], out[n, r], 0, mult[n], offset[n], False, act)
