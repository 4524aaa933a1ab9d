"""3x3 stride-1 convolution by Winograd's F(4x4, 3x3): 36 multiplications per 4x4 output tile and input
channel instead of 144, a quarter of what any GEMM of the im2col matrix does.

Each 6x6 input patch (4x4 tiles overlap by two pixels) is transformed by B^T d B into 36 values; for each of
the 36 positions one GEMM multiplies the transformed filters U (36, N, C), made once from the weights by
G g G^T, by the transformed patches; A^T m A turns each tile's 36 sums back into its 4x4 outputs, and the
epilogue (BN, activation) follows as for the GEMM path. The interpolation points are 0, 1, -1, 2, -2 and
infinity: the smallest that give F(4x4, 3x3), whose float32 rounding stays within the reference's tolerance.
As there, the GEMM runs in BLAS, blocked over bands of tiles (whole tile rows, or runs along one) and input
channels within flat float32 workspaces (``winograd_sizes``), and a call may compute one share of the bands
or, given slices, of the filters. Nothing here allocates.

Against F(2x2, 3x3) (16 multiplications per 2x2 tile), which this replaced, the GEMMs do 44% less work; the
transforms, which handle more values per tile, cost about as much once every loop runs over many tiles at
once (``_transform_input``, ``_transform_output``). yolov2's 208- to 52-wide layers ran 21-30% faster
(one thread, 1 MiB).

Tiles past an edge compute rows or columns that are not stored; input outside ``x`` reads as zero (the
padding), which only such discarded outputs see beyond the padding.

The planes of each workspace are written (input transform) and read (output transform) together. When a
plane's bytes are a multiple of 4 KiB, all their addresses fall on the same cache set and evict each other
(the input transform ran 3x slower). So planes are spaced by a stride of an odd number of cache lines
(``plane_stride``), within a little slack the workspace sizes include.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, floats_at, gemm, row_at
from kernels.conv import by_filters
from kernels.epilogue import ZERO, finish_row

TILE = 4        # output rows and columns of a tile
PATCH = 6       # input rows and columns a tile reads
POSITIONS = PATCH * PATCH  # values of a transformed patch
LINE = 16       # float32 per 64-byte cache line
SLACK = POSITIONS * 2 * LINE * 4  # floats each workspace holds beyond its planes: the padding of four shares
SHARE_TILES = 12  # tiles of a band per thread from which threads share bands rather than filters (below)
SPACED_BUDGET = 1 << 18  # bytes: smaller workspaces have planes too small to collide, and no slack
TWO, FOUR, FIVE, EIGHT = (np.float32(k) for k in (2, 4, 5, 8))  # the transforms' factors, kept in float32


def transform_filters(weights: np.ndarray) -> np.ndarray:
    """U = G g G^T of every (filter, channel) 3x3 kernel: (36, N, C) float32, position major, so that each
    position's (N, C) matrix is one GEMM operand. Made in float64 a few filters at a time, so that the
    temporaries stay small beside U (whole, they were as large as U: 150 MB more at the peak for yolov2's
    13-wide layers)."""
    g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    filters, channels = weights.shape[:2]
    u = np.empty((PATCH, PATCH, filters, channels), np.float32)
    step = max(1, (1 << 19) // max(1, channels * 9))  # about 4 MiB of float64 filters at a time
    for a in range(0, filters, step):
        u[:, :, a:a + step] = np.einsum("ik,nckl,jl->ijnc", g, weights[a:a + step].astype(np.float64), g,
                                        optimize=True)
    return u.reshape(POSITIONS, filters, channels)


@njit(cache=True)
def tiles_across(length):
    """4x4 tiles that cover ``length`` output rows or columns (the last may stick out)."""
    return -(-length // TILE)


@njit(cache=True)
def winograd_sizes(channels, filters, out_h, out_w, budget_bytes):
    """(band rows and band columns (multiples of 4), block channels, float32 elements of the transformed input
    and of the GEMM results): half the budget for the results of all filters, the rest for transformed input;
    at least one tile and one channel. A band is whole tile rows, or, when the results of one tile row do not
    fit, a run of tiles along one: at 512 KiB, a band of yolov2's 104-wide layer holds 13 of its 26 tiles
    (0.6x the GEMM's time at that budget on one thread, 0.8-0.9x on two), where whole rows left room for one
    channel. Under budgets large enough for planes of many KiB, each holds SLACK floats more, for its planes'
    spacing."""
    slack = SLACK if budget_bytes >= SPACED_BUDGET else 0
    budget_bytes -= 2 * slack * F32
    tiles_w = tiles_across(out_w)
    per_tile = POSITIONS * filters * F32  # bytes of results per tile
    tile_cols = max(1, min(tiles_w, (budget_bytes // 2) // per_tile))
    tile_rows = 1
    if tile_cols == tiles_w:
        tile_rows = max(1, min(tiles_across(out_h), (budget_bytes // 2) // (per_tile * tiles_w)))
    tiles = tile_rows * tile_cols
    block = max(1, min(channels, (budget_bytes - per_tile * tiles) // (POSITIONS * tiles * F32)))
    v, m = POSITIONS * block * tiles + slack, POSITIONS * filters * tiles + slack
    return TILE * tile_rows, TILE * tile_cols, block, v, m


@njit(cache=True, nogil=True)
def plane_stride(plane, room):
    """Floats between the starts of two position planes of ``plane`` floats each, in a workspace (slice) of
    ``room``: the smallest stride of an odd number of cache lines, so that the planes start on different
    cache sets, if the room holds it; else ``plane`` (unpadded)."""
    stride = -(-plane // LINE) * LINE
    if stride // LINE % 2 == 0:
        stride += LINE
    return stride if POSITIONS * stride <= room else plane


@njit(cache=True)
def band_grid(band_rows, band_cols, out_h, out_w, parts):
    """(tile rows, tiles across, bands side by side, bands) of the bands one of ``parts`` threads computes in
    its slice of workspaces sized for bands of ``band_rows`` x ``band_cols`` outputs: that band's tiles split
    across its tile rows when it has as many as threads, else along its one row (``parts`` = 1: the band)."""
    rows = max(1, min(band_rows // TILE, tiles_across(out_h)))
    cols = max(1, min(band_cols // TILE, tiles_across(out_w)))
    if rows >= parts:
        rows //= parts
    else:
        rows, cols = 1, max(1, rows * cols // parts)
    across = -(-tiles_across(out_w) // cols)
    return rows, cols, across, -(-tiles_across(out_h) // rows) * across


@njit(cache=True)
def band_tiles(band_rows, band_cols, out_h, out_w):
    """Tiles of one band of a Winograd step: what each of its GEMMs multiplies."""
    rows, cols = band_grid(band_rows, band_cols, out_h, out_w, 1)[:2]
    return rows * cols


@njit(cache=True)
def winograd_parts(band_rows, band_cols, out_h, out_w, workers):
    """Threads sharing a Winograd step's bands (not its filters): ``workers`` if each gets a band, else one."""
    bands = band_grid(band_rows, band_cols, out_h, out_w, workers)[3]
    return workers if bands >= workers and band_tiles(band_rows, band_cols, out_h, out_w) >= workers else 1


@njit(cache=True)
def winograd_by_filters(filters, tiles, block_channels, workers):
    """Whether a Winograd step's threads share its filters (each transforming the band's input itself)
    rather than its bands (each in half the workspace): when a band's ``tiles`` are fewer than SHARE_TILES
    per thread. Sharing bands transforms each input once, but each thread reads all the transformed filters per
    band and multiplies fewer tiles at a time, which pays only for wide enough bands."""
    return tiles < SHARE_TILES * workers and by_filters(filters, 0, block_channels, workers)


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


@njit(cache=True, nogil=True)
def _transform_input(v, plane, x, pad_top, pad_left, row0, tile_rows, tiles_w, c_lo, c_hi):
    """v[p * plane + (c - c_lo) * tiles + t] = (B^T d B)[p] of the 6x6 patch under tile t of channel c, for the
    tile rows starting at output row ``row0``. In two passes, each a loop over many tiles that vectorizes:
    every input row of a patch times B into the planes of its row of positions (a row outside ``x`` gives
    zeros; the tiles whose columns leave it, each on its own), then B^T over the columns of positions, in
    place, for all the block's tiles at once."""
    _, h, w = x.shape
    tiles = tile_rows * tiles_w
    inner_lo = max(0, min(tiles_w, -(-pad_left // TILE)))  # tiles whose six columns are inside x
    inner_hi = max(inner_lo, min(tiles_w, (w - PATCH + pad_left) // TILE + 1))
    if x.strides[2] != F32:
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
                for tx in range(tiles_w):
                    if inner_lo <= tx < inner_hi:
                        continue
                    left = TILE * tx - pad_left
                    _store_row(v, at + tx + PATCH * k * plane, plane, _times_b(
                        _at(x, c, y, left), _at(x, c, y, left + 1), _at(x, c, y, left + 2), _at(x, c, y, left + 3),
                        _at(x, c, y, left + 4), _at(x, c, y, left + 5)))
                if inner_hi > inner_lo:
                    row = floats_at(x.ctypes.data + c * x.strides[0] + y * x.strides[1], w)
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
def _transform_output(out, m, plane, mult, offset, act, row0, rows, tiles_w):
    """Rows [row0, row0 + rows) of ``out`` from the GEMM results m[p * plane + n * tiles + t]: A^T m A. First
    A^T over each column of positions, in place into its first four, for every filter's tiles in one loop;
    then each output row from a row of those, and the epilogue."""
    n_out, _, out_w = out.shape
    tile_rows = tiles_across(rows)
    tiles = tile_rows * tiles_w
    whole = out_w // TILE  # tiles whose four columns are all stored
    step = PATCH * plane
    for q in range(PATCH):
        m0, m1, m2, m3, m4, m5 = _six(m, q * plane, step)
        for t in range(n_out * tiles):
            m0[t], m1[t], m2[t], m3[t] = _times_a(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])
    for n in range(n_out):
        for ty in range(tile_rows):
            y = row0 + TILE * ty
            for a in range(min(TILE, row0 + rows - y)):
                sums = _six(m, a * step + n * tiles + ty * tiles_w, plane)
                if out.strides[2] == F32:
                    _output_row(row_at(out, n, y + a), sums, whole, tiles_w, mult[n], offset[n], act)
                else:
                    _output_row(out[n, y + a], sums, whole, tiles_w, mult[n], offset[n], act)


@njit(cache=True, nogil=True, inline="always")
def _output_row(dst, sums, whole, tiles_w, m, o, act):
    """One output row from its tiles' six planes of A^T m (m A per tile), then the epilogue."""
    s0, s1, s2, s3, s4, s5 = sums
    for tx in range(whole):
        q = TILE * tx
        dst[q], dst[q + 1], dst[q + 2], dst[q + 3] = _times_a(s0[tx], s1[tx], s2[tx], s3[tx], s4[tx], s5[tx])
    if whole < tiles_w:
        last = _times_a(s0[whole], s1[whole], s2[whole], s3[whole], s4[whole], s5[whole])
        for e in range(dst.shape[0] - TILE * whole):
            dst[TILE * whole + e] = last[e]
    finish_row(dst, dst, 0, m, o, False, act)


@njit(cache=True, nogil=True)
def winograd_tile(out, x, pad_top, pad_left, u, mult, offset, act, band_rows, band_cols, block_channels, v, m, part,
                  parts):
    """out (N, OH, OW) <- conv3x3(x (C, H, W) with border pads), stride 1, from transformed filters u (36, N, C)
    (any row stride: a slice of the filters), BN + activation fused. ``x`` and ``out`` may be strided views.

    The workspaces hold bands of ``band_rows`` x ``band_cols`` outputs. With ``parts`` threads, each computes
    a contiguous share of the smaller bands ``band_grid`` gives, within its slice of each workspace (``part``)."""
    n_out, out_h, out_w = out.shape
    channels = x.shape[0]
    tiles_w, tile_rows_all = tiles_across(out_w), tiles_across(out_h)
    rows_b, cols_b, across, bands = band_grid(band_rows, band_cols, out_h, out_w, parts)
    share = -(-bands // parts)
    v = v[part * (v.size // parts):(part + 1) * (v.size // parts)]
    m = m[part * (m.size // parts):(part + 1) * (m.size // parts)]
    lda = u.strides[1] // F32
    for band in range(part * share, min(bands, (part + 1) * share)):
        ty0, tx0 = band // across * rows_b, band % across * cols_b
        tile_rows, cols = min(rows_b, tile_rows_all - ty0), min(cols_b, tiles_w - tx0)
        tiles = tile_rows * cols
        row0, col0 = TILE * ty0, TILE * tx0
        m_plane = plane_stride(n_out * tiles, m.size)
        for c_lo in range(0, channels, block_channels):
            c_hi = min(channels, c_lo + block_channels)
            v_plane = plane_stride((c_hi - c_lo) * tiles, v.size)
            _transform_input(v, v_plane, x, pad_top, pad_left - col0, row0, tile_rows, cols, c_lo, c_hi)
            for p in range(POSITIONS):
                gemm(n_out, tiles, c_hi - c_lo, u.ctypes.data + p * u.strides[0] + c_lo * F32, lda, False,
                     v.ctypes.data + p * v_plane * F32, tiles, m.ctypes.data + p * m_plane * F32, tiles,
                     0.0 if c_lo == 0 else 1.0)
        _transform_output(out[:, :, col0:min(out_w, col0 + TILE * cols)], m, m_plane, mult, offset, act, row0,
                          min(TILE * tile_rows, out_h - row0), cols)
