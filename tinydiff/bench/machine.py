"""The one machine report printed with every benchmark and quality table: what ran, where, and under what load.

Benchmark numbers mean little without the CPU (model and cores), the load from other jobs, the library versions and
which BLAS kernel is active (OpenBLAS picks one per CPU; ``OPENBLAS_CORETYPE`` can force an older, slower one) with
how many threads. ``machine_report`` gives those as lines, ``machine_summary`` as one line.
"""

from __future__ import annotations

import os
import platform

import numpy as np

from tinydiff.threads import blas_info

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux; ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:                                         # Windows
        return "unknown"


def machine_report(threads: int | None = None) -> list[str]:
    """Lines: CPU and load; Python, NumPy, Numba; BLAS (kernel, threads); BLAS variables set in the environment."""
    import numba

    kernels = (f"tinydiff's kernels on {threads} Numba threads" if threads and threads > 1 else
               "one thread: tinydiff runs its serial kernels, Numba starts no thread pool")
    lines = [f"machine: {cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, load average {load_average()}",
             f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__} "
             f"({kernels})",
             blas_info() + ("" if threads is None else f"   [limit asked for this run: {threads}]")]
    for var in BLAS_ENV:
        if var in os.environ:
            lines.append(f"{var}={os.environ[var]} (set in the environment; the benchmarks never change it)")
    return lines


def machine_summary() -> str:
    """One line: CPU, cores, versions, BLAS, load average (for the Markdown tables that commands write)."""
    import numba

    return (f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {numba.__version__}, {blas_info()}; load average {load_average()}")
