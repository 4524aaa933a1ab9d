"""Rung 2: Numba kernels vs the NumPy reference operations, on padded and strided views (Winograd's in
``test_winograd``)."""
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import njit

from engine.runtime import reference_ops as ops
from yolo.params import ConvParams
from kernels import layout
from kernels.elementwise import ACT_CODES
from kernels.expf import HIGHEST, LOWEST, exp32
from engine.lower.table import is_direct, layer_table
from engine.runtime.conv_calls import conv_calls, direct_calls, winograd_calls
from kernels.winograd import winograd_sizes
from kernels.winograd_transforms import transform_filters
from kernels.conv import CACHED_WEIGHTS, _pack, by_filters, conv_tile, shares, workspace_sizes
from kernels.microgemm import PACKED_PANEL, panel_index
from yolo.layers import Conv
from kernels.pool import maxpool_tile
from tests.helpers import bn_params, run_at_once


@pytest.mark.parametrize("k, stride, act, budget", [(3, 1, "leaky", 1 << 20), (3, 1, "leaky", 3000),
                                                    (5, 1, "linear", 5000), (3, 2, "linear", 2000),
                                                    (1, 1, "logistic", 1 << 20), (1, 2, "relu", 600)])
@pytest.mark.parametrize("to_output", [False, True])
def test_conv_tile_matches_reference_with_blocking(k, stride, act, budget, to_output):
    """Whole maps (packed a channel's plane at a time, borders zeroed), in bands of rows and blocks of
    channels, and strided; the GEMM's result in a workspace of its own, or multiplied into the output's rows
    (and, over bands of channels, added to the partial sums there)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 11, 13)).astype(np.float32)
    p = bn_params(rng, 7, 5, k)
    pad = k // 2
    expect = ops.conv_layer(x, p, stride, pad, 1, act)
    out = np.full((9, *expect.shape[1:]), np.nan, np.float32)[1:8]  # strided destination
    rows, block, *sizes = workspace_sizes(5, k, 7, *expect.shape[1:], budget, False, to_output)
    assert (sizes[1] == 0) == to_output
    cols, acc = (np.empty(n, np.float32) for n in sizes)
    conv_tile(out, x, pad, pad, p.weights.reshape(7, -1), False, *p.epilogue(), ACT_CODES[act], k, stride, rows, block,
              True, True, cols, acc, 0, 1)
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
    # in bands of input channels: the first writes partial sums, the others add, the last finishes; each
    # band's weights filter major or channel major (transposed), as the weights source delivers them
    out[:] = np.nan
    w = p.weights.reshape(7, 5, -1)
    for (c0, c1), channel_major in [((0, 2), True), ((2, 3), False), ((3, 5), True)]:
        rows, block, *sizes = workspace_sizes(c1 - c0, k, 7, *expect.shape[1:], budget, False, to_output)
        cols, acc = (np.empty(n, np.float32) for n in sizes)
        band = w[:, c0:c1].reshape(7, -1)
        band = np.ascontiguousarray(band.T if channel_major else band)
        conv_tile(out, x[c0:c1], pad, pad, band, channel_major, *p.epilogue(), ACT_CODES[act], k, stride, rows, block,
                  c0 == 0, c1 == 5, cols, acc, 0, 1)
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 70), size=st.sampled_from([1, 3, 5]),
       pad_top=st.integers(0, 2), pad_left=st.integers(0, 2), row0=st.integers(0, 8), rows=st.integers(1, 9),
       c_lo=st.integers(0, 5), seed=st.integers(0, 9))
def test_packed_input_is_the_im2col_matrix(channels, h, w, size, pad_top, pad_left, row0, rows, c_lo, seed):
    """The packed matrix of a stride-1 band of whole rows, as wide as its input (one shifted run of each plane,
    then the wrapped columns and the rows outside the map zeroed), and the same from rows that lie apart
    (row by row), against the im2col matrix built here, in the GEMM's panels; any pads, including none
    (a strip whose halo rows are real)."""
    c_lo = min(c_lo, channels - 1)
    x = np.random.default_rng(seed).standard_normal((channels, h, w)).astype(np.float32) + 2  # no zeros
    padded = np.zeros((channels, h + 2 * size + 9, w + 2 * size), np.float32)
    padded[:, size:size + h, size:size + w] = x
    k, px = (channels - c_lo) * size * size, rows * w
    expect = np.empty(k * px, np.float32)
    for c in range(c_lo, channels):
        for ky in range(size):
            for kx in range(size):
                row = ((c - c_lo) * size + ky) * size + kx
                for r in range(rows):
                    for ox in range(w):
                        iy, ix = row0 + r + ky - pad_top, ox + kx - pad_left
                        expect[panel_index(row, r * w + ox, k, px, PACKED_PANEL)] = \
                            padded[c, iy + size, ix + size] if -size <= iy < h + 9 and -size <= ix < w + size else 0
    apart = np.zeros((channels, h, w + 3), np.float32)[:, :, :w]
    apart[:] = x
    for source in (x, apart):
        cols = np.full(k * px + 1, np.nan, np.float32)
        _pack(cols, source, pad_top, pad_left, size, 1, row0, rows, w, c_lo, channels)
        np.testing.assert_array_equal(cols[:-1], expect)
        assert np.isnan(cols[-1])


def test_weights_beyond_the_cache_are_read_in_one_band():
    """Filters of more than CACHED_WEIGHTS bytes (1024 of 640 channels: 23.6 MB) get one band for the whole
    map once its result fits in the budget, and as much again for packed channels (at most twice the
    budget), or whatever the budget when the result goes to the output; smaller ones (of 256 channels) keep
    half the budget for the result: 3 of the 6 rows. All give the reference's output."""
    rng = np.random.default_rng(0)
    for channels, budget, to_output, band_rows in [(640, 200_000, False, 6), (256, 200_000, False, 3),
                                                   (640, 100_000, True, 6), (640, 100_000, False, 1)]:
        # 200 kB is above the whole map's result (1024 * 42 floats), 100 kB below
        x = rng.standard_normal((channels, 6, 7)).astype(np.float32)
        p = bn_params(rng, 1024, channels, 3)
        assert (p.weights.nbytes > CACHED_WEIGHTS) == (channels == 640)
        rows, block, *sizes = workspace_sizes(channels, 3, 1024, 6, 7, budget, False, to_output)
        assert rows == band_rows and sum(sizes) * np.float32().nbytes <= 2 * budget
        assert sum(sizes) * np.float32().nbytes <= budget or not to_output
        cols, acc = (np.empty(n, np.float32) for n in sizes)
        out = np.empty((1024, 6, 7), np.float32)
        spec = Conv(0, (-1,), x.shape, out.shape, filters=1024, size=3, padding=1, activation="leaky")
        run_at_once(conv_calls(spec, out, x, 1, 1, p.weights.reshape(1024, -1), False, *p.epilogue(),
                               ACT_CODES["leaky"], rows, block, True, True, cols, acc, 2))
        # sums of 5760 products up to about 30 in size: float32 rounding in another order reaches 1.4e-4
        np.testing.assert_allclose(out, ops.conv_layer(x, p, 1, 1, 1, "leaky"), rtol=1e-4, atol=5e-4)


