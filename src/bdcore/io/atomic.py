"""Atomic writes: a half-written file never stands where a finished one is expected.

Everything is written to a temporary file in the same folder, flushed and
fsync-ed, then moved into place with :func:`os.replace` (atomic on POSIX).

A write that fails because of the disk or the folder (full, read-only, forbidden) raises
:class:`~bdcore.errors.OutputError` naming the file and what to do, never a bare
``OSError: [Errno 28] No space left on device``.

File modes: :func:`tempfile.mkstemp` creates its file 0600 whatever the umask, and
:func:`os.replace` would carry that mode to the finished file. Before the move the
temporary file gets the mode an ordinary ``open(path, "w")`` would have given a new
file (``0666 & ~umask``), so a shared results folder is as readable as the umask says.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bdcore.errors import OutputError

#: errno values that always mean "this output location cannot take the write".
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
FORBIDDEN = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_RESUME = "finished stages are kept: bdcore run --resume continues the run"


def output_error(exc: OSError, path: Path | str) -> OutputError:
    """An :class:`OutputError` for ``exc`` raised while writing ``path`` (the path the user knows
    about, not a temporary file), saying what to do."""
    where = Path(exc.filename) if exc.filename and exc.errno not in FULL else Path(path)
    reason = exc.strerror or type(exc).__name__
    if exc.errno in FULL:
        todo = f"the disk is full: free some space or choose another output folder (--out); {_RESUME}"
    elif exc.errno in FORBIDDEN:
        todo = "the folder is not writable: choose a writable output folder (--out or [run] out)"
    elif exc.errno == errno.ENAMETOOLONG:
        todo = "the path is too long: choose a shorter output folder or run name"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        todo = "a file stands where a folder is needed: choose another output folder (--out or [run] out)"
    else:
        todo = _RESUME
    from bdcore.text import printable

    return OutputError(f"cannot write {printable(where)}: {reason} ({todo})")


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has no space left for an ordinary user."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into an :class:`OutputError` naming it.

    Libraries that write through their own C code (``torch.save``, safetensors) report a full
    disk as a ``RuntimeError`` with an unrelated message; when the folder's disk is full, that
    is reported as a full disk too.
    """
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(exc, path) from exc
    except Exception as exc:
        if _disk_full(path.parent):
            full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise output_error(full, path) from exc
        raise


def make_dir(path: Path) -> Path:
    """``mkdir -p path``, reporting a folder that cannot be made as an :class:`OutputError`."""
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


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
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with writing(path):
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            # after the writer: a writer that recreates the file (unlink + create) would get 0600 again
            os.chmod(tmp_path, new_file_mode())
            os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(OSError):
            if tmp_path.exists():
                tmp_path.unlink()


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    # a lone surrogate (a file name that was not UTF-8) is written as \udcXX, not a crash
    write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


def write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Atomically create ``path`` with ``writer(tmp_path)`` (e.g. safetensors' save_file)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync (used for the streaming results log)."""
    with writing(path), open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())
