"""3x3 stride-1 convolution by Winograd's F(4x4, 3x3): 36 multiplications per 4x4 output tile and input
channel instead of 144, a quarter of what any GEMM of the im2col matrix does.

Each 6x6 input patch (4x4 tiles overlap by two pixels) is transformed by B^T d B into 36 values; for each of
the 36 positions one GEMM multiplies the transformed patches by the transformed filters U (36, C, N), made
once from the weights by G g G^T; A^T m A turns each tile's 36 sums back into its 4x4 outputs, and the
epilogue (BN, activation) follows as for the GEMM path (the transforms: ``kernels.winograd_transforms``).
Here: how a step's workspaces are sized and its bands and threads cut, and the band loop. As there, the
GEMM runs in BLAS, blocked over bands of tiles (whole tile rows, or runs along one) and input channels
within flat float32 workspaces (``winograd_sizes``), and a call may compute one share of the bands or, given
slices, of the filters. Nothing here allocates.

The GEMMs multiply tiles (rows) by filters (columns): OpenBLAS ran them in 0.81-0.94x the time of filters
by tiles, and whole steps of yolov2's shapes took 0.83-0.94x their time on two threads (one process, in
turns), the output transform reading each tile's results for all filters together.

Against F(2x2, 3x3) (16 multiplications per 2x2 tile), which this replaced, the GEMMs do 44% less work;
yolov2's 208- to 52-wide layers ran 21-30% faster (one thread, 1 MiB).

The planes of each workspace are written (input transform) and read (output transform) together. When a
plane's bytes are a multiple of 4 KiB, all their addresses fall on the same cache set and evict each other
(the input transform ran 3x slower). So planes are spaced by a stride of an odd number of cache lines
(``plane_stride``), within a little slack the workspace sizes include.
"""
from __future__ import annotations

from numba import njit

from kernels.blas import F32, gemm
from kernels.conv import by_filters
from kernels.winograd_transforms import POSITIONS, TILE, tiles_across, transform_input, transform_output

LINE = 16       # float32 per 64-byte cache line
SLACK = POSITIONS * 2 * LINE * 4  # floats each workspace holds beyond its planes: the padding of four shares
SHARE_TILES = 12  # tiles of a band per thread from which threads share bands rather than filters (below)
SPACED_BUDGET = 1 << 18  # bytes: smaller workspaces have planes too small to collide, and no slack


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


@njit(cache=True, nogil=True)
def winograd_tile(out, x, pad_top, pad_left, u, mult, offset, act, band_rows, band_cols, block_channels, v, m, part,
                  parts):
    """out (N, OH, OW) <- conv3x3(x (C, H, W) with border pads), stride 1, from transformed filters u (36, C, N)
    (any row stride: a slice of the filters), BN + activation fused. ``x`` and ``out`` may be strided views.

    The workspaces hold bands of ``band_rows`` x ``band_cols`` outputs. With ``parts`` threads, each computes
    an equal run of the tiles (row by row), within its slice of each workspace (``part``), in bands no larger
    than the smaller ones ``band_grid`` gives: whole tile rows where they fit, else runs along one. Shares of
    whole bands were uneven where the bands did not divide: yolov2-tiny's default plan has strips of 3 tile
    rows at its 104-wide layer, of which one thread computed 2 and the other 1."""
    n_out, out_h, out_w = out.shape
    channels = x.shape[0]
    tiles_w, tile_rows_all = tiles_across(out_w), tiles_across(out_h)
    rows_b, cols_b = band_grid(band_rows, band_cols, out_h, out_w, parts)[:2]
    room = rows_b * cols_b  # tiles a band in this thread's slice of the workspaces holds
    v = v[part * (v.size // parts):(part + 1) * (v.size // parts)]
    m = m[part * (m.size // parts):(part + 1) * (m.size // parts)]
    ldb = u.strides[1] // F32
    total = tiles_w * tile_rows_all
    t, end = total * part // parts, total * (part + 1) // parts
    while t < end:
        ty0, tx0 = t // tiles_w, t % tiles_w
        tile_rows = min(rows_b, (end - t) // tiles_w) if tx0 == 0 and cols_b == tiles_w else 0
        cols = tiles_w
        if tile_rows == 0:  # a run along one tile row: a band's, or what is left of a row
            tile_rows, cols = 1, min(room, tiles_w - tx0, end - t)
        tiles = tile_rows * cols
        t += tiles
        row0, col0 = TILE * ty0, TILE * tx0
        m_plane = plane_stride(n_out * tiles, m.size)
        for c_lo in range(0, channels, block_channels):
            c_hi = min(channels, c_lo + block_channels)
            v_plane = plane_stride((c_hi - c_lo) * tiles, v.size)
            transform_input(v, v_plane, x, pad_top, pad_left - col0, row0, tile_rows, cols, c_lo, c_hi)
            for p in range(POSITIONS):
                gemm(tiles, n_out, c_hi - c_lo, v.ctypes.data + p * v_plane * F32, tiles, True,
                     u.ctypes.data + p * u.strides[0] + c_lo * u.strides[1], ldb, m.ctypes.data + p * m_plane * F32,
                     n_out, 0.0 if c_lo == 0 else 1.0)
        transform_output(out[:, :, col0:min(out_w, col0 + TILE * cols)], m, m_plane, mult, offset, act, row0,
                         min(TILE * tile_rows, out_h - row0), cols)
