"""Where a trained BAvAFT trigger puts its energy, and how much of it survives JPEG and blur.

For each bdcore run directory with a trained ``bavaft`` trigger (e.g. from ``bavaft_kodak_attacks.py``),
the trigger is rebuilt from the run's ``spec.resolved.toml`` and its attack stage (``manifest.json``
names the stage key), applied to the run's test images (Kodak, whole images, ``--limit`` of them) and
measured:

* energy share of the change ``x_p − x`` in Y, Cb and Cr (16×16 full-range block DCT, the trigger's own
  domain) and its energy-weighted mean frequency ``u + v`` (0 = DC, 30 = highest);
* survival under each preprocessing t of the evaluation (bd-plugin-baselines' real libjpeg JPEG and its
  Gaussian blur): the projection ``<t(x_p) − t(x), x_p − x> / ‖x_p − x‖²`` (1 = the change passes
  intact, 0 = erased), overall and for the luma / chroma parts of the change.

Usage:
    HF_HUB_OFFLINE=1 python benchmarks/bavaft_trigger_survival.py RUN_DIR [RUN_DIR ...] --limit 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def load_trigger(run: Path, scratch: Path) -> tuple[Any, Any]:
    """The run's trained trigger (eval mode) and its test split; ``scratch`` a throwaway run directory."""
    import bd_plugin_baselines.plugin as baselines
    import bd_plugin_bavaft.plugin as bavaft
    from safetensors.torch import load_file

    from bdcore.engine.runner import Runner
    from bdcore.spec.structure import load_spec
    from bdcore.testing.runner import make_host

    host = make_host([baselines, bavaft])
    loaded = load_spec(run / "spec.resolved.toml", host.registry)
    key = json.loads((run / "manifest.json").read_text())["stages"]["attack"]
    runner = Runner(loaded, host, out_root=run.parent, run_dir=scratch)
    runner.data()
    trigger = runner.build_trigger()
    tensors = load_file(run.parent / ".stages" / f"attack-{key}" / "tensors.safetensors")
    state = {k.removeprefix("trigger."): v for k, v in tensors.items() if k.startswith("trigger.")}
    missing = trigger.load_state_dict(state, strict=False).missing_keys
    if set(missing) - {"gain", "calibrated"}:  # stages saved before init_psnr existed lack only these
        raise SystemExit(f"{run}: attack stage {key} lacks trigger tensors {missing}")
    trigger.eval()
    return trigger, runner.test_set


def survival(trigger: Any, images: Any) -> dict[str, Any]:
    import torch
    from bd_plugin_baselines.defenses.input import gaussian_blur, jpeg
    from bd_plugin_bavaft.dct import image_to_dct, rgb_to_ycbcr

    def ycbcr_change(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """The change in full-range YCbCr (0..255), the trigger's own colour space."""
        return rgb_to_ycbcr(after * 255.0) - rgb_to_ycbcr(before * 255.0)

    with torch.no_grad():
        xp = trigger.inject_trigger(images, generator=torch.Generator().manual_seed(0))
        change = xp - images
        coeffs = image_to_dct(xp, quantize=False) - image_to_dct(images, quantize=False)  # B×3×gh×gw×16×16
        energy = coeffs.pow(2).sum(dim=(0, 2, 3))  # 3×16×16
        u, v = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        uv = (u + v).to(energy.dtype)
        out: dict[str, Any] = {
            "trigger_psnr": float(-10 * torch.log10(change.pow(2).mean())),
            "energy_share_y_cb_cr": [round(float(e), 4) for e in energy.sum((1, 2)) / energy.sum()],
            "mean_uv_y_cb_cr": [round(float((e * uv).sum() / e.sum().clamp_min(1e-30)), 2) for e in energy],
        }
        c_yuv = ycbcr_change(xp, images)
        for name, t in (
            ("jpeg90", lambda z: jpeg(z, 90)),
            ("jpeg50", lambda z: jpeg(z, 50)),
            ("blur0.6", lambda z: gaussian_blur(z, 0.6)),
        ):
            t_xp, t_x = t(xp), t(images)
            after = t_xp - t_x
            a_yuv = ycbcr_change(t_xp, t_x)
            out[f"survival_{name}"] = round(float((after * change).sum() / change.pow(2).sum()), 3)
            out[f"survival_{name}_luma"] = round(float((a_yuv[:, 0] * c_yuv[:, 0]).sum() / c_yuv[:, 0].pow(2).sum()), 3)
            chroma = c_yuv[:, 1:].pow(2).sum()
            out[f"survival_{name}_chroma"] = (
                round(float((a_yuv[:, 1:] * c_yuv[:, 1:]).sum() / chroma), 3) if float(chroma) > 0 else None
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--limit", type=int, default=8, help="test images (Kodak: 768×512 ones first)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    for run in a.runs:
        with tempfile.TemporaryDirectory() as scratch:
            trigger, test = load_trigger(run, Path(scratch))
        items = [test[i]["input"] for i in range(len(test))]
        shape = max({t.shape for t in items}, key=lambda s: sum(t.shape == s for t in items))
        images = torch.stack([t for t in items if t.shape == shape][: a.limit])
        print(json.dumps({"run": str(run), "images": len(images), **survival(trigger, images)}), flush=True)


if __name__ == "__main__":
    main()
