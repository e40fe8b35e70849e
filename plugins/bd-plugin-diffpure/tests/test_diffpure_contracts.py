"""bdcore's contract suites for the face-ID victim, the PGD trigger, the target-label attack and the metrics.

The DDNM defenses fit a diffusion prior first (minutes); their behaviour is tested in test_components.py.
"""

from __future__ import annotations

import torch
from bd_plugin_diffpure.attacks import TargetLabel
from bd_plugin_diffpure.facenet import FaceNetSmall
from bd_plugin_diffpure.metrics import Accuracy, LabelASR
from bd_plugin_diffpure.params import AccuracyParams, FaceNetParams, LabelASRParams, PGDParams, TargetLabelParams
from bd_plugin_diffpure.pgd import PGDTrigger

from bdcore.context import Context
from bdcore.metrics.batch import EvalBatch
from bdcore.testing.contracts import AttackLossContract, MetricContract, TriggerContract, VictimContract

CLASSES = 5


def _faces(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def _labels(n: int = 4) -> torch.Tensor:
    return torch.arange(n) % CLASSES


def _facenet() -> FaceNetSmall:
    torch.manual_seed(0)
    return FaceNetSmall(FaceNetParams(num_classes=CLASSES, width=8, embedding_dim=16), Context(seed=0))


class TestFaceNetSmall(VictimContract):
    params_cls = FaceNetParams

    def make(self) -> FaceNetSmall:
        return _facenet()

    def batch(self) -> dict:
        return {"input": _faces(2), "target": _labels(2), "index": torch.arange(2)}  # class targets: logits B×K out


class TestPGDTrigger(TriggerContract):
    params_cls = PGDParams

    def make(self) -> PGDTrigger:
        trigger = PGDTrigger(PGDParams(steps=2), Context(seed=0))
        trigger.bind_victim(_facenet())  # the engine binds the model under attack (needs_victim)
        return trigger


class TestTargetLabel(AttackLossContract):
    params_cls = TargetLabelParams

    def make(self) -> TargetLabel:
        return TargetLabel(TargetLabelParams(target_class=1), Context(seed=0))

    def batch(self) -> dict:
        return {"input": _faces(), "target": _labels(), "index": torch.arange(4)}


class _OnLogits(MetricContract):
    def batch(self) -> EvalBatch:
        x = _faces()
        logits = torch.randn(4, CLASSES, generator=torch.Generator().manual_seed(1))
        return EvalBatch(
            split="poisoned",
            input=x,
            output=logits,
            target=_labels(),
            attack_target=torch.full((4,), 1),
            clean_input=x,
            clean_model_input=x,
            clean_output=logits.flip(0),
            reference_output=logits.flip(0),
            strength=torch.ones(4),
            index=torch.arange(4),
        )


class TestAccuracy(_OnLogits):
    params_cls = AccuracyParams

    def make(self) -> Accuracy:
        return Accuracy(AccuracyParams(), Context(component="metric:accuracy"))


class TestLabelASR(_OnLogits):
    params_cls = LabelASRParams

    def make(self) -> LabelASR:
        return LabelASR(LabelASRParams(), Context(component="metric:label-asr"))
