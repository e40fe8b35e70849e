"""Params of the baseline triggers (torch-free attrs classes; defaults and their sources in README.triggers.md)."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

from bdcore.params import MAX_SEED, steps_bounds

_nonneg = v.ge(0.0)
_pos = v.gt(0)
_unit = [v.ge(0.0), v.le(1.0)]


def _seed(inst: object, attribute: attrs.Attribute, value: int | None) -> None:  # type: ignore[type-arg]
    if value is not None and not 0 <= value <= MAX_SEED:
        raise ValueError(f"must be >= 0 and <= {MAX_SEED} (got {value})")


@attrs.frozen
class BadNetsParams:
    """``size``: patch side as a fraction of min(H, W) (BackdoorBench 3/32; BAvAFT 0.1), or
    ``size_px`` pixels if set. ``position``: a corner or "center"; ``margin``: fraction of min(H, W)
    between patch and border (0: flush with the corner, BackdoorBench's rows/columns 29–31 at 32²).
    ``pattern``: "white", "checker" (3×3), "backdoorbench" (BackdoorBench's 32×32 trigger image
    resized to H×W as BackdoorBench does; size/position/margin unused), or an image path /
    "embedded:<scene>" (stamped where the resized pattern > 0)."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    size: float = attrs.field(default=3 / 32, validator=[v.gt(0.0), v.le(1.0)])
    size_px: int | None = attrs.field(default=None, validator=v.optional(v.gt(0)))
    position: Literal["bottom-right", "bottom-left", "top-right", "top-left", "center"] = "bottom-right"
    margin: float = attrs.field(default=0.0, validator=_unit)
    pattern: str = "white"


@attrs.frozen
class BlendedParams:
    """``x + strength·alpha·(k − x)``; ``pattern``: "noise" (seeded uniform, generated at
    ``noise_size``² and resized — resolution-stable) or an image path / "embedded:<scene>"."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    alpha: float = attrs.field(default=0.2, validator=_unit)
    pattern: str = "noise"
    noise_size: int | None = attrs.field(default=None, validator=v.optional(v.gt(0)))
    seed: int | None = attrs.field(default=None, validator=_seed)


@attrs.frozen
class SigParams:
    """``x + strength·Δ/255·sin(2π·j·f/W)`` along the columns j (Barni et al. 2019: Δ = 20, f = 6)."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    delta: float = attrs.field(default=20.0, validator=_nonneg)
    frequency: float = attrs.field(default=6.0, validator=_pos)
    orientation: Literal["horizontal", "vertical"] = "horizontal"


@attrs.frozen
class WaNetParams:
    """Warping field: ``k``×``k`` control grid, warp ``s``, ``grid_rescale``; ``mode = "noise"``
    applies the WaNet "cross" (noise) warp: the fixed field plus fresh U(−1,1)/H noise."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    k: int = attrs.field(default=4, validator=v.ge(2))
    s: float = attrs.field(default=0.5, validator=_nonneg)
    grid_rescale: float = attrs.field(default=1.0, validator=_pos)
    mode: Literal["warp", "noise"] = "warp"
    seed: int | None = attrs.field(default=None, validator=_seed)


def _pseudo_patterns(inst: FIBAParams, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:  # type: ignore[type-arg]
    if inst.pattern in value:
        raise ValueError(f"must not contain the trigger pattern itself ({inst.pattern!r})")


@attrs.frozen
class FIBAParams:
    """Amplitude blend ``(1 − α)·A_x + α·A_t`` in the centred low-frequency square of half
    side ⌊β·min(H, W)⌋; ``pattern``: trigger image path or "embedded:<scene>".
    ``pseudo_patterns``: the images of the "cross" (pseudo-trigger) samples, paths or
    "embedded:<scene>"; empty = the embedded non-face photographs other than ``pattern``."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    alpha: float = attrs.field(default=0.15, validator=_unit)
    beta: float = attrs.field(default=0.1, validator=[v.ge(0.0), v.le(0.5)])
    pattern: str = "embedded:coffee"
    pseudo_patterns: tuple[str, ...] = attrs.field(default=(), validator=_pseudo_patterns)


@attrs.frozen
class FTrojanParams:
    """Block-DCT trigger (BackdoorBench defaults: magnitude 30, (15,15)+(31,31), UV, window 32).
    ``variant``: "original", "mid50-high50", "baiqa-mid64" (window 16) or "custom" (``positions``).
    ``compat_uint8``: bit-exact official uint8 truncate/wrap pipeline instead of clamping."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    magnitude: float = attrs.field(default=30.0, validator=_nonneg)
    window: int = attrs.field(default=32, validator=v.ge(2))
    variant: Literal["original", "mid50-high50", "baiqa-mid64", "custom"] = "original"
    positions: tuple[tuple[int, int], ...] = ()
    channels: tuple[Literal["y", "cb", "cr"], ...] = ("cb", "cr")
    compat_uint8: bool = False


@attrs.frozen
class LIRAParams:
    """``clip(x + strength·eps·G(x))``, G a small U-Net with tanh output.
    ``fit`` (when fit_steps > 0) trains G against the clean victim to move its outputs towards
    the attack target (``target``: "zeros" image / "ones" / "blur"); joint training happens
    through a training-controlled attack loss with ``trains_trigger``."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    eps: float = attrs.field(default=0.05, validator=_nonneg)
    width: int = attrs.field(default=16, validator=v.ge(4))
    depth: int = attrs.field(default=2, validator=v.ge(1))
    lr: float = attrs.field(default=1e-4, validator=_pos)
    target: Literal["zeros", "ones", "invert"] = "zeros"


@attrs.frozen
class ISSBAParams:
    """StegaStamp-style encoder/decoder. ``bits``: secret length; ``secret``: a string whose
    UTF-8 bits (padded/truncated) form the secret, or "" for a seeded random secret.
    Training: ``steps`` (0 → the run's fit_steps), ``lr``, loss = ``bce_weight``·BCE(secret)
    + ``l2_weight``·‖residual‖², the residual bounded by ``eps`` (tanh)."""

    strength: float = attrs.field(default=1.0, validator=_nonneg)
    bits: int = attrs.field(default=20, validator=v.ge(1))
    secret: str = ""
    width: int = attrs.field(default=32, validator=v.ge(4))
    eps: float = attrs.field(default=0.1, validator=_pos)
    steps: int = attrs.field(default=0, validator=steps_bounds())
    lr: float = attrs.field(default=1e-3, validator=_pos)
    bce_weight: float = attrs.field(default=1.0, validator=_nonneg)
    l2_weight: float = attrs.field(default=2.0, validator=_nonneg)
    secret_only_steps: int = attrs.field(default=0, validator=steps_bounds())
    seed: int | None = attrs.field(default=None, validator=_seed)
