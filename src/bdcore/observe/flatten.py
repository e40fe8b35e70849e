"""Nested spec data → flat dotted keys, and names that trackers accept."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"attack": {"trigger": {"use": "x"}}, "defense": [{"use": "jpeg"}]}`` →
    ``{"attack.trigger.use": "x", "defense.0.use": "jpeg"}``. Lists of scalars stay one value
    (``between = ["input", "clean_input"]``); empty tables and lists are left out."""
    out: dict[str, Any] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list | tuple) and any(isinstance(v, Mapping | list | tuple) for v in data):
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}.{i}" if prefix else str(i)))
    elif isinstance(data, list | tuple):
        if data:
            out[prefix] = list(data)
    else:
        out[prefix] = data
    return out


_UNSAFE = re.compile(r"[^\w.\- /]")


def safe_key(key: str, max_length: int = 250) -> str:
    """A metric or param name MLflow accepts on every OS: letters, digits, ``_ - . / space``;
    other characters become ``_`` (``psnr[input,clean_input]`` → ``psnr_input_clean_input_``);
    no empty, ``.`` or ``..`` path segments."""
    parts = [p.strip() for p in _UNSAFE.sub("_", key).split("/")]
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in parts if p]
    return "/".join(parts)[:max_length] or "_"


def row_tag(row: Mapping[str, Any]) -> str:
    """The tracker tag of one result row: ``eval/<model>/<split>/<metric>``, where the model is
    ``clean-victim``, ``attacked``, ``trigger`` (stealth rows) or the defense label with its
    sweep setting (``jpeg@quality=50``), as in the results table."""
    model = str(row.get("defense") or row.get("stage") or "run")
    if row.get("defense") and row.get("setting"):
        model += f"@{row['setting']}"
    parts = ["eval", model]
    if row.get("split"):
        parts.append(str(row["split"]))
    parts.append(str(row.get("metric")))
    return "/".join(p.replace("/", "_") for p in parts)
