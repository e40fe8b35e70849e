"""The engine end to end: determinism, stage reuse, resume after SIGKILL, defenses, outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import goodplug
import pytest
import torch

from bdcore.testing import run_spec

SPEC = """
[run]
name = "toy"
seed = 5
checkpoint_every = 10
[data]
use = "toy-smooth"
params = {{ count = 24, size = 16 }}
[victim]
use = "toy-denoiser"
params = {{ width = 16 }}
[train]
steps = 20
batch_size = 6
lr = 2e-3
[attack]
poison_rate = 0.3
steps = 100
batch_size = 6
lr = 5e-3
from_clean = true
[attack.trigger]
use = "toy-patch"
[attack.loss]
use = "{loss}"
[[metric]]
use = "psnr"
[[metric]]
use = "psnr"
label = "psnr-to-target"
params = {{ between = ["output", "attack_target"], splits = ["poisoned"] }}
{defenses}
"""

DEFENSES = """
[[defense]]
use = "box3"
sweep = { param = "passes", values = [1, 2] }
[[defense]]
use = "finetune-test"
params = { steps = 4 }
[[defense]]
use = "spread"
"""


def spec(loss: str = "toy-invert", defenses: str = "") -> str:
    return SPEC.format(loss=loss, defenses=defenses)


def test_outputs_and_attack_effect(tmp_path: Path) -> None:
    out = run_spec(spec(defenses=DEFENSES), tmp_path, [goodplug])
    d = out.run_dir
    for name in (
        "spec.resolved.toml",
        "manifest.json",
        "results.jsonl",
        "results.csv",
        "report.html",
        "run.log",
        "poison_index.json",
        "plots/training.png",
        "plots/sweep-box3.png",
    ):
        assert (d / name).is_file(), name
    rows = [json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()]
    assert {"stage", "split", "defense", "metric", "value"} <= set(rows[0])
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 5 and "torch" in manifest["libraries"]
    assert manifest["components"]["attack.trigger"]["name"] == "toy-patch"
    # the poisoned inputs move toward the attack target once the backdoor is in
    before = out.value("psnr-to-target", stage="clean-victim")
    after = out.value("psnr-to-target", stage="attacked")
    assert after > before + 3.0, (before, after)
    # each defense: rows per split; the sweep gives one entry per value; detection gives an AUROC
    assert out.value("psnr", stage="defended", split="clean", defense="box3", setting="passes=2") < out.value(
        "psnr", stage="defended", split="clean", defense="box3", setting="passes=1"
    )
    assert out.value("finetune_steps", stage="defended", split=None, defense="finetune-test") == 4.0
    auc = out.value("detection_auroc", stage="defended", split="poisoned", defense="spread")
    assert 0.0 <= auc <= 1.0
    assert (d / "grid").is_dir() and len(list((d / "grid").glob("*.png"))) >= 5
    html = (d / "report.html").read_text()
    assert "psnr-to-target" in html and "grid/" in html
    resolved = (d / "spec.resolved.toml").read_text()
    assert "strength = 1.0" in resolved and 'optimizer = "adam"' in resolved


def test_same_seed_same_results(tmp_path: Path) -> None:
    a = run_spec(spec(), tmp_path / "a")
    b = run_spec(spec(), tmp_path / "b")
    assert (a.run_dir / "results.jsonl").read_bytes() == (b.run_dir / "results.jsonl").read_bytes()


def test_training_controlled_attack_runs(tmp_path: Path) -> None:
    out = run_spec(spec(loss="toy-invert-controlled"), tmp_path)
    assert out.value("psnr-to-target", stage="attacked") > out.value("psnr-to-target", stage="clean-victim")


def test_second_spec_reuses_trained_victim(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = run_spec(spec(), tmp_path, [goodplug], out=runs, name="one.toml")
    assert first.reused == []
    second = run_spec(spec(defenses=DEFENSES), tmp_path, [goodplug], out=runs, name="two.toml")
    assert second.reused == ["clean-victim", "attack"]
    log = (second.run_dir / "run.log").read_text()
    assert "stage clean-victim: reused finished stage" in log and "stage attack: reused finished stage" in log
    assert first.value("psnr") == second.value("psnr")


def test_resume_after_sigkill_matches_uninterrupted(tmp_path: Path) -> None:
    long_spec = spec().replace("steps = 100", "steps = 300").replace("checkpoint_every = 10", "checkpoint_every = 25")
    reference = run_spec(long_spec, tmp_path / "ref")
    work = tmp_path / "killed"
    work.mkdir()
    (work / "spec.toml").write_text(long_spec)
    code = (
        "from pathlib import Path; from bdcore.testing import run_spec; "
        f"run_spec(Path({str(work / 'spec.toml')!r}).read_text(), Path({str(work)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.time() + 120
    ckpt = None
    while time.time() < deadline and ckpt is None:
        found = (
            list((work / "runs" / ".stages").glob("attack-*.partial/checkpoint.pt")) if (work / "runs").exists() else []
        )
        ckpt = found[0] if found else None
        time.sleep(0.02)
    assert ckpt is not None, "no attack checkpoint appeared"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dirs = [p for p in (work / "runs").glob("toy-*") if p.is_dir()]
    assert run_dirs and not (run_dirs[0] / "COMPLETE").exists(), "the run finished before it was killed"
    # no half-written file stands where a finished one is expected
    assert not list((work / "runs" / ".stages").glob("attack-*[!l]/stage.json"))
    resumed = run_spec(long_spec, work, resume=True)
    assert resumed.run_dir == run_dirs[0]
    assert (resumed.run_dir / "results.jsonl").read_bytes() == (reference.run_dir / "results.jsonl").read_bytes()


def test_run_without_attack_evaluates_clean_victim(tmp_path: Path) -> None:
    text = spec().split("[attack]")[0] + '[[metric]]\nuse = "ssim"\n'
    out = run_spec(text, tmp_path)
    assert out.value("ssim", stage="clean-victim", split="clean") > 0.5
    assert not [r for r in out.rows if r["split"] == "poisoned"]


@pytest.mark.parametrize("bad", ["shape", "loss"])
def test_contract_violations_are_reported(tmp_path: Path, bad: str) -> None:
    from bdcore.errors import ContractError
    from bdcore.testing import toy

    if bad == "shape":
        orig = toy.ToyPatch.apply
        toy.ToyPatch.apply = lambda self, x, s, g: x[..., :-1]  # type: ignore[method-assign]
    else:
        orig = toy.ToyDenoiser.clean_loss
        toy.ToyDenoiser.clean_loss = lambda self, b: {"nope": 1}  # type: ignore[method-assign]
    try:
        with pytest.raises(ContractError):
            run_spec(spec(), tmp_path)
    finally:
        if bad == "shape":
            toy.ToyPatch.apply = orig  # type: ignore[method-assign]
        else:
            toy.ToyDenoiser.clean_loss = orig  # type: ignore[method-assign]


def test_after_step_sees_the_poisoned_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A victim's auxiliary update (e.g. a GAN discriminator) gets the batch its loss was computed on."""
    from bdcore.testing import toy

    seen: list[tuple[bool, bool]] = []

    def after_step(self: toy.ToyDenoiser, batch: dict) -> None:
        mask = batch.get("poisoned")
        # the poisoned rows carry the attack target (the inverted image), not the clean one
        swapped = mask is not None and bool(mask.any()) and bool((batch["target"][mask] != batch["input"][mask]).any())
        seen.append((mask is not None and bool(mask.any()), swapped))

    monkeypatch.setattr(toy.ToyDenoiser, "after_step", after_step, raising=False)
    run_spec(spec(), tmp_path)
    poisoned_steps = [s for s in seen if s[0]]
    assert poisoned_steps, "no attack step saw a poisoned row"
    assert all(swapped for _, swapped in poisoned_steps)


