"""Tile geometry properties over random stacks: partition, bounds, exact receptive fields."""
from dataclasses import replace

import numpy as np
from hypothesis import given, settings, strategies as st

from engine.params import random_params
from engine.reference import run_reference
from engine.tiling import balanced_split, tile_chain
from tests.strategies import stacks


@given(n=st.integers(1, 500), parts=st.integers(1, 20))
def test_balanced_split_sizes_differ_by_at_most_one(n, parts):
    if parts > n:
        return
    spans = balanced_split(n, parts)
    sizes = [b - a for a, b in spans]
    assert spans[0][0] == 0 and spans[-1][1] == n and all(s1[1] == s2[0] for s1, s2 in zip(spans, spans[1:]))
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_balanced_split_has_no_sliver_at_416():
    assert [b - a for a, b in balanced_split(13, 4)] == [3, 3, 3, 4]


@settings(max_examples=60, deadline=None)
@given(net=stacks(), data=st.data())
def test_tiles_partition_output_and_regions_stay_in_bounds(net, data):
    _, h, w = net[-1].out_shape
    rows, cols = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    tiles = tile_chain(net.layers, rows, cols)
    cover = np.zeros((h, w), np.int32)
    for tile in tiles:
        y0, y1, x0, x1 = tile.out
        cover[y0:y1, x0:x1] += 1
        for layer, step, nxt in zip(net.layers, tile.steps, tile.steps[1:] + (None,)):
            _, ih, iw = layer.in_shape
            iy0, iy1, ix0, ix1 = step.inp
            assert 0 <= iy0 < iy1 <= ih and 0 <= ix0 < ix1 <= iw
            assert step.pad_top == 0 or iy0 == 0  # padding only at the real border
            assert step.pad_left == 0 or ix0 == 0
            if nxt is not None:
                assert nxt.inp == step.out
    assert (cover == 1).all()


def linear_positive(net, seed):
    """Weights that let any large positive spike reach every output it can influence."""
    params = random_params(net, seed)
    layers = {i: replace(p, weights=np.abs(p.weights) + np.float32(0.01), biases=np.zeros_like(p.biases),
                         scales=None, rolling_mean=None, rolling_variance=None) for i, p in params.layers.items()}
    lin = tuple(replace(l, activation="linear", batch_normalize=False) if l.kind == "conv" else l for l in net.layers)
    return replace(net, layers=lin), replace(params, layers=layers)


@settings(max_examples=40, deadline=None)
@given(net=stacks(max_layers=4, sizes=(6, 20)), data=st.data(), seed=st.integers(0, 100))
def test_input_region_is_exactly_the_receptive_field(net, data, seed):
    net, params = linear_positive(net, seed)
    _, h, w = net[-1].out_shape
    tiles = tile_chain(net.layers, data.draw(st.integers(1, h)), data.draw(st.integers(1, w)))
    tile = data.draw(st.sampled_from(tiles))
    base = run_reference(net, params, np.zeros(net.input_shape, np.float32)).output
    y0, y1, x0, x1 = tile.out
    iy0, iy1, ix0, ix1 = tile.inp
    _, ih, iw = net.input_shape
    # corners of the region are always read (a strided 1x1 conv skips rows in between)
    probes = [((iy0, ix0), True), ((iy1 - 1, ix0), True), ((iy0, ix1 - 1), True), ((iy1 - 1, ix1 - 1), True),
              ((iy0 - 1, ix0), False), ((iy1, ix0), False), ((iy0, ix0 - 1), False), ((iy0, ix1), False)]
    for (py, px), inside in probes:
        if not (0 <= py < ih and 0 <= px < iw):
            continue
        x = np.zeros(net.input_shape, np.float32)
        x[0, py, px] = 1000.0
        out = run_reference(net, params, x).output
        changed = not np.array_equal(out[:, y0:y1, x0:x1], base[:, y0:y1, x0:x1])
        assert changed == inside, (py, px, tile.inp, tile.out)
