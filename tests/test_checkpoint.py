"""Checkpoints: no pickle, atomic writes, clear errors, and resuming that repeats an uninterrupted run exactly."""

import numpy as np
import pytest

from tinydiff import checkpoint as ckpt
from tinydiff.train import TrainConfig, Trainer, load_model


def tiny(**kw) -> TrainConfig:
    base = dict(data="moons", n_train=256, steps=40, batch_size=32, T=50, width=16, n_blocks=1, emb_dim=8,
                warmup_steps=5, log_every=10, loss_buckets=5, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


def test_resume_repeats_an_uninterrupted_run_bit_for_bit(tmp_path):
    straight = Trainer(tiny())
    straight.train(progress=False)

    first = Trainer(tiny(), tmp_path)
    first.train(progress=False, until=20)            # stop half way: the run is "interrupted" after its checkpoint
    resumed = Trainer.resume(tmp_path)
    resumed.train(progress=False)

    np.testing.assert_array_equal(np.array(resumed.log.loss), np.array(straight.log.loss))
    for k, p in straight.model.parameters().items():
        np.testing.assert_array_equal(resumed.model.parameters()[k], p)
    np.testing.assert_array_equal(resumed.log.t_sum, straight.log.t_sum)


def test_checkpoint_holds_everything_and_loads_without_pickle(tmp_path):
    trainer = Trainer(tiny(steps=3), tmp_path)
    trainer.train(progress=False)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as f:
        keys = set(f.files)
    for key in ("meta/step", "meta/rng", "meta/config", "meta/version", "standardizer/mean", "schedule/betas",
                "optim/step", "log/loss"):
        assert key in keys
    assert any(k.startswith("model/") for k in keys) and any(k.startswith("ema/shadow.") for k in keys)


def test_load_model_gives_the_ema_weights_and_the_standardizer(tmp_path):
    trainer = Trainer(tiny(steps=3), tmp_path)
    trainer.train(progress=False)
    model, schedule, std, config = load_model(tmp_path / "model.npz")
    for k, v in trainer.ema.shadow.items():
        np.testing.assert_array_equal(model.parameters()[k], v)
    np.testing.assert_array_equal(std.mean, trainer.standardizer.mean)
    assert schedule.T == 50 and config.steps == 3


def test_rng_state_round_trips():
    rng = np.random.default_rng(7)
    rng.standard_normal(5)
    again = ckpt.rng_from_state(ckpt.rng_state(rng))
    np.testing.assert_array_equal(again.standard_normal(5), rng.standard_normal(5))


def test_a_crash_mid_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    ckpt.save_checkpoint(path, {"meta/config": ckpt.json_array({"v": 1}), "w": np.ones(3)})
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"meta/config": ckpt.json_array({"v": 2}), "w": np.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]          # no temporary file left behind


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint.*tinydiff train"):
        ckpt.load_checkpoint(tmp_path / "model.npz")


def test_corrupt_checkpoint_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ckpt.CheckpointError, match="truncated or corrupt"):
        ckpt.load_checkpoint(path)


def test_a_npz_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.ones(2))
    with pytest.raises(ckpt.CheckpointError, match="not a tinydiff checkpoint"):
        ckpt.load_checkpoint(path)


def test_resume_uses_the_stored_schedule_not_todays_default(tmp_path):
    trainer = Trainer(tiny(steps=2, schedule="cosine", max_beta=0.999), tmp_path)
    trainer.train(progress=False)
    arrays = ckpt.load_checkpoint(tmp_path / "model.npz")
    config = ckpt.from_json_array(arrays["meta/config"])
    del config["max_beta"]                                   # a checkpoint written before max_beta existed
    arrays["meta/config"] = ckpt.json_array(config)
    ckpt.save_checkpoint(tmp_path / "model.npz", arrays)
    np.testing.assert_array_equal(Trainer.resume(tmp_path).schedule.betas, trainer.schedule.betas)


def test_a_checkpoint_with_nan_weights_does_not_load_and_the_error_names_the_weight(tmp_path):
    Trainer(tiny(steps=2), tmp_path).train(progress=False)
    arrays = ckpt.load_checkpoint(tmp_path / "model.npz")
    key = next(k for k in arrays if k.startswith("ema/shadow.") and k.endswith("weight"))
    arrays[key] = np.full_like(arrays[key], np.nan)
    ckpt.save_checkpoint(tmp_path / "model.npz", arrays)
    with pytest.raises(ckpt.CheckpointError, match=rf"'{key[len('ema/shadow.'):]}' holds \d+ NaN or inf"):
        load_model(tmp_path / "model.npz")
