"""The one lowering: tile geometry, reuse modes and buffer lifetimes, checked as invariants of the lowered
arrays on random stacks, grids and modes; and receptive fields checked against the reference by impulses."""
from dataclasses import replace

import numpy as np
from hypothesis import given, settings, strategies as st

from engine.ir.fusion import fusion
from engine.ir.plan import REUSE_MODES, Group
from engine.lower.geometry import balanced_edges
from engine.lower.group import Lowering
from engine.lower.table import (B_FIRST, B_LAST, COPY_STEP, GROUP_OUTPUT, GROUP_OWN, GROUP_SOURCE, INPUT_BUFFER,
                                INPUT_STEP, STRIP_BUFFER, S_DC0, S_DST, S_PAIRED, S_SRC2,
                                S_KIND, S_SCRATCH, S_SRC, TILE_BUFFER, UPSAMPLE_STEP)
from engine.runtime.reference import run_reference
from yolo.params import random_params
from tests.lowered import (buffer_shape, computes, coverage, dest_box, kind, origin, pads, source_box)
from tests.strategies import residual_nets, stacks


@settings(deadline=None)
@given(n=st.integers(1, 500), parts=st.integers(1, 20))
def test_balanced_split_sizes_differ_by_at_most_one(n, parts):
    if parts > n:
        return
    edges = balanced_edges(n, parts)
    sizes = np.diff(edges)
    assert edges[0] == 0 and edges[-1] == n
    assert sizes.max() - sizes.min() <= 1 and sizes.min() >= 1


def test_balanced_split_has_no_sliver_at_416():
    assert list(np.diff(balanced_edges(13, 4))) == [3, 3, 3, 4]


@st.composite
def lowered(draw, max_layers=6, sizes=(4, 30), residual=True):
    """A group's program on a chain or (``residual``) a network with shortcuts, routes and upsampling."""
    if residual and draw(st.booleans()):
        net = draw(residual_nets(sizes=(4, 16)))
        first = draw(st.sampled_from([i for i in range(len(net)) if fusion(net).ends(i)]))
        last = draw(st.sampled_from(fusion(net).ends(first)))
    else:
        net = draw(stacks(max_layers=max_layers, sizes=sizes))
        first = draw(st.integers(0, min(1, len(net) - 1)))  # at 0 the group makes the input region by region
        last = len(net) - 1
    _, h, w = net[last].out_shape
    group = Group(first, last, draw(st.integers(1, min(h, 7))), draw(st.integers(1, min(w, 7))),
                  draw(st.sampled_from(REUSE_MODES)))
    scratch = draw(st.sampled_from([1 << 9, 1 << 12, 1 << 20]))
    return net, Lowering(net, scratch).lower(group)


@settings(max_examples=150, deadline=None)
@given(case=lowered())
def test_every_held_region_is_covered_once_and_reads_stay_in_bounds(case):
    net, program = case
    st_, bufs = program.steps, program.buffers
    written = {}
    for s, row in enumerate(st_):
        dst, src = int(row[S_DST]), int(row[S_SRC])
        if row[S_DC0] == 0:  # a route's later sources fill further channels of the same region
            written.setdefault(dst, []).append(dest_box(program, s))
        # every region lies inside its buffer; padding only where the region touches the map's real border
        for buffer, box in ((src, row[3:7]), (dst, row[8:12])):
            if buffer not in (GROUP_SOURCE, GROUP_OUTPUT):  # -1: the picture; -2 - i: layer i's map, held
                _, h, w = buffer_shape(program, buffer) if buffer >= 0 else net.shape_of(-2 - buffer)
                assert 0 <= box[0] < box[1] <= h and 0 <= box[2] < box[3] <= w
        if row[S_KIND] not in (COPY_STEP, UPSAMPLE_STEP):  # an upsample's "pads" are its phase
            top, left = pads(program, s)
            y0, _, x0, _ = source_box(program, s)
            assert top == 0 or y0 == 0
            assert left == 0 or x0 == 0
    for b in range(GROUP_OWN, len(bufs)):
        if kind(program, b) in (TILE_BUFFER, INPUT_BUFFER):  # filled exactly once, by fills and computes
            _, h, w = buffer_shape(program, b)
            _, oy, ox = origin(program, b)
            cover = coverage((h, w), [(y0 - oy, y1 - oy, x0 - ox, x1 - ox) for y0, y1, x0, x1 in written[b]])
            assert (cover == 1).all()
    last = net[program.group.last]
    assert (coverage(last.out_shape[1:], written[GROUP_OUTPUT]) == 1).all()