def test_evasion_attack_perturbs_test_inputs_of_the_clean_victim(tmp_path: Path) -> None:
    """``loss = "evasion"``: nothing is poisoned or trained; the clean victim is evaluated on triggered inputs."""
    text = spec().replace('use = "toy-invert"', 'use = "evasion"')
    out = run_spec(text, tmp_path)
    stages = {(r["stage"], r["split"]) for r in out.rows if r["metric"] == "psnr"}
    assert stages == {("attacked", "clean"), ("attacked", "poisoned")}
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert "attack" not in manifest["stages"] and "clean-victim" in manifest["stages"]
    assert not (out.run_dir / "poison_index.json").exists()
    # the toy patch is visible in the outputs of the clean denoiser
    assert out.value("psnr", split="clean") > out.value("psnr", split="poisoned")


def test_needs_victim_trigger_is_bound_to_the_model_under_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bdcore.testing import toy

    bound: list[object] = []
    monkeypatch.setattr(toy.ToyPatch, "needs_victim", True)
    monkeypatch.setattr(toy.ToyPatch, "bind_victim", lambda self, victim: bound.append(victim), raising=False)
    run_spec(spec().replace('use = "toy-invert"', 'use = "evasion"'), tmp_path)
    assert len(bound) == 1 and isinstance(bound[0], toy.ToyDenoiser)


