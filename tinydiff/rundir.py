"""The run folder of ``python -m tinydiff train --out DIR``, guarded so that no trained model is lost.

    with open_run(out, resume=False, overwrite=False):      # checks, locks and tidies DIR; the lock holds until the end
        trainer.train()

What it guarantees, before a single training step:

- DIR is a folder this process can write (it is created if missing). A file or a read-only folder is refused now,
  not at the first checkpoint after minutes of training.
- A fresh run never replaces another run's ``model.npz``: continue that run with ``--resume`` or replace it with
  ``--overwrite``. (With ``--overwrite`` the old file stays until the new run writes its first checkpoint.)
- One process at a time: DIR/train.lock is locked exclusively (``fcntl.flock``; the kernel releases it when the
  process ends, even by kill -9) and holds the holder's pid and host, which a second process names in its error.
- ``model.npz.*.tmp`` files that an interrupted checkpoint write left behind are removed (under the lock, so no
  other process is writing them).
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from tinydiff.errors import RunError

LOCK_NAME = "train.lock"
CHECKPOINT_NAME = "model.npz"

try:                                    # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
except ImportError:                     # Windows: lock the first byte of the file
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False


def check_folder(out: Path) -> None:
    """Create ``out`` if needed; refuse a path that is a file, or a folder that cannot be created."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a folder: give a folder for model.npz, loss.csv and the figures")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the run folder {out} ({err.strerror}): choose another --out") from None


def check_no_other_run(out: Path, resume: bool, overwrite: bool) -> None:
    """A fresh run (not ``resume``) into a folder holding model.npz is refused unless ``overwrite``."""
    if resume or overwrite or not (out / CHECKPOINT_NAME).exists():
        return
    raise RunError(f"{out} already holds a run ({out / CHECKPOINT_NAME}): continue it with --resume, replace it with "
                   "--overwrite, or choose another --out")


def remove_stale_temporary_files(out: Path) -> list[Path]:
    """Delete the ``model.npz.*.tmp`` files of interrupted checkpoint writes; returns what was removed."""
    stale = sorted(out.glob(f"{CHECKPOINT_NAME}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextmanager
def run_lock(out: Path):
    """Hold an exclusive lock on ``out/train.lock`` for the block; RunError naming the holder if another has it."""
    path = out / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunError(f"cannot write in the run folder {out} ({err.strerror}): choose a folder you can write to "
                       "with --out") from None
    try:
        if not _try_lock(fd):
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            raise RunError(f"{out} is in use by another training run ({holder}; lock file {path}): wait for it to "
                           "finish, or choose another --out")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  .encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)         # the holder is gone (the file itself stays: deleting it would race)
    finally:
        os.close(fd)                    # releases the lock


@contextmanager
def open_run(out, resume: bool = False, overwrite: bool = False):
    """Check ``out``, lock it for the block, refuse to replace another run, and remove stale temporary files."""
    out = Path(out)
    check_folder(out)
    with run_lock(out) as lock:
        check_no_other_run(out, resume, overwrite)
        stale = remove_stale_temporary_files(out)
        if stale:
            print(f"removed {len(stale)} temporary file(s) of an interrupted checkpoint write: "
                  f"{', '.join(p.name for p in stale)}")
        yield lock
