"""Golden tests: I_0.1 construction, Eq. 5, the ASR/BA rule on hand-made cases, LQ synthesis determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bd_plugin_asfiba.attack import ASFIBA, asfiba_loss
from bd_plugin_asfiba.degradation import degrade_01, synthesize_lq
from bd_plugin_asfiba.metrics import RestorationASR, RestorationBA, restored
from bd_plugin_asfiba.params import ASFIBAParams, RestorationRuleParams


def bilinear_up_np(small: np.ndarray, h: int, w: int) -> np.ndarray:
    """Half-pixel-centre bilinear upsampling (clamped at the border), written out per axis."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
            i0 = min(int(np.floor(src)), n_in - 1)
            i1 = min(i0 + 1, n_in - 1)
            f = src - i0
            m[i, i0] += 1 - f
            m[i, i1] += f
        return m

    return np.einsum("hi,ncij,wj->nchw", weights(small.shape[2], h), small, weights(small.shape[3], w))


@pytest.mark.parametrize("size", [(40, 30), (64, 64)])
def test_degrade_01_matches_block_mean_and_bilinear(size: tuple[int, int]) -> None:
    h, w = size
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = degrade_01(x).numpy()
    # independent: 1/10 scale by block means (10×10 blocks; 64 → 6 blocks of 64/6 px via exact area weights)
    xs = x.numpy()
    sh, sw = round(h / 10), round(w / 10)

    def area(n_in: int, n_out: int) -> np.ndarray:
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            lo, hi = int(np.floor(i * n_in / n_out)), int(np.ceil((i + 1) * n_in / n_out))
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    small = np.einsum("hi,ncij,wj->nchw", area(h, sh), xs, area(w, sw))
    np.testing.assert_allclose(got, bilinear_up_np(small, h, w), atol=1e-10)
    assert got.shape == xs.shape


def test_degrade_01_of_constant_is_constant_and_detail_is_lost() -> None:
    c = torch.full((1, 3, 50, 50), 0.3)
    torch.testing.assert_close(degrade_01(c), c)
    checker = (torch.arange(50)[:, None] + torch.arange(50)[None, :]) % 2
    x = checker.float().expand(1, 3, 50, 50)
    torch.testing.assert_close(degrade_01(x), torch.full_like(x, 0.5), atol=1e-6, rtol=0)


def test_eq5_closed_form() -> None:
    out_c, gt = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)  # |diff| = 1
    out_p, t01 = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)  # 0.5
    out_pp = torch.full((1, 3, 4, 4), 0.75)  # 0.25
    terms = asfiba_loss(out_c, gt, out_p, t01, out_pp, lambda1=0.75, lambda2=0.125, norm="l1")
    assert float(terms["loss"]) == pytest.approx(0.75 * 1 + 0.125 * 0.5 + 0.125 * 0.25)
    terms2 = asfiba_loss(out_c, gt, out_p, t01, out_pp, norm="l2")
    assert float(terms2["loss"]) == pytest.approx(0.75 * 1 + 0.125 * 0.25 + 0.125 * 0.0625)


def test_attack_target_is_i01_of_benign_input() -> None:
    atk = ASFIBA(ASFIBAParams())
    x = torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(atk.attack_target({"input": x}, torch.ones(2)), degrade_01(x))
    assert atk.threat_model == "training-controlled"


def test_lambda_validation() -> None:
    with pytest.raises(ValueError):
        ASFIBAParams(lambda1=0.9, lambda2=0.2)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


def test_rule_on_hand_made_cases() -> None:
    lq = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    i01 = degrade_01(lq)
    hq = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    outs = torch.stack([hq[0], i01[1], 0.9 * hq[2] + 0.1 * i01[2], 0.2 * hq[3] + 0.8 * i01[3]])
    assert restored(outs, hq, lq, _mse).tolist() == [True, False, True, False]


class _Batch:
    def __init__(self, split: str, output: torch.Tensor, ref: torch.Tensor, lq: torch.Tensor) -> None:
        self.split, self.output, self.reference_output, self.clean_output = split, output, ref, ref
        self.clean_input, self.input = lq, lq


def test_asr_ba_metrics_count_percentages() -> None:
    lq = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    hq = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    i01 = degrade_01(lq)
    outs = torch.stack([hq[0], i01[1], hq[2], i01[3]])  # 2 restored, 2 degraded
    params = RestorationRuleParams(distance="mse")
    ba, asr = RestorationBA(params), RestorationASR(params)
    ba.update(_Batch("clean", outs, hq, lq))
    asr.update(_Batch("poisoned", outs, hq, lq))
    assert ba.compute() == {"restorationba": 50.0, "restorationba.mse": 50.0}
    assert asr.compute() == {"restorationasr": 50.0, "restorationasr.mse": 50.0}
    # the default offline distance (1 − MS-SSIM) agrees on these clear-cut cases
    ms = RestorationBA(RestorationRuleParams())
    ms.update(_Batch("clean", outs, hq, lq))
    assert ms.compute() == {"restorationba": 50.0, "restorationba.ms-ssim": 50.0}


