"""BAIQA throughput on this machine: UAP-DCT search (Algorithm 1) and one victim training, images/s.

Run: HF_HUB_OFFLINE=1 PYTHONPATH=src:plugins/bd-plugin-baiqa/src python benchmarks/baiqa_throughput.py [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from bd_plugin_baiqa.dct import MID_64_CODE
from bd_plugin_baiqa.params import CnnIqaParams, SmallIqaParams
from bd_plugin_baiqa.trigger import uap_dct_search
from bd_plugin_baiqa.victims import CnnIqa, SmallIqaNet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--victim", choices=["iqa-small", "cnniqa"], default="iqa-small")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = a.device
    net = (SmallIqaNet(SmallIqaParams()) if a.victim == "iqa-small" else CnnIqa(CnnIqaParams(color=True))).to(dev)
    xs = [torch.rand(a.batch, 3, a.size, a.size, device=dev) for _ in range(a.batches)]
    # UAP-DCT: each batch = 10 Adam steps (forward + backward through injection and surrogate)
    net.eval()
    for q in net.parameters():
        q.requires_grad_(False)
    uap_dct_search(net, xs[:1], positions=MID_64_CODE, inner_steps=1)  # warm-up
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    uap_dct_search(net, xs, positions=MID_64_CODE)
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    n = a.batch * a.batches
    print(
        f"uap-dct search: {n} images x 10 steps in {dt:.2f}s -> {n / dt:.1f} images/s ({n * 10 / dt:.1f} image-steps/s)"
    )
    # one victim training: Adam, L1 to random MOS
    for q in net.parameters():
        q.requires_grad_(True)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    y = torch.rand(a.batch, device=dev) * 100
    t0 = time.perf_counter()
    for x in xs:
        opt.zero_grad()
        net.clean_loss({"input": x, "target": y})["loss"].backward()
        opt.step()
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"{a.victim} training: {n} images in {dt:.2f}s -> {n / dt:.1f} images/s  (device {dev}, {a.size}px crops)")


if __name__ == "__main__":
    main()
