"""The record a metric sees for each evaluation batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from torch import Tensor

#: Names a metric may compare with ``between = [a, b]``.
FIELDS = (
    "output",
    "target",
    "attack_target",
    "input",
    "clean_input",
    "clean_output",
    "reference_output",
)


@attrs.define
class EvalBatch:
    """One evaluation batch, as metrics see it.

    Attributes:
        split: ``"clean"`` (untriggered inputs) or ``"poisoned"`` (triggered).
        input: ``B×C×H×W`` what the model saw (after any input defense).
        output: the model's main output on ``input`` (image, ``B`` scores, logits).
        extras: other predicted values (e.g. a codec's real ``"bpp"`` per image).
        target: ground truth of the clean sample.
        attack_target: what the attacker wants for this input (None if no attack).
        clean_input: the input without trigger (and without input defense).
        clean_model_input: the clean input as the model saw it: ``clean_input`` after
            any input defense (equals ``input`` on the clean split). The clean
            counterpart of ``input`` when a metric re-runs the model on both.
        clean_output: the evaluated model's output on the clean input.
        reference_output: the *clean* (never attacked) victim's output on the clean
            input — AS-FIBA's I_hq; equals ``clean_output`` when evaluating the clean victim.
        strength: ``B`` trigger strength α per sample (0 on the clean split).
        victim, trigger, attack: the components, for metrics that need the model
            (``needs = {"victim"}``), e.g. an α-response sweep.
    """

    split: str
    input: Tensor
    output: Tensor
    extras: dict[str, Tensor] = attrs.Factory(dict)
    target: Any = None
    attack_target: Any = None
    clean_input: Tensor | None = None
    clean_model_input: Tensor | None = None
    clean_output: Any = None
    reference_output: Any = None
    strength: Tensor | None = None
    victim: Any = None
    trigger: Any = None
    attack: Any = None
    index: Tensor | None = None

    def field(self, name: str) -> Any:
        if name not in FIELDS:
            raise KeyError(f"unknown field {name!r}; choose from {', '.join(FIELDS)}")
        return getattr(self, name)
