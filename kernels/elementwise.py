"""Activations as compiled scalar functions, and the whole-map layers that combine or rescale maps: residual
add, channel scaling, nearest upsampling, global average, YOLOv3's head. Each writes into a given output
(an arena view) and allocates nothing."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.blas import F32, copy_run, floats_at, row_at
from kernels.expf import exp32
from yolo.network import ACTIVATIONS

ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
LINEAR, LEAKY_CODE, RELU, RELU6, LOGISTIC, TANH, ELU, SELU, SWISH, MISH, HARD_MISH = (
    ACT_CODES[a] for a in ("linear", "leaky", "relu", "relu6", "logistic", "tanh", "elu", "selu", "swish", "mish",
                           "hard_mish"))
F = np.float32
ONE, ZERO, LEAKY = F(1.0), F(0.0), F(0.1)


# Numba's default error model checks every float division for a zero divisor, one branch per element: a
# loop of logistics then ran scalar (0.82 ms for 172k values, 0.066 without). Their divisors are at least one.
@njit(cache=True, nogil=True, error_model="numpy")
def logistic(v):
    return ONE / (ONE + exp32(-v))


@njit(cache=True, nogil=True, error_model="numpy")
def darknet_tanh(v):
    return F(2.0) / (ONE + exp32(F(-2.0) * v)) - ONE


@njit(cache=True, nogil=True)
def activate(v, act):
    """Darknet's activation ``act`` (an ACT_CODES value) of one float32 value, in float32."""
    if act == LEAKY_CODE:
        return v if v > ZERO else LEAKY * v
    if act == RELU:
        return max(v, ZERO)
    if act == RELU6:
        return min(max(v, ZERO), F(6.0))
    if act == LOGISTIC:
        return logistic(v)
    if act == TANH:
        return darknet_tanh(v)
    if act == ELU:
        return v if v >= ZERO else exp32(v) - ONE
    if act == SELU:
        return F(1.0507) * v if v >= ZERO else F(1.0507) * F(1.6732) * (exp32(v) - ONE)
    if act == SWISH:
        return v * logistic(v)
    if act == MISH:  # softplus with threshold 20, then Darknet's tanh
        soft = v if v > F(20.0) else (exp32(v) if v < F(-20.0) else np.log(exp32(v) + ONE))
        return v * darknet_tanh(soft)
    if act == HARD_MISH:
        return v if v > ZERO else (v * v / F(2.0) + v if v > F(-2.0) else ZERO)
    return v


@njit(cache=True, nogil=True)
def shortcut(out, x, other, act):
    """out = activation(x + the first channels of ``other``), Darknet's [shortcut]. Maps whose rows are
    contiguous go run by run (each plane one run when its rows lie end to end in all three): indexing the
    strided maps kept the loop scalar, 87 µs for 16 planes of 52x52."""
    c, h, w = out.shape
    common = min(c, other.shape[0])
    if out.strides[2] != F32 or x.strides[2] != F32 or other.strides[2] != F32:
        for k in range(c):
            for y in range(h):
                for i in range(w):
                    v = x[k, y, i] + other[k, y, i] if k < common else x[k, y, i]
                    out[k, y, i] = activate(v, act)
        return
    planes = out.strides[1] == x.strides[1] == other.strides[1] == w * F32
    rows, n = (1, h * w) if planes else (h, w)
    for k in range(c):
        for y in range(rows):
            dst = floats_at(out.ctypes.data + k * out.strides[0] + y * out.strides[1], n)
            a = floats_at(x.ctypes.data + k * x.strides[0] + y * x.strides[1], n)
            if k < common:
                b = floats_at(other.ctypes.data + k * other.strides[0] + y * other.strides[1], n)
                for i in range(n):
                    dst[i] = a[i] + b[i]
            else:
                copy_run(dst, a)
            if act != LINEAR:
                for i in range(n):
                    dst[i] = activate(dst[i], act)


