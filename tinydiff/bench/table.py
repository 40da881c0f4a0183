"""The benchmark table: one Row per benchmark and batch, printed as Markdown with medians, ranges and ratios."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinydiff.bench.timing import fmt_ms

TARGETS = {"mlp": 0.5, "unet": 0.8, "sample": 1.0}      # median time ratio tinydiff / PyTorch to reach
LARGE_BATCH_TARGETS = {"mlp": (1024, 0.6)}               # from this batch size on, this target instead
ROW_TARGETS = {"unet (channels_last)": 1.0,              # against PyTorch's faster layout
               "sample unet": 0.8}                       # one U-Net evaluation (issue 19)


def target_for(bench: str, batch: int) -> float | None:
    """The ratio to reach for a row (None for rows shown for comparison, such as the layer-by-layer MLP step)."""
    name = bench.split()[0]
    if "(layers)" in bench or name not in TARGETS:
        return None
    if bench in ROW_TARGETS:
        return ROW_TARGETS[bench]
    big = LARGE_BATCH_TARGETS.get(name)
    return big[1] if big and batch >= big[0] else TARGETS[name]


@dataclass
class Row:
    """One line of the table: a benchmark at one batch size. ``ours``/``torch``: seconds per call, one per sample
    (``timing.Samples``, whose ``.cpu`` gives the CPU seconds, or plain lists)."""

    bench: str
    batch: int
    ours: list
    torch: list | None = None
    gflop: float | None = None   # per call, for GFLOP/s
    note: str = ""

    def ratio(self) -> float | None:
        """Ratio of the median wall times, tinydiff / PyTorch."""
        return float(np.median(self.ours) / np.median(self.torch)) if self.torch else None

    def cpu_ratio(self) -> float | None:
        """Ratio of the median CPU times (None without PyTorch or without CPU samples)."""
        ours, theirs = getattr(self.ours, "cpu", None), getattr(self.torch, "cpu", None)
        return float(np.median(ours) / np.median(theirs)) if ours and theirs else None


def format_table(rows: list[Row], peak: float | None = None) -> str:
    """A Markdown table: ms as median [min-max], ratio of medians (wall, and CPU), GFLOP/s of tinydiff's products."""
    lines = ["| benchmark | batch | tinydiff ms | PyTorch ms | ratio | CPU ratio | target | tinydiff GFLOP/s | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio, cpu, target = r.ratio(), r.cpu_ratio(), target_for(r.bench, r.batch)
        verdict = "" if ratio is None or target is None else (" ok" if ratio <= target else " MISSED")
        gf = ""
        if r.gflop:
            rate = r.gflop / float(np.median(r.ours))
            gf = f"{rate:.0f}" + (f" ({100 * rate / peak:.0f}% of peak)" if peak else "")
        lines.append(f"| {r.bench} | {r.batch} | {fmt_ms(r.ours)} | {fmt_ms(r.torch) if r.torch else '-'} | "
                     f"{f'{ratio:.2f}' if ratio is not None else '-'}{verdict} | "
                     f"{f'{cpu:.2f}' if cpu is not None else '-'} | "
                     f"{f'<= {target}' if target else '-'} | {gf or '-'} | {r.note} |")
    return "\n".join(lines)
