"""Batches through ``torch.utils.data.DataLoader``: worker processes, pinned memory, prefetch.

The order is :func:`bdcore.data.loading.batch_at`'s (a :class:`~bdcore.data.loading.StepBatchSampler`
hands every worker its ``(index, augmentation seed)`` pairs), so the batches are bit-identical with
any number of workers, and a loader can start at any step (a resumed run).

Workers decode and collate on the CPU; with a CUDA device the batches are pinned and copied with
``non_blocking=True``. The number of workers comes from ``[data] workers`` (default:
:func:`default_workers`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import attrs
import torch
from torch.utils.data import DataLoader, get_worker_info

from bdcore.data.loading import EvalBatchSampler, SeededSamples, StepBatchSampler, collate


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(device: str) -> int:
    """Loader worker processes when ``[data] workers`` is not set.

    On an accelerator: one per usable core but one (the main process feeds the device), at most 8
    (more rarely helps one GPU and each holds a copy of the dataset's index). On the CPU: 0, since the
    training itself already uses every core (intra-op threads) and worker processes would compete
    with it; set ``workers`` when decoding large images is the bottleneck.
    """
    if device == "cpu":
        return 0
    return max(0, min(8, usable_cpus() - 1))


@attrs.frozen
class LoaderSettings:
    """How batches are produced (``[data] workers``, ``prefetch``, ``cache_mb``; pinning from the device).

    Attributes:
        workers: worker processes (0: decode in the main process).
        prefetch: batches each worker prepares ahead (``prefetch_factor``).
        pin_memory: page-locked batches, for asynchronous copies to a CUDA device.
        persistent: keep the workers between iterations of one loader (a restart at another step).
    """

    workers: int = 0
    prefetch: int = 2
    pin_memory: bool = False
    persistent: bool = True

    @classmethod
    def for_device(cls, device: str, workers: int | None = None, prefetch: int = 2) -> LoaderSettings:
        """Settings for ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``…); ``workers=None``: :func:`default_workers`."""
        kind = torch.device(device).type
        n = default_workers(kind) if workers is None else workers
        return cls(workers=n, prefetch=prefetch, pin_memory=kind == "cuda")


def to_device(batch: dict[str, Any], device: str | torch.device, non_blocking: bool = False) -> dict[str, Any]:
    """The batch with its tensors on ``device`` (asynchronous from pinned memory when ``non_blocking``)."""
    return {
        k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
    }


def _collate_cpu(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return collate(samples, "cpu")


def set_cache_budget(dataset: Any, nbytes: int | None) -> None:
    """Bound the decoded-item cache of ``dataset`` (or of the dataset it wraps, found through ``dataset``,
    ``inner`` or ``datasets`` attributes) to ``nbytes``; datasets without a cache are left alone."""
    for owner in _dataset_chain(dataset):
        setter = getattr(owner, "set_cache_budget", None)
        if setter is not None:
            setter(nbytes)
            return


def set_unreadable_log(dataset: Any, path: Any) -> None:
    """Have ``dataset`` (or the dataset it wraps) append a line to ``path`` for every unreadable item it meets."""
    for owner in _dataset_chain(dataset):
        if hasattr(owner, "unreadable_log"):
            owner.unreadable_log = path
            return


def _dataset_chain(dataset: Any) -> Iterator[Any]:
    seen: set[int] = set()
    todo = [dataset]
    while todo:
        ds = todo.pop(0)
        if ds is None or id(ds) in seen:
            continue
        seen.add(id(ds))
        yield ds
        todo += [getattr(ds, name, None) for name in ("dataset", "inner")]
        todo += list(getattr(ds, "datasets", None) or [])


def _init_worker(cache_bytes: int | None, worker_id: int) -> None:  # noqa: ARG001 - DataLoader's signature
    """In each worker: its share of the loader's decoded-item cache."""
    info = get_worker_info()
    if info is not None and cache_bytes is not None:
        set_cache_budget(info.dataset.dataset, cache_bytes // max(1, info.num_workers))  # type: ignore[attr-defined]


def make_dataloader(
    dataset: Any, batch_sampler: Any, settings: LoaderSettings, cache_bytes: int | None = None
) -> DataLoader[Any]:
    """A ``DataLoader`` over ``dataset`` whose batches are the sampler's ``(index, seed)`` lists, collated on the CPU.

    ``cache_bytes``: the decoded-item cache of this loader, shared out among its workers.
    """
    workers = settings.workers
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {
            "prefetch_factor": settings.prefetch,
            "persistent_workers": settings.persistent,
            "worker_init_fn": functools.partial(_init_worker, cache_bytes),
        }
    return DataLoader(
        SeededSamples(dataset),
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=_collate_cpu,
        pin_memory=settings.pin_memory,
        # a private generator: each new iterator draws a worker base seed, which must not advance the global
        # stream (a loader restarted at a resumed step would shift every random draw after it)
        generator=torch.Generator().manual_seed(0),
        **extra,
    )


class StepLoader:
    """The training batches of steps ``start, start + 1, …`` through a ``DataLoader``.

    Call it with a step (``loader(step)``, the engine's ``batch_fn``) or iterate it (endless from
    ``start``). Calls with consecutive steps stream from the workers; a call with any other step
    restarts the sampler there (the workers are kept), so the batch of a step never depends on what
    was asked before. ``stop`` (exclusive) keeps workers from preparing batches past the last step.

    Batches are dicts of tensors on ``device`` (see :func:`bdcore.data.loading.collate`).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        start: int = 0,
        stop: int | None = None,
        settings: LoaderSettings | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.settings = settings or LoaderSettings()
        self.sampler = StepBatchSampler(len(dataset), batch_size, seed=seed, shuffle=shuffle, start=start, stop=stop)
        self.cache_bytes = cache_bytes
        self._loader: DataLoader[Any] | None = None
        self._it: Iterator[dict[str, Any]] | None = None
        self._next = start
        self._non_blocking = self.settings.pin_memory and self.device.type == "cuda"

    @property
    def loader(self) -> DataLoader[Any]:
        """The ``DataLoader`` (made on first use; its workers start with the first batch)."""
        if self._loader is None:
            self._loader = make_dataloader(self.dataset, self.sampler, self.settings, self.cache_bytes)
        return self._loader

    def __call__(self, step: int) -> dict[str, Any]:
        if self._it is None or step != self._next:
            self.sampler.start = step
            self._it = iter(self.loader)
        try:
            batch = next(self._it)
        except StopIteration:  # asked past ``stop``: serve that step alone
            self.sampler.start, self.sampler.stop = step, step + 1
            self._it = iter(self.loader)
            batch = next(self._it)
        self._next = step + 1
        return to_device(batch, self.device, self._non_blocking)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        step = self._next
        while True:
            yield self(step)
            step += 1

    def state_dict(self) -> dict[str, Any]:
        """The loader's position and what fixes its order (saved with a training checkpoint)."""
        s = self.sampler
        return {"step": self._next, "size": s.size, "batch_size": s.batch_size, "seed": s.seed, "shuffle": s.shuffle}

    def check_state(self, state: dict[str, Any]) -> str | None:
        """Why a checkpoint's loader ``state`` does not fit this loader (None: it does)."""
        mine = self.state_dict()
        for key in ("size", "batch_size", "seed", "shuffle"):
            if key in state and state[key] != mine[key]:
                return f"the checkpoint's {key} is {state[key]}, this run's is {mine[key]}"
        return None

    def close(self) -> None:
        """Stop the worker processes now (they also stop when the loader is garbage-collected); a later
        call starts new ones."""
        self._it = None
        self._loader = None  # the DataLoader's iterator shuts its workers down when it is freed

    def __enter__(self) -> StepLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def eval_loader(
    dataset: Any,
    batch_size: int,
    *,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    settings: LoaderSettings | None = None,
    cache_bytes: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every sample once, in order (no augmentation): :func:`bdcore.data.loading.eval_batches` through workers."""
    settings = settings or LoaderSettings()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        return
    dev = torch.device(device)
    non_blocking = settings.pin_memory and dev.type == "cuda"
    loader = make_dataloader(
        dataset, EvalBatchSampler(n, batch_size), attrs.evolve(settings, persistent=False), cache_bytes
    )
    for batch in loader:
        yield to_device(batch, dev, non_blocking)
