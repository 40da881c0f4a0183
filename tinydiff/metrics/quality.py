"""The 2D quality bar: metrics of a model's samples against held-out draws of its toy set, and whether they pass.

For a data set, compare N samples with N held-out points (a fresh seed) and, as the floor, a second held-out sample:

- MMD^2 (mixture of RBF kernels) and its permutation-test p-value: p > 0.05 means the test cannot tell them apart;
- energy distance and exact W2^2 (on 1000 points), each beside its floor;
- checkerboard: fraction of samples on the filled squares; 8 Gaussians: modes covered (>= 1/4 of a fair share
  within 3 std).

``python -m tinydiff quality`` trains each toy set with the defaults and prints :func:`markdown_table`
(docs/quality_2d.md); the demo and the tests call :func:`evaluate` and :func:`passes` directly.
"""

from __future__ import annotations

import sys

import numpy as np

DATASETS = ("moons", "swissroll", "8gaussians", "checkerboard", "circles")
HELDOUT_SEEDS = (10_001, 10_002)  # held-out data never overlap the training seed's stream


def evaluate(samples: np.ndarray, name: str, n: int, permutations: int = 500, seed: int = 0,
             progress: bool = False) -> dict:
    """Metrics of ``samples`` (data units) against held-out draws of the toy set ``name``."""
    from tinydiff.data.toy2d import make_dataset
    from tinydiff.metrics import points as P

    if progress:
        print(f"evaluating {len(samples)} samples: MMD, energy distance and W2 against held-out data ...",
              file=sys.stderr, flush=True)
    held, held2 = (make_dataset(name, n, rng=s) for s in HELDOUT_SEEDS)
    table = P.metrics_with_floor(samples, held, held2, rng=seed, n_permutations=0)
    mmd2, p = P.mmd_test(samples, held, permutations, rng=seed, progress=progress)
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
    """p > 0.05, and checkerboard in support >= 0.97, and 8 Gaussians every mode covered."""
    ok = row["p_value"] > 0.05
    if "in_support" in row:
        ok &= row["in_support"] >= 0.97
    if "modes" in row:
        covered, total = row["modes"].split("/")
        ok &= covered == total
    return bool(ok)


def markdown_table(rows: list[dict]) -> str:
    """One markdown row per data set (rows: :func:`evaluate` output plus data, steps, train_s and sample_s, and
    optionally sampler and nfe)."""
    head = ("| data set | steps | sampler (NFE) | train s | sample s | MMD^2 | floor | p-value | energy | floor | W2^2 "
            "| floor | extra | pass |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        extra = (f"in support {r['in_support']:.3f}" if "in_support" in r else
                 f"modes {r['modes']}" if "modes" in r else "")
        lines.append(f"| {r['data']} | {r['steps']} | {r.get('sampler', 'ddpm')} ({r.get('nfe', '?')}) | "
                     f"{r['train_s']:.1f} | {r['sample_s']:.1f} | {r['mmd2']:.2e} | "
                     f"{r['mmd2_floor']:.2e} | {r['p_value']:.3f} | {r['energy']:.2e} | {r['energy_floor']:.2e} | "
                     f"{r['w2']:.3f} | {r['w2_floor']:.3f} | {extra} | {'yes' if passes(r) else 'NO'} |")
    return "\n".join(lines)
