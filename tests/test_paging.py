"""The paging model: its LRU agrees with a plain one, more memory never faults more, a run that fits never
faults, and the trace touches exactly the bytes each step names."""
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.memory.planner import plan_layout
from engine.device.curves import DeviceModel, memory_span
from yolo.errors import FusetileError
from engine.device.paging import DEVICES, _simulate, parse_device, simulate, touch_trace, weight_blocks
from engine.ir.plan import Plan, parse_groups
from engine.memory.predictor import Predictor, weights_bytes
from engine.lower.program import build_program
from engine.lower.table import B_BYTES, CONV_STEP, S_KIND, S_LAYER
from engine.tune.search import Evaluator
from engine.tune.costmodel import CostModel
from engine.tune.features import FEATURES
from yolo.cfg import load_network

PAGE = 4096


def plain_lru(preload, trace, capacity, runs):
    """(swap-ins, swap-outs, first touches, file pages read) per run, with an OrderedDict as the LRU list."""
    resident, swapped, dirty = OrderedDict(), set(), set()
    counts = np.zeros((runs, 4), np.int64)

    def touch(page, write, run, file=False):
        if page in resident:
            resident.move_to_end(page)
        else:
            if run >= 0:
                counts[run, 3 if file else (0 if page in swapped else 2)] += 1
            if len(resident) >= capacity:
                victim, _ = resident.popitem(last=False)
                swapped.add(victim)
                if victim in dirty and run >= 0:
                    counts[run, 1] += 1
                dirty.discard(victim)
            resident[page] = True
        if write:
            dirty.add(page)

    for page in preload:
        touch(page, True, -1)
    for run in range(runs):
        for page, write, file in trace:
            touch(page, write, run, file)
    return counts


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 3), st.booleans()), min_size=1, max_size=80),
       st.integers(0, 10), st.integers(1, 30))
