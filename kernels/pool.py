"""Tile maxpool with Darknet's semantics: window positions outside the real map never win."""
from __future__ import annotations

import numpy as np
from numba import njit

NEG_INF = np.float32(-np.inf)


@njit(cache=True)
def maxpool_tile(out, x, size, stride, pad_top, pad_left):
    """out (C, OH, OW) <- max over size x size windows of x (C, H, W); x may be a strided view."""
    c_in, h, w = x.shape
    _, out_h, out_w = out.shape
    for c in range(c_in):
        for oy in range(out_h):
            for ox in range(out_w):
                best = NEG_INF
                for ky in range(size):
                    iy = oy * stride + ky - pad_top
                    if 0 <= iy < h:
                        for kx in range(size):
                            ix = ox * stride + kx - pad_left
                            if 0 <= ix < w and x[c, iy, ix] > best:
                                best = x[c, iy, ix]
                out[c, oy, ox] = best
