"""Contract: a victim or attack loss resumes *exactly* from a training checkpoint.

The engine checkpoints a training stage every ``[run] checkpoint_every`` steps; ``bdcore run --resume``
continues from the last checkpoint and must end bit-identical to a run that was never interrupted. That
holds only if every piece of state the components change while training is in the checkpoint: their
parameters and buffers (``state_dict()``) and whatever else they own — a private optimizer, a generator
they draw from, a step counter (:class:`bdcore.protocols.Resumable`).

The contract trains the components with the engine's own loop (:func:`bdcore.engine.train.train_loop`)
three times: uninterrupted; stopped right after a checkpoint (the batch stream raises, as a ``kill -9``
would end it); and resumed from that checkpoint by *freshly built* components with every global random
stream scrambled. The resumed run's weights, owned state and loss history must equal the uninterrupted
run's exactly. Example::

    from bdcore.testing.resume import ResumeContract

    class TestCodecResume(ResumeContract):
        def make_victim(self):
            return CompressAIVictim(CodecParams(model="bmshj2018-factorized", n=16, m=16), Context(seed=0))

        def make_trigger(self):                       # attack losses only
            return BavaftTrigger(BavaftTriggerParams(), Context(seed=0))

        def make_attack(self, trigger):               # attack losses only
            return PsnrAttack(AttackParams(), Context(seed=0, trigger=trigger))

        def batch(self, step):
            return {"input": images_of(step), "target": images_of(step), "index": torch.arange(4)}

Each ``test_*`` method runs for every subclass: ``test_clean_resume_is_exact`` trains the victim with its
clean loss, ``test_attack_resume_is_exact`` (when :meth:`ResumeContract.make_attack` returns an attack)
trains as the engine's attack stage does for the attack's threat model.

:func:`kill_and_resume` does the same end to end, as a user would: ``bdcore run`` in a subprocess,
``SIGKILL`` once the stage has written its first checkpoint (once per listed stage), ``bdcore run
--resume``, and every finished stage's tensors and the results compared with an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import torch
from torch import nn

from bdcore.context import derive_seed
from bdcore.engine.train import Checkpointer, train_loop
from bdcore.spec.model import TrainSettings
from bdcore.state import owned_states, seed_everything

__all__ = ["ResumeContract", "ResumeMismatch", "assert_exact_resume", "kill_and_resume"]


class ResumeMismatch(AssertionError):
    """The resumed run ended differently from the uninterrupted one."""


class _Killed(Exception):
    """Raised by the batch stream to end a run as a kill would."""


@attrs.define
class _Parts:
    victim: Any
    trigger: Any = None
    attack: Any = None


def _training(parts: _Parts, phase: Literal["clean", "attack"], seed: int) -> dict[str, Any]:
    """modules, params, loss_fn, after_step and owners as the engine's clean or attack stage builds them."""
    victim, trig, atk = parts.victim, parts.trigger, parts.attack
    modules: dict[str, nn.Module] = {"victim": victim}
    after_step = getattr(victim, "after_step", None)
    if phase == "clean":
        return {
            "modules": modules,
            "params": list(victim.trainable_parameters("clean")),
            "loss_fn": lambda batch, step: victim.clean_loss(batch),
            "after_step": after_step,
            "owners": {},
        }
    params = list(victim.trainable_parameters("attack"))
    if getattr(atk, "trains_trigger", False) and isinstance(trig, nn.Module):
        params += [p for p in trig.parameters() if p.requires_grad]
        modules["trigger"] = trig
    if isinstance(atk, nn.Module):
        params += [p for p in atk.parameters() if p.requires_grad]
        modules["attack"] = atk

    def poison_gen(step: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(seed, "train-poison", step))

    if atk.threat_model == "training-controlled":

        def loss_fn(batch: dict[str, Any], step: int) -> Any:
            return atk.attack_loss(victim, batch, atk.poison(batch, trig, generator=poison_gen(step)))

    else:  # data poisoning: the first half of every batch is poisoned, the victim trains on its own loss
        used: dict[str, Any] = {}

        def loss_fn(batch: dict[str, Any], step: int) -> Any:
            n = batch["input"].shape[0]
            half = {
                k: (v[: max(1, n // 2)] if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) else v)
                for k, v in batch.items()
            }
            with torch.no_grad():
                p = atk.poison(half, trig, generator=poison_gen(step))
            batch = dict(batch)
            k = half["input"].shape[0]
            batch["input"] = torch.cat([p["input"].to(batch["input"].dtype), batch["input"][k:]])
            target = batch["target"].clone()
            target[:k] = p["attack_target"].to(target.dtype)
            batch["target"] = target
            used["batch"] = batch
            return victim.clean_loss(batch)

        if after_step is not None:
            victim_after_step = after_step

            def after_poisoned(batch: dict[str, Any]) -> Any:  # noqa: ARG001 - the loss's batch is used
                return victim_after_step(used.pop("batch"))

            after_step = after_poisoned
    return {
        "modules": modules,
        "params": params,
        "loss_fn": loss_fn,
        "after_step": after_step,
        "owners": {"trigger": trig, "attack": atk},
    }


def _snapshot(parts: _Parts, training: dict[str, Any], history: list[dict[str, float]]) -> dict[str, Any]:
    nets = {"victim": parts.victim, "trigger": parts.trigger, "attack": parts.attack}
    return {
        "state_dict": {k: m.state_dict() for k, m in nets.items() if isinstance(m, nn.Module)},
        "owned": owned_states({**training["modules"], **training["owners"]}),
        "history": history,
    }


def _compare(expected: Any, got: Any, path: str, problems: list[str]) -> None:
    if isinstance(expected, torch.Tensor) or isinstance(got, torch.Tensor):
        if not (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)):
            problems.append(
                f"{path}: expected a tensor on both sides, got {type(expected).__name__} and {type(got).__name__}"
            )
        elif expected.shape != got.shape or expected.dtype != got.dtype:
            problems.append(
                f"{path}: expected {list(expected.shape)} {expected.dtype}, got {list(got.shape)} {got.dtype}"
            )
        elif not torch.equal(expected, got):
            if expected.is_floating_point():
                delta = float((expected.double() - got.double()).abs().max())
                problems.append(f"{path}: expected the uninterrupted run's values, got max |difference| {delta:.3g}")
            else:
                problems.append(
                    f"{path}: expected {expected.flatten()[:6].tolist()}…, got {got.flatten()[:6].tolist()}…"
                )
        return
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        for key in sorted(set(expected) | set(got), key=str):
            if key not in got:
                problems.append(f"{path}.{key}: expected it (the uninterrupted run has it), missing after resume")
            elif key not in expected:
                problems.append(f"{path}.{key}: not expected (the uninterrupted run lacks it), present after resume")
            else:
                _compare(expected[key], got[key], f"{path}.{key}", problems)
        return
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        if len(expected) != len(got):
            problems.append(f"{path}: expected {len(expected)} entries, got {len(got)}")
            return
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            _compare(a, b, f"{path}[{i}]", problems)
        return
    if expected != got:
        problems.append(f"{path}: expected {expected!r}, got {got!r}")


def assert_exact_resume(
    make: Callable[[], tuple[Any, Any, Any]],
    batch: Callable[[int], dict[str, Any]],
    *,
    phase: Literal["clean", "attack"] = "clean",
    steps: int = 6,
    checkpoint_at: int = 3,
    settings: TrainSettings | None = None,
    seed: int = 0,
    folder: Path | None = None,
) -> None:
    """Train ``make()``'s ``(victim, trigger, attack)`` for ``steps`` steps three ways (see the module doc)
    and raise :class:`ResumeMismatch` listing every tensor, owned state or logged loss of the resumed run
    that differs from the uninterrupted run's.

    Args:
        make: builds fresh components; ``trigger`` and ``attack`` may be None for ``phase="clean"``.
        batch: the batch of a step (a pure function of the step: tensors on the components' device).
        checkpoint_at: the checkpoint cadence; the interrupted run stops during step ``checkpoint_at + 1``.
        settings: optimizer and precision (default: Adam, lr 1e-3).
    """
    if not 0 < checkpoint_at < steps - 1:
        raise ValueError(f"checkpoint_at must be in 1..{steps - 2}, got {checkpoint_at}")
    settings = settings or TrainSettings(steps=steps, batch_size=1, lr=1e-3)

    def run(where: Path, kill_at: int | None, scramble: bool) -> dict[str, Any] | None:
        seed_everything(seed)
        victim, trigger, attack = make()
        parts = _Parts(victim, trigger, attack)
        training = _training(parts, phase, seed)
        seed_everything(derive_seed(seed, "stage", phase) + (7919 if scramble else 0))

        def batch_fn(step: int) -> dict[str, Any]:
            if kill_at is not None and step >= kill_at:
                raise _Killed
            return batch(step)

        try:
            history = train_loop(
                modules=training["modules"],
                params=training["params"],
                settings=settings,
                steps=steps,
                batch_fn=batch_fn,
                loss_fn=training["loss_fn"],
                after_step=training["after_step"],
                checkpointer=Checkpointer(where, checkpoint_at),
                log_every=1,
                owners=training["owners"],
            )
        except _Killed:
            return None
        return _snapshot(parts, training, history)

    with tempfile.TemporaryDirectory() as tmp:
        root = folder or Path(tmp)
        (root / "uninterrupted").mkdir(parents=True, exist_ok=True)
        (root / "interrupted").mkdir(parents=True, exist_ok=True)
        reference = run(root / "uninterrupted", None, scramble=False)
        killed = run(root / "interrupted", checkpoint_at + 1, scramble=False)
        if killed is not None or not (root / "interrupted" / "checkpoint.pt").is_file():
            raise ResumeMismatch(
                f"expected a checkpoint after step {checkpoint_at} and a stop at step {checkpoint_at + 1}"
            )
        resumed = run(root / "interrupted", None, scramble=True)
    assert reference is not None and resumed is not None  # noqa: S101 - neither run was killed
    problems: list[str] = []
    _compare(reference, resumed, phase, problems)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ResumeMismatch(
            f"resuming the {phase} stage from a checkpoint did not reproduce the uninterrupted run "
            f"({len(problems)} difference(s)); state the component changes while training is missing from "
            f"its train_state_dict() (bdcore.protocols.Resumable):\n  {shown}{more}"
        )


class ResumeContract:
    """Subclass for a victim (and optionally an attack loss with its trigger); see the module doc.

    Override :meth:`make_victim` and :meth:`batch`; for an attack loss also :meth:`make_trigger` and
    :meth:`make_attack`. ``settings`` sets the optimizer and precision of both stages.
    """

    steps: int = 6
    checkpoint_at: int = 3
    settings: TrainSettings | None = None

    def make_victim(self) -> Any:
        raise NotImplementedError

    def make_trigger(self) -> Any:
        return None

    def make_attack(self, trigger: Any) -> Any:  # noqa: ARG002 - default: no attack to test
        return None

    def batch(self, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def _make(self) -> tuple[Any, Any, Any]:
        trigger = self.make_trigger()
        return self.make_victim(), trigger, self.make_attack(trigger)

    def test_clean_resume_is_exact(self) -> None:
        assert_exact_resume(
            self._make,
            self.batch,
            phase="clean",
            steps=self.steps,
            checkpoint_at=self.checkpoint_at,
            settings=self.settings,
        )

    def test_attack_resume_is_exact(self) -> None:
        if self.make_attack(self.make_trigger()) is None:
            return
        assert_exact_resume(
            self._make,
            self.batch,
            phase="attack",
            steps=self.steps,
            checkpoint_at=self.checkpoint_at,
            settings=self.settings,
        )


def _bdcore_run(spec: Path, out: Path, overrides: Sequence[str], resume: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bdcore.cli", "run", str(spec), "--out", str(out), "-q"]
    cmd += [arg for kv in overrides for arg in ("--set", kv)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        cmd + (["--resume"] if resume else []), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{what}: expected exit code 0, got {proc.returncode}:\n{out.decode(errors='replace')[-3000:]}"
        )


def kill_and_resume(
    spec: Path,
    tmp_path: Path,
    *,
    stages: Sequence[str] = ("clean-victim", "attack"),
    overrides: Sequence[str] = (),
    timeout: float = 600.0,
) -> dict[str, int]:
    """Kill ``bdcore run spec`` with SIGKILL in each of ``stages`` (once its first checkpoint is written),
    resume it with ``--resume`` each time, and assert it ends bit-identical to an uninterrupted run.

    Compared: every finished stage's ``tensors.safetensors`` (all tensors, bitwise) and the run's
    ``results.jsonl`` (bytewise). Returns the number of tensors compared per stage folder.

    Raises:
        AssertionError: a run failed, a stage finished before it could be killed (lower
            ``run.checkpoint_every`` or raise the stage's steps), or anything differs.
    """
    from safetensors.torch import load_file

    reference, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    _finish(_bdcore_run(spec, reference, overrides, resume=False), "the uninterrupted run", timeout)
    for n, stage in enumerate(stages):
        started = time.time()
        proc = _bdcore_run(spec, killed, overrides, resume=n > 0)
        deadline = started + timeout
        found: list[Path] = []
        while not found and time.time() < deadline and proc.poll() is None:
            found = [
                p for p in killed.glob(f".stages/{stage}-*.partial/checkpoint.pt") if p.stat().st_mtime >= started - 1
            ]
            time.sleep(0.01)
        if not found:
            out = proc.communicate(timeout=timeout)[0] if proc.poll() is not None else b""
            proc.kill()
            raise AssertionError(
                f"expected a checkpoint of stage {stage} to kill the run at, got none (exit {proc.poll()}):\n"
                f"{out.decode(errors='replace')[-2000:]}"
            )
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        partial = found[0].parent
        if (partial.parent / partial.name.removesuffix(".partial") / "stage.json").is_file():
            raise AssertionError(f"stage {stage} finished before the kill: lower run.checkpoint_every or add steps")
    _finish(_bdcore_run(spec, killed, overrides, resume=True), "the resumed run", timeout)
    counts: dict[str, int] = {}
    problems: list[str] = []
    for folder in sorted((reference / ".stages").iterdir()):
        if not (folder / "stage.json").is_file():
            continue
        twin = killed / ".stages" / folder.name
        if not (twin / "tensors.safetensors").is_file():
            problems.append(f"{folder.name}: expected the resumed run to finish this stage, it did not")
            continue
        a, b = load_file(str(folder / "tensors.safetensors")), load_file(str(twin / "tensors.safetensors"))
        _compare(a, b, folder.name, problems)
        counts[folder.name] = len(a)
    results = [next(root.glob("*/results.jsonl")).read_text() for root in (reference, killed)]
    if results[0] != results[1]:
        problems.append("results.jsonl: expected the uninterrupted run's rows, got different values")
    if problems:
        raise ResumeMismatch(
            "kill -9 and --resume did not reproduce the uninterrupted run:\n  " + "\n  ".join(problems[:30])
        )
    return counts
