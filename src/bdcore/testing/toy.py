"""The toy plugin under its historical name: :mod:`bdcore.toy` re-exported.

The toy plugin ships with bdcore (entry point ``toy``); this module keeps the names tests and
plugins import (``from bdcore.testing.toy import ToyDenoiser``) and is itself a plugin module
(it re-exports the hook implementations of :mod:`bdcore.toy.plugin`).
"""

from __future__ import annotations

from bdcore.toy.components import ToyDenoiser, ToyInvert, ToyInvertControlled, ToyPatch, ToySmooth
from bdcore.toy.params import DenoiserParams, InvertParams, PatchParams, SmoothParams
from bdcore.toy.plugin import register_attack_losses, register_datasets, register_triggers, register_victims

__all__ = [
    "DenoiserParams",
    "InvertParams",
    "PatchParams",
    "SmoothParams",
    "ToyDenoiser",
    "ToyInvert",
    "ToyInvertControlled",
    "ToyPatch",
    "ToySmooth",
    "register_attack_losses",
    "register_datasets",
    "register_triggers",
    "register_victims",
]
