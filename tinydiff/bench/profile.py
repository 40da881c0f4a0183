"""Where the time of a training step goes: ``Trainer.step`` timed, then profiled (``python -m tinydiff quality
--profile``)."""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path


def profile_train_step(batch_sizes=(256, 1024), steps: int = 200, out=print) -> None:
    """Time ``Trainer.step`` on moons (1 BLAS thread, after 30 warm-up steps), then print the ten functions with the
    most self time under cProfile, as a share of the total."""
    from tinydiff.bench.machine import machine_report
    from tinydiff.threads import blas_threads
    from tinydiff.train import TrainConfig, Trainer

    for line in machine_report(1):
        out(line)
    for batch in batch_sizes:
        trainer = Trainer(TrainConfig(data="moons", steps=10**6, batch_size=batch, n_train=5000))
        with blas_threads(1):
            for _ in range(30):
                trainer.step()
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.step()
            ms = (time.perf_counter() - t0) / steps * 1e3
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(steps):
                trainer.step()
            profiler.disable()
        stats = pstats.Stats(profiler)
        rows = sorted(((v[2], f"{Path(k[0]).name}:{k[2]}") for k, v in stats.stats.items()), reverse=True)[:10]
        out(f"batch {batch}: {ms:.2f} ms per training step (without the profiler); self time under cProfile:")
        for seconds, name in rows:
            out(f"  {100 * seconds / stats.total_tt:5.1f}%  {name}")
