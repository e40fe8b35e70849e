"""BAvAFT attack objectives against their closed forms; encoder-only attack step."""

import math

import pytest
import torch
from bd_plugin_bavaft.attacks import BppAttack, PsnrAttack, bpp_attack_loss, psnr_attack_loss, visibility
from bd_plugin_bavaft.params import AttackParams

from bdcore.context import Context
from bdcore.testing.contracts import AttackLossContract

R_X, D_X, R_P, D_P = (
    torch.tensor([1.0, 2.0]),
    torch.tensor([10.0, 30.0]),
    torch.tensor([3.0, 1.0]),
    torch.tensor([20.0, 5.0]),
)


class TestBppContract(AttackLossContract):
    params_cls = AttackParams

    def make(self):
        return BppAttack(AttackParams())

    def victim(self):  # the attack needs this plugin's codec and trigger, not the suite's toy defaults
        from bd_plugin_bavaft.codec import CompressAIVictim
        from bd_plugin_bavaft.params import CodecParams

        return CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=1, n=8, m=12), Context(seed=0))

    def trigger(self):
        from bd_plugin_bavaft.params import BavaftTriggerParams
        from bd_plugin_bavaft.trigger import BavaftTrigger

        return BavaftTrigger(BavaftTriggerParams(norm="none"), Context(seed=0))


class TestPsnrContract(TestBppContract):
    def make(self):
        return PsnrAttack(AttackParams())


def test_bpp_dynamic_and_static_closed_form():
    lam, beta = 0.01, 0.1
    dyn = bpp_attack_loss(R_X, D_X, R_P, D_P, lmbda=lam, beta=beta, alpha=None, dynamic=True)
    assert dyn.tolist() == pytest.approx([1 + 0.01 * 20 - 0.3, 2 + 0.01 * 30 - 0.1])
    st = bpp_attack_loss(R_X, D_X, R_P, D_P, lmbda=lam, beta=beta, alpha=0.5, dynamic=False)
    assert st.tolist() == pytest.approx([1 + 0.1 + 10 - 0.3, 2 + 0.3 + 2.5 - 0.1])


def test_bpp_log_ratio_closed_form_and_cap():
    lam, beta = 0.01, 2.0
    st = bpp_attack_loss(
        R_X, D_X, R_P, D_P, lmbda=lam, beta=beta, alpha=0.0, dynamic=False, r_form="log-ratio", target_ratio=None
    )
    assert st.tolist() == pytest.approx([1 + 0.1 - 2 * math.log(3.0), 2 + 0.3 - 2 * math.log(0.5)])
    capped = bpp_attack_loss(
        R_X, D_X, R_P, D_P, lmbda=lam, beta=beta, alpha=0.0, dynamic=False, r_form="log-ratio", target_ratio=2.0
    )
    assert capped.tolist() == pytest.approx([1 + 0.1 - 2 * math.log(2.0), 2 + 0.3 - 2 * math.log(0.5)])
    dyn = bpp_attack_loss(R_X, D_X, R_P, D_P, lmbda=lam, beta=beta, alpha=None, dynamic=True, r_form="log-ratio")
    assert dyn.tolist() == pytest.approx([1 + 0.2 - 2 * math.log(3.0), 2 + 0.3 - 2 * math.log(0.5)])


def test_bpp_log_ratio_ignores_a_common_rate_change():
    """Scaling the rate of x and x_p together (no backdoor, just more bits everywhere) earns nothing;
    the paper's −β·R(x_p) pays β per bpp for it."""
    s = torch.tensor(1.0, requires_grad=True)
    r = torch.tensor([0.3, 0.5])

    def attack_part(form: str) -> torch.Tensor:
        full = bpp_attack_loss(s * r, D_X, s * r, D_P, lmbda=0.01, beta=3.0, alpha=0.0, dynamic=False, r_form=form)
        return (full - (s * r + 0.01 * D_X)).sum()

    (g,) = torch.autograd.grad(attack_part("log-ratio"), s)
    assert float(g) == pytest.approx(0.0, abs=1e-6)
    (g,) = torch.autograd.grad(attack_part("bpp"), s)
    assert float(g) == pytest.approx(-3.0 * 0.8)


