"""``baiqa-dct``: the UAP-DCT trigger (injection §1.1, Algorithm 1 §1.3 of methods.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bd_plugin_baiqa.dct import band_positions, dct_pattern, inject_dct
from bd_plugin_baiqa.params import DctTriggerParams
from bd_plugin_baiqa.util import BaiqaError, scores
from bdcore.components import TriggerBase
from bdcore.context import Context, FitContext


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

    ``learnable``: with ``[attack] fit_steps > 0`` and no ``path``, :meth:`fit` runs Algorithm 1 on the
    training set against the clean victim (the attacker's surrogate). The fit also keeps a handle on that
    surrogate so ``c-baiqa`` can run its PGD refinement (the attack context has no victim).
    """

    learnable: ClassVar[bool] = True
    needs_victim: ClassVar[bool] = True
    differentiable: ClassVar[bool] = True
    output_in_range: ClassVar[bool] = True

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
        self._surrogate: list[Callable[[], Any]] = []  # not a submodule: never saved with the trigger
        self._pattern: tuple[tuple, Tensor] | None = None  # (key, dct_pattern) of the last image shape

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

    def surrogate(self) -> Any:
        """The attacker's surrogate (the clean victim), available after :meth:`fit`."""
        if not self._surrogate:
            raise BaiqaError(
                "baiqa-dct: no surrogate model — c-baiqa needs the trigger fit stage to run "
                "(set [attack] fit_steps > 0; with a trigger `path` the fit only captures the surrogate)"
            )
        return self._surrogate[0]()

    def fit(self, fit_ctx: FitContext) -> None:
        p: DctTriggerParams = self.params
        self._surrogate[:] = [fit_ctx.clean_victim]
        if p.path is not None:
            fit_ctx.ctx.log("trigger loaded from path; fit only captures the surrogate")
            return
        victim = fit_ctx.clean_victim()
        was_training = victim.training
        victim.eval()
        for q in victim.parameters():
            q.requires_grad_(False)
        it = fit_ctx.batches(generator_salt="uap-dct")
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
                for q in victim.parameters():
                    q.requires_grad_(True)
                victim.train(was_training)
        self.trigger.copy_(t.to(self.trigger.device))
        if hist:
            fit_ctx.ctx.log(f"UAP-DCT: {len(hist)} batches, last loss {hist[-1]:.4g}")
