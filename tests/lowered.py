"""Reading lowered group programs in absolute coordinates, for the tests' invariants."""
import numpy as np

from engine.lower.table import (B_C, B_H, B_KIND, B_LAYER, B_W, B_X0, B_Y0, CONV_STEP, GROUP_OUTPUT, GROUP_SOURCE,
                                MAXPOOL_STEP, S_DST, S_DY0, S_KIND, S_LAYER, S_PAD_LEFT, S_PAD_TOP, S_SRC, S_SY0,
                                S_TILE, SHORTCUT_STEP, UPSAMPLE_STEP)

COMPUTES = (CONV_STEP, MAXPOOL_STEP, SHORTCUT_STEP, UPSAMPLE_STEP)


def origin(program, buffer):
    """(layer whose map the buffer holds a piece of, y0, x0); the group's input and output maps at 0."""
    if buffer in (GROUP_SOURCE, GROUP_OUTPUT):
        return None, 0, 0
    b = program.buffers[buffer]
    return int(b[B_LAYER]), int(b[B_Y0]), int(b[B_X0])


def absolute(program, buffer, box):
    _, oy, ox = origin(program, buffer)
    y0, y1, x0, x1 = (int(v) for v in box)
    return y0 + oy, y1 + oy, x0 + ox, x1 + ox


def dest_box(program, s):
    row = program.steps[s]
    return absolute(program, row[S_DST], row[S_DY0:S_DY0 + 4])


def source_box(program, s):
    row = program.steps[s]
    return absolute(program, row[S_SRC], row[S_SY0:S_SY0 + 4])


def computes(program, layer=None, tile=None):
    """Indices of the compute steps (of one layer, of one tile)."""
    st = program.steps
    keep = np.isin(st[:, S_KIND], COMPUTES)
    if layer is not None:
        keep &= st[:, S_LAYER] == layer
    if tile is not None:
        keep &= st[:, S_TILE] == tile
    return np.flatnonzero(keep)


def coverage(shape_hw, boxes):
    count = np.zeros(shape_hw, dtype=np.int32)
    for y0, y1, x0, x1 in boxes:
        count[y0:y1, x0:x1] += 1
    return count


def buffer_shape(program, buffer):
    b = program.buffers[buffer]
    return int(b[B_C]), int(b[B_H]), int(b[B_W])


def pads(program, s):
    row = program.steps[s]
    return int(row[S_PAD_TOP]), int(row[S_PAD_LEFT])


def kind(program, buffer):
    return int(program.buffers[buffer, B_KIND])
