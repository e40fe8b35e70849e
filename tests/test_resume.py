"""Exact resume: the checkpoint holds every piece of training state, for the toy components and through
the contract any plugin can run (``bdcore.testing.ResumeContract``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bdcore.components import AttackLossBase
from bdcore.context import Context
from bdcore.engine.train import Checkpointer, train_loop
from bdcore.errors import RunError
from bdcore.spec.model import TrainSettings
from bdcore.state import owned_states, pack_value, restore_value, rng_states, set_rng_states
from bdcore.testing import ResumeContract, assert_exact_resume
from bdcore.testing.resume import ResumeMismatch
from bdcore.testing.toy import (
    DenoiserParams,
    InvertParams,
    PatchParams,
    ToyDenoiser,
    ToyInvert,
    ToyInvertControlled,
    ToyPatch,
)


def smooth_batch(step: int, n: int = 4, size: int = 16) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(1000 + step)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=size, mode="bilinear", align_corners=False)
    return {"input": x, "target": x, "index": torch.arange(step * n, step * n + n)}


class TestToyControlledResume(ResumeContract):
    def make_victim(self) -> Any:
        return ToyDenoiser(DenoiserParams(width=8), Context(seed=0))

    def make_trigger(self) -> Any:
        return ToyPatch(PatchParams(), Context(seed=0))

    def make_attack(self, trigger: Any) -> Any:
        return ToyInvertControlled(InvertParams(), Context(seed=0, trigger=trigger))

    def batch(self, step: int) -> dict[str, Any]:
        return smooth_batch(step)


class TestToyPoisoningResume(TestToyControlledResume):
    def make_attack(self, trigger: Any) -> Any:
        return ToyInvert(InvertParams(), Context(seed=0, trigger=trigger))


class NoisyInvert(ToyInvertControlled):
    """A training-controlled attack drawing noise from its own generator at every step."""

    train_state_attrs = ("_gen", "calls")

    def __init__(self, params: Any, ctx: Context, declare: bool = True) -> None:
        super().__init__(params, ctx)
        self._gen = self.ctx.generator("noise")
        self.calls = 0
        if not declare:
            self.train_state_attrs = ()

    def attack_loss(self, victim: Any, clean: dict[str, Any], poisoned: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.calls += 1
        noise = 0.05 * torch.randn(poisoned["input"].shape, generator=self._gen)
        noisy = dict(poisoned, input=(poisoned["input"] + noise).clamp(0, 1))
        return super().attack_loss(victim, clean, noisy)


class TestStatefulAttackResume(TestToyControlledResume):
    def make_attack(self, trigger: Any) -> Any:
        return NoisyInvert(InvertParams(), Context(seed=0, trigger=trigger))


class TestMixedPrecisionResume(TestToyControlledResume):
    """The GradScaler's scale and growth tracker come back too (16-bit autocast with loss scaling)."""

    settings = TrainSettings(steps=6, lr=1e-3, precision="16-mixed")


def test_the_contract_catches_undeclared_state() -> None:
    """An attack whose generator is not in its train state resumes differently: the contract says where."""

    def make() -> tuple[Any, Any, Any]:
        trig = ToyPatch(PatchParams(), Context(seed=0))
        return (
            ToyDenoiser(DenoiserParams(width=8), Context(seed=0)),
            trig,
            NoisyInvert(InvertParams(), Context(seed=0, trigger=trig), declare=False),
        )

    with pytest.raises(ResumeMismatch, match=r"attack\.state_dict\.victim\.body|history"):
        assert_exact_resume(make, smooth_batch, phase="attack")


def test_the_contract_catches_a_private_optimizer_left_out() -> None:
    """A victim with a lazily made private optimizer that it does not declare (the CompressAI aux optimizer's
    defect before it was declared) fails the clean contract."""

    class AuxVictim(ToyDenoiser):
        def __init__(self) -> None:
            super().__init__(DenoiserParams(width=8), Context(seed=0))
            self.scale = torch.nn.Parameter(torch.ones(()))
            self._opt: torch.optim.Optimizer | None = None

        def trainable_parameters(self, phase: str) -> list[torch.nn.Parameter]:
            return list(self.body.parameters())

        def after_step(self, batch: dict[str, Any]) -> dict[str, float]:
            if self._opt is None:
                self._opt = torch.optim.Adam([self.scale], lr=0.1)
            self._opt.zero_grad()
            loss = (self.scale * batch["input"].mean() - 2.0) ** 2
            loss.backward()
            self._opt.step()
            return {"aux": float(loss.detach())}

    with pytest.raises(ResumeMismatch, match=r"clean\.state_dict\.victim\.scale"):
        assert_exact_resume(lambda: (AuxVictim(), None, None), smooth_batch, phase="clean")


