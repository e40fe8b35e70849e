"""Carry an unfinished `bdcore sweep` from one build machine to the next through the repository.

A sweep longer than a build session (BAIQA's LIVEC table: ≈ 10 h on the 2-core machine) cannot
finish on one machine here: each session gets a fresh machine, and only what is committed survives.
The sweep itself resumes from its folder (``--resume``: finished cells are skipped, a cell cut short
goes on from its training checkpoint, the stage store's finished stages are reused), so carrying it
is copying its output root — minus the lock files, which belong to the processes of the old machine,
and minus the stored stages that no unfinished cell uses (a finished cell's attacked model: its results
are in its cell folder, and a paper table has dozens of them).
No library does this for a git checkout (fsspec copies, but has no notion of which files are
transient); it is a dev tool, not part of bdcore.

Usage (from the repository root)::

    python tools/carry_sweep.py save runs/baiqa-livec .carry/baiqa-livec      # at the end of a session
    python tools/carry_sweep.py restore .carry/baiqa-livec runs/baiqa-livec   # at the start of the next

then ``bdcore sweep SPEC --out runs/baiqa-livec --resume``. The sweep's files hold absolute paths (the
spec, the store), so restore it where it ran. ``save`` mirrors: a file gone from the output root (a
training checkpoint whose stage finished) goes from the copy too. Files over ``--max-mb`` stay behind
(listed); the sweep recomputes what they held. ``--all-stages`` carries the finished cells' stages too.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

#: lock files: they name processes of the machine the sweep ran on
TRANSIENT = (".lock",)
#: a stored stage's folder under ``.stages``: ``<stage>-<16 hex key>``, ``.partial`` while it trains
STAGE_DIR = re.compile(r".+-(?P<key>[0-9a-f]{16})(\.partial)?")


def _needed_keys(root: Path) -> set[str]:
    """The stage keys that the unfinished cells of the sweeps under ``root`` plan to train or load."""
    keys: set[str] = set()
    for info_file in root.glob("*/sweep.json"):
        info = json.loads(info_file.read_text())
        for cell in info.get("cells", []):
            if cell.get("status") != "done":
                keys.update(str(k) for k in (cell.get("planned_stages") or {}).values())
    return keys


def _carried(root: Path, max_bytes: int, all_stages: bool = False) -> tuple[list[Path], list[Path], int]:
    """The files of ``root`` to carry, the ones too large to (both relative to ``root``) and how many
    files of stages no unfinished cell uses were left behind."""
    needed = _needed_keys(root)
    keep, large, unused = [], [], 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.endswith(TRANSIENT) or part == ".locks" for part in rel.parts):
            continue
        stage = STAGE_DIR.fullmatch(rel.parts[1]) if len(rel.parts) > 2 and rel.parts[0] == ".stages" else None
        if stage is not None and not all_stages and stage["key"] not in needed:
            unused += 1
            continue
        (keep if path.stat().st_size <= max_bytes else large).append(rel)
    return keep, large, unused


def save(out_root: Path, dest: Path, max_mb: float, all_stages: bool = False) -> int:
    if not out_root.is_dir():
        print(f"carry_sweep: {out_root} is not a folder", file=sys.stderr)
        return 2
    keep, large, unused = _carried(out_root, int(max_mb * 2**20), all_stages)
    wanted = set(keep)
    if dest.is_dir():
        for old in sorted(p for p in dest.rglob("*") if p.is_file()):
            if old.relative_to(dest) not in wanted:
                old.unlink()
    for rel in keep:
        target = dest / rel
        source = out_root / rel
        if (
            target.is_file()
            and target.stat().st_size == source.stat().st_size
            and target.read_bytes() == source.read_bytes()
        ):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    size = sum((dest / rel).stat().st_size for rel in keep)
    print(f"carry_sweep: {len(keep)} files, {size / 2**20:.1f} MiB in {dest}")
    if unused:
        print(f"  left behind: {unused} files of stored stages no unfinished cell uses (--all-stages carries them)")
    for rel in large:
        print(f"  left behind (over {max_mb:g} MiB): {rel}")
    return 0


def restore(src: Path, out_root: Path) -> int:
    if not src.is_dir():
        print(f"carry_sweep: {src} is not a folder", file=sys.stderr)
        return 2
    files = [p for p in src.rglob("*") if p.is_file()]
    for path in files:
        target = out_root / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    print(f"carry_sweep: {len(files)} files into {out_root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_save = sub.add_parser("save", help="mirror a sweep's output root into a folder to commit")
    p_save.add_argument("out_root", type=Path)
    p_save.add_argument("dest", type=Path)
    p_save.add_argument("--max-mb", type=float, default=20.0, help="leave files larger than this behind")
    p_save.add_argument("--all-stages", action="store_true", help="carry the finished cells' stages too")
    p_restore = sub.add_parser("restore", help="copy a carried sweep back into its output root")
    p_restore.add_argument("src", type=Path)
    p_restore.add_argument("out_root", type=Path)
    args = parser.parse_args(argv)
    if args.command == "save":
        return save(args.out_root, args.dest, args.max_mb, args.all_stages)
    return restore(args.src, args.out_root)


if __name__ == "__main__":
    sys.exit(main())
