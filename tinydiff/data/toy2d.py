"""Toy 2D data sets: the point clouds every diffusion tutorial starts with, plus the scaling that goes with them.

Every generator has the same signature, ``f(n, rng=None, ...) -> (n, 2) float64``, where ``rng`` is None, an int seed
or a ``numpy.random.Generator`` (see ``tinydiff.rng``). Pick one by name::

    x = make_dataset("moons", 10_000, rng=0)                       # (10000, 2)
    x, y = make_dataset("8gaussians", 1000, rng=0, return_labels=True)  # y: (1000,) int64 mode index

The Gaussian mixtures ("8gaussians", "25gaussians") expose their exact parameters through
``gaussian_mixture_params(name)`` so that the analytic denoiser (``tinydiff.analytic``) can use the same numbers,
and the checkerboard has ``in_checkerboard(points)`` for the "fraction of samples in the support" metric.

Units: the sets live in roughly [-3, 3]^2. Training code standardises them with ``Standardizer`` and stores its
``to_dict()`` beside the weights, so that generated samples are mapped back to these units before evaluation.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tinydiff.analytic import GaussianMixture
from tinydiff.errors import DatasetError
from tinydiff.rng import make_rng


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DatasetError(f"n (the number of points) must be a positive integer, got {n!r}")
    return int(n)


def _split(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labels for n points spread as evenly as possible over k groups, in random order. Returns (n,) int64."""
    labels = np.arange(n, dtype=np.int64) % k
    return rng.permutation(labels)


# ---------------------------------------------------------------------------------------------------------------
# Shapes defined by a curve plus noise


def moons(n, rng=None, noise: float = 0.05, return_labels: bool = False):
    """Two interleaving half circles (as in scikit-learn's ``make_moons``), centred on the origin.

    Upper moon (label 0): (cos s, sin s), s ~ U(0, pi). Lower moon (label 1): (1 - cos s, 0.5 - sin s).
    Both are then shifted by (-0.5, -0.25) so the pair is centred, and get isotropic N(0, noise^2) noise.
    """
    n, rng = _check_n(n), make_rng(rng)
    y = _split(n, 2, rng)
    s = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(s), np.sin(s)], axis=1)  # (n, 2)
    lower = np.stack([1.0 - np.cos(s), 0.5 - np.sin(s)], axis=1)  # (n, 2)
    x = np.where(y[:, None] == 0, upper, lower) + np.array([-0.5, -0.25])
    x += noise * rng.standard_normal((n, 2))
    return (x, y) if return_labels else x


def swiss_roll(n, rng=None, noise: float = 0.25):
    """The 2D Swiss roll: the spiral (t cos t, t sin t) / 5 with t ~ U(1.5 pi, 4.5 pi), plus N(0, (noise/5)^2) noise.

    The division by 5 brings the roll into about [-3, 3]^2.
    """
    n, rng = _check_n(n), make_rng(rng)
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)  # (n, 2)
    x += noise * rng.standard_normal((n, 2))
    return x / 5.0


def circles(n, rng=None, radii=(1.0, 2.0), noise: float = 0.03, return_labels: bool = False):
    """Concentric rings: continuous circles (angle ~ U(0, 2 pi)) with N(0, noise^2) noise on the RADIUS only.

    Points are shared out between the rings in proportion to their circumference, so the density along every ring
    is the same. Label i means the point lies on the ring of radius ``radii[i]``.
    """
    n, rng = _check_n(n), make_rng(rng)
    radii = np.asarray(radii, dtype=np.float64)
    y = rng.choice(len(radii), size=n, p=radii / radii.sum()).astype(np.int64)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    r = radii[y] + noise * rng.standard_normal(n)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)  # (n, 2)
    return (x, y) if return_labels else x


# ---------------------------------------------------------------------------------------------------------------
# Gaussian mixtures: known parameters, so exact scores and denoisers exist (``analytic.GaussianMixture`` holds them)


def _isotropic_mixture(means: np.ndarray, std: float) -> GaussianMixture:
    k, d = means.shape
    return GaussianMixture(means=means, covs=np.tile(std**2 * np.eye(d), (k, 1, 1)), weights=np.full(k, 1.0 / k))


# 8 Gaussians: centres at radius 2 and angles 0, 45, ..., 315 degrees; std 0.1 (the modes are ~15 std apart).
_angles = 2.0 * np.pi * np.arange(8) / 8
EIGHT_GAUSSIANS = _isotropic_mixture(2.0 * np.stack([np.cos(_angles), np.sin(_angles)], axis=1), std=0.1)

# 25 Gaussians: centres on the 5 x 5 grid {-2, -1, 0, 1, 2}^2; std 0.1 (10 std between neighbours).
_grid = np.arange(-2.0, 3.0)
TWENTY_FIVE_GAUSSIANS = _isotropic_mixture(np.array([(a, b) for a in _grid for b in _grid]), std=0.1)

MIXTURES: dict[str, GaussianMixture] = {"8gaussians": EIGHT_GAUSSIANS, "25gaussians": TWENTY_FIVE_GAUSSIANS}


def eight_gaussians(n, rng=None, return_labels: bool = False):
    """Eight Gaussians (std 0.1) on the circle of radius 2. Label k: the mode at angle k * 45 degrees."""
    return EIGHT_GAUSSIANS.sample(_check_n(n), rng, return_labels)


def twenty_five_gaussians(n, rng=None, return_labels: bool = False):
    """25 Gaussians (std 0.1) on the grid {-2..2}^2. Label k = 5 * i + j for the centre (i - 2, j - 2)."""
    return TWENTY_FIVE_GAUSSIANS.sample(_check_n(n), rng, return_labels)