def test_rng_states_round_trip_every_stream() -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    saved = rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    set_rng_states(saved)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_pack_restores_generators_optimizers_and_containers_in_place() -> None:
    gen = torch.Generator().manual_seed(5)
    rng = random.Random(6)
    nrng = np.random.default_rng(7)
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([param], lr=0.1)
    param.grad = torch.ones(3)
    opt.step()
    packed = pack_value({"gen": gen, "parts": [rng, nrng], "opt": opt, "n": 3})
    expected = (torch.rand(2, generator=gen), rng.random(), nrng.random(), opt.state_dict()["state"][0]["exp_avg"])
    fresh_param = torch.nn.Parameter(torch.ones(3))
    fresh = {
        "gen": torch.Generator(),
        "parts": [random.Random(), np.random.default_rng()],
        "opt": torch.optim.Adam([fresh_param]),
    }
    out = restore_value(fresh, packed)
    assert out["gen"] is fresh["gen"] and out["opt"] is fresh["opt"] and out["n"] == 3
    assert torch.equal(torch.rand(2, generator=out["gen"]), expected[0])
    assert out["parts"][0].random() == expected[1] and out["parts"][1].random() == expected[2]
    assert torch.equal(out["opt"].state_dict()["state"][0]["exp_avg"], expected[3])
    with pytest.raises(TypeError, match="module"):
        pack_value(torch.nn.Linear(2, 2))


def test_owned_states_cover_submodules_and_plain_owners() -> None:
    class Counter(AttackLossBase):
        train_state_attrs = ("count",)

        def __init__(self) -> None:
            super().__init__()
            self.count = 4

    victim = ToyDenoiser(DenoiserParams(width=4), Context())
    states = owned_states({"victim": victim, "attack": Counter()})
    assert states["attack"] == {"count": 4}
    assert states["victim"] == {}  # a VictimBase without declared state


def test_a_checkpoint_of_other_data_is_refused(tmp_path: Path) -> None:
    """Resuming over a training set of another size would silently change every batch: refused."""
    from bdcore.data.dataset import TensorDataset
    from bdcore.data.loader import StepLoader

    def train(n: int, steps: int) -> None:
        victim = ToyDenoiser(DenoiserParams(width=4), Context())
        data = TensorDataset(torch.rand(n, 3, 8, 8), torch.rand(n, 3, 8, 8))
        train_loop(
            modules={"victim": victim},
            params=list(victim.parameters()),
            settings=TrainSettings(steps=steps),
            steps=steps,
            batch_fn=StepLoader(data, 2, seed=0, stop=steps),
            loss_fn=lambda b, s: victim.clean_loss(b),
            checkpointer=Checkpointer(tmp_path, 2),
        )

    train(8, 3)
    with pytest.raises(RunError, match=r"the data changed since the checkpoint .*size is 8, this run's is 10"):
        train(10, 3)


def test_a_random_stream_outside_train_state_attrs_is_reported() -> None:
    """The contract suites fail on a component whose training draws from a stream a resume would not restore."""
    import random

    import numpy as np
    from torch import nn

    from bdcore.state import TrainStateMixin, untracked_random_streams

    class Listed(nn.Module, TrainStateMixin):
        train_state_attrs = ("_gen",)

        def __init__(self) -> None:
            super().__init__()
            self._gen = torch.Generator().manual_seed(1)

    class Unlisted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Listed()
            self._rng = random.Random(0)
            self._np = np.random.default_rng(0)
            self._gen = torch.Generator()

    assert untracked_random_streams(Listed()) == []
    assert sorted(untracked_random_streams(Unlisted())) == ["Unlisted._gen", "Unlisted._np", "Unlisted._rng"]
    plain = type("Plain", (), {})()
    plain.stream = torch.Generator()
    assert untracked_random_streams(plain) == ["Plain.stream"]
