"""Progress of long work as plain lines on stderr, every few seconds, terminal or not (``--quiet`` silences
them). Library callers get silence unless the command line turns it on."""
from __future__ import annotations

import os
import sys
import time


class Progress:
    def __init__(self, enabled: bool = False, every_seconds: float = 3.0):
        self.enabled, self.every = enabled, every_seconds
        self._last = time.monotonic()

    def note(self, text: str) -> None:
        """One line now."""
        if self.enabled:
            print(text, file=sys.stderr, flush=True)
            self._last = time.monotonic()

    def step(self, what: str, done: int, total: int) -> None:
        """A line if a few seconds passed since the last one."""
        if self.enabled and time.monotonic() - self._last >= self.every:
            self.note(f"{what}: {done}/{total}")


PROGRESS = Progress()


def kernels_cached() -> bool:
    """Whether Numba's on-disk cache already holds the compiled kernels (a look at its index files;
    True when that cannot be told)."""
    try:
        from engine.lower.walk import lower_group
        from kernels.conv import _pack
        return all(os.path.exists(f._cache._cache_file._index_path) for f in (_pack, lower_group))
    except Exception:  # Numba's cache layout is internal: if it moved, say nothing rather than fail
        return True
