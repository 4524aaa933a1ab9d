"""Labelled boxes on the original picture, written atomically."""
from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from yolo.errors import ImageError
from yolo.files import atomic_output
from yolo.region import Detection


def class_colour(class_id: int, classes: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: np.ndarray, detections: list[Detection], names: tuple[str, ...]):
    """``image`` is (3, H, W) float32 in [0, 1]; returns a PIL image with boxes and labels."""
    from PIL import Image, ImageDraw
    rgb = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    canvas = ImageDraw.Draw(picture)
    height, width = rgb.shape[:2]
    thickness = max(int(height * 0.006), 1)
    for det in detections:
        x, y, w, h = det.pixel_box(width, height)
        colour = class_colour(det.class_id, len(names))
        canvas.rectangle([x, y, x + w, y + h], outline=colour, width=thickness)
        label = f"{names[det.class_id]} {det.confidence * 100:.0f}%"
        left, top, right, bottom = canvas.textbbox((x, y), label)
        label_top = max(y - (bottom - top) - 2, 0)
        canvas.rectangle([x, label_top, x + (right - left) + 4, label_top + (bottom - top) + 2], fill=colour)
        canvas.text((x + 2, label_top), label, fill=(0, 0, 0))
    return picture


PICTURE_SUFFIXES = ".png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp"


def picture_format(path: str | Path, what: str = "--out") -> str:
    """Pillow's format for a picture path (PNG when it has no suffix); an unknown suffix is an error."""
    from PIL import Image
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "PNG"
    Image.init()
    found = Image.registered_extensions().get(suffix)
    if found is None or found not in Image.SAVE or found in ("PDF", "EPS", "PALM", "XBM", "MSP", "SPIDER"):
        raise ImageError(f"{what} {str(path)!r}: unknown picture format {suffix!r}: expected {PICTURE_SUFFIXES}")
    return found


def save_picture(picture, path: str | Path) -> None:
    with atomic_output(path, "picture") as tmp:
        picture.save(tmp, format=picture_format(path))
