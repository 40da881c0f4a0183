"""Nothing lost when a run is killed, when two runs share a folder, or when the disk fills up."""

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinydiff import checkpoint as ckpt
from tinydiff.cli import main
from tinydiff.train import TrainConfig, Trainer

TINY = ["--data", "moons", "--n-train", "256", "--T", "50", "--batch-size", "32", "--width", "16", "--n-blocks", "1",
        "--emb-dim", "8", "--warmup-steps", "5", "--log-every", "10", "--loss-buckets", "5", "--quiet"]


def tiny_config(**kw) -> TrainConfig:
    base = dict(data="moons", n_train=256, T=50, batch_size=32, width=16, n_blocks=1, emb_dim=8, warmup_steps=5,
                log_every=10, loss_buckets=5)
    return TrainConfig(**{**base, **kw})


def start_training(out, *flags) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tinydiff", "train", "--out", str(out), *TINY, *flags]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def saved_step(path) -> int:
    try:
        return int(ckpt.load_checkpoint(path)["meta/step"])
    except ckpt.CheckpointError:
        return -1


@pytest.mark.slow                      # ~15 s: a subprocess trains 400 steps, is killed, and resumes
def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_run(tmp_path):
    steps = 400
    reference = Trainer(tiny_config(steps=steps, checkpoint_every=20), tmp_path / "reference")
    reference.train(progress=False)
    out = tmp_path / "killed"
    proc = start_training(out, "--steps", str(steps), "--checkpoint-every", "20")
    wait_for(lambda: saved_step(out / "model.npz") >= 40, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert saved_step(out / "model.npz") < steps                     # it really was interrupted
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    a, b = ckpt.load_checkpoint(reference.checkpoint_path), ckpt.load_checkpoint(out / "model.npz")
    for key in a:
        if key.split("/")[0] in ("model", "ema", "optim") or key in ("log/loss", "meta/step", "meta/rng"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_second_run_on_the_same_folder_gets_the_lock_error_naming_the_first(tmp_path, capsys):
    proc = start_training(tmp_path, "--steps", "100000", "--checkpoint-every", "100000")
    try:
        wait_for(lambda: (tmp_path / "train.lock").exists() and (tmp_path / "train.lock").read_text(), proc)
        assert main(["train", "--out", str(tmp_path), "--overwrite", *TINY, "--steps", "2"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another training run (pid {proc.pid} on host" in err and len(err.splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "model.npz").exists()                     # the second run wrote nothing


def test_a_full_disk_keeps_the_old_checkpoint_and_says_so(tmp_path, monkeypatch, capsys):
    real_savez, calls = np.savez, []

    def savez_until_the_disk_fills(file, **arrays):                  # the 2nd checkpoint write finds the disk full
        calls.append(1)
        if len(calls) == 1:
            return real_savez(file, **arrays)
        file.write(b"PK\x03\x04 part of a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_until_the_disk_fills)
    assert main(["train", "--out", str(tmp_path), *TINY, "--steps", "10", "--checkpoint-every", "5"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "previous checkpoint there is untouched" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert saved_step(tmp_path / "model.npz") == 5
    assert not list(tmp_path.glob("*.tmp"))