@settings(max_examples=150, deadline=None)
@given(case=lowered())
def test_strips_are_saved_once_before_their_one_use_and_lifetimes_follow_the_touches(case):
    _, program = case
    st_, bufs = program.steps, program.buffers
    touches = {}
    for s, row in enumerate(st_):
        for b in (row[S_SRC], row[S_DST], row[S_SRC2]):
            touches.setdefault(int(b), []).append(s)
        if row[S_SCRATCH] >= 0:
            for k in range(3):  # packed input, GEMM result, pooled band
                touches.setdefault(int(row[S_SCRATCH]) + k, []).append(s)
    paired = st_[:, S_PAIRED] == 1  # a pair runs at once: a lifetime that touches it spans both its steps
    start = lambda s: s - 1 if s > 0 and paired[s - 1] else s
    end = lambda s: s + 1 if paired[s] else s
    for b in range(GROUP_OWN, len(bufs)):
        assert (bufs[b, B_FIRST], bufs[b, B_LAST]) == (start(min(touches[b])), end(max(touches[b])))
        if kind(program, b) == STRIP_BUFFER:
            save, use = touches[b]
            assert save < use and st_[save, S_DST] == b and st_[use, S_SRC] == b
    if program.group.first == 0:  # no input map: each compute of the first layer reads a region of its own
        assert program.source_last == -1 and GROUP_SOURCE not in touches
        inputs = [b for b in range(GROUP_OWN, len(bufs)) if kind(program, b) == INPUT_BUFFER]
        assert inputs and all(st_[bufs[b, B_FIRST], S_KIND] == INPUT_STEP for b in inputs)
    else:
        assert program.source_last == end(max(touches[GROUP_SOURCE]))


@settings(max_examples=100, deadline=None)
@given(case=lowered())
def test_stream_computes_every_element_at_most_once(case):
    net, program = case
    if program.group.reuse != "stream":
        return
    for layer in net.layers:
        boxes = [dest_box(program, s) for s in computes(program, layer.index)]
        assert coverage(layer.out_shape[1:], boxes).max() <= 1


@settings(max_examples=40, deadline=None)
@given(case=lowered(max_layers=4, sizes=(5, 20)))
def test_transient_lowering_equals_the_kept_program(case):
    net, program = case
    lowering = Lowering(net, 1 << 12)
    kept = lowering.lower(replace(program.group))
    steps, buffers, source_last = lowering.lower_transient(program.group)
    assert np.array_equal(steps, kept.steps) and np.array_equal(buffers, kept.buffers)
    assert source_last == kept.source_last


def linear_positive(net, seed):
    """Weights that let any large positive spike reach every output it can influence."""
    params = random_params(net, seed)
    layers = {i: replace(p, weights=np.abs(p.weights) + np.float32(0.01), biases=np.zeros_like(p.biases),
                         scales=None, rolling_mean=None, rolling_variance=None) for i, p in params.layers.items()}
    lin = tuple(replace(l, activation="linear", batch_normalize=False) if l.kind == "conv" else l for l in net.layers)
    return replace(net, layers=lin), replace(params, layers=layers)


@settings(max_examples=40, deadline=None)
@given(net=stacks(max_layers=4, sizes=(6, 20)), data=st.data(), seed=st.integers(0, 100))
def test_a_tiles_input_region_is_exactly_its_receptive_field(net, data, seed):
    """Impulses: a spike inside a tile's input region changes the tile's output; one outside does not."""
    net, params = linear_positive(net, seed)
    _, h, w = net[-1].out_shape
    group = Group(0, len(net) - 1, data.draw(st.integers(1, h)), data.draw(st.integers(1, w)), "none")
    program = Lowering(net).lower(group)
    tile = data.draw(st.integers(0, group.rows * group.cols - 1))
    iy0, iy1, ix0, ix1 = source_box(program, computes(program, 0, tile)[0])
    ends = computes(program, len(net) - 1, tile)
    if not len(ends):  # the last layer, a pool, is folded into the conv before it, whose step writes its region
        ends = computes(program, len(net) - 2, tile)
    y0, y1, x0, x1 = dest_box(program, ends[0])
    base = run_reference(net, params, np.zeros(net.input_shape, np.float32)).output
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
        assert changed == inside, (py, px, (iy0, iy1, ix0, ix1), (y0, y1, x0, x1))
