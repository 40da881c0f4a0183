"""Nothing lost: the run folder is checked and locked, a diverged run never overwrites a good checkpoint, the loss is
watched, --resume keeps the stored settings, and checkpoints get the permissions of every other output."""

import os
import stat

import numpy as np
import pytest

from tinydiff import checkpoint as ckpt
from tinydiff.errors import RunError
from tinydiff.rundir import open_run, run_lock
from tinydiff.train import TrainConfig, Trainer, TrainingDiverged


def tiny(**kw) -> TrainConfig:
    base = dict(data="moons", n_train=256, steps=6, batch_size=32, T=50, width=16, n_blocks=1, emb_dim=8,
                warmup_steps=2, log_every=10, loss_buckets=5, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


# ---- the folder ------------------------------------------------------------------------------------------------
def test_a_fresh_run_into_a_folder_holding_a_run_is_refused(tmp_path):
    Trainer(tiny(), tmp_path).train(progress=False)
    with pytest.raises(RunError, match="already holds a run.*--resume.*--overwrite"):
        with open_run(tmp_path):
            pass


@pytest.mark.parametrize("flag", ["resume", "overwrite"])
def test_resume_or_overwrite_may_use_a_folder_holding_a_run(tmp_path, flag):
    Trainer(tiny(), tmp_path).train(progress=False)
    with open_run(tmp_path, **{flag: True}):
        pass


def test_the_run_folder_is_created_before_training(tmp_path):
    with open_run(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b").is_dir()


def test_out_pointing_at_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="is a file, not a folder"):
        with open_run(tmp_path / "f"):
            pass


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused_before_training(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(RunError, match="cannot write"):
            with open_run(tmp_path):
                pass
    finally:
        tmp_path.chmod(0o700)


def test_a_second_holder_of_the_lock_gets_an_error_naming_the_first(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunError, match=rf"in use by another training run \(pid {os.getpid()} on host"):
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):                  # released at the end of the block
        pass


def test_stale_temporary_files_are_removed_on_start(tmp_path):
    stale = tmp_path / "model.npz.abc123.tmp"
    stale.write_bytes(b"half a zip")
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    with open_run(tmp_path):
        assert not stale.exists() and keep.exists()


# ---- checkpoints -------------------------------------------------------------------------------------------------
def test_checkpoints_get_the_permissions_of_other_outputs(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "model.npz", {"meta/config": ckpt.json_array({})})
    other = tmp_path / "other.txt"
    other.write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(other.stat().st_mode)


def test_non_finite_weights_are_never_saved_and_the_last_good_step_is_named(tmp_path):
    trainer = Trainer(tiny(steps=4), tmp_path)
    trainer.train(progress=False, until=2)
    good = (tmp_path / "model.npz").read_bytes()
    next(iter(trainer.model.parameters().values()))[0] = np.inf         # what --lr 1e41 does to a weight
    with pytest.raises(TrainingDiverged, match=r"NaN or inf, so no checkpoint was written.*from step 2"):
        trainer.save()
    assert (tmp_path / "model.npz").read_bytes() == good


def test_a_learning_rate_of_1e41_leaves_no_checkpoint_behind(tmp_path):
    with pytest.raises(TrainingDiverged, match="No checkpoint was written"):
        Trainer(tiny(lr=1e41, checkpoint_every=1), tmp_path).train(progress=False)
    assert not (tmp_path / "model.npz").exists()


# ---- the loss is watched -----------------------------------------------------------------------------------------
def test_a_loss_rising_far_above_its_start_stops_the_run(tmp_path):
    trainer = Trainer(tiny(steps=60), tmp_path)
    trainer.log.loss = [1.0] + [20.0] * 20                             # finite, but 20x its start
    with pytest.raises(TrainingDiverged, match=r"rose from 1 \(step 0\) to 20 .*--max-loss-rise 0"):
        trainer.check_loss_rise()


def test_max_loss_rise_0_trains_on(tmp_path):
    trainer = Trainer(tiny(steps=60, max_loss_rise=0.0), tmp_path)
    trainer.log.loss = [1.0] + [20.0] * 20
    trainer.check_loss_rise()


def test_a_normal_run_does_not_trip_the_loss_check():
    Trainer(tiny(steps=60)).train(progress=False)


# ---- resume ------------------------------------------------------------------------------------------------------
def test_resume_refuses_a_setting_that_contradicts_the_stored_run(tmp_path):
    Trainer(tiny(), tmp_path).train(progress=False)
    with pytest.raises(RunError, match=r"--lr 0.1 \(the run has 0.003\).*--seed 5 \(the run has 0\)"):
        Trainer.resume(tmp_path, lr=0.1, seed=5)


def test_resume_accepts_the_stored_value_and_applies_the_settings_that_may_change(tmp_path):
    Trainer(tiny(), tmp_path).train(progress=False)
    trainer = Trainer.resume(tmp_path, steps=9, data="moons", lr=0.003, checkpoint_every=3)
    assert (trainer.config.steps, trainer.config.checkpoint_every) == (9, 3)
    assert trainer.changed == {"steps": (6, 9), "checkpoint_every": (1000, 3)}


@pytest.mark.parametrize("lr", [0.0, -1e-3, float("inf"), float("nan")])
def test_the_library_refuses_a_learning_rate_that_cannot_train(lr):
    from tinydiff.config import ConfigError

    with pytest.raises(ConfigError, match="lr must be a positive finite number"):
        Trainer(tiny(lr=lr))
