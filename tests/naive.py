"""Naive loop implementations written from Darknet's C semantics: the oracle for the NumPy reference ops."""
from __future__ import annotations

import math

import numpy as np


def conv2d(x, w, stride, pad, groups=1):
    c, h, wd = x.shape
    n, cg, k, _ = w.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, oh, ow), np.float64)
    ng = n // groups
    for f in range(n):
        g = f // ng
        for oy in range(oh):
            for ox in range(ow):
                acc = 0.0
                for ci in range(cg):
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                            if 0 <= iy < h and 0 <= ix < wd:
                                acc += float(x[g * cg + ci, iy, ix]) * float(w[f, ci, ky, kx])
                out[f, oy, ox] = acc
    return out


def maxpool(x, size, stride, padding):
    c, h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = -(padding // 2)
    out = np.full((c, oh, ow), -np.inf, np.float32)
    for k in range(c):
        for i in range(oh):
            for j in range(ow):
                for n in range(size):
                    for m in range(size):
                        y, xx = off + i * stride + n, off + j * stride + m
                        if 0 <= y < h and 0 <= xx < w:
                            out[k, i, j] = max(out[k, i, j], x[k, y, xx])
    return out


def reorg(x, stride):
    """Darknet's reorg_cpu(x, w, h, c, batch=1, stride, forward=0, out) loop, verbatim in meaning."""
    c, h, w = x.shape
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    out_c = c // (stride * stride)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2, offset = k % out_c, k // out_c
                w2, h2 = i * stride + offset % stride, j * stride + offset // stride
                out[in_index] = flat[w2 + w * stride * (h2 + h * stride * c2)]
    return out.reshape(c * stride * stride, h // stride, w // stride)


def resize(im, w, h):
    """Darknet's resize_image with scalar float32 arithmetic."""
    f = np.float32
    c, ih, iw = im.shape
    part = np.zeros((c, ih, w), np.float32)
    ws, hs = f(iw - 1) / f(w - 1), f(ih - 1) / f(h - 1)
    for k in range(c):
        for r in range(ih):
            for col in range(w):
                if col == w - 1 or iw == 1:
                    val = im[k, r, iw - 1]
                else:
                    sx = f(col) * ws
                    ix = int(sx)
                    dx = sx - f(ix)
                    val = (f(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, col] = val
    out = np.zeros((c, h, w), np.float32)
    for k in range(c):
        for r in range(h):
            sy = f(r) * hs
            iy = int(sy)
            dy = sy - f(iy)
            for col in range(w):
                out[k, r, col] = (f(1) - dy) * part[k, iy, col]
            if r == h - 1 or ih == 1:
                continue
            for col in range(w):
                out[k, r, col] += dy * part[k, iy + 1, col]
    return out


def logistic(v):
    return 1.0 / (1.0 + math.exp(-v))
