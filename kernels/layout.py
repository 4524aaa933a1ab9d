"""Whole-map layers that move data rather than compute it: route copies, reorg, and YOLO's region."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, copy_run, floats_at, row_at
from kernels.elementwise import logistic
from kernels.expf import exp32

ZERO = np.float32(0.0)


@njit(cache=True, nogil=True)
def copy_channels(out, x, c0):
    """out[c0:c0+C] = x: the piece of a [route] concatenation that comes from one source, or a strip saved for
    a later tile. Each plane whose rows lie end to end on both sides is one run, else each row (contiguous
    views, which vectorize: indexing the strided maps copied 2-row strips in 3.1-6.3 µs, these in 1.4-2.1)."""
    c_in, h, w = x.shape
    if out.strides[2] != F32 or x.strides[2] != F32:
        for c in range(c_in):
            for y in range(h):
                for i in range(w):
                    out[c0 + c, y, i] = x[c, y, i]
        return
    planes = out.strides[1] == w * F32 and x.strides[1] == w * F32
    for c in range(c_in):
        if planes:
            copy_run(floats_at(out.ctypes.data + (c0 + c) * out.strides[0], h * w),
                     floats_at(x.ctypes.data + c * x.strides[0], h * w))
            continue
        for y in range(h):
            copy_run(row_at(out, c0 + c, y), row_at(x, c, y))


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


@njit(cache=True, nogil=True, error_model="numpy")  # the softmax's divisions vectorize (``elementwise.logistic``)
def region(out, x, num, coords, classes, use_softmax):
    """YOLOv2 [region]: logistic on x, y and objectness, softmax (or logistic) over classes, per cell.

    Each loop runs over an anchor's cells, which lie end to end in a plane, so it vectorizes (one loop per
    cell over classes a plane apart did not: 0.33 ms against 0.11 on yolov2's head). ``x`` and ``out`` are
    contiguous and apart: until the end, planes 2 and 3 of each anchor's output (w and h, which pass
    through; a cfg's coords is at least 4) hold the running maximum and sum of each cell's classes."""
    c, h, w = x.shape
    n = h * w
    xs, ys = x.reshape(c, n), out.reshape(c, n)
    per = coords + 1 + classes
    for a in range(num):
        base, first = a * per, a * per + coords + 1
        for e in (0, 1, coords):
            for j in range(n):
                ys[base + e, j] = logistic(xs[base + e, j])
        for e in range(4, coords):
            ys[base + e] = xs[base + e]
        if not use_softmax:
            for k in range(first, base + per):
                for j in range(n):
                    ys[k, j] = logistic(xs[k, j])
        else:
            top, total = ys[base + 2], ys[base + 3]
            top[:] = xs[first]
            for k in range(first + 1, base + per):
                for j in range(n):
                    top[j] = max(top[j], xs[k, j])
            total[:] = ZERO
            for k in range(first, base + per):
                for j in range(n):
                    power = exp32(xs[k, j] - top[j])
                    ys[k, j] = power
                    total[j] += power
            for k in range(first, base + per):
                for j in range(n):
                    ys[k, j] = ys[k, j] / total[j]
        ys[base + 2] = xs[base + 2]
        ys[base + 3] = xs[base + 3]