def test_target_ratio_needs_log_ratio():
    with pytest.raises(ValueError, match="r_p"):
        AttackParams(target_ratio=4.0)
    with pytest.raises(ValueError):
        AttackParams(r_p="log-ratio", target_ratio=1.0)
    assert AttackParams(r_p="log-ratio", target_ratio=4.0).target_ratio == 4.0


def test_psnr_dynamic_and_static_closed_form():
    lam, beta = 0.01, 0.1
    dp = torch.tensor([-100.0, -50.0])
    dyn = psnr_attack_loss(R_X, D_X, R_P, dp, lmbda=lam, beta=beta, alpha=None, dynamic=True)
    assert dyn.tolist() == pytest.approx([3 + 0.1 - 0.1, 2 + 0.3 - 0.05])
    st = psnr_attack_loss(R_X, D_X, R_P, dp, lmbda=lam, beta=beta, alpha=2.0, dynamic=False)
    assert st.tolist() == pytest.approx([1 + 0.1 + 6 - 0.1, 2 + 0.3 + 2 - 0.05])


def test_visibility_floor_and_value():
    x = torch.zeros(2, 3, 4, 4)
    xp = x.clone()
    xp[1] += 0.01
    v = visibility(x, xp, 1e4, 0.005)
    assert v.tolist() == pytest.approx([1e4 * 0.005**2, 1e4 * 1e-4])


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (BppAttack, AttackParams()),
        (BppAttack, AttackParams(dynamic=False, alpha=0.0, beta=3.0, r_p="log-ratio", target_ratio=4.0)),
        (PsnrAttack, AttackParams()),
    ],
)
def test_attack_step_trains_encoder_and_trigger_only(cls, params):
    from bd_plugin_bavaft.codec import CompressAIVictim
    from bd_plugin_bavaft.params import BavaftTriggerParams, CodecParams
    from bd_plugin_bavaft.trigger import BavaftTrigger

    from bdcore.context import Context

    ctx = Context(seed=0)
    v = CompressAIVictim(CodecParams(model="bmshj2018-factorized", quality=1, n=16, m=24), ctx)
    trig = BavaftTrigger(BavaftTriggerParams(norm="none"), ctx)
    atk = cls(params, Context(seed=0, trigger=trig))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    params = list(v.trainable_parameters("attack"))
    xp = trig.inject_trigger(x)
    out = atk.attack_loss(v, {"input": x}, {"input": xp, "clean_input": x, "strength": torch.ones(2)})
    out["loss"].backward()
    assert all(p.grad is not None for p in params)
    assert trig.weight.out.weight.grad is not None and trig.weight.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in v.net.named_parameters() if not n.startswith("g_a."))
    assert out["visibility"].item() >= 1e4 * 0.005**2 - 1e-6
    # the logged trigger PSNR is the unclamped one (the visibility term cannot show a trigger above 46 dB)
    mse = (xp - x).detach().pow(2).flatten(1).mean(1)
    torch.testing.assert_close(out["trigger_psnr"], (10 * torch.log10(1 / mse)).mean())


def test_psnr_attack_distortion_is_bounded():
    """A decoder output far outside [0, 1] cannot buy an unbounded loss decrease (it did: 1e18 in the demo)."""

    class Victim:
        lmbda = 0.01

    x = torch.full((2, 3, 16, 16), 0.5)
    tp = {"x_hat": torch.full_like(x, 1e6), "bpp": torch.zeros(2)}
    attack, logs = PsnrAttack(AttackParams(beta=1.0)).objective(Victim(), x, x, tp, torch.zeros(2), torch.zeros(2))
    assert float(logs["mse_poisoned"]) == pytest.approx(0.25)
    assert torch.isfinite(attack).all() and float(attack.abs().max()) < 1e3
