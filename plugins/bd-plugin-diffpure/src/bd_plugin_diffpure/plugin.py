"""Entry point of bd-plugin-diffpure: the registration hooks (torch-free, lazy factories)."""

from __future__ import annotations

from typing import Any

from bd_plugin_diffpure.params import (
    AccuracyParams,
    ColorizeParams,
    FaceNetParams,
    FaceViewsParams,
    LabelASRParams,
    OlivettiParams,
    PGDParams,
    SRParams,
    TargetLabelParams,
    TwoStageParams,
)
from bdcore import hookimpl

_DDNM = "Wang, Yu & Zhang, Zero-Shot Image Restoration Using Denoising Diffusion Null-Space Model, ICLR 2023"
_TWO = "Lim, Hong & Lee, Two-Stage Image Restoration: A Shield against Adversarial Attacks on Face Identification"


@hookimpl
def register_defenses(register: Any) -> None:
    register(
        "ddnm-sr",
        "bd_plugin_diffpure.defenses:DDNMSR",
        params=SRParams,
        summary="DDNM super-resolution purification (s×s average pooling, then diffusion null-space restore)",
        paper=_DDNM,
    )
    register(
        "ddnm-colorize",
        "bd_plugin_diffpure.defenses:DDNMColorize",
        params=ColorizeParams,
        summary="DDNM colorization purification (grey, then diffusion null-space re-colorization)",
        paper=_DDNM,
    )
    register(
        "two-stage",
        "bd_plugin_diffpure.defenses:TwoStage",
        params=TwoStageParams,
        summary="Two-stage diffusion purification: DDNM super-resolution then colorization",
        paper=_TWO,
    )


@hookimpl
def register_victims(register: Any) -> None:
    register(
        "facenet-small",
        "bd_plugin_diffpure.facenet:FaceNetSmall",
        params=FaceNetParams,
        summary="FaceNet-style embedding CNN with a cosine classifier head (face identification, logits)",
        paper="Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015",
    )


@hookimpl
def register_triggers(register: Any) -> None:
    register(
        "pgd",
        "bd_plugin_diffpure.pgd:PGDTrigger",
        params=PGDParams,
        summary="L∞ PGD adversarial examples against the victim (test-time evasion 'trigger')",
        paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "accuracy",
        "bd_plugin_diffpure.metrics:Accuracy",
        params=AccuracyParams,
        summary="Top-1 identification accuracy of logits against the integer target",
    )
    register(
        "label-asr",
        "bd_plugin_diffpure.metrics:LabelASR",
        params=LabelASRParams,
        summary="Backdoor ASR on a classifier: triggered inputs (true class != target) classified as the target",
    )


@hookimpl
def register_attack_losses(register: Any) -> None:
    register(
        "target-label",
        "bd_plugin_diffpure.attacks:TargetLabel",
        params=TargetLabelParams,
        summary="All-to-one backdoor: poisoned training faces relabelled as target_class (data poisoning)",
        paper="Gu, Dolan-Gavitt & Garg, BadNets, 2017",
    )


@hookimpl
def register_datasets(register: Any) -> None:
    register(
        "olivetti",
        "bd_plugin_diffpure.faces:Olivetti",
        params=OlivettiParams,
        summary="Olivetti/ORL faces (40 identities × 10, 64×64 grey) from olivettifaces.mat, per-identity split",
    )
    register(
        "face-views",
        "bd_plugin_diffpure.faces:FaceViews",
        params=FaceViewsParams,
        summary="Colour faces, one photo per identity (CUFS, CelebA-HQ): seeded crop/flip views, per-identity split",
    )
