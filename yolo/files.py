"""Output files appear whole or not at all.

Each file is written under a hidden temporary name in its own folder and renamed onto its path only when
every file of the set is complete, so a failure, Ctrl-C or SIGTERM leaves nothing behind. A process killed
outright (SIGKILL) cannot clean up; its temporary names carry its process id, and the next write beside
them removes those whose process is gone.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from yolo.errors import FusetileError

MARK = ".fusetile-"  # temporary names: .NAME.fusetile-PID-RANDOM.tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: Path) -> None:
    """Temporary files of ``path`` left by processes that no longer exist."""
    prefix = f".{path.name}{MARK}"
    for other in path.parent.glob(".*.tmp"):
        if other.name.startswith(prefix):
            pid = other.name[len(prefix):].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                other.unlink(missing_ok=True)


class Outputs:
    """A set of output files committed together: ``write`` each, then leave the ``with`` block."""

    def __init__(self):
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final)
        self._made: list[Path] = []                   # folders made for the set, removed if it fails

    def folder(self, path: str | Path, what: str) -> Path:
        """A folder for outputs, made now if it does not exist (and removed again if the set fails)."""
        path = Path(path)
        if not path.is_dir():
            try:
                path.mkdir()
            except OSError as err:
                raise FusetileError(f"{what} {str(path)!r}: cannot make the folder: {err.strerror or err}") from None
            self._made.append(path)
        return path

    def write(self, path: str | Path, what: str, writer: Callable[[Path], None]) -> None:
        """``writer(temporary path)`` writes the file; errors name ``what`` and the user's ``path``."""
        path = Path(path)
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "is a folder")
            remove_stale(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{MARK}{os.getpid()}-", suffix=".tmp", dir=path.parent)
            os.close(fd)
            self._pending.append((Path(tmp), path))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; outputs get the usual permissions
            writer(Path(tmp))
        except OSError as err:
            raise FusetileError(f"{what} {str(path)!r}: cannot write: {err.strerror or err}") from None

    def commit(self) -> None:
        for tmp, path in self._pending:
            os.replace(tmp, path)
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def atomic_output(path: str | Path, what: str = "output"):
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds."""
    with Outputs() as outputs:
        box = []
        outputs.write(path, what, box.append)
        try:
            yield box[0]
        except OSError as err:
            raise FusetileError(f"{what} {str(path)!r}: cannot write: {err.strerror or err}") from None


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "output") -> None:
    with Outputs() as outputs:
        outputs.write(path, what, lambda tmp: tmp.write_bytes(data))
