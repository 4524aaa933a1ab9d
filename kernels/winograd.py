"""3x3 stride-1 convolution by Winograd's F(2x2, 3x3): 16 multiplications per 2x2 output tile and input
channel instead of 36, which no GEMM of the im2col matrix can match.

Each 4x4 input patch (2x2 tiles overlap by two pixels) is transformed by B^T d B into 16 values; for each of
the 16 positions one GEMM multiplies the transformed filters U (16, N, C), made once from the weights by
G g G^T, by the transformed patches; A^T m A turns each tile's 16 sums back into its 2x2 outputs, and the
epilogue (BN, activation) follows as for the GEMM path. As there, the GEMM runs in BLAS, blocked over bands
of output rows and input channels within flat float32 workspaces (``winograd_sizes``), and a call may compute
one share of the rows or, given slices, of the filters. Nothing here allocates.

Tiles past an odd edge compute a row or column that is not stored; input outside ``x`` reads as zero (the
padding), which only such discarded outputs see beyond the padding.

The 16 position planes of each workspace are written (input transform) and read (output transform) at
once. When a plane's bytes are a multiple of 4 KiB (128 channels of 104 tiles: yolov2's 52-wide layers)
all 16 addresses fall on the same cache set and evict each other: the input transform ran 3x slower. So
planes are spaced by a stride of an odd number of cache lines (``plane_stride``), within a little slack
the workspace sizes include.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, floats_at, gemm
from kernels.conv import by_filters
from kernels.epilogue import ONE, ZERO, finish_row

POSITIONS = 16  # values of a transformed 4x4 patch
LINE = 16       # float32 per 64-byte cache line
SLACK = POSITIONS * 2 * LINE * 4  # floats each workspace holds beyond its planes: the padding of four shares
SPACED_BUDGET = 1 << 18  # bytes: smaller workspaces have planes too small to collide, and no slack


def transform_filters(weights: np.ndarray) -> np.ndarray:
    """U = G g G^T of every (filter, channel) 3x3 kernel: (16, N, C) float32, position major, so that each
    position's (N, C) matrix is one GEMM operand. Made a few filters at a time, so that the temporaries stay
    small beside U (whole, they were as large as U: 150 MB more at the peak for yolov2's 13-wide layers)."""
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
    filters, channels = weights.shape[:2]
    u = np.empty((4, 4, filters, channels), np.float32)
    step = max(1, (1 << 20) // max(1, channels * 9))  # about 4 MiB of filters at a time
    for a in range(0, filters, step):
        u[:, :, a:a + step] = np.einsum("ik,nckl,jl->ijnc", g, weights[a:a + step].astype(np.float32), g,
                                        optimize=True)
    return u.reshape(POSITIONS, filters, channels)


@njit(cache=True)
def winograd_sizes(channels, filters, out_h, out_w, budget_bytes):
    """(band rows (even), block channels, float32 elements of the transformed input and of the GEMM
    results): half the budget for the results of all filters, the rest for transformed input; at least one
    tile row and one channel. Under budgets large enough for planes of many KiB, each holds SLACK floats
    more, for its planes' spacing."""
    slack = SLACK if budget_bytes >= SPACED_BUDGET else 0
    budget_bytes -= 2 * slack * F32
    tiles_w = (out_w + 1) // 2
    tile_rows = max(1, min((out_h + 1) // 2, (budget_bytes // 2) // (POSITIONS * filters * tiles_w * F32)))
    tiles = tile_rows * tiles_w
    block = max(1, min(channels, (budget_bytes - POSITIONS * filters * tiles * F32) // (POSITIONS * tiles * F32)))
    return 2 * tile_rows, block, POSITIONS * block * tiles + slack, POSITIONS * filters * tiles + slack


@njit(cache=True, nogil=True)
def plane_stride(plane, room):
    """Floats between the starts of two position planes of ``plane`` floats each, in a workspace (slice) of
    ``room``: the smallest stride of an odd number of cache lines, so that the 16 planes start on 16
    different cache sets, if the room holds it; else ``plane`` (unpadded)."""
    stride = -(-plane // LINE) * LINE
    if stride // LINE % 2 == 0:
        stride += LINE
    return stride if POSITIONS * stride <= room else plane


@njit(cache=True)
def band_tiles(band_rows, out_h, out_w):
    """(tile rows, tiles) of one band of a Winograd step: what each of its 16 GEMMs multiplies."""
    tile_rows = min(band_rows // 2, (out_h + 1) // 2)
    return tile_rows, tile_rows * ((out_w + 1) // 2)


@njit(cache=True)
def winograd_by_filters(filters, band_tile_rows, band_tiles, block_channels, workers):
    """Whether a Winograd step's threads share its filters (each transforming the band's input itself)
    rather than its tile rows: when the filters outnumber a band's tiles, as for GEMM steps, or when a band
    has fewer tile rows than threads (yolov2's 208-wide layer at 1 MiB: one)."""
    return by_filters(filters, band_tiles, block_channels, workers) or (
        band_tile_rows < workers and by_filters(filters, 0, block_channels, workers))


@njit(cache=True, nogil=True, inline="always")
def _at(x, c, y, col):
    _, h, w = x.shape
    return x[c, y, col] if 0 <= y < h and 0 <= col < w else ZERO


@njit(cache=True, nogil=True)
def _transform_input(v, plane, x, pad_top, pad_left, row0, tile_rows, tiles_w, c_lo, c_hi):
    """v[p * plane + (c - c_lo) * tiles + t] = (B^T d B)[p] of the 4x4 patch under tile t of channel c, for the
    tile rows starting at output row ``row0``."""
    _, h, w = x.shape
    tiles = tile_rows * tiles_w
    inner_lo = min(tiles_w, -(-pad_left // 2))  # tiles whose four columns are inside x
    inner_hi = max(inner_lo, min(tiles_w, (w - 4 + pad_left) // 2 + 1))
    runs = x.strides[2] == F32
    for c in range(c_lo, c_hi):
        for ty in range(tile_rows):
            top = row0 + 2 * ty - pad_top
            base = (c - c_lo) * tiles + ty * tiles_w
            rows_inside = top >= 0 and top + 3 < h and runs
            for tx in range(tiles_w):
                if rows_inside and inner_lo <= tx < inner_hi:
                    continue
                left = 2 * tx - pad_left
                _store_patch(v, base + tx, plane,
                             _at(x, c, top, left), _at(x, c, top, left + 1), _at(x, c, top, left + 2),
                             _at(x, c, top, left + 3), _at(x, c, top + 1, left), _at(x, c, top + 1, left + 1),
                             _at(x, c, top + 1, left + 2), _at(x, c, top + 1, left + 3), _at(x, c, top + 2, left),
                             _at(x, c, top + 2, left + 1), _at(x, c, top + 2, left + 2),
                             _at(x, c, top + 2, left + 3), _at(x, c, top + 3, left), _at(x, c, top + 3, left + 1),
                             _at(x, c, top + 3, left + 2), _at(x, c, top + 3, left + 3))
            if rows_inside:  # the interior: no bounds to check; each row of B^T d over all its tiles at once
                at, j, n = base + inner_lo, 2 * inner_lo - pad_left, inner_hi - inner_lo
                row = x.ctypes.data + c * x.strides[0] + top * x.strides[1]
                r0, r1 = floats_at(row, w), floats_at(row + x.strides[1], w)
                r2, r3 = floats_at(row + 2 * x.strides[1], w), floats_at(row + 3 * x.strides[1], w)
                _transform_rows(v, at, plane, r0, r2, -ONE, j, n)
                _transform_rows(v, at + 4 * plane, plane, r1, r2, ONE, j, n)
                _transform_rows(v, at + 8 * plane, plane, r2, r1, -ONE, j, n)
                _transform_rows(v, at + 12 * plane, plane, r1, r3, -ONE, j, n)


@njit(cache=True, nogil=True, inline="always")
def _transform_rows(v, at, plane, a, b, sign, j, n):
    """Row i of B^T d times B for n tiles side by side: that row is a + sign * b (two input rows, as
    ``_store_patch`` combines them: adding -1 times b subtracts it exactly), from column j in steps of two.
    Four planes written, two rows read, each through a view that the loop indexes from 0: a loop that
    vectorizes (indices offset by a variable might be negative, which Numba checks for at every access)."""
    a, b = a[j:], b[j:]
    v0, v1, v2, v3 = v[at:], v[at + plane:], v[at + 2 * plane:], v[at + 3 * plane:]
    for t in range(n):
        v0[t], v1[t], v2[t], v3[t] = _times_b(a[2 * t] + sign * b[2 * t], a[2 * t + 1] + sign * b[2 * t + 1],
                                              a[2 * t + 2] + sign * b[2 * t + 2], a[2 * t + 3] + sign * b[2 * t + 3])


@njit(cache=True, nogil=True, inline="always")
def _store_patch(v, at, plane, d00, d01, d02, d03, d10, d11, d12, d13, d20, d21, d22, d23, d30, d31, d32, d33):
    """B^T d B, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: rows first (B^T d), then
    each row's columns (``_store_row``), positions 4i to 4i + 3 from row i."""
    _store_row(v, at, plane, d00 - d20, d01 - d21, d02 - d22, d03 - d23)
    _store_row(v, at + 4 * plane, plane, d10 + d20, d11 + d21, d12 + d22, d13 + d23)
    _store_row(v, at + 8 * plane, plane, d20 - d10, d21 - d11, d22 - d12, d23 - d13)
    _store_row(v, at + 12 * plane, plane, d10 - d30, d11 - d31, d12 - d32, d13 - d33)


@njit(cache=True, nogil=True, inline="always")
def _times_b(r0, r1, r2, r3):
    """One row r of B^T d times B: its four values (positions 4i to 4i + 3 of row i)."""
    return r0 - r2, r1 + r2, r2 - r1, r1 - r3


@njit(cache=True, nogil=True, inline="always")
def _store_row(v, at, plane, r0, r1, r2, r3):
    """One row of B^T d times B, its four values a plane apart."""
    v[at], v[at + plane], v[at + 2 * plane], v[at + 3 * plane] = _times_b(r0, r1, r2, r3)


@njit(cache=True, nogil=True)
def _transform_output(out, m, plane, mult, offset, act, row0, rows, tiles_w):
    """Rows [row0, row0 + rows) of ``out`` from the GEMM results m[p * plane + n * tiles + t]: A^T m A,
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]] (rows combined in place into m's first and last rows of positions,
    then columns), then the epilogue row by row. Every loop runs over the tiles of a row, so that it can
    vectorize."""
    n_out, _, out_w = out.shape
    tile_rows = (rows + 1) // 2
    tiles = tile_rows * tiles_w
    pairs = out_w // 2  # tiles whose two columns are both stored
    for n in range(n_out):
        for ty in range(tile_rows):
            at = n * tiles + ty * tiles_w
            y = row0 + 2 * ty
            for j in range(4):
                m0, m1 = m[j * plane + at:], m[(4 + j) * plane + at:]
                m2, m3 = m[(8 + j) * plane + at:], m[(12 + j) * plane + at:]
                for tx in range(tiles_w):
                    m3[tx] = m1[tx] - m2[tx] - m3[tx]
                    m0[tx] = m0[tx] + m1[tx] + m2[tx]
            for a in range(2 if y + 1 < row0 + rows else 1):
                first = 12 * a * plane + at
                s0, s1 = m[first:], m[first + plane:]
                s2, s3 = m[first + 2 * plane:], m[first + 3 * plane:]
                dst = out[n, y + a]
                for tx in range(pairs):
                    dst[2 * tx] = s0[tx] + s1[tx] + s2[tx]
                    dst[2 * tx + 1] = s1[tx] - s2[tx] - s3[tx]
                if pairs < tiles_w:
                    dst[2 * pairs] = s0[pairs] + s1[pairs] + s2[pairs]
                finish_row(dst, dst, 0, mult[n], offset[n], False, act)


@njit(cache=True, nogil=True)
def winograd_tile(out, x, pad_top, pad_left, u, mult, offset, act, band_rows, block_channels, v, m, part, parts):
    """out (N, OH, OW) <- conv3x3(x (C, H, W) with border pads), stride 1, from transformed filters u (16, N, C)
    (any row stride: a slice of the filters), BN + activation fused. ``x`` and ``out`` may be strided views.

    The tile rows split into ``parts`` contiguous shares; this call computes share ``part`` in bands of
    ``band_rows // 2 // parts`` tile rows within the ``part``-th slice of each workspace."""
    n_out, out_h, out_w = out.shape
    channels = x.shape[0]
    tiles_w = (out_w + 1) // 2
    all_tile_rows = (out_h + 1) // 2
    share = -(-all_tile_rows // parts)
    begin, end = min(all_tile_rows, part * share), min(all_tile_rows, (part + 1) * share)
    band_tiles = max(1, band_rows // 2 // parts)
    v = v[part * (v.size // parts):(part + 1) * (v.size // parts)]
    m = m[part * (m.size // parts):(part + 1) * (m.size // parts)]
    lda = u.strides[1] // F32
    for ty0 in range(begin, end, band_tiles):
        tile_rows = min(band_tiles, end - ty0)
        tiles = tile_rows * tiles_w
        row0 = 2 * ty0
        m_plane = plane_stride(n_out * tiles, m.size)
        for c_lo in range(0, channels, block_channels):
            c_hi = min(channels, c_lo + block_channels)
            v_plane = plane_stride((c_hi - c_lo) * tiles, v.size)
            _transform_input(v, v_plane, x, pad_top, pad_left, row0, tile_rows, tiles_w, c_lo, c_hi)
            for p in range(POSITIONS):
                gemm(n_out, tiles, c_hi - c_lo, u.ctypes.data + p * u.strides[0] + c_lo * F32, lda, False,
                     v.ctypes.data + p * v_plane * F32, tiles, m.ctypes.data + p * m_plane * F32, tiles,
                     0.0 if c_lo == 0 else 1.0)
        _transform_output(out, m, m_plane, mult, offset, act, row0, min(2 * tile_rows, out_h - row0), tiles_w)