def test_components_share_a_cache_dir_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every component's context names one cache folder per output root (not per run), for content-keyed caches."""
    from bdcore.testing import toy

    seen: list[object] = []
    init = toy.ToyPatch.__init__

    def spy(self: toy.ToyPatch, params: object = None, ctx: object = None) -> None:
        init(self, params, ctx)  # type: ignore[arg-type]
        seen.append((getattr(ctx, "cache_dir", None), getattr(ctx, "work_dir", None)))

    monkeypatch.setattr(toy.ToyPatch, "__init__", spy)
    run_spec(spec().replace('use = "toy-invert"', 'use = "evasion"'), tmp_path)
    cache, work = seen[0]
    assert isinstance(cache, Path) and isinstance(work, Path)
    assert cache.parent == work.parent.parent  # <out>/.cache next to <out>/<run>/work
    assert cache.name == ".cache"


def test_set_overrides_are_recorded_and_guard_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import bdcore.cli as cli
    from bdcore.testing import make_host

    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host())
    spec = tmp_path / "toy.toml"
    spec.write_text(SPEC.format(loss="toy-invert", defenses=""))
    out = tmp_path / "runs"
    small = ["--set", "train.steps=2", "--set", "attack.steps=2", "--set", "data.params.count=8"]
    res = CliRunner().invoke(cli.main, ["run", str(spec), "--out", str(out), "-q", *small])
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in out.iterdir() if p.name.startswith("toy-")]
    assert json.loads((run_dir / "manifest.json").read_text())["overrides"] == small[1::2]
    assert "steps = 2" in (run_dir / "spec.resolved.toml").read_text()
    res = CliRunner().invoke(cli.main, ["run", str(spec), "--out", str(out), "--resume", "-q"])
    assert res.exit_code == 2 and "--set" in res.output and "train.steps=2" in res.output, res.output
    res = CliRunner().invoke(cli.main, ["run", str(spec), "--out", str(out), "--resume", "-q", *small])
    assert res.exit_code == 0, res.output


def test_eval_only_params_stay_out_of_stage_keys() -> None:
    import attrs

    from bdcore.engine.store import canonical, stage_key
    from bdcore.params import eval_only, in_stage_key

    @attrs.frozen
    class Params:
        width: int = 8
        eval_batch: int = eval_only(16, validator=attrs.validators.ge(1))

    assert [in_stage_key(f) for f in attrs.fields(Params)] == [True, False]
    assert "eval_batch" not in canonical(Params())
    assert stage_key({"p": Params(eval_batch=1)}) == stage_key({"p": Params(eval_batch=64)})
    assert stage_key({"p": Params(width=4)}) != stage_key({"p": Params()})
    with pytest.raises(ValueError):
        Params(eval_batch=0)  # validators still apply


def test_test_inputs_are_triggered_in_eval_mode(tmp_path: Path) -> None:
    """A reused stage's trigger is a freshly built module (training mode); the test set is triggered in eval mode."""
    import torch

    from bdcore.engine.evaluate import Evaluator

    class ModeTrigger(torch.nn.Module):
        def inject_trigger(self, x: torch.Tensor, **_: object) -> torch.Tensor:
            return x * (0.5 if self.training else 0.25)

    class Poison:
        def poison(self, batch: dict, trigger: ModeTrigger, generator: object = None) -> dict:
            return {**batch, "input": trigger.inject_trigger(batch["input"])}

    test_set = [{"input": torch.ones(3, 4, 4), "target": torch.ones(3, 4, 4)} for _ in range(2)]
    trigger = ModeTrigger()
    assert trigger.training
    ev = Evaluator(test_set, 2, None, "cpu", 0, (), lambda r: None, trigger=trigger, attack=Poison())  # type: ignore[arg-type]
    (batch,) = ev.poisoned() or []
    assert torch.equal(batch["input"], torch.full((2, 3, 4, 4), 0.25)) and not trigger.training


def test_attack_losses_get_the_trained_clean_victim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ctx.clean_victim`` (e.g. C-BAIQA's surrogate) returns the clean victim the run trained, lazily."""
    from bdcore.testing import toy

    seen: list[object] = []
    poison = toy.ToyInvert.poison

    def spy(self: toy.ToyInvert, batch: dict, trigger: object, **kw: object) -> dict:
        if not seen:
            seen.append(self.ctx.clean_victim())
        return poison(self, batch, trigger, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(toy.ToyInvert, "poison", spy)
    text = spec().replace("from_clean = true", "from_clean = false")
    out = run_spec(text, tmp_path)
    assert len(seen) == 1 and isinstance(seen[0], toy.ToyDenoiser)
    from safetensors.torch import load_file

    key = json.loads((out.run_dir / "manifest.json").read_text())["stages"]["clean-victim"]
    saved = load_file(str(next((tmp_path / "runs").rglob(f"clean-victim-{key}")) / "tensors.safetensors"))
    state = seen[0].state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(v, saved[f"victim.{k}"]) for k, v in state.items())
