"""NIQE pristine parameters, obtained offline-reproducibly from PyPI (never a model hub).

The MATLAB NIQE pristine model (``mu_pris_param`` 1×36, ``cov_pris_param`` 36×36) ships as
``basicsr/metrics/niqe_pris_params.npz`` inside the **basicsr 1.4.2 source package** (Apache-2.0).
``fetch`` runs ``pip download --no-deps --no-binary :all: --no-build-isolation basicsr==1.4.2`` into a cache
folder, extracts the npz (and ``niqe.py`` for cross-checks) and writes a ``.mat`` with pyiqa's key names.
Nothing is fetched while a run evaluates: a missing file raises with the command to run.

    python -m bd_plugin_asfiba.niqe_params fetch [CACHE_DIR]
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bdcore.errors import ComponentError

SDIST = "basicsr==1.4.2"
NPZ_MEMBER = "basicsr/metrics/niqe_pris_params.npz"
# sha256 of niqe_pris_params.npz in the basicsr 1.4.2 sdist (11,850 bytes; methods.md §6 gives the prefix)
NPZ_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"


def default_cache() -> Path:
    return Path(os.environ.get("BD_ASFIBA_CACHE", Path.home() / ".cache" / "bd-plugin-asfiba"))


def fetch(cache: Path | None = None) -> Path:
    """Download the basicsr 1.4.2 sdist with pip and extract the NIQE files; returns the sdist folder."""
    cache = (cache or default_cache()) / "basicsr-1.4.2"
    if (cache / NPZ_MEMBER).is_file():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "-d",
            tmp,
            SDIST,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        archives = list(Path(tmp).glob("basicsr-1.4.2*.tar.gz"))
        if res.returncode != 0 or not archives:
            raise ComponentError(f"pip download {SDIST} failed: {res.stderr.strip()[-400:]}")
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[-1]
                if rel.startswith("basicsr/") and rel.endswith((".py", ".npz")):
                    member.name = rel
                    tar.extract(member, cache, filter="data")
    check_npz(cache / NPZ_MEMBER)
    return cache


def check_npz(npz: Path) -> None:
    """Raise unless ``npz`` is basicsr 1.4.2's pristine model (sha256 :data:`NPZ_SHA256`)."""
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()
    if digest != NPZ_SHA256:
        raise ComponentError(
            f"niqe: {npz} has sha256 {digest[:16]}…, not basicsr 1.4.2's pristine model ({NPZ_SHA256[:16]}…); "
            "delete it and run `python -m bd_plugin_asfiba.niqe_params fetch` again"
        )


def load_npz(path: Path) -> tuple[object, object]:
    import numpy as np

    with np.load(path) as data:
        return data["mu_pris_param"], data["cov_pris_param"]


def write_mat(npz: Path, mat: Path) -> Path:
    """Resave the basicsr npz as a ``.mat`` with pyiqa's keys ``mu_prisparam`` / ``cov_prisparam``."""
    import scipy.io

    mu, cov = load_npz(npz)
    mat.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(mat, {"mu_prisparam": mu, "cov_prisparam": cov})
    return mat


def niqe_mat_path(params_path: Path | None, cache: Path | None) -> Path:
    """A ``.mat`` pyiqa accepts, from ``params_path`` (npz or mat) or the cache; raises if none exists."""
    if params_path is not None:
        if not params_path.is_file():
            raise ComponentError(f"niqe: params_path {params_path} not found")
        if params_path.suffix == ".mat":
            return params_path
        return write_mat(params_path, (cache or default_cache()) / f"{params_path.stem}.mat")
    root = (cache or default_cache()) / "basicsr-1.4.2"
    npz = root / NPZ_MEMBER
    if not npz.is_file():
        raise ComponentError(
            f"niqe: pristine parameters not found at {npz}; run `python -m bd_plugin_asfiba.niqe_params fetch` "
            "(pip-downloads the basicsr 1.4.2 sdist) or set params_path to a niqe_pris_params.npz / .mat"
        )
    mat = root / "niqe_pris_params.mat"
    if mat.is_file():
        return mat
    check_npz(npz)
    return write_mat(npz, mat)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "fetch":
        sys.exit(__doc__)
    print(fetch(Path(sys.argv[2]) if len(sys.argv) > 2 else None))
