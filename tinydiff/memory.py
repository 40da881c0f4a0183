"""How much memory a sampling run needs, and how much the machine has: so that ``sample --n 1e8`` is refused in a
second with a clear message instead of swapping the machine to a halt.

A network's memory per sample is measured, not guessed: forward calls on a few samples under ``tracemalloc`` (which
sees every NumPy allocation) give the peak bytes per extra sample. Measured: ~2 KB per 2D point for the shipped MLP,
~17 MB per image for the shipped MNIST U-Net (its layers keep their activations for a backward pass).
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np

from tinydiff.errors import TinydiffError


class MemoryLimitError(TinydiffError, MemoryError):
    """A computation would need more memory than the machine has available."""


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable (Linux), capped by a cgroup v2 limit; None if unknown."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free if free is not None else int(limit), int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def bytes_per_sample(network, data_shape, y=None, probe: int = 4) -> float:
    """Bytes one more sample costs in one call of ``network(x_t, t[, y])``: the slope of the peak memory between
    calls on ``probe`` and ``2 probe`` samples (so that fixed costs, such as a weight's transpose, are not counted
    once per sample)."""
    def peak(b: int) -> int:
        x = np.zeros((b, *data_shape))                    # float64, as the samplers pass it
        args = (x, np.zeros(b, dtype=np.int64)) + (() if y is None else (np.full(b, y, dtype=np.int64),))
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        network(*args)
        return tracemalloc.get_traced_memory()[1] - base

    network(np.zeros((probe, *data_shape)), np.zeros(probe, dtype=np.int64),
            *(() if y is None else (np.full(probe, y, dtype=np.int64),)))   # untraced: compilation, caches
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        small, large = peak(probe), peak(2 * probe)
    finally:
        if not tracing:
            tracemalloc.stop()
    slope = (large - small) / probe
    return max(slope if slope > 0 else large / (2 * probe), 8.0 * int(np.prod(data_shape)))


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
