"""CompressAI codecs as bdcore victims: RD training loss, aux step, real entropy-coded prediction."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_bavaft.params import CodecParams
from bdcore.components import VictimBase
from bdcore.context import Context
from bdcore.errors import ComponentError


class CodecError(ComponentError):
    """A codec could not be built or loaded."""


def build_codec(model: str, quality: int, n: int = 0, m: int = 0) -> nn.Module:
    """An untrained CompressAI model; weights only ever come from local files (the zoo's download is not used)."""
    from compressai.zoo.image import cfgs, model_architectures

    if model not in model_architectures:
        raise CodecError(f"unknown CompressAI model {model!r}")
    widths = list(cfgs[model][quality])
    if n:
        widths[0] = n
    if m and len(widths) > 1:
        widths[1] = m
    return model_architectures[model](*widths)


def likelihood_bpp(likelihoods: Mapping[str, Tensor], num_pixels: int) -> Tensor:
    """Per-image estimated bits per pixel ``Σ −log2 p / (H·W)`` over all latents → ``B``."""
    total = sum(torch.log(lk).flatten(1).sum(1) for lk in likelihoods.values())
    return total / (-math.log(2) * num_pixels)


def string_bpp(strings: list[list[bytes]], num_pixels: int) -> Tensor:
    """Per-image real bpp ``8·Σ_latents len(bytes) / (H·W)`` from compressai ``compress`` strings → ``B``."""
    n_img = len(strings[0])
    return torch.tensor([8.0 * sum(len(s[i]) for s in strings) / num_pixels for i in range(n_img)], dtype=torch.float64)


def pad64(x: Tensor) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Zero-pad (centred) to multiples of 64, as ``compressai.utils.eval_model``; returns the unpad."""
    from compressai.ops import compute_padding

    pad, unpad = compute_padding(x.shape[2], x.shape[3], min_div=2**6)
    return F.pad(x, pad, mode="constant", value=0.0), unpad


class _Fixed(nn.Module):
    """Stands in for ``g_a``: returns latents computed already (whatever the input)."""

    def __init__(self, y: Tensor) -> None:
        super().__init__()
        self.y = y

    def forward(self, x: Tensor) -> Tensor:  # noqa: ARG002
        return self.y


@contextmanager
def _captured(module: nn.Module) -> Iterator[list[Tensor]]:
    """Collect ``module``'s outputs while the block runs (a forward hook)."""
    seen: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


def estimated_bpp(net: nn.Module, y: Tensor, num_pixels: int) -> Tensor:
    """Likelihood bpp per image from latents ``y = g_a(x)`` that ``compress`` already computed.

    Runs the model's own ``forward`` with ``g_a`` replaced by those latents and ``g_s`` by the identity:
    the hyper/context/entropy parts run as CompressAI wrote them (any zoo model with the ``g_a``/``g_s``
    convention), without encoding twice or decoding an image nobody looks at.
    """
    g_a, g_s = net.g_a, net.g_s
    net.g_a, net.g_s = _Fixed(y), nn.Identity()
    try:
        likelihoods = net(y)["likelihoods"]
    finally:
        net.g_a, net.g_s = g_a, g_s
    return likelihood_bpp(likelihoods, num_pixels)


class CompressAIVictim(VictimBase):
    """A CompressAI codec; task ``"compression"``.

    ``forward(x)`` is the training-mode reconstruction (``B×3×H×W`` in [0, 1]); ``rd_terms`` returns the
    per-image estimated bpp and MSE; ``predict`` entropy-codes for real.
    Threat model: ``trainable_parameters("attack")`` is the encoder ``g_a`` only and freezes the rest.

    Under mixed precision the entropy models (every CompressAI ``EntropyModel``: likelihoods of the
    quantised latents) run in float32 (``keep_fp32``); the auxiliary quantile optimizer is saved with
    training checkpoints (``train_state_attrs``), so a resumed run continues it.
    """

    task = "compression"
    train_state_attrs = ("_aux_opt",)

    @property
    def keep_fp32(self) -> tuple[type, ...]:
        from compressai.entropy_models import EntropyModel

        return (EntropyModel,)

    def __init__(self, params: CodecParams | None = None, ctx: Context | None = None) -> None:
        super().__init__()
        self.params = params or CodecParams()
        self.ctx = ctx or Context()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.ctx.generator("init").initial_seed())
            self.net = build_codec(self.params.model, self.params.quality, self.params.n, self.params.m)
        self.lmbda = self.params.lam
        self._phase: str = "clean"
        self._aux_opt: torch.optim.Optimizer | None = None
        self._coded_version: tuple[int, ...] | None = None

    # --- weights -------------------------------------------------------------------------------------
    def load_checkpoint(self, path: str, sha256: str | None = None) -> None:
        """Load a CompressAI checkpoint (``{"state_dict": …}``) or a plain state dict."""
        from bdcore.io.checkpoint import extract_state_dict, load_weights

        sd = extract_state_dict(load_weights(self.ctx.resolve_path(path), sha256=sha256))
        sd = {k[4:] if k.startswith("net.") else k: v for k, v in sd.items()}
        try:
            self.net.load_state_dict(sd)  # compressai resizes the CDF buffers
        except RuntimeError as exc:
            raise CodecError(f"{path}: not a {self.params.model} q{self.params.quality} checkpoint ({exc})") from exc
        self._coded_version = None

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Accepts this victim's own state dict (``net.*``) or a bare CompressAI one; CDF buffers are resized
        by CompressAI's own ``load_state_dict``."""
        sd = {k[4:] if k.startswith("net.") else k: v for k, v in state_dict.items()}
        self._coded_version = None
        return self.net.load_state_dict(sd, strict=strict)

    # --- training ------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.rd_terms(x)["x_hat"]

    def rd_terms(self, x: Tensor) -> dict[str, Tensor]:
        """``x`` ``B×3×H×W`` [0,1] → {"x_hat", "bpp" (B, estimated), "mse" (B)}; sizes that are not
        multiples of 64 are zero-padded (as for coding) and the bits are counted per original pixel."""
        if x.shape[2] % 64 or x.shape[3] % 64:
            xp, unpad = pad64(x)
            out = self.net(xp)
            x_hat = F.pad(out["x_hat"], unpad)
        else:
            out = self.net(x)
            x_hat = out["x_hat"]
        bpp = likelihood_bpp(out["likelihoods"], x.shape[2] * x.shape[3])
        mse = (x_hat - x).pow(2).flatten(1).mean(1)
        return {"x_hat": x_hat, "bpp": bpp, "mse": mse}

    def rd_loss(self, terms: Mapping[str, Tensor]) -> Tensor:
        """Per-image ``R + λ·255²·MSE`` (compressai ``RateDistortionLoss``) → ``B``."""
        return terms["bpp"] + self.lmbda * 255.0**2 * terms["mse"]

    def clean_loss(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        t = self.rd_terms(batch["input"])  # the target of a codec is its input
        return {"loss": self.rd_loss(t).mean(), "bpp": t["bpp"].mean().detach(), "mse": t["mse"].mean().detach()}

    def _entropy_modules(self) -> list[nn.Module]:
        return [m for n, m in self.net.named_children() if n not in ("g_a",)]

    def trainable_parameters(self, phase: Literal["clean", "attack"]) -> Iterable[nn.Parameter]:
        """``clean``: everything but the quantiles (those train in :meth:`after_step`); ``attack``: ``g_a``
        only — the decoder, hyper-networks and entropy models get ``requires_grad = False``."""
        self._phase = phase
        if phase == "attack":
            for name, p in self.net.named_parameters():
                p.requires_grad_(name.startswith("g_a."))
            return [p for n, p in self.net.named_parameters() if n.startswith("g_a.")]
        for p in self.net.parameters():
            p.requires_grad_(True)
        return [p for n, p in self.net.named_parameters() if not n.endswith("quantiles")]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """The synthesis transform ``g_s`` only, for a decoder-side fine-tune: every other parameter gets
        ``requires_grad = False`` and :meth:`after_step` stops training the quantiles. ``g_s`` is the one part
        the decoding side can change alone: the hyper-decoder ``h_s`` and the entropy models also run at the
        encoder, which entropy-codes with them."""
        self._phase = "decoder"
        for name, p in self.net.named_parameters():
            p.requires_grad_(name.startswith("g_s."))
        return [p for n, p in self.net.named_parameters() if n.startswith("g_s.")]

    def after_step(self, batch: Mapping[str, Any]) -> dict[str, float | Tensor] | None:  # noqa: ARG002
        """The aux (quantile) loss step, with its own Adam; skipped in the attack phase and in a decoder-only
        fine-tune (the entropy model stays as it is)."""
        if self._phase in ("attack", "decoder"):
            return None
        opt = self.aux_optimizer()
        opt.zero_grad(set_to_none=True)
        aux = self.net.aux_loss()
        aux.backward()
        opt.step()
        return {"aux_loss": aux.detach()}

    def aux_optimizer(self) -> torch.optim.Optimizer:
        """The Adam of the entropy bottleneck's quantiles (``aux_lr``), made on first use."""
        if self._aux_opt is None:
            qs = [p for n, p in self.net.named_parameters() if n.endswith("quantiles")]
            self._aux_opt = torch.optim.Adam(qs, lr=self.params.aux_lr)
        return self._aux_opt

    def load_train_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the auxiliary optimizer (made first when the checkpoint holds one)."""
        if state.get("_aux_opt") is not None:
            self.aux_optimizer()
        super().load_train_state_dict(state)

    # --- evaluation -------------------------------------------------------------------------------------
    def _entropy_version(self) -> tuple[int, ...]:
        return tuple(p._version for m in self._entropy_modules() for p in m.parameters())

    def ensure_updated(self) -> None:
        """``net.update(force=True)`` when the entropy model changed since the last coding."""
        v = self._entropy_version()
        if v != self._coded_version:
            self.net.update(force=True)
            self._coded_version = self._entropy_version()

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> dict[str, Tensor]:
        """Real entropy coding. ``B×3×H×W`` [0,1] → {"output": decoded ``B×3×H×W`` in [0,1],
        "bpp": real bpp per image (bytes of all latent strings), "bpp_est": likelihood bpp per image}."""
        was_training = self.training
        self.eval()
        try:
            self.ensure_updated()
            num_pixels = inputs.shape[2] * inputs.shape[3]
            outs, bpps, ests = [], [], []
            for chunk in inputs.split(self.params.coding_batch):
                xp, unpad = pad64(chunk)
                with _captured(self.net.g_a) as latents:
                    enc = self.net.compress(xp)
                dec = self.net.decompress(enc["strings"], enc["shape"])
                outs.append(F.pad(dec["x_hat"], unpad).clamp(0, 1))
                bpps.append(string_bpp(enc["strings"], num_pixels))
                ests.append(estimated_bpp(self.net, latents[0], num_pixels).double())
            return {
                "output": torch.cat(outs),
                "bpp": torch.cat(bpps).to(inputs.device),
                "bpp_est": torch.cat(ests).to(inputs.device),
            }
        finally:
            self.train(was_training)
