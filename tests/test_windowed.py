"""The direct 3x3 conv through a framed band (``kernels.windowed``): the kernel against the im2col GEMM, which
steps the lowering gives it, and plans that run it against the reference."""
import numpy as np
import pytest

from engine.ir.plan import Plan, parse_groups
from engine.lower.group import Lowering
from engine.lower.program import build_program
from engine.lower.table import (CONV_STEP, DIRECT_RUN, GEMM_RUN, L_WINOGRAD, S_KIND, S_LAYER, S_METHOD, S_POOLED,
                                WINDOWED_RUN, is_windowed)
from engine.memory.predictor import Predictor
from engine.runtime.executor import FusedExecutor
from engine.runtime.reference import run_reference
from kernels.conv import conv_tile, workspace_sizes
from kernels.microgemm import AVX512
from kernels.pool import maxpool_tile
from kernels.windowed import WINDOWED_MIN_WIDTH, windowed_sizes, windowed_tile
from yolo.cfg import load_network
from yolo.params import random_params

f32 = np.float32
FRAMED = WINDOWED_RUN if AVX512 else GEMM_RUN  # its kernel needs AVX-512: without, these convs take the GEMM


def _gemm(x, w2d, mult, offset, top, left, shape):
    """The same conv through ``conv_tile`` (im2col and the GEMM), the whole region in one band."""
    out = np.empty(shape, f32)
    filters, h, w = shape
    rows, block, n_cols, n_acc = workspace_sizes(x.shape[0], 3, filters, h, w, 1 << 24, False, False)
    conv_tile(out, x, top, left, w2d, False, mult, offset, 1, 3, 1, rows, block, True, True, np.empty(n_cols, f32),
              np.empty(n_acc, f32), 0, 1)
    return out


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("pad_top, pad_left, in_h, in_w", [
    (1, 1, 12, 22),   # a whole map, padded all round
    (0, 0, 14, 24),   # a region inside the map: its border is the map's values
    (0, 1, 13, 23),   # the map's left and bottom edges
    (1, 0, 13, 23),   # its top and right edges
])
def test_the_kernel_equals_the_gemm(pooled, parts, pad_top, pad_left, in_h, in_w):
    """Any band size (here 8 to 12 rows: a share's band holds 2 to 12), share and border; weights in either
    layout; a negative multiplier, so that each value is activated before the pool's max."""
    rng = np.random.default_rng(parts)
    channels, filters, shape = 7, 13, (13, 12, 22)
    x = rng.standard_normal((channels, in_h, in_w)).astype(f32)
    w2d = rng.standard_normal((filters, channels * 9)).astype(f32)
    mult, offset = rng.random(filters).astype(f32) - f32(0.5), rng.standard_normal(filters).astype(f32)
    conv = _gemm(x, w2d, mult, offset, pad_top, pad_left, shape)
    expect = conv
    if pooled:
        expect = np.empty((filters, 6, 11), f32)
        maxpool_tile(expect, conv, 2, 2, 0, 0)
    for budget, weights in ((1 << 20, w2d), (22000, np.asfortranarray(w2d)), (18500, w2d)):  # 12, 10, 8 rows
        rows, n_frame, n_band = windowed_sizes(channels, filters, 12, 22, budget, pooled)
        frame, band = np.full(n_frame, np.nan, f32), np.full(n_band, np.nan, f32)
        out = np.full(expect.shape, np.nan, f32)
        for part in range(parts):
            windowed_tile(out, x, pad_top, pad_left, weights, mult, offset, 1, pooled, frame, band, part, parts)
        np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5, err_msg=f"{budget} B, {rows} rows a band")


def test_its_workspaces_hold_whole_windows_and_shrink_with_the_budget():
    rows, frame, band = windowed_sizes(64, 128, 100, 104, 1 << 20, False)
    pitch = 106
    assert (frame + band) * 4 <= 1 << 20 < (frame + band + (64 + 128) * pitch) * 4  # as many rows as fit
    assert frame == 64 * (rows + 4) * pitch and band == 128 * rows * pitch
    assert windowed_sizes(64, 128, 100, 104, 1, True)[0] == 2  # pooled: at least one window's rows
    assert windowed_sizes(64, 128, 7, 104, 1 << 30, False)[0] == 7  # at most the region's


def test_the_lowering_frames_wide_3x3_convs_of_one_band():
    net = load_network("yolov2-tiny.cfg")
    steps = build_program(Plan(net, parse_groups("0-5:4x1:stream,8-8:1x1"))).steps
    convs = steps[steps[:, S_KIND] == CONV_STEP]
    method = {layer: set(convs[convs[:, S_LAYER] == layer, S_METHOD].tolist()) for layer in range(15)}
    assert method[0] == {DIRECT_RUN}  # the picture's three channels: thin
    assert method[2] == method[4] == method[8] == {FRAMED}  # 208-, 104- and 26-wide
    assert set(convs[convs[:, S_LAYER] == 2, S_POOLED].tolist()) == {1}  # with its pool folded in
    assert method[12] == method[13] == {GEMM_RUN}  # 13 wide: the GEMM
    assert method[14] == {GEMM_RUN}  # 1x1
    assert is_windowed(3, 1, 1, 16, WINDOWED_MIN_WIDTH) == AVX512
    assert not is_windowed(3, 1, 1, 16, WINDOWED_MIN_WIDTH - 1)
    assert not is_windowed(3, 2, 1, 16, 208) and not is_windowed(3, 1, 2, 16, 208)  # stride 2, grouped
    for spec, layer in (("8-8:1x2", 8), ("4-4:1x1:none:tile/2", 4)):  # 13 columns a tile; two bands of channels
        steps = build_program(Plan(net, parse_groups(spec))).steps
        assert set(steps[(steps[:, S_KIND] == CONV_STEP) & (steps[:, S_LAYER] == layer), S_METHOD]) == {GEMM_RUN}
    table = Lowering(net).table  # no layer it runs holds Winograd's transformed filters
    assert not table[[2, 4, 6, 8], L_WINOGRAD].any()


@pytest.mark.parametrize("spec", ["none", "0-7:4x1:stream,8-8:1x1", "0-5:3x3:checkerboard", "0-5:4x2:columns@128"])
def test_plans_that_frame_equal_the_reference_and_their_predicted_peak(spec):
    net = load_network("yolov2-tiny.cfg", 224)
    params = random_params(net, 4)
    x = np.random.default_rng(5).random(net.input_shape, dtype=f32)
    plan = Plan(net, parse_groups(spec))
    expect = run_reference(net, params, x).output
    for threads in (1, 2):
        executor = FusedExecutor(plan, params, threads=threads)
        steps = executor.program.steps
        assert (steps[steps[:, S_KIND] == CONV_STEP, S_METHOD] == FRAMED).any()
        run = executor.run(x)
        np.testing.assert_allclose(run.output, expect, rtol=1e-4, atol=1e-4)
        assert run.peak_bytes == Predictor(net).predict(plan).peak_bytes
