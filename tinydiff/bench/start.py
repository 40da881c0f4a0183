"""Start-up cost: wall time of fresh processes that import tinydiff and run one MLP training step (batch 256)."""

from __future__ import annotations

import subprocess
import sys
import time

START_CODE = """
import time; t0 = time.perf_counter()
import numpy as np
from tinydiff.bench import TrainStep, make_batch, make_mlp
model = make_mlp()
TrainStep(model, *make_batch(model, 256))()
print(time.perf_counter() - t0)
"""

TORCH_START_CODE = """
import time; t0 = time.perf_counter()
import torch
model = torch.nn.Sequential(torch.nn.Linear(384, 128), torch.nn.GELU(), torch.nn.Linear(128, 2))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss = ((model(torch.randn(256, 384)) - torch.randn(256, 2)) ** 2).mean(); loss.backward(); opt.step()
print(time.perf_counter() - t0)
"""


def cold_start(vs_torch: bool = False) -> list[str]:
    """Two fresh processes each (the second finds Numba's cache warm; the first shows a cold start if it was cold)."""
    lines = []
    runs = [("tinydiff", START_CODE)] + ([("PyTorch (a 2-layer MLP step)", TORCH_START_CODE)] if vs_torch else [])
    for label, code in runs:
        walls = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - t0)
        target = " (target for tinydiff's second: < 2 s)" if label == "tinydiff" else ""
        lines.append(f"cold start, {label}: first process {walls[0]:.2f} s, second process {walls[1]:.2f} s{target}")
    return lines
