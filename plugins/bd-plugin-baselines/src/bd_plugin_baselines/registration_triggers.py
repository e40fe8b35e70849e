"""``register_triggers`` of bd-plugin-baselines (torch-free: lazy ``module:attr`` factories)."""

from __future__ import annotations

from bd_plugin_baselines.params_triggers import (
    BadNetsParams,
    BlendedParams,
    FIBAParams,
    FTrojanParams,
    ISSBAParams,
    LIRAParams,
    SigParams,
    WaNetParams,
)
from bdcore import hookimpl

_T = "bd_plugin_baselines.triggers"


@hookimpl
def register_triggers(register) -> None:  # noqa: ANN001
    register(
        "badnets",
        f"{_T}.badnets:BadNets",
        params=BadNetsParams,
        summary="Patch stamp (white/pattern), size and position relative to the image",
        paper="Gu et al., BadNets, IEEE Access 2019",
    )
    register(
        "blended",
        f"{_T}.blended:Blended",
        params=BlendedParams,
        summary="Blend with a pattern image or seeded uniform noise",
        paper="Chen et al., arXiv:1712.05526, 2017",
    )
    register(
        "sig",
        f"{_T}.sig:SIG",
        params=SigParams,
        summary="Additive sinusoidal signal (Δ, f)",
        paper="Barni et al., ICIP 2019",
    )
    register(
        "wanet",
        f"{_T}.wanet:WaNet",
        params=WaNetParams,
        summary="Seeded smooth warping field (k, s), noise/cross mode",
        paper="Nguyen & Tran, ICLR 2021",
    )
    register(
        "fiba",
        f"{_T}.fiba:FIBA",
        params=FIBAParams,
        summary="Low-frequency amplitude-spectrum blend with a trigger image",
        paper="Feng et al., CVPR 2022",
    )
    register(
        "ftrojan",
        f"{_T}.ftrojan:FTrojan",
        params=FTrojanParams,
        summary="Block-DCT chroma trigger (original / 50 mid+50 high / BAIQA mid-64)",
        paper="Wang et al., ECCV 2022",
    )
    register(
        "lira",
        f"{_T}.lira:LIRA",
        params=LIRAParams,
        summary="Learnable generator, ε-bounded tanh additive trigger (joint training)",
        paper="Doan et al., ICCV 2021",
    )
    register(
        "issba",
        f"{_T}.issba:ISSBA",
        params=ISSBAParams,
        summary="StegaStamp-style encoder/decoder, sample-specific residual from a secret",
        paper="Li et al., ICCV 2021",
    )
