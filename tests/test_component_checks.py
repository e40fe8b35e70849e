"""Every component output the engine receives is checked at one place (``bdcore.engine.checks``).

A trigger, victim, attack loss, defense or metric that returns the wrong thing, or raises, stops
the run with a message naming the spec key, the component, its plugin and what was expected:
in the data-poisoning, training-controlled and evaluation paths alike, never a raw torch error.
"""

from __future__ import annotations

from pathlib import Path

import hostileplug
import pytest
from click.testing import CliRunner

import bdcore.cli as cli
from bdcore.errors import ComponentError, ContractError
from bdcore.testing import make_host, run_spec

SPEC = """
[run]
name = "checks"
seed = 2
[data]
use = "toy-smooth"
params = {{ count = 8, size = 8 }}
[victim]
use = "{victim}"
params = {{ width = 4{victim_mode} }}
[train]
steps = 1
batch_size = 4
[attack]
steps = {attack_steps}
batch_size = 4
poison_rate = 0.5
trigger = {{ use = "{trigger}", params = {{ {trigger_mode} }} }}
loss = {{ use = "{loss}", params = {{ {loss_mode} }} }}
[eval]
batch_size = 2
clean_victim = false
{extra}
"""


def spec(
    *,
    victim: str = "toy-denoiser",
    victim_mode: str = "",
    trigger: str = "toy-patch",
    trigger_mode: str = "",
    loss: str = "toy-invert",
    loss_mode: str = "",
    attack_steps: int = 1,
    extra: str = "",
) -> str:
    return SPEC.format(
        victim=victim,
        victim_mode=f', mode = "{victim_mode}"' if victim_mode else "",
        trigger=trigger,
        trigger_mode=f'mode = "{trigger_mode}"' if trigger_mode else "",
        loss=loss,
        loss_mode=f'mode = "{loss_mode}"' if loss_mode else "",
        attack_steps=attack_steps,
        extra=extra,
    )


TRIGGER = 'attack.trigger: trigger "bad-trigger" (hostileplug test)'
ATTACK = 'attack.loss: attack loss "bad-loss" (hostileplug test)'
VICTIM = 'victim: victim "bad-victim" (hostileplug test)'

# (name, spec, error class, fragments the message must hold)
CASES = {
    # a wrong-shape trigger, on each path that poisons: training (data-poisoning), training
    # (training-controlled), and the test set (no attack training)
    "trigger-shape-data-poisoning": (
        spec(trigger="bad-trigger", trigger_mode="shape"),
        ContractError,
        [TRIGGER, 'applied by attack.loss: attack loss "toy-invert"', "expected [2, 3, 8, 8] (the shape of the clean"],
    ),
    "trigger-shape-training-controlled": (
        spec(trigger="bad-trigger", trigger_mode="shape", loss="toy-invert-controlled"),
        ContractError,
        [TRIGGER, "returned images of shape [4, 3, 8, 7]; expected [4, 3, 8, 8]"],
    ),
    "trigger-shape-evaluation": (
        spec(trigger="bad-trigger", trigger_mode="shape", attack_steps=0),
        ContractError,
        [TRIGGER, "returned images of shape [2, 3, 8, 7]; expected [2, 3, 8, 8]"],
    ),
    "trigger-list": (
        spec(trigger="bad-trigger", trigger_mode="list", loss="toy-invert-controlled"),
        ContractError,
        [TRIGGER, "the poisoned 'input' must be a tensor, got a list"],
    ),
    "trigger-integer-images": (
        spec(trigger="bad-trigger", trigger_mode="int", attack_steps=0),
        ContractError,
        [TRIGGER, "dtype torch.uint8; expected a floating-point tensor"],
    ),
    "victim-batch": (
        spec(victim="bad-victim", victim_mode="batch", attack_steps=0),
        ContractError,
        [VICTIM, "(the attacked model): predict() must return one output per input (a tensor with first dimension 2)"],
    ),
    "victim-list": (
        spec(victim="bad-victim", victim_mode="list", attack_steps=0),
        ContractError,
        [VICTIM, "predict() must return a tensor or a dict with 'output', got a list"],
    ),
    "victim-raises": (
        spec(victim="bad-victim", victim_mode="raise", attack_steps=0),
        ComponentError,
        [VICTIM, "predict() failed: RuntimeError: CUDA error: device-side assert"],
    ),
    "victim-clean-loss": (
        spec(victim="bad-victim", victim_mode="loss"),
        ContractError,
        [VICTIM, "clean_loss(): the loss must be a dict with a scalar tensor 'loss', got a tensor of shape []"],
    ),
    "attack-loss-no-loss": (
        spec(loss="bad-loss", loss_mode="no-loss"),
        ContractError,
        [ATTACK, "attack_loss(): the loss must be a dict with a scalar tensor 'loss', got a dict with keys ['total']"],
    ),
    "attack-loss-vector": (
        spec(loss="bad-loss", loss_mode="vector"),
        ContractError,
        [ATTACK, "got a tensor of shape [3] (float32)"],
    ),
    "attack-loss-tensor": (spec(loss="bad-loss", loss_mode="tensor"), ContractError, [ATTACK, "got a tensor"]),
    "attack-loss-raises": (
        spec(loss="bad-loss", loss_mode="raise"),
        ComponentError,
        [ATTACK, "attack_loss() failed: ValueError: CUDA error: device-side assert"],
    ),
    "attack-target-shape": (
        spec(loss="bad-loss", loss_mode="target-shape"),
        ContractError,
        [ATTACK, "attack_target of shape [2, 1, 2, 8]; expected [2, 3, 8, 8] (the shape of the clean target)"],
    ),
}

