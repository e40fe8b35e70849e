"""The stage store a sweep's cells share: a folder or any fsspec URL, with one lock per stage key.

Two workers that need the same missing stage must not both train it. The runner asks
``store.done(stage, key)`` before it computes a stage and calls ``store.save(...)`` when it has;
here ``done`` answers "finished, or yours to compute": when the stage is missing it takes the
stage's file lock (``filelock``) and holds it until ``save``. A second worker asking for the same
stage blocks on that lock, then finds the stage finished and loads it. A worker that dies
releases its locks with its process (the operating system drops ``flock`` locks of a dead
process, ``kill -9`` included), so a lost worker never blocks the others for good.

Where the stages live:

* a path (local disk, NFS, any shared file system): stages and locks are files under it
  (``.locks/<stage>-<key>.lock``). On NFS the locks need a lock manager (NFSv4, or v3 with
  ``lockd``); mounts with ``nolock`` make every lock local to its node.
* an fsspec URL (``s3://bucket/stages``, ``gs://...``, ``file:///...``; install the fsspec
  backend, e.g. ``s3fs``): finished stages are uploaded there (``tensors.safetensors`` first,
  ``stage.json`` last: a stage counts as finished once its ``stage.json`` exists) and downloaded
  into a local mirror before they are loaded. Object stores have no locks: the locks live in
  ``lock_dir``, a folder all workers share (e.g. an NFS home); without one they only exclude
  workers of one node, and the sweep's ``shared_first`` ordering (a cell that shares a stage with
  an earlier cell starts once that stage is finished) keeps the cells of one sweep from training a
  stage twice. Training checkpoints (``.partial``) stay on the worker's local disk.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from bdcore.engine.store import StageStore

log = logging.getLogger("bdcore")

MARKER = "stage.json"
TENSORS = "tensors.safetensors"


def is_url(location: str | Path) -> bool:
    """True for ``scheme://...`` locations (fsspec), False for plain paths."""
    return "://" in str(location)


class SharedStageStore(StageStore):
    """A :class:`~bdcore.engine.store.StageStore` shared by concurrent workers.

    Args:
        location: a folder, or an fsspec URL (see the module docs).
        mirror: local folder for an fsspec URL's downloaded stages and checkpoints (required then).
        lock_dir: folder of the lock files (default: ``location/.locks``; for a ``file://`` URL the
            folder it names; for another URL ``mirror/.locks``, which excludes the workers of one
            node only).
        storage_options: passed to fsspec (credentials, endpoints).
        create: make the folders (and the URL's root) now, so that an unwritable store fails before any
            training; ``False`` for planning, which must not write (``exists`` only).
    """

    def __init__(
        self,
        location: str | Path,
        *,
        mirror: Path | None = None,
        lock_dir: Path | None = None,
        storage_options: dict[str, Any] | None = None,
        create: bool = True,
    ) -> None:
        self.location = str(location)
        self.remote: Any = None
        self.remote_root = ""
        if is_url(location):
            import fsspec

            if mirror is None:
                raise ValueError(f"a stage store at {location} needs a local mirror folder")
            self.remote, self.remote_root = fsspec.core.url_to_fs(str(location), **(storage_options or {}))
            self.remote_root = self.remote_root.rstrip("/")
            if create:
                self.remote.makedirs(self.remote_root, exist_ok=True)
            root = mirror
        else:
            root = Path(location)
        super().__init__(root, create=create)
        if lock_dir is None:
            # a file:// URL is a shared folder too: its locks live there; an object store has none
            local = self.remote is not None and "file" in _protocols(self.remote)
            lock_dir = Path(self.remote_root) / ".locks" if local else root / ".locks"
        self.lock_dir = lock_dir
        if create:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._held: dict[tuple[str, str], Any] = {}
        #: stages this store waited for while another worker computed them (for the sweep's records)
        self.waited: list[str] = []

    # -- what the runner calls ---------------------------------------------------------------
    def done(self, stage: str, key: str) -> bool:
        """True when the stage is finished (downloaded first from a URL store). False means the
        caller must compute it: it now holds the stage's lock until :meth:`save` (or
        :meth:`release_all`). While another worker computes the stage, this call waits."""
        if (stage, key) in self._held:
            return False
        if self._finished(stage, key):
            return True
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.lock_dir / f"{stage}-{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("stage %s-%s: another worker is computing it; waiting for it", stage, key)
            self.waited.append(stage)
            lock.acquire()
        if self._finished(stage, key):
            lock.release()
            log.info("stage %s-%s: finished by another worker; reusing it", stage, key)
            return True
        self._held[(stage, key)] = lock
        return False

    def save(self, stage: str, key: str, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Write the finished stage (and upload it to a URL store), then release its lock."""
        try:
            final = super().save(stage, key, tensors, meta)
            if self.remote is not None:
                self._upload(stage, key, final)
        finally:
            lock = self._held.pop((stage, key), None)
            if lock is not None:
                lock.release()
        return final

    def release_all(self) -> None:
        """Release every lock this store holds (a cell that failed mid-stage)."""
        for lock in self._held.values():
            lock.release(force=True)
        self._held.clear()

    # -- without locking (planning, reports) -------------------------------------------------
    def exists(self, stage: str, key: str) -> bool:
        """Whether the stage is finished here or at the URL (nothing is downloaded or locked)."""
        if super().done(stage, key):
            return True
        return self.remote is not None and bool(self.remote.exists(self._remote_path(stage, key, MARKER)))

    # -- internals -----------------------------------------------------------------------------
    def _finished(self, stage: str, key: str) -> bool:
        if super().done(stage, key):
            return True
        if self.remote is None or not self.remote.exists(self._remote_path(stage, key, MARKER)):
            return False
        self._download(stage, key)
        return True

    def _remote_path(self, stage: str, key: str, name: str) -> str:
        return f"{self.remote_root}/{stage}-{key}/{name}"

    def _upload(self, stage: str, key: str, folder: Path) -> None:
        if self.remote.exists(self._remote_path(stage, key, MARKER)):
            return  # another worker uploaded it first: keep theirs
        self.remote.makedirs(f"{self.remote_root}/{stage}-{key}", exist_ok=True)
        self.remote.put_file(str(folder / TENSORS), self._remote_path(stage, key, TENSORS))
        self.remote.put_file(str(folder / MARKER), self._remote_path(stage, key, MARKER))

    def _download(self, stage: str, key: str) -> None:
        final = self.path(stage, key)
        tmp = self.root / f".{stage}-{key}.download-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.remote.get_file(self._remote_path(stage, key, TENSORS), str(tmp / TENSORS))
        self.remote.get_file(self._remote_path(stage, key, MARKER), str(tmp / MARKER))
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, final)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
