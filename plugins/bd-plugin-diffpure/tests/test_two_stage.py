"""What each purification stage removes, on colour faces, and the ``face-views`` colour face set.

With an oracle ε-model whose x0 prediction is always one fixed image m (another face), every DDNM step gives
x̂0 = m − A⁺(A m − y): the output is (I − A⁺A) m + A⁺y, whose null-space content does not depend on the
input, so the output difference of two inputs is exactly the operator's range projection of their
difference: SR keeps the s×s block means (per channel), colorization keeps the channel mean
(grey). A perturbation that is block-constant and pure chroma survives SR and is removed by colorization; one
that is grey (equal in R, G, B) with zero mean in every block survives colorization and is removed by SR.
The two-stage purifier must remove both; skipping either stage leaves one of them intact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[3] / "../shared/data"


def _colour_faces(n: int = 4, size: int = 16) -> torch.Tensor:
    """``n×3×size×size`` colour face crops in [0.2, 0.8] (bdcore's embedded astronaut portrait, no download)."""
    pytest.importorskip("skimage")
    import torch.nn.functional as F

    from bdcore.data.embedded import load_scene

    img = torch.from_numpy(load_scene("astronaut").copy()).permute(2, 0, 1).float() / 255  # 3×512×512
    crops = [img[:, 40 + 20 * k : 240 + 20 * k, 140 + 10 * k : 340 + 10 * k] for k in range(n)]  # the face
    x = F.interpolate(torch.stack(crops), size=(size, size), mode="area")
    assert float((x - x.mean(1, keepdim=True)).abs().mean()) > 0.03  # real colour, not grey
    return 0.2 + 0.6 * x


def _perturbations(shape: torch.Size, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b, _, h, w = shape
    chroma = torch.randn(b, 3, h // scale, w // scale, generator=g)
    chroma = chroma - chroma.mean(1, keepdim=True)  # zero channel mean: pure chroma
    chroma = chroma.repeat_interleave(scale, 2).repeat_interleave(scale, 3)  # constant in every s×s block
    grey = torch.randn(b, 1, h, w, generator=g)
    block_mean = torch.nn.functional.avg_pool2d(grey, scale)
    grey = (grey - block_mean.repeat_interleave(scale, 2).repeat_interleave(scale, 3)).expand(b, 3, h, w)
    return 0.02 * chroma / chroma.abs().max(), 0.02 * grey / grey.abs().max()


@pytest.mark.parametrize(
    "name,survives",
    [("ddnm-sr", {"chroma": 1.0, "grey": 0.0}), ("ddnm-colorize", {"chroma": 0.0, "grey": 1.0}), ("two-stage", {})],
)
def test_each_stage_removes_its_part_and_two_stage_removes_both(name: str, survives: dict[str, float]) -> None:
    from bd_plugin_diffpure.schedule import alphas_cumprod

    from bdcore.context import Context
    from bdcore.plugins import load_plugins
    from bdcore.spec.structure import structure_params

    comp = load_plugins().registry.get("defense", name)
    params = structure_params(comp, {"steps": 10, "t_start": 200}, path=name, file="<test>")
    defense = comp.build(params, Context(seed=0, component=f"defense:{name}"))
    x = _colour_faces()
    chroma, grey = _perturbations(x.shape, 2)
    acp = alphas_cumprod(1000)

    m = x.flip(-1) * 2 - 1  # the prior's fixed "clean" image, in the sampler's [−1, 1] scale

    def oracle_eps(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = acp[t].view(-1, 1, 1, 1).to(v.dtype)
        return (v - a.sqrt() * m) / (1 - a).sqrt()  # so that x0 = (v − √(1−ᾱ)·ε)/√ᾱ = m

    def run(v: torch.Tensor) -> torch.Tensor:
        return defense.stage_fn(v, 2, oracle_eps, acp, torch.Generator().manual_seed(7))

    base = run(x)
    assert float((base - x).abs().mean()) > 0.01  # it purifies: the null-space content is regenerated
    for part, delta in (("chroma", chroma), ("grey", grey)):
        response = run(x + delta) - base
        kept = float((response * delta).sum() / (delta * delta).sum())
        assert kept == pytest.approx(survives.get(part, 0.0), abs=1e-4), (name, part, kept)


def test_face_views_are_seeded_colour_views_split_per_identity(tmp_path: Path) -> None:
    import numpy as np
    from bd_plugin_diffpure.faces import FaceViews
    from bd_plugin_diffpure.params import FaceViewsParams
    from PIL import Image

    from bdcore.context import Context

    rng = np.random.default_rng(0)
    for k in range(3):
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"p{k}.png")
    (tmp_path / "sketch.png").write_bytes((tmp_path / "photos" / "p0.png").read_bytes())  # not matched

    def make(seed: int) -> dict:
        params = FaceViewsParams(path=tmp_path, pattern="photos/*", size=8, views=10, train_fraction=0.7)
        return FaceViews(params, Context(seed=seed)).splits()

    a, b, c = make(0), make(0), make(1)
    assert len(a["train"]) == 21 and len(a["test"]) == 9
    labels = sorted(a["test"][i]["target"] for i in range(9))
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    first = a["test"][0]["input"]
    assert first.shape == (3, 8, 8) and torch.equal(first, b["test"][0]["input"])
    assert any(not torch.equal(a["test"][i]["input"], c["test"][i]["input"]) for i in range(9))
    views = torch.stack([a["train"][i]["input"] for i in range(len(a["train"])) if a["train"][i]["target"] == 0])
    assert len({v.numpy().tobytes() for v in views}) == len(views)  # distinct crops of one photo


def test_face_views_on_cufs_photos_are_colour() -> None:
    root = SHARED / "face-sketch" / "cuhk_student"
    if not (root / "pairs.csv").is_file():
        pytest.skip(f"CUFS not found at {root}")
    from bd_plugin_diffpure.faces import FaceViews
    from bd_plugin_diffpure.params import FaceViewsParams

    from bdcore.context import Context

    params = FaceViewsParams(path=root.resolve(), pattern="*_photo/*", size=32, train_fraction=0.7, limit=10)
    test = FaceViews(params, Context(seed=0)).splits()["test"]
    x = torch.stack([test[i]["input"] for i in range(len(test))])
    assert len(test) == 30 and x.shape[1:] == (3, 32, 32)
    assert float((x - x.mean(1, keepdim=True)).pow(2).mean().sqrt()) > 0.05  # chroma RMS: colour faces
