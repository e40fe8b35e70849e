"""Train (or reuse) the small DDPM on the 280 Olivetti training faces (32×32) and report the time.

Run: HF_HUB_OFFLINE=1 nice -n 10 .bdenv/base/bin/python benchmarks/diffpure_fit_ddpm.py
"""

import torch
from diffpure_common import get_ddpm

if __name__ == "__main__":
    torch.set_num_threads(1)
    get_ddpm()
