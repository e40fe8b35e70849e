"""Paths: a spec that is not a readable file, an output folder that cannot be written, a full disk.

Every case names the path and what to do, exits with the documented code (2 for the spec, 1 for
the run) without a traceback, and keeps what finished (finished stages, result rows). A full disk
is simulated at several write sites by making the write raise ``OSError(ENOSPC)`` (or, for
``torch.save``, the ``RuntimeError`` it really raises, with the disk reported full).
"""

from __future__ import annotations

import builtins
import errno
import os
import pathlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import bdcore.cli as cli
import bdcore.io.atomic as atomic
from bdcore.errors import OutputError
from bdcore.report.results import read_results
from bdcore.testing import make_host

SPEC = """
[run]
name = "disk"
seed = 1
checkpoint_every = 1
[data]
use = "toy-smooth"
params = { count = 8, size = 8 }
[victim]
use = "toy-denoiser"
params = { width = 4 }
[train]
steps = 2
batch_size = 4
[attack]
steps = 3
batch_size = 4
poison_rate = 0.5
trigger = { use = "toy-patch" }
loss = { use = "toy-invert" }
[[metric]]
use = "psnr"
[eval]
batch_size = 2
grid = 2
"""
NOSPACE = "No space left on device"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture
def cli_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host())


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.main, list(args), env={"COLUMNS": "300"})


def _one_line(output: str) -> str:
    return " ".join(output.split())


# -- the spec path ---------------------------------------------------------------------------


def test_a_folder_given_as_the_spec_says_so(tmp_path: Path, cli_host: None) -> None:
    (tmp_path / "b.toml").write_text("")
    (tmp_path / "a.toml").write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("check", "run"):
        res = _invoke(command, str(tmp_path))
        assert res.exit_code == 2, res.output
        assert f"{tmp_path}: is a folder, not a spec file (give one of its spec files: a.toml, b.toml)" in res.output
        res = _invoke(command, str(empty))
        assert res.exit_code == 2 and f"{empty}: is a folder, not a spec file (give a .toml spec file)" in res.output


