"""Entry point of bd-plugin-asfiba: registration hooks (torch-free, lazy factories)."""

from __future__ import annotations

from bd_plugin_asfiba.params import (
    ASFIBAParams,
    DegradedFacesParams,
    FreqDistanceParams,
    LQFolderParams,
    NIQEParams,
    RestorationModuleParams,
    RestorationRuleParams,
    RRDBRestorerParams,
    SDDFIQAParams,
    SFINetParams,
    UNetRestorerParams,
)
from bdcore import hookimpl

PAPER = "Song et al., AS-FIBA: Adaptive Selective Frequency-Injection for Backdoor Attack on Deep Face Restoration, arXiv 2403.06430"


@hookimpl
def register_triggers(register):  # type: ignore[no-untyped-def]
    register(
        "sf-i-net",
        "bd_plugin_asfiba.trigger:SFINetTrigger",
        params=SFINetParams,
        summary="AS-FIBA's SF-I-Net: SFNet-based frequency injection of a trigger image (learnable, Eq. 3)",
        paper=PAPER,
    )


@hookimpl
def register_victims(register):  # type: ignore[no-untyped-def]
    register(
        "unet-restorer",
        "bd_plugin_asfiba.victims:UNetRestorer",
        params=UNetRestorerParams,
        summary="Small residual U-Net face restorer (CPU-trainable)",
    )
    register(
        "rrdb-restorer",
        "bd_plugin_asfiba.victims:RRDBRestorer",
        params=RRDBRestorerParams,
        summary="RRDB (ESRGAN-style) face restorer at scale 1 (CPU-trainable)",
    )
    register(
        "restoration-module",
        "bd_plugin_asfiba.victims:RestorationModule",
        params=RestorationModuleParams,
        summary="Any installed restoration nn.Module (import path + local checkpoint)",
    )


@hookimpl
def register_attack_losses(register):  # type: ignore[no-untyped-def]
    register(
        "asfiba",
        "bd_plugin_asfiba.attack:ASFIBA",
        params=ASFIBAParams,
        summary="Eq. 5: degradation objective I_0.1 with pseudo triggers (training-controlled)",
        paper=PAPER,
    )


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(
        "asfiba-asr",
        "bd_plugin_asfiba.metrics:RestorationASR",
        params=RestorationRuleParams,
        summary="ASR (%): triggered outputs closer to I_0.1 than to the clean model's output",
        paper=PAPER,
    )
    register(
        "asfiba-ba",
        "bd_plugin_asfiba.metrics:RestorationBA",
        params=RestorationRuleParams,
        summary="BA (%): clean outputs closer to the clean model's output than to I_0.1",
        paper=PAPER,
    )
    register(
        "asfiba-freq-distance",
        "bd_plugin_asfiba.metrics:FreqDistance",
        params=FreqDistanceParams,
        summary="Table IV: low/high-frequency amplitude-spectrum distance, triggered vs benign input (FIBA window)",
        paper=PAPER,
    )
    register(
        "niqe",
        "bd_plugin_asfiba.metrics:NIQE",
        params=NIQEParams,
        summary="NIQE with the MATLAB pristine model from the basicsr 1.4.2 sdist",
    )
    register(
        "sdd-fiqa",
        "bd_plugin_asfiba.metrics:SDDFIQA",
        params=SDDFIQAParams,
        summary="SDD-FIQA face quality (IR-50, user checkpoint)",
    )


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register(
        "degraded-faces",
        "bd_plugin_asfiba.data:DegradedFaces",
        params=DegradedFacesParams,
        summary="HQ faces → seeded BFR degradation (blur, downsample, noise, JPEG), paired",
    )
    register(
        "lq-folder",
        "bd_plugin_asfiba.data:LQFolder",
        params=LQFolderParams,
        summary="Real low-quality faces without ground truth",
    )
