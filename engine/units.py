"""Sizes as people write them: '6MB', '5.5MiB', '800000'."""
from __future__ import annotations

import re

UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """Bytes (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024); ValueError names what is expected."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = (m[2] or "b").lower() if m else None
    if not m or unit not in UNITS:
        raise ValueError(f"{text!r}: expected a size such as 6MB, 5.5MiB or 800000 "
                         f"(units B, KB, MB, GB, KiB, MiB, GiB)")
    return int(float(m[1]) * UNITS[unit])