@njit(cache=True, nogil=True)
def scale_channels(out, scales, x, act):
    """out[c] = activation(x[c] * scales[c]), the product of a squeeze-excitation block."""
    c, h, w = out.shape
    for k in range(c):
        s = scales[k, 0, 0]
        for y in range(h):
            for i in range(w):
                out[k, y, i] = activate(x[k, y, i] * s, act)


@njit(cache=True, nogil=True)
def upsample(out, x, stride, scale, phase_y, phase_x):
    """Nearest-neighbour upsampling by ``stride``, each value times ``scale``. A region whose first row and
    column are not multiples of the stride starts at ``phase_y``, ``phase_x`` within its first input pixel.
    An output row with the same input row as the one above it is a copy of it; where rows are contiguous,
    through contiguous views (288 planes of 13x13 to 26x26, one core: 0.20 ms row by row, 0.07 so)."""
    c, h, w = out.shape
    runs = out.strides[2] == F32 and x.strides[2] == F32
    j, r = phase_x // stride, phase_x % stride  # the input column under output column 0, and where in it
    for k in range(c):
        sy, ry = phase_y // stride, phase_y % stride  # counters, not divisions: each took as long as a row
        for y in range(h):
            repeat = y > 0 and ry > 0  # the input row of the row above
            if runs and repeat:
                copy_run(row_at(out, k, y), row_at(out, k, y - 1))
            elif runs:
                _upsampled_row(row_at(out, k, y), row_at(x, k, sy), stride, scale, j, r)
            elif repeat:
                copy_run(out[k, y], out[k, y - 1])
            else:
                _upsampled_row(out[k, y], x[k, sy], stride, scale, j, r)
            ry += 1
            if ry == stride:
                sy, ry = sy + 1, 0


@njit(cache=True, nogil=True, inline="always")
def _doubled(dst, src, scale):
    """dst[2m] = dst[2m + 1] = scale * src[m] for the whole of ``dst``."""
    w = dst.shape[0]
    for m in range(w // 2):
        v = scale * src[m]
        dst[2 * m] = v
        dst[2 * m + 1] = v
    if w % 2:
        dst[w - 1] = scale * src[w // 2]


@njit(cache=True, nogil=True, inline="always")
def _upsampled_row(dst, src, stride, scale, j, r):
    """One output row of ``upsample`` from its input row, output column 0 at place ``r`` of input column j:
    by 2, each input value stored twice (a loop that vectorizes); else a counter walks the input columns."""
    if stride == 2:
        if r:  # output column 0 is the second half of its input pixel
            dst[0] = scale * src[j]
        _doubled(dst[r:], src[j + r:], scale)
        return
    for i in range(dst.shape[0]):
        dst[i] = scale * src[j]
        r += 1
        if r == stride:
            j, r = j + 1, 0


@njit(cache=True, nogil=True)
def global_avgpool(out, x):
    """out[c, 0, 0] = the mean of x[c], summed in float32 in Darknet's order."""
    c, h, w = x.shape
    for k in range(c):
        total = ZERO
        for y in range(h):
            for i in range(w):
                total += x[k, y, i]
        out[k, 0, 0] = total / F(h * w)


@njit(cache=True, nogil=True)
def yolo(out, x, num, classes, scale, shift):
    """AlexeyAB's [yolo] forward: logistic on x, y, objectness and classes, then x and y times ``scale``
    plus ``shift``; w and h pass through. ``x`` and ``out`` are contiguous and apart; each loop runs over a
    plane end to end, so it vectorizes: element by element, the part chosen inside the loop, Nano COCO's
    26-wide head took 0.18 ms (0.83 before ``logistic`` vectorized), now 0.07."""
    c, h, w = x.shape
    n = h * w
    xs, ys = x.reshape(c, n), out.reshape(c, n)
    per = 5 + classes
    for k in range(num * per):
        e = k % per
        if e < 2:
            for j in range(n):
                ys[k, j] = logistic(xs[k, j]) * scale + shift
        elif e >= 4:
            for j in range(n):
                ys[k, j] = logistic(xs[k, j])
        else:
            ys[k] = xs[k]
