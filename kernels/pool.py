"""Tile maxpool with Darknet's semantics: window positions outside the real map never win."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, floats_at

NEG_INF = np.float32(-np.inf)


@njit(cache=True, nogil=True, inline="always")
def _window_max(x, c, y0, ky0, ky1, x0, size, w):
    best = NEG_INF
    for ky in range(ky0, ky1):
        for kx in range(max(0, -x0), min(size, w - x0)):
            best = max(best, x[c, y0 + ky, x0 + kx])
    return best


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