@pytest.mark.parametrize("stride, act, threads", [(1, "leaky", 2), (2, "linear", 3), (1, "logistic", 1)])
def test_thin_conv_runs_directly_like_the_reference(stride, act, threads):
    """A 3x3 conv of a picture's few channels, without a workspace: its rows shared between threads, whole
    or in bands of input channels (filter major or channel major), into a strided destination."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 12, 13)).astype(np.float32)
    p = bn_params(rng, 7, 3, 3)
    expect = ops.conv_layer(x, p, stride, 1, 1, act)
    spec = Conv(0, (-1,), x.shape, (7, *expect.shape[1:]), filters=7, size=3, stride=stride, padding=1,
                activation=act)
    out = np.full((9, *expect.shape[1:]), np.nan, np.float32)[1:8]
    w = p.weights.reshape(7, 3, 9)
    for c0, c1, channel_major in [(0, 3, False), (0, 1, True), (1, 3, False)]:
        band = w[:, c0:c1].reshape(7, -1)
        band = np.ascontiguousarray(band.T).T if channel_major else band  # a transposed view, as loads give
        calls = direct_calls(spec, out, x[c0:c1], 1, 1, band, *p.epilogue(), ACT_CODES[act], c0 == 0, c1 == 3,
                             threads)
        assert len(calls) == threads
        run_at_once(calls)
        if c1 == 3:
            np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
            out[:] = np.nan


@pytest.mark.parametrize("threads", [1, 2])
def test_thin_conv_in_strips_matches_the_reference(threads):
    """yolov2's first conv as a fused group computes it: strips of whole rows read from a larger map (their
    halo rows inside it, the picture's border as padding), 16 filters (blocks of six and an edge), rows
    wider than a block of the window kernel; the map's last float is the one before an unreadable page."""
    from tests.test_microgemm import _guarded_floats
    rng = np.random.default_rng(7)
    channels, height, width, filters = 3, 21, 70, 16
    x = _guarded_floats(channels * height * width).reshape(channels, height, width)
    x[:] = rng.standard_normal(x.shape)
    p = bn_params(rng, filters, channels, 3)
    expect = ops.conv_layer(x, p, 1, 1, 1, "leaky")
    spec = Conv(0, (-1,), x.shape, expect.shape, filters=filters, size=3, padding=1, activation="leaky")
    out = np.full(expect.shape, np.nan, np.float32)
    for y0, y1 in [(0, 7), (7, 15), (15, 21)]:
        top = 1 if y0 == 0 else 0  # the strip's input rows: [y0 - 1, y1 + 1) clipped to the map
        region = x[:, y0 - 1 + top:min(height, y1 + 1)]
        run_at_once(direct_calls(spec, out[:, y0:y1], region, top, 1, p.weights.reshape(filters, -1),
                                 *p.epilogue(), ACT_CODES["leaky"], True, True, threads))
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_thin_stride_two_conv_runs_its_rows_through_the_windows_like_the_reference(threads):
    """A stride-2 3x3 conv of a picture's channels (MobileNetV2's first layer) computes each row's windows at
    every input column in its own and the next row's room, and keeps every other one: maps of odd and even
    sizes, either padding, whole or in strips of rows, and 1-19 filters (blocks of six and edges)."""
    rng = np.random.default_rng(11)
    for _ in range(12):
        channels, height, width, filters = (int(v) for v in rng.integers((1, 3, 3, 1), (4, 40, 40, 20)))
        pad = int(rng.integers(0, 2))
        x = rng.standard_normal((channels, height, width)).astype(np.float32)
        p = bn_params(rng, filters, channels, 3)
        expect = ops.conv_layer(x, p, 2, pad, 1, "relu")
        spec = Conv(0, (-1,), x.shape, expect.shape, filters=filters, size=3, stride=2, padding=pad,
                    activation="relu")
        out = np.full(expect.shape, np.nan, np.float32)
        cut = int(rng.integers(1, expect.shape[1] + 1))
        for y0, y1 in [(0, cut), (cut, expect.shape[1])]:  # strips: the input rows under them, clipped
            if y0 == y1:
                continue
            first_row, top = 2 * y0 - pad, max(0, pad - 2 * y0)
            region = x[:, max(0, first_row):min(height, 2 * (y1 - 1) - pad + 3)]
            run_at_once(direct_calls(spec, out[:, y0:y1], region, top, pad, p.weights.reshape(filters, -1),
                                     *p.epilogue(), ACT_CODES["relu"], True, True, threads))
        np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("parts", [1, 2])