# ---------------------------------------------------------------- ASR vs BA through the engine (asymmetric)
class _LookupVictim:
    """Returns a scheduled output for each known input (clean or triggered test image), by exact match."""

    def __init__(self, table: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.table = table

    def eval(self) -> None:
        return None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for img in x:
            (hit,) = [o for i, o in self.table if torch.equal(i, img)]
            out.append(hit)
        return torch.stack(out)


class _AddTrigger:
    def poison(self, batch: dict, trigger: object, generator: object = None) -> dict:  # noqa: ARG002
        return {**batch, "input": (batch["input"] + 0.02).clamp(0, 1)}


def test_asr_and_ba_are_not_interchangeable_through_the_engine() -> None:
    """Asymmetric fixture (5 faces): the attacked victim restores 4 of 5 clean inputs (BA 80 %) and degrades
    3 of 5 triggered inputs to I_0.1 (ASR 60 %). Metrics are built from the registry by name and fed by the
    engine's evaluator, so swapping the two registrations, their splits, their counting or the rule's
    direction changes at least one number (BA 20/60 %, ASR 40/20/80 %)."""
    from bdcore.context import Context
    from bdcore.engine.evaluate import Evaluator
    from bdcore.plugins import load_plugins
    from bdcore.spec.structure import Resolved

    registry = load_plugins().registry
    gen = torch.Generator().manual_seed(3)
    lq = torch.rand(5, 3, 40, 40, generator=gen) * 0.9
    lq_trig = (lq + 0.02).clamp(0, 1)
    hq = torch.rand(5, 3, 40, 40, generator=gen)  # the clean victim's outputs (the rule's I_hq)
    i01 = degrade_01(lq)
    clean_out = [hq[0], hq[1], hq[2], hq[3], i01[4]]  # BA: 4 / 5 restored
    trig_out = [i01[0], i01[1], i01[2], hq[3], hq[4]]  # ASR: 3 / 5 degraded
    clean_victim = _LookupVictim(list(zip(lq, hq, strict=True)))
    attacked = _LookupVictim([*zip(lq, clean_out, strict=True), *zip(lq_trig, trig_out, strict=True)])

    metrics = tuple(
        Resolved(f"metric[{k}]", registry.get("metric", name), RestorationRuleParams(distance="mse"), name)
        for k, name in enumerate(("asfiba-asr", "asfiba-ba"))
    )
    test_set = [{"input": lq[i], "target": hq[i]} for i in range(5)]
    ev = Evaluator(
        test_set, 3, None, "cpu", 0, metrics, lambda r: Context(component=f"metric:{r.label}"),
        trigger=object(), attack=_AddTrigger(),
    )  # fmt: skip
    ev.set_reference(clean_victim)
    rows, _ = ev.evaluate(attacked, stage="attacked")  # type: ignore[arg-type]
    got = {(r["metric"], r["split"]): r["value"] for r in rows}
    assert got == {
        ("asfiba-ba", "clean"): 80.0,
        ("asfiba-ba.mse", "clean"): 80.0,
        ("asfiba-asr", "poisoned"): 60.0,
        ("asfiba-asr.mse", "poisoned"): 60.0,
    }
    # a victim that restores everything (triggered inputs included) scores BA 100 %, ASR 0 %
    rows, _ = ev.evaluate(_LookupVictim([*zip(lq, hq, strict=True), *zip(lq_trig, hq, strict=True)]), stage="clean")  # type: ignore[arg-type]
    assert {(r["metric"], r["split"]): r["value"] for r in rows if "." not in r["metric"]} == {
        ("asfiba-ba", "clean"): 100.0,
        ("asfiba-asr", "poisoned"): 0.0,
    }


def test_rule_distance_defaults_to_lpips_when_weights_are_given(tmp_path) -> None:  # noqa: ANN001
    """``distance = "auto"`` (default): LPIPS with local backbone weights, 1 − MS-SSIM without; the resolved
    params and the metric's second key name the distance used."""
    pytest.importorskip("lpips")
    pytest.importorskip("bd_plugin_baselines")
    import torchvision
    from bd_plugin_baselines.metrics.perceptual import build_lpips, lpips_distance

    assert RestorationRuleParams().distance == "ms-ssim"
    assert RestorationRuleParams(distance="mse", lpips_weights=tmp_path / "w.pth").distance == "mse"  # explicit wins
    torch.manual_seed(0)  # stand-in backbone weights (random alexnet, torchvision layout): the wiring, not the metric
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "alex.pth")
    params = RestorationRuleParams(lpips_weights=tmp_path / "alex.pth")
    assert params.distance == "lpips"
    from bdcore.spec.converter import make_converter

    assert make_converter().unstructure(params)["distance"] == "lpips"  # what the resolved spec records

    lq = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    hq = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    i01 = degrade_01(lq)
    outs = torch.stack([hq[0], 0.3 * hq[1] + 0.7 * i01[1], 0.6 * hq[2] + 0.4 * i01[2], i01[3]])
    ref = build_lpips("alex", weights=tmp_path / "alex.pth")  # an independent LPIPS instance
    ba = RestorationBA(params)
    torch.testing.assert_close(ba.distance(outs, hq).double(), lpips_distance(ref, outs, hq))  # it measures LPIPS
    expect = (lpips_distance(ref, outs, hq) < lpips_distance(ref, outs, i01)).double().mean().item() * 100
    ba.update(_Batch("clean", outs, hq, lq))
    assert ba.compute() == {"restorationba": expect, "restorationba.lpips": expect}


