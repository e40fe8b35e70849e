"""Registration of the baseline defenses and metrics (torch-free: lazy ``"mod:attr"`` factories)."""

from __future__ import annotations

from typing import Any

from bd_plugin_baselines.params_defenses import (
    BitSqueezeParams,
    FinePruningParams,
    FineTuningParams,
    FreqDistanceParams,
    GaussianBlurParams,
    GaussianNoiseParams,
    GradCamParams,
    ImageAsrParams,
    JpegParams,
    LpipsParams,
    StealthParams,
    StripParams,
)
from bdcore import hookimpl

_D = "bd_plugin_baselines.defenses"
_M = "bd_plugin_baselines.metrics.components"


@hookimpl
def register_defenses(register: Any) -> None:
    register(
        "gaussian-blur",
        f"{_D}.input:GaussianBlur",
        params=GaussianBlurParams,
        summary="Test-time Gaussian blur of the input (σ; kernel from σ like scipy)",
        paper="input preprocessing as evaluated in Yu et al., BAvAFT++ (arXiv 2412.01646) Table V",
    )
    register(
        "gaussian-noise",
        f"{_D}.input:GaussianNoise",
        params=GaussianNoiseParams,
        summary="Test-time additive Gaussian noise (σ on [0, 1], seeded)",
        paper="input preprocessing as evaluated in Yu et al., BAvAFT++ (arXiv 2412.01646) Table V",
    )
    register(
        "jpeg",
        f"{_D}.input:Jpeg",
        params=JpegParams,
        summary="Test-time JPEG compression round trip (libjpeg, quality 1-100)",
        paper="input preprocessing as evaluated in Yu et al., BAvAFT++ (arXiv 2412.01646) Table V",
    )
    register(
        "bit-squeeze",
        f"{_D}.input:BitSqueeze",
        params=BitSqueezeParams,
        summary="Test-time colour-depth reduction to `bits` per channel",
        paper="Xu, Evans, Qi, Feature Squeezing, NDSS 2018",
    )
    register(
        "fine-tuning",
        f"{_D}.finetune:FineTuning",
        params=FineTuningParams,
        summary="Fine-tune a copy of the attacked victim on a clean fraction of the defender's data",
        paper="Liu, Dolan-Gavitt, Garg, Fine-Pruning, RAID 2018 (fine-tuning baseline)",
    )
    register(
        "fine-pruning",
        f"{_D}.pruning:FinePruning",
        params=FinePruningParams,
        summary="Prune the least clean-active channels of a conv layer, then optionally fine-tune",
        paper="Liu, Dolan-Gavitt, Garg, Fine-Pruning, RAID 2018",
    )
    register(
        "strip",
        f"{_D}.strip:Strip",
        params=StripParams,
        summary="STRIP detection by output consistency under superimposed clean images",
        paper="Gao et al., STRIP, ACSAC 2019 (adapted to image/score outputs)",
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "lpips",
        f"{_M}:Lpips",
        params=LpipsParams,
        summary="LPIPS via the lpips package, backbone from a local torchvision file",
        paper="Zhang et al., The Unreasonable Effectiveness of Deep Features, CVPR 2018",
    )
    register(
        "stealth",
        f"{_M}:Stealth",
        params=StealthParams,
        summary="Trigger stealth: PSNR/SSIM(/LPIPS) of triggered vs clean input (poisoned split)",
    )
    register(
        "freq-distance",
        f"{_M}:FreqDistance",
        params=FreqDistanceParams,
        summary="Low/high-frequency MSE between poisoned and clean input (FIBA window)",
        paper="AS-FIBA, arXiv 2403.06430, Table IV",
    )
    register(
        "image-asr",
        f"{_M}:ImageAsr",
        params=ImageAsrParams,
        summary="Share of outputs closer to the image attack target than to the clean reference",
    )
    register(
        "grad-cam",
        f"{_M}:GradCam",
        params=GradCamParams,
        summary="Grad-CAM of the victim on triggered vs clean inputs: map similarity, heat maps in the report grid",
        paper="Selvaraju et al., Grad-CAM, ICCV 2017; as used in AS-FIBA (arXiv 2403.06430) Fig. 7",
    )