def test_depthwise_stride_two_keeps_every_other_window_of_each_row_like_the_reference(parts):
    """A stride-2 3x3 depthwise conv computes each row's windows at every input column in its own and the
    next row's room and keeps every other one: odd and even maps, either padding, down to one output row."""
    from kernels.direct import depthwise_tile
    rng = np.random.default_rng(12)
    for _ in range(12):
        channels, height, width = (int(v) for v in rng.integers((1, 2, 2), (9, 30, 30)))
        pad = int(rng.integers(0, 2)) if min(height, width) >= 3 else 1
        x = rng.standard_normal((channels, height, width)).astype(np.float32)
        d = bn_params(rng, channels, 1, 3)
        expect = ops.conv_layer(x, d, 2, pad, channels, "relu")
        out = np.full(expect.shape, np.nan, np.float32)
        for part in range(parts):
            depthwise_tile(out, x, pad, pad, d.weights.reshape(channels, 9), *d.epilogue(), ACT_CODES["relu"], 3, 2,
                           part, parts)
        np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("parts", [1, 2])
def test_depthwise_stride_one_sums_each_plane_as_one_run_like_row_by_row(parts):
    """A stride-1 3x3 depthwise conv whose input and output rows lie end to end runs each channel's plane as
    one loop, then its border columns and its top and bottom rows: the same bits as row by row (an output
    whose columns lie apart goes so), on whole maps and strips of rows, either padding, down to 1x1."""
    from kernels.direct import depthwise_tile
    rng = np.random.default_rng(13)
    for case in range(16):
        channels, height, width = (int(v) for v in rng.integers((1, 1, 1), (7, 30, 30)))
        pad = 1 if case % 4 else 0
        if pad == 0 and min(height, width) < 3:
            height, width = height + 2, width + 2
        x = rng.standard_normal((channels, height, width)).astype(np.float32)
        d = bn_params(rng, channels, 1, 3)
        expect = ops.conv_layer(x, d, 1, pad, channels, "leaky")
        out_h = expect.shape[1]
        y0 = int(rng.integers(0, out_h)) if case % 2 else 0  # a strip of rows [y0, y1), or the whole map
        y1 = int(rng.integers(y0 + 1, out_h + 1)) if case % 2 else out_h
        region = x[:, max(0, y0 - pad):min(height, y1 - 1 - pad + 3)]
        top = max(0, pad - y0)
        rows = np.full(expect.shape, np.nan, np.float32)
        apart = np.full((channels, out_h, 2 * expect.shape[2]), np.nan, np.float32)[:, :, ::2]
        for out in (rows[:, y0:y1], apart[:, y0:y1]):
            for part in range(parts):
                depthwise_tile(out, region, top, pad, d.weights.reshape(channels, 9), *d.epilogue(),
                               ACT_CODES["leaky"], 3, 1, part, parts)
        np.testing.assert_array_equal(rows[:, y0:y1], apart[:, y0:y1])
        np.testing.assert_allclose(rows[:, y0:y1], expect[:, y0:y1], rtol=2e-5, atol=2e-5)


