#!/usr/bin/env python3
"""After a full CI run: fail when a test module ran in no session for a reason CI could have avoided.

Every pytest session of ``noxfile.py`` records, per module, how many tests ran and why others were
skipped (``bdcore.testing.ledger``, one JSON-lines file per session under ``.bdenv/test-ledger``). A module

* that no session collected (a test folder nobody runs), or
* whose tests were skipped in every session that collected it, for any reason but missing shared data
  or an opt-in slow test (``BDCORE_SLOW``): e.g. ``could not import 'bd_plugin_baselines'`` in the
  plugin's own session and no session that has both plugins,

is reported, and the check exits 1. Missing data is allowed because the data lives outside the
repository (``../shared/data``); a plugin or a package is not: every plugin is installed in the
``integration`` session and every package in the base environment.

    python tools/check_test_ledger.py LEDGER_DIR SESSION...   # SESSION: the sessions that must have written
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: skip reasons that no CI environment can avoid: data outside the repository, opt-in slow tests
ALLOWED = re.compile(r"not available|not present|not found|absent|BDCORE_SLOW", re.IGNORECASE)
TEST_FOLDERS = ("tests", "plugins/*/tests", "docs/example_plugin/tests")


def test_modules(root: Path = ROOT) -> list[Path]:
    return sorted(p.resolve() for folder in TEST_FOLDERS for d in root.glob(folder) for p in d.rglob("test_*.py"))


def problems(ledger_dir: Path, sessions: list[str], root: Path = ROOT) -> list[str]:
    out = []
    ran: dict[str, int] = defaultdict(int)
    reasons: dict[str, set[str]] = defaultdict(set)
    seen_in: dict[str, set[str]] = defaultdict(set)
    for session in sessions:
        path = ledger_dir / f"{session}.jsonl"
        if not path.is_file():
            out.append(f"no ledger from session {session} ({path}): run the whole CI (python3 tools/dev.py test)")
            continue
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            ran[rec["module"]] += rec["ran"]
            reasons[rec["module"]].update(rec["reasons"])
            seen_in[rec["module"]].add(rec["session"])
    for module in test_modules(root):
        key, name = str(module), module.relative_to(root.resolve())
        if key not in seen_in:
            out.append(f"{name}: no CI session collects it")
        elif ran[key] == 0:
            avoidable = sorted(r for r in reasons[key] if not ALLOWED.search(r))
            if avoidable or not reasons[key]:
                why = "; ".join(avoidable) or "no test ran"
                out.append(f"{name}: skipped in every session ({', '.join(sorted(seen_in[key]))}): {why}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems(Path(argv[0]), argv[1:])
    for p in found:
        print(f"test ledger: {p}", file=sys.stderr)
    if not found:
        print(f"test ledger: every test module ran in at least one of {len(argv) - 1} sessions")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
