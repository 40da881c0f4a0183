"""Checkpoints: one ``.npz`` file of plain arrays (never pickle), written atomically.

Everything a run needs to continue bit-for-bit or to sample lives in one flat dict of arrays, grouped by a prefix::

    model/<param>        the training weights                 ema/<...>        the EMA's shadow weights and counters
    optim/<...>          the optimiser's step count, m and v  log/<...>        the loss history
    standardizer/mean, standardizer/std                        schedule/betas, schedule/zero_terminal_snr
    meta/step            int                                   meta/config      JSON text (the TrainConfig)
    meta/rng             JSON text: numpy's bit_generator.state (so the batch, t and noise draws continue exactly)
    meta/version         tinydiff.__version__                  meta/format      CHECKPOINT_FORMAT

Writing is atomic: the arrays go to a temporary file in the same folder, which is flushed to disk and then renamed over
the old checkpoint with ``os.replace`` (atomic on POSIX and Windows). A crash mid-write leaves the old file intact and
at worst a stray ``.tmp`` file. Loading uses ``allow_pickle=False``: a checkpoint can never execute code.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tinydiff import __version__
from tinydiff.errors import CheckpointError  # noqa: F401  (defined in errors.py, re-exported here)

CHECKPOINT_FORMAT = 1


# ---- grouping a flat dict by prefix ------------------------------------------------------------------------------
def flatten(groups: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{"model": {"input.weight": w}} -> {"model/input.weight": w}."""
    return {f"{g}/{k}": np.asarray(v) for g, d in groups.items() for k, v in d.items()}


def group(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries under ``prefix/`` with the prefix removed."""
    p = prefix + "/"
    return {k[len(p):]: v for k, v in arrays.items() if k.startswith(p)}


def json_array(obj) -> np.ndarray:
    """A JSON-able object as a 0-d unicode array (stored in .npz without pickle)."""
    return np.array(json.dumps(obj))


def from_json_array(a: np.ndarray):
    return json.loads(str(a[()]))


# ---- writing and reading -----------------------------------------------------------------------------------------
def save_checkpoint(path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (flat name -> array; add meta/version and meta/format) to ``path`` atomically. Returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(arrays)
    arrays["meta/version"] = np.array(__version__)
    arrays["meta/format"] = np.array(CHECKPOINT_FORMAT)
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise CheckpointError(f"checkpoint entry {k!r} is an object array; store numbers or JSON text instead")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                  # the atomic step: readers see the old file or the new one, never half
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path) -> dict[str, np.ndarray]:
    """Read every array of a checkpoint into memory. Raises CheckpointError when it is missing, corrupt or too new."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one first with "
                              f"`python -m tinydiff train --data moons --out {path.parent}`")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path} is not a readable tinydiff checkpoint ({type(err).__name__}: {err}); "
                              "it may be truncated or corrupt: train again or use an older copy") from err
    if "meta/format" not in arrays or "meta/config" not in arrays:
        raise CheckpointError(f"{path} is a .npz file but not a tinydiff checkpoint (no meta/format or meta/config)")
    fmt = int(arrays["meta/format"])
    if fmt > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {fmt}, newer than this tinydiff ({__version__}) reads "
                              f"({CHECKPOINT_FORMAT}): upgrade tinydiff")
    return arrays


# ---- the random generator ----------------------------------------------------------------------------------------
def rng_state(rng: np.random.Generator) -> np.ndarray:
    """The generator's full state as JSON text in a 0-d array (numpy's bit_generator.state is a dict of ints)."""
    return json_array(rng.bit_generator.state)


def rng_from_state(state: np.ndarray) -> np.random.Generator:
    """A Generator that continues exactly where the saved one stopped."""
    d = from_json_array(state)
    bit_generator = getattr(np.random, d["bit_generator"])()
    bit_generator.state = d
    return np.random.Generator(bit_generator)
