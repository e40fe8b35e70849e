"""Contract suites plugin authors subclass (kornia's ``BaseTester`` pattern).

Example::

    class TestFTrojan(TriggerContract):
        params_cls = FTrojanParams

        def make(self):
            return FTrojan(FTrojanParams(), Context(seed=0))

Each suite is a plain pytest class: its ``test_*`` methods run for every subclass. A suite
checks the whole protocol of its role the way the engine uses it (see ``docs/hooks.md``),
and every failed check says what was expected and what came back.

============================  ==========================================================
suite                         checks
============================  ==========================================================
:class:`ParamsContract`       the params class builds from defaults, round-trips through
                              the spec converter and refuses unknown keys
:class:`TriggerContract`      flags; shape, dtype, device, [0, 1] range at every size;
                              float64; input left untouched; determinism under a
                              generator; α = 0 identity; per-sample α; gradcheck;
                              every random stream it keeps is in ``train_state_attrs``
:class:`VictimContract`       ``nn.Module`` with a ``task``; ``predict`` shape (and
                              per-sample extras); ``clean_loss`` a finite scalar with
                              grad reaching the trainable parameters; the
                              ``trainable_parameters`` of both phases; the state
                              round-trips through a stage file and ``deepcopy``; its
                              random streams are in ``train_state_attrs``
:class:`AttackLossContract`   threat model; ``poison``'s keys, shapes, range, that it
                              leaves the batch untouched and is deterministic; the
                              attack target shaped like the target; a
                              training-controlled ``attack_loss``: a finite scalar
                              whose grad reaches the victim (and a trained trigger);
                              its random streams are in ``train_state_attrs``
:class:`DefenseContract`      ``stage``; ``defend`` returns a ``DefenseOutcome`` with
                              numeric ``extra``; per stage: an input transform keeps
                              shape, dtype, device and [0, 1] and is reproducible; a
                              model defense returns a model whose state loads back into
                              the victim; a detector gives one finite score per input
:class:`MetricContract`       ``higher_is_better``, ``needs``, ``splits``; ``update`` /
                              ``compute`` on each split's batch, finite values; ``reset``;
                              the value does not depend on how the test set is batched;
                              ``needs`` lists every field it reads; ``grid_columns``
:class:`DatasetContract`      ``splits()`` gives non-empty ``train`` and ``test``; samples
                              are ``C×H×W`` images in [0, 1] with a target; reads are
                              deterministic and batches collate
============================  ==========================================================

Defaults (a few images, the toy victim, trigger and attack of :mod:`bdcore.toy`) suit an
image-to-image component; override ``images()`` / ``batch()`` / ``victim()`` / ``trigger()``
for other tasks (an IQA victim's batch holds scores as targets).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs
import pytest
import torch
from torch import Tensor, nn

from bdcore.metrics.batch import EvalBatch

__all__ = [
    "AttackLossContract",
    "DatasetContract",
    "DefenseContract",
    "MetricContract",
    "ParamsContract",
    "TriggerContract",
    "VictimContract",
]

_THREAT_MODELS = ("data-poisoning", "training-controlled", "evasion")
_STAGES = ("input", "model", "detection")
_SPLITS = ("clean", "poisoned")


# -- messages -------------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    raise AssertionError(message)


def _expect(ok: bool, message: str) -> None:
    """Fail with ``message`` (which says what was expected and what came back) unless ``ok``."""
    if not ok:
        _fail(message)


def show(value: Any) -> str:
    """A short description of a value for failure messages (a tensor's shape, dtype, device, range)."""
    if isinstance(value, Tensor):
        text = f"tensor {list(value.shape)} {str(value.dtype).removeprefix('torch.')} on {value.device}"
        if value.numel() and (value.is_floating_point() or value.dtype in (torch.int32, torch.int64, torch.uint8)):
            v = value.detach()
            text += f" in [{float(v.min()):.4g}, {float(v.max()):.4g}]"
        return text
    if isinstance(value, Mapping):
        return f"{type(value).__name__} with keys {sorted(map(str, value))}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 80 else text[:77] + '...'}"


def _name(obj: Any) -> str:
    return type(obj).__name__


def _images(n: int = 4, c: int = 3, h: int = 32, w: int = 32, dtype: torch.dtype = torch.float32) -> Tensor:
    """Seeded smooth images ``n×c×h×w`` in [0, 1] (image-like, not white noise)."""
    gen = torch.Generator().manual_seed(7)
    base = torch.rand(n, c, max(2, h // 4), max(2, w // 4), generator=gen)
    return (
        torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1).to(dtype)
    )


def _in_unit_range(x: Tensor, tol: float = 0.0) -> bool:
    x = x.detach()
    return bool(torch.isfinite(x).all()) and float(x.min()) >= -tol and float(x.max()) <= 1.0 + tol


def _expect_image_like(who: str, got: Any, like: Tensor, *, dtype: bool = True) -> None:
    """``got`` is a tensor of ``like``'s shape (dtype, device) with finite values in [0, 1]."""
    _expect(isinstance(got, Tensor), f"{who}: expected a tensor shaped like {show(like)}; got {show(got)}")
    want = f"{list(like.shape)} {str(like.dtype).removeprefix('torch.') if dtype else ''} on {like.device}"
    same = got.shape == like.shape and got.device == like.device and (not dtype or got.dtype == like.dtype)
    _expect(same, f"{who}: expected a tensor {want.replace('  ', ' ')} (same as its input); got {show(got)}")
    _expect(_in_unit_range(got), f"{who}: expected finite values in [0, 1]; got {show(got)}")


def _expect_scalar_loss(who: str, terms: Any) -> Tensor:
    """``terms`` is a mapping whose ``"loss"`` is a finite 0-dim float tensor with grad; returns it."""
    _expect(isinstance(terms, Mapping), f"{who}: expected a dict with a 'loss' tensor; got {show(terms)}")
    _expect("loss" in terms, f"{who}: expected a 'loss' key; got keys {sorted(map(str, terms))}")
    loss = terms["loss"]
    _expect(
        isinstance(loss, Tensor) and loss.ndim == 0 and loss.is_floating_point(),
        f"{who}: expected 'loss' to be a 0-dim float tensor (a scalar); got {show(loss)}",
    )
    _expect(bool(torch.isfinite(loss.detach())), f"{who}: expected a finite 'loss'; got {float(loss.detach())}")
    _expect(
        loss.requires_grad, f"{who}: expected 'loss' to require grad (it is what the optimizer minimises); it does not"
    )
    for key, value in terms.items():
        ok = isinstance(value, int | float) or (isinstance(value, Tensor) and value.numel() == 1)
        _expect(
            ok, f"{who}: expected every term to be a number or a 1-element tensor (logged); {key!r} is {show(value)}"
        )
    return loss


def _grad_reaches(who: str, loss: Tensor, params: list[nn.Parameter], what: str) -> None:
    for p in params:
        p.grad = None
    loss.backward()
    reached = [p for p in params if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    _expect(bool(reached), f"{who}: expected the gradient of 'loss' to reach {what}; none of its {len(params)} got one")
    bad = [p for p in reached if not bool(torch.isfinite(p.grad).all())]  # type: ignore[arg-type]
    _expect(not bad, f"{who}: expected finite gradients; {len(bad)} parameters got inf/nan")


def _same_values(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and bool(torch.equal(a.detach(), b.detach()))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same_values(a[k], b[k]) for k in a)
    return bool(a == b)


def _main_output(who: str, pred: Any) -> tuple[Tensor, dict[str, Any]]:
    """A ``predict`` result as (output, extras), the way the engine reads it."""
    if isinstance(pred, Tensor):
        return pred, {}
    if isinstance(pred, Mapping) and isinstance(pred.get("output"), Tensor):
        return pred["output"], {k: v for k, v in pred.items() if k != "output"}
    _fail(f"{who}: expected a tensor or a dict with an 'output' tensor; got {show(pred)}")


def _toy_victim(seed: int = 0) -> nn.Module:
    from bdcore.toy.components import ToyDenoiser
    from bdcore.toy.params import DenoiserParams

    torch.manual_seed(seed)
    return ToyDenoiser(DenoiserParams(width=8))


def _toy_trigger() -> Any:
    from bdcore.toy.components import ToyPatch
    from bdcore.toy.params import PatchParams

    return ToyPatch(PatchParams())


def _toy_attack() -> Any:
    from bdcore.toy.components import ToyInvert
    from bdcore.toy.params import InvertParams

    return ToyInvert(InvertParams())


# -- params ---------------------------------------------------------------------------------


def _assert_random_streams_resumable(component: Any) -> None:
    from bdcore.state import untracked_random_streams

    missing = untracked_random_streams(component)
    assert not missing, (
        f"expected every random stream the component keeps to be in its train_state_attrs (a resumed run must "
        f"draw what the uninterrupted one drew), got untracked: {', '.join(missing)}"
    )


class ParamsContract:
    """The params class: an attrs class that builds from its defaults (or from ``params_example``),
    round-trips through the spec converter, and refuses unknown keys (reported at ``params.KEY``).

    Set ``params_cls`` to the component's params class; a class with required fields also sets
    ``params_example``, a valid ``params`` table.
    """

    params_cls: type | None = None
    #: a valid ``params`` table for a params class with required fields (None: the defaults).
    params_example: dict[str, Any] | None = None

    def _params_cls(self) -> type:
        if self.params_cls is None:
            pytest.skip("set params_cls to check the component's params class")
        _expect(attrs.has(self.params_cls), f"params_cls: expected an attrs class; got {self.params_cls!r}")
        return self.params_cls

    def test_params_defaults_round_trip(self) -> None:
        from bdcore.spec.converter import make_converter, structure

        cls = self._params_cls()
        required = [f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING]
        table = self.params_example
        if table is None:
            if required:
                pytest.skip(f"{cls.__name__} has required fields {required}: set params_example to check it")
            table = {}
        conv = make_converter()
        obj, issues = structure(conv, table, cls, "params")
        _expect(not issues, f"{cls.__name__}: expected {table or 'the defaults'} to be valid; got {issues}")
        again: Any = conv.structure(conv.unstructure(obj), cls)
        _expect(again == obj, f"{cls.__name__}: expected params to survive unstructure/structure; {obj} became {again}")

    def test_params_refuse_unknown_keys(self) -> None:
        from bdcore.spec.converter import make_converter, structure

        cls = self._params_cls()
        table = {**(self.params_example or {}), "surely_not_a_param": 1}
        _, issues = structure(make_converter(), table, cls, "params")
        _expect(
            any(i.path == "params.surely_not_a_param" for i in issues),
            f"{cls.__name__}: expected an issue at params.surely_not_a_param for an unknown key; got {issues}",
        )


# -- trigger --------------------------------------------------------------------------------


class TriggerContract(ParamsContract):
    """A trigger (:class:`bdcore.protocols.Trigger`): flags, shape, dtype, device, range at every
    size in ``sizes``, float64, input untouched, determinism, α = 0 identity, per-sample α and
    (``differentiable``) gradcheck.

    Override ``images()`` for a trigger that needs a particular size or channel count.
    """

    #: image sizes the trigger must handle (H, W).
    sizes: tuple[tuple[int, int], ...] = ((32, 32), (48, 40))
    identity_at_zero: bool = True
    check_gradcheck: bool = True
    atol_identity: float = 1e-5

    def make(self) -> Any:
        raise NotImplementedError("return the trigger to test")

    def images(self, h: int = 32, w: int = 32, dtype: torch.dtype = torch.float32) -> Tensor:
        return _images(4, 3, h, w, dtype)

    def _inject(self, t: Any, x: Tensor, seed: int = 0, **kw: Any) -> Tensor:
        return t.inject_trigger(x, generator=torch.Generator().manual_seed(seed), **kw)  # type: ignore[no-any-return]

    def test_random_streams_are_in_the_train_state(self) -> None:
        _assert_random_streams_resumable(self.make())

    def test_flags(self) -> None:
        t = self.make()
        for flag in ("learnable", "needs_victim", "differentiable"):
            value = getattr(t, flag, None)
            _expect(isinstance(value, bool), f"{_name(t)}.{flag}: expected a bool; got {show(value)}")
        _expect(callable(getattr(t, "inject_trigger", None)), f"{_name(t)}: expected an inject_trigger method")
        if t.learnable:
            _expect(callable(getattr(t, "fit", None)), f"{_name(t)}: learnable, so expected a fit(ctx) method")
        builds = getattr(t, "builds_victim", False)  # optional (TriggerBase: False)
        _expect(isinstance(builds, bool), f"{_name(t)}.builds_victim: expected a bool; got {show(builds)}")
        if t.needs_victim:
            _expect(
                callable(getattr(t, "bind_victim", None)),
                f"{_name(t)}: needs_victim, so expected a bind_victim(model) method the engine calls",
            )

    def test_shape_dtype_range(self) -> None:
        t = self.make()
        for h, w in self.sizes:
            x = self.images(h, w)
            with torch.no_grad():
                y = self._inject(t, x)
            _expect_image_like(f"{_name(t)}.inject_trigger at {h}×{w}", y, x)
            _expect(
                not torch.equal(y, x),
                f"{_name(t)}.inject_trigger at {h}×{w}: expected a change at strength 1; got the input back",
            )

    def test_input_is_not_modified(self) -> None:
        t = self.make()
        x = self.images()
        before = x.clone()
        with torch.no_grad():
            self._inject(t, x)
        _expect(
            torch.equal(x, before),
            f"{_name(t)}.inject_trigger: expected the input batch untouched (the engine keeps it as clean_input); "
            f"it was modified in place (max change {float((x - before).abs().max()):.3g})",
        )

    def test_float64(self) -> None:
        t = self.make()
        x = self.images(dtype=torch.float64)
        with torch.no_grad():
            y = self._inject(t, x)
        _expect(
            y.dtype == torch.float64, f"{_name(t)}.inject_trigger: expected float64 out for float64 in; got {show(y)}"
        )

    def test_deterministic(self) -> None:
        t = self.make()
        x = self.images()
        with torch.no_grad():
            a, b = self._inject(t, x, 3), self._inject(t, x, 3)
        _expect(
            torch.equal(a, b),
            f"{_name(t)}.inject_trigger: expected equal outputs for generators with the same seed; "
            f"max difference {float((a - b).abs().max()):.3g}",
        )

    def test_strength_zero_is_identity(self) -> None:
        if not self.identity_at_zero:
            pytest.skip("identity_at_zero = False")
        t = self.make()
        x = self.images()
        with torch.no_grad():
            y = self._inject(t, x, strength=0.0)
        diff = float((y - x).abs().max())
        _expect(
            diff <= self.atol_identity,
            f"{_name(t)}.inject_trigger(strength=0): expected the input back (atol {self.atol_identity}); max difference {diff:.3g}",
        )

    def test_per_sample_strength(self) -> None:
        t = self.make()
        x = self.images()
        s = torch.tensor([0.0, 0.5, 1.0, 1.0])
        with torch.no_grad():
            y = self._inject(t, x, strength=s)
            y1 = self._inject(t, x[2:3], strength=1.0)
        _expect(
            y.shape == x.shape, f"{_name(t)}.inject_trigger(strength=B tensor): expected {list(x.shape)}; got {show(y)}"
        )
        if self.identity_at_zero:
            diff = float((y[0] - x[0]).abs().max())
            _expect(
                diff <= self.atol_identity,
                f"{_name(t)}: expected the image with strength 0 unchanged in a mixed batch; max difference {diff:.3g}",
            )
        diff = float((y[2:3] - y1).abs().max())
        _expect(
            diff <= 1e-5 + 1e-5 * float(y1.abs().max()),
            f"{_name(t)}: expected an image with strength 1 in a mixed batch to equal it triggered alone at strength 1; "
            f"max difference {diff:.3g}",
        )

    def test_gradcheck(self) -> None:
        t = self.make()
        if not t.differentiable or not self.check_gradcheck:
            pytest.skip("not differentiable (or check_gradcheck = False)")
        if isinstance(t, torch.nn.Module):
            t = t.double()
        # Keep inputs away from the clamp boundaries so the check sees the smooth part.
        x = (0.25 + 0.5 * self.images(8, 8, torch.float64)[:1]).requires_grad_(True)

        def f(inp: Tensor) -> Tensor:
            return self._inject(t, inp, strength=0.5)

        # gradcheck raises a GradcheckError naming the numerical and analytical Jacobians.
        torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-4, fast_mode=True)


# -- victim ---------------------------------------------------------------------------------


class VictimContract(ParamsContract):
    """A victim (:class:`bdcore.protocols.Victim`): an ``nn.Module`` with a ``task``; ``predict``
    gives a tensor (or a dict with ``"output"``) with one row per input, shaped by
    :meth:`output_shape`, and per-sample extras; ``clean_loss`` returns a finite scalar
    ``"loss"`` whose gradient reaches the trainable parameters; ``trainable_parameters`` of
    both phases are the module's own parameters; the state round-trips through a stage file
    (safetensors, as the engine stores it) and through ``copy.deepcopy``.

    The default :meth:`batch` is image-to-image (target = input); override it for other tasks.
    """

    input_shape: tuple[int, ...] = (2, 3, 32, 32)
    #: predict is a pure function of the weights in eval mode (compare outputs after a round trip).
    deterministic_predict: bool = True

    def make(self) -> Any:
        raise NotImplementedError("return the victim to test")

    def batch(self) -> dict[str, Any]:
        n, c, h, w = self.input_shape
        x = _images(n, c, h, w)
        return {"input": x, "target": x.clone(), "index": torch.arange(n)}

    def output_shape(self, batch: dict[str, Any]) -> tuple[int, ...] | None:
        """The expected shape of ``predict``'s output: the target's for float targets (an image,
        a score per image); None checks only the batch dimension (e.g. class targets vs logits)."""
        target = batch.get("target")
        if isinstance(target, Tensor) and target.is_floating_point():
            return tuple(target.shape)
        return None

    def _predict(self, v: Any, inputs: Tensor) -> tuple[Tensor, dict[str, Any]]:
        v.eval()
        with torch.no_grad():
            return _main_output(f"{_name(v)}.predict", v.predict(inputs))

    def test_random_streams_are_in_the_train_state(self) -> None:
        _assert_random_streams_resumable(self.make())

    def test_protocol(self) -> None:
        v = self.make()
        _expect(
            isinstance(v, nn.Module),
            f"victim: expected a torch.nn.Module (the engine saves its state_dict); got {show(v)}",
        )
        _expect(
            isinstance(getattr(v, "task", None), str) and bool(v.task),
            f"{_name(v)}.task: expected a task name; got {show(getattr(v, 'task', None))}",
        )
        for method in ("predict", "clean_loss", "trainable_parameters"):
            _expect(callable(getattr(v, method, None)), f"{_name(v)}: expected a {method}() method")

    def test_predict_shape(self) -> None:
        v = self.make()
        b = self.batch()
        out, extras = self._predict(v, b["input"])
        n = b["input"].shape[0]
        want = self.output_shape(b)
        if want is not None:
            _expect(
                tuple(out.shape) == want,
                f"{_name(v)}.predict: expected an output of shape {list(want)}; got {show(out)}",
            )
        else:
            _expect(
                out.ndim >= 1 and out.shape[0] == n,
                f"{_name(v)}.predict: expected one output row per input ({n}); got {show(out)}",
            )
        _expect(bool(torch.isfinite(out).all()), f"{_name(v)}.predict: expected finite outputs; got {show(out)}")
        for key, value in extras.items():
            _expect(
                isinstance(value, Tensor) and value.ndim >= 1 and value.shape[0] == n,
                f"{_name(v)}.predict: expected extra {key!r} to hold one value per input ({n}); got {show(value)}",
            )

    def test_loss_and_predict(self) -> None:
        v = self.make()
        b = self.batch()
        v.train()
        who = f"{_name(v)}.clean_loss"
        loss = _expect_scalar_loss(who, v.clean_loss(b))
        params = list(v.trainable_parameters("clean"))
        _grad_reaches(who, loss, params, 'trainable_parameters("clean")')
        out, _ = self._predict(v, b["input"])
        _expect(out.shape[0] == b["input"].shape[0], f"{_name(v)}.predict: expected one row per input; got {show(out)}")

    def test_trainable_parameters(self) -> None:
        v = self.make()
        own = {id(p) for p in v.parameters()}
        for phase in ("clean", "attack"):
            params = v.trainable_parameters(phase)
            _expect(
                isinstance(params, Iterable),
                f"{_name(v)}.trainable_parameters({phase!r}): expected an iterable; got {show(params)}",
            )
            params = list(params)
            _expect(
                bool(params), f"{_name(v)}.trainable_parameters({phase!r}): expected at least one parameter; got none"
            )
            for p in params:
                _expect(
                    isinstance(p, nn.Parameter),
                    f"{_name(v)}.trainable_parameters({phase!r}): expected nn.Parameter items; got {show(p)}",
                )
                _expect(
                    id(p) in own,
                    f"{_name(v)}.trainable_parameters({phase!r}): expected the victim's own parameters; got one it does not hold",
                )
                _expect(
                    p.requires_grad,
                    f"{_name(v)}.trainable_parameters({phase!r}): expected parameters that require grad",
                )

    def test_state_round_trip(self, tmp_path: Path) -> None:
        from bdcore.engine.store import StageStore, prefix_state, split_state

        v = self.make()
        gen = torch.Generator().manual_seed(11)
        with torch.no_grad():  # move away from the initial weights, so a load that does nothing is caught
            for p in v.parameters():
                if p.is_floating_point():
                    p.add_(0.01 * torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device))
        store = StageStore(tmp_path / ".stages")
        store.save("clean-victim", "contract", prefix_state(v.state_dict(), "victim"), {})
        tensors, _ = store.load("clean-victim", "contract")
        fresh = self.make()
        try:
            fresh.load_state_dict(split_state(tensors, "victim"))
        except Exception as exc:  # noqa: BLE001 - reported as a contract failure
            _fail(
                f"{_name(v)}: expected the saved state to load into a fresh victim (strict); got {type(exc).__name__}: {exc}"
            )
        copied = copy.deepcopy(v)
        if not self.deterministic_predict:
            return
        x = self.batch()["input"]
        ref, _ = self._predict(v, x)
        for label, other in (("after a save and load", fresh), ("after copy.deepcopy", copied)):
            got, _ = self._predict(other, x)
            _expect(
                got.shape == ref.shape and bool(torch.allclose(got, ref, atol=1e-6, rtol=1e-5)),
                f"{_name(v)}: expected the same predictions {label}; max difference "
                f"{float((got - ref).abs().max()) if got.shape == ref.shape else show(got)}",
            )


# -- attack loss ----------------------------------------------------------------------------


class AttackLossContract(ParamsContract):
    """An attack (:class:`bdcore.protocols.AttackLoss`): ``threat_model`` and ``trains_trigger``;
    ``poison(batch, trigger, generator=...)`` returns a new dict with every key of the batch
    plus ``input`` (triggered: same shape, dtype, device, in [0, 1]), ``clean_input`` (the
    batch's input), ``strength`` (one value per sample) and ``attack_target`` (shaped like
    the batch's ``target``, :meth:`attack_target_shape`), leaves the batch untouched and is
    deterministic under a seeded generator; a training-controlled ``attack_loss`` returns a
    finite scalar ``"loss"`` whose gradient reaches the victim's attack-phase parameters (and
    the trigger's parameters when ``trains_trigger``).

    Defaults: the toy trigger and denoiser of :mod:`bdcore.toy` on 4 images (image-to-image);
    override :meth:`trigger`, :meth:`victim` and :meth:`batch` for other tasks.
    """

    def make(self) -> Any:
        raise NotImplementedError("return the attack to test")

    def trigger(self) -> Any:
        return _toy_trigger()

    def victim(self) -> Any:
        return _toy_victim()

    def batch(self) -> dict[str, Any]:
        x = _images(4, 3, 32, 32)
        return {"input": x, "target": x.clone(), "index": torch.arange(4)}

    def attack_target_shape(self, batch: dict[str, Any]) -> tuple[int, ...]:
        """What ``attack_target`` must be shaped like: the batch's ``target`` (data poisoning
        replaces the targets of poisoned samples with it)."""
        return tuple(batch["target"].shape)

    def _poison(self, a: Any, batch: dict[str, Any], trigger: Any, seed: int = 0) -> Any:
        return a.poison(batch, trigger, generator=torch.Generator().manual_seed(seed))

    def test_random_streams_are_in_the_train_state(self) -> None:
        _assert_random_streams_resumable(self.make())

    def test_threat_model(self) -> None:
        a = self.make()
        _expect(
            a.threat_model in _THREAT_MODELS,
            f"{_name(a)}.threat_model: expected one of {_THREAT_MODELS}; got {show(a.threat_model)}",
        )
        _expect(
            isinstance(a.trains_trigger, bool),
            f"{_name(a)}.trains_trigger: expected a bool; got {show(a.trains_trigger)}",
        )
        for method in ("poison", "attack_loss"):
            _expect(callable(getattr(a, method, None)), f"{_name(a)}: expected a {method}() method")

    def test_poison_keys_and_shapes(self) -> None:
        a, trigger, batch = self.make(), self.trigger(), self.batch()
        before = {k: (v.clone() if isinstance(v, Tensor) else copy.copy(v)) for k, v in batch.items()}
        with torch.no_grad():
            p = self._poison(a, batch, trigger)
        who = f"{_name(a)}.poison"
        _expect(isinstance(p, Mapping), f"{who}: expected a dict (the poisoned batch); got {show(p)}")
        _expect(
            p is not batch, f"{who}: expected a new dict; got the batch itself (the engine still needs the clean batch)"
        )
        _expect(
            set(batch) == set(before) and all(_same_values(batch[k], before[k]) for k in before),
            f"{who}: expected the clean batch untouched; it was modified (keys now {sorted(batch)})",
        )
        missing = [k for k in ("input", "clean_input", "attack_target", "strength", *batch) if k not in p]
        _expect(
            not missing,
            f"{who}: expected keys input, clean_input, attack_target, strength and the batch's own; missing {missing}",
        )
        x = batch["input"]
        _expect_image_like(f"{who}: 'input'", p["input"], x)
        _expect(
            _same_values(p["clean_input"], x),
            f"{who}: expected 'clean_input' to be the batch's input; got {show(p['clean_input'])}",
        )
        n = x.shape[0]
        s = p["strength"]
        _expect(
            isinstance(s, Tensor) and tuple(s.shape) == (n,),
            f"{who}: expected 'strength' of shape [{n}] (α per sample); got {show(s)}",
        )
        want = self.attack_target_shape(batch)
        target = p["attack_target"]
        _expect(
            isinstance(target, Tensor) and tuple(target.shape) == want,
            f"{who}: expected 'attack_target' of shape {list(want)} (like the target); got {show(target)}",
        )
        _expect(bool(torch.isfinite(target).all()), f"{who}: expected a finite 'attack_target'; got {show(target)}")

    def test_poison_deterministic(self) -> None:
        a, trigger, batch = self.make(), self.trigger(), self.batch()
        with torch.no_grad():
            p1, p2 = self._poison(a, batch, trigger, 5), self._poison(a, batch, trigger, 5)
        for key in ("input", "attack_target", "strength"):
            _expect(
                _same_values(p1[key], p2[key]),
                f"{_name(a)}.poison: expected equal {key!r} for generators with the same seed; got {show(p1[key])} and {show(p2[key])}",
            )

    def test_attack_loss(self) -> None:
        a = self.make()
        if a.threat_model != "training-controlled":
            pytest.skip(f"threat_model {a.threat_model!r}: the engine never calls attack_loss")
        trigger, victim, batch = self.trigger(), self.victim(), self.batch()
        victim.train()
        poisoned = self._poison(a, batch, trigger)
        who = f"{_name(a)}.attack_loss"
        loss = _expect_scalar_loss(who, a.attack_loss(victim, batch, poisoned))
        params = list(victim.trainable_parameters("attack"))
        trigger_params = (
            [p for p in trigger.parameters() if p.requires_grad]
            if a.trains_trigger and isinstance(trigger, nn.Module)
            else []
        )
        loss.backward(retain_graph=bool(trigger_params))
        reached = [p for p in params if p.grad is not None and bool(p.grad.abs().sum() > 0)]
        _expect(
            bool(reached),
            f"{who}: expected the gradient of 'loss' to reach the victim's attack-phase parameters; none of {len(params)} got one",
        )
        if trigger_params:
            got = [p for p in trigger_params if p.grad is not None]
            _expect(
                bool(got),
                f"{who}: trains_trigger, so expected the gradient to reach the trigger's parameters; none of {len(trigger_params)} got one",
            )


# -- defense --------------------------------------------------------------------------------


class DefenseContract(ParamsContract):
    """A defense (:class:`bdcore.protocols.Defense`): ``stage`` is input, model or detection;
    ``defend(victim, ctx)`` returns a ``DefenseOutcome`` whose ``extra`` maps names to numbers;
    then, by stage,

    * ``"input"``: ``transform`` is set; on every size in ``sizes`` it returns a tensor of the
      input's shape, dtype and device in [0, 1], leaves its input untouched, and two defenses
      built alike transform alike (reproducible under the run seed);
    * ``"model"``: ``victim`` is the defended model (never None: the engine hands the defense a
      copy, so changes made in place and not returned are lost), predicts like the victim it
      came from, and its state loads back into the victim's architecture (stage reuse);
    * ``"detection"``: ``detector(victim, inputs)`` gives one finite score per input, for clean
      and triggered inputs.

    :meth:`context` builds a real :class:`bdcore.context.DefenseContext` on toy data with the
    engine's training loop; :meth:`victim` is the toy denoiser.
    """

    sizes: tuple[tuple[int, int], ...] = ((32, 32), (48, 40))

    def make(self) -> Any:
        raise NotImplementedError("return the defense to test")

    def victim(self) -> Any:
        v = _toy_victim()
        v.eval()
        return v

    def images(self, h: int = 32, w: int = 32) -> Tensor:
        return _images(4, 3, h, w)

    def context(self) -> Any:
        """A :class:`~bdcore.context.DefenseContext` over toy data, the toy trigger and attack."""
        from bdcore.context import Context, DefenseContext, Trainer
        from bdcore.data.dataset import TensorDataset
        from bdcore.engine.train import train_loop
        from bdcore.spec.model import TrainSettings

        def train(
            victim: Any,
            batches: Any,
            steps: int,
            lr: float,
            loss_fn: Any = None,
            params: Any = None,
            settings: Any = None,
        ) -> list[dict[str, float]]:
            # the engine's Runner.trainer_train, without a run around it
            if callable(batches) and not hasattr(batches, "__next__"):
                batch_fn = batches
            else:
                it = iter(batches)

                def batch_fn(step: int) -> dict[str, Any]:
                    return next(it)

            fn = loss_fn or victim.clean_loss
            return train_loop(
                modules={"victim": victim} if isinstance(victim, nn.Module) else {},
                params=list(params if params is not None else victim.trainable_parameters("clean")),
                settings=settings or TrainSettings(lr=lr),
                steps=steps,
                batch_fn=batch_fn,
                loss_fn=lambda batch, step: fn(batch),
                after_step=getattr(victim, "after_step", None),
                lr=lr,
            )

        trigger, attack = _toy_trigger(), _toy_attack()
        x = _images(16, 3, 32, 32)
        clean = [{"input": x[i : i + 4], "target": x[i : i + 4], "index": torch.arange(i, i + 4)} for i in (0, 4)]
        with torch.no_grad():
            poisoned = [
                attack.poison(b, trigger, generator=torch.Generator().manual_seed(i)) for i, b in enumerate(clean)
            ]
        return DefenseContext(
            ctx=Context(seed=0, component="defense:contract", trigger=trigger),
            clean_train=TensorDataset(x[8:], x[8:].clone()),
            batch_size=4,
            trainer=Trainer(train=train),
            build_victim=self.victim,
            test_clean_batches=lambda: iter(clean),
            test_poisoned_batches=lambda: iter(poisoned),
            trigger=trigger,
            attack=attack,
        )

    def _defend(self, d: Any, victim: Any | None = None) -> Any:
        outcome = d.defend(self.victim() if victim is None else victim, self.context())
        for attr in ("victim", "transform", "detector", "extra"):
            _expect(
                hasattr(outcome, attr),
                f"{_name(d)}.defend: expected a DefenseOutcome (victim, transform, detector, extra); got {show(outcome)} without {attr!r}",
            )
        return outcome

    def test_stage(self) -> None:
        d = self.make()
        _expect(
            getattr(d, "stage", None) in _STAGES,
            f"{_name(d)}.stage: expected one of {_STAGES}; got {show(getattr(d, 'stage', None))}",
        )
        _expect(callable(getattr(d, "defend", None)), f"{_name(d)}: expected a defend(victim, ctx) method")

    def test_defend_outcome(self) -> None:
        d = self.make()
        outcome = self._defend(d)
        extra = outcome.extra
        _expect(
            isinstance(extra, Mapping),
            f"{_name(d)}.defend: expected 'extra' to be a dict of numbers; got {show(extra)}",
        )
        for key, value in extra.items():
            ok = isinstance(key, str) and isinstance(value, int | float | Tensor) and math.isfinite(float(value))
            _expect(ok, f"{_name(d)}.defend: expected 'extra' to map names to finite numbers; {key!r} is {show(value)}")
        for attr in ("transform", "detector"):
            fn = getattr(outcome, attr)
            _expect(
                fn is None or callable(fn),
                f"{_name(d)}.defend: expected {attr!r} to be None or callable; got {show(fn)}",
            )

    def test_input_transform(self) -> None:
        d = self.make()
        if d.stage != "input":
            pytest.skip(f"stage {d.stage!r}")
        transform = self._defend(d).transform
        _expect(
            callable(transform),
            f"{_name(d)}.defend: expected a transform (an input defense applies one to every test input); got {show(transform)}",
        )
        other = self._defend(self.make()).transform
        for h, w in self.sizes:
            x = self.images(h, w)
            before = x.clone()
            with torch.no_grad():
                y = transform(x)
                y2 = other(x.clone())
            who = f"{_name(d)} transform at {h}×{w}"
            _expect_image_like(who, y, x)
            _expect(torch.equal(x, before), f"{who}: expected its input untouched; it was modified in place")
            _expect(
                torch.equal(y, y2),
                f"{who}: expected two defenses built alike to transform alike (seed randomness from ctx); "
                f"max difference {float((y - y2).abs().max()):.3g}",
            )

    def test_model_defense_returns_a_model(self) -> None:
        d = self.make()
        if d.stage != "model":
            pytest.skip(f"stage {d.stage!r}")
        victim = self.victim()
        x = self.images()
        ref, _ = _main_output(f"{_name(victim)}.predict", victim.predict(x))
        defended = self._defend(d, copy.deepcopy(victim)).victim
        who = f"{_name(d)}.defend"
        _expect(
            isinstance(defended, nn.Module) and callable(getattr(defended, "predict", None)),
            f"{who}: expected the defended model as 'victim' (a model defense gets a copy: changes made in place and not returned are lost); got {show(defended)}",
        )
        defended.eval()
        with torch.no_grad():
            out, _ = _main_output(f"{who}: the defended model's predict", defended.predict(x))
        _expect(
            out.shape == ref.shape,
            f"{who}: expected the defended model to predict like the victim ({show(ref)}); got {show(out)}",
        )
        reloaded = copy.deepcopy(victim)
        try:
            reloaded.load_state_dict({k: v.detach().clone() for k, v in defended.state_dict().items()})
        except Exception as exc:  # noqa: BLE001 - reported as a contract failure
            _fail(
                f"{who}: expected the defended model's state to load into the victim's architecture "
                f"(the engine stores and reuses it); got {type(exc).__name__}: {exc}"
            )
        reloaded.eval()
        with torch.no_grad():
            again, _ = _main_output(f"{who}: the reloaded model's predict", reloaded.predict(x))
        _expect(
            bool(torch.allclose(again, out, atol=1e-5, rtol=1e-5)),
            f"{who}: expected the reloaded defended model to predict as the defended one; max difference {float((again - out).abs().max()):.3g}",
        )

    def test_detector_scores(self) -> None:
        d = self.make()
        if d.stage != "detection":
            pytest.skip(f"stage {d.stage!r}")
        victim = self.victim()
        ctx = self.context()
        detector = d.defend(victim, ctx).detector
        _expect(
            callable(detector),
            f"{_name(d)}.defend: expected a detector (a detection defense scores inputs); got {show(detector)}",
        )
        for label, batches in (("clean", ctx.test_clean_batches()), ("triggered", ctx.test_poisoned_batches())):
            x = next(iter(batches))["input"]
            with torch.no_grad():
                scores = detector(victim, x)
            _expect(
                isinstance(scores, Tensor) and scores.numel() == x.shape[0] and scores.shape[0] == x.shape[0],
                f"{_name(d)} detector on {label} inputs: expected one score per input, shape [{x.shape[0]}]; got {show(scores)}",
            )
            _expect(
                bool(torch.isfinite(scores).all()),
                f"{_name(d)} detector on {label} inputs: expected finite scores; got {show(scores)}",
            )


# -- metric ---------------------------------------------------------------------------------


def _slice(b: EvalBatch, sl: slice) -> EvalBatch:
    n = b.input.shape[0]

    def cut(v: Any) -> Any:
        if isinstance(v, Tensor) and v.ndim >= 1 and v.shape[0] == n:
            return v[sl]
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        return v

    return EvalBatch(**{f.name: cut(getattr(b, f.name)) for f in attrs.fields(EvalBatch)})


class MetricContract(ParamsContract):
    """A metric (:class:`bdcore.protocols.Metric`): ``higher_is_better`` is True, False or None;
    ``needs`` a frozenset of :class:`~bdcore.metrics.batch.EvalBatch` field names; ``splits`` a
    non-empty tuple of ``"clean"`` / ``"poisoned"``; on each split's batch (as the engine builds
    it: no ``attack_target`` on the clean split) ``update`` then ``compute`` give a non-empty
    dict of finite numbers; ``reset`` forgets; the value does not depend on how the test set is
    cut into batches; ``update`` works on a batch holding only the fields in ``needs``; the
    optional ``grid_columns`` hook returns ``n×1×H×W`` or ``n×3×H×W`` images in [0, 1].

    Override :meth:`batch` (the poisoned split; the clean batch is derived from it) for a task
    whose outputs are not images.
    """

    #: values must be finite (set False for a metric that may legitimately be NaN).
    finite_values: bool = True
    #: check that two batches give what one batch with both does (a streaming metric).
    check_streaming: bool = True

    def make(self) -> Any:
        raise NotImplementedError("return the metric to test")

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
            clean_model_input=x,
            clean_output=x,
            reference_output=x,
            strength=torch.ones(4),
            index=torch.arange(4),
        )

    def clean_batch(self) -> EvalBatch:
        """The clean split's batch, as the engine builds it from the poisoned one's clean fields."""
        b = self.batch()
        clean_input: Any = b.clean_model_input if b.clean_model_input is not None else b.clean_input
        return attrs.evolve(
            b,
            split="clean",
            input=clean_input,
            output=b.clean_output,
            attack_target=None,
            strength=torch.zeros(b.input.shape[0]),
        )

    def _batch_for(self, split: str) -> EvalBatch:
        return self.clean_batch() if split == "clean" else self.batch()

    def _values(self, m: Any, batches: list[EvalBatch], who: str) -> dict[str, float]:
        m.reset()
        for b in batches:
            m.update(b)
        out = m.compute()
        _expect(
            isinstance(out, Mapping) and bool(out),
            f"{who}: expected compute() to return a non-empty dict; got {show(out)}",
        )
        values: dict[str, float] = {}
        for key, value in out.items():
            try:
                number = float(value.detach() if isinstance(value, Tensor) else value)
            except (TypeError, ValueError):
                _fail(f"{who}: expected compute() values to be numbers; {key!r} is {show(value)}")
            _expect(isinstance(key, str), f"{who}: expected str keys (result row names); got {show(key)}")
            if self.finite_values:
                _expect(
                    math.isfinite(number), f"{who}: expected finite values (finite_values = True); {key!r} is {number}"
                )
            values[key] = number
        return values

    def test_metadata(self) -> None:
        m = self.make()
        allowed = {f.name for f in attrs.fields(EvalBatch)} - {"split", "input", "output"}
        _expect(
            m.higher_is_better in (True, False, None),
            f"{_name(m)}.higher_is_better: expected True, False or None; got {show(m.higher_is_better)}",
        )
        _expect(
            isinstance(m.needs, frozenset),
            f"{_name(m)}.needs: expected a frozenset of field names; got {show(m.needs)}",
        )
        unknown = sorted(set(m.needs) - allowed)
        _expect(
            not unknown,
            f"{_name(m)}.needs: expected EvalBatch field names ({', '.join(sorted(allowed))}); got unknown {unknown}",
        )
        splits = m.splits
        _expect(
            isinstance(splits, tuple)
            and bool(splits)
            and set(splits) <= set(_SPLITS)
            and len(set(splits)) == len(splits),
            f"{_name(m)}.splits: expected a non-empty tuple of distinct 'clean' / 'poisoned'; got {show(splits)}",
        )

    def test_update_compute(self) -> None:
        for split in self.make().splits:
            m = self.make()
            self._values(m, [self._batch_for(split)], f"{_name(m)} on the {split} split")

    def test_reset_forgets(self) -> None:
        m = self.make()
        split = m.splits[-1]
        b = self._batch_for(split)
        first = self._values(m, [b], f"{_name(m)}")
        other = _slice(b, slice(0, 1))
        self._values(m, [other], f"{_name(m)}")
        again = self._values(m, [b], f"{_name(m)} after reset()")
        _expect(
            set(first) == set(again) and all(_close(first[k], again[k]) for k in first),
            f"{_name(m)}: expected reset() to forget earlier batches (same values for the same batch); got {first} then {again}",
        )

    def test_batching_does_not_change_the_value(self) -> None:
        if not self.check_streaming:
            pytest.skip("check_streaming = False")
        m = self.make()
        split = m.splits[-1]
        b = self._batch_for(split)
        n = b.input.shape[0]
        whole = self._values(m, [b], f"{_name(m)}")
        parts = self._values(self.make(), [_slice(b, slice(0, 1)), _slice(b, slice(1, n))], f"{_name(m)}")
        _expect(
            set(whole) == set(parts) and all(_close(whole[k], parts[k]) for k in whole),
            f"{_name(m)}: expected the same value whether the test set comes in one batch of {n} or in batches of 1 and "
            f"{n - 1} (a streaming metric accumulates per sample); got {whole} vs {parts}",
        )

    def test_needs_lists_what_update_reads(self) -> None:
        optional = (
            *("target", "attack_target", "clean_input", "clean_model_input", "clean_output", "reference_output"),
            *("victim", "trigger", "attack"),
        )
        for split in self.make().splits:
            m = self.make()
            b = self._batch_for(split)
            kept: dict[str, Any] = {f: (getattr(b, f) if f in m.needs else None) for f in optional}
            trimmed = attrs.evolve(b, **kept)
            try:
                m.reset()
                m.update(trimmed)
                m.compute()
            except Exception as exc:  # noqa: BLE001 - reported as a contract failure
                _fail(
                    f"{_name(m)} on the {split} split: expected update() to need only the fields in needs "
                    f"({sorted(m.needs) or 'none'}) besides input/output/strength/extras; with the others None it raised "
                    f"{type(exc).__name__}: {exc}"
                )

    def test_grid_columns(self) -> None:
        """The optional ``grid_columns`` hook returns image batches in [0, 1] (or nothing)."""
        m = self.make()
        hook = getattr(m, "grid_columns", None)
        if hook is None:
            pytest.skip("no grid_columns hook")
        for split in m.splits:
            m.reset()
            b = self._batch_for(split)
            m.update(b)
            with torch.no_grad():
                cols = hook(b, 2)
            _expect(isinstance(cols, Mapping), f"{_name(m)}.grid_columns: expected a dict of images; got {show(cols)}")
            for key, images in cols.items():
                who = f"{_name(m)}.grid_columns[{key!r}] on the {split} split"
                _expect(
                    isinstance(key, str) and isinstance(images, Tensor),
                    f"{who}: expected str -> tensor; got {show(images)}",
                )
                _expect(
                    images.ndim == 4 and images.shape[0] == 2 and images.shape[1] in (1, 3),
                    f"{who}: expected 2×1×H×W or 2×3×H×W (n = 2); got {show(images)}",
                )
                _expect(_in_unit_range(images), f"{who}: expected values in [0, 1]; got {show(images)}")


