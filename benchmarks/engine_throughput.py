"""Engine throughput at 256²: training images per second through ``bdcore run`` and through a plain,
hand-written PyTorch loop doing the same steps with the same DataLoader settings; peak memory; GPU
utilisation on CUDA. Two victims: a CompressAI codec (``compressai``, bmshj2018-factorized) and a
restoration network (``unet-restorer`` of bd-plugin-asfiba), both trained on 256×256 crops decoded
from PNG files.

    python benchmarks/engine_throughput.py [--device auto] [--steps 12] [--batch 4] [--workers 0]
        [--precision 32|bf16|16-mixed] [--models codec,restorer] [--repeats 2]

On a GPU, something like ``--steps 200 --batch 16 --workers 8 --precision bf16``.

Each measurement is its own subprocess (clean peak memory), plain and engine interleaved. Both sides:

* read the same PNG files (a generated folder of 288² images, or LQ/HQ pairs for the restorer), decode
  them every time (the engine's decoded-image cache is off, ``cache_mb = 0``, as the plain dataset has
  none), take a random 256² crop and a random flip;
* use ``torch.utils.data.DataLoader`` with the same ``num_workers``, ``pin_memory`` (on CUDA),
  ``prefetch_factor`` and ``persistent_workers``, shuffled, last partial batch dropped;
* train the same network with Adam at the same learning rate under the same autocast / GradScaler
  setting: the codec with CompressAI's rate-distortion loss ``R + λ·255²·MSE`` and the auxiliary
  quantile step after every step (as CompressAI's ``examples/train.py``), the restorer with L1.

Images/s is ``steps × batch / seconds`` of the training stage: the engine's ``stage_seconds`` (model
build, loader start, every step, the stage save), the plain loop's from model build to the last step.
On the CPU the table adds images per CPU-second of the main process (with ``--workers 0`` all the work
is there): on a shared machine, waiting for a core does not count, so that ratio is the steadier one.
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, else the main process's peak RSS (workers
not counted). GPU utilisation: mean of ``torch.cuda.utilization()`` sampled every 0.2 s (needs pynvml).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()


# -- data ---------------------------------------------------------------------------------------------------
def make_folders(root: Path, count: int = 64, side: int = 288) -> dict[str, Path]:
    """``root/hq`` (smooth random photos with texture) and ``root/lq`` (noisy, blurred copies), PNG."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(0)
    for name in ("hq", "lq"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = rng.random((side // 16, side // 16, 3))
        img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
        arr = np.clip(np.asarray(img, dtype=np.float64) + rng.normal(0, 6, (side, side, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "hq" / f"{i:03d}.png")
        lq = Image.fromarray(arr).filter(ImageFilter.GaussianBlur(1.5))
        noisy = np.clip(np.asarray(lq, dtype=np.float64) + rng.normal(0, 10, (side, side, 3)), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(root / "lq" / f"{i:03d}.png")
    return {"hq": root / "hq", "lq": root / "lq"}


# -- measuring ----------------------------------------------------------------------------------------------
class GpuSampler:
    """Mean GPU utilisation while the block runs (None without CUDA or pynvml)."""

    def __init__(self, device: str) -> None:
        self.device, self.samples, self.ok = device, [], device.startswith("cuda")
        self._stop = threading.Event()

    def __enter__(self) -> GpuSampler:
        if self.ok:
            import torch

            try:
                torch.cuda.utilization()
            except Exception:  # noqa: BLE001 - pynvml missing or no NVML
                self.ok = False
                return self
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.2):
            self.samples.append(float(torch.cuda.utilization()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.ok and self.samples else None


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the engine side ----------------------------------------------------------------------------------------
SPEC = """
[run]
name = "throughput-{model}"
seed = 0
device = "{device}"
checkpoint_every = 100000
[data]
use = "{data_use}"
params = {data_params}
workers = {workers}
prefetch = {prefetch}
cache_mb = 0
[victim]
use = "{victim_use}"
params = {victim_params}
[train]
steps = {steps}
batch_size = {batch}
lr = 1e-4
precision = "{precision}"
[[metric]]
use = "psnr"
[eval]
limit = 2
batch_size = 2
grid = 0
stealth = false
"""


def engine_side(args: argparse.Namespace, folders: dict[str, Path]) -> dict[str, Any]:
    import contextlib

    from bdcore.engine.run import execute
    from bdcore.engine.runner import Runner
    from bdcore.plugins import load_plugins
    from bdcore.spec.structure import load_spec

    if args.model == "codec":
        data_use, data = "image-folder", f'{{ path = "{folders["hq"]}", crop = 256, flip = true }}'
        victim_use, victim = "compressai", '{ model = "bmshj2018-factorized", quality = 3 }'
    else:
        data_use = "paired-folder"
        data = f'{{ input_dir = "{folders["lq"]}", target_dir = "{folders["hq"]}", crop = 256, flip = true }}'
        victim_use, victim = "unet-restorer", "{ base = 32, depth = 3 }"
    text = SPEC.format(
        model=args.model,
        device=args.device,
        data_use=data_use,
        data_params=data,
        workers=args.workers,
        prefetch=args.prefetch,
        victim_use=victim_use,
        victim_params=victim,
        steps=args.steps,
        batch=args.batch,
        precision=args.precision,
    )
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(text)
        host = load_plugins()
        loaded = load_spec(spec, host.registry)
        cpu: dict[str, float] = {}
        original = Runner.timed

        @contextlib.contextmanager
        def timed(self: Runner, stage: str) -> Any:  # the stage's CPU seconds next to its wall-clock ones
            c0 = time.process_time()
            with original(self, stage):
                yield
            cpu[stage] = time.process_time() - c0

        Runner.timed = timed  # type: ignore[method-assign]
        with GpuSampler(args.device) as gpu:
            result = execute(loaded, host, out_root=Path(tmp) / "runs")
        seconds = json.loads((result.run_dir / "manifest.json").read_text())["stage_seconds"]["clean-victim"]
    return {"seconds": seconds, "cpu_seconds": cpu["clean-victim"], "gpu_util": gpu.mean}


# -- the plain side -----------------------------------------------------------------------------------------
class PlainImages:
    """A hand-written dataset: PNG → uint8 array → random 256² crop (co-cropped pairs) and flip → [0, 1]."""

    def __init__(self, inputs: list[Path], targets: list[Path] | None, crop: int = 256) -> None:
        self.inputs, self.targets, self.crop = inputs, targets, crop
        self.rng = np.random.default_rng()  # reseeded per worker by worker_init below

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch
        from PIL import Image

        x = np.asarray(Image.open(self.inputs[i]).convert("RGB"))
        y = np.asarray(Image.open(self.targets[i]).convert("RGB")) if self.targets else x
        h, w = x.shape[:2]
        top, left = self.rng.integers(0, h - self.crop + 1), self.rng.integers(0, w - self.crop + 1)
        flip = self.rng.random() < 0.5

        def cut(a: np.ndarray) -> torch.Tensor:
            a = a[top : top + self.crop, left : left + self.crop]
            a = a[:, ::-1] if flip else a
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0)

        return {"input": cut(x), "target": cut(y)}


def _worker_init(worker_id: int) -> None:
    import torch

    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed() % 2**32 + worker_id)


def plain_side(args: argparse.Namespace, folders: dict[str, Path]) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    device = torch.device(args.device)
    files = sorted(folders["hq"].glob("*.png"))
    n_train = round(0.8 * len(files))  # the engine's default train_fraction; which files does not matter here
    if args.model == "codec":
        dataset = PlainImages(files[:n_train], None)
    else:
        dataset = PlainImages([folders["lq"] / f.name for f in files[:n_train]], files[:n_train])
    with GpuSampler(args.device) as gpu:
        t0, c0 = time.perf_counter(), time.process_time()
        torch.manual_seed(0)
        if args.model == "codec":
            from compressai.zoo.image import cfgs, model_architectures

            net = model_architectures["bmshj2018-factorized"](*cfgs["bmshj2018-factorized"][3]).to(device)
            lmbda = 0.0067  # CompressAI's λ for quality 3
            main_params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
            aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
            opt = torch.optim.Adam(main_params, lr=1e-4)
            aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
        else:
            from bd_plugin_asfiba.params import UNetRestorerParams
            from bd_plugin_asfiba.victims import UNetRestorer

            net = UNetRestorer(UNetRestorerParams(base=32, depth=3)).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        workers = args.workers
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=args.batch,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=args.prefetch if workers else None,
            persistent_workers=workers > 0,
            worker_init_fn=_worker_init if workers else None,
        )
        dtype = {"bf16": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
        scaler = torch.amp.GradScaler(device.type) if args.precision == "16-mixed" else None
        net.train()
        step = 0
        while step < args.steps:
            for batch in loader:
                x = batch["input"].to(device, non_blocking=True)
                y = batch["target"].to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    if args.model == "codec":
                        out = net(x)
                        num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
                        bpp = sum(torch.log(lk.float()).sum() for lk in out["likelihoods"].values()) / (
                            -np.log(2) * num_pixels
                        )
                        loss = bpp + lmbda * 255**2 * F.mse_loss(out["x_hat"].float(), x)
                    else:
                        loss = F.l1_loss(net(x).float(), y)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                if args.model == "codec":
                    aux_opt.zero_grad(set_to_none=True)
                    net.aux_loss().backward()
                    aux_opt.step()
                step += 1
                if step == args.steps:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "gpu_util": gpu.mean}


# -- driver -------------------------------------------------------------------------------------------------
def one(args: argparse.Namespace) -> None:
    """Child process: one measurement, printed as a JSON line."""
    folders = {"hq": Path(args.data) / "hq", "lq": Path(args.data) / "lq"}
    out = (engine_side if args.side == "engine" else plain_side)(args, folders)
    out["images_per_s"] = args.steps * args.batch / out["seconds"]
    out["images_per_cpu_s"] = args.steps * args.batch / out["cpu_seconds"]
    out["peak_mb"] = peak_memory_mb(args.device)
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--prefetch", type=int, default=2)
    ap.add_argument("--precision", default="32", choices=["32", "bf16", "16-mixed"])
    ap.add_argument("--models", default="codec,restorer")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--side", choices=["engine", "plain"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.side:
        one(args)
        return
    import torch

    card = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    print(
        f"device {args.device} [{card}], precision {args.precision}, steps {args.steps}, batch {args.batch}, "
        f"workers {args.workers}, threads {torch.get_num_threads()}"
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_folders(Path(tmp))
        for _ in range(args.repeats):
            for model in args.models.split(","):
                for side in ("plain", "engine"):  # interleaved: load changes hit both sides
                    cmd = [sys.executable, str(HERE), "--side", side, "--model", model, "--data", tmp]
                    for flag in ("device", "steps", "batch", "workers", "prefetch", "precision"):
                        cmd += [f"--{flag}", str(getattr(args, flag))]
                    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
                    if res.returncode != 0 or line is None:
                        sys.exit(f"{side} {model} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
                    results.setdefault((model, side), []).append(json.loads(line[7:]))
    on_cpu = args.device == "cpu"
    head = f"{'model':10s} {'side':7s} {'images/s':>9s} {'img/CPU-s':>10s} {'peak MB':>9s} {'GPU util':>9s}  runs"
    print(head + " (images/s; images per CPU-second)")
    for model in args.models.split(","):
        rates, cpu_rates = {}, {}
        for side in ("plain", "engine"):
            runs = results[(model, side)]
            rates[side] = statistics.median(r["images_per_s"] for r in runs)
            cpu_rates[side] = statistics.median(r["images_per_cpu_s"] for r in runs)
            peak = max(r["peak_mb"] for r in runs)
            utils = [r["gpu_util"] for r in runs if r["gpu_util"] is not None]
            util = f"{statistics.mean(utils):8.0f}%" if utils else "      n/a"
            each = ", ".join(f"{r['images_per_s']:.3f}; {r['images_per_cpu_s']:.3f}" for r in runs)
            print(f"{model:10s} {side:7s} {rates[side]:9.3f} {cpu_rates[side]:10.3f} {peak:9.0f} {util}  {each}")
        line = f"{model:10s} ratio engine / plain: images/s {rates['engine'] / rates['plain']:.3f}"
        if on_cpu:
            line += f", images per CPU-second {cpu_rates['engine'] / cpu_rates['plain']:.3f}"
        print(line)


if __name__ == "__main__":
    main()
