"""The CompressAI victim under bf16 autocast: its entropy models run in float32 (``keep_fp32``), so the
estimated rate stays what float32 gives while the transforms run in bfloat16."""

import torch
from bd_plugin_bavaft.codec import CompressAIVictim
from bd_plugin_bavaft.params import CodecParams

from bdcore.context import Context
from bdcore.precision import fp32_islands, fp32_modules


def test_entropy_models_stay_float32_under_bf16():
    from compressai.entropy_models import EntropyModel

    v = CompressAIVictim(CodecParams(model="bmshj2018-hyperprior", quality=1, n=16, m=24), Context(seed=0))
    chosen = fp32_modules(v)
    assert chosen and all(isinstance(m, EntropyModel) for m in chosen)
    assert len(chosen) == sum(isinstance(m, EntropyModel) for m in v.modules())  # bottleneck + Gaussian conditional
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    v.eval()  # deterministic rounding instead of training noise, to compare the two precisions
    with torch.no_grad():
        ref = v.rd_terms(x)
        seen = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out[1].dtype)) for m in chosen]
        with fp32_islands([v]), torch.autocast("cpu", dtype=torch.bfloat16):
            half = v.rd_terms(x)
        for h in hooks:
            h.remove()
    assert seen == [torch.float32] * len(chosen)  # likelihoods computed in float32
    assert half["bpp"].dtype == torch.float32
    # the analysis transform ran in bf16, so the latents differ slightly; the rate model did not add error
    torch.testing.assert_close(half["bpp"], ref["bpp"], rtol=0.02, atol=0.0)