def _close(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


# -- dataset --------------------------------------------------------------------------------


class DatasetContract(ParamsContract):
    """A data source (:class:`bdcore.protocols.DataSource`): ``splits()`` returns non-empty
    ``"train"`` and ``"test"`` datasets; their samples are dicts with an ``"input"`` image
    ``C×H×W`` (float, [0, 1]) and a ``"target"`` (and ``"index"``, when given, equal to the
    position); test samples read the same twice, training samples the same for the same
    augmentation seed (``get(index, seed)``, exact resume); a data source built twice with
    one seed holds the same data; samples collate into a batch.
    """

    #: how many samples of each split to read (the first and the last ones).
    samples: int = 4

    def make(self) -> Any:
        raise NotImplementedError("return the data source to test")

    def _positions(self, n: int) -> list[int]:
        k = max(1, self.samples // 2)
        return sorted({*range(min(k, n)), *range(max(0, n - k), n)})

    def _read(self, dataset: Any, i: int, seed: int | None = None) -> dict[str, Any]:
        getter = getattr(dataset, "get", None)
        return getter(i, seed) if getter is not None else dataset[i]  # type: ignore[no-any-return]

    def _splits(self, source: Any) -> Mapping[str, Any]:
        splits = source.splits()
        _expect(
            isinstance(splits, Mapping), f"{_name(source)}.splits(): expected a dict of datasets; got {show(splits)}"
        )
        for name in ("train", "test"):
            _expect(name in splits, f"{_name(source)}.splits(): expected a {name!r} split; got keys {sorted(splits)}")
            n = len(splits[name])
            _expect(n > 0, f"{_name(source)}.splits()[{name!r}]: expected samples; got an empty dataset")
        return splits  # type: ignore[no-any-return]

    def test_splits(self) -> None:
        self._splits(self.make())

    def test_samples(self) -> None:
        source = self.make()
        for name, dataset in self._splits(source).items():
            if name not in ("train", "test"):
                continue
            for i in self._positions(len(dataset)):
                who = f"{_name(source)} {name}[{i}]"
                s = self._read(dataset, i)
                _expect(isinstance(s, Mapping), f"{who}: expected a sample dict; got {show(s)}")
                x = s.get("input")
                _expect(
                    isinstance(x, Tensor) and x.ndim == 3 and x.is_floating_point(),
                    f"{who}: expected 'input' to be a C×H×W float image; got {show(x)}",
                )
                _expect(_in_unit_range(x), f"{who}: expected 'input' in [0, 1]; got {show(x)}")  # type: ignore[arg-type]
                _expect("target" in s, f"{who}: expected a 'target'; got keys {sorted(s)}")
                if "index" in s:
                    _expect(int(s["index"]) == i, f"{who}: expected 'index' {i} (its position); got {show(s['index'])}")

    def test_reads_are_deterministic(self) -> None:
        source = self.make()
        splits = self._splits(source)
        for i in self._positions(len(splits["test"])):
            a, b = self._read(splits["test"], i), self._read(splits["test"], i)
            _expect(
                _same_values(dict(a), dict(b)),
                f"{_name(source)} test[{i}]: expected the same sample on every read (no test-time randomness)",
            )
        train = splits["train"]
        if callable(getattr(train, "get", None)):
            for i in self._positions(len(train)):
                a, b = train.get(i, 1234), train.get(i, 1234)
                _expect(
                    _same_values(dict(a), dict(b)),
                    f"{_name(source)} train.get({i}, seed): expected the same sample for the same seed (exact resume)",
                )
        again = self._splits(self.make())
        for name in ("train", "test"):
            _expect(
                len(again[name]) == len(splits[name]),
                f"{_name(source)}: expected the same {name} size when built twice; got {len(splits[name])} and {len(again[name])}",
            )
            i = len(splits[name]) - 1
            _expect(
                _same_values(dict(self._read(splits[name], i)), dict(self._read(again[name], i))),
                f"{_name(source)}: expected the same {name}[{i}] when built twice with one seed",
            )

    def test_samples_collate(self) -> None:
        from bdcore.data.loading import collate

        source = self.make()
        for name, dataset in self._splits(source).items():
            if name not in ("train", "test"):
                continue
            samples = [dict(self._read(dataset, i)) for i in range(min(2, len(dataset)))]
            try:
                batch = collate(samples)
            except Exception as exc:  # noqa: BLE001 - reported as a contract failure
                _fail(
                    f"{_name(source)} {name}: expected samples to stack into a batch (same shapes); got {type(exc).__name__}: {exc}"
                )
            _expect(
                batch["input"].ndim == 4,
                f"{_name(source)} {name}: expected batched inputs B×C×H×W; got {show(batch['input'])}",
            )
