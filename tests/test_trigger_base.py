"""TriggerBase: the clamp pass that ``output_in_range`` skips, and float strengths for integer images."""

from __future__ import annotations

import torch

from bdcore.components import TriggerBase, as_strength


class _Add(TriggerBase):
    def apply(self, images: torch.Tensor, strength: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        self.last_out = images + strength * 0.75
        return self.last_out


class _AddClamped(_Add):
    output_in_range = True

    def apply(self, images: torch.Tensor, strength: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return super().apply(images, strength, generator).clamp_(0.0, 1.0)


def test_inject_trigger_clamps_unless_apply_already_did() -> None:
    x = torch.full((2, 1, 2, 2), 0.5)
    plain = _Add()
    y = plain.inject_trigger(x)
    assert float(y.max()) == 1.0 and y is not plain.last_out  # clamped into a new tensor
    fused = _AddClamped()
    z = fused.inject_trigger(x)
    assert z is fused.last_out and torch.equal(z, y)  # returned as is: no second pass


def test_as_strength_is_float_for_integer_images() -> None:
    u8 = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    s = as_strength(0.5, u8)
    assert s.dtype == torch.get_default_dtype() and s.shape == (3, 1, 1, 1) and float(s[0]) == 0.5
    assert as_strength(torch.tensor([0.25, 0.5, 1.0]), torch.zeros(3, 1, 2, 2)).dtype == torch.float32
    assert as_strength(None, torch.zeros(2, 1, 2, 2, dtype=torch.float64), 0.3).dtype == torch.float64
