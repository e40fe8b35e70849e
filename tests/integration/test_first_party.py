"""With every plugin installed: ``bdcore.first_party`` lists exactly what the first-party plugins register,
so the missing-plugin message (exit 3, the distribution's pip line) cannot name a stale distribution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_first_party_table_matches_the_plugins_registrations() -> None:
    spec = importlib.util.spec_from_file_location("gen_first_party", ROOT / "tools" / "gen_first_party.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    from bdcore.first_party import FIRST_PARTY

    live = gen.table()
    assert live == FIRST_PARTY, "src/bdcore/first_party.py is stale: run python tools/gen_first_party.py"
    assert (ROOT / "src" / "bdcore" / "first_party.py").read_text() == gen.render(live)