DEFENSE = 'defense[0]: defense "bad-defense" (hostileplug test)'
METRIC = 'metric[0]: metric "bad-metric" (hostileplug test)'
CASES |= {
    "defense-returns-none": (
        spec(extra='[[defense]]\nuse = "bad-defense"\nparams = { mode = "none" }'),
        ContractError,
        [DEFENSE, "defend() must return a DefenseOutcome, got a NoneType"],
    ),
    "defense-transform-shape": (
        spec(extra='[[defense]]\nuse = "bad-defense"\nparams = { mode = "transform-shape" }'),
        ContractError,
        [
            DEFENSE,
            "transform() must return images of the input's shape [2, 3, 8, 8], got a tensor of shape [2, 1, 8, 8]",
        ],
    ),
    "defense-detector-count": (
        spec(extra='[[defense]]\nuse = "bad-defense"\nparams = { mode = "detector-count" }'),
        ContractError,
        [DEFENSE, "the detector must return one score per input (2), got a tensor of shape [3]"],
    ),
    "defense-extra": (
        spec(extra='[[defense]]\nuse = "bad-defense"\nparams = { mode = "extra" }'),
        ContractError,
        [DEFENSE, "DefenseOutcome.extra: 'pruned' must be a number, got a str"],
    ),
    "defense-raises": (
        spec(extra='[[defense]]\nuse = "bad-defense"\nparams = { mode = "raise" }'),
        ComponentError,
        [DEFENSE, "defend() failed: RuntimeError: CUDA error: device-side assert"],
    ),
    "defense-trainer-loss": (
        spec(extra='[[defense]]\nuse = "bad-defense"\nparams = { mode = "trainer-loss" }'),
        ContractError,
        [DEFENSE, "the training loss: the loss must be a dict with a scalar tensor 'loss', got a float"],
    ),
    "metric-list": (
        spec(attack_steps=0, extra='[[metric]]\nuse = "bad-metric"\nparams = { mode = "list" }'),
        ContractError,
        [METRIC, "compute(): must be a dict of numbers, got a list"],
    ),
    "metric-string-value": (
        spec(attack_steps=0, extra='[[metric]]\nuse = "bad-metric"\nparams = { mode = "string-value" }'),
        ContractError,
        [METRIC, "compute(): 'value' must be a number, got a str"],
    ),
    "metric-update-raises": (
        spec(attack_steps=0, extra='[[metric]]\nuse = "bad-metric"\nparams = { mode = "raise-update" }'),
        ComponentError,
        [METRIC, "update() failed: IndexError: CUDA error: device-side assert"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_component_outputs_name_the_component(case: str, tmp_path: Path) -> None:
    text, error, fragments = CASES[case]
    with pytest.raises(error) as info:
        run_spec(text, tmp_path, [hostileplug])
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (case, fragment, message)
    assert "\x1b" not in message  # a library's ANSI colours are dropped from our message


def test_cli_reports_a_raw_torch_error_as_the_component_s_failure(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """End to end: exit 1, the component named, no traceback, no escape sequences."""
    monkeypatch.setattr(cli, "_host", lambda strict=False: make_host([hostileplug]))
    path = tmp_path / "spec.toml"
    path.write_text(spec(trigger="bad-trigger", trigger_mode="shape", loss="toy-invert-controlled"))
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "\x1b" not in res.output
    assert TRIGGER in res.output, res.output
