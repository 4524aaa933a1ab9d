"""Winograd's F(4x4, 3x3) against the NumPy reference, and the rules that choose it: which layers, how its
threads share a step, where its workspace planes start."""
import numpy as np
import pytest

from engine.lower.table import winograd_gains, winograd_layer
from engine.runtime import reference_ops as ops
from engine.runtime.conv_calls import winograd_calls
from kernels.conv import CACHED_WEIGHTS
from kernels.elementwise import ACT_CODES
from kernels.winograd import LINE, POSITIONS, SHARE_TILES, SLACK, plane_stride, winograd_by_filters, winograd_sizes
from kernels.winograd_transforms import transform_filters
from tests.helpers import bn_params, run_at_once
from yolo.layers import Conv


@pytest.mark.parametrize("shape, pads, budget, threads", [((5, 7, 11, 13), (1, 1), 1 << 20, 1),
                                                          ((5, 7, 11, 13), (1, 1), 3000, 1),
                                                          ((6, 8, 10, 9), (0, 1), 20000, 2),
                                                          ((6, 8, 17, 15), (1, 0), 20000, 3),
                                                          ((6, 48, 5, 6), (1, 1), 1 << 20, 2),
                                                          ((3, 4, 1, 1), (1, 1), 1000, 1),
                                                          ((9, 5, 12, 14), (1, 1), 20000, 2),
                                                          ((8, 6, 23, 22), (0, 0), 60000, 2),
                                                          ((6, 8, 9, 30), (1, 1), 8000, 2),
                                                          ((6, 2, 9, 30), (1, 1), 3000, 2),
                                                          ((5, 7, 6, 21), (0, 1), 5000, 1),
                                                          ((4, 2, 5, 120), (0, 1), 14000, 2)])
def test_winograd_matches_reference_on_any_tile(shape, pads, budget, threads):
    """F(4x4, 3x3) on tiles of any size (edges 1 to 4 wide) with any border pads (a fused tile's), into a
    strided destination, in bands (whole tile rows, or runs of tiles along one) and channel blocks, its bands
    or filters shared by threads at once."""
    channels, filters, h, w = shape
    rng = np.random.default_rng(6)
    x = rng.standard_normal((channels, h, w)).astype(np.float32)
    p = bn_params(rng, filters, channels, 3)
    top, left = pads  # the padding the tile sees above and left; below and right it is one
    expect = ops.conv_layer(np.pad(x, ((0, 0), (top, 1), (left, 1))), p, 1, 0, 1, "leaky")
    out = np.full((filters + 2, *expect.shape[1:]), np.nan, np.float32)[1:-1]
    rows, cols, block, *sizes = winograd_sizes(channels, filters, *expect.shape[1:], budget)
    v, m = (np.full(n, np.nan, np.float32) for n in sizes)
    calls = winograd_calls(out, x, top, left, transform_filters(p.weights), *p.epilogue(), ACT_CODES["leaky"], rows,
                           cols, block, v, m, threads)
    assert len(calls) == threads
    run_at_once(calls)
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)


def test_winograd_threads_share_bands_of_enough_tiles_else_filters():
    """Two threads share a band's tiles from SHARE_TILES each (yolov2-tiny's 104-wide layer at 1 MiB: 52
    tiles, 64 filters), else the filters (yolov2's 52-wide layer: 13 tiles, 256 filters); one filter or
    one channel per thread at least, else the bands."""
    assert not winograd_by_filters(64, 2 * SHARE_TILES, 32, 2) and not winograd_by_filters(64, 52, 32, 2)
    assert winograd_by_filters(256, 13, 128, 2) and winograd_by_filters(64, 2 * SHARE_TILES - 1, 32, 2)
    assert not winograd_by_filters(1, 13, 128, 2) and not winograd_by_filters(256, 13, 1, 2)
    assert not winograd_by_filters(256, 13, 128, 1)


@pytest.mark.parametrize("plane", [16, 1000, 1024, 13312, 26624, 200704])
def test_winograd_planes_start_on_distinct_cache_sets(plane):
    """Spaced planes: no overlap, at most 31 floats of padding, and the 36 starts fall on 36 different 64-byte
    lines of a 4 KiB page (a plane of a multiple of 4 KiB unspaced puts them all on one); without the room,
    unspaced."""
    stride = plane_stride(plane, POSITIONS * plane + SLACK // 4)
    assert plane <= stride < plane + 2 * LINE
    assert len({p * stride * 4 % 4096 // 64 for p in range(POSITIONS)}) == POSITIONS
    assert plane_stride(plane, POSITIONS * plane) == plane


def test_winograd_layers_are_those_it_speeds_up():
    """3x3 stride-1 convs of one group whose bands hold enough tiles under the budget; not the first layer
    (3 channels), not a 13-wide map at 1 MiB, nor filters too large once transformed at any budget."""
    spec = lambda c, n, hw, **kw: Conv(0, (-1,), (c, hw, hw), (n, hw, hw), filters=n, size=kw.get("size", 3),
                                      padding=1, activation="leaky", stride=1, groups=kw.get("groups", 1))
    assert winograd_layer(spec(32, 64, 208), 1 << 20) and winograd_layer(spec(128, 256, 52), 1 << 20)
    assert not winograd_layer(spec(3, 32, 416), 1 << 20) and not winograd_layer(spec(1024, 1024, 13), 1 << 20)
    assert not winograd_layer(spec(32, 64, 208, size=1), 1 << 20)
    assert not winograd_layer(spec(64, 64, 208, groups=2), 1 << 20)
    # at 512 KiB the results of a 208-wide layer's tile row (52 tiles, 64 filters) take more than half the
    # budget: bands of 26 tiles along a row, with room for all 32 channels
    assert winograd_layer(spec(32, 64, 208), 1 << 19)
    assert winograd_sizes(32, 64, 208, 208, 1 << 19)[:3] == (4, 104, 32)
    assert winograd_sizes(32, 64, 208, 208, 1 << 20)[:3] == (4, 208, 32)
    # larger budgets leave bands enough tiles on 13-wide maps too, but filters whose transform (36 floats
    # for each 9) outgrows the cache stay on the GEMM at any budget
    big = spec(1024, 512, 13)
    assert winograd_gains(1024, 512, 13, 13, 4 << 20) and POSITIONS * 1024 * 512 * 4 > CACHED_WEIGHTS
    assert not winograd_layer(big, 4 << 20) and not winograd_layer(spec(256, 512, 13), 2 << 20)
    assert winograd_layer(spec(128, 256, 26), 2 << 20)
