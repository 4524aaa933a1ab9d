"""NumPy layer operations with Darknet's exact semantics; Python loops only over kernel offsets.

Each function takes and returns CHW float32 arrays. They are the ground truth the fused kernels are
checked against, so clarity beats cleverness here, but convolutions still go through BLAS.
"""
from __future__ import annotations

import numpy as np

from yolo.params import ConvParams, bn_divisor

LEAKY_SLOPE = np.float32(0.1)


def im2col(x: np.ndarray, size: int, stride: int, padding: int, out_hw: tuple[int, int]) -> np.ndarray:
    """(C, H, W) -> (C*size*size, OH*OW), rows ordered (c, ky, kx) like Darknet's filters."""
    c, h, w = x.shape
    oh, ow = out_hw
    need_h, need_w = (oh - 1) * stride + size, (ow - 1) * stride + size
    padded = np.zeros((c, max(need_h, h + padding), max(need_w, w + padding)), np.float32)
    padded[:, padding:padding + h, padding:padding + w] = x
    cols = np.empty((c, size, size, oh, ow), np.float32)
    for ky in range(size):
        for kx in range(size):
            cols[:, ky, kx] = padded[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
    return cols.reshape(c * size * size, oh * ow)


def conv2d(x: np.ndarray, weights: np.ndarray, stride: int, padding: int, groups: int = 1) -> np.ndarray:
    """Plain convolution (no bias): (C,H,W) * (N, C/g, k, k) -> (N, OH, OW)."""
    c, h, w = x.shape
    n, cg, k, _ = weights.shape
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = np.empty((n, oh * ow), np.float32)
    ng = n // groups
    for g in range(groups):
        xg = x[g * cg:(g + 1) * cg]
        if k == 1 and stride == 1 and padding == 0:
            cols = xg.reshape(cg, h * w)
        else:
            cols = im2col(xg, k, stride, padding, (oh, ow))
        np.matmul(weights[g * ng:(g + 1) * ng].reshape(ng, -1), cols, out=out[g * ng:(g + 1) * ng])
    return out.reshape(n, oh, ow)


def batch_norm(y: np.ndarray, p: ConvParams, rule: str = "pjreddie") -> np.ndarray:
    """Darknet's inference BN, in its order: subtract mean, divide (by the fork's divisor), scale."""
    y -= p.rolling_mean[:, None, None]
    y /= bn_divisor(p.rolling_variance, rule)[:, None, None]
    y *= p.scales[:, None, None]
    return y


def activate(y: np.ndarray, activation: str) -> np.ndarray:
    """Darknet's activations, in float32; in place where possible. max(y, 0.1*y) is exactly Darknet's leaky
    (y if y > 0 else 0.1*y). tanh is Darknet's 2/(1 + e^-2x) - 1, which mish uses too."""
    f = np.float32
    if activation == "leaky":
        return np.maximum(y, y * LEAKY_SLOPE, out=y)
    if activation == "relu":
        return np.maximum(y, f(0), out=y)
    if activation == "relu6":
        return np.minimum(np.maximum(y, f(0), out=y), f(6), out=y)
    if activation == "logistic":
        return logistic(y)
    if activation == "tanh":
        return darknet_tanh(y)
    if activation == "elu":
        return np.where(y >= 0, y, np.exp(y) - f(1)).astype(np.float32)
    if activation == "selu":
        return np.where(y >= 0, f(1.0507) * y, f(1.0507) * f(1.6732) * (np.exp(y) - f(1))).astype(np.float32)
    if activation == "swish":
        return (y * logistic(y)).astype(np.float32)
    if activation == "mish":
        return (y * darknet_tanh(softplus(y))).astype(np.float32)
    if activation == "hard_mish":
        return np.where(y > 0, y, np.where(y > -2, y * y / f(2) + y, f(0))).astype(np.float32)
    return y


def logistic(y: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-y) = inf below about -88: the value is 0, as in C
        return (np.float32(1) / (np.float32(1) + np.exp(-y))).astype(np.float32)


def darknet_tanh(y: np.ndarray) -> np.ndarray:
    return (np.float32(2) / (np.float32(1) + np.exp(np.float32(-2) * y)) - np.float32(1)).astype(np.float32)


def softplus(y: np.ndarray, threshold: float = 20.0) -> np.ndarray:
    """Darknet's softplus with mish's threshold: x above it, e^x below its negative, else log(e^x + 1)."""
    with np.errstate(over="ignore"):
        middle = np.log(np.exp(y) + np.float32(1))
    return np.where(y > threshold, y, np.where(y < -threshold, np.exp(y), middle)).astype(np.float32)


def conv_layer(x: np.ndarray, p: ConvParams, stride: int, padding: int, groups: int, activation: str,
               bn_rule: str = "pjreddie") -> np.ndarray:
    y = conv2d(x, p.weights, stride, padding, groups)
    if p.batch_normalize:
        batch_norm(y, p, bn_rule)
    y += p.biases[:, None, None]
    return activate(y, activation)


def maxpool(x: np.ndarray, size: int, stride: int, padding: int) -> np.ndarray:
    """Darknet's maxpool: window offset -padding//2; positions outside the map never win (-inf)."""
    c, h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = padding // 2
    ph, pw = (oh - 1) * stride + size, (ow - 1) * stride + size
    padded = np.full((c, ph, pw), -np.inf, np.float32)
    rows, cols = min(h, ph - off), min(w, pw - off)
    padded[:, off:off + rows, off:off + cols] = x[:, :rows, :cols]
    out = np.full((c, oh, ow), -np.inf, np.float32)
    for ky in range(size):
        for kx in range(size):
            np.maximum(out, padded[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride], out=out)
    return out


def avgpool(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return (x.reshape(c, h * w).sum(axis=1, dtype=np.float32) / np.float32(h * w)).reshape(c, 1, 1)


def reorg(x: np.ndarray, stride: int) -> np.ndarray:
    """Darknet's reorg_cpu with forward=0, literally: the input is read as if it were (C/s^2, H*s, W*s).

    This is not space-to-depth; it reproduces Darknet's flat index arithmetic so yolov2 matches.
    """
    c, h, w = x.shape
    out_c = c // (stride * stride)
    k = np.arange(c)[:, None, None]
    j = np.arange(h)[None, :, None]
    i = np.arange(w)[None, None, :]
    c2, offset = k % out_c, k // out_c
    w2 = i * stride + offset % stride
    h2 = j * stride + offset // stride
    src = w2 + w * stride * (h2 + h * stride * c2)
    return x.reshape(-1)[src].reshape(c * stride * stride, h // stride, w // stride)


def softmax(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Darknet's softmax: subtract the max, exponentiate, divide by the sum."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def region(x: np.ndarray, num: int, coords: int, classes: int, use_softmax: bool) -> np.ndarray:
    """Darknet's [region] forward: logistic on x, y and objectness, softmax over classes per cell."""
    c, h, w = x.shape
    out = x.reshape(num, coords + 1 + classes, h, w).copy()
    out[:, 0:2] = logistic(out[:, 0:2])
    out[:, coords] = logistic(out[:, coords])
    if use_softmax:
        out[:, coords + 1:] = softmax(out[:, coords + 1:], axis=1)
    else:
        out[:, coords + 1:] = logistic(out[:, coords + 1:])
    return out.reshape(c, h, w)


def route(inputs: list[np.ndarray], groups: int = 1, group_id: int = 0) -> np.ndarray:
    """Concatenated channels; with ``groups``, part ``group_id`` of each source's channels."""
    parts = [x[x.shape[0] // groups * group_id:x.shape[0] // groups * (group_id + 1)] for x in inputs]
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0].copy()


def shortcut(x: np.ndarray, other: np.ndarray, activation: str) -> np.ndarray:
    """x plus the first channels of ``other`` (as many as both have), then the activation."""
    out = x.copy()
    common = min(x.shape[0], other.shape[0])
    out[:common] += other[:common]
    return activate(out, activation)


def scale_channels(scales: np.ndarray, x: np.ndarray, activation: str) -> np.ndarray:
    """Each channel of ``x`` times its scale ((C, 1, 1)), then the activation."""
    return activate(x * scales, activation)


def upsample(x: np.ndarray, stride: int, scale: float) -> np.ndarray:
    """Nearest neighbour: each value repeated stride x stride times, times ``scale``."""
    out = np.repeat(np.repeat(x, stride, axis=1), stride, axis=2)
    return out if scale == 1 else (out * np.float32(scale)).astype(np.float32)


def yolo(x: np.ndarray, num: int, classes: int, scale_x_y: float) -> np.ndarray:
    """AlexeyAB's [yolo] forward: logistic on x, y, objectness and classes; x and y then times scale_x_y
    minus (scale_x_y - 1) / 2 (in float32, as scal_add_cpu)."""
    c, h, w = x.shape
    out = logistic(x.reshape(num, 5 + classes, h, w))
    out[:, 2:4] = x.reshape(num, 5 + classes, h, w)[:, 2:4]
    if scale_x_y != 1:
        out[:, 0:2] = out[:, 0:2] * np.float32(scale_x_y) + np.float32(-0.5 * (scale_x_y - 1))
    return out.reshape(c, h, w)
