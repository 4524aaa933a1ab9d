"""A 3x3 stride-1 convolution of many channels, computed directly: each band of output rows has its input
rows copied into a frame with a zero border (one column each side, a row above and below), and
``windows3x3`` runs over the frame as if it were one long row, all filters at once, into a result band of
the frame's pitch; the epilogue then writes the band's rows (the two columns per row that wrapped across
the border are dropped), or pools them 2x2 (the maxpool after the conv folded in).

Nothing is packed: the frame holds each input value once, where im2col holds it nine times, and the
multiply reads it straight from there. On a Zen 5 core (full-width AVX-512) this ran yolov2's 208- to
26-wide layers at 400-480 GFLOP/s on two threads, against 290-380 for F(4x4, 3x3) Winograd and the im2col
GEMM; 13-wide rows waste too much of each 64-column panel, and stay on the GEMM (``WINDOWED_MIN_WIDTH``).
Nothing here allocates: ``frame`` and ``band`` are flat float32 arena views; ``windowed_sizes`` says how
large.
"""
from __future__ import annotations

from numba import njit

from kernels.blas import F32, floats_at, row_at
from kernels.epilogue import ZERO, finish_row
from kernels.pool import maxpool_tile
from kernels.windows import windows3x3

WINDOWED_MIN_WIDTH = 20  # output columns: narrower rows run faster through the im2col GEMM
FRAME_PARTS = 2  # the frame has room for this many shares' border rows, so two threads split its rows evenly


@njit(cache=True)
def windowed_sizes(channels, filters, out_h, out_w, budget_bytes, pooled):
    """(band rows, floats of the frame, floats of the result band): as many rows as the budget holds, at least
    one (two, pooled: whole windows), at most the region's."""
    pitch, least = out_w + 2, 2 if pooled else 1
    rows = (budget_bytes // F32 - channels * 2 * FRAME_PARTS * pitch) // ((channels + filters) * pitch)
    rows = max(least, min(out_h, rows))
    rows -= rows % least
    return rows, channels * (rows + 2 * FRAME_PARTS) * pitch, filters * rows * pitch


@njit(cache=True, nogil=True, inline="always")
def _fill(frame, x, pad_top, pad_left, y0, rows, pitch):
    """The frame (channels, rows + 2, pitch) of output rows [y0, y0 + rows): x's rows from y0 - pad_top and
    columns from -pad_left, zero where they lie outside x (whose rows are runs: arena views)."""
    channels, h, w = x.shape
    lo = min(pitch, pad_left)  # frame columns before x's first
    hi = max(lo, min(pitch, w + pad_left))  # past x's last
    for c in range(channels):
        for r in range(rows + 2):
            dst = floats_at(frame.ctypes.data + (c * (rows + 2) + r) * pitch * F32, pitch)
            iy = y0 + r - pad_top
            if iy < 0 or iy >= h:
                dst[:] = ZERO
                continue
            dst[:lo] = ZERO
            src = floats_at(x.ctypes.data + c * x.strides[0] + iy * x.strides[1], hi - lo)
            for i in range(hi - lo):
                dst[lo + i] = src[i]
            dst[hi:] = ZERO


@njit(cache=True, nogil=True)
def windowed_tile(out, x, pad_top, pad_left, w2d, mult, offset, act, pooled, frame, band, part, parts):
    """out (N, OH, OW) <- the 3x3 stride-1 windows of x (C, H, W), border pads as ``conv_tile``'s, times w2d
    (N x C*9, any strides), then BN + activation; or, ``pooled``, their 2x2 stride-2 maxima (out holds half
    the conv's rows and columns). Share ``part`` of ``parts`` of the output rows, in bands that fit its
    slice of ``frame`` and ``band``."""
    filters, out_h, out_w = out.shape
    scale = 2 if pooled else 1
    conv_w, channels = scale * out_w, x.shape[0]
    pitch = conv_w + 2
    frame = frame[part * (frame.size // parts):(part + 1) * (frame.size // parts)]
    band = band[part * (band.size // parts):(part + 1) * (band.size // parts)]
    step = min(frame.size // (channels * pitch) - 2, band.size // (filters * pitch))
    step -= step % scale
    a_row, a_step = w2d.strides[0] // F32, w2d.strides[1] // F32
    begin, end = scale * (out_h * part // parts), scale * (out_h * (part + 1) // parts)
    for y0 in range(begin, end, step):
        rows = min(step, end - y0)
        _fill(frame, x, pad_top, pad_left, y0, rows, pitch)
        windows3x3(filters, rows * pitch - 2, channels, w2d.ctypes.data, a_row, a_step, frame.ctypes.data,
                   (rows + 2) * pitch, pitch, band.ctypes.data, rows * pitch, 0)
        for n in range(filters):
            for r in range(rows):
                at = (n * rows + r) * pitch
                if pooled:  # the epilogue in place, then the pool below
                    finish_row(floats_at(band.ctypes.data + at * F32, conv_w), band, at, mult[n], offset[n], False,
                               act)
                else:
                    finish_row(row_at(out, n, y0 + r), band, at, mult[n], offset[n], False, act)
        if pooled:
            conv = band[:filters * rows * pitch].reshape((filters, rows, pitch))[:, :, :conv_w]
            maxpool_tile(out[:, y0 // 2:(y0 + rows) // 2], conv, 2, 2, 0, 0)
