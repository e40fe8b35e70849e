"""Contract suites plugin authors subclass (kornia's ``BaseTester`` pattern).

Example::

    class TestFTrojan(TriggerContract):
        def make(self):
            return FTrojan(FTrojanParams(), Context(seed=0))

Each suite is a plain pytest class: its ``test_*`` methods run for every subclass.
Override ``images()`` for a trigger that needs a particular size.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from bdcore.metrics.batch import EvalBatch


def _images(n: int = 4, c: int = 3, h: int = 32, w: int = 32, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    base = torch.rand(n, c, max(2, h // 4), max(2, w // 4), generator=gen)
    return (
        torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1).to(dtype)
    )


class ParamsContract:
    """Params classes: defaults build, unknown keys are refused by the spec converter."""

    params_cls: type | None = None

    def test_params_defaults_and_unknown_keys(self) -> None:
        if self.params_cls is None:
            return
        from bdcore.spec.converter import make_converter, structure

        conv = make_converter()
        obj, issues = structure(conv, {}, self.params_cls, "params")
        required = [f.name for f in attrs.fields(self.params_cls) if f.default is attrs.NOTHING]
        if not required:
            assert issues == [], issues
            assert conv.structure(conv.unstructure(obj), self.params_cls) == obj
        _, issues = structure(conv, {"surely_not_a_param": 1}, self.params_cls, "params")
        assert any(i.path == "params.surely_not_a_param" for i in issues), issues


class TriggerContract(ParamsContract):
    """Shape, dtype, device, range, determinism, α = 0 identity and gradcheck."""

    #: image sizes the trigger must handle (H, W).
    sizes: tuple[tuple[int, int], ...] = ((32, 32), (48, 40))
    identity_at_zero: bool = True
    check_gradcheck: bool = True
    atol_identity: float = 1e-5

    def make(self) -> Any:
        raise NotImplementedError

    def images(self, h: int = 32, w: int = 32, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return _images(4, 3, h, w, dtype)

    def test_flags(self) -> None:
        t = self.make()
        for flag in ("learnable", "needs_victim", "differentiable"):
            assert isinstance(getattr(t, flag), bool), flag

    def test_shape_dtype_range(self) -> None:
        t = self.make()
        for h, w in self.sizes:
            x = self.images(h, w)
            y = t.inject_trigger(x, generator=torch.Generator().manual_seed(0))
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
            assert not torch.equal(y, x), "the trigger changed nothing at strength 1"

    def test_float64(self) -> None:
        t = self.make()
        x = self.images(dtype=torch.float64)
        assert t.inject_trigger(x, generator=torch.Generator().manual_seed(0)).dtype == torch.float64

    def test_deterministic(self) -> None:
        t = self.make()
        x = self.images()
        a = t.inject_trigger(x, generator=torch.Generator().manual_seed(3))
        b = t.inject_trigger(x, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)

    def test_strength_zero_is_identity(self) -> None:
        if not self.identity_at_zero:
            return
        t = self.make()
        x = self.images()
        y = t.inject_trigger(x, strength=0.0, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(y, x, atol=self.atol_identity, rtol=0)

    def test_per_sample_strength(self) -> None:
        t = self.make()
        x = self.images()
        s = torch.tensor([0.0, 0.5, 1.0, 1.0])
        y = t.inject_trigger(x, strength=s, generator=torch.Generator().manual_seed(0))
        y1 = t.inject_trigger(x[2:3], strength=1.0, generator=torch.Generator().manual_seed(0))
        assert y.shape == x.shape
        if self.identity_at_zero:
            torch.testing.assert_close(y[0], x[0], atol=self.atol_identity, rtol=0)
        torch.testing.assert_close(y[2:3], y1, atol=1e-5, rtol=1e-5)

    def test_gradcheck(self) -> None:
        t = self.make()
        if not t.differentiable or not self.check_gradcheck:
            return
        if isinstance(t, torch.nn.Module):
            t = t.double()
        # Keep inputs away from the clamp boundaries so the check sees the smooth part.
        x = (0.25 + 0.5 * self.images(8, 8, torch.float64)[:1]).requires_grad_(True)

        def f(inp: torch.Tensor) -> torch.Tensor:
            return t.inject_trigger(inp, strength=0.5, generator=torch.Generator().manual_seed(0))

        assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-4, fast_mode=True)


class MetricContract(ParamsContract):
    """Direction flag, needs, and a value for a batch."""

    def make(self) -> Any:
        raise NotImplementedError

    def batch(self) -> EvalBatch:
        x = _images()
        y = (x + 0.05).clamp(0, 1)
        return EvalBatch(
            split="poisoned",
            input=y,
            output=y,
            target=x,
            attack_target=1 - x,
            clean_input=x,
            clean_output=x,
            reference_output=x,
            strength=torch.ones(4),
        )

    def test_metadata(self) -> None:
        m = self.make()
        assert m.higher_is_better in (True, False, None)
        assert isinstance(m.needs, frozenset)
        assert set(m.splits) <= {"clean", "poisoned"}

    def test_update_compute(self) -> None:
        m = self.make()
        m.reset()
        m.update(self.batch())
        out = m.compute()
        assert isinstance(out, dict) and out
        for v in out.values():
            assert isinstance(float(v), float)

    def test_grid_columns(self) -> None:
        """The optional ``grid_columns`` hook returns image batches in [0, 1] (or nothing)."""
        m = self.make()
        hook = getattr(m, "grid_columns", None)
        if hook is None:
            return
        m.reset()
        b = self.batch()
        m.update(b)
        cols = hook(b, 2)
        assert isinstance(cols, dict)
        for key, images in cols.items():
            assert isinstance(key, str) and isinstance(images, torch.Tensor), key
            assert images.ndim == 4 and images.shape[0] == 2 and images.shape[1] in (1, 3), (key, images.shape)
            assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0, key


class DefenseContract(ParamsContract):
    def make(self) -> Any:
        raise NotImplementedError

    def test_stage(self) -> None:
        assert self.make().stage in ("input", "model", "detection")


class VictimContract(ParamsContract):
    """predict/clean_loss/trainable_parameters on a small batch."""

    input_shape: tuple[int, ...] = (2, 3, 32, 32)

    def make(self) -> Any:
        raise NotImplementedError

    def batch(self) -> dict[str, Any]:
        raise NotImplementedError

    def test_loss_and_predict(self) -> None:
        v = self.make()
        b = self.batch()
        loss = v.clean_loss(b)
        assert "loss" in loss and loss["loss"].ndim == 0
        loss["loss"].backward()
        assert list(v.trainable_parameters("clean"))
        with torch.no_grad():
            out = v.predict(b["input"])
        assert isinstance(out, torch.Tensor | dict)


class AttackLossContract(ParamsContract):
    def make(self) -> Any:
        raise NotImplementedError

    def test_threat_model(self) -> None:
        a = self.make()
        assert a.threat_model in ("data-poisoning", "training-controlled")
        assert isinstance(a.trains_trigger, bool)
