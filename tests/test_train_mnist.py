"""MNIST training, sampling and evaluation through the same Trainer and commands as the 2D points (tiny sizes).

Tests that read the real MNIST files (marked `mnist`) skip when the files are not on disk."""

import os

import numpy as np
import pytest

from tinydiff.errors import DatasetError
from tinydiff.train import TrainConfig, Trainer, load_model, make_model

compiled_only = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                                   reason="hundreds of UNet evaluations: hours as plain Python (the kernels are "
                                          "tested without the JIT in tests/test_kernels_*.py)")
needs_mnist = pytest.mark.mnist   # skipped when the files are not on disk (tests/conftest.py)


def tiny_mnist(**kw):
    base = dict(data="mnist", model="unet", base_channels=8, n_train=64, steps=2, batch_size=4, warmup_steps=1,
                conditional=True, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


def test_unet_with_point_data_is_a_clear_error():
    with pytest.raises(DatasetError, match="--data mnist"):
        make_model(TrainConfig(model="unet"), (10, 2))


def test_images_pick_the_unet():
    from tinydiff.models.unet import UNet

    assert isinstance(make_model(TrainConfig(model="unet", base_channels=8), (10, 1, 28, 28), 10), UNet)


@needs_mnist
def test_mnist_training_scales_images_to_minus_one_one_and_steps():
    trainer = Trainer(tiny_mnist())
    assert trainer.x.shape == (64, 1, 28, 28)
    assert trainer.x.min() == -1.0 and trainer.x.max() == 1.0
    assert np.isfinite(trainer.step())


@needs_mnist
def test_mnist_checkpoint_samples_images_in_the_unit_interval(tmp_path):
    from tinydiff.commands.sample import draw

    trainer = Trainer(tiny_mnist(), tmp_path)
    trainer.train(progress=False)
    model, schedule, standardizer, config = load_model(tmp_path / "model.npz")
    x = draw(model, schedule, standardizer, 3, "ddim", steps=2, label=7, guidance=2.0)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0


@needs_mnist
@pytest.mark.slow
def test_evaluate_command_prints_every_metric(tmp_path, capsys):
    from tinydiff.cli import main

    Trainer(tiny_mnist(), tmp_path).train(progress=False)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "model.npz"), "--n", "20", "--steps", "2",
                 "--guidance", "1,2", "--memo-test", "100"]) == 0
    out = capsys.readouterr().out
    assert "floor" in out and out.count("FD") == 3 and "per class" in out and "memorisation" in out


def test_mnist_has_its_own_defaults_and_flags_override_them():
    from tinydiff.train import MNIST_DEFAULTS

    c = TrainConfig.for_data("mnist", batch_size=8)
    assert (c.model, c.schedule, c.lr, c.base_channels) == ("unet", "linear", MNIST_DEFAULTS["lr"], 24)
    assert c.batch_size == 8, "an explicit value beats the mnist default"
    assert TrainConfig.for_data("moons") == TrainConfig(), "points keep the dataclass defaults"


@needs_mnist
def test_train_command_on_mnist_uses_the_image_defaults(tmp_path):
    from tinydiff import checkpoint as ckpt
    from tinydiff.cli import main

    args = ["train", "--data", "mnist", "--conditional", "--steps", "1", "--batch-size", "2", "--n-train", "8",
            "--base-channels", "8", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    config = ckpt.from_json_array(ckpt.load_checkpoint(tmp_path / "model.npz")["meta/config"])
    assert (config["schedule"], config["lr"], config["ema_decay"]) == ("linear", 1e-3, 0.999)
    assert (config["batch_size"], config["base_channels"]) == (2, 8)


@needs_mnist
@compiled_only
def test_sample_command_writes_a_grid_of_digits_with_the_image_defaults(tmp_path, capsys):
    from tinydiff.cli import main
    from tinydiff.commands.sample import IMAGE_DEFAULTS

    Trainer(tiny_mnist(), tmp_path).train(progress=False)
    out, grid = tmp_path / "digits.npy", tmp_path / "grid.png"
    assert main(["sample", "--checkpoint", str(tmp_path / "model.npz"), "--label", "7", "--n", "4",
                 "--out", str(out), "--plot", str(grid)]) == 0
    x = np.load(out)
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0
    assert grid.stat().st_size > 0
    assert IMAGE_DEFAULTS["sampler"] == "ddim" and IMAGE_DEFAULTS["steps"] <= 100, "images must not default to 1000"
