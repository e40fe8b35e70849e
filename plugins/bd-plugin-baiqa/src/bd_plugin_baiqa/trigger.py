"""``baiqa-dct``: the UAP-DCT trigger (injection §1.1, Algorithm 1 §1.3 of methods.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from bd_plugin_baiqa.dct import band_positions, dct_pattern, inject_dct
from bd_plugin_baiqa.params import DctTriggerParams
from bd_plugin_baiqa.util import BaiqaError, scores
from bdcore.components import TriggerBase
from bdcore.context import Context, FitContext, derive_seed
from bdcore.data.loading import endless_batches


def load_trigger(path: Path, sha256: str | None = None) -> Tensor:
    """A ``3×64`` float32 trigger from a plain torch ``.pt`` (``weights_only=True``) or ``.npy``."""
    if not path.is_file():
        raise BaiqaError(f"baiqa-dct: trigger file {path} not found")
    if path.suffix == ".npy":
        t = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))
    else:
        from bdcore.io.checkpoint import load_weights

        t = load_weights(path, sha256=sha256)
        if isinstance(t, dict):
            tensors = [v for v in t.values() if isinstance(v, Tensor)]
            if len(tensors) != 1:
                raise BaiqaError(f"{path}: expected a single 3×64 tensor, found a dict with keys {list(t)}")
            t = tensors[0]
    if not isinstance(t, Tensor) or t.ndim != 2 or t.shape[0] != 3:
        raise BaiqaError(f"{path}: expected a 3×K DCT trigger tensor, got {getattr(t, 'shape', type(t))}")
    return t.detach().float().cpu()


def uap_dct_search(
    surrogate: Callable[[Tensor], Tensor],
    batches: Iterable[Tensor],
    *,
    positions: tuple[int, ...],
    epsilon: float = 8.0 / 255.0,
    init_range: float = 300.0,
    lr: float = 1.0,
    inner_steps: int = 10,
    penalty: float = 1e8,
    quantize: bool = True,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
) -> tuple[Tensor, list[float]]:
    """Algorithm 1 (UAP-DCT, code-exact): an untargeted universal DCT trigger.

    For each batch ``x`` (``B×3×H×W`` in [0, 1]): ``pred = f(x)`` fixed; a fresh Adam(lr) on ``t``; ``inner_steps``
    steps of ``loss = −MSE(f(inject(x, t)), pred) + penalty·max(MSE(inject(x, t), x), ε²)``.
    ``surrogate`` maps images to ``B`` scores. Returns the ``3×K`` trigger and the last loss per batch.
    """
    k = len(positions)
    if init is None:
        init = (torch.rand(3, k, generator=generator, dtype=torch.float32) * 2 - 1) * init_range
    t = init.detach().clone()
    history: list[float] = []
    for x in batches:
        t = t.to(x.device).requires_grad_(True)
        with torch.no_grad():
            pred = surrogate(x)
        opt = torch.optim.Adam([t], lr=lr)  # re-created every batch, as the authors' script
        loss = torch.zeros(())
        for _ in range(inner_steps):
            opt.zero_grad(set_to_none=True)
            xp = inject_dct(x, t, 1.0, positions=positions, quantize=quantize)
            loss = -F.mse_loss(surrogate(xp), pred) + penalty * torch.clamp(F.mse_loss(xp, x), min=epsilon**2)
            loss.backward()
            opt.step()
        history.append(float(loss.detach()))
        t = t.detach()
    return t.detach().cpu(), history


class BaiqaDct(TriggerBase):
    """The BAIQA trigger: ``inject_dct(x, α·t)``; α is the per-sample ``strength``.

    ``learnable``: with ``[attack] fit_steps > 0`` and no ``path``, :meth:`fit` runs Algorithm 1 against
    the attacker's surrogate: by default (``surrogate = "partial"``) a fresh victim trained on only the
    items the attack poisons, as the paper; or the run's clean victim. A partial surrogate is a submodule
    (``surrogate_net``), saved with the trigger's state so a reused fit stage restores it; ``c-baiqa`` with
    ``surrogate = "trigger"`` runs its PGD refinement against it.
    """

    learnable: ClassVar[bool] = True
    #: the partial surrogate is a fresh victim of the run's architecture: the fit stage keys on the victim's
    #: component and weights, not on the clean victim's training, and does not wait for it
    builds_victim: ClassVar[bool] = True
    differentiable: ClassVar[bool] = True
    output_in_range: ClassVar[bool] = True

    @property
    def needs_victim(self) -> bool:  # type: ignore[override]
        """The fit uses the trained clean victim only with ``surrogate = "clean-victim"``."""
        return bool(self.params.surrogate == "clean-victim")

    def __init__(self, params: DctTriggerParams | None = None, ctx: Context | None = None) -> None:
        params = params or DctTriggerParams()
        super().__init__(params, ctx)
        self.positions = band_positions(params.band)
        if params.path is not None:
            t = load_trigger(self.ctx.resolve_path(params.path), params.sha256)
            if t.shape[1] != len(self.positions):
                raise BaiqaError(f"{params.path}: trigger has {t.shape[1]} columns, band {params.band!r} needs 64")
        else:
            gen = self.ctx.generator("init")
            t = (torch.rand(3, len(self.positions), generator=gen) * 2 - 1) * params.init_range
        self.register_buffer("trigger", t)
        self.surrogate_net: nn.Module | None = None  # Algorithm 1's partial surrogate (a submodule once fitted)
        self._surrogate: list[Callable[[], Any]] = []  # the clean victim, captured by a fit (never saved)
        self._pattern: tuple[tuple, Tensor] | None = None  # (key, dct_pattern) of the last image shape
        self.register_load_state_dict_pre_hook(_rebuild_surrogate)

    def pattern_for(self, images: Tensor) -> Tensor:
        """The ``1×3×H×W`` RGB pattern of the trigger at α = 1 (:func:`dct_pattern`), built once per
        (H, W, dtype, device) and trigger contents (a fit or ``load_state_dict`` rebuilds it)."""
        t = self.trigger
        if t.requires_grad:
            return dct_pattern(t, *images.shape[-2:], positions=self.positions, like=images)
        key = (*images.shape[-2:], images.dtype, images.device, t.data_ptr(), t._version, t.device)
        if self._pattern is None or self._pattern[0] != key:
            self._pattern = (key, dct_pattern(t, *images.shape[-2:], positions=self.positions, like=images))
        return self._pattern[1]

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        p: DctTriggerParams = self.params
        return inject_dct(
            images,
            self.trigger,
            strength.reshape(-1),
            positions=self.positions,
            quantize=p.quantize,
            pattern=self.pattern_for(images),
        )

    def has_surrogate(self) -> bool:
        return self.surrogate_net is not None or bool(self._surrogate)

    def surrogate(self) -> Any:
        """The attacker's surrogate, available after :meth:`fit` (or after loading a fitted state)."""
        if self.surrogate_net is not None:
            return self.surrogate_net
        if not self._surrogate:
            raise BaiqaError(
                "baiqa-dct: no surrogate model — c-baiqa needs the trigger fit stage to run "
                "(set [attack] fit_steps > 0; with a trigger `path` the fit only trains or captures the surrogate)"
            )
        return self._surrogate[0]()

    def fit_surrogate(self, fit_ctx: FitContext) -> tuple[Any, Dataset[Any]]:
        """Algorithm 1's surrogate and the data the search runs on: a fresh victim trained on the items the
        attack poisons (``"partial"``) or the clean victim and the whole training set."""
        p: DctTriggerParams = self.params
        if p.surrogate == "clean-victim":
            self._surrogate[:] = [fit_ctx.clean_victim]
            return fit_ctx.clean_victim(), fit_ctx.train_set
        items = fit_ctx.poison_items() if fit_ctx.poison_items is not None else []
        if not items:
            raise BaiqaError(
                'baiqa-dct: surrogate = "partial" trains on the poisoned items, but there are none '
                '(set [attack] poison_rate > 0, or surrogate = "clean-victim")'
            )
        subset = ItemSubset(fit_ctx.train_set, items)
        net = fit_ctx.build_victim()
        seed = derive_seed(fit_ctx.ctx.seed, "baiqa-dct", "surrogate")
        fit_ctx.ctx.log(f"training the surrogate on the {len(items)} poisoned items for {p.surrogate_steps} steps")
        batches = endless_batches(subset, fit_ctx.batch_size, seed=seed, device=fit_ctx.ctx.device)
        fit_ctx.trainer.train(net, batches, p.surrogate_steps, p.surrogate_lr)
        net.eval()
        for q in net.parameters():
            q.requires_grad_(False)
        self.surrogate_net = net
        return net, subset

    def fit(self, fit_ctx: FitContext) -> None:
        p: DctTriggerParams = self.params
        victim, data = self.fit_surrogate(fit_ctx)
        if p.path is not None:
            fit_ctx.ctx.log("trigger loaded from path; the fit only provides the surrogate")
            return
        was_training = victim.training
        victim.eval()
        grads = [q.requires_grad for q in victim.parameters()]
        for q in victim.parameters():
            q.requires_grad_(False)
        seed = derive_seed(fit_ctx.ctx.seed, "fit", "uap-dct")
        it = endless_batches(data, fit_ctx.batch_size, seed=seed, device=fit_ctx.ctx.device)
        bar = fit_ctx.ctx.progress("uap-dct search", total=fit_ctx.steps, unit="batch")

        def batches() -> Iterator[Tensor]:
            for i in range(fit_ctx.steps):
                yield next(it)["input"]
                bar.update(i + 1)  # the search asks for the next batch once it is done with this one

        with bar:
            try:
                t, hist = uap_dct_search(
                    lambda x: scores(victim, x),
                    batches(),
                    positions=self.positions,
                    epsilon=p.epsilon / 255.0,
                    init_range=p.init_range,
                    lr=p.lr,
                    inner_steps=p.inner_steps,
                    penalty=p.penalty,
                    quantize=p.quantize,
                    init=self.trigger.detach().cpu(),
                )
            finally:
                for q, g in zip(victim.parameters(), grads, strict=True):
                    q.requires_grad_(g)
                victim.train(was_training)
        self.trigger.copy_(t.to(self.trigger.device))
        if hist:
            fit_ctx.ctx.log(f"UAP-DCT: {len(hist)} batches, last loss {hist[-1]:.4g}")


class ItemSubset(Dataset[dict[str, Any]]):
    """The training samples of the given items only (each once per epoch; its random crops and flips are
    those of the underlying set): the attacker's share of the data."""

    def __init__(self, base: Any, items: list[int]) -> None:
        self.base = base
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, index: int, seed: int | None = None) -> dict[str, Any]:
        return dict(self.base.get(self.items[index], seed))

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index)


def _rebuild_surrogate(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Before loading a fitted state that holds a partial surrogate, build the surrogate module to load it
    into (a fresh victim from the engine's ``ctx.build_victim``)."""
    if getattr(module, "surrogate_net", None) is not None:
        return
    if not any(k.startswith(prefix + "surrogate_net.") for k in state_dict):
        return
    build = module.ctx.build_victim  # type: ignore[union-attr]
    if build is None:
        raise BaiqaError("baiqa-dct: this state holds a surrogate model, but nothing can build one here")
    module.surrogate_net = build()  # type: ignore[assignment]
