"""A grouped conv step as calls, one per thread (the executor binds them once)."""
from __future__ import annotations

from functools import partial

from kernels.conv import conv_tile, depthwise_tile, shares
from yolo.network import Conv


def grouped_conv_calls(spec: Conv, out, x, top, left, w2d, channel_major, mult, offset, act, band_rows, block,
                       cols, acc, threads: int) -> tuple:
    """A grouped conv step as calls, one per thread: a depthwise one directly (its channels shared), any other
    group by group through ``conv_tile`` within the workspace sized for one group (its rows shared)."""
    if out.shape[0] == x.shape[0] == spec.groups:
        w = w2d.T if channel_major else w2d
        parts = min(threads, out.shape[0])
        return tuple(partial(depthwise_tile, out, x, top, left, w, mult, offset, act, spec.size, spec.stride,
                             part, parts) for part in range(parts))
    n, c = out.shape[0] // spec.groups, x.shape[0] // spec.groups
    parts = shares(out.shape[1], band_rows, threads)
    filters = (lambda g: w2d[:, g * n:(g + 1) * n]) if channel_major else (lambda g: w2d[g * n:(g + 1) * n])

    def share(part: int) -> None:
        for g in range(spec.groups):
            conv_tile(out[g * n:(g + 1) * n], x[g * c:(g + 1) * c], top, left, filters(g), channel_major,
                      mult[g * n:(g + 1) * n], offset[g * n:(g + 1) * n], act, spec.size, spec.stride, band_rows,
                      block, True, True, cols, acc, part, parts)
    return tuple(partial(share, part) for part in range(parts))
