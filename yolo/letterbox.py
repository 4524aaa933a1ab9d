"""Image loading and Darknet's letterbox preprocessing, reproduced in float32 step by step."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo.errors import ImageError

GREY = np.float32(0.5)


def load_image(path: str | Path) -> np.ndarray:
    """RGB image as (3, H, W) float32 in [0, 1], as Darknet's load_image_color gives it."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise ImageError(f"image {str(path)!r}: no such file") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"image {str(path)!r}: not a readable image ({err})") from None
    return to_chw(rgb)


def to_chw(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 / 255."""
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)


def fitted_size(im_w: int, im_h: int, net_w: int, net_h: int) -> tuple[int, int]:
    """The (width, height) the image is resized to inside the letterbox (Darknet's integer rule)."""
    if np.float32(net_w) / np.float32(im_w) < np.float32(net_h) / np.float32(im_h):
        return net_w, (im_h * net_w) // im_w
    return (im_w * net_h) // im_h, net_h


def resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's resize_image: separable bilinear with corners aligned, columns first, in float32."""
    c, ih, iw = im.shape
    f32 = np.float32
    w_scale = f32(iw - 1) / f32(w - 1) if w > 1 else f32(0)
    h_scale = f32(ih - 1) / f32(h - 1) if h > 1 else f32(0)

    sx = np.arange(w, dtype=np.float32) * w_scale
    ix = sx.astype(np.int64)
    dx = sx - ix.astype(np.float32)
    right = np.minimum(ix + 1, iw - 1)
    part = (f32(1) - dx) * im[:, :, ix] + dx * im[:, :, right]
    part[:, :, w - 1] = im[:, :, iw - 1]  # the last column copies the last source column
    if iw == 1:
        part[:] = im[:, :, :1]

    sy = np.arange(h, dtype=np.float32) * h_scale
    iy = sy.astype(np.int64)
    dy = sy - iy.astype(np.float32)
    out = (f32(1) - dy)[None, :, None] * part[:, iy, :]
    below = np.minimum(iy + 1, ih - 1)
    add = dy[None, :, None] * part[:, below, :]
    add[:, h - 1, :] = 0  # Darknet skips the second tap on the last row
    if ih == 1:
        add[:] = 0
    return (out + add).astype(np.float32)


def letterbox(im: np.ndarray, net_w: int, net_h: int) -> np.ndarray:
    """Aspect-preserving resize centred on a 0.5 grey canvas of the network's size."""
    c, ih, iw = im.shape
    new_w, new_h = fitted_size(iw, ih, net_w, net_h)
    boxed = np.full((c, net_h, net_w), GREY, np.float32)
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    boxed[:, dy:dy + new_h, dx:dx + new_w] = resize(im, new_w, new_h)
    return boxed
