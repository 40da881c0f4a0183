"""Lab (chapter 13): how the Frechet distance depends on the number of samples.

Two samples of n points from the *same* distribution have a Frechet distance above 0: the means and covariances
fitted to each are noisy, and FD adds their errors up. Its expected value falls roughly like 1/n (Binkowski et al.
2018, Sec. 3 and App. D; Chong & Forsyth 2020), which is why an FD is only comparable at one sample size and why the
chapter reports each metric beside its floor. This lab measures that floor curve.
"""

from __future__ import annotations

import numpy as np

from tinydiff.metrics.images import frechet_distance


def fd_floor_curve(features, sizes=(50, 100, 200, 400), repeats: int = 5, rng=0) -> np.ndarray:
    """The mean FD between two disjoint random subsets of n rows of ``features`` (N, D), for each n in ``sizes``.

    Returns (len(sizes),) floats: the average over ``repeats`` random splits (drawn from ``rng``). Needs
    2 max(sizes) <= N.
    """
    features = np.asarray(features, dtype=np.float64)
    if 2 * max(sizes) > len(features):
        raise ValueError(f"fd_floor_curve: {len(features)} rows cannot give two disjoint subsets of {max(sizes)}")
    ### BEGIN SOLUTION ex13_3: lab, the FD floor against sample size — for each n, average the FD of two disjoint random subsets of n rows over the repeats (chapter 13, 3 points)
    # defines: curve (len(sizes),) floats, the mean FD at each n (use frechet_distance(a, b) and rng.permutation)
    gen = np.random.default_rng(rng)
    curve = np.zeros(len(sizes))
    for i, n in enumerate(sizes):
        for _ in range(repeats):
            idx = gen.permutation(len(features))
            curve[i] += frechet_distance(features[idx[:n]], features[idx[n: 2 * n]]) / repeats
    ### END SOLUTION
    return curve
