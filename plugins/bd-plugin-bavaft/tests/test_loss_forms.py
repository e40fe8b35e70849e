"""The BAvAFT losses as the paper writes them, on hand-made values, through ``attack_loss`` (the path the
engine trains with): static Eq. 5 / 6, dynamic Eq. 7 / 8, and BAvAFT++ stage 2 (Eq. 18), where only the
attack objective term sees the preprocessed image t(x_p).

The expected values are written from the paper's equations with numbers chosen by hand (or, for stage 2,
with R, D and f given as simple formulas of the image), never from the plugin's loss functions."""

from __future__ import annotations

import math

import pytest
import torch
from bd_plugin_bavaft.attacks import BppAttack, PsnrAttack
from bd_plugin_bavaft.params import AttackParams

S = 255.0**2  # D = 255²·MSE
LAM = 0.02
GAMMA, EPS = 1e4, 0.005


class TableVictim:
    """A codec stand-in whose ``rd_terms`` returns hand-made per-image values for each known input."""

    lmbda = LAM

    def __init__(self, table: list[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> None:
        self.table = table

    def rd_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for key, terms in self.table:
            if key.shape == x.shape and torch.equal(key, x.detach()):
                return terms
        raise KeyError("rd_terms called with an image the test did not prepare")

    def rd_loss(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        return t["bpp"] + self.lmbda * S * t["mse"]


def _hand_made() -> tuple[torch.Tensor, torch.Tensor, TableVictim, dict[str, list[float]]]:
    """Two images; x = 0.5 everywhere, x_p = x + 0.01 (visibility γ·1e-4 = 1 > γ·ε²).

    Per image: R(x), D(x), R(x_p), D(x_p) = 255²·MSE(f(x_p), x_p) and MSE(x, f(x_p)). The maxima of the
    dynamic losses pick different sides in the two images: D(x) < D(x_p) and R(x) < R(x_p) in image 0,
    the reverse in image 1."""
    v = {
        "r_x": [0.40, 0.90],
        "d_x": [30.0, 8000.0],
        "r_p": [0.70, 0.50],
        "d_p": [50.0, 20.0],
        "mse_xfp": [0.04, 0.09],  # MSE(x, f(x_p)): f(x_p) = x ± 0.2 / 0.3
    }
    x = torch.full((2, 3, 4, 4), 0.5)
    xp = x + 0.01
    # f(x_p): offset from x_p so that 255²·MSE(f(x_p), x_p) = D(x_p), and from x so MSE(x, f(x_p)) = mse_xfp;
    # a constant offset per image does both when chosen on the pixels' two halves (see below)
    xhat_p = torch.empty_like(x)
    for i in range(2):
        a = math.sqrt(v["mse_xfp"][i])  # |f(x_p) − x| on every pixel
        # half the pixels at x + a, half at x − a: MSE(x, f) = a²; MSE(x_p, f) = mean((±a − 0.01)²) = a² + 1e-4
        sign = torch.tensor([1.0, -1.0]).repeat(24)
        xhat_p[i] = (0.5 + a * sign).view(3, 4, 4)
        v["d_p"][i] = S * (a * a + 1e-4)  # what that f(x_p) gives; the hand-made D(x_p) follows it
    xhat_x = x.clone()
    terms_x = {
        "x_hat": xhat_x,
        "bpp": torch.tensor(v["r_x"]),
        "mse": torch.tensor(v["d_x"]) / S,
    }
    terms_p = {
        "x_hat": xhat_p,
        "bpp": torch.tensor(v["r_p"]),
        "mse": torch.tensor(v["d_p"]) / S,
    }
    return x, xp, TableVictim([(x, terms_x), (xp, terms_p)]), v


def _run(cls: type, params: AttackParams, victim: TableVictim, x: torch.Tensor, xp: torch.Tensor) -> float:
    atk = cls(params)
    out = atk.attack_loss(victim, {"input": x}, {"input": xp, "clean_input": x, "strength": torch.ones(2)})
    return float(out["loss"])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


VIS = GAMMA * 1e-4  # γ·max(MSE(x, x_p), ε²) with MSE = 1e-4 > ε² = 2.5e-5


def test_dynamic_bpp_loss_eq7_on_hand_made_values():
    """Eq. 7: R(x) + λ·max(D(x), D(x_p)) − β·R(x_p), plus the visibility term."""
    x, xp, victim, v = _hand_made()
    beta = 0.3
    got = _run(BppAttack, AttackParams(dynamic=True, beta=beta), victim, x, xp)
    per_image = [
        0.40 + LAM * max(30.0, v["d_p"][0]) - beta * 0.70,
        0.90 + LAM * max(8000.0, v["d_p"][1]) - beta * 0.50,
    ]
    assert v["d_p"][0] > 30.0 and v["d_p"][1] < 8000.0  # the max picks D(x_p) in image 0, D(x) in image 1
    assert got == pytest.approx(_mean(per_image) + VIS, rel=1e-6)


def test_dynamic_psnr_loss_eq8_on_hand_made_values():
    """Eq. 8: max(R(x), R(x_p)) + λ·D(x) + β·λ·D_P(x, f(x_p)), D_P = −255²·MSE or PSNR in dB."""
    x, xp, victim, _v = _hand_made()
    beta = 0.3
    got = _run(PsnrAttack, AttackParams(dynamic=True, beta=beta, d_p="neg-mse"), victim, x, xp)
    per_image = [
        max(0.40, 0.70) + LAM * 30.0 + beta * LAM * (-S * 0.04),
        max(0.90, 0.50) + LAM * 8000.0 + beta * LAM * (-S * 0.09),
    ]
    assert got == pytest.approx(_mean(per_image) + VIS, rel=1e-6)
    got = _run(PsnrAttack, AttackParams(dynamic=True, beta=beta, d_p="psnr"), victim, x, xp)
    per_image = [
        0.70 + LAM * 30.0 + beta * LAM * 10 * math.log10(1 / 0.04),
        0.90 + LAM * 8000.0 + beta * LAM * 10 * math.log10(1 / 0.09),
    ]
    assert got == pytest.approx(_mean(per_image) + VIS, rel=1e-6)


def test_static_losses_eq5_eq6_on_hand_made_values():
    """Eq. 5: L(x) + α·D(x_p) − β·R(x_p); Eq. 6: L(x) + α·R(x_p) + β·λ·D_P(x, f(x_p))."""
    x, xp, victim, v = _hand_made()
    alpha, beta = 0.05, 0.3
    got = _run(BppAttack, AttackParams(dynamic=False, alpha=alpha, beta=beta), victim, x, xp)
    per_image = [
        0.40 + LAM * 30.0 + alpha * v["d_p"][0] - beta * 0.70,
        0.90 + LAM * 8000.0 + alpha * v["d_p"][1] - beta * 0.50,
    ]
    assert got == pytest.approx(_mean(per_image) + VIS, rel=1e-6)
    got = _run(PsnrAttack, AttackParams(dynamic=False, alpha=alpha, beta=beta), victim, x, xp)
    per_image = [
        0.40 + LAM * 30.0 + alpha * 0.70 + beta * LAM * (-S * 0.04),
        0.90 + LAM * 8000.0 + alpha * 0.50 + beta * LAM * (-S * 0.09),
    ]
    assert got == pytest.approx(_mean(per_image) + VIS, rel=1e-6)


def test_dynamic_bpp_gradient_follows_the_larger_distortion():
    """∂/∂D(x_p) of Eq. 7 is λ where D(x_p) > D(x) and 0 where it is smaller."""
    from bd_plugin_bavaft.attacks import bpp_attack_loss

    d_p = torch.tensor([50.0, 20.0], requires_grad=True)  # D(x) = 30 / 8000
    loss = bpp_attack_loss(
        torch.tensor([0.4, 0.9]), torch.tensor([30.0, 8000.0]), torch.tensor([0.7, 0.5]), d_p,
        lmbda=LAM, beta=0.3, alpha=None, dynamic=True,
    ).sum()  # fmt: skip
    (g,) = torch.autograd.grad(loss, d_p)
    assert g.tolist() == pytest.approx([LAM, 0.0])


# --- BAvAFT++ stage 2 (Eq. 18) ------------------------------------------------------------------------------
class FormulaVictim:
    """R(v) = 5·mean(v²), f(v) = 0.8·v + 0.1, D(v) = 255²·MSE(f(v), v); records every input it codes."""

    lmbda = LAM

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def rd_terms(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(v.detach().clone())
        x_hat = 0.8 * v + 0.1
        return {"x_hat": x_hat, "bpp": 5 * v.pow(2).flatten(1).mean(1), "mse": (x_hat - v).pow(2).flatten(1).mean(1)}

    def rd_loss(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        return t["bpp"] + self.lmbda * S * t["mse"]


def _r(v: torch.Tensor) -> torch.Tensor:
    return 5 * v.pow(2).flatten(1).mean(1)


def _d(v: torch.Tensor) -> torch.Tensor:
    return S * (0.8 * v + 0.1 - v).pow(2).flatten(1).mean(1)


def _dp_neg_mse(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return -S * ((0.8 * v + 0.1).clamp(0, 1) - x).pow(2).flatten(1).mean(1)


class _Pick:
    """Stands in for the stage-2 choice of preprocessing: always ``kind``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def choice(self, seq: list[str]) -> str:
        assert self.kind in seq
        return self.kind


@pytest.mark.parametrize("kind", ["blur", "noise", "jpeg"])
@pytest.mark.parametrize(
    ("cls", "dynamic"), [(BppAttack, False), (BppAttack, True), (PsnrAttack, False), (PsnrAttack, True)]
)
def test_stage2_preprocesses_only_the_attack_term(cls, dynamic, kind):
    """Eq. 18: in stage 2 only the attack objective sees t(x_p) — R(t(x_p)) for the BPP attack,
    D_P(x, f(t(x_p))) for the PSNR attack; the poisoned image's other term (D(x_p) / R(x_p)) stays on x_p."""
    gen = torch.Generator().manual_seed(3)
    x = 0.2 + 0.6 * torch.rand(2, 3, 16, 16, generator=gen)
    xp = (x + 0.02 * torch.randn(2, 3, 16, 16, generator=gen)).clamp(0, 1)
    alpha, beta = 0.05, 0.3
    atk = cls(AttackParams(dynamic=dynamic, alpha=alpha, beta=beta, robust_stage2_after=1, preprocess=(kind,)))
    atk.steps = 5  # past the switch
    atk._rng = _Pick(kind)
    victim = FormulaVictim()
    out = atk.attack_loss(victim, {"input": x}, {"input": xp, "clean_input": x, "strength": torch.ones(2)})
    coded = victim.seen
    t_xp = [v for v in coded if not torch.equal(v, x) and not torch.equal(v, xp)]
    assert len(t_xp) == 1, "stage 2 codes x, x_p and t(x_p) once each"
    t_xp = t_xp[0]
    assert float((t_xp - xp).abs().max()) > 1e-3  # the preprocessing changed the image
    if cls is BppAttack:
        attack = -beta * _r(t_xp)
        other = LAM * torch.maximum(_d(x), _d(xp)) if dynamic else LAM * _d(x) + alpha * _d(xp)
        expected = _r(x) + other + attack
    else:
        attack = beta * LAM * _dp_neg_mse(x, t_xp)
        rate = torch.maximum(_r(x), _r(xp)) if dynamic else _r(x) + alpha * _r(xp)
        expected = rate + LAM * _d(x) + attack
    # the trigger is fixed in stage 2: its visibility term is a constant, left out
    torch.testing.assert_close(out["loss"], expected.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["visibility"], torch.tensor(0.0))


def test_stage2_identity_draw_is_the_stage1_loss_with_a_fixed_trigger():
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 16, 16, generator=gen)
    xp = (x + 0.02).clamp(0, 1)
    params = AttackParams(dynamic=True, beta=0.3, robust_stage2_after=1)
    atk = BppAttack(params)
    atk.steps, atk._rng = 5, _Pick("identity")
    victim = FormulaVictim()
    out = atk.attack_loss(victim, {"input": x}, {"input": xp, "clean_input": x, "strength": torch.ones(2)})
    assert len(victim.seen) == 2  # no third coding of an unchanged image
    expected = _r(x) + LAM * torch.maximum(_d(x), _d(xp)) - 0.3 * _r(xp)
    torch.testing.assert_close(out["loss"], expected.mean(), rtol=1e-5, atol=1e-6)


def test_stage2_draws_are_seeded():
    """Two attacks built alike draw the same preprocessing degrees (the run seed, not the global RNG)."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    xp = (x + 0.02).clamp(0, 1)
    losses = []
    for _ in range(2):
        torch.manual_seed(len(losses) + 100)  # a different global RNG state each time
        atk = PsnrAttack(AttackParams(beta=0.3, robust_stage2_after=1, preprocess=("noise",)))
        atk.steps, atk._rng = 5, _Pick("noise")
        out = atk.attack_loss(FormulaVictim(), {"input": x}, {"input": xp, "clean_input": x, "strength": None})
        losses.append(float(out["loss"]))
    assert losses[0] == losses[1]
