"""Tile maxpool with Darknet's semantics: window positions outside the real map never win."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, copy_run, floats_at, row_at

NEG_INF = np.float32(-np.inf)


@njit(cache=True, nogil=True, inline="always")
def _window_max(x, c, y0, ky0, ky1, x0, size, w):
    best = NEG_INF
    for ky in range(ky0, ky1):
        for kx in range(max(0, -x0), min(size, w - x0)):
            best = max(best, x[c, y0 + ky, x0 + kx])
    return best


@njit(cache=True, nogil=True)
def _planes_2x2_stride1(o, a, planes, h, w):
    """Planes laid end to end, of a 2x2 stride-1 pool as large as its input (Darknet's padding: the last
    row's and column's windows reach past the map), as one run over all of them, each plane's last column
    and row clipped after (0.13 ms to 0.03 on yolov2-tiny's 512 planes of 13x13, where runs of 12 row by row
    were too short to vectorize). The neighbours are read through slices: an index such as i + w, which
    Numba cannot prove non-negative, gets a wraparound check that keeps the loop scalar."""
    plane = h * w
    right, below, diagonal = a[1:], a[w:], a[w + 1:]
    for i in range(planes * plane - w - 1):
        o[i] = max(max(a[i], right[i]), max(below[i], diagonal[i]))
    for p in range(planes):
        start, last = p * plane, p * plane + (h - 1) * w
        for i in range(start + w - 1, last, w):
            o[i] = max(a[i], a[i + w])
        for i in range(last, last + w - 1):
            o[i] = max(a[i], a[i + 1])
        o[last + w - 1] = a[last + w - 1]


@njit(cache=True, nogil=True, inline="always")
def _reach(row, before, after):
    """Each value of ``row`` to the max of the values from ``before`` places left of it to ``after`` right of
    it (those inside the row), in place: passes that each take the max with the value ``s`` places on, s
    doubling while the reach allows (a window of 9 in 3 passes each way, not 8 maxes a value)."""
    n = row.shape[0]
    reach = 0
    while reach < after:
        s = min(reach + 1, after - reach)
        for j in range(n - s):  # front to back: row[j + s] is not yet updated
            row[j] = max(row[j], row[j + s])
        reach += s
    reach = 0
    while reach < before:
        s = min(reach + 1, before - reach)
        for j in range(n - 1, s - 1, -1):  # back to front: row[j - s] is not yet updated
            row[j] = max(row[j], row[j - s])
        reach += s


@njit(cache=True, nogil=True)
def _separable(out, x, size, pad_top, pad_left):
    """A stride-1 pool whose output is as wide as its input, row by row: each output row first the max of the
    input rows its windows span (those inside the map), then each value the max along the row (``_reach``).
    SPP's 9x9 pool on 80 planes of 13x13 took 0.47 ms clipping every window to the map."""
    c_in, h, w = x.shape
    _, out_h, _ = out.shape
    for c in range(c_in):
        for oy in range(out_h):
            row = row_at(out, c, oy)
            y0, y1 = max(0, oy - pad_top), min(h, oy - pad_top + size)
            if y1 <= y0:  # no input row under the window
                row[:] = NEG_INF
                continue
            copy_run(row, row_at(x, c, y0))
            for y in range(y0 + 1, y1):
                below = row_at(x, c, y)
                for j in range(w):
                    row[j] = max(row[j], below[j])
            _reach(row, pad_left, size - 1 - pad_left)


@njit(cache=True, nogil=True)
def maxpool_tile(out, x, size, stride, pad_top, pad_left):
    """out (C, OH, OW) <- max over size x size windows of x (C, H, W); x may be a strided view.

    Windows that lie wholly inside the map take a branch-free path (YOLO's 2x2 pools, stride 2 or 1, have
    their own, over rows read as contiguous runs: 4x and 2x faster than indexing the views); only border
    windows clip their window to the map.
    """
    c_in, h, w = x.shape
    _, out_h, out_w = out.shape
    runs = x.strides[2] == F32 and out.strides[2] == F32
    if (size == 2 and stride == 1 and pad_top == 0 and pad_left == 0 and (out_h, out_w) == (h, w) and h > 1
            and w > 1 and runs and x.strides[0] == out.strides[0] == h * w * F32 and x.strides[1] == w * F32
            and out.strides[1] == w * F32):
        n = c_in * h * w
        _planes_2x2_stride1(floats_at(out.ctypes.data, n), floats_at(x.ctypes.data, n), c_in, h, w)
        return
    if stride == 1 and size > 2 and out_w == w and 0 <= pad_left < size and runs:
        _separable(out, x, size, pad_top, pad_left)
        return
    first = min(out_w, -((-pad_left) // stride))  # first output column whose window starts inside
    stop = max(first, min(out_w, (w - size + pad_left) // stride + 1))  # past the last one ending inside
    for c in range(c_in):
        for oy in range(out_h):
            y0 = oy * stride - pad_top
            ky0, ky1 = max(0, -y0), min(size, h - y0)
            for ox in range(first):
                out[c, oy, ox] = _window_max(x, c, y0, ky0, ky1, ox * stride - pad_left, size, w)
            if size == 2 and stride <= 2 and ky0 == 0 and ky1 == 2 and runs and stop > first:
                n = stop - first
                at = x.ctypes.data + c * x.strides[0] + y0 * x.strides[1] + (stride * first - pad_left) * F32
                span = stride * (n - 1) + 2
                a, b = floats_at(at, span), floats_at(at + x.strides[1], span)
                row = floats_at(out.ctypes.data + c * out.strides[0] + oy * out.strides[1] + first * F32, n)
                if stride == 2:
                    for i in range(n):
                        row[i] = max(max(a[2 * i], a[2 * i + 1]), max(b[2 * i], b[2 * i + 1]))
                else:  # yolov2-tiny's last pool: 2x2, stride 1
                    for i in range(n):
                        row[i] = max(max(a[i], a[i + 1]), max(b[i], b[i + 1]))
            else:
                for ox in range(first, stop):
                    out[c, oy, ox] = _window_max(x, c, y0, ky0, ky1, ox * stride - pad_left, size, w)
            for ox in range(stop, out_w):
                out[c, oy, ox] = _window_max(x, c, y0, ky0, ky1, ox * stride - pad_left, size, w)
