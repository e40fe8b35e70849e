"""The record a metric sees for each evaluation batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from torch import Tensor

#: The fields a metric may select by name (:meth:`EvalBatch.field`), e.g. the built-in ``psnr``'s ``between = [a, b]``.
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
    """One evaluation batch, as metrics see it (``Metric.update(batch)``).

    The engine builds one per test batch and split, for every evaluated model (the clean
    victim, the attacked model, each defense): on the ``"clean"`` split the inputs are the
    untriggered test images, on ``"poisoned"`` the same images triggered. ``B`` is the batch
    size; images are ``B×C×H×W`` float in [0, 1]; "an output" is whatever the victim's
    ``predict`` returns as its main output (an image ``B×C×H×W``, scores ``B``, logits
    ``B×K``). A metric lists in ``needs`` the fields it reads besides ``input``, ``output``,
    ``extras``, ``strength``, ``split`` and ``index``, which every batch holds.

    Attributes:
        split: ``"clean"`` or ``"poisoned"``.
        input: ``B×C×H×W``, what the model saw: the clean or triggered input after any input defense.
        output: the model's main output on ``input``.
        extras: ``{name: B-tensor}``, the other values ``predict`` returned (e.g. a codec's real ``"bpp"``).
        target: the ground truth of the clean sample: an image ``B×C×H×W``, scores ``B`` or classes ``B`` (int64).
        attack_target: what the attacker wants for this input, shaped like ``target``; None on the clean split and without an attack.
        clean_input: ``B×C×H×W``, the input without trigger and without input defense.
        clean_model_input: ``B×C×H×W``, ``clean_input`` after any input defense (equals ``input`` on the clean split): the clean counterpart of ``input`` for a metric that re-runs the model.
        clean_output: the evaluated model's output on the clean input (shaped like ``output``).
        reference_output: the clean (never attacked) victim's output on the clean input, AS-FIBA's I_hq; equals ``clean_output`` when evaluating the clean victim.
        strength: ``B`` float, the trigger strength α per sample (0 on the clean split).
        index: ``B`` int64, the samples' positions in the test set.
        victim: the evaluated model (a metric that runs it, e.g. an α-response sweep, lists ``"victim"`` in ``needs``).
        trigger: the run's trigger (None without an attack).
        attack: the run's attack loss (None without an attack).
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
