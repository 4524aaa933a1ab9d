"""A conv with its 2x2 stride-2 maxpool folded in: which layers fold, the drivers against the conv and the pool
run apart, and fused plans whose folded maps never exist."""
import numpy as np
import pytest

from engine.ir.plan import Plan, parse_groups
from engine.lower.program import build_program
from engine.lower.table import (B_KIND, B_LAYER, L_SRC2, MAXPOOL_STEP, S_KIND, S_LAYER, S_METHOD, S_POOLED,
                                S_SEGMENT, STRIP_BUFFER, TILE_BUFFER, layer_table, pooled_by_next)
from engine.runtime.executor import FusedExecutor
from engine.runtime.reference import run_reference
from kernels.conv import conv_tile, workspace_sizes
from kernels.direct import thin_tile
from kernels.pool import maxpool_tile
from kernels.pooled import conv_pooled, thin_pooled, winograd_pooled
from kernels.winograd import winograd_sizes, winograd_tile
from kernels.winograd_transforms import transform_filters
from yolo.cfg import load_network
from yolo.params import random_params
from tests.helpers import random_stack

f32 = np.float32


def test_only_a_conv_read_by_nothing_but_its_2x2_stride_2_pool_folds():
    tiny = layer_table(load_network("yolov2-tiny.cfg"))
    assert pooled_by_next(tiny, 0, 5, 0) and pooled_by_next(tiny, 4, 5, 4)
    assert not pooled_by_next(tiny, 4, 4, 4)      # its pool outside the group
    assert not pooled_by_next(tiny, 1, 5, 1)      # a pool
    assert not pooled_by_next(tiny, 10, 12, 10)   # its pool has stride 1
    read = tiny.copy()
    read[3, L_SRC2] = 0                           # a later layer reads the conv's map
    assert not pooled_by_next(read, 0, 5, 0)
    for size, folds in ((10, True), (9, False)):  # the last window of an odd map is half outside
        stack = layer_table(random_stack([("conv", 3, 1, 4), ("maxpool", 2, 2)], size))
        assert pooled_by_next(stack, 0, 1, 0) == folds


def _case(channels, filters, pooled_hw, pad, seed=0):
    rng = np.random.default_rng(seed)
    h, w = 2 * pooled_hw[0], 2 * pooled_hw[1]
    x = rng.standard_normal((channels, h + 2 - 2 * pad, w + 2 - 2 * pad)).astype(f32)  # pad 0: a region inside
    weights = rng.standard_normal((filters, channels, 3, 3)).astype(f32)
    mult, offset = rng.random(filters).astype(f32) - f32(0.5), rng.standard_normal(filters).astype(f32)
    return x, weights, mult, offset, (filters, h, w)


def _pooled_ref(conv_out):
    out = np.empty((conv_out.shape[0], conv_out.shape[1] // 2, conv_out.shape[2] // 2), f32)
    maxpool_tile(out, conv_out, 2, 2, 0, 0)
    return out


@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("pad", [0, 1])
def test_the_drivers_equal_the_conv_then_the_pool(parts, pad):
    """Negative multipliers (batch norm's scale may be): each output activated before the max, not after."""
    x, weights, mult, offset, shape = _case(12, 10, (7, 9), pad)
    w2d = weights.reshape(10, -1)
    conv_out = np.empty(shape, f32)
    budget = 10 * 6 * shape[2] * 4 * 2  # bands of 6 rows: 3, 2 or 1 pooled rows a share
    rows, block, n_cols, n_acc = workspace_sizes(12, 3, 10, shape[1], shape[2], budget, False, False)
    cols, acc = np.empty(n_cols, f32), np.empty(n_acc, f32)
    conv_tile(conv_out, x, pad, pad, w2d, False, mult, offset, 1, 3, 1, rows, block, True, True, cols, acc, 0, 1)
    expect = _pooled_ref(conv_out)
    out = np.full(expect.shape, np.nan, f32)
    for part in range(parts):
        conv_pooled(out, x, pad, pad, w2d, False, mult, offset, 1, 3, 1, rows - rows % 2, block, cols, acc, part, parts)
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)

    u = transform_filters(weights)
    band_rows, band_cols, block, n_v, n_m = winograd_sizes(12, 10, shape[1], shape[2], 10 * 36 * 4 * 8 * 2)
    v, m = np.empty(n_v, f32), np.empty(n_m, f32)
    winograd_tile(conv_out, x, pad, pad, u, mult, offset, 1, band_rows, band_cols, block, v, m, 0, 1)
    expect, out[:] = _pooled_ref(conv_out), np.nan
    band = np.empty(10 * band_rows * 4 * 5, f32)  # whole tiles: 18 columns in 5
    for part in range(parts):
        winograd_pooled(out, x, pad, pad, u, mult, offset, 1, band_rows, band_cols, block, v, m, band, part, parts)
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)

    thin = weights[:, :3].reshape(10, -1).copy()
    thin_tile(conv_out, x[:3], pad, pad, thin, mult, offset, 1, 1, True, True, 0, 1)
    expect, out[:] = _pooled_ref(conv_out), np.nan
    band = np.empty(10 * 6 * shape[2], f32)
    for part in range(parts):
        thin_pooled(out, x[:3], pad, pad, thin, mult, offset, 1, 1, 6, band, part, parts)
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", ["0-5:6x1:stream", "0-5:3x3:checkerboard", "0-5:4x2:columns",
                                  "0-5:2x2:none@64"])  # at 64 KiB the GEMM: bands too small for Winograd
def test_folded_plans_equal_the_reference_and_never_hold_the_conv_maps(spec):
    net = load_network("yolov2-tiny.cfg", 160)
    params = random_params(net, 1)
    x = np.random.default_rng(2).random(net.input_shape, dtype=f32)
    plan = Plan(net, parse_groups(spec))
    program = build_program(plan)
    steps, buffers = program.steps, program.buffers
    group = steps[steps[:, S_SEGMENT] == 0]
    assert not (group[:, S_KIND] == MAXPOOL_STEP).any()
    assert set(group[group[:, S_POOLED] == 1, S_LAYER].tolist()) == {0, 2, 4}
    held = np.isin(buffers[:, B_KIND], (TILE_BUFFER, STRIP_BUFFER))
    assert not np.isin(buffers[held, B_LAYER], (0, 2, 4)).any()
    if spec.endswith("@64"):
        assert set(group[group[:, S_LAYER] > 0, S_METHOD].tolist()) == {0}
    expect = run_reference(net, params, x).output
    for threads in (1, 2):
        np.testing.assert_allclose(FusedExecutor(plan, params, threads=threads).run(x).output, expect, rtol=1e-4,
                                   atol=1e-4)
