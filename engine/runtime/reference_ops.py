"""NumPy layer operations with Darknet's exact semantics; Python loops only over kernel offsets.

Each function takes and returns CHW float32 arrays. They are the ground truth the fused kernels are
checked against, so clarity beats cleverness here, but convolutions still go through BLAS.
"""
from __future__ import annotations

import numpy as np

from yolo.params import BN_EPSILON, ConvParams

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


def batch_norm(y: np.ndarray, p: ConvParams) -> np.ndarray:
    """Darknet's inference BN, in its order: subtract mean, divide by (sqrt(var) + eps), scale."""
    y -= p.rolling_mean[:, None, None]
    y /= (np.sqrt(p.rolling_variance) + BN_EPSILON)[:, None, None]
    y *= p.scales[:, None, None]
    return y


def activate(y: np.ndarray, activation: str) -> np.ndarray:
    """In place where possible. max(y, 0.1*y) is exactly Darknet's leaky (y if y > 0 else 0.1*y)."""
    if activation == "leaky":
        return np.maximum(y, y * LEAKY_SLOPE, out=y)
    if activation == "relu":
        return np.maximum(y, np.float32(0), out=y)
    if activation == "logistic":
        return logistic(y)
    return y


def logistic(y: np.ndarray) -> np.ndarray:
    return (np.float32(1) / (np.float32(1) + np.exp(-y))).astype(np.float32)


def conv_layer(x: np.ndarray, p: ConvParams, stride: int, padding: int, groups: int, activation: str) -> np.ndarray:
    y = conv2d(x, p.weights, stride, padding, groups)
    if p.batch_normalize:
        batch_norm(y, p)
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
