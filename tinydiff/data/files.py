"""Your own point cloud: load an (N, D) array from a ``.npy`` or ``.csv`` file, or name a toy data set.

    x = load_point_file("my_points.csv")              # (N, D) float64
    x = load_points("moons", n=5000, rng=0)           # a toy set by name (tinydiff.data.toy2d)
    x = load_points("my_points.npy", n=5000, rng=0)   # a random subset of 5000 rows of your file

This is what the CLI's ``--data moons|...|PATH.npy|PATH.csv`` calls.

File formats:
- ``.npy``: a 2D numeric array (N, D), saved with ``np.save``. Object arrays are refused (no pickle is ever loaded).
- ``.csv``: comma-separated numbers, one point per line, D columns; an optional first line of column names is skipped.
  UTF-8 with or without a byte-order mark (spreadsheet programs write one).

Coordinates must be finite and below ``MAX_ABS`` in size: training standardises them, and the squares of larger
values overflow float64 (their standard deviation would be inf, and the model useless).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinydiff.data.toy2d import DATASETS, is_dataset_name, make_dataset
from tinydiff.errors import DatasetError
from tinydiff.rng import make_rng

EXTENSIONS = (".npy", ".csv")
MIN_POINTS = 2  # fewer points than this cannot be standardised or split
MAX_ABS = 1e150  # larger coordinates cannot be standardised: x^2 > 1e300 leaves float64's range (1.8e308) when summed
CSV_ENCODING = "utf-8-sig"  # UTF-8 that drops a leading byte-order mark (else "\ufeff1.5" is not a number)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # corrupt, truncated, not .npy at all, or an object (pickle) array
        raise DatasetError(
            f"{path}: not a readable .npy file of numbers ({type(err).__name__}: {err}). "
            "Re-save it with np.save(path, np.asarray(points, dtype=float)); pickled object arrays are never loaded."
        ) from err


def _csv_has_header(path: Path) -> bool:
    """True if the first non-empty line does not parse as comma-separated numbers (so it is a header)."""
    with open(path, encoding=CSV_ENCODING, errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    [float(v) for v in line.strip().split(",")]
                    return False
                except ValueError:
                    return True
    return False


def _read_csv(path: Path) -> np.ndarray:
    try:
        skip = 1 if _csv_has_header(path) else 0
        return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64, encoding=CSV_ENCODING)
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetError(
            f"{path}: could not parse as CSV numbers ({err}). Expected one point per line, D comma-separated "
            "numbers per line, the same D on every line, and at most one header line."
        ) from err
    except OSError as err:
        raise DatasetError(f"{path}: could not read the file ({err})") from err


def load_point_file(path, min_points: int = MIN_POINTS) -> np.ndarray:
    """Load an (N, D) point cloud (D >= 1) from ``path`` (.npy or .csv). Returns a float64 array (N, D).

    Raises DatasetError (a ValueError) with the reason and the fix when the file is missing, unreadable, not 2D,
    not numeric, holds NaN or inf or values beyond ``MAX_ABS``, or has fewer than ``min_points`` points.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise DatasetError(f"{path}: unknown file type {ext!r}; point files must end in {' or '.join(EXTENSIONS)}")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (looked in {path.resolve().parent})")
    raw = _read_npy(path) if ext == ".npy" else _read_csv(path)
    if raw.ndim != 2:
        hint = " (a single column? use array.reshape(-1, 1))" if raw.ndim == 1 else ""
        raise DatasetError(f"{path}: expected a 2D array (N points, D dims), got shape {raw.shape}{hint}")
    if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_) or np.iscomplexobj(raw):
        raise DatasetError(f"{path}: expected real numbers, got dtype {raw.dtype}")
    x = raw.astype(np.float64)
    if x.shape[1] < 1:
        raise DatasetError(f"{path}: the points have no coordinates (shape {x.shape}); need D >= 1 columns")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DatasetError(
            f"{path}: {bad.sum()} non-finite value(s) (NaN or inf), first in row(s) {rows[:5].tolist()}; "
            "remove or fill those rows"
        )
    big = np.abs(x).max(initial=0.0)
    if big > MAX_ABS:
        raise DatasetError(
            f"{path}: coordinates as large as {big:.3g}; tinydiff standardises the data, and values beyond "
            f"{MAX_ABS:.0e} overflow (their standard deviation is inf). Rescale the points first, e.g. divide them by "
            f"{10.0 ** np.floor(np.log10(big)):.0e}"
        )
    if len(x) < min_points:
        raise DatasetError(f"{path}: only {len(x)} point(s); need at least {min_points}")
    return x


def load_points(spec, n: int | None = None, rng=None) -> np.ndarray:
    """Points from a toy data set name ("moons", ...) or a file path (.npy / .csv). Returns (n, D) float64.

    For a data set name, ``n`` points are generated (n is required). For a file, ``n=None`` returns every row and an
    integer n returns n rows drawn at random without replacement (an error if the file has fewer than n rows).
    """
    if is_dataset_name(spec):
        if n is None:
            raise DatasetError(f"load_points({spec!r}): give n, the number of points to generate")
        return make_dataset(spec, n, rng)
    path = Path(spec)
    if path.suffix.lower() not in EXTENSIONS:
        raise DatasetError(
            f"{str(spec)!r} is neither a data set name nor a .npy/.csv file; "
            f"known data sets: {', '.join(DATASETS)}, and mnist (images: `train --data mnist`, the U-Net); "
            f"or give a path ending in {' or '.join(EXTENSIONS)}"
        )
    x = load_point_file(path)
    if n is None:
        return x
    if n > len(x):
        raise DatasetError(f"{path}: asked for n={n} points but the file holds only {len(x)}; use n <= {len(x)}")
    rows = make_rng(rng).choice(len(x), size=n, replace=False)
    return x[np.sort(rows)]
