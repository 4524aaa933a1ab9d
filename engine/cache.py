"""Where measured figures are kept (cost-model fits, the runtime baseline), and what invalidates them."""
from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """``FUSETILE_CACHE`` if set and not empty, else the platform's user cache folder (XDG_CACHE_HOME on
    Linux)."""
    from platformdirs import user_cache_path
    return Path(os.environ.get("FUSETILE_CACHE") or user_cache_path("fusetile", appauthor=False))


def versions_key() -> str:
    """Names this machine and the library and package versions (what invalidates measured figures)."""
    import numba
    from importlib.metadata import PackageNotFoundError, version
    try:
        ours = version("fusetile")
    except PackageNotFoundError:
        ours = "source"
    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "")
    parts = [platform.node(), platform.machine(), cpu, str(os.cpu_count()), np.__version__, numba.__version__, ours]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
