"""Whole-map layers that move data rather than compute it: route copies, reorg, and YOLO's region."""
from __future__ import annotations

import numpy as np
from numba import njit

ONE = np.float32(1.0)


@njit(cache=True)
def copy_channels(out, x, c0):
    """out[c0:c0+C] = x, the piece of a [route] concatenation that comes from one source."""
    c_in, h, w = x.shape
    for c in range(c_in):
        for y in range(h):
            for i in range(w):
                out[c0 + c, y, i] = x[c, y, i]


@njit(cache=True)
def reorg(out_flat, x_flat, c, h, w, stride):
    """Darknet's reorg_cpu(forward=0) index arithmetic, with flat views of (C, H, W) in and out."""
    out_c = c // (stride * stride)
    for k in range(c):
        c2 = k % out_c
        offset = k // out_c
        for j in range(h):
            h2 = j * stride + offset // stride
            for i in range(w):
                w2 = i * stride + offset % stride
                out_flat[i + w * (j + h * k)] = x_flat[w2 + w * stride * (h2 + h * stride * c2)]


@njit(cache=True)
def _logistic(v):
    return ONE / (ONE + np.exp(-v))


@njit(cache=True)
def region(out, x, num, coords, classes, use_softmax):
    """YOLOv2 [region]: logistic on x, y and objectness, softmax (or logistic) over classes, per cell."""
    _, h, w = x.shape
    per = coords + 1 + classes
    for a in range(num):
        base = a * per
        for y in range(h):
            for i in range(w):
                out[base, y, i] = _logistic(x[base, y, i])
                out[base + 1, y, i] = _logistic(x[base + 1, y, i])
                for e in range(2, coords):
                    out[base + e, y, i] = x[base + e, y, i]
                out[base + coords, y, i] = _logistic(x[base + coords, y, i])
                first = base + coords + 1
                if use_softmax:
                    top = x[first, y, i]
                    for k in range(1, classes):
                        top = max(top, x[first + k, y, i])
                    total = np.float32(0.0)
                    for k in range(classes):
                        e = np.exp(x[first + k, y, i] - top)
                        out[first + k, y, i] = e
                        total += e
                    for k in range(classes):
                        out[first + k, y, i] = out[first + k, y, i] / total
                else:
                    for k in range(classes):
                        out[first + k, y, i] = _logistic(x[first + k, y, i])
