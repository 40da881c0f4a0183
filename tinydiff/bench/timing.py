"""The one timer of the benchmarks: callables take turns, and each sample records wall and CPU time.

    times = time_alternating({"ours": step, "torch": torch_step}, repeats=7)
    times["ours"]          # wall seconds per call, one sample per repeat (a list)
    times["ours"].cpu      # CPU seconds per call of the same samples
    fmt_ms(times["ours"])  # "2.91 [2.85-3.40]": median [min-max] in ms

Why alternate: the machine is shared and its load drifts. Timing A for a minute and then B for a minute compares two
different machines; taking turns (A, B, A, B, ...) lets both see the same load, and the ratio of their medians is
then stable even when the absolute times are not.

Why CPU time too: a process that waits for the CPU (other jobs, a busy hypervisor) shows a long wall time but no
more CPU time. When wall and CPU ratios agree, the comparison is sound; when they differ, the machine was busy. CPU
time is the process's (``time.process_time``: every thread, so it also counts BLAS or PyTorch helper threads; with one
thread it is that thread's time).
"""

from __future__ import annotations

import time

import numpy as np


class Samples(list):
    """Wall seconds per call, one per repeat; ``.cpu``: CPU seconds per call of the same repeats."""

    def __init__(self, wall=(), cpu=()):
        super().__init__(wall)
        self.cpu = list(cpu)


def time_alternating(fns: dict, repeats: int = 7, warmup: int = 2, sample_seconds: float = 0.05) -> dict:
    """name -> Samples. Each callable is warmed up (JIT compiles, caches fill), then they take turns for ``repeats``
    rounds; one sample is the mean over n calls, n chosen per callable so that a sample lasts ~``sample_seconds``."""
    calls = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        calls[name] = max(1, int(sample_seconds / max(time.perf_counter() - t0, 1e-6)))
    out = {name: Samples() for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n = calls[name]
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn()
            out[name].cpu.append((time.process_time() - c0) / n)
            out[name].append((time.perf_counter() - w0) / n)
    return out


def median_ms(fn, repeats: int = 5) -> float:
    """Median wall time of one callable in ms (``time_alternating`` with a single entry)."""
    return 1e3 * float(np.median(time_alternating({"f": fn}, repeats=repeats, warmup=1, sample_seconds=0.0)["f"]))


def fmt_ms(samples) -> str:
    """'median [min-max]' in ms."""
    s = 1e3 * np.asarray(samples)
    return f"{np.median(s):.3g} [{s.min():.3g}-{s.max():.3g}]"


def gemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a float32 n x n x n matrix product (BLAS, current thread setting): the machine's practical peak."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    c = np.empty_like(a)
    times = time_alternating({"gemm": lambda: np.matmul(a, b, out=c)}, repeats=repeats, warmup=1)["gemm"]
    return 2.0 * n**3 / float(np.median(times)) / 1e9
