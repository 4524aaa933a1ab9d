"""Tile convolution, one compiled call: Numba packs a block of im2col rows (in the column panels the GEMM
reads as contiguous runs), the GEMM multiplies (called from the kernel, accumulating over channel blocks),
Numba applies BN + activation.

The GEMM is blocked over output rows (bands) and input channels, so its workspace stays within a byte
budget while bands stay wide enough that each band reads the filters only once. A step may cover only a
range of the input channels (weights streamed in bands of channels): the first such step writes its
partial sums into the output, later ones add to them, and the last applies the epilogue, so each input
element is packed once however the weights are split. A 1x1 stride-1 convolution whose input rows are
contiguous multiplies the input in place, without packing. Nothing here allocates: ``cols`` (packed
input) and ``acc`` (GEMM result) are flat float32 arena views; ``workspace_sizes`` says how large.

A call may compute one share of the output rows (or the caller gives it a slice of the filters and of the
workspaces: ``by_filters``), so that threads (``engine.runtime.workers``) run the shares of a step at once,
each with single-threaded BLAS: Numba's own threads spinning beside OpenBLAS's
slowed a yolov2 run 7x on two cores.
"""
from __future__ import annotations

from numba import njit

from kernels.blas import F32, floats_at, row_at
from kernels.microgemm import PACKED_PANEL, matmul, matmul_packed, panel_index
from kernels.epilogue import ONE, ZERO, finish_row

CACHED_WEIGHTS = 16 << 20  # bytes: larger weights come from memory again for every band (half the Zen 4's L3)