def test_lru_agrees_with_a_plain_one(ranges, preload_pages, capacity):
    """Pages 30.. are a file's (clean, read only): their misses are file reads."""
    starts = np.array([p * PAGE + 100 for p, _, _ in ranges], np.int64)
    ends = np.array([p * PAGE + n * PAGE for p, n, _ in ranges], np.int64)
    files = starts >= 30 * PAGE
    writes = np.array([w for _, _, w in ranges]) & ~files
    pre = np.array([50 * PAGE], np.int64), np.array([(50 + preload_pages) * PAGE + 1], np.int64)
    got = _simulate(*pre, starts, ends, writes, files, PAGE, capacity, 64, 2)
    trace = [(page, w, f) for s, e, w, f in zip(starts, ends, writes, files)
             for page in range(s // PAGE, (e - 1) // PAGE + 1)]
    preload = range(50, 50 + preload_pages + 1)
    assert (got == plain_lru(preload, trace, capacity, 2)).all()


NET = load_network("yolov2-tiny.cfg", 160)
BASELINE = 50 * 2**20  # a stand-in runtime baseline: the model takes it as given


def program_and_layout(spec):
    program = build_program(Plan(NET, parse_groups(spec)))
    return program, plan_layout(program.buffers)


@pytest.mark.parametrize("spec", ["", "0-5:4x4:stream,6-8:2x2:none", "0-8:3x2:checkerboard"])
def test_more_memory_never_faults_more_and_enough_never_faults(spec):
    program, layout = program_and_layout(spec)
    enough = BASELINE + layout.size + weights_bytes(NET) + 64 * PAGE
    ins = [simulate(program, layout, DEVICES["rpi3"], BASELINE + m, BASELINE).swap_ins
           for m in np.linspace(weights_bytes(NET) // 4, enough - BASELINE, 9).astype(int)]
    assert ins == sorted(ins, reverse=True) and ins[0] > 0 and ins[-1] == 0
    fits = simulate(program, layout, DEVICES["rpi3"], enough, BASELINE)
    assert fits.swap_ins == fits.swap_outs == 0 and fits.seconds == 0
    assert fits.working_set_bytes <= -(-layout.size // PAGE) * PAGE + weights_bytes(NET) + 32 * PAGE


def test_trace_touches_the_bytes_each_step_names():
    program, layout = program_and_layout("0-5:2x2:stream")
    (starts, ends, writes, files), blocks = touch_trace(program, layout, PAGE)
    assert not files.any()  # resident weights: no file reads
    assert (ends > starts).all()
    arena = np.zeros(layout.size, bool)
    for s, e in zip(starts, ends):
        if s < layout.size:
            arena[s:e] = True
    # every byte of every buffer is touched (tiles are written whole, maps read whole by someone) ...
    for b, (at, size) in enumerate(zip(layout.offsets, program.buffers[:, B_BYTES])):
        assert arena[at:at + size].all(), program.name(b)
    # ... and nothing outside the buffers
    covered = np.zeros(layout.size, bool)
    for at, size in zip(layout.offsets, program.buffers[:, B_BYTES]):
        covered[at:at + size] = True
    assert not (arena & ~covered).any()
    # weights: one read of the layer's block per conv step, nothing written there
    weight_reads = [(s, e) for s, e, w in zip(starts, ends, writes) if s >= layout.size]
    assert all(not w for s, w in zip(starts, writes) if s >= layout.size)
    conv_layers = program.steps[program.steps[:, S_KIND] == CONV_STEP, S_LAYER]
    assert weight_reads == [blocks[layer] for layer in conv_layers]
    assert sum(e - s for s, e in blocks.values()) == weights_bytes(NET)


def test_device_presets_and_overrides():
    rpi3 = parse_device("rpi3")
    assert rpi3.page_bytes == 4096 and rpi3.memory_bytes == 2**30
    custom = parse_device("rpi3:fault=2ms,read=10MB/s,write=5MB/s,page=16KiB")
    assert (custom.fault_seconds, custom.read_bytes_per_s, custom.write_bytes_per_s, custom.page_bytes) == \
        (2e-3, 10e6, 5e6, 16384)
    assert custom.seconds(10, 4) == pytest.approx(10 * (2e-3 + 16384 / 10e6) + 4 * 16384 / 5e6)
    for bad, message in [("pi9", "unknown device 'pi9'"), ("rpi3:fault=2", "bad field 'fault=2'"),
                         ("rpi3:speed=3", "bad field 'speed=3'"), ("rpi3:page=1B", "at least 512 B")]:
        with pytest.raises(FusetileError, match=message):
            parse_device(bad)
    program, layout = program_and_layout("")
    with pytest.raises(FusetileError, match="no larger than the runtime baseline"):
        simulate(program, layout, rpi3, BASELINE, BASELINE)


def test_weight_blocks_are_page_aligned_and_disjoint():
    blocks = sorted(weight_blocks(NET, 3 * PAGE, PAGE).values())
    assert blocks[0][0] == 3 * PAGE and all(a % PAGE == 0 for a, _ in blocks)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(blocks, blocks[1:]))


def test_searched_configuration_pages_less_where_layer_by_layer_does_not_fit():
    model = CostModel((1e-11,) + (1e-9,) * (len(FEATURES) - 1))  # a fixed model of this order: the test is about paging
    curve = DeviceModel(Evaluator(Predictor(NET), model), DEVICES["rpi3"], BASELINE)
    grids = tuple((r, c) for r in range(1, 4) for c in range(1, 4))
    points = curve.curve(memory_span(curve, 5), grids)
    assert [p.memory_bytes for p in points] == sorted(p.memory_bytes for p in points)
    assert points[0].layer_by_layer.swap_ins > 0  # severe: the weights do not fit
    assert points[-1].layer_by_layer.swap_ins == points[-1].searched.swap_ins == 0
    assert all(p.searched.seconds <= p.layer_by_layer.seconds for p in points)
    # room for the weights and a small arena, not for layer by layer's: only the searched pick fits
    lbl_arena = Predictor(NET).predict(()).arena_bytes
    squeezed = curve.curve([BASELINE + weights_bytes(NET) + lbl_arena // 2], grids)[0]
    assert squeezed.layer_by_layer.swap_ins > 0 and squeezed.searched.swap_ins == 0
    assert squeezed.speedup > 10


def test_streamed_weights_are_clean_file_reads_that_never_swap():
    """Streamed weights: each load step reads its band's file range (once per load, never written); with
    room for the file in the page cache nothing is read in steady state; squeezed, the file pages are read
    again from storage, priced at its sequential bandwidth."""
    plan = Plan(NET, parse_groups("0-5:4x4:stream:group,6-8:2x2:none:tile/2"), "streamed", 1 << 18)
    program = build_program(plan)
    layout = plan_layout(program.buffers)
    (starts, ends, writes, files), blocks = touch_trace(program, layout, PAGE)
    assert blocks == {} and files.any() and not (writes & files).any()
    from engine.runtime.executor import FusedExecutor
    from yolo.params import random_params
    run = FusedExecutor(plan, random_params(NET, 0)).run(np.zeros(NET.input_shape, np.float32))
    assert sum(e - s for s, e, f in zip(starts, ends, files) if f) == run.weights_read_bytes  # what the loads read
    roomy = simulate(program, layout, DEVICES["rpi3"], BASELINE + layout.size + 2 * weights_bytes(NET), BASELINE)
    assert roomy.swap_ins == roomy.swap_outs == roomy.file_reads == 0
    squeezed = simulate(program, layout, DEVICES["rpi3"], BASELINE + layout.size + 64 * PAGE, BASELINE)
    assert squeezed.file_reads > 0  # (file pages, read but never written, are evicted for free)
    assert squeezed.seconds == pytest.approx(squeezed.file_reads * PAGE / DEVICES["rpi3"].read_bytes_per_s
                                             + DEVICES["rpi3"].seconds(squeezed.swap_ins, squeezed.swap_outs))


def test_streamed_configurations_beat_swapping_where_the_weights_do_not_fit():
    """Below the weights' size layer by layer (resident) swaps them; the best streamed configuration reads
    them sequentially as clean pages and wins; with room for everything nothing pages."""
    model = CostModel((1e-11,) + (1e-9,) * (len(FEATURES) - 1))
    resident = DeviceModel(Evaluator(Predictor(NET), model), DEVICES["rpi3"], BASELINE)
    streamed = DeviceModel(Evaluator(Predictor(NET), model, band_bytes=1 << 20), DEVICES["rpi3"], BASELINE)
    grids = tuple((r, c) for r in range(1, 3) for c in range(1, 3))
    severe, ample = resident.curve([BASELINE + weights_bytes(NET) // 4, BASELINE + 2 * weights_bytes(NET)], grids,
                                   streamed)
    assert severe.layer_by_layer.swap_ins > 10 * severe.streamed.swap_ins  # (file pages may evict a few arena pages)
    assert severe.streamed.plan.weights == "streamed" and severe.best is severe.streamed
    assert severe.speedup > 2.78
    assert ample.streamed.file_reads == ample.streamed.swap_ins == ample.layer_by_layer.swap_ins == 0
