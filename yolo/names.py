"""Class names, chosen by the class count a cfg's [region] declares."""
from __future__ import annotations

from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
BY_COUNT = {80: "coco.names", 20: "voc.names", 1: "face.names"}


@cache
def class_names(classes: int) -> tuple[str, ...]:
    """COCO for 80 classes, VOC for 20, face for one (the bundled face detectors), otherwise 'class N'."""
    if classes in BY_COUNT:
        names = tuple(n.strip() for n in (DATA / BY_COUNT[classes]).read_text().splitlines() if n.strip())
        if len(names) == classes:
            return names
    return tuple(f"class {i}" for i in range(classes))