@njit(cache=True)
def workspace_sizes(channels, size, filters, out_h, out_w, budget_bytes, in_place, to_output):
    """(band rows, block channels, and the float32 elements of cols and acc): half the budget for the GEMM
    result, the rest for packed input; at least one row and one channel. A 1x1 conv over whole rows
    (``in_place``) multiplies its input where it lies: nothing packed, every channel in one block. A conv
    whose output rows lie end to end (``to_output``) multiplies into them: no acc, the budget all for cols.

    Weights too large to stay cached between bands are read once: one band covers the region when its whole
    result fits in the budget, with as many bytes again for packed input (at most twice the budget), or when
    it goes to the output. yolov2's 13-wide layers, 38 to 47 MB of weights each, ran 7-10% faster in one band
    than in two."""
    kk = size * size
    whole = filters * out_h * out_w * F32
    if filters * channels * kk * F32 > CACHED_WEIGHTS and (to_output or whole <= budget_bytes):
        rows = out_h
        if not to_output:
            budget_bytes = max(budget_bytes, 2 * whole)
    else:
        rows = max(1, min(out_h, (budget_bytes // 2) // (filters * out_w * F32)))
    px = rows * out_w
    acc = 0 if to_output else filters * px
    if in_place:
        return rows, channels, 0, acc
    block = max(1, min(channels, (budget_bytes - acc * F32) // (kk * px * F32)))
    return rows, block, block * kk * px, acc


@njit(cache=True, nogil=True, inline="always")
def _copy(cols, k, px, row, col, src):
    """``src`` into row ``row`` of the packed k x px matrix from column ``col`` on, a panel's run at a time."""
    done = 0
    while done < src.size:
        at = col + done
        take = min(src.size - done, PACKED_PANEL - at % PACKED_PANEL)
        dst, run = cols[panel_index(row, at, k, px, PACKED_PANEL):], src[done:]
        for i in range(take):  # an element loop: a slice assignment checked its operands' overlap every call
            dst[i] = run[i]
        done += take


@njit(cache=True, nogil=True, inline="always")
def _zero(cols, k, px, row, col, n):
    """Columns [col, col + n) of row ``row`` of the packed k x px matrix to zero (padding)."""
    done = 0
    while done < n:
        at = col + done
        take = min(n - done, PACKED_PANEL - at % PACKED_PANEL)
        start = panel_index(row, at, k, px, PACKED_PANEL)
        cols[start:start + take] = ZERO
        done += take


@njit(cache=True, nogil=True, inline="always")
def _columns_inside(pad_left, w, kx, stride, out_w):
    """The output columns [first, stop) whose input column ox*stride + kx - pad_left lies inside [0, w)."""
    return max(0, -(-(pad_left - kx) // stride)), min(out_w, (w - 1 + pad_left - kx) // stride + 1)


@njit(cache=True, nogil=True, inline="always")
def _inside(pad_top, pad_left, h, w, ky, kx, row0, rows, out_w):
    """For tap (ky, kx) of a stride-1 conv over whole rows: the output columns [first, stop) and rows [r_lo,
    r_hi) of the band whose input lies inside the map."""
    first, stop = _columns_inside(pad_left, w, kx, 1, out_w)
    r_lo = min(rows, max(0, pad_top - ky - row0))
    return first, stop, r_lo, max(r_lo, min(rows, h + pad_top - ky - row0))


@njit(cache=True, nogil=True)
def _pack_whole_rows(cols, x, pad_top, pad_left, size, row0, rows, out_w, c_lo, c_hi):
    """``_pack`` of a stride-1 conv whose input rows lie end to end and are as wide as the output's: each
    row of the matrix is one run of its channel's plane, shifted by the tap; the runs cross from row to row,
    so the columns they wrap into, and the rows outside the map, are zeroed afterwards, a position at a time
    for every channel of the block (one store each, ``size * size`` rows of the matrix apart: done per row
    with the panels' index arithmetic, they made packing a 13-wide layer 4x slower than its copies)."""
    _, h, w = x.shape
    px = rows * out_w
    kk = size * size
    k = (c_hi - c_lo) * kk
    for c in range(c_lo, c_hi):
        plane = floats_at(x.ctypes.data + c * x.strides[0], h * w)
        for ky in range(size):
            for kx in range(size):
                first, stop, r_lo, r_hi = _inside(pad_top, pad_left, h, w, ky, kx, row0, rows, out_w)
                if first < stop and r_hi > r_lo:
                    start = (row0 + r_lo + ky - pad_top) * w + kx - pad_left  # under (r_lo, 0)
                    n = (r_hi - r_lo) * w
                    _copy(cols, k, px, ((c - c_lo) * size + ky) * size + kx, r_lo * w + first,
                          plane[start + first:start + n - w + stop])
    for ky in range(size):
        for kx in range(size):
            first, stop, r_lo, r_hi = _inside(pad_top, pad_left, h, w, ky, kx, row0, rows, out_w)
            for r in range(rows):
                inside = r_lo <= r < r_hi and first < stop
                for ox in range(out_w):
                    if inside and first <= ox < stop:
                        continue
                    at = panel_index(ky * size + kx, r * out_w + ox, k, px, PACKED_PANEL)
                    step = panel_index(ky * size + kx + kk, r * out_w + ox, k, px, PACKED_PANEL) - at  # a channel on
                    for c in range(c_hi - c_lo):
                        cols[at + c * step] = ZERO


@njit(cache=True, nogil=True)
def _pack(cols, x, pad_top, pad_left, size, stride, row0, rows, out_w, c_lo, c_hi):
    """The im2col matrix of channels [c_lo, c_hi) and output rows [row0, row0 + rows): one row per (channel,
    ky, kx), one column per output pixel, stored in the GEMM's panels (``PACKED_PANEL`` columns each)."""
    _, h, w = x.shape
    if stride == 1 and out_w == w and x.strides[2] == F32 and x.strides[1] == w * F32:
        _pack_whole_rows(cols, x, pad_top, pad_left, size, row0, rows, out_w, c_lo, c_hi)
        return
    px = rows * out_w
    k = (c_hi - c_lo) * size * size
    for c in range(c_lo, c_hi):
        for ky in range(size):
            for kx in range(size):
                row = ((c - c_lo) * size + ky) * size + kx
                first, stop = _columns_inside(pad_left, w, kx, stride, out_w)
                for r in range(rows):
                    iy = (row0 + r) * stride + ky - pad_top
                    at = r * out_w
                    if iy < 0 or iy >= h or first >= stop:
                        _zero(cols, k, px, row, at, out_w)
                        continue
                    _zero(cols, k, px, row, at, first)
                    shift = kx - pad_left
                    if stride == 1:  # a contiguous run: a copy that vectorizes
                        _copy(cols, k, px, row, at + first, x[c, iy, first + shift:stop + shift])
                    else:
                        for ox in range(first, stop):
                            cols[panel_index(row, at + ox, k, px, PACKED_PANEL)] = x[c, iy, ox * stride + shift]
                    _zero(cols, k, px, row, at + stop, out_w - stop)


@njit(cache=True, nogil=True)
def _finish(out, acc, mult, offset, act, row0, rows, first, last):
    """The GEMM result of rows [row0, row0 + rows) into ``out``: added to the partial sums already there
    unless ``first``; batch norm and bias (one multiply-add per channel) and the activation if ``last``
    (otherwise the sums are stored as they are: multiplier one, offset zero, no activation). An empty
    ``acc``: the GEMM wrote into ``out`` itself, which gets the epilogue in place if ``last``."""
    n_out, _, out_w = out.shape
    px = rows * out_w
    if acc.size == 0 and not last:
        return
    runs = out.strides[2] == F32 and out.strides[1] == out_w * F32  # each channel's rows lie end to end
    for n in range(n_out):
        m, o, a = (mult[n], offset[n], act) if last else (ONE, ZERO, 0)
        if runs:  # one loop over the band: rows of 13 or 26 alone are too short to vectorize well
            run = floats_at(out.ctypes.data + n * out.strides[0] + row0 * out.strides[1], px)
            if acc.size == 0:
                finish_row(run, run, 0, m, o, False, a)
            else:
                finish_row(run, acc, n * px, m, o, not first, a)
            continue
        for r in range(rows):
            if out.strides[2] == F32:
                finish_row(row_at(out, n, row0 + r), acc, n * px + r * out_w, m, o, not first, a)
            else:
                finish_row(out[n, row0 + r], acc, n * px + r * out_w, m, o, not first, a)


@njit(cache=True, nogil=True)
def conv_tile(out, x, pad_top, pad_left, w2d, channel_major, mult, offset, act, size, stride, band_rows,
              block_channels, first, last, cols, acc, part, parts):
    """out (N, OH, OW) <- conv(x (C, H, W) with border pads) . w2d (N, C*k*k), or w2d (C*k*k, N) if
    ``channel_major``, [+ out unless ``first``], BN + activation fused if ``last``. ``x`` and ``out`` may be
    strided views into larger maps.

    The output rows split into ``parts`` contiguous shares; this call computes share ``part`` in bands of
    ``band_rows // parts`` rows with the ``part``-th slice of each workspace, so that the shares can run at
    once on separate threads within the workspaces sized for one."""
    n_out, out_h, out_w = out.shape
    channels = x.shape[0]
    kk = size * size
    share = -(-out_h // parts)
    row_begin, row_end = min(out_h, part * share), min(out_h, (part + 1) * share)
    band_rows = max(1, band_rows // parts)
    cols = cols[part * (cols.size // parts):(part + 1) * (cols.size // parts)]
    acc = acc[part * (acc.size // parts):(part + 1) * (acc.size // parts)]
    direct = (size == 1 and stride == 1 and pad_top == 0 and pad_left == 0 and x.shape[2] == out_w
              and x.strides[2] == F32 and x.strides[1] == out_w * F32)
    if not direct and cols.size == 0:
        raise ValueError("conv_tile: a step lowered as a 1x1 over whole rows has an input whose rows are apart")
    to_output = acc.size == 0
    if to_output and not (out.strides[2] == F32 and out.strides[1] == out_w * F32):
        raise ValueError("conv_tile: a step lowered to multiply into its output has output rows that are apart")
    ldc = out.strides[0] // F32 if to_output else 0
    for row0 in range(row_begin, row_end, band_rows):
        rows = min(band_rows, row_end - row0)
        px = rows * out_w
        for c_lo in range(0, channels, block_channels):
            c_hi = min(channels, c_lo + block_channels)
            a = w2d.ctypes.data + c_lo * kk * (w2d.strides[0] if channel_major else F32)
            lda, k = w2d.strides[0] // F32, (c_hi - c_lo) * kk
            if to_output:  # into the output's rows, onto its partial sums unless the first
                c, c_stride, beta = out.ctypes.data + row0 * out.strides[1], ldc, 0.0 if first and c_lo == 0 else 1.0
            else:
                c, c_stride, beta = acc.ctypes.data, px, 0.0 if c_lo == 0 else 1.0
            if direct:  # the rows of each channel are contiguous: x is the (C, px) matrix already
                matmul(n_out, px, k, a, lda, channel_major, x.ctypes.data + c_lo * x.strides[0] + row0 * x.strides[1],
                       x.strides[0] // F32, c, c_stride, beta)
            else:
                _pack(cols, x, pad_top, pad_left, size, stride, row0, rows, out_w, c_lo, c_hi)
                matmul_packed(n_out, px, k, a, lda, channel_major, cols.ctypes.data, c, c_stride, beta)
        _finish(out, acc, mult, offset, act, row0, rows, first, last)


@njit(cache=True)
def by_filters(filters, band_pixels, block_channels, workers):
    """Whether a step's threads share its filters rather than its rows: when the filters outnumber the
    pixels of a band (so the weights are most of what a GEMM reads) and each thread still gets a filter and
    a channel of the block. Compiled: the cost model's features ask it too."""
    return workers > 1 and filters >= max(workers, band_pixels) and block_channels >= workers


def shares(out_rows: int, band_rows: int, workers: int) -> int:
    """How many threads a conv step's output rows split into: ``workers`` if every share gets at least one
    row per band within its slice of the workspace, else one."""
    return workers if workers > 1 and band_rows >= workers and out_rows >= workers else 1
