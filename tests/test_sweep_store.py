"""The shared stage store: one lock per stage key across processes; fsspec URLs (upload, mirror)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import torch

from bdcore.sweep.store import SharedStageStore


def _claim(location: str, mirror: str | None, log: str, start: float) -> None:
    """One worker: wait for a common start, then compute the stage unless it is finished."""
    store = SharedStageStore(location, mirror=Path(mirror) if mirror else None)
    while time.time() < start:
        time.sleep(0.001)
    if store.done("clean-victim", "k1"):
        tensors, _ = store.load("clean-victim", "k1")
        outcome = f"reused {float(tensors['w'])}"
    else:
        time.sleep(0.5)  # training
        store.save("clean-victim", "k1", {"w": torch.tensor(3.0)}, {"by": "me"})
        outcome = "trained"
    with open(log, "a") as fh:
        fh.write(outcome + "\n")


@pytest.mark.parametrize("url", [False, True], ids=["path", "file-url"])
def test_two_processes_needing_one_missing_stage_train_it_once(tmp_path: Path, url: bool) -> None:
    # a file:// URL goes through fsspec (upload, one mirror per worker) with its locks in the folder it names
    location = f"file://{tmp_path / 'remote'}" if url else str(tmp_path / "stages")
    ctx = multiprocessing.get_context("spawn")
    log = tmp_path / "log.txt"
    start = time.time() + 3.0
    procs = [
        ctx.Process(target=_claim, args=(location, str(tmp_path / f"mirror{i}") if url else None, str(log), start))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert sorted(log.read_text().splitlines()) == ["reused 3.0", "reused 3.0", "trained"]


def test_a_failed_computation_releases_its_lock(tmp_path: Path) -> None:
    first = SharedStageStore(tmp_path)
    assert first.done("attack", "k") is False
    first.release_all()  # the cell failed mid-stage
    second = SharedStageStore(tmp_path)
    t0 = time.perf_counter()
    assert second.done("attack", "k") is False  # not blocked: it computes the stage itself
    assert time.perf_counter() - t0 < 1.0
    second.save("attack", "k", {"w": torch.ones(2)}, {})
    assert SharedStageStore(tmp_path).done("attack", "k") is True


def test_an_fsspec_store_uploads_finished_stages_and_mirrors_them(tmp_path: Path) -> None:
    import fsspec

    url = "memory://bdcore-test-stages"
    a = SharedStageStore(url, mirror=tmp_path / "node-a")
    assert not a.exists("clean-victim", "abc") and a.done("clean-victim", "abc") is False
    a.save("clean-victim", "abc", {"w": torch.arange(4.0)}, {"history": [1.0]})
    fs = fsspec.filesystem("memory")
    assert fs.exists("/bdcore-test-stages/clean-victim-abc/stage.json")
    assert fs.exists("/bdcore-test-stages/clean-victim-abc/tensors.safetensors")
    b = SharedStageStore(url, mirror=tmp_path / "node-b")  # another node: nothing local yet
    assert b.exists("clean-victim", "abc")
    assert b.done("clean-victim", "abc") is True  # downloaded into its mirror
    tensors, meta = b.load("clean-victim", "abc")
    assert torch.equal(tensors["w"], torch.arange(4.0)) and meta["history"] == [1.0]
    assert (tmp_path / "node-b" / "clean-victim-abc" / "stage.json").is_file()
    fs.rm("/bdcore-test-stages", recursive=True)


def test_a_url_store_needs_a_mirror() -> None:
    with pytest.raises(ValueError, match="mirror"):
        SharedStageStore("memory://x")