def test_missing_unreadable_and_special_spec_files(
    tmp_path: Path, cli_host: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _invoke("check", str(tmp_path / "nope.toml"))
    assert res.exit_code == 2 and f"{tmp_path / 'nope.toml'}: file not found" in res.output
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    res = _invoke("check", str(fifo))
    assert res.exit_code == 2 and f"{fifo}: not a regular file" in res.output, res.output
    locked = tmp_path / "locked.toml"
    locked.write_text("[run]\n")
    real = pathlib.Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    for command in ("check", "run"):
        res = _invoke(command, str(locked))
        assert res.exit_code == 2, res.output
        assert f"{locked}: cannot read the file: Permission denied" in res.output


@pytest.mark.skipif(ROOT, reason="root reads files whatever their mode")
def test_a_spec_without_read_permission(tmp_path: Path, cli_host: None) -> None:  # pragma: no cover - non-root CI
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    spec.chmod(0)
    res = _invoke("check", str(spec))
    assert res.exit_code == 2 and f"{spec}: cannot read the file: Permission denied" in res.output


# -- the output folder -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_an_unwritable_output_folder_names_it(
    code: int, tmp_path: Path, cli_host: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "readonly"
    real = pathlib.Path.mkdir

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        if self == out or out in self.parents:
            raise OSError(code, os.strerror(code), str(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    res = _invoke("run", str(spec), "--out", str(out))
    assert res.exit_code == 1, res.output
    text = _one_line(res.output)
    assert f"cannot write {out}: {os.strerror(code)}" in text, res.output
    assert "the folder is not writable: choose a writable output folder (--out or [run] out)" in text
    assert "Traceback" not in res.output


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
def test_a_read_only_output_folder(tmp_path: Path, cli_host: None) -> None:  # pragma: no cover - non-root CI
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        res = _invoke("run", str(spec), "--out", str(out))
    finally:
        out.chmod(0o700)
    assert res.exit_code == 1 and "Permission denied" in res.output and str(out) in res.output, res.output


def test_an_output_folder_that_is_a_file(tmp_path: Path, cli_host: None) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "file"
    out.write_text("")
    res = _invoke("run", str(spec), "--out", str(out))
    assert res.exit_code == 1, res.output
    assert f"cannot write {out}" in res.output and "a file stands where a folder is needed" in _one_line(res.output)


# -- a full disk, at each write site -----------------------------------------------------------


def _full(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, NOSPACE)


def _site_manifest(mp: pytest.MonkeyPatch) -> None:
    real = pathlib.Path.write_bytes
    mp.setattr(
        pathlib.Path, "write_bytes", lambda self, data: _full() if ".manifest.json." in self.name else real(self, data)
    )


def _site_results_log(mp: pytest.MonkeyPatch) -> None:
    def opener(path: Any, *args: Any, **kwargs: Any) -> Any:
        if "results" in str(path):
            _full()
        return builtins.open(path, *args, **kwargs)  # noqa: SIM115 - returned to a with statement

    mp.setattr(atomic, "open", opener, raising=False)


def _site_stage(mp: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    calls = {"n": 0}
    real = safetensors.torch.save_file

    def save_file(tensors: Any, path: str, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the clean victim is saved, the attack stage meets the full disk
            _full()
        real(tensors, path, *args, **kwargs)

    mp.setattr(safetensors.torch, "save_file", save_file)


def _site_checkpoint(mp: pytest.MonkeyPatch) -> None:
    import torch

    def save(*_: Any, **__: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    mp.setattr(torch, "save", save)
    real = os.statvfs

    def statvfs(path: Any) -> Any:
        st = real(path)
        return SimpleNamespace(f_bavail=0, f_frsize=st.f_frsize) if ".partial" in str(path) else st

    mp.setattr(os, "statvfs", statvfs)


def _site_report(mp: pytest.MonkeyPatch) -> None:
    real = pathlib.Path.write_bytes
    mp.setattr(
        pathlib.Path, "write_bytes", lambda self, data: _full() if ".report.html." in self.name else real(self, data)
    )


def _site_plot(mp: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    mp.setattr(matplotlib.figure.Figure, "savefig", _full)


def _site_grid(mp: pytest.MonkeyPatch) -> None:
    import PIL.Image

    real = PIL.Image.Image.save
    mp.setattr(
        PIL.Image.Image, "save", lambda self, fp, *a, **k: _full() if "/grid/" in str(fp) else real(self, fp, *a, **k)
    )


# site: (patch, a fragment of the path named, the clean victim's stage is finished, rows are kept)
SITES = {
    "manifest": (_site_manifest, "/manifest.json", False, False),
    "results-log": (_site_results_log, "/results.partial.jsonl", True, False),
    "stage": (_site_stage, "/.stages/attack-", True, False),
    "checkpoint": (_site_checkpoint, ".partial/checkpoint.pt", False, False),
    "report": (_site_report, "/report.html", True, True),
    "plot": (_site_plot, "/runs/disk-", True, True),
    "grid-image": (_site_grid, "/grid/", True, True),
}


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_full_disk_names_the_path_and_keeps_what_finished(
    site: str, tmp_path: Path, cli_host: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch, fragment, stage_kept, rows_kept = SITES[site]
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "runs"
    with monkeypatch.context() as mp:
        patch(mp)
        res = _invoke("run", str(spec), "--out", str(out))
    text = _one_line(res.output)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "Errno" not in res.output
    assert "cannot write " in text and fragment in text, res.output
    assert f"{NOSPACE} (the disk is full: free some space or choose another output folder (--out);" in text
    assert "finished stages are kept: bdcore run --resume continues the run" in text
    stages = list((out / ".stages").glob("clean-victim-*/stage.json"))
    assert bool(stages) == stage_kept, site
    if rows_kept:
        (run_dir,) = [p for p in out.iterdir() if p.name.startswith("disk-")]
        assert read_results(run_dir), "the result rows were lost"
    assert not list((out / ".stages").glob(".*.tmp-*")), "a half-written stage was left behind"


def test_after_a_full_disk_resume_finishes_with_the_finished_stages(
    tmp_path: Path, cli_host: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "runs"
    with monkeypatch.context() as mp:
        _site_report(mp)
        assert _invoke("run", str(spec), "--out", str(out)).exit_code == 1
    res = _invoke("run", str(spec), "--out", str(out), "--resume")
    assert res.exit_code == 0, res.output
    assert "reused finished stage" in res.output
    (run_dir,) = [p for p in out.iterdir() if p.name.startswith("disk-")]
    assert (run_dir / "COMPLETE").exists() and (run_dir / "report.html").exists()


def test_output_error_wording() -> None:
    full = atomic.output_error(OSError(errno.ENOSPC, NOSPACE), Path("/r/x.json"))
    assert isinstance(full, OutputError) and str(full).startswith(
        f"cannot write /r/x.json: {NOSPACE} (the disk is full"
    )
    ro = atomic.output_error(OSError(errno.EROFS, "Read-only file system", "/r/tmp"), Path("/r/x.json"))
    assert str(ro).startswith("cannot write /r/tmp: Read-only file system (the folder is not writable")
    long = atomic.output_error(OSError(errno.ENAMETOOLONG, "File name too long"), Path("/r/x"))
    assert "the path is too long" in str(long)
