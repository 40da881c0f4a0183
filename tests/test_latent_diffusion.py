"""Latent diffusion: the Trainer on scaled VAE latents, its checkpoint, and sampling that decodes to images.

These use random "images" in place of MNIST (no files needed) and an untrained tiny VAE."""

import os

import numpy as np
import pytest

import tinydiff.train as train_module
from tinydiff.errors import DatasetError
from tinydiff.models.autoencoder import VAE, AutoencoderConfig
from tinydiff.train import TrainConfig, Trainer, encode_latents, trainer_class
from tinydiff.train_autoencoder import AutoencoderTrainConfig, save_autoencoder


@pytest.fixture
def fake_mnist(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.random((40, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    monkeypatch.setattr(train_module, "load_training_data", lambda config, rng: (x, y if config.conditional else None))
    return x


@pytest.fixture
def ae_path(tmp_path):
    """An untrained tiny VAE whose scale factor is fitted on the fake images of ``fake_mnist``."""
    vae = VAE(AutoencoderConfig(base_channels=2, latent_channels=3), rng=0)
    vae.fit_scale_factor(np.random.default_rng(1).random((40, 1, 28, 28)).astype(np.float32))
    return save_autoencoder(vae, AutoencoderTrainConfig(), tmp_path / "ae" / "autoencoder.npz")


def latent_config(ae_path, **kw):
    return TrainConfig.for_data("mnist", **{**dict(latent=str(ae_path), conditional=True, base_channels=8, n_train=40,
                                                    steps=2, batch_size=4, warmup_steps=1), **kw})


def test_latent_training_data_are_the_scaled_latents_with_unit_variance(ae_path, fake_mnist):
    trainer = Trainer(latent_config(ae_path))
    assert trainer.x.shape == (40, 3, 7, 7)
    assert np.std(trainer.x.astype(np.float64)) == pytest.approx(1.0, rel=1e-4)   # fitted on these same images
    vae = trainer.autoencoder
    np.testing.assert_allclose(trainer.x, vae.scale_factor * vae.encode_mean(fake_mnist), rtol=1e-5, atol=1e-6)


def test_latent_unet_has_one_level_at_7x7_and_the_latent_channels(ae_path, fake_mnist):
    net = Trainer(latent_config(ae_path)).model
    assert net.cfg.in_channels == 3 and net.cfg.image_size == 7 and net.cfg.channel_mults == (1,)


def test_latent_defaults_apply_only_with_latent():
    assert TrainConfig.for_data("mnist", latent="ae.npz").base_channels == 32
    assert TrainConfig.for_data("mnist").base_channels == 24
    assert TrainConfig.for_data("mnist", latent="ae.npz", base_channels=16).base_channels == 16


def test_latent_needs_image_data(ae_path):
    with pytest.raises(DatasetError, match="--data mnist"):
        encode_latents(TrainConfig(latent=str(ae_path)), np.zeros((10, 2)))


def test_a_latent_checkpoint_samples_images_like_a_pixel_model(ae_path, fake_mnist, tmp_path):
    from tinydiff.trained import load_trained

    trainer = Trainer(latent_config(ae_path), tmp_path / "run")
    trainer.train(progress=False)
    m = load_trained(tmp_path / "run" / "model.npz")
    assert m.autoencoder is not None and m.autoencoder.scale_factor == trainer.autoencoder.scale_factor
    assert m.data_shape == (3, 7, 7)
    x, traj = m.sample(3, label=4, steps=3, rng=0, return_trajectory=True)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_sampling_decodes_the_last_latent_divided_by_the_scale_factor(ae_path, fake_mnist):
    m = Trainer(latent_config(ae_path)).trained()
    x_T = np.random.default_rng(5).standard_normal((2, 3, 7, 7))
    x, traj = m.sample(2, steps=2, x_T=x_T, rng=0, return_trajectory=True)
    z = traj.x[-1] / m.autoencoder.scale_factor                                 # (2, 3, 7, 7) unscaled latents
    np.testing.assert_allclose(x, m.autoencoder.decode(z), atol=1e-6)


def test_train_has_a_latent_flag():
    from tinydiff.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "mnist", "--latent", "ae/autoencoder.npz", "--out", "d"])
    assert args.latent == "ae/autoencoder.npz"


needs_mnist = pytest.mark.skipif(not os.environ.get("TINYDIFF_DATA"),
                                 reason="needs the MNIST files ($TINYDIFF_DATA unset)")


@needs_mnist
def test_the_three_commands_of_latent_diffusion_run_end_to_end(tmp_path):
    """train-autoencoder, train --latent, sample: the issue's commands at tiny sizes."""
    from tinydiff.cli import main

    ae, run = tmp_path / "ae", tmp_path / "run"
    assert main(["train-autoencoder", "--data", "mnist", "--out", str(ae), "--steps", "2", "--n-train", "64",
                 "--batch-size", "4", "--base-channels", "2", "--no-eval", "--quiet"]) == 0
    assert main(["train", "--data", "mnist", "--conditional", "--latent", str(ae / "autoencoder.npz"), "--out",
                 str(run), "--steps", "2", "--n-train", "64", "--batch-size", "4", "--base-channels", "8",
                 "--quiet"]) == 0
    assert main(["sample", "--checkpoint", str(run / "model.npz"), "--label", "3", "--n", "2", "--steps", "2",
                 "--out", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (2, 1, 28, 28) and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("setting", [dict(prediction_type="sample"), dict(prediction_type="v_prediction"),
                                     dict(objective="flow")], ids=["x0", "v", "flow"])
def test_latent_space_needs_no_special_case_for_other_targets_or_objectives(ae_path, fake_mnist, setting):
    """The Trainer and sampler see latents as any other (B, C, H, W) data: every target and objective trains and
    samples, and sampling decodes to images."""
    config = latent_config(ae_path, **setting)
    trainer = trainer_class(config.objective)(config)
    assert np.isfinite(trainer.step())
    x = trainer.trained().sample(2, label=1, steps=2, rng=0)
    assert x.shape == (2, 1, 28, 28) and np.all(np.isfinite(x))
