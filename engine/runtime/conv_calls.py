"""A conv step as calls, one per thread (the executor binds them once, on arena views cut once)."""
from __future__ import annotations

from functools import partial

from kernels.conv import by_filters, conv_tile, shares
from kernels.direct import depthwise_tile, thin_tile
from kernels.pooled import conv_pooled, thin_pooled, winograd_pooled
from kernels.winograd import POSITIONS, band_tiles, winograd_by_filters, winograd_parts, winograd_tile
from yolo.network import Conv


def filter_cuts(filters: int, threads: int) -> list[tuple[int, int]]:
    """The threads' shares of a step's filters: [a, b) each, as even as whole filters allow."""
    share = -(-filters // threads)
    return [(a, min(filters, a + share)) for a in range(0, filters, share)]


def conv_calls(spec: Conv, out, x, top, left, w2d, channel_major, mult, offset, act, band_rows, block, first, last,
               cols, acc, threads: int, pooled: bool = False) -> tuple:
    """The threads share the step's filters when its weights outweigh a band's pixels (each thread then
    reads half the weights, once per band: yolov2's 13x13 layers ran 1.2x faster so), else its output rows.
    Either split works within the workspace sized for one thread. ``pooled``: ``out`` is the region of the
    2x2 stride-2 pool folded into the step (``kernels.pooled``), the GEMM's result workspace its band, whose
    rows the threads share in whole windows."""
    filters, rows, width = out.shape
    scale = 2 if pooled else 1  # the conv's region against the region written
    px = min(band_rows, scale * rows) * scale * width  # a band's pixels

    def call(out, w, mult, offset, block, cols, acc, part, parts):
        if pooled:
            return partial(conv_pooled, out, x, top, left, w, channel_major, mult, offset, act, spec.size,
                           spec.stride, band_rows, block, cols, acc, part, parts)
        return partial(conv_tile, out, x, top, left, w, channel_major, mult, offset, act, spec.size, spec.stride,
                       band_rows, block, first, last, cols, acc, part, parts)
    if by_filters(filters, px, block, threads):
        cuts, room = filter_cuts(filters, threads), cols.size // threads
        return tuple(call(out[a:b], w2d[:, a:b] if channel_major else w2d[a:b], mult[a:b], offset[a:b],
                          block // threads, cols[t * room:(t + 1) * room], acc[a * px:b * px], 0, 1)
                     for t, (a, b) in enumerate(cuts))
    parts = max(1, min(threads, band_rows // 2)) if pooled else shares(rows, band_rows, threads)
    return tuple(call(out, w2d, mult, offset, block, cols, acc, part, parts) for part in range(parts))


def direct_calls(spec: Conv, out, x, top, left, w, mult, offset, act, first, last, threads: int,
                 band=None) -> tuple:
    """A conv without a workspace (``engine.lower.table.is_direct``): depthwise (w: one row of taps per
    channel), its channels shared, or thin (w: (N, C*9), C the channels of ``x``), its rows shared; with a
    ``band``, thin with its pool folded in (``out`` the pooled region), its band's rows shared."""
    if spec.groups > 1:
        parts = min(threads, out.shape[0])
        return tuple(partial(depthwise_tile, out, x, top, left, w, mult, offset, act, spec.size, spec.stride,
                             part, parts) for part in range(parts))
    if band is not None:
        rows = band.size // (out.shape[0] * 2 * out.shape[2])  # conv rows the band holds
        parts = min(threads, rows // 2)
        return tuple(partial(thin_pooled, out, x, top, left, w, mult, offset, act, spec.stride, rows, band, part,
                             parts) for part in range(parts))
    parts = min(threads, out.shape[1])
    return tuple(partial(thin_tile, out, x, top, left, w, mult, offset, act, spec.stride, first, last, part, parts)
                 for part in range(parts))


def grouped_calls(spec: Conv, out, x, top, left, w2d, channel_major, mult, offset, act, band_rows, block, cols, acc,
                  threads: int) -> tuple:
    """A grouped conv group by group through ``conv_tile`` within the workspace sized for one group (its
    rows shared)."""
    n, c = out.shape[0] // spec.groups, x.shape[0] // spec.groups
    parts = shares(out.shape[1], band_rows, threads)
    filters = (lambda g: w2d[:, g * n:(g + 1) * n]) if channel_major else (lambda g: w2d[g * n:(g + 1) * n])

    def share(part: int) -> None:
        for g in range(spec.groups):
            conv_tile(out[g * n:(g + 1) * n], x[g * c:(g + 1) * c], top, left, filters(g), channel_major,
                      mult[g * n:(g + 1) * n], offset[g * n:(g + 1) * n], act, spec.size, spec.stride, band_rows,
                      block, True, True, cols, acc, part, parts)
    return tuple(partial(share, part) for part in range(parts))


def winograd_calls(out, x, top, left, u, mult, offset, act, band_rows, band_cols, block, v, m, threads: int,
                   band=None) -> tuple:
    """A Winograd step's calls: its filters shared between the threads (``winograd_by_filters``; each thread
    transforms its own copy of the input within its slice of the workspace), else its bands. With a
    ``band``, its pool is folded in (``out`` the pooled region): each thread then takes an equal run of the
    tiles, and its slice of the band."""
    filters, rows, width = out.shape
    scale = 1 if band is None else 2  # the conv's region against the region written
    tiles = band_tiles(band_rows, band_cols, scale * rows, scale * width)

    def call(out, u, mult, offset, block, v, m, a, b, part, parts):
        if band is None:
            return partial(winograd_tile, out, x, top, left, u, mult, offset, act, band_rows, band_cols, block, v,
                           m, part, parts)
        per = band.size // filters
        return partial(winograd_pooled, out, x, top, left, u, mult, offset, act, band_rows, band_cols, block, v, m,
                       band[a * per:b * per], part, parts)
    if winograd_by_filters(filters, tiles, block, threads):
        cuts, room = filter_cuts(filters, threads), v.size // threads
        spare = (m.size - POSITIONS * filters * tiles) // len(cuts)  # each share's part of the planes' slack
        return tuple(call(out[a:b], u[:, :, a:b], mult[a:b], offset[a:b], block // threads,
                          v[t * room:(t + 1) * room],
                          m[POSITIONS * a * tiles + t * spare:POSITIONS * b * tiles + (t + 1) * spare], a, b, 0, 1)
                     for t, (a, b) in enumerate(cuts))
    parts = winograd_parts(band_rows, band_cols, rows, width, threads) if band is None else threads
    return tuple(call(out, u, mult, offset, block, v, m, 0, filters, part, parts) for part in range(parts))
