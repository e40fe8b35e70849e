"""Large folders stream: 20k files index quickly without decoding, and an epoch over them holds no more
than the cache budget of decoded pixels."""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bdcore.builtin.params import ImageFolderParams
from bdcore.context import Context
from bdcore.data import images as images_mod
from bdcore.data.loader import StepLoader, set_cache_budget
from bdcore.data.sources import ImageFolder

N_FILES = 20_000


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import shutil

    from PIL import Image

    folder = tmp_path_factory.mktemp("big")
    buf = io.BytesIO()
    Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)).save(buf, format="PNG")
    data = buf.getvalue()
    for i in range(N_FILES):
        (folder / f"{i:06d}.png").write_bytes(data)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_indexing_20k_files_is_quick_decodes_nothing_and_stays_small(
    big_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = []
    real = images_mod.read_image
    monkeypatch.setattr("bdcore.data.sources.read_image", lambda *a, **k: decoded.append(a) or real(*a, **k))
    source = ImageFolder(ImageFolderParams(path=big_folder, crop=8), Context(seed=0))
    tracemalloc.start()
    t0 = time.perf_counter()
    splits = source.splits()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(splits["train"]) + len(splits["test"]) == N_FILES
    assert decoded == []  # paths only: decoding waits for the loader
    assert seconds < 5.0, f"indexing {N_FILES} files took {seconds:.2f} s"
    # the index: a path and a name per file, ~0.5 KiB each, not the pixels
    assert peak < 24 * 2**20, f"indexing peaked at {peak / 2**20:.1f} MiB"


def test_an_epoch_holds_at_most_the_cache_budget(big_folder: Path) -> None:
    source = ImageFolder(ImageFolderParams(path=big_folder, crop=8), Context(seed=0))
    train = source.splits()["train"]
    budget = 64 * 2**10  # 64 KiB: 341 decoded 8×8×3 images of the 16k
    set_cache_budget(train, budget)
    loader = StepLoader(train, 256, seed=0)
    steps = 16  # 4096 images: 12 times what the budget holds
    tracemalloc.start()
    for step in range(steps):
        batch = loader(step)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert batch["input"].shape == (256, 3, 8, 8)
    assert train.cache is not None and 0 < train.cached_bytes <= budget
    assert len(train.cache) == budget // (8 * 8 * 3)
    # 4096 decoded images (0.75 MiB of pixels, 2 MiB with their dicts) would fit easily; what is held is the
    # budget plus a batch in flight
    assert peak < 2 * 2**20, f"an epoch peaked at {peak / 2**20:.1f} MiB of Python allocations"
