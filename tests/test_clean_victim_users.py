"""Components that use the clean victim say so, and the engine and the sweep plan follow.

* An attack loss that calls ``ctx.clean_victim()`` while it trains (``uses_clean_victim``) gets the clean
  victim as its own stage: the runner trains it before the attack, the sweep plan lists it (so cells that
  share it wait for one training instead of each training it inside their attack), with the same key.
* A trigger whose ``fit`` calls ``ctx.clean_victim()`` must declare ``needs_victim``: its fit stage's key
  then includes the victim and its clean training. One whose ``fit`` only builds a fresh victim of the
  run's architecture (``FitContext.build_victim`` or its own ``ctx.build_victim``, as BAIQA's partial
  surrogate) declares ``builds_victim`` (or ``needs_victim``): its key includes the victim's component and
  weights but not the clean training, and no clean victim is trained for it. Undeclared, the call fails
  (its stored fit would be reused for another victim).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from torch import Tensor

from bdcore import hookimpl
from bdcore.errors import ContractError
from bdcore.spec.structure import load_spec
from bdcore.sweep.plan import cell_stages
from bdcore.testing import run_spec
from bdcore.testing.runner import make_host
from bdcore.toy.components import ToyInvert, ToyPatch


@attrs.frozen
class SurrogateParams:
    clean_weight: float = 0.5
    use_surrogate: bool = True


class SurrogateInvert(ToyInvert):
    """toy-invert whose target is computed with the clean victim (as C-BAIQA's PGD surrogate); the flag is a
    property of its params."""

    calls: ClassVar[int] = 0

    @property
    def uses_clean_victim(self) -> bool:  # type: ignore[override]
        return bool(self.params.use_surrogate)

    def attack_target(self, batch: dict[str, Any], strength: Tensor) -> Tensor:
        if self.params.use_surrogate:
            assert self.ctx.clean_victim is not None
            self.ctx.clean_victim()
            type(self).calls += 1
        return super().attack_target(batch, strength)


class FlaggedInvert(ToyInvert):
    """The flag as a class attribute (read by the plan without building the component)."""

    uses_clean_victim: ClassVar[bool] = True


@attrs.frozen
class FittedParams:
    declare: bool = False
    size: float = 0.25
    amplitude: float = 0.1
    call: str = "clean_victim"  # what fit() asks for: clean_victim, build_victim or ctx.build_victim


class FittedPatch(ToyPatch):
    """A learnable toy patch whose fit looks at the clean victim (as LIRA's fit does) or builds a fresh
    victim to train as a surrogate (as BAIQA's partial surrogate does)."""

    learnable: ClassVar[bool] = True

    def fit(self, ctx: Any) -> None:
        call = self.params.call
        victim = self.ctx.build_victim() if call == "ctx.build_victim" else getattr(ctx, call)()
        assert callable(victim.predict)


class DeclaredFittedPatch(FittedPatch):
    needs_victim: ClassVar[bool] = True


class BuildingFittedPatch(FittedPatch):
    builds_victim: ClassVar[bool] = True


class SurrogatePlugin:
    @hookimpl
    def register_triggers(self, register: Any) -> None:
        register("fitted-patch", FittedPatch, params=FittedParams, summary="test: undeclared victim use")
        register("declared-fitted-patch", DeclaredFittedPatch, params=FittedParams, summary="test: declared")
        register("building-fitted-patch", BuildingFittedPatch, params=FittedParams, summary="test: builds victims")

    @hookimpl
    def register_attack_losses(self, register: Any) -> None:
        register("surrogate-invert", SurrogateInvert, params=SurrogateParams, summary="test: uses the clean victim")
        register("flagged-invert", FlaggedInvert, params=SurrogateParams, summary="test: class flag")


SPEC = """
[run]
name = "surrogate"
seed = 1
[data]
use = "toy-smooth"
params = {{ count = 12, size = 16 }}
[victim]
use = "toy-denoiser"
params = {{ width = 4 }}
[train]
steps = 3
batch_size = 4
[attack]
steps = 3
batch_size = 4
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "{loss}"
params = {{ use_surrogate = {use} }}
[eval]
clean_victim = false
[[metric]]
use = "psnr"
"""


def _loaded(tmp_path: Path, loss: str, use: str) -> Any:
    path = tmp_path / f"{loss}-{use}.toml"
    path.write_text(SPEC.format(loss=loss, use=use))
    return load_spec(path, make_host([SurrogatePlugin()]).registry)


@pytest.mark.parametrize(
    ("loss", "use", "planned"),
    [
        ("surrogate-invert", "true", True),
        ("surrogate-invert", "false", False),
        ("flagged-invert", "false", True),
        ("toy-invert", None, False),
    ],
    ids=["property-true", "property-false", "class-flag", "plain-loss"],
)
def test_the_plan_lists_the_clean_victim_for_a_loss_that_uses_it(
    tmp_path: Path, loss: str, use: str | None, planned: bool
) -> None:
    spec = (
        SPEC.format(loss=loss, use=use)
        if use is not None
        else SPEC.replace("params = {{ use_surrogate = {use} }}\n", "").format(loss=loss)
    )
    path = tmp_path / "spec.toml"
    path.write_text(spec)
    stages = cell_stages(load_spec(path, make_host([SurrogatePlugin()]).registry))
    assert ("clean-victim" in stages) is planned
    assert "attack" in stages


def test_the_runner_trains_it_as_its_own_stage_with_the_planned_key(tmp_path: Path) -> None:
    SurrogateInvert.calls = 0
    out = run_spec(SPEC.format(loss="surrogate-invert", use="true"), tmp_path, plugins=[SurrogatePlugin()])
    assert SurrogateInvert.calls > 0  # the loss really called it
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    planned = {k: v[1] for k, v in cell_stages(_loaded(tmp_path, "surrogate-invert", "true")).items()}
    assert manifest["stages"] == planned and "clean-victim" in manifest["stages"]
    log = (out.run_dir / "run.log").read_text()
    assert log.index("stage clean-victim") < log.index("stage attack")  # before the attack, not inside it


def test_without_the_flag_no_clean_victim_is_trained(tmp_path: Path) -> None:
    out = run_spec(SPEC.format(loss="surrogate-invert", use="false"), tmp_path, plugins=[SurrogatePlugin()])
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert "clean-victim" not in manifest["stages"]
    assert manifest["stages"] == {
        k: v[1] for k, v in cell_stages(_loaded(tmp_path, "surrogate-invert", "false")).items()
    }


FIT_SPEC = SPEC.replace('use = "toy-patch"', 'use = "{trigger}"').replace("[attack]\n", "[attack]\nfit_steps = 2\n")


def _fit_spec(trigger: str, call: str) -> str:
    return (
        FIT_SPEC.format(trigger=trigger, loss="toy-invert", use="true")
        .replace("params = { use_surrogate = true }\n", "")
        .replace(f'use = "{trigger}"', f'use = "{trigger}"\nparams = {{ call = "{call}" }}')
    )


@pytest.mark.parametrize(
    ("trigger", "call", "named", "flag"),
    [
        ("fitted-patch", "clean_victim", "ctx.clean_victim()", "needs_victim"),
        ("fitted-patch", "build_victim", "ctx.build_victim()", "builds_victim"),
        ("fitted-patch", "ctx.build_victim", "ctx.build_victim()", "builds_victim"),
        # building victims is not using the clean one: builds_victim does not cover clean_victim()
        ("building-fitted-patch", "clean_victim", "ctx.clean_victim()", "needs_victim"),
    ],
)
def test_a_trigger_fit_that_uses_the_victim_undeclared_fails_naming_it(
    tmp_path: Path, trigger: str, call: str, named: str, flag: str
) -> None:
    pattern = rf'"{trigger}" calls {re.escape(named)} in fit\(\) but does not declare {flag} = True'
    with pytest.raises(ContractError, match=pattern):
        run_spec(_fit_spec(trigger, call), tmp_path, plugins=[SurrogatePlugin()])


@pytest.mark.parametrize("trigger", ["declared-fitted-patch", "building-fitted-patch"])
@pytest.mark.parametrize("call", ["build_victim", "ctx.build_victim"])
def test_a_declared_trigger_may_build_its_surrogate(tmp_path: Path, call: str, trigger: str) -> None:
    out = run_spec(_fit_spec(trigger, call), tmp_path, plugins=[SurrogatePlugin()])
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert {"trigger-fit", "attack"} <= set(manifest["stages"])


def test_a_declared_trigger_fit_keys_on_the_victim(tmp_path: Path) -> None:
    spec = FIT_SPEC.format(trigger="declared-fitted-patch", loss="toy-invert", use="true").replace(
        "params = { use_surrogate = true }\n", ""
    )
    out = run_spec(spec, tmp_path / "a", plugins=[SurrogatePlugin()])
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert {"trigger-fit", "clean-victim", "attack"} <= set(manifest["stages"])
    keys = []
    for steps in (3, 4):  # another clean training: another victim, so another fit
        path = tmp_path / f"s{steps}.toml"
        path.write_text(spec.replace("[train]\nsteps = 3", f"[train]\nsteps = {steps}"))
        keys.append(cell_stages(load_spec(path, make_host([SurrogatePlugin()]).registry))["trigger-fit"])
    assert keys[0] != keys[1]
    assert keys[0][1] == manifest["stages"]["trigger-fit"]


def _fit_key(tmp_path: Path, spec: str, name: str) -> tuple[str, dict[str, Any]]:
    path = tmp_path / f"{name}.toml"
    path.write_text(spec)
    stages = cell_stages(load_spec(path, make_host([SurrogatePlugin()]).registry))
    return stages["trigger-fit"][1], stages


def test_a_trigger_that_builds_victims_keys_on_the_architecture_not_the_clean_training(tmp_path: Path) -> None:
    """builds_victim: another clean training (train.steps) keeps the fit, another victim (its params)
    refits; no clean victim is planned or trained for the fit (the run's manifest matches the plan)."""
    spec = _fit_spec("building-fitted-patch", "build_victim")
    key, stages = _fit_key(tmp_path, spec, "base")
    assert "clean-victim" not in stages
    longer, _ = _fit_key(tmp_path, spec.replace("[train]\nsteps = 3", "[train]\nsteps = 4"), "longer")
    wider, _ = _fit_key(tmp_path, spec.replace("params = { width = 4 }", "params = { width = 6 }"), "wider")
    assert longer == key and wider != key
    # the same trigger declaring needs_victim instead keys on the clean training too (and plans the victim)
    declared = spec.replace('use = "building-fitted-patch"', 'use = "declared-fitted-patch"')
    d_key, d_stages = _fit_key(tmp_path, declared, "declared")
    d_longer, _ = _fit_key(tmp_path, declared.replace("[train]\nsteps = 3", "[train]\nsteps = 4"), "dl")
    assert d_longer != d_key and "clean-victim" in d_stages
    out = run_spec(spec, tmp_path / "run", plugins=[SurrogatePlugin()])
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert manifest["stages"] == {k: v[1] for k, v in stages.items()}
    assert "clean-victim" not in manifest["stages"]
