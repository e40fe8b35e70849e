"""Helpers for components' params classes (torch-free: spec checking imports params modules).

A stage (a trained clean victim, a fitted trigger, an attack) is stored under a hash of the spec parts it
depends on, params included. A param that only changes how a trained model is *evaluated* (a coding batch
size, which of several trained triggers the test set gets) should not make bdcore retrain: declare it
with :func:`eval_only` and it is left out of every stage key.
"""

from __future__ import annotations

from typing import Any

import attrs
from attrs import validators as v

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


# -- documented bounds -----------------------------------------------------------------------------
# A value outside these passes TOML but cannot run: a seed torch's generators refuse, a step count
# that never finishes, a batch or an image side no machine holds. ``bdcore check`` rejects them with
# the key named. (Every number must also be finite and every integer fit in 64 bits: the spec
# converter checks that for every field, see :mod:`bdcore.spec.converter`.)

#: Largest seed: torch and numpy generators take any seed in [0, 2^63 - 1].
MAX_SEED = 2**63 - 1
#: Most optimisation steps of one stage (10^8: about three years at one step a second).
MAX_STEPS = 100_000_000
#: Largest batch size.
MAX_BATCH_SIZE = 65_536
#: Largest image side in pixels (a 16384² RGB float image is 3 GiB).
MAX_IMAGE_SIDE = 16_384


def seed_bounds() -> Any:
    """Validator of a seed: ``0 <= seed <= MAX_SEED``."""
    return v.and_(v.ge(0), v.le(MAX_SEED))


def steps_bounds(minimum: int = 0) -> Any:
    """Validator of a number of optimisation steps: ``minimum <= steps <= MAX_STEPS``."""
    return v.and_(v.ge(minimum), v.le(MAX_STEPS))


def batch_size_bounds(minimum: int = 1) -> Any:
    """Validator of a batch size: ``minimum <= batch_size <= MAX_BATCH_SIZE``."""
    return v.and_(v.ge(minimum), v.le(MAX_BATCH_SIZE))


def image_side_bounds(minimum: int = 1) -> Any:
    """Validator of an image side in pixels: ``minimum <= side <= MAX_IMAGE_SIDE``."""
    return v.and_(v.ge(minimum), v.le(MAX_IMAGE_SIDE))


def learning_rate_bounds() -> Any:
    """Validator of a learning rate: ``> 0`` (and finite, like every number)."""
    return v.gt(0.0)
