"""Image loading and Darknet's preprocessing: where the picture lands in the network input (letterbox or
resize); the pixels themselves come from ``kernels.picture``, for the whole input or any region of it."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.picture import GREY, fit_region
from yolo.errors import ImageError


MAX_DECODED_PIXELS = 50_000_000  # decoded in full above this: refused (a JPEG is first decoded at reduced scale)
PICTURE_SIDE = 1024  # a JPEG is drafted no smaller than this on its long side: the picture with boxes stays legible


def draft_size(width: int, height: int, network_size: tuple[int, int]) -> tuple[int, int]:
    """The least size a JPEG is decoded at: what the network needs, and at least PICTURE_SIDE on the long
    side (never more than the image)."""
    fit_w, fit_h = fitted_size(width, height, *network_size)
    scale = max(1.0, PICTURE_SIDE / max(fit_w, fit_h))
    return min(width, int(fit_w * scale)), min(height, int(fit_h * scale))


@contextmanager
def opened(path: str | Path, network_size: tuple[int, int] | None):
    """The picture opened lazily (nothing decoded yet), a JPEG set to decode at ``draft_size``. Pillow's own
    pixel limit is lifted while it opens: ``MAX_DECODED_PIXELS`` applies to what will be decoded."""
    from PIL import Image
    bomb_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            if network_size is not None and im.format == "JPEG":
                im.draft(im.mode, draft_size(im.width, im.height, network_size))
            yield im
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit


def load_image(path: str | Path, network_size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB image as (3, H, W) float32 in [0, 1], as Darknet's load_image_color gives it.

    Every mode Pillow opens is read: 16- and 32-bit grayscale scaled to [0, 1], palette and CMYK through
    Pillow's conversion, transparency composited on the letterbox grey (0.5), EXIF orientation applied.
    With ``network_size`` (width, height), a JPEG at least twice as large as ``draft_size`` is decoded at a
    reduced scale (Pillow's draft mode: 1/2, 1/4 or 1/8), so a 12000x12000 photo costs about what a
    1500x1500 one does; its pixels then differ slightly from a full decode, and the picture with boxes is
    drawn at that scale.
    """
    from PIL import ImageOps, UnidentifiedImageError
    try:
        with opened(path, network_size) as im:
            if im.width * im.height > MAX_DECODED_PIXELS:
                raise ImageError(f"image {str(path)!r}: {im.width}x{im.height} is {im.width * im.height:,} pixels: "
                                 f"at most {MAX_DECODED_PIXELS:,} are decoded (a larger JPEG is read at reduced "
                                 f"scale)")
            return to_chw(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise _missing(path) from None
    except IsADirectoryError:
        raise ImageError(f"image {str(path)!r}: a folder, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"image {str(path)!r}: not a readable image ({err})") from None


def decoded_size(path: str | Path, network_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) that ``load_image`` will decode (a large JPEG at reduced scale), from the header;
    (0, 0) if the file is not a readable image (``load_image`` then says why)."""
    try:
        with opened(path, network_size) as im:
            return im.width, im.height
    except FileNotFoundError:  # said first: the memory guard asks this before any long work
        raise _missing(path) from None
    except Exception:  # load_image reports it
        return 0, 0


def _missing(path) -> ImageError:
    return ImageError(f"image {str(path)!r}: no such file")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the picture as stored, EXIF orientation applied (from its header)."""
    with opened(path, None) as im:
        turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # orientations that swap width and height
        return (im.height, im.width) if turned else (im.width, im.height)


def to_chw(im) -> np.ndarray:
    """A Pillow image -> (3, H, W) float32 in [0, 1]."""
    if im.mode.startswith("I;16"):
        grey = np.asarray(im, np.float32) / np.float32(65535)
    elif im.mode == "I":  # 32-bit integers: 16-bit data (PNG) unless values say otherwise
        values = np.asarray(im, np.float64)
        grey = (np.clip(values, 0, None) / (65535 if values.max(initial=0) <= 65535 else 2**31 - 1)).astype(np.float32)
    elif im.mode == "F":
        grey = np.clip(np.asarray(im, np.float32), 0, 1)
    else:
        transparent = "A" in im.mode or "transparency" in im.info
        rgba = np.asarray(im.convert("RGBA" if transparent else "RGB"), np.float32) / np.float32(255)
        if transparent:  # over the letterbox grey
            alpha = rgba[..., 3:]
            rgba = rgba[..., :3] * alpha + GREY * (np.float32(1) - alpha)
        return np.ascontiguousarray(rgba.transpose(2, 0, 1)[:3]).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(grey, (3, *grey.shape)))


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) -> (1, H, W): ITU-R 601 luma, for networks whose cfg says channels=1."""
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return np.tensordot(weights, rgb, axes=1)[None].astype(np.float32)


def fitted_size(im_w: int, im_h: int, net_w: int, net_h: int) -> tuple[int, int]:
    """The (width, height) the image is resized to inside the letterbox (Darknet's integer rule)."""
    if np.float32(net_w) / np.float32(im_w) < np.float32(net_h) / np.float32(im_h):
        return net_w, max((im_h * net_w) // im_w, 1)  # at least one row of a very wide picture
    return max((im_w * net_h) // im_h, 1), net_h


@dataclass(frozen=True)
class Placement:
    """Where the picture lands in the network input: resized to width x height with its corner at (left, top),
    grey around it (a letterbox), or stretched over the whole input (resize: left = top = 0)."""
    width: int
    height: int
    left: int = 0
    top: int = 0

    @classmethod
    def of(cls, picture_wh: tuple[int, int], net_wh: tuple[int, int], mode: str) -> Placement:
        """``mode``: "letterbox" (aspect kept, centred) or "resize"."""
        net_w, net_h = net_wh
        if mode == "resize":
            return cls(net_w, net_h)
        new_w, new_h = fitted_size(*picture_wh, net_w, net_h)
        return cls(new_w, new_h, (net_w - new_w) // 2, (net_h - new_h) // 2)


def fit(picture: np.ndarray, net_w: int, net_h: int, placement: Placement) -> np.ndarray:
    """The whole network input (C, net_h, net_w) float32 from a (C, H, W) float32 picture."""
    out = np.empty((picture.shape[0], net_h, net_w), np.float32)
    fit_region(picture, np.float32(1), placement.width, placement.height, placement.left, placement.top, 0, 0, out)
    return out


def resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's resize_image: separable bilinear with corners aligned, columns first, in float32."""
    return fit(im, w, h, Placement(w, h))


def letterbox(im: np.ndarray, net_w: int, net_h: int) -> np.ndarray:
    """Aspect-preserving resize centred on a 0.5 grey canvas of the network's size."""
    return fit(im, net_w, net_h, Placement.of((im.shape[2], im.shape[1]), (net_w, net_h), "letterbox"))