def test_direct_convs_are_the_thin_and_the_depthwise():
    """yolov2's first conv (3 channels in) runs directly, its others by GEMM; MobileNetV2's stride-2 first
    conv and its depthwise ones directly."""
    from yolo.cfg import load_network
    for cfg, expect in [("yolov2-tiny.cfg", {0}), ("MobileNetV2-YOLOv3-Nano-coco.cfg", None)]:
        net = load_network(cfg)
        table = layer_table(net)
        direct = {j for j in range(len(net)) if isinstance(net[j], Conv) and is_direct(table, j)}
        if expect is None:
            expect = {j for j, layer in enumerate(net) if isinstance(layer, Conv)
                      and (layer.groups > 1 or layer.in_shape[0] <= 4 and layer.size == 3)}
            assert 0 in expect and len(expect) > 10
        assert direct == expect


def test_a_1x1_conv_multiplies_contiguous_input_in_place():
    """The direct path reads the input where it lies, with no packed-input workspace at all and every
    channel in one block; a view narrower than its map packs (and refuses an empty workspace). Into an output
    whose rows lie end to end, the in-place one needs no workspace at all."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9, 10)).astype(np.float32)
    p = ConvParams(rng.standard_normal(4).astype(np.float32), rng.standard_normal((4, 6, 1, 1)).astype(np.float32))
    for view in (x[:, 2:7], x[:, 2:7, 1:9]):
        in_place = view.shape[2] == x.shape[2]
        expect = ops.conv_layer(np.ascontiguousarray(view), p, 1, 0, 1, "leaky")
        out = np.empty_like(expect)
        rows, block, *sizes = workspace_sizes(6, 1, 4, *expect.shape[1:], 200, in_place, False)
        assert (sizes[0] == 0 and block == 6) == in_place
        cols, acc = (np.full(n, np.nan, np.float32) for n in sizes)
        args = (out, view, 0, 0, p.weights.reshape(4, -1), False, *p.epilogue(), ACT_CODES["leaky"], 1, 1, rows, block,
                True, True)
        conv_tile(*args, cols, acc, 0, 1)
        np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
        if not in_place:
            with pytest.raises(ValueError, match="rows are apart"):
                conv_tile(*args, cols[:0], acc, 0, 1)
        # multiplied into the output's rows: no workspace at all in place; an output whose rows are apart refused
        rows, block, *sizes = workspace_sizes(6, 1, 4, *expect.shape[1:], 200, in_place, True)
        assert sizes[1] == 0 and (sizes[0] == 0) == in_place
        cols = np.full(sizes[0], np.nan, np.float32)
        out[:] = np.nan
        conv_tile(out, *args[1:11], rows, block, True, True, cols, cols[:0], 0, 1)
        np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
        wider = np.empty((4, out.shape[1], out.shape[2] + 1), np.float32)[:, :, 1:]
        with pytest.raises(ValueError, match="output rows that are apart"):
            conv_tile(wider, *args[1:11], rows, block, True, True, cols, cols[:0], 0, 1)


@pytest.mark.parametrize("parts", [2, 3])
def test_conv_shares_run_at_once_within_one_workspace(parts):
    """Each share of the output rows uses its own slice of workspaces sized for one call; run on threads at
    once, the shares give the single call's result."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 17, 15)).astype(np.float32)
    p = ConvParams(rng.standard_normal(8).astype(np.float32), rng.standard_normal((8, 6, 3, 3)).astype(np.float32))
    expect = ops.conv_layer(x, p, 1, 1, 1, "leaky")
    rows, block, *sizes = workspace_sizes(6, 3, 8, *expect.shape[1:], 4000, False, False)
    assert shares(expect.shape[1], rows, parts) == parts
    cols, acc = (np.empty(n, np.float32) for n in sizes)
    out = np.full_like(expect, np.nan)
    args = (out, x, 1, 1, p.weights.reshape(8, -1), False, *p.epilogue(), ACT_CODES["leaky"], 3, 1, rows, block, True,
            True, cols, acc)
    run_at_once([partial(conv_tile, *args, part, parts) for part in range(parts)])
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
    assert shares(expect.shape[1], 1, parts) == 1 and shares(1, rows, parts) == 1  # too few rows: one share


