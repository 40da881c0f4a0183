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
at worst a stray ``.tmp`` file (``train`` removes those when it starts). The file gets the usual permissions of a new
file (0644 under the usual umask 022), like every other output. Loading uses ``allow_pickle=False``: a checkpoint can
never execute code, and any entry missing, unreadable or out of range is one CheckpointError naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tinydiff import __version__
from tinydiff.errors import CheckpointError, CheckpointWriteError  # noqa: F401  (defined in errors.py, re-exported)

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
    """The object stored by :func:`json_array` (CheckpointError if the text is not JSON)."""
    try:
        return json.loads(str(np.asarray(a)[()]))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"an entry meant to hold JSON text does not ({err}): the checkpoint is corrupt or was "
                              "edited by hand") from None


@contextmanager
def reading(path):
    """Turn any error met while interpreting a checkpoint's arrays (a missing entry: KeyError; a bad value, such as
    betas outside (0, 1): ValueError or TypeError) into one CheckpointError that names the file."""
    try:
        yield
    except CheckpointError as err:
        if str(path) in str(err):
            raise
        raise CheckpointError(f"{path}: {err}") from None
    except KeyError as err:
        raise CheckpointError(f"{path} lacks the entry {err.args[0]!r}: it is not a complete tinydiff checkpoint "
                              "(written by another program, or damaged): train again or use another copy") from None
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path} holds an invalid value ({err}): the checkpoint is damaged or was edited by "
                              "hand: train again or use another copy") from None


def _new_file_mode() -> int:
    """The permissions open() gives a new file: 0666 minus the umask (0644 under the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
        os.chmod(tmp, _new_file_mode())        # mkstemp makes 0600; a checkpoint is an output like any other
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)                  # the atomic step: readers see the old file or the new one, never half
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):           # disk full, quota, permissions: say so in one line
            kept = ("the previous checkpoint there is untouched. Free some space (or fix the permissions) and "
                    "continue with --resume" if path.exists() else "no checkpoint was written. Free some space (or "
                    "fix the permissions) and train again")
            raise CheckpointWriteError(f"could not write {path} ({err.strerror or err}); {kept}") from err
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
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a readable tinydiff checkpoint (not a .npz zip archive): it is truncated "
                              "or corrupt, or another kind of file. Train again or use another copy")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"{path} is not a readable tinydiff checkpoint ({type(err).__name__}: {err}); "
                              "it may be truncated or corrupt: train again or use an older copy") from err
    if "meta/format" not in arrays or "meta/config" not in arrays:
        raise CheckpointError(f"{path} is a .npz file but not a tinydiff checkpoint (no meta/format or meta/config)")
    with reading(path):
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
