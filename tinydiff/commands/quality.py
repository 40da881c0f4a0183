"""``python -m tinydiff quality``: the 2D quality bar. Train each toy set with the default settings, sample, and test.

For every data set: train ``TrainConfig(data=name)`` (the defaults `train` uses), draw N samples with DDPM over all T
steps, and compare them with N held-out points (a fresh seed) and, as the floor, a second held-out sample:

- MMD^2 (mixture of RBF kernels) and its permutation-test p-value: p > 0.05 means the test cannot tell them apart;
- energy distance and exact W2^2 (on 1000 points), each beside its floor;
- checkerboard: fraction of samples on the black squares; 8 Gaussians: modes covered (>= 1/4 of a fair share within 3 std).

``--markdown FILE`` writes the table (with the command and the machine) for docs/quality_2d.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from tinydiff.commands.common import positive_int, reports_errors

DATASETS = ("moons", "swissroll", "8gaussians", "checkerboard", "circles")
HELDOUT_SEEDS = (10_001, 10_002)  # held-out data never overlap the training seed's stream


def add_arguments(p):
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), help=f"default: {' '.join(DATASETS)}")
    p.add_argument("--n", type=positive_int, default=2000, help="samples and held-out points (default 2000)")
    p.add_argument("--steps", type=positive_int, default=None, help="override the default training steps")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--permutations", type=positive_int, default=500, help="MMD permutation test (default 500)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to this markdown file")
    p.add_argument("--out", type=Path, default=None, help="keep each model and a samples figure in OUT/<dataset>/")


def evaluate(samples: np.ndarray, name: str, n: int, permutations: int = 500, seed: int = 0) -> dict:
    """Metrics of ``samples`` (data units) against held-out draws of the toy set ``name``."""
    from tinydiff.data.toy2d import make_dataset
    from tinydiff.metrics import points as P

    held, held2 = (make_dataset(name, n, rng=s) for s in HELDOUT_SEEDS)
    table = P.metrics_with_floor(samples, held, held2, rng=seed, n_permutations=0)
    mmd2, p = P.mmd_test(samples, held, permutations, rng=seed)
    row = {"mmd2": mmd2, "mmd2_floor": table["mmd2"]["floor"], "p_value": p,
           "energy": table["energy_distance"]["model"], "energy_floor": table["energy_distance"]["floor"],
           "w2": table["w2_squared"]["model"], "w2_floor": table["w2_squared"]["floor"]}
    if name == "checkerboard":
        row["in_support"] = P.in_support_fraction(samples)
    if name in ("8gaussians", "25gaussians"):
        cov = P.modes_covered(samples, name)
        row["modes"] = f"{cov.covered}/{cov.n_modes}"
    return row


def passes(row: dict) -> bool:
    ok = row["p_value"] > 0.05
    if "in_support" in row:
        ok &= row["in_support"] >= 0.97
    if "modes" in row:
        covered, total = row["modes"].split("/")
        ok &= covered == total
    return bool(ok)


def markdown_table(rows: list[dict]) -> str:
    head = ("| data set | steps | train s | sample s | MMD^2 | floor | p-value | energy | floor | W2^2 | floor | extra "
            "| pass |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        extra = (f"in support {r['in_support']:.3f}" if "in_support" in r else
                 f"modes {r['modes']}" if "modes" in r else "")
        lines.append(f"| {r['data']} | {r['steps']} | {r['train_s']:.1f} | {r['sample_s']:.1f} | {r['mmd2']:.2e} | "
                     f"{r['mmd2_floor']:.2e} | {r['p_value']:.3f} | {r['energy']:.2e} | {r['energy_floor']:.2e} | "
                     f"{r['w2']:.3f} | {r['w2_floor']:.3f} | {extra} | {'yes' if passes(r) else 'NO'} |")
    return "\n".join(lines)


def machine() -> str:
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i.get('version', '')} {i.get('architecture', '')}"
                     for i in threadpool_info() if i["user_api"] == "blas")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"numpy {np.__version__}, BLAS: {blas}; load average at the end {os.getloadavg()[0]:.1f}")


@reports_errors
def run(args):
    from tinydiff.commands.sample import draw
    from tinydiff.train import TrainConfig, Trainer

    rows = []
    for name in args.datasets:
        config = TrainConfig(data=name, seed=args.seed)
        if args.steps:
            config.steps = args.steps
        out = args.out / name if args.out else None
        trainer = Trainer(config, out)
        t0 = time.perf_counter()
        trainer.train(progress=False)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with trainer.ema.average_weights():
            samples = draw(trainer.model, trainer.schedule, trainer.standardizer, args.n, seed=args.seed + 1,
                           prediction_type=config.prediction_type)
        sample_s = time.perf_counter() - t0
        row = {"data": name, "steps": config.steps, "train_s": train_s, "sample_s": sample_s,
               **evaluate(samples, name, args.n, args.permutations)}
        rows.append(row)
        print(markdown_table([row]).splitlines()[-1], flush=True)
        if out is not None:
            from tinydiff import viz
            from tinydiff.data.toy2d import make_dataset

            viz.save(viz.data_vs_samples(make_dataset(name, args.n, rng=HELDOUT_SEEDS[0]), samples, title=name),
                     out / "samples.png")
    table = markdown_table(rows)
    print(table)
    if args.markdown is not None:
        command = "python -m tinydiff " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else \
            "python -m tinydiff quality ..."
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"Command: `{command}`\n\nMachine: {machine()}\n\n{table}\n")
        print(f"wrote {args.markdown}")
    return 0 if all(passes(r) for r in rows) else 1
