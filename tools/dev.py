#!/usr/bin/env python3
"""Install bdcore with every plugin and run the demo, or run the whole test suite.

    python3 tools/dev.py demo    # install everything, run examples/demo.toml
    python3 tools/dev.py test    # install everything, run every nox session
    python3 tools/dev.py env     # only build the environments (prints their paths)

Needs only Python >= 3.11. Heavy third-party packages (torch, compressai, pyiqa,
...) are installed once into ``.bdenv/base`` and shared, through a ``.pth`` file,
by ``.bdenv/all`` (core + every plugin, for the demo) and by every nox session —
so CI installs gigabytes once, not once per session.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / ".bdenv"
BASE = ENVS / "base"
ALL = ENVS / "all"
REQUIREMENTS = ROOT / "tools" / "base-requirements.txt"
CONSTRAINTS = ROOT / "constraints.txt"


def bin_path(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def site_packages(env: Path) -> Path:
    py = bin_path(env, "python")
    out = subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    )
    return Path(out.strip())


def run(cmd: list[str], **kw: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def pip(env: Path, *args: str) -> None:
    run([str(bin_path(env, "python")), "-m", "pip", "--disable-pip-version-check", *args])


def ensure_base() -> Path:
    """Create .bdenv/base with the heavy dependencies (cached by a hash of the requirement files)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()[:16]
    stamp = BASE / f".installed-{digest}"
    if stamp.exists():
        return BASE
    if not bin_path(BASE, "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(BASE)
    pip(BASE, "install", "-q", "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS))
    for old in BASE.glob(".installed-*"):
        old.unlink()
    stamp.write_text(digest + "\n")
    return BASE


def link_base(env: Path) -> None:
    """Make ``env`` see the base environment's packages (appended after its own)."""
    (site_packages(env) / "_bdcore_base.pth").write_text(str(site_packages(BASE)) + "\n")


def plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def ensure_all() -> Path:
    """.bdenv/all: core + every plugin (editable) on top of the base environment."""
    ensure_base()
    if not bin_path(ALL, "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(ALL)
    link_base(ALL)
    args = ["install", "-q", "--no-build-isolation", "-c", str(CONSTRAINTS), "-e", str(ROOT)]
    for d in plugin_dirs():
        args += ["-e", str(d)]
    pip(ALL, *args)
    return ALL


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # No hub can be reached here: make accidental downloads fail in a second, not minutes.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("BDCORE_BASE_ENV", str(BASE))
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "test"
    if sys.version_info < (3, 11):
        print("bdcore needs Python >= 3.11", file=sys.stderr)
        return 2
    if cmd == "env":
        ensure_all()
        print(f"base: {BASE}\nall:  {ALL}")
        return 0
    if cmd == "demo":
        ensure_all()
        spec = argv[1] if len(argv) > 1 else str(ROOT / "examples" / "demo.toml")
        return subprocess.call(
            [str(bin_path(ALL, "bdcore")), "run", spec, "--out", str(ROOT / "runs")], env=child_env()
        )
    if cmd == "test":
        ensure_base()
        # The setuptools in base builds the editable installs of every session.
        return subprocess.call(
            [str(bin_path(BASE, "nox")), "-f", str(ROOT / "noxfile.py"), *argv[1:]],
            cwd=ROOT,
            env=child_env(),
        )
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
