"""Atomic writes: a half-written file never stands where a finished one is expected.

Everything is written to a temporary file in the same folder, flushed and
fsync-ed, then moved into place with :func:`os.replace` (atomic on POSIX).

File modes: :func:`tempfile.mkstemp` creates its file 0600 whatever the umask, and
:func:`os.replace` would carry that mode to the finished file. Before the move the
temporary file gets the mode an ordinary ``open(path, "w")`` would have given a new
file (``0666 & ~umask``), so a shared results folder is as readable as the umask says.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic swap, restored at once
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode of a file created now by ``open(path, "w")``: ``0o666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` (mode ``0o666 & ~umask``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # after the writer: a writer that recreates the file (unlink + create) would get 0600 again
        os.chmod(tmp_path, new_file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Atomically create ``path`` with ``writer(tmp_path)`` (e.g. safetensors' save_file)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync (used for the streaming results log)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())
