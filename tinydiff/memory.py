"""How much memory a sampling run needs, and how much the machine has: so that ``sample --n 1e8`` is refused in a
second with a clear message instead of swapping the machine to a halt.

A network's memory per sample is measured, not guessed: one forward call on a few samples under ``tracemalloc``
(which sees every NumPy allocation) gives the peak bytes per sample. Measured: ~8 KB per 2D point for the default MLP,
~10 MB per image for the MNIST U-Net (its layers keep their activations for a backward pass).
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
    """Peak bytes one sample costs in one call of ``network(x_t, t[, y])`` (measured on ``probe`` samples)."""
    x = np.zeros((probe, *data_shape))                    # float64, as the samplers pass it
    t = np.zeros(probe, dtype=np.int64)
    args = (x, t) if y is None else (x, t, np.full(probe, y, dtype=np.int64))
    network(*args)                                # once untraced: compilation and caches are not per-sample costs
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    network(*args)
    peak = tracemalloc.get_traced_memory()[1] - base
    if not tracing:
        tracemalloc.stop()
    return max(peak, x.nbytes) / probe


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
