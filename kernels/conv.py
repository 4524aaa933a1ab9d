"""Tile convolution: Numba packs a block of im2col rows, BLAS multiplies, Numba applies BN + activation.

The GEMM is blocked over output rows (bands) and input channels, so its workspace stays within a byte
budget while bands stay wide enough that each band reads the filters only once. Nothing here allocates:
``cols`` (packed input), ``acc`` (GEMM result) and ``part`` (a channel block's partial sum) are flat
float32 arena views; ``workspace_sizes`` says how large they must be.

Kernels run on one thread: BLAS uses both cores, and Numba threads spinning beside OpenBLAS's slowed a
yolov2 run 7x on two cores.
"""
from __future__ import annotations

import numpy as np
from numba import njit

ACT_CODES = {"linear": 0, "leaky": 1, "relu": 2, "logistic": 3}
LEAKY = np.float32(0.1)
ONE = np.float32(1.0)
ZERO = np.float32(0.0)
F32 = 4


@njit(cache=True)
def workspace_sizes(channels, size, filters, out_h, out_w, budget_bytes):
    """(band rows, block channels, and the float32 elements of cols, acc and part): half the budget for the
    result (+ partial sums), the rest for packed input; at least one row and one channel."""
    kk = size * size
    rows = max(1, min(out_h, (budget_bytes // 2) // (2 * filters * out_w * F32)))
    px = rows * out_w
    block = max(1, min(channels, (budget_bytes - 2 * filters * px * F32) // (kk * px * F32)))
    part = filters * px if block < channels else 0
    return rows, block, block * kk * px, filters * px, part


@njit(cache=True)
def _pack(cols, x, pad_top, pad_left, size, stride, row0, rows, out_w, c_lo, c_hi):
    _, h, w = x.shape
    px = rows * out_w
    for c in range(c_lo, c_hi):
        for ky in range(size):
            for kx in range(size):
                base = (((c - c_lo) * size + ky) * size + kx) * px
                # output columns whose input column ox*stride + kx - pad_left lies inside [0, w)
                first = max(0, -(-(pad_left - kx) // stride))
                stop = min(out_w, (w - 1 + pad_left - kx) // stride + 1)
                for r in range(rows):
                    iy = (row0 + r) * stride + ky - pad_top
                    at = base + r * out_w
                    if iy < 0 or iy >= h or first >= stop:
                        for ox in range(out_w):
                            cols[at + ox] = ZERO
                        continue
                    for ox in range(first):
                        cols[at + ox] = ZERO
                    shift = kx - pad_left
                    for ox in range(first, stop):
                        cols[at + ox] = x[c, iy, ox * stride + shift]
                    for ox in range(stop, out_w):
                        cols[at + ox] = ZERO


@njit(cache=True)
def _accumulate(acc, part, n):
    for i in range(n):
        acc[i] += part[i]


@njit(cache=True)
def _epilogue(out, acc, mult, offset, act, row0, rows):
    """Batch norm and bias as one multiply-add per channel, then the activation."""
    n_out, _, out_w = out.shape
    px = rows * out_w
    for n in range(n_out):
        m, o = mult[n], offset[n]
        for r in range(rows):
            src = n * px + r * out_w
            if act == 1:
                for ox in range(out_w):
                    v = acc[src + ox] * m + o
                    out[n, row0 + r, ox] = max(v, v * LEAKY)
            elif act == 0:
                for ox in range(out_w):
                    out[n, row0 + r, ox] = acc[src + ox] * m + o
            elif act == 2:
                for ox in range(out_w):
                    out[n, row0 + r, ox] = max(acc[src + ox] * m + o, ZERO)
            else:
                for ox in range(out_w):
                    out[n, row0 + r, ox] = ONE / (ONE + np.exp(-(acc[src + ox] * m + o)))


def conv_tile(out: np.ndarray, x: np.ndarray, pad_top: int, pad_left: int, w2d: np.ndarray,
              epilogue: tuple[np.ndarray, np.ndarray], act: int, size: int, stride: int,
              band_rows: int, block_channels: int, cols: np.ndarray, acc: np.ndarray, part: np.ndarray) -> None:
    """out (N, OH, OW) <- conv(x (C, H, W) with border pads) . w2d (N, C*k*k), BN + activation fused.

    ``x`` and ``out`` may be strided views into larger maps.
    """
    n_out, out_h, out_w = out.shape
    channels = x.shape[0]
    kk = size * size
    mult, offset = epilogue
    for row0 in range(0, out_h, band_rows):
        rows = min(band_rows, out_h - row0)
        px = rows * out_w
        c = acc[:n_out * px].reshape(n_out, px)
        for c_lo in range(0, channels, block_channels):
            c_hi = min(channels, c_lo + block_channels)
            k_rows = (c_hi - c_lo) * kk
            _pack(cols, x, pad_top, pad_left, size, stride, row0, rows, out_w, c_lo, c_hi)
            b = cols[:k_rows * px].reshape(k_rows, px)
            a = w2d[:, c_lo * kk:c_hi * kk]
            if c_lo == 0:
                np.matmul(a, b, out=c)
            else:
                np.matmul(a, b, out=part[:n_out * px].reshape(n_out, px))
                _accumulate(acc, part, n_out * px)
        _epilogue(out, acc, mult, offset, act, row0, rows)
