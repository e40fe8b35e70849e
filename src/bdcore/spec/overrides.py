"""``--set KEY=VALUE``: change values of a spec from the command line.

One spec file then covers a family of runs (every quality of a codec, every poison ratio)
without copies: ``bdcore run spec.toml --set victim.params.quality=5``. Overrides are applied
to the parsed TOML before it is validated, so a bad value is reported like a bad file value, and
``spec.resolved.toml`` and the stage keys reflect them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bdcore.errors import Issue

_INDEX = re.compile(r"\[(\d+)\]")


def parse_value(text: str) -> Any:
    """A TOML value (``5``, ``1e-4``, ``true``, ``"x"``, ``[1, 2]``, ``{ a = 1 }``); text that is
    not a TOML value is taken as a plain string (``/data/kodak``, ``bmshj2018-hyperprior``)."""
    import tomli

    try:
        return tomli.loads(f"v = {text}")["v"]
    except tomli.TOMLDecodeError:
        return text


def split_key(key: str) -> list[str]:
    """``defense[1].params.quality`` or ``defense.1.params.quality`` → ``["defense", "1", "params", "quality"]``."""
    return _INDEX.sub(r".\1", key.strip()).split(".")


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> list[Issue]:
    """Set each ``KEY=VALUE`` in ``raw`` (in place, in order); missing tables are created.

    ``KEY`` is a dotted TOML key; arrays of tables (``[[metric]]``, ``[[defense]]``) take an index,
    ``metric.2.params.splits`` or ``metric[2].params.splits``. Returns one :class:`Issue` per
    override that cannot be applied (the key names the override).
    """
    issues: list[Issue] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = split_key(key)
        if not sep or not key.strip() or any(not p for p in parts):
            issues.append(Issue(f"--set {item}", "expected KEY=VALUE", "e.g. --set victim.params.quality=5"))
            continue
        node: Any = raw
        for depth, part in enumerate(parts):
            here = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    issues.append(Issue(here, f"--set: no entry {part} (the spec has {len(node)}, numbered from 0)"))
                    break
                if last:
                    node[int(part)] = parse_value(text)
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                issues.append(Issue(".".join(parts[:depth]), "--set: this is a value, not a table"))
                break
            if last:
                node[part] = parse_value(text)
            else:
                node = node.setdefault(part, {})
    return issues
