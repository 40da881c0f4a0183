"""How far is a cloud of generated points from the data? Two-sample distances for point clouds (NumPy + SciPy).

Every distance here is returned SQUARED and compares x: (m, D) with y: (n, D):

    mmd2(x, y)               unbiased RBF-kernel MMD^2 (Gretton et al. 2012), mixture of bandwidths
    mmd_test(x, y)           (MMD^2, permutation p-value): "could x and y come from one distribution?"
    energy_distance(x, y)    2 E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo 2013)
    sliced_w2_squared(x, y)  mean over random directions of the 1D W2^2 of the projections
    w2_squared(x, y)         exact W2^2 of the empirical measures (optimal matching), equal sizes, <= W2_MAX_POINTS

A number alone says little: two samples of the SAME distribution are not at distance 0 (sampling noise, and the
finite-sample bias of W2). ``metrics_with_floor`` therefore reports each metric for (model vs held-out) beside its
floor (held-out vs a second held-out sample of the same size). For the toy sets there are also
``in_support_fraction`` (checkerboard) and ``modes_covered`` (Gaussian mixtures).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from tinydiff.data.toy2d import gaussian_mixture_params, in_checkerboard
from tinydiff.errors import PointCloudError  # noqa: F401  (defined in errors.py, re-exported here)
from tinydiff.rng import make_rng

BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # kernel widths, as multiples of the median pairwise distance
MEDIAN_POINTS = 2000  # the median distance is taken over at most this many (evenly spaced) pooled points
W2_MAX_POINTS = 3000  # exact W2 cost grows ~n^3: about 0.7 s at n=1000, 6 s at 2000, 25 s at 3000 (measured)


def _as_points(x, name: str, min_points: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        hint = " (one-dimensional data? use x.reshape(-1, 1))" if x.ndim == 1 else ""
        raise PointCloudError(f"{name} must be a 2D array (N points, D dims), got shape {x.shape}{hint}")
    if len(x) < min_points:
        raise PointCloudError(f"{name} has {len(x)} point(s); this metric needs at least {min_points}")
    if not np.all(np.isfinite(x)):
        raise PointCloudError(f"{name} holds NaN or inf values ({np.sum(~np.isfinite(x))} of them)")
    return x


def _as_pair(x, y, min_points: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_points(x, "x", min_points), _as_points(y, "y", min_points)
    if x.shape[1] != y.shape[1]:
        raise PointCloudError(f"x and y must have the same dimension D, got x {x.shape} and y {y.shape}")
    return x, y


# ---------------------------------------------------------------------------------------------------------------
# MMD with a mixture of RBF kernels


def median_distance(z: np.ndarray) -> float:
    """Median Euclidean distance between distinct points of z (N, D), over at most MEDIAN_POINTS of them."""
    idx = np.unique(np.linspace(0, len(z) - 1, min(len(z), MEDIAN_POINTS)).astype(np.int64))
    d = cdist(z[idx], z[idx])  # (k, k)
    med = float(np.median(d[np.triu_indices(len(idx), k=1)]))
    return med if med > 0 else 1.0  # all points equal: any width will do


def rbf_mixture_kernel(a: np.ndarray, b: np.ndarray, sigmas) -> np.ndarray:
    """k(a, b) = (1/S) sum_s exp(-|a - b|^2 / (2 sigma_s^2)).  a: (N, D), b: (M, D) -> (N, M), with k(a, a) = 1."""
    d2 = cdist(a, b, "sqeuclidean")  # (N, M)
    k, term = np.zeros_like(d2), np.empty_like(d2)
    for s in sigmas:  # in place: for N = 4000 this is 3x faster than allocating a new (N, N) array per width
        np.multiply(d2, -1.0 / (2.0 * s * s), out=term)
        k += np.exp(term, out=term)
    return k / len(sigmas)


def _mmd2_from_sums(s_xx, s_yy, s_xy, m: int, n: int):
    """Gretton et al. (2012) Eq. 3, the unbiased estimate, from kernel sums that leave out the diagonals:

    MMD^2_u = sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (n(n-1)) - 2 sum_{i,j} k(x_i,y_j) / (mn)
    """
    return s_xx / (m * (m - 1)) + s_yy / (n * (n - 1)) - 2.0 * s_xy / (m * n)


def _pooled_kernel(x: np.ndarray, y: np.ndarray, bandwidth_factors) -> np.ndarray:
    z = np.concatenate([x, y])  # (m + n, D)
    sigmas = [f * median_distance(z) for f in bandwidth_factors]
    return rbf_mixture_kernel(z, z, sigmas)  # (m + n, m + n)


def mmd2(x, y, bandwidth_factors=BANDWIDTH_FACTORS) -> float:
    """Unbiased MMD^2 between x (m, D) and y (n, D), kernel widths = factors x median distance of the pooled sample.

    Its expectation is 0 when x and y come from one distribution (so single values can be slightly negative).
    """
    x, y = _as_pair(x, y)
    m = len(x)
    k = _pooled_kernel(x, y, bandwidth_factors)
    k_xx, k_yy, k_xy = k[:m, :m], k[m:, m:], k[:m, m:]
    s_xx = k_xx.sum() - np.trace(k_xx)
    s_yy = k_yy.sum() - np.trace(k_yy)
    return float(_mmd2_from_sums(s_xx, s_yy, k_xy.sum(), m, len(y)))


def mmd_test(x, y, n_permutations: int = 200, rng=0, bandwidth_factors=BANDWIDTH_FACTORS,
             progress: bool = False) -> tuple[float, float]:
    """Permutation two-sample test of H0: x and y come from one distribution. Returns (MMD^2_u, p-value).

    Under H0 the split of the pooled sample into "x" and "y" is arbitrary, so MMD^2 of random re-splits samples its
    null distribution. p = (1 + #{permuted >= observed}) / (1 + n_permutations).

    Fast form: the pooled kernel K (N, N) is computed once. A split is an indicator vector a (1 for "x"), b = 1 - a:
    sum_xx = a^T K a - a.diag(K), sum_xy = a^T K b, sum_yy = b^T K b - b.diag(K); all splits at once with K @ A.
    """
    x, y = _as_pair(x, y)
    if n_permutations < 1:
        raise PointCloudError(f"n_permutations must be >= 1, got {n_permutations}")
    rng = make_rng(rng)
    m, n = len(x), len(y)
    k = _pooled_kernel(x, y, bandwidth_factors)  # (N, N)
    diag, row_sums = np.diag(k).copy(), k.sum(axis=1)  # (N,), (N,)
    total, trace = row_sums.sum(), diag.sum()

    def statistics(a: np.ndarray) -> np.ndarray:  # a: (N, P) split indicators -> (P,) MMD^2 values
        a_k_a = np.einsum("np,np->p", a, k @ a)
        a_k_1 = a.T @ row_sums
        a_diag = a.T @ diag
        s_xx = a_k_a - a_diag
        s_xy = a_k_1 - a_k_a
        s_yy = total - 2.0 * a_k_1 + a_k_a - (trace - a_diag)
        return _mmd2_from_sums(s_xx, s_yy, s_xy, m, n)

    observed = float(statistics(np.r_[np.ones(m), np.zeros(n)][:, None])[0])
    exceed = 0
    chunk = 32 if progress else 256              # the same permutations in the same order either way
    from tqdm.auto import tqdm

    with tqdm(total=n_permutations, desc="MMD permutation test", unit="perm", disable=not progress,
              leave=False) as bar:
        for start in range(0, n_permutations, chunk):
            p = min(chunk, n_permutations - start)
            a = np.zeros((m + n, p))
            for j in range(p):
                a[rng.permutation(m + n)[:m], j] = 1.0
            exceed += int(np.sum(statistics(a) >= observed))
            bar.update(p)
    return observed, (1.0 + exceed) / (1.0 + n_permutations)


# ---------------------------------------------------------------------------------------------------------------
# Energy distance


def _sum_distances(a: np.ndarray, b: np.ndarray, block: int = 2048) -> float:
    """sum_{i,j} |a_i - b_j| in row blocks, so memory stays at block x len(b)."""
    return float(sum(cdist(a[i : i + block], b).sum() for i in range(0, len(a), block)))


def energy_distance(x, y, unbiased: bool = True) -> float:
    """Energy distance D^2(X, Y) = 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo 2013, Eq. 2); 0 iff X ~ Y.

    unbiased=True: the within-sample means leave out the i = j pairs (U-statistics), so E[estimate] = D^2.
    unbiased=False: the plug-in (V-statistic) value; in 1D it equals scipy.stats.energy_distance(x, y) ** 2.
    """
    x, y = _as_pair(x, y)
    m, n = len(x), len(y)
    e_xy = _sum_distances(x, y) / (m * n)
    e_xx = _sum_distances(x, x) / (m * (m - 1) if unbiased else m * m)
    e_yy = _sum_distances(y, y) / (n * (n - 1) if unbiased else n * n)
    return 2.0 * e_xy - e_xx - e_yy


# ---------------------------------------------------------------------------------------------------------------
# Wasserstein-2: exact (small samples) and sliced


def _w2_squared_1d_sorted(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Exact W2^2 between 1D empirical measures, columnwise. xs: (m, P), ys: (n, P) sorted along axis 0 -> (P,).

    W2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du. Both quantile functions are step functions with steps at i/m and j/n,
    so the integral is a weighted sum over the merged steps (plain sorted matching when m = n).
    """
    m, n = len(xs), len(ys)
    if m == n:
        return np.mean((xs - ys) ** 2, axis=0)
    u = np.union1d(np.arange(1, m + 1) / m, np.arange(1, n + 1) / n)  # right ends of the merged steps
    width = np.diff(u, prepend=0.0)  # (K,)
    mid = u - width / 2
    i = np.minimum((mid * m).astype(np.int64), m - 1)
    j = np.minimum((mid * n).astype(np.int64), n - 1)
    return width @ (xs[i] - ys[j]) ** 2


