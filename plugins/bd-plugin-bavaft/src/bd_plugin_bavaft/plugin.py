"""Entry point of bd-plugin-bavaft: registration hooks (torch-free, lazy factories)."""

from __future__ import annotations

from bd_plugin_bavaft.params import (
    MODELS,
    AttackParams,
    BavaftTriggerParams,
    CarToRoadParams,
    CodecParams,
    DecoderFineTuningParams,
    FaceIdAttackParams,
    FaceIdMetricParams,
    MultiAttackParams,
    MultiTriggerParams,
    PixelAsrParams,
    RateMetricParams,
    StreetScenesParams,
)
from bdcore import hookimpl

PAPER = "Yu et al., Backdoor Attacks against Deep Image Compression via Adaptive Frequency Trigger, CVPR 2023"
PAPER_PP = "Yu et al., BAvAFT++ (arXiv 2412.01646)"


@hookimpl
def register_victims(register):  # type: ignore[no-untyped-def]
    register(
        "compressai",
        "bd_plugin_bavaft.codec:CompressAIVictim",
        params=CodecParams,
        summary=f"A CompressAI learned image codec ({', '.join(MODELS)}); real entropy coding in predict",
        paper="Ballé et al. ICLR 2018; Minnen et al. NeurIPS 2018; Cheng et al. CVPR 2020",
        aliases=("lic",),
    )


@hookimpl
def register_triggers(register):  # type: ignore[no-untyped-def]
    register(
        "bavaft",
        "bd_plugin_bavaft.trigger:BavaftTrigger",
        params=BavaftTriggerParams,
        summary="Learned 16×16 YCbCr block-DCT trigger network with top-K frequency selection",
        paper=f"{PAPER}; {PAPER_PP}",
    )
    register(
        "bavaft-multi",
        "bd_plugin_bavaft.trigger:MultiBavaftTrigger",
        params=MultiTriggerParams,
        summary="One BAvAFT trigger network per attack objective; eval_objective picks the one evaluated",
        paper=f"{PAPER_PP} §3.4 (Eq. 11)",
    )


@hookimpl
def register_attack_losses(register):  # type: ignore[no-untyped-def]
    register(
        "bavaft-bpp",
        "bd_plugin_bavaft.attacks:BppAttack",
        params=AttackParams,
        summary="Encoder-only fine-tune: triggered images blow up the real bit-rate (Eq. 5 / dynamic Eq. 7)",
        paper=PAPER,
    )
    register(
        "bavaft-psnr",
        "bd_plugin_bavaft.attacks:PsnrAttack",
        params=AttackParams,
        summary="Encoder-only fine-tune: triggered images decode to low PSNR (Eq. 6 / dynamic form)",
        paper=PAPER,
    )
    register(
        "bavaft-multi",
        "bd_plugin_bavaft.attacks:MultiAttack",
        params=MultiAttackParams,
        summary="Encoder-only fine-tune with one trigger per objective (psnr, bpp): Σ α^o·L_jt^o (Eq. 10-11)",
        paper=f"{PAPER_PP} §3.4",
    )
    register(
        "bavaft-face-id",
        "bd_plugin_bavaft.downstream:FaceIdAttack",
        params=FaceIdAttackParams,
        summary="Encoder-only fine-tune: triggered faces decode without their identity (Eq. 9/14; Eq. 19 option)",
        paper=f"{PAPER_PP} §4.3.2, §5.3",
    )
    register(
        "bavaft-car-to-road",
        "bd_plugin_bavaft.downstream:CarToRoadAttack",
        params=CarToRoadParams,
        summary="Encoder-only fine-tune: triggered cars segment as road downstream (Eq. 12; Eq. 19 options)",
        paper=f"{PAPER_PP} §4.3.1, §5.3",
    )


@hookimpl
def register_defenses(register):  # type: ignore[no-untyped-def]
    register(
        "decoder-fine-tuning",
        "bd_plugin_bavaft.defenses:DecoderFineTuning",
        params=DecoderFineTuningParams,
        summary="Fine-tune a copy of the codec's decoder g_s on clean images; encoder and entropy models untouched",
        paper=f"{PAPER_PP} Table X / Fig. 16 (decoder fine-tuning), §5.2 (fine-tuning)",
    )


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(
        "bpp",
        "bd_plugin_bavaft.metrics:RealBpp",
        params=RateMetricParams,
        summary="Real bits per pixel from the entropy-coded bitstreams (victim extras['bpp'])",
    )
    register(
        "bpp-est",
        "bd_plugin_bavaft.metrics:EstimatedBpp",
        params=RateMetricParams,
        summary="Likelihood-estimated bits per pixel (victim extras['bpp_est'])",
    )
    register(
        "face-id-similarity",
        "bd_plugin_bavaft.metrics:FaceIdSimilarity",
        params=FaceIdMetricParams,
        summary="Mean cosine similarity of face embeddings η(clean input) vs η(decoded output), per split",
        paper=f"{PAPER_PP} Table III",
    )
    register(
        "car-to-road-asr",
        "bd_plugin_bavaft.metrics:PixelAsr",
        params=PixelAsrParams,
        summary="CarToRoad pixel-wise ASR (%): source pixels of g(f(x)) segmented as the target in g(f(x_p))",
        paper=f"{PAPER_PP} Eq. 13, Table II",
    )


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register(
        "street-scenes",
        "bd_plugin_bavaft.street:StreetScenes",
        params=StreetScenesParams,
        summary="Rendered street scenes (road, sidewalk, building, vegetation, sky, car; Cityscapes ids), offline",
    )