def gaussian_mixture_params(name: str) -> GaussianMixture:
    """The exact parameters (means (K, 2), covs (K, 2, 2), weights (K,)) of a mixture data set, e.g. "8gaussians"."""
    key = _normalise(name)
    if key not in MIXTURES:
        raise DatasetError(
            f"{name!r} is not a Gaussian-mixture data set; the mixtures are: {', '.join(MIXTURES)}"
        )
    return MIXTURES[key]


# ---------------------------------------------------------------------------------------------------------------
# Checkerboard


CHECKERBOARD_SIZE = 4  # a 4 x 4 board of unit cells covering [-2, 2]^2; half the cells are filled


def in_checkerboard(points: np.ndarray) -> np.ndarray:
    """True where a point lies in the checkerboard's support: inside [-2, 2]^2 and floor(x) + floor(y) is even.

    points: (N, 2) in data units (undo any standardisation first). Returns (N,) bool.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise DatasetError(f"in_checkerboard expects points of shape (N, 2), got {points.shape}")
    half = CHECKERBOARD_SIZE / 2
    inside = np.all(np.abs(points) <= half, axis=1)
    cell = np.floor(points).astype(np.int64)  # (N, 2) integer cell corner
    return inside & ((cell[:, 0] + cell[:, 1]) % 2 == 0)


def checkerboard(n, rng=None):
    """Uniform on the filled cells of a 4 x 4 board over [-2, 2]^2 (cells whose corner (i, j) has i + j even)."""
    n, rng = _check_n(n), make_rng(rng)
    half = CHECKERBOARD_SIZE // 2
    corners = np.array(
        [(i, j) for i in range(-half, half) for j in range(-half, half) if (i + j) % 2 == 0], dtype=np.float64
    )  # (8, 2)
    cell = rng.integers(len(corners), size=n)
    return corners[cell] + rng.uniform(size=(n, 2))


# ---------------------------------------------------------------------------------------------------------------
# The registry


DATASETS: dict[str, Callable] = {
    "moons": moons,
    "swissroll": swiss_roll,
    "circles": circles,
    "8gaussians": eight_gaussians,
    "25gaussians": twenty_five_gaussians,
    "checkerboard": checkerboard,
}
LABELLED = ("moons", "circles", "8gaussians", "25gaussians")  # the sets that accept return_labels=True


def _normalise(name: str) -> str:
    """'Swiss-Roll', 'swiss_roll' and 'swissroll' all name the same set."""
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


def is_dataset_name(name) -> bool:
    """True if ``name`` names a built-in toy data set (spelling of case, '-' and '_' does not matter)."""
    return isinstance(name, str) and _normalise(name) in DATASETS


def make_dataset(name: str, n: int, rng=None, return_labels: bool = False):
    """Draw n points from the toy data set ``name``. Returns (n, 2) float64, or ((n, 2), (n,) int64) with labels."""
    key = _normalise(name)
    if key not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; the known data sets are: {', '.join(DATASETS)}")
    if return_labels:
        if key not in LABELLED:
            raise DatasetError(
                f"data set {key!r} has no labels; return_labels=True works for: {', '.join(LABELLED)}"
            )
        return DATASETS[key](n, rng, return_labels=True)
    return DATASETS[key](n, rng)


# ---------------------------------------------------------------------------------------------------------------
# Standardisation, stored with the model


class Standardizer:
    """x_std = (x - mean) / std per feature, fitted on the training data and stored beside the weights.

    ``to_dict()`` gives plain arrays ({"mean", "std"}) for a .npz checkpoint; ``from_dict`` rebuilds the object, so
    samples drawn from a loaded model are mapped back to data units with ``inverse_transform``.
    A feature with zero spread gets std 1 (it is only centred), so the transform is always invertible.
    """

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        if self.std is not None and not (np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise DatasetError(f"Standardizer std must be finite and positive, got {self.std}")
        if self.mean is not None and self.std is not None and self.mean.shape != self.std.shape:
            raise DatasetError(f"Standardizer mean {self.mean.shape} and std {self.std.shape} must have one shape")

    def fit(self, x: np.ndarray) -> "Standardizer":
        """Learn mean and std over the first axis of x: (N, ...) -> mean, std: (...)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 1 or x.shape[0] < 2:
            raise DatasetError(f"Standardizer.fit needs at least 2 samples along axis 0, got shape {x.shape}")
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _require_fit(self):
        if self.mean is None or self.std is None:
            raise DatasetError("this Standardizer is not fitted: call fit(x) or build it with from_dict(d) first")

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(x - mean) / std, same shape as x."""
        self._require_fit()
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def inverse_transform(self, x_std: np.ndarray) -> np.ndarray:
        """x_std * std + mean: back to data units."""
        self._require_fit()
        return np.asarray(x_std, dtype=np.float64) * self.std + self.mean

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).transform(x)

    def to_dict(self) -> dict[str, np.ndarray]:
        """{"mean": array, "std": array}: plain arrays, safe to store in a .npz file (no pickle)."""
        self._require_fit()
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_dict(cls, d) -> "Standardizer":
        """Rebuild from ``to_dict()`` output (or a loaded .npz with the keys "mean" and "std")."""
        missing = [k for k in ("mean", "std") if k not in d]
        if missing:
            raise DatasetError(f"Standardizer.from_dict: missing key(s) {missing}; expected the keys 'mean' and 'std'")
        return cls(mean=d["mean"], std=d["std"])

    def __repr__(self) -> str:
        return f"Standardizer(mean={self.mean}, std={self.std})"
