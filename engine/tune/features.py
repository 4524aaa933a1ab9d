"""The cost model's work counts of a step, read from its row of a lowered program (compiled: the search
counts tens of thousands of groups, calibration every step of a few plans)."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.conv import by_filters
from kernels.winograd import band_grid, winograd_by_filters
from kernels.winograd_transforms import POSITIONS, tiles_across
from engine.lower.table import (CONV_STEP, L_C_OUT, L_GROUPS, L_OUT_W, L_SIZE, L_STRIDE, LOAD_STEP, MAXPOOL_STEP,
                                S_BAND_COLS, S_BAND_ROWS, S_BLOCK, S_CHANNELS, S_DX0, S_DY0, S_KIND, S_LAYER, S_MACS,
                                S_METHOD, S_PAIRED, S_POOLED, DIRECT_RUN, WINOGRAD_RUN)

FEATURES = ("macs", "gemm_calls", "weights_streamed", "packed", "written", "conv_steps", "pooled", "copied",
            "other_steps", "conv_rows", "loaded", "loads", "depthwise_macs", "winograd_macs", "transformed",
            "thin_macs", "packed_whole", "transform_rows", "thin_rows", "pooled_rows")
FEATURES_VERSION = 38  # bumped whenever what a feature counts or how steps run changes: cached fits are redone
# of a pair that runs at once, the counts each thread has of its own: GEMM calls, weights read, steps (the pair
# counts the larger); the others are work, which adds up as it does when the threads split a step
CONCURRENT = np.array([name in ("gemm_calls", "weights_streamed", "conv_steps", "other_steps") for name in FEATURES])


@njit(cache=True)
def step_features(steps, layers, workers, out):
    """out[s] = the work counts of step s, in FEATURES' order, for a run on ``workers`` threads (the weights
    each thread reads: all of them when threads share a step's rows, its slice when they share filters). A
    pair (``S_PAIRED``) on more than one thread is counted at its first step, each of its steps as one
    thread's, merged as CONCURRENT says."""
    out[:] = 0.0
    for s in range(steps.shape[0]):
        row = steps[s]
        paired = steps[s, S_PAIRED] or (s > 0 and steps[s - 1, S_PAIRED])
        threads = 1 if paired else workers  # a step of a pair runs whole, on one thread
        oh, ow = row[S_DY0 + 1] - row[S_DY0], row[S_DX0 + 1] - row[S_DX0]
        kind, c = row[S_KIND], row[S_CHANNELS]
        if row[S_POOLED]:  # the conv's region is twice the pooled one, and its pool's work is its own
            oh, ow = 2 * oh, 2 * ow
            out[s, 6] = layers[row[S_LAYER], L_C_OUT] * oh * ow
            out[s, 19] = layers[row[S_LAYER], L_C_OUT] * oh // 2
        if kind == CONV_STEP and row[S_METHOD] == DIRECT_RUN:  # no packing, no GEMM
            out[s, 12 if layers[row[S_LAYER], L_GROUPS] > 1 else 15] = row[S_MACS]
            out[s, 18] = layers[row[S_LAYER], L_C_OUT] * c * oh  # rows of windows summed: narrow tiles, more
            out[s, 4] = layers[row[S_LAYER], L_C_OUT] * oh * ow
            out[s, 5] = 1
        elif kind == CONV_STEP and row[S_METHOD] == WINOGRAD_RUN:  # 36 GEMMs per band and channel block, two transforms
            filters, tile_rows = layers[row[S_LAYER], L_C_OUT], tiles_across(oh)
            tiles = tile_rows * tiles_across(ow)
            rows_b, cols_b, across, bands = band_grid(row[S_BAND_ROWS], row[S_BAND_COLS], oh, ow, 1)
            per_band = rows_b * cols_b  # tiles of a band
            runs = tile_rows * across  # runs of tiles along a tile row, one per band side by side
            out[s, 1] = POSITIONS * bands * -(-c // row[S_BLOCK])
            out[s, 2] = POSITIONS * filters * c * bands
            out[s, 13] = POSITIONS * filters * c * tiles
            out[s, 14] = POSITIONS * (c + filters) * tiles
            out[s, 17] = (c + filters) * runs  # runs of tiles transformed: narrow tiles have more
            if winograd_by_filters(filters, per_band, row[S_BLOCK], threads):
                out[s, 2] /= threads
                out[s, 14] += (threads - 1) * POSITIONS * c * tiles  # each thread transforms the input
                out[s, 17] += (threads - 1) * c * runs
            out[s, 4] = filters * oh * ow
            out[s, 5] = 1
        elif kind == CONV_STEP:
            filters, kk = layers[row[S_LAYER], L_C_OUT], layers[row[S_LAYER], L_SIZE] ** 2
            bands = -(-oh // row[S_BAND_ROWS])
            out[s, 0] = row[S_MACS]
            out[s, 1] = bands * -(-c // row[S_BLOCK])
            out[s, 2] = filters * (c // layers[row[S_LAYER], L_GROUPS]) * kk * bands
            if layers[row[S_LAYER], L_GROUPS] == 1 and by_filters(filters, min(row[S_BAND_ROWS], oh) * ow,
                                                                 row[S_BLOCK], threads):
                out[s, 2] /= threads
            if ow < layers[row[S_LAYER], L_OUT_W] or layers[row[S_LAYER], L_STRIDE] > 1:  # packed row by row
                out[s, 3] = c * kk * oh * ow
            elif kk > 1:  # a region as wide as the map: each channel's plane packed as one run
                out[s, 16] = c * kk * oh * ow
            # (a 1x1 conv over whole rows multiplies its input in place: nothing packed)
            out[s, 4] = filters * oh * ow
            out[s, 5] = 1
            out[s, 9] = (c * kk + filters) * oh  # rows packed and written: narrow tiles have more, shorter ones
        elif kind == MAXPOOL_STEP:
            out[s, 6] = c * oh * ow * layers[row[S_LAYER], L_SIZE] ** 2
            out[s, 19] = c * oh
            out[s, 8] = 1
        elif kind == LOAD_STEP:  # weights read from the page cache into the arena (vectors not counted)
            out[s, 10] = c * layers[row[S_LAYER], L_C_OUT] * layers[row[S_LAYER], L_SIZE] ** 2
            out[s, 11] = 1
        else:  # copies (strips saved or filled, route sources), the input, reorg, region
            out[s, 7] = c * oh * ow
            out[s, 8] = 1
    for s in range(steps.shape[0] - 1):  # a pair on two threads: counted whole at its first step
        if steps[s, S_PAIRED] and workers > 1:
            for f in range(out.shape[1]):
                twin = out[s + 1, f]
                out[s, f] = max(out[s, f], twin) if CONCURRENT[f] else out[s, f] + twin
            out[s + 1] = 0.0


@njit(cache=True)
def total_features(steps, layers, workers):
    out = np.empty((steps.shape[0], len(FEATURES)))
    step_features(steps, layers, workers, out)
    return out.sum(axis=0)


def features_of(steps: np.ndarray, layers: np.ndarray, workers: int) -> np.ndarray:
    """(steps, FEATURES) work counts of each step on ``workers`` threads."""
    out = np.empty((len(steps), len(FEATURES)))
    step_features(steps, layers, workers, out)
    return out