def sliced_w2_squared(x, y, n_projections: int = 128, rng=0) -> float:
    """Sliced W2^2 = E_theta[ W2^2(theta . x, theta . y) ], theta uniform on the unit sphere (Monte Carlo, seeded).

    Each 1D W2^2 is exact (sorting); sizes may differ. For x ~ N(mu1, I), y ~ N(mu2, I): |mu1 - mu2|^2 / D.
    """
    x, y = _as_pair(x, y, min_points=1)
    theta = make_rng(rng).standard_normal((n_projections, x.shape[1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)  # (P, D) unit directions
    xs = np.sort(x @ theta.T, axis=0)  # (m, P)
    ys = np.sort(y @ theta.T, axis=0)  # (n, P)
    return float(np.mean(_w2_squared_1d_sorted(xs, ys)))


def w2_squared(x, y, max_points: int = W2_MAX_POINTS) -> float:
    """Exact W2^2 between the empirical measures of x (n, D) and y (n, D): min over matchings of mean |x_i - y_pi(i)|^2.

    Solved with the Hungarian algorithm (scipy.optimize.linear_sum_assignment). Needs len(x) == len(y) <= max_points
    (the cost grows like n^3; see W2_MAX_POINTS); subsample first, or use sliced_w2_squared, for more.
    """
    x, y = _as_pair(x, y, min_points=1)
    if len(x) != len(y):
        raise PointCloudError(
            f"w2_squared needs equal sample sizes, got {len(x)} and {len(y)}: subsample the larger one "
            "(or use sliced_w2_squared, which accepts different sizes)"
        )
    if len(x) > max_points:
        raise PointCloudError(
            f"w2_squared on {len(x)} points would be slow (limit max_points={max_points}; ~n^3 time): subsample, "
            "raise max_points, or use sliced_w2_squared"
        )
    cost = cdist(x, y, "sqeuclidean")  # (n, n)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def gaussian_w2_squared(mu1, cov1, mu2, cov2) -> float:
    """Closed form W2^2 between N(mu1, S1) and N(mu2, S2) (Dowson & Landau 1982; the Frechet distance):

    W2^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2)
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, float)), np.atleast_2d(np.asarray(cov2, float))
    ### BEGIN SOLUTION ex13_1: Frechet distance — |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2), with the matrix square roots from np.linalg.eigh (symmetric, stable) (chapter 13, 3 points)
    # returns: a Python float >= 0; mu1, mu2 are (D,), cov1, cov2 are (D, D)
    w, v = np.linalg.eigh(cov2)
    s2_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S2^1/2
    cross = np.linalg.eigvalsh(s2_half @ cov1 @ s2_half)  # eigenvalues of S2^1/2 S1 S2^1/2
    trace_term = np.trace(cov1) + np.trace(cov2) - 2.0 * np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + trace_term)
    ### END SOLUTION


# ---------------------------------------------------------------------------------------------------------------
# Reports: each metric beside its floor


def metrics_with_floor(samples, heldout, heldout2, rng=0, n_permutations: int = 100, w2_points: int = 1000) -> dict:
    """Each metric for (samples vs heldout) and its floor (heldout2 vs heldout), at one sample size.

    samples, heldout, heldout2: (N_i, D). All three are cut to n = the smallest N_i (a random subset), because every
    metric depends on n. Exact W2 uses random subsets of size min(n, w2_points) for both rows (it is ~n^3).
    Returns {metric: {"model": value, "floor": value, "n": points used}}; show it with ``format_metric_table``.
    """
    rng = make_rng(rng)
    samples, heldout, heldout2 = (_as_points(a, name) for a, name in
                                  ((samples, "samples"), (heldout, "heldout"), (heldout2, "heldout2")))
    n = min(len(samples), len(heldout), len(heldout2))
    cut = [a[rng.choice(len(a), size=n, replace=False)] for a in (samples, heldout, heldout2)]
    pairs = {"model": (cut[0], cut[1]), "floor": (cut[2], cut[1])}
    n_w2 = min(n, w2_points)
    seed = int(rng.integers(2**31))  # one seed: both rows see the same projections and permutations
    metrics: dict[str, tuple[Callable, int]] = {
        "mmd2": (mmd2, n),
        "energy_distance": (energy_distance, n),
        "sliced_w2_squared": (lambda a, b: sliced_w2_squared(a, b, rng=seed), n),
        "w2_squared": (lambda a, b: w2_squared(a[:n_w2], b[:n_w2]), n_w2),  # cut is already in random order
    }
    if n_permutations > 0:
        metrics["mmd_p_value"] = (lambda a, b: mmd_test(a, b, n_permutations, rng=seed)[1], n)
    return {
        name: {**{row: fn(*pairs[row]) for row in ("model", "floor")}, "n": used}
        for name, (fn, used) in metrics.items()
    }


def format_metric_table(table: dict) -> str:
    """A plain-text table of ``metrics_with_floor`` output: metric, model, floor, n."""
    lines = [f"{'metric':<20}{'model':>12}{'floor':>12}{'n':>7}"]
    for name, row in table.items():
        lines.append(f"{name:<20}{row['model']:>12.4g}{row['floor']:>12.4g}{row['n']:>7d}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Toy-set specific: support and modes


SUPPORTS: dict[str, Callable] = {"checkerboard": in_checkerboard}


def in_support_fraction(samples, support="checkerboard") -> float:
    """Fraction of samples inside a data set's support. support: a name in SUPPORTS or f(points) -> (N,) bool.

    samples must be in DATA units (apply Standardizer.inverse_transform first). The checkerboard data scores 1.0.
    """
    samples = _as_points(samples, "samples", min_points=1)
    if isinstance(support, str):
        if support not in SUPPORTS:
            raise PointCloudError(f"no support test for {support!r}; known: {', '.join(SUPPORTS)} (or pass a function)")
        support = SUPPORTS[support]
    return float(np.mean(support(samples)))


class ModeCoverage(NamedTuple):
    covered: int             # modes holding at least min_fraction of the samples within k std
    n_modes: int             # K
    fractions: np.ndarray    # (K,) fraction of samples within k std of each mode
    in_mode_fraction: float  # fraction of samples within k std of SOME mode ("high-quality" samples)


def modes_covered(samples, dataset: str = "8gaussians", k: float = 3.0, min_fraction: float | None = None):
    """How many modes of a Gaussian-mixture data set the samples cover.

    A sample is "within k std" of mode j if its Mahalanobis distance sqrt((x - mu_j)^T S_j^-1 (x - mu_j)) <= k
    (for an isotropic mode of std s: |x - mu_j| <= k s). Mode j is covered if at least ``min_fraction`` of all
    samples are within k std of it; the default min_fraction is a quarter of a fair share, 0.25 / K.
    samples in DATA units. Returns ModeCoverage(covered, n_modes, fractions, in_mode_fraction).
    """
    samples = _as_points(samples, "samples", min_points=1)
    mix = gaussian_mixture_params(dataset)
    n_modes = len(mix.weights)
    min_fraction = 0.25 / n_modes if min_fraction is None else min_fraction
    diff = samples[:, None, :] - mix.means[None, :, :]  # (N, K, D)
    maha2 = np.einsum("nkd,kde,nke->nk", diff, np.linalg.inv(mix.covs), diff)  # (N, K) squared Mahalanobis
    near = maha2 <= k * k  # (N, K)
    fractions = near.mean(axis=0)
    return ModeCoverage(int(np.sum(fractions >= min_fraction)), n_modes, fractions, float(near.any(axis=1).mean()))
