"""A pytest plugin that records, per test module, how many tests ran and why the others were skipped.

CI loads it in every session (``pytest -p bdcore.testing.ledger``, ``BDCORE_TEST_LEDGER`` naming a JSON-lines
file, ``BDCORE_TEST_SESSION`` the nox session); ``tools/check_test_ledger.py`` then reads every session's
lines and fails when a test module ran nowhere for a reason the CI could have avoided (a plugin that no
session installs next to it, a missing package) — a test that never runs is a test that cannot fail.
Without ``BDCORE_TEST_LEDGER`` the plugin does nothing.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any


def _reason(longrepr: Any) -> str:
    """The skip reason of a report (``longrepr`` is ``(file, line, "Skipped: reason")`` for skips)."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr).strip().splitlines()[-1] if longrepr else ""


class Ledger:
    """Counts per module: ``ran`` (passed, failed, xfailed or xpassed), ``skipped``, and the skip reasons."""

    def __init__(self, path: Path, session: str, root: Path) -> None:
        self.path = path
        self.session = session
        self.root = root
        self.ran: dict[str, int] = defaultdict(int)
        self.skipped: dict[str, int] = defaultdict(int)
        self.reasons: dict[str, set[str]] = defaultdict(set)

    def _module(self, nodeid: str) -> str:
        return str((self.root / nodeid.split("::", 1)[0]).resolve())

    def pytest_collectreport(self, report: Any) -> None:
        if report.skipped and report.nodeid.endswith(".py"):  # the whole module (importorskip, skip at import)
            module = self._module(report.nodeid)
            self.skipped[module] += 1
            self.reasons[module].add(_reason(report.longrepr))

    def pytest_runtest_logreport(self, report: Any) -> None:
        module = self._module(report.nodeid)
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped[module] += 1
            self.reasons[module].add(_reason(report.longrepr))
        elif report.when == "call" or (report.when == "setup" and report.failed):
            self.ran[module] += 1

    def pytest_sessionfinish(self, session: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for module in sorted(set(self.ran) | set(self.skipped)):
                record = {
                    "session": self.session,
                    "module": module,
                    "ran": self.ran[module],
                    "skipped": self.skipped[module],
                    "reasons": sorted(self.reasons[module]),
                }
                fh.write(json.dumps(record) + "\n")


def pytest_configure(config: Any) -> None:
    path = os.environ.get("BDCORE_TEST_LEDGER")
    if path:
        session = os.environ.get("BDCORE_TEST_SESSION", "pytest")
        config.pluginmanager.register(Ledger(Path(path), session, Path(config.rootpath)), "bdcore-test-ledger")
