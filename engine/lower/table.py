"""Column layouts of the lowered arrays, and the layer table the compiled lowering reads.

Everything downstream of a plan reads these integer tables: the executor, the timeline, the planner, the
predictor, the cost model and the paging model. Columns are named here once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32
from kernels.conv import CACHED_WEIGHTS
from kernels.winograd import POSITIONS, band_tiles, winograd_sizes
from yolo.network import Conv, MaxPool, Network, Route, Shortcut, Upsample

# --- the layer table: one row per network layer ------------------------------------------------------
(L_KIND, L_C_IN, L_C_OUT, L_SIZE, L_STRIDE, L_LEAD, L_IN_H, L_IN_W, L_OUT_H, L_OUT_W, L_BN, L_GROUPS,
 L_SRC2, L_PART, L_WINOGRAD) = range(15)
LAYER_COLUMNS = 15
# L_KIND of the layers a group may tile; 0 for every other layer. A shortcut and a two-source route read a
# second map (L_SRC2: the Darknet index of the layer read besides the previous one; -1 for other layers) at
# the region they write; an upsample's region reads the input region under it. A route's L_GROUPS and
# L_PART are its channel split (groups, group_id). L_WINOGRAD: the conv's filters are held transformed
# for Winograd's F(4x4, 3x3) where they are resident, and its steps whose bands hold enough tiles run it
# (``winograd_layer``; set by the lowering, which knows the workspace budget).
TILE_CONV, TILE_MAXPOOL, TILE_SHORTCUT, TILE_UPSAMPLE, TILE_ROUTE = 1, 2, 3, 4, 5
TILE_KINDS = {Conv: TILE_CONV, MaxPool: TILE_MAXPOOL, Shortcut: TILE_SHORTCUT, Upsample: TILE_UPSAMPLE,
              Route: TILE_ROUTE}


def leading_pad(layer) -> int:
    """Virtual rows/cols before the map at which the layer's window starts (Darknet's offsets)."""
    if isinstance(layer, Conv):
        return layer.padding
    if isinstance(layer, MaxPool):
        return layer.padding // 2
    return 0


def layer_table(network: Network) -> np.ndarray:
    """(layers, LAYER_COLUMNS) int64: what the compiled lowering needs of each layer."""
    rows = []
    for layer in network.layers:
        c_in, in_h, in_w = network.shape_of(layer.inputs[0])  # a route's first source
        c_out, out_h, out_w = layer.out_shape
        rows.append((TILE_KINDS.get(type(layer), 0), c_in, c_out, getattr(layer, "size", 1),
                     getattr(layer, "stride", 1), leading_pad(layer), in_h, in_w, out_h, out_w,
                     int(getattr(layer, "batch_normalize", False)), getattr(layer, "groups", 1),
                     layer.inputs[1] if isinstance(layer, (Shortcut, Route)) and len(layer.inputs) == 2 else -1,
                     getattr(layer, "group_id", 0), 0))
    return np.array(rows, np.int64).reshape(len(rows), LAYER_COLUMNS)


GEMM_RUN, WINOGRAD_RUN, WINOGRAD_HELD, DIRECT_RUN = 0, 1, 2, 3  # S_METHOD values
THIN_CHANNELS = 4  # at most this many input channels: a 3x3 conv runs directly (``kernels.direct.thin_tile``)
WINOGRAD_MIN_CHANNELS = 8  # fewer input channels make each of the 36 GEMMs too thin to gain
WINOGRAD_MIN_TILES = 12    # 4x4 tiles per band: below, the 36 GEMMs ran no faster than one
WINOGRAD_MIN_BLOCK = 16    # channels per block (or all): a band too large for the budget leaves fewer, and
# its GEMMs as thin (yolov2's 208-wide layer at 512 KiB: one channel, 2.2x the time of F(2x2, 3x3))


def winograd_layer(layer, budget_bytes: int) -> bool:
    """Whether a conv may run by Winograd's F(4x4, 3x3) (where its weights are resident): 3x3, stride 1, one
    group, enough input channels, transformed filters (4x the bytes) that stay in the cache, and bands of the
    whole map wide enough under the workspace budget. Filters past CACHED_WEIGHTS come from memory again for
    every band, and hold 4x their bytes besides: yolov2-tiny's 13-wide layers, which budgets of 2 MiB and more
    let through, ran 1.5-2.8x the GEMM's time, and at 4 MiB the network held 170 MB more. On yolov2-416 at
    1 MiB the 208- to 52-wide layers run it; the 26- and 13-wide ones stay on the GEMM."""
    if not isinstance(layer, Conv) or (layer.size, layer.stride, layer.groups) != (3, 1, 1):
        return False
    channels, out_h, out_w = layer.in_shape[0], layer.out_shape[1], layer.out_shape[2]
    return (channels >= WINOGRAD_MIN_CHANNELS and POSITIONS * channels * layer.filters * F32 <= CACHED_WEIGHTS
            and winograd_gains(channels, layer.filters, out_h, out_w, budget_bytes))


@njit(cache=True)
def winograd_gains(channels, filters, out_h, out_w, budget_bytes):
    """Whether a conv output region's Winograd bands hold enough tiles and channels under the budget (the
    lowering asks it of each step of a ``winograd_layer``, which asks it of the whole map)."""
    rows, cols, block = winograd_sizes(channels, filters, out_h, out_w, budget_bytes)[:3]
    return band_tiles(rows, cols, out_h, out_w) >= WINOGRAD_MIN_TILES and block >= min(channels, WINOGRAD_MIN_BLOCK)


@njit(cache=True)
def pooled_by_next(chain, j, last, layer):
    """Whether chain row j (Darknet layer ``layer``), a conv, has the 2x2 stride-2 maxpool after it (row j + 1,
    no later than ``last``) folded into its steps: one group, not depthwise, an even output (the windows tile
    it exactly), and no later row of the chain reading its map as a second source."""
    if j >= last or chain[j, L_KIND] != TILE_CONV or chain[j, L_GROUPS] != 1:
        return False
    pool = chain[j + 1]
    if pool[L_KIND] != TILE_MAXPOOL or pool[L_SIZE] != 2 or pool[L_STRIDE] != 2 or pool[L_LEAD] != 0:
        return False
    if chain[j, L_OUT_H] % 2 or chain[j, L_OUT_W] % 2:
        return False
    for k in range(j + 2, last + 1):
        if chain[k, L_SRC2] == layer:
            return False
    return True


POOL_SPLIT = 1 << 14  # outputs from which a maxpool or input step splits between threads, and a step of a pair
# runs beside its twin: below, handing a share to a helper costs more than the share. With helpers that poll
# (``engine.runtime.workers``), yolov2-tiny's default plan ran its pools and input strips of 16-64K outputs split
# in 0.74x their time on one thread (one process, in turns), 26.16 -> 25.90 ms a run; on a machine whose cores
# were slow to read each other's writes, 32.8 -> 31.9 ms.

# --- steps: one row per step a program performs -------------------------------------------------------
(S_KIND, S_LAYER, S_SRC, S_SY0, S_SY1, S_SX0, S_SX1, S_DST, S_DY0, S_DY1, S_DX0, S_DX1, S_DC0, S_PAD_TOP,
 S_PAD_LEFT, S_TILE, S_SCRATCH, S_BAND_ROWS, S_BLOCK, S_CHANNELS, S_MACS, S_SEGMENT, S_WEIGHTS, S_C0,
 S_C1, S_SRC2, S_S2Y0, S_S2X0, S_METHOD, S_BAND_COLS, S_PAIRED, S_POOLED) = range(32)
STEP_COLUMNS = 32
# S_KIND codes
(INPUT_STEP, CONV_STEP, MAXPOOL_STEP, COPY_STEP, REORG_STEP, REGION_STEP, LOAD_STEP, SHORTCUT_STEP, SCALE_STEP,
 UPSAMPLE_STEP, AVGPOOL_STEP, YOLO_STEP) = range(12)
STEP_KINDS = ("input", "conv", "maxpool", "copy", "reorg", "region", "load", "shortcut", "scale", "upsample",
              "avgpool", "yolo")
# S_SCRATCH: the id of a conv step's packed-input buffer; its GEMM result follows it (empty when the GEMM
# multiplies into the output's rows, which lie end to end there), then the band its pool reads (S_POOLED).
# S_POOLED: 1 on a conv step whose 2x2 stride-2 maxpool (the next layer) is folded into it (``pooled_by_next``):
# its destination region is the pool's, its source region the conv's for twice that, and it computes the conv
# band by band into its third scratch buffer, each band pooled from there; the conv's map never exists.
# S_METHOD: how a conv step computes. GEMM_RUN: im2col bands times the filters (0 for every other step);
# WINOGRAD_RUN: Winograd's F(4x4, 3x3) (its scratch buffers then hold transformed input and the 36 GEMMs'
# results, S_BAND_ROWS, S_BAND_COLS and S_BLOCK as ``winograd_sizes`` gives them); WINOGRAD_HELD: the GEMM,
# though its layer's filters are held transformed (as well as plain) because other steps' bands hold enough tiles;
# DIRECT_RUN: directly, without a workspace (a depthwise conv, or a thin one: ``is_direct``).
# S_CHANNELS: the channels the step reads (conv: input channels; copies: channels copied).
# S_DC0: the destination channel a copy starts at (a route concatenates its sources this way); a copy with
# S_C0 < S_C1 takes only those channels of its source (a route's channel split).
# S_SRC2: a step's second source (a shortcut's added map, scale_channels' scaled map), else -1; S_S2Y0,
# S_S2X0: where in it the step's region starts (its extent is the destination's).
# S_PAIRED: 1 on the first step of a pair, which runs at once with the next step, one on each of two threads
# (``columns`` reuse: two tiles side by side, step by step; ``engine.lower.walk.pair_up``).
# S_WEIGHTS: a conv step's weights buffer (-1: the weights are resident, outside the arena); S_C0, S_C1:
# the band of input channels a conv or load step covers (all filters, those channels of each). A conv
# step whose band starts at 0 writes its output region, later bands add to it, the band ending at the
# last channel applies the epilogue. A load step fills its destination (a weights buffer) with the band
# of every filter, preceded, for the last band, by the layer's vectors folded into the epilogue.

# --- buffers: one row per buffer a program needs ------------------------------------------------------
B_BYTES, B_KIND, B_FIRST, B_LAST, B_C, B_H, B_W, B_SEGMENT, B_LAYER, B_Y0, B_X0, B_SIDE = range(12)
BUFFER_COLUMNS = 12
INPUT_BUFFER, MAP_BUFFER, TILE_BUFFER, STRIP_BUFFER, SCRATCH_BUFFER, WEIGHTS_BUFFER = range(6)
BUFFER_KINDS = ("input", "map", "tile", "strip", "scratch", "weights")


@njit(cache=True)
def is_depthwise(layers, j):
    """A conv with one filter per input channel: computed directly, without a workspace."""
    return layers[j, L_GROUPS] > 1 and layers[j, L_GROUPS] == layers[j, L_C_IN] == layers[j, L_C_OUT]


@njit(cache=True)
def is_direct(layers, j):
    """A conv computed directly, without a workspace: depthwise, or 3x3 (stride 1 or 2) over at most
    THIN_CHANNELS input channels in one group (the picture's), whose GEMM would be too thin to run fast."""
    thin = (layers[j, L_GROUPS] == 1 and layers[j, L_C_IN] <= THIN_CHANNELS and layers[j, L_SIZE] == 3
            and (layers[j, L_STRIDE] == 1 or layers[j, L_STRIDE] == 2))
    return thin or is_depthwise(layers, j)


@njit(cache=True)
def vector_floats(batch_normalize, filters):
    """Floats a weights buffer holds before its filters: biases, scales, mean and variance (folded in place
    into the epilogue's multiplier and offset), or biases and the multipliers (ones) without batch norm."""
    return (4 if batch_normalize else 2) * filters
# a group's own program numbers its buffers locally: 0 is its input map, 1 its output map (both owned by
# the plan), 2.. its own tiles, strips and workspaces. Scratch buffers are flat: (C=elements, H=W=1).
# B_LAYER, B_Y0, B_X0: whose output map a tile or strip holds a piece of, and where that piece starts.
GROUP_SOURCE, GROUP_OUTPUT, GROUP_OWN = 0, 1, 2
# B_SIDE: which thread of a pair touches the buffer (``columns`` reuse): 1 the first step's, 2 the second's, 0 any.
# Each side is laid out in a region of its own (``engine.memory.planner.own_layout``), so that a thread never
# writes memory the other touched last.
