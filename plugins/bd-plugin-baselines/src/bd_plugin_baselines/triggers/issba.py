"""ISSBA (Li et al., ICCV 2021): sample-specific invisible trigger from a StegaStamp-style encoder.

Encoder (after StegaStamp / BackdoorBox ``ISSBA.py``): secret bits → Dense(3·16·16) + ReLU → reshape
→ bilinear upsample to H×W (StegaStamp: 50×50 upsampled ×8 at 400²; ours is resolution-free) →
concat with (image − 0.5) → U-Net → 1×1 conv residual, bounded by ``eps·tanh``. The poisoned image
is ``clamp(x + strength·residual)``; the residual depends on the image (sample-specific).
Decoder: conv stack with stride 2, adaptive average pool to 4×4, flatten, MLP → bit logits.

``fit`` trains encoder and decoder on the run's data with *random* secrets per sample (as
StegaStamp), loss ``bce_weight·BCE(decoded, secret) + l2_weight·mean(residual²)``; the first
``secret_only_steps`` use the BCE alone. Approximated: no STN in the decoder, no LPIPS term, no
critic, no image-perturbation layer, no BCH code (methods.md §4 lists the originals).

:meth:`ISSBA.pseudo_poison` encodes a random secret other than the trigger's per sample: the same
encoder's residual carrying the wrong message (ISSBA itself has no cross samples; this is the analogue
the :class:`~bdcore.protocols.PseudoTrigger` capability asks for, e.g. for AS-FIBA's Eq. 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bd_plugin_baselines.triggers._common import TriggerError
from bd_plugin_baselines.triggers._nets import SmallUNet
from bdcore.components import TriggerBase, as_strength


class StegaEncoder(nn.Module):
    """``(B×C×H×W image, B×bits secret)`` → ``B×C×H×W`` residual in ``[−eps, eps]``."""

    def __init__(self, bits: int, channels: int = 3, width: int = 32, eps: float = 0.1, side: int = 16) -> None:
        super().__init__()
        self.side, self.channels, self.eps = side, channels, eps
        self.dense = nn.Linear(bits, channels * side * side)
        self.unet = SmallUNet(2 * channels, channels, width=width, depth=2)

    def forward(self, images: Tensor, secret: Tensor) -> Tensor:
        b, _c, h, w = images.shape
        s = self.dense(secret).view(b, self.channels, self.side, self.side)
        s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
        # The upsampled secret map also enters the output directly (a skip past the U-Net): the
        # decoder sees a bit-dependent signal from step 0, which avoids StegaStamp's long initial
        # plateau at chance; the U-Net learns to shape it to the image.
        return self.eps * torch.tanh(self.unet(torch.cat([F.relu(s), images - 0.5], 1)) + s)


class StegaDecoder(nn.Module):
    """``B×C×H×W`` image → ``B×bits`` logits."""

    def __init__(self, bits: int, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for cout in (width, width, 2 * width, 2 * width, 4 * width):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        # StegaStamp flattens its last feature map (the secret is spatial); pooling to a fixed
        # 4×4 grid first keeps that and stays resolution-free.
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * 16, 4 * width), nn.ReLU(inplace=True), nn.Linear(4 * width, bits)
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(images - 0.5), 4))


def secret_bits(text: str, bits: int, generator: torch.Generator) -> Tensor:
    """The secret as a float {0,1} vector: the UTF-8 bits of ``text`` (zero-padded/truncated), or random."""
    if not text:
        return torch.randint(0, 2, (bits,), generator=generator).float()
    raw = [int(b) for byte in text.encode() for b in f"{byte:08b}"]
    raw = (raw + [0] * bits)[:bits]
    return torch.tensor(raw, dtype=torch.float32)


def issba(images: Tensor, encoder: StegaEncoder, secret: Tensor, *, strength: float | Tensor = 1.0) -> Tensor:
    """Encode ``secret`` (``bits`` or ``B×bits``) into ``B×C×H×W`` images in [0, 1]; clamped."""
    s = torch.as_tensor(strength, dtype=images.dtype, device=images.device).reshape(-1, 1, 1, 1)
    dt = encoder.dense.weight.dtype  # run the encoder in its own dtype, return the images' dtype
    sec = secret.to(device=images.device, dtype=dt).expand(images.shape[0], -1)
    return (images + s * encoder(images.to(dt), sec).to(images.dtype)).clamp(0.0, 1.0)


def other_secrets(secret: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n×bits`` {0,1} secrets drawn uniformly from all secrets but ``secret`` (``bits``): rows equal
    to ``secret`` are redrawn (rejection sampling, so the others stay equally likely)."""
    ref = secret.detach().cpu().float()
    out = torch.randint(0, 2, (n, ref.numel()), generator=generator).float()
    same = (out == ref).all(1)
    while bool(same.any()):
        out[same] = torch.randint(0, 2, (int(same.sum()), ref.numel()), generator=generator).float()
        same = (out == ref).all(1)
    return out


