"""The contract suites: the toy plugin passes every one, and each suite catches the breaches it is for
with a message that says what was expected and what came back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from torch import Tensor, nn

from bdcore.components import (
    AttackLossBase,
    DefenseBase,
    DefenseOutcome,
    InputTransformDefense,
    MeanOverImages,
    MetricBase,
    TriggerBase,
    VictimBase,
)
from bdcore.context import Context
from bdcore.data.dataset import TensorDataset
from bdcore.testing.contracts import (
    AttackLossContract,
    DatasetContract,
    DefenseContract,
    MetricContract,
    ParamsContract,
    TriggerContract,
    VictimContract,
)
from bdcore.toy.components import ToyDenoiser, ToyInvert, ToyInvertControlled, ToyPatch, ToySmooth
from bdcore.toy.params import DenoiserParams, InvertParams, PatchParams, SmoothParams

# -- the toy plugin passes every suite --------------------------------------------------------


class TestToyPatch(TriggerContract):
    params_cls = PatchParams

    def make(self) -> ToyPatch:
        return ToyPatch(PatchParams(), Context(seed=0))


class TestToyDenoiser(VictimContract):
    params_cls = DenoiserParams

    def make(self) -> ToyDenoiser:
        return ToyDenoiser(DenoiserParams(width=8), Context(seed=0))


class TestToyInvert(AttackLossContract):
    params_cls = InvertParams

    def make(self) -> ToyInvert:
        return ToyInvert(InvertParams(), Context(seed=0))


class TestToyInvertControlled(AttackLossContract):
    def make(self) -> ToyInvertControlled:
        return ToyInvertControlled(InvertParams(), Context(seed=0))


class TestToySmooth(DatasetContract):
    params_cls = SmoothParams

    def make(self) -> ToySmooth:
        return ToySmooth(SmoothParams(count=8, size=8), Context(seed=0))


class TestBuiltinPsnr(MetricContract):
    def make(self) -> Any:
        from bdcore.builtin.components import PSNR
        from bdcore.builtin.params import PairMetricParams

        return PSNR(PairMetricParams(), Context(component="metric:psnr", options={"registered_name": "psnr"}))


class TestBuiltinNoDefense(DefenseContract):
    def make(self) -> Any:
        from bdcore.builtin.components import NoDefense

        return NoDefense()

    def test_input_transform(self) -> None:  # the clean reference: no transform, by design
        pytest.skip("the `none` defense returns nothing to apply")


# -- each suite catches breaches --------------------------------------------------------------


def suite(base: type, component: Any, **attrs_: Any) -> Any:
    """An instance of contract suite ``base`` whose ``make()`` returns a fresh ``component()``."""
    return type("Probe", (base,), {"make": lambda self: component(), **attrs_})()


def fails(fn: Any, *args: Any, match: str) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args)
    text = str(info.value)
    assert re.search(match, text), text
    assert "expected" in text, f"the message does not say what was expected: {text}"
    return text


class InPlaceTrigger(TriggerBase):
    def apply(self, images: Tensor, strength: Tensor, generator: Any) -> Tensor:  # type: ignore[override]
        return images.add_(0.1 * strength)


class RandomTrigger(TriggerBase):
    def apply(self, images: Tensor, strength: Tensor, generator: Any) -> Tensor:  # type: ignore[override]
        return images + strength * 0.1 * torch.rand(images.shape)  # ignores the generator


class ResizingTrigger(TriggerBase):
    def inject_trigger(self, images: Tensor, *, strength: Any = None, generator: Any = None) -> Tensor:
        return images[..., :-1]


def test_trigger_suite_catches_breaches() -> None:
    fails(suite(TriggerContract, InPlaceTrigger).test_input_is_not_modified, match="untouched.*modified in place")
    fails(suite(TriggerContract, RandomTrigger).test_deterministic, match="same seed")
    fails(
        suite(TriggerContract, ResizingTrigger).test_shape_dtype_range,
        match=r"\[4, 3, 32, 32\].*got tensor \[4, 3, 32, 31\]",
    )


def test_trigger_suite_raises_no_requires_grad_warning(recwarn: pytest.WarningsRecorder) -> None:
    class Learned(TriggerBase):
        learnable = True

        def __init__(self) -> None:
            super().__init__()
            self.delta = nn.Parameter(torch.full((1, 3, 1, 1), 0.1))

        def apply(self, images: Tensor, strength: Tensor, generator: Any) -> Tensor:  # type: ignore[override]
            return images + strength * self.delta

    probe = suite(TriggerContract, Learned)
    for name in dir(probe):
        if name.startswith("test_") and "params" not in name:
            getattr(probe, name)()
    assert not [w for w in recwarn if "requires_grad" in str(w.message)]


class ScalarlessVictim(VictimBase):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"loss": (self(batch["input"]) - batch["target"]).abs().flatten(1).mean(1)}  # per sample


class ForgetfulVictim(ScalarlessVictim):
    """Its state_dict misses the conv weights (kept out of the module tree)."""

    def __init__(self) -> None:
        super().__init__()
        self.__dict__["hidden"] = nn.Conv2d(3, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden(x) + 0 * self.conv(x)

    def clean_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"loss": (self(batch["input"]) - batch["target"]).abs().mean()}


class ForeignParamsVictim(ScalarlessVictim):
    def trainable_parameters(self, phase: str) -> list[nn.Parameter]:  # type: ignore[override]
        return [nn.Parameter(torch.zeros(1))]


def test_victim_suite_catches_breaches(tmp_path: Path) -> None:
    fails(suite(VictimContract, ScalarlessVictim).test_loss_and_predict, match="0-dim.*got tensor \\[2\\]")
    fails(suite(VictimContract, ForeignParamsVictim).test_trainable_parameters, match="victim's own parameters")
    fails(suite(VictimContract, ForgetfulVictim).test_state_round_trip, tmp_path, match="same predictions after a save")
    fails(
        suite(
            VictimContract, lambda: ToyDenoiser(DenoiserParams(width=4)), output_shape=lambda self, b: (2, 1)
        ).test_predict_shape,
        match=r"shape \[2, 1\]; got tensor \[2, 3, 32, 32\]",
    )


class MutatingAttack(AttackLossBase):
    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        batch["target"] = batch["target"] * 0  # changes the clean batch
        return batch["target"]


class ScoreTargetAttack(AttackLossBase):
    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        return torch.zeros(batch["input"].shape[0])  # a score, for an image target


class DetachedLossAttack(ToyInvertControlled):
    def attack_loss(self, victim: Any, clean: dict[str, Any], poisoned: dict[str, Any]) -> dict[str, Tensor]:
        with torch.no_grad():
            return {"loss": (victim(poisoned["input"]) - poisoned["attack_target"]).abs().mean()}


def test_attack_suite_catches_breaches() -> None:
    fails(suite(AttackLossContract, MutatingAttack).test_poison_keys_and_shapes, match="clean batch untouched")
    fails(
        suite(AttackLossContract, ScoreTargetAttack).test_poison_keys_and_shapes,
        match=r"'attack_target' of shape \[4, 3, 32, 32\].*got tensor \[4\]",
    )
    fails(suite(AttackLossContract, lambda: DetachedLossAttack(InvertParams())).test_attack_loss, match="require grad")


class ShrinkingDefense(InputTransformDefense):
    def transform(self, images: Tensor) -> Tensor:
        return images[..., ::2, ::2]


class OutOfRangeDefense(InputTransformDefense):
    def transform(self, images: Tensor) -> Tensor:
        return images * 2


class InPlaceModelDefense(DefenseBase):
    stage = "model"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        with torch.no_grad():
            for p in victim.parameters():
                p.zero_()
        return DefenseOutcome()  # forgot victim=victim: the engine would evaluate the undefended model


class ArchitectureChangingDefense(DefenseBase):
    stage = "model"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        victim.extra = nn.Linear(1, 1)  # a state the victim's architecture cannot load
        return DefenseOutcome(victim=victim)


class OneScoreDetector(DefenseBase):
    stage = "detection"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        return DefenseOutcome(detector=lambda v, x: x.mean().reshape(1))


class WrongStage(DefenseBase):
    stage = "pre"  # type: ignore[assignment]


class TextExtra(DefenseBase):
    stage = "detection"

    def defend(self, victim: Any, ctx: Any) -> DefenseOutcome:
        return DefenseOutcome(detector=lambda v, x: x.flatten(1).mean(1), extra={"note": "pruned"})  # type: ignore[dict-item]


def test_defense_suite_catches_breaches() -> None:
    fails(
        suite(DefenseContract, ShrinkingDefense).test_input_transform,
        match=r"\[4, 3, 32, 32\].*got tensor \[4, 3, 16, 16\]",
    )
    fails(suite(DefenseContract, OutOfRangeDefense).test_input_transform, match=r"\[0, 1\]")
    fails(
        suite(DefenseContract, InPlaceModelDefense).test_model_defense_returns_a_model,
        match="expected the defended model as 'victim'",
    )
    fails(
        suite(DefenseContract, ArchitectureChangingDefense).test_model_defense_returns_a_model,
        match="load into the victim",
    )
    fails(
        suite(DefenseContract, OneScoreDetector).test_detector_scores,
        match=r"one score per input, shape \[4\]; got tensor \[1\]",
    )
    fails(
        suite(DefenseContract, WrongStage).test_stage, match="one of \\('input', 'model', 'detection'\\); got str 'pre'"
    )
    fails(suite(DefenseContract, TextExtra).test_defend_outcome, match="finite numbers; 'note'")


class UndeclaredNeeds(MeanOverImages):
    splits = ("poisoned",)

    def per_image(self, batch: Any) -> Tensor:
        return (batch.output - batch.attack_target).abs().flatten(1).mean(1)  # reads attack_target, needs = {}


class BatchMeanMetric(MetricBase):
    """Averages per-batch means: the value depends on how the test set is batched."""

    needs = frozenset({"target"})

    def reset(self) -> None:
        self.means: list[float] = []

    def update(self, batch: Any) -> None:
        self.means.append(float((batch.output - batch.target).abs().mean()))

    def compute(self) -> dict[str, float]:
        return {self.name: sum(self.means) / len(self.means)}


class StickyMetric(BatchMeanMetric):
    def reset(self) -> None:
        if not hasattr(self, "means"):
            self.means = []


class NeedsTypo(UndeclaredNeeds):
    needs = frozenset({"atack_target"})


class StringSplits(MeanOverImages):
    splits = "poisoned"  # type: ignore[assignment]


def test_metric_suite_catches_breaches() -> None:
    fails(suite(MetricContract, UndeclaredNeeds).test_needs_lists_what_update_reads, match="only the fields in needs")
    fails(suite(MetricContract, BatchMeanMetric).test_batching_does_not_change_the_value, match="batches of 1 and 3")
    fails(suite(MetricContract, StickyMetric).test_reset_forgets, match="reset\\(\\) to forget")
    fails(suite(MetricContract, StringSplits).test_metadata, match="tuple of distinct")
    fails(suite(MetricContract, NeedsTypo).test_metadata, match=r"unknown \['atack_target'\]")


class NoTestSplit:
    def splits(self) -> dict[str, Any]:
        x = torch.rand(4, 3, 8, 8)
        return {"train": TensorDataset(x, x)}


class OutOfRangeData:
    def splits(self) -> dict[str, Any]:
        x = torch.rand(4, 3, 8, 8) * 255
        return {"train": TensorDataset(x, x), "test": TensorDataset(x, x)}


class UnseededData:
    def splits(self) -> dict[str, Any]:
        x = torch.rand(4, 3, 8, 8)
        return {"train": TensorDataset(x, x), "test": TensorDataset(x, x)}


def test_dataset_suite_catches_breaches() -> None:
    fails(suite(DatasetContract, NoTestSplit).test_splits, match="expected a 'test' split; got keys \\['train'\\]")
    fails(suite(DatasetContract, OutOfRangeData).test_samples, match=r"'input' in \[0, 1\]")
    fails(suite(DatasetContract, UnseededData).test_reads_are_deterministic, match="built twice with one seed")


@attrs.frozen
class Loose:
    x: int = 1


def test_params_suite() -> None:
    probe = suite(ParamsContract, lambda: None, params_cls=Loose)
    probe.test_params_defaults_round_trip()
    probe.test_params_refuse_unknown_keys()
    fails(suite(ParamsContract, lambda: None, params_cls=dict).test_params_defaults_round_trip, match="attrs class")
