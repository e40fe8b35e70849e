"""Helpers for components' params classes (torch-free: spec checking imports params modules).

A stage (a trained clean victim, a fitted trigger, an attack) is stored under a hash of the spec parts it
depends on, params included. A param that only changes how a trained model is *evaluated* (a coding batch
size, which of several trained triggers the test set gets) should not make bdcore retrain: declare it
with :func:`eval_only` and it is left out of every stage key.
"""

from __future__ import annotations

from typing import Any

import attrs

#: ``attrs`` field metadata key; ``False`` keeps the field out of stage keys.
STAGE_KEY = "bdcore_stage_key"


def eval_only(default: Any, **kwargs: Any) -> Any:
    """An ``attrs`` field that does not change what is trained (left out of stage keys).

    Use only for params that the training of any stage never reads, e.g.
    ``coding_batch: int = eval_only(16, validator=v.ge(1))``.
    """
    metadata = {**kwargs.pop("metadata", {}), STAGE_KEY: False}
    return attrs.field(default=default, metadata=metadata, **kwargs)


def in_stage_key(field: attrs.Attribute) -> bool:  # type: ignore[type-arg]
    """Whether ``field`` counts in stage keys (every field not declared with :func:`eval_only`)."""
    return bool(field.metadata.get(STAGE_KEY, True))
