"""The network input, any region of it, computed from the decoded picture: Darknet's resize_image
(separable bilinear, corners aligned, columns first, float32) placed on a grey canvas (letterbox).

Every pixel depends only on at most four picture pixels, so a tile's input region is produced on its own,
and the values are those of the whole input, bit for bit: one kernel serves both.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, row_at

GREY = np.float32(0.5)


@njit(cache=True, inline="always")
def _column_pass(picture, c, row, rx, w_scale, fitted_w, divisor):
    """The picture's row ``row`` interpolated at fitted column ``rx`` (Darknet's first, horizontal pass)."""
    iw = picture.shape[2]
    if rx == fitted_w - 1 or iw == 1:  # the last column copies the last picture column
        return np.float32(picture[c, row, iw - 1]) / divisor
    sx = np.float32(rx) * w_scale
    ix = np.int64(sx)
    dx = sx - np.float32(ix)
    right = min(ix + 1, iw - 1)
    return ((np.float32(1) - dx) * (np.float32(picture[c, row, ix]) / divisor)
            + dx * (np.float32(picture[c, row, right]) / divisor))


@njit(cache=True, nogil=True)
def fit_region(picture, divisor, fitted_w, fitted_h, left, top, y0, x0, out):
    """out[c, y, x] = the network input at (y0 + y, x0 + x): the picture (C, H, W; values divided by
    ``divisor``) resized to fitted_w x fitted_h and placed with its corner at (top, left), grey elsewhere."""
    ih, iw = picture.shape[1], picture.shape[2]
    if fitted_w == iw and fitted_h == ih:  # unscaled: the taps weigh 1 and 0, so the values are the pixels
        return _place_region(picture, divisor, left, top, y0, x0, out)
    w_scale = np.float32(iw - 1) / np.float32(fitted_w - 1) if fitted_w > 1 else np.float32(0)
    h_scale = np.float32(ih - 1) / np.float32(fitted_h - 1) if fitted_h > 1 else np.float32(0)
    for c in range(out.shape[0]):
        for y in range(out.shape[1]):
            ry = y0 + y - top
            if ry < 0 or ry >= fitted_h:
                out[c, y, :] = GREY
                continue
            sy = np.float32(ry) * h_scale
            iy = np.int64(sy)
            dy = sy - np.float32(iy)
            second = ry != fitted_h - 1 and ih > 1  # Darknet skips the second tap on the last row
            below = min(iy + 1, ih - 1)
            for x in range(out.shape[2]):
                rx = x0 + x - left
                if rx < 0 or rx >= fitted_w:
                    out[c, y, x] = GREY
                    continue
                value = (np.float32(1) - dy) * _column_pass(picture, c, iy, rx, w_scale, fitted_w, divisor)
                if second:
                    value = value + dy * _column_pass(picture, c, below, rx, w_scale, fitted_w, divisor)
                out[c, y, x] = value


@njit(cache=True, nogil=True)
def _place_region(picture, divisor, left, top, y0, x0, out):
    """``fit_region`` of a picture placed at its own size: each row a copy (divided), grey around it."""
    iw = picture.shape[2]
    width = out.shape[2]
    first = min(width, max(0, left - x0))         # the output columns over the picture
    stop = max(first, min(width, left + iw - x0))
    for c in range(out.shape[0]):
        for y in range(out.shape[1]):
            if out.strides[2] == F32:
                _place_row(row_at(out, c, y), picture, divisor, c, y0 + y - top, first, stop, x0 - left)
            else:
                _place_row(out[c, y], picture, divisor, c, y0 + y - top, first, stop, x0 - left)


@njit(cache=True, inline="always")
def _place_row(row, picture, divisor, c, ry, first, stop, shift):
    """One row of ``_place_region``: grey, picture row ``ry``'s columns [first + shift, stop + shift)
    (divided), grey. Element loops: a slice assignment checks its operands' overlap at every row."""
    if ry < 0 or ry >= picture.shape[1]:
        first = stop = row.shape[0]
    for x in range(first):
        row[x] = GREY
    source, dest = picture[c, max(0, min(ry, picture.shape[1] - 1)), first + shift:stop + shift], row[first:stop]
    if divisor == 1:  # loops indexed from 0: an index offset by a variable may be negative, checked every time
        for x in range(stop - first):
            dest[x] = source[x]
    else:
        for x in range(stop - first):
            dest[x] = np.float32(source[x]) / divisor
    for x in range(stop, row.shape[0]):
        row[x] = GREY
