"""Entry point of bd-plugin-baiqa: the registration hooks (torch-free, lazy factories)."""

from __future__ import annotations

from typing import Any

from bd_plugin_baiqa import params as P
from bdcore import hookimpl

PAPER = "Yu et al., Backdoor Attacks against NR-IQA Models via a Scalable Trigger, AAAI 2025"
M = "bd_plugin_baiqa"


@hookimpl
def register_triggers(register: Any) -> None:
    register(
        "baiqa-dct",
        f"{M}.trigger:BaiqaDct",
        params=P.DctTriggerParams,
        summary="UAP-DCT trigger α·t in 16×16 YCbCr DCT blocks (BAIQA, code-exact)",
        paper=PAPER,
    )


@hookimpl
def register_victims(register: Any) -> None:
    register(
        "iqa-small",
        f"{M}.victims:SmallIqaNet",
        params=P.SmallIqaParams,
        summary="small CNN NR-IQA regressor, CPU-trainable",
        paper=None,
    )
    register(
        "cnniqa",
        f"{M}.victims:CnnIqa",
        params=P.CnnIqaParams,
        summary="CNNIQA: local normalisation, 32×32 patches, one conv + max/min pooling; learns from scratch",
        paper="Kang et al., CVPR 2014",
    )
    register(
        "wadiqam",
        f"{M}.pyiqa_victims:Wadiqam",
        params=P.WadiqamParams,
        summary="WaDIQaM-NR (pyiqa's layers): 10-layer VGG-like patch CNN with learned patch weights; from scratch",
        paper="Bosse et al., TIP 2018",
    )
    register(
        "hyperiqa",
        f"{M}.pyiqa_victims:HyperIqa",
        params=P.PyiqaVictimParams,
        summary="HyperIQA (pyiqa HyperNet), backbone from a local file",
        paper="Su et al., CVPR 2020",
    )
    register(
        "dbcnn",
        f"{M}.pyiqa_victims:Dbcnn",
        params=P.PyiqaVictimParams,
        summary="DBCNN (pyiqa), VGG-16 + SCNN from local files",
        paper="Zhang et al., TCSVT 2020",
    )
    register(
        "tres",
        f"{M}.pyiqa_victims:Tres",
        params=P.PyiqaVictimParams,
        summary="TReS (pyiqa), ResNet-18 backbone from a local file",
        paper="Golestaneh et al., WACV 2022",
    )


@hookimpl
def register_attack_losses(register: Any) -> None:
    register(
        "p-baiqa",
        f"{M}.attacks:PBaiqa",
        params=P.PBaiqaParams,
        summary="poison-label BAIQA: label y + αΔy, α sampled per the ablation strategies",
        paper=PAPER,
    )
    register(
        "c-baiqa",
        f"{M}.attacks:CBaiqa",
        params=P.CBaiqaParams,
        summary="clean-label BAIQA: α=(y−ȳ)/Δy, PGD-refined images",
        paper=PAPER,
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register("plcc", f"{M}.metrics:Plcc", params=P.ScoreMetricParams, summary="Pearson correlation with MOS")
    register("srocc", f"{M}.metrics:Srocc", params=P.ScoreMetricParams, summary="Spearman correlation with MOS")
    register("rmse", f"{M}.metrics:Rmse", params=P.ScoreMetricParams, summary="RMSE to MOS")
    register(
        "mmae",
        f"{M}.metrics:MeanMae",
        params=P.AlphaResponseParams,
        summary="mean over α of |f(x_α) − (f(x) + αΔy)| (+ mae@α curve)",
        paper=PAPER,
    )
    register(
        "mmra",
        f"{M}.metrics:MeanMra",
        params=P.AlphaResponseParams,
        summary="mean over α of mean(f(x_α) − f(x))/(αΔy) (+ mra@α curve)",
        paper=PAPER,
    )
    register(
        "psnr-alpha",
        f"{M}.metrics:PsnrAlpha",
        params=P.PsnrAlphaParams,
        summary="PSNR of the triggered input at a given α (visibility)",
        paper=PAPER,
    )


@hookimpl
def register_datasets(register: Any) -> None:
    register(
        "livec",
        f"{M}.data:Livec",
        params=P.LivecParams,
        summary="LIVE In the Wild Challenge (official .mat or CSV; BAIQA split index)",
    )
    register("koniq", f"{M}.data:Koniq", params=P.KoniqParams, summary="KonIQ-10k from its CSV")
    register(
        "iqa-embedded",
        f"{M}.data:EmbeddedIqa",
        params=P.EmbeddedIqaParams,
        summary="STAND-IN IQA set: embedded photos with a blur/noise/JPEG ladder and synthetic MOS",
    )
