"""The toy plugin's hook implementations (entry point ``toy`` of the ``bdcore`` distribution).

Factories are lazy ``"module:attr"`` strings, so ``bdcore list`` and ``bdcore check`` never
import :mod:`bdcore.toy.components`.
"""

from __future__ import annotations

from bdcore import hookimpl
from bdcore.registry import Register
from bdcore.toy.params import DenoiserParams, InvertParams, PatchParams, SmoothParams

_SUMMARY = " (toy plugin: seconds on a CPU)"


@hookimpl
def register_victims(register: Register) -> None:
    register(
        "toy-denoiser",
        "bdcore.toy.components:ToyDenoiser",
        params=DenoiserParams,
        summary="Tiny residual CNN denoiser, image-to-image" + _SUMMARY,
    )


@hookimpl
def register_triggers(register: Register) -> None:
    register(
        "toy-patch",
        "bdcore.toy.components:ToyPatch",
        params=PatchParams,
        summary="White corner square plus a faint checkerboard" + _SUMMARY,
    )


@hookimpl
def register_attack_losses(register: Register) -> None:
    register(
        "toy-invert",
        "bdcore.toy.components:ToyInvert",
        params=InvertParams,
        summary="Data-poisoning: poisoned outputs → the inverted image" + _SUMMARY,
    )
    register(
        "toy-invert-controlled",
        "bdcore.toy.components:ToyInvertControlled",
        params=InvertParams,
        summary="Training-controlled variant of toy-invert (clean + backdoor L1 loss)" + _SUMMARY,
    )


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "toy-smooth",
        "bdcore.toy.components:ToySmooth",
        params=SmoothParams,
        summary="Seeded smooth random images, input = target (no files)" + _SUMMARY,
    )
