"""bdcore's built-in components, registered through the same hooks as any plugin."""

from __future__ import annotations

from bdcore import hookimpl
from bdcore.builtin.params import (
    EmbeddedParams,
    IdentityFolderParams,
    ImageFolderParams,
    NoneTriggerParams,
    PairedFolderParams,
    PairMetricParams,
    ScoredCsvParams,
)
from bdcore.observe.params import MlflowParams, TensorBoardParams
from bdcore.registry import Register


@hookimpl
def register_triggers(register: Register) -> None:
    register(
        "none",
        "bdcore.builtin.components:NoTrigger",
        params=NoneTriggerParams,
        summary="No trigger: inputs pass unchanged (the clean reference)",
    )


@hookimpl
def register_attack_losses(register: Register) -> None:
    register(
        "evasion",
        "bdcore.builtin.components:Evasion",
        summary="Test-time attack: the trigger (e.g. PGD) perturbs test inputs only; nothing is poisoned",
    )


@hookimpl
def register_defenses(register: Register) -> None:
    register("none", "bdcore.builtin.components:NoDefense", summary="No defense: the attacked model as it is")


@hookimpl
def register_metrics(register: Register) -> None:
    register(
        "psnr",
        "bdcore.builtin.components:PSNR",
        params=PairMetricParams,
        summary="Peak signal-to-noise ratio (dB) between two fields, per image, averaged",
    )
    register(
        "ssim",
        "bdcore.builtin.components:SSIM",
        params=PairMetricParams,
        summary="SSIM (Gaussian 11x11, sigma 1.5) between two fields",
        paper="Wang et al., TIP 2004",
    )
    register(
        "ms-ssim",
        "bdcore.builtin.components:MSSSIM",
        params=PairMetricParams,
        summary="Multi-scale SSIM between two fields",
        paper="Wang et al., Asilomar 2003",
    )


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "embedded",
        "bdcore.data.embedded:Embedded",
        params=EmbeddedParams,
        summary="Real photographs shipped inside installed packages (no download)",
    )
    register(
        "image-folder",
        "bdcore.data.sources:ImageFolder",
        params=ImageFolderParams,
        summary="A folder of images; input = target (compression, Kodak)",
    )
    register(
        "paired-folder",
        "bdcore.data.sources:PairedFolder",
        params=PairedFolderParams,
        summary="Two folders paired by file stem (LQ/HQ, photo/sketch)",
    )
    register(
        "scored-csv",
        "bdcore.data.sources:ScoredCsv",
        params=ScoredCsvParams,
        summary="Images with a quality score from a CSV (LIVEC, KonIQ-10k)",
    )
    register(
        "identity-folder",
        "bdcore.data.sources:IdentityFolder",
        params=IdentityFolderParams,
        summary="One sub-folder per identity; target = class index (ORL, CASIA-WebFace)",
    )


@hookimpl
def register_observers(register: Register) -> None:
    register(
        "tensorboard",
        "bdcore.observe.tensorboard_observer:TensorBoardObserver",
        params=TensorBoardParams,
        summary="TensorBoard event files: training curves, eval metrics, image grids, the spec (the tensorboard extra)",
    )
    register(
        "mlflow",
        "bdcore.observe.mlflow_observer:MlflowObserver",
        params=MlflowParams,
        summary="MLflow runs: spec as params, metrics per step, report and results as artifacts (the mlflow extra)",
    )