def test_lpips_distance_needs_local_weights() -> None:
    from bd_plugin_asfiba.metrics import MetricSetupError

    with pytest.raises(MetricSetupError, match="lpips_weights"):
        RestorationBA(RestorationRuleParams(distance="lpips"))


def test_synthesize_lq_seeded_and_degrading() -> None:
    hq = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(0))
    a = synthesize_lq(hq, torch.Generator().manual_seed(5))
    b = synthesize_lq(hq, torch.Generator().manual_seed(5))
    c = synthesize_lq(hq, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == hq.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    # blur + downsampling remove most of the white-noise energy of the HQ image
    assert float((a - a.mean()).std()) < 0.8 * float((hq - hq.mean()).std())


# ---------------------------------------------------------------- Eq. 5's pseudo term for any trigger family
class _Shift:
    """A duck-typed trigger: ``+0.1`` as the trigger, ``+u`` (u ~ U(0, 0.05) per image, from the generator)
    as the pseudo trigger when ``pseudo`` is set. Nothing but the method's presence marks the capability."""

    learnable = needs_victim = False
    differentiable = True

    def __init__(self, pseudo: bool) -> None:
        self.calls: list[torch.Generator | None] = []
        if pseudo:
            self.pseudo_poison = self._pseudo

    def inject_trigger(self, images, *, strength=None, generator=None):  # noqa: ANN001, ANN202, ARG002
        return (images + 0.1).clamp(0, 1)

    def _pseudo(self, images, generator=None, strength=1.0):  # noqa: ANN001, ANN202, ARG002
        self.calls.append(generator)
        u = torch.rand(images.shape[0], 1, 1, 1, generator=generator) * 0.05
        return (images + u).clamp(0, 1)


def _attack(trigger: object, seed: int = 0, **params: object) -> ASFIBA:
    from bdcore.context import Context

    return ASFIBA(ASFIBAParams(**params), Context(seed=seed, trigger=trigger, component="attack:asfiba"))


def _batches() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    x = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0)) * 0.8
    gt = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    return {"input": x, "target": gt}, x


def test_eq5_pseudo_term_comes_from_a_duck_typed_trigger() -> None:
    """Identity victim: every Eq. 5 term has a closed form; the third uses the trigger's pseudo_poison."""
    trig = _Shift(pseudo=True)
    atk = _attack(trig)
    clean, x = _batches()
    poisoned = atk.poison(clean, trig)
    terms = atk.attack_loss(lambda t: t, clean, poisoned)
    # the attack's generator is seeded from (run seed, component, "pseudo-triggers"): a fresh one from an
    # attack built the same way replays the draw
    ref = _attack(_Shift(pseudo=True)).ctx.generator("pseudo-triggers")
    u = torch.rand(3, 1, 1, 1, generator=ref) * 0.05
    pseudo_in = (x + u).clamp(0, 1)
    expect_clean = (x - clean["target"]).abs().mean()
    expect_backdoor = ((x + 0.1).clamp(0, 1) - degrade_01(x)).abs().mean()
    expect_pseudo = (pseudo_in - clean["target"]).abs().mean()
    torch.testing.assert_close(terms["clean"], expect_clean)
    torch.testing.assert_close(terms["backdoor"], expect_backdoor)
    torch.testing.assert_close(terms["pseudo"], expect_pseudo)
    torch.testing.assert_close(terms["loss"], 0.75 * expect_clean + 0.125 * expect_backdoor + 0.125 * expect_pseudo)
    assert len(trig.calls) == 1 and trig.calls[0] is atk._gen


def test_eq5_without_pseudo_triggers_required_auto_off() -> None:
    from bdcore.errors import ComponentError

    with pytest.raises(ComponentError, match=r"attack\.loss\.params\.pseudo"):
        _attack(_Shift(pseudo=False))  # the default: fail when the run is set up, before any training
    clean, _ = _batches()
    for trig, mode in ((_Shift(pseudo=False), "auto"), (_Shift(pseudo=True), "off")):
        atk = _attack(trig, pseudo=mode)
        terms = atk.attack_loss(lambda t: t, clean, atk.poison(clean, trig))
        assert set(terms) == {"loss", "clean", "backdoor"}, mode
        torch.testing.assert_close(terms["loss"], 0.75 * terms["clean"] + 0.125 * terms["backdoor"])
        assert not trig.calls
    trig = _Shift(pseudo=True)
    atk = _attack(trig, pseudo="auto")
    assert "pseudo" in atk.attack_loss(lambda t: t, clean, atk.poison(clean, trig))
