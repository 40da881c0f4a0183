"""The training loop: it learns, it is reproducible, and it stops with a clear message when something is wrong."""

import numpy as np
import pytest

from tinydiff.errors import DatasetError
from tinydiff.train import TrainConfig, Trainer, TrainingDiverged, load_training_data, train


def tiny(**kw) -> TrainConfig:
    base = dict(data="moons", n_train=256, steps=30, batch_size=32, T=50, width=16, n_blocks=1, emb_dim=8,
                warmup_steps=5, log_every=10, loss_buckets=5, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


def test_every_default_of_train_config_is_commented():
    import dataclasses
    import inspect

    source = inspect.getsource(TrainConfig).splitlines()
    for field in dataclasses.fields(TrainConfig):
        line = next(line for line in source if line.startswith(f"    {field.name}: "))
        assert "#" in line, f"TrainConfig.{field.name} has no comment: {line.strip()}"


def test_loss_goes_down_on_moons():
    log = train(tiny(steps=200, lr=1e-2, batch_size=128), progress=False).log
    assert np.mean(log.loss[-30:]) < 0.8 * np.mean(log.loss[:30])


def test_loss_is_recorded_per_step_and_per_time_bucket():
    trainer = train(tiny(steps=30), progress=False)
    assert len(trainer.log.loss) == 30
    assert trainer.log.t_sum.shape == (3, 5)                      # 30 steps / log_every 10, 5 buckets
    assert trainer.log.t_count.sum() == 30 * 32                   # every sample of every batch lands in one bucket
    assert np.all(trainer.log.loss_vs_t() > 0)


def test_same_seed_gives_the_same_losses():
    a = train(tiny(seed=3), progress=False).log.loss
    b = train(tiny(seed=3), progress=False).log.loss
    assert a == b


def test_points_of_any_dimension_train(tmp_path):
    path = tmp_path / "cloud.npy"
    np.save(path, np.random.default_rng(0).standard_normal((100, 5)))
    trainer = train(tiny(data=str(path), steps=5), progress=False)
    assert trainer.model.dim == 5 and len(trainer.log.loss) == 5


def test_conditional_training_uses_the_labels():
    trainer = train(tiny(data="8gaussians", conditional=True, steps=5), progress=False)
    assert trainer.model.num_classes == 8 and trainer.model.null_label == 8


def test_a_huge_learning_rate_stops_with_the_step_and_the_cause():
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*learning rate is too high"):
        train(tiny(lr=1e10, grad_clip=1e30, warmup_steps=1, steps=50), progress=False)


def test_a_nan_in_the_data_stops_training_with_a_message():
    trainer = Trainer(tiny())
    trainer.x[:] = np.nan
    with pytest.raises(TrainingDiverged, match="step 0"):
        trainer.step()


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(DatasetError, match="moons.*checkerboard"):
        Trainer(tiny(data="moonz"))


def test_unreadable_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.npy"
    path.write_bytes(b"not a numpy file")
    with pytest.raises(DatasetError, match="not a readable .npy"):
        Trainer(tiny(data=str(path)))


def test_wrong_data_shape_gives_a_clear_error(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.arange(10.0))
    with pytest.raises(DatasetError, match="2D array"):
        Trainer(tiny(data=str(path)))


def test_conditional_training_on_an_unlabelled_set_is_refused():
    with pytest.raises(DatasetError, match="labelled"):
        load_training_data(tiny(data="checkerboard", conditional=True), np.random.default_rng(0))
