"""``python -m tinydiff bench threads``: one U-Net training step on 1 thread and on 2, taking turns in one process.

Separate runs at 1 and 2 threads see different machine loads; here the configurations alternate (1 thread, 2 threads
with BLAS 1, 2 threads with BLAS 2, 1 thread, ...) so they share the load, and the table gives each one's median and
its ratio to the 1-thread median of the same run. The losses must agree bit for bit (the parallel kernels compute
every number in the serial order), and the bench stops if they do not.
"""

from __future__ import annotations

import time

import numpy as np

from tinydiff.bench.machine import load_average
from tinydiff.threads import threads_report, use_threads

CONFIGS = {"1 thread": (1, 1), "2 threads, BLAS 1 (train --threads 2)": (2, 1), "2 threads, BLAS 2": (2, 2)}


def compare_threads(batch: int = 64, repeats: int = 6, tiny: bool = False, out=print) -> dict:
    """Median seconds per step for each of CONFIGS, alternating; prints a Markdown table. Returns {name: [s, ...]}."""
    from tinydiff.bench.steps import TrainStep, make_batch, make_unet

    model = make_unet(tiny)
    step = TrainStep(model, *make_batch(model, batch))
    losses = {}
    for name, (n, blas) in CONFIGS.items():          # warm-up: compiles the parallel kernels; the losses are compared
        with use_threads(n, blas):
            losses[name] = step.loss_and_gradients()
    if len(set(losses.values())) != 1:
        raise AssertionError(f"bench threads: the loss differs between thread counts: {losses}")
    times = {name: [] for name in CONFIGS}
    for _ in range(repeats):
        for name, (n, blas) in CONFIGS.items():
            with use_threads(n, blas):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    with use_threads(2, 1):
        out(f"U-Net training step, batch {batch}, {repeats} alternating repeats; load average {load_average()}; "
            f"{threads_report()}")
    base = np.median(times["1 thread"])
    out("| configuration | median ms [min-max] | ratio to 1 thread |\n| --- | --- | --- |")
    for name, t in times.items():
        out(f"| {name} | {1e3 * np.median(t):.0f} [{1e3 * min(t):.0f}-{1e3 * max(t):.0f}] | "
            f"{np.median(t) / base:.2f} |")
    return times