def bit_accuracy(logits: Tensor, secret: Tensor) -> float:
    """Share of bits decoded correctly (logit > 0 ↔ 1)."""
    return float(((logits > 0).float() == secret.to(logits)).float().mean())


class ISSBA(TriggerBase):
    """Registered ``issba`` trigger: learnable (fit stage), sample-specific residual."""

    learnable = True
    differentiable = True
    train_state_attrs = ("_gen",)  # the random secrets of the fit steps

    def __init__(self, params, ctx=None) -> None:  # noqa: ANN001
        super().__init__(params, ctx)
        channels = int(self.ctx.options.get("channels", 3))
        seed = params.seed
        gen = torch.Generator().manual_seed(seed) if seed is not None else self.ctx.generator("issba")
        self.register_buffer("secret", secret_bits(params.secret, params.bits, gen))
        init_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(init_seed)
            self.encoder = StegaEncoder(params.bits, channels, params.width, params.eps)
            self.decoder = StegaDecoder(params.bits, channels, params.width)
        self._gen = gen

    def apply(self, images: Tensor, strength: Tensor, generator: torch.Generator | None) -> Tensor:  # noqa: ARG002
        return issba(images, self.encoder, self.secret, strength=strength)

    def pseudo_poison(
        self, images: Tensor, generator: torch.Generator | None = None, strength: float | Tensor = 1.0
    ) -> Tensor:
        """The encoder with a random secret other than the trigger's per sample (:func:`other_secrets`,
        drawn from ``generator``). ``B×C×H×W`` in [0, 1] → same."""
        secrets = other_secrets(self.secret, images.shape[0], generator)
        return issba(images, self.encoder, secrets, strength=as_strength(strength, images))

    def decode(self, images: Tensor) -> Tensor:
        """Bit logits ``B×bits`` recovered from (possibly triggered) images."""
        return self.decoder(images.to(self.decoder.head[1].weight.dtype))

    def train_steps(self, batches, steps: int) -> list[float]:  # noqa: ANN001
        """Train encoder + decoder for ``steps`` batches with random secrets; returns the losses."""
        p = self.params
        opt = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()], lr=p.lr)
        losses = []
        for step in range(steps):
            x = next(batches)["input"]
            sec = torch.randint(0, 2, (x.shape[0], p.bits), generator=self._gen).to(x)
            residual = self.encoder(x, sec)
            logits = self.decoder((x + residual).clamp(0, 1))
            bce = F.binary_cross_entropy_with_logits(logits, sec)
            l2 = residual.pow(2).mean()
            loss = p.bce_weight * bce + (0.0 if step < p.secret_only_steps else p.l2_weight) * l2
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses

    def fit(self, ctx) -> None:  # noqa: ANN001
        steps = self.params.steps or ctx.steps
        if steps <= 0:
            raise TriggerError("issba needs training: set attack.fit_steps or the trigger's 'steps' param")
        self.to(ctx.ctx.device)
        losses = self.train_steps(ctx.batches(generator_salt="issba"), steps)
        ctx.ctx.log(f"issba fit: {steps} steps, final loss {losses[-1]:.4f}")
