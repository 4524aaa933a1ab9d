"""Activations as compiled scalar functions, and the whole-map layers that combine or rescale maps: residual
add, channel scaling, nearest upsampling, global average, YOLOv3's head. Each writes into a given output
(an arena view) and allocates nothing."""
from __future__ import annotations

import numpy as np
from numba import njit

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
    """out = activation(x + the first channels of ``other``), Darknet's [shortcut]."""
    c, h, w = out.shape
    common = min(c, other.shape[0])
    for k in range(c):
        for y in range(h):
            for i in range(w):
                v = x[k, y, i] + other[k, y, i] if k < common else x[k, y, i]
                out[k, y, i] = activate(v, act)


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
    column are not multiples of the stride starts at ``phase_y``, ``phase_x`` within its first input pixel."""
    c, h, w = out.shape
    for k in range(c):
        for y in range(h):
            src, dst = x[k, (phase_y + y) // stride], out[k, y]
            j, r = phase_x // stride, phase_x % stride  # the input column under output column 0, and where in it
            for i in range(w):  # a counter, not a division per value (96 planes of 26x26: 0.12 ms so, now 0.07)
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