@pytest.mark.parametrize("threads, filters, channel_major, k", [(2, 41, False, 3), (3, 40, True, 3), (2, 64, False, 1)])
def test_conv_threads_share_the_filters_of_a_weight_heavy_step(threads, filters, channel_major, k):
    """A step whose filters outnumber a band's pixels splits by filters, each thread in its slices of the
    one workspace; in two calls over halves of the input channels (streamed bands: partial sums, then the
    epilogue) it gives the reference's result."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 5, 6)).astype(np.float32)
    p = ConvParams(rng.standard_normal(filters).astype(np.float32),
                   rng.standard_normal((filters, 12, k, k)).astype(np.float32))
    expect = ops.conv_layer(x, p, 1, k // 2, 1, "leaky")
    rows, block, *sizes = workspace_sizes(6, k, filters, 5, 6, 6000, False, False)
    assert by_filters(filters, min(rows, 5) * 6, block, threads) and not by_filters(filters, 5 * 6, 1, threads)
    cols, acc = (np.empty(n, np.float32) for n in sizes)
    out = np.full_like(expect, np.nan)
    w2d = p.weights.reshape(filters, -1)
    spec = Conv(0, (-1,), (12, 5, 6), (filters, 5, 6), filters=filters, size=k, padding=k // 2, activation="leaky")
    for lo, hi in [(0, 6), (6, 12)]:  # the input channels in two bands, as streamed weights go
        w = w2d[:, lo * k * k:hi * k * k]
        calls = conv_calls(spec, out, x[lo:hi], k // 2, k // 2, np.ascontiguousarray(w.T) if channel_major else w,
                           channel_major, *p.epilogue(), ACT_CODES["leaky"], rows, block, lo == 0, hi == 12, cols,
                           acc, threads)
        assert len(calls) == threads
        if lo == 0:  # each call alone writes only its own part of the workspaces, so that they may run at once
            touched = []
            for call in calls:
                cols[:], acc[:] = np.nan, np.nan
                call()
                touched.append(np.flatnonzero(~np.isnan(np.concatenate([cols, acc]))))
            assert sum(map(len, touched)) == len(np.unique(np.concatenate(touched)))
        run_at_once(calls)
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)


def test_maxpool_tile_matches_reference_on_a_view():
    """On views with contiguous rows (2x2, stride 2 or 1: rows read as runs; stride-1 pools as wide as their
    input, SPP's, separably), without (every other column), and on whole planes (2x2, stride 1: each plane
    one run); stride-1 pools also on strips of rows, as a tile computes them."""
    x = np.random.default_rng(1).standard_normal((3, 12, 25)).astype(np.float32)
    for view in (x[:, 1:, 2:14], x[:, 1:, ::2], x):
        for size, stride, padding in [(2, 2, 1), (2, 2, 2), (2, 1, 1), (3, 1, 2), (3, 2, 2), (5, 1, 4), (9, 1, 8),
                                      (4, 1, 3), (13, 1, 12), (3, 1, 0)]:
            expect = ops.maxpool(np.ascontiguousarray(view), size, stride, padding)
            out = np.full((4, *expect.shape[1:]), np.nan, np.float32)[1:]
            maxpool_tile(out, view, size, stride, padding // 2, padding // 2)
            np.testing.assert_array_equal(out, expect)
            if stride > 1:
                continue
            pad = padding // 2
            for y0, y1 in [(0, 3), (2, 7), (5, expect.shape[1])]:  # the strip's output rows
                region = view[:, max(0, y0 - pad):min(view.shape[1], y1 - 1 - pad + size)]
                strip = np.full((3, y1 - y0, expect.shape[2]), np.nan, np.float32)
                maxpool_tile(strip, region, size, 1, max(0, pad - y0), pad)
                np.testing.assert_array_equal(strip, expect[:, y0:y1])


def test_reorg_region_and_route_kernels():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 26, 26)).astype(np.float32)
    out = np.empty((256, 13, 13), np.float32)
    layout.reorg(out.reshape(-1), x.reshape(-1), 64, 26, 26, 2)
    np.testing.assert_array_equal(out, ops.reorg(x, 2))
    r = rng.standard_normal((2 * 9, 3, 4)).astype(np.float32)
    cat = np.zeros((7, 3, 4), np.float32)
    layout.copy_channels(cat, r[:3], 4)
    np.testing.assert_array_equal(cat[4:], r[:3])
    assert not cat[:4].any()
    # a strip between regions of wider maps (row by row), and between maps whose columns lie apart
    wide = np.zeros((5, 6, 9), np.float32)
    layout.copy_channels(wide[:, 2:5, 1:5], r[:3], 1)
    expect = np.zeros_like(wide)
    expect[1:4, 2:5, 1:5] = r[:3]
    np.testing.assert_array_equal(wide, expect)
    layout.copy_channels(wide[:, :3, 1::2], r[3:5], 0)
    expect[:2, :3, 1::2] = r[3:5]
    np.testing.assert_array_equal(wide, expect)


@njit
def _exp_all(out, v):
    for i in range(v.size):
        out[i] = exp32(v[i])


def test_exp32_is_within_two_ulps_and_clamps_to_normal_floats():
    v = np.concatenate([np.linspace(LOWEST, HIGHEST, 400_001, dtype=np.float32),
                        np.float32([0, -0.0, 1e-30, -1e-30, 88.72, 200, -104, -1000, np.inf, -np.inf])])
    got = np.empty_like(v)
    _exp_all(got, v)
    inside = (v >= LOWEST) & (v <= HIGHEST)
    exact = np.exp(v[inside].astype(np.float64))
    assert np.abs(got[inside] - exact).max(initial=0) <= 2.5e-7 * exact.max()
    np.testing.assert_array_less(np.abs(got[inside] - exact) / exact, 2.6e-7)
    assert got[v == 0].tolist() == [1, 1]
    clamped = got[~inside]
    assert np.isfinite(clamped).all() and (clamped >= np.finfo(np.float32).tiny).all()
    np.testing.assert_allclose(got[v > HIGHEST], np.exp(np.float64(HIGHEST)), rtol=3e-7)


@pytest.mark.parametrize("coords, softmax", [(4, True), (4, False), (6, True)])
def test_region_kernel_matches_reference(coords, softmax):
    """Large logits (the softmax must subtract each cell's maximum) and cells of one anchor end to end."""
    num, classes = 3, 7
    x = (np.random.default_rng(coords).standard_normal((num * (coords + 1 + classes), 5, 6)) * 40).astype(np.float32)
    got = np.full_like(x, np.nan)
    layout.region(got, x.copy(), num, coords, classes, softmax)
    np.testing.assert_allclose(got, ops.region(x, num, coords, classes, softmax), rtol=1e-6, atol=1e-7)


def test_kernels_write_maps_whose_columns_lie_apart():
    """Kernels write output rows through contiguous views when a map's rows are contiguous (``row_at``);
    into every other column of a map they take the strided rows instead, with the same values: the
    Winograd, depthwise and GEMM (rows apart) convolutions, and the picture's placement."""
    from kernels.direct import depthwise_tile
    from kernels.picture import fit_region
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 11, 13)).astype(np.float32)

    def spaced(shape):
        return np.full((shape[0], shape[1], 2 * shape[2]), np.nan, np.float32)[:, :, ::2]

    p = bn_params(rng, 5, 6, 3)
    expect = ops.conv_layer(x, p, 1, 1, 1, "leaky")
    out = spaced(expect.shape)
    rows, cols, block, *sizes = winograd_sizes(6, 5, *expect.shape[1:], 1 << 20)
    run_at_once(winograd_calls(out, x, 1, 1, transform_filters(p.weights), *p.epilogue(), ACT_CODES["leaky"], rows,
                               cols, block, *(np.zeros(n, np.float32) for n in sizes), 1))
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)
    spec = Conv(0, (-1,), x.shape, expect.shape, filters=5, size=3, stride=1, padding=1, activation="leaky")
    rows, block, n_cols, n_acc = workspace_sizes(6, 3, 5, *expect.shape[1:], 3000, False, False)
    out = spaced(expect.shape)
    run_at_once(conv_calls(spec, out, x, 1, 1, p.weights.reshape(5, -1), False, *p.epilogue(), ACT_CODES["leaky"],
                           rows, block, True, True, np.zeros(n_cols, np.float32), np.zeros(n_acc, np.float32), 1))
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
    d = bn_params(rng, 6, 1, 3)
    expect = ops.conv_layer(x, d, 1, 1, 6, "relu")
    out = spaced(expect.shape)
    depthwise_tile(out, x, 1, 1, d.weights.reshape(6, 9), *d.epilogue(), ACT_CODES["relu"], 3, 1, 0, 1)
    np.testing.assert_allclose(out, expect, rtol=2e-5, atol=2e-5)
    picture = rng.random((3, 7, 9)).astype(np.float32)
    whole, out = np.zeros((3, 11, 13), np.float32), spaced((3, 11, 13))
    for dest in (whole, out):
        fit_region(picture, np.float32(1), 9, 7, 2, 3, 0, 0, dest)
    np.testing.assert_array_equal(out, whole)
    assert (whole[:, 3:10, 2:11] == picture).all() and (whole[:, :3] == np.float32(0.5)).all()
