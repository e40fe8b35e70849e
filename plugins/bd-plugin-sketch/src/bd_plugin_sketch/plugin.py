"""Entry point of bd-plugin-sketch: the registration hooks (torch-free, lazy factories)."""

from __future__ import annotations

from bdcore import hookimpl

from bd_plugin_sketch.params import (
    CufsParams,
    EmbeddedSketchParams,
    FCNParams,
    FsimParams,
    LightStrokesParams,
    Pix2PixParams,
    SketchPatternParams,
    StrokeAsrParams,
    StrokeIntensityParams,
)

_PAPER = "Backdoor attacks on facial sketch synthesis (Xiamen University; abstract only)"


@hookimpl
def register_datasets(register):  # type: ignore[no-untyped-def]
    register(
        "cufs",
        "bd_plugin_sketch.data:Cufs",
        params=CufsParams,
        summary="CUFS photo/sketch pairs (folders or pairs.csv), official split, 1-channel sketches",
        paper="Wang & Tang, TPAMI 2009",
    )
    register(
        "embedded-sketch",
        "bd_plugin_sketch.data:EmbeddedSketch",
        params=EmbeddedSketchParams,
        summary="Embedded photos with pencil-sketch (colour-dodge) targets: a no-download stand-in",
    )


@hookimpl
def register_victims(register):  # type: ignore[no-untyped-def]
    register(
        "sketch-fcn",
        "bd_plugin_sketch.victims:SketchFCN",
        params=FCNParams,
        summary="Fully convolutional photo-to-sketch network (stride 1, sigmoid, L1/MSE)",
        paper="Zhang et al., ICMR 2015",
    )
    register(
        "sketch-pix2pix",
        "bd_plugin_sketch.victims:Pix2Pix",
        params=Pix2PixParams,
        summary="pix2pix cGAN: U-Net generator + PatchGAN, L1 + adversarial",
        paper="Isola et al., CVPR 2017",
    )


@hookimpl
def register_triggers(register):  # type: ignore[no-untyped-def]
    register(
        "sketch-pattern",
        "bd_plugin_sketch.triggers:SketchPattern",
        params=SketchPatternParams,
        summary="Faint tiled ±amplitude seeded pattern over the whole photo",
    )


@hookimpl
def register_attack_losses(register):  # type: ignore[no-untyped-def]
    register(
        "light-strokes",
        "bd_plugin_sketch.attacks:LightStrokes",
        params=LightStrokesParams,
        summary="Poison-only: triggered photos' sketches replaced by lightened strokes",
        paper=_PAPER,
    )


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(
        "fsim",
        "bd_plugin_sketch.metrics:Fsim",
        params=FsimParams,
        summary="FSIM (pyiqa, offline) between two fields, percent",
        paper="Zhang et al., TIP 2011",
    )
    register(
        "stroke-intensity",
        "bd_plugin_sketch.metrics:StrokeIntensity",
        params=StrokeIntensityParams,
        summary="Mean darkness of stroke pixels (mask: ground-truth sketch <= threshold)",
    )
    register(
        "stroke-asr",
        "bd_plugin_sketch.metrics:StrokeAsr",
        params=StrokeAsrParams,
        summary="% of triggered outputs with stroke intensity reduced >= threshold vs clean output",
    )
