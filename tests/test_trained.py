"""TrainedDenoiser: a loaded checkpoint knows its process, prediction type, scaling, labels and config, and samples
itself with the numbers the by-hand path gave."""

import os
from pathlib import Path

import numpy as np
import pytest

from tinydiff.config import MODEL_KINDS, TrainConfig
from tinydiff.samplers import sample
from tinydiff.threads import blas_threads
from tinydiff.trained import IMAGE_DEFAULTS, POINT_DEFAULTS, LabelError, TrainedDenoiser, load_trained

CHECKPOINTS = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
compiled_only = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                                   reason="samples the shipped UNet: runs compiled only")


@pytest.fixture(scope="module")
def gaussians():
    return load_trained(CHECKPOINTS / "8gaussians.npz")


@pytest.fixture(scope="module")
def conditional():
    return load_trained(CHECKPOINTS / "8gaussians_conditional.npz")


@pytest.fixture(scope="module")
def digits():
    return load_trained(CHECKPOINTS / "mnist_conditional.npz")


def tiny(**kw) -> TrainConfig:
    base = dict(data="moons", n_train=256, steps=4, batch_size=16, T=20, width=8, n_blocks=1, emb_dim=4,
                warmup_steps=1, log_every=2, loss_buckets=2, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


# ---- what it is --------------------------------------------------------------------------------------------------
def test_shipped_point_checkpoint_knows_what_it_is(gaussians):
    m = gaussians
    assert (m.kind, m.data_shape, m.num_classes, m.null_label) == ("points", (2,), 0, None)
    assert (m.objective, m.prediction_type, m.step, m.config.data) == ("ddpm", "epsilon", 4000, "8gaussians")
    assert m.schedule is m.process and m.schedule.T == 1000


def test_shipped_conditional_checkpoints_know_their_labels(conditional, digits):
    assert (conditional.num_classes, conditional.null_label) == (8, 8)
    assert (digits.kind, digits.data_shape, digits.num_classes, digits.null_label) == ("images", (1, 28, 28), 10, 10)
    assert digits.config.model == "unet" and digits.config.schedule == "linear"


def test_a_stored_config_reports_the_cap_its_betas_were_made_with(gaussians, digits, tmp_path):
    # the 8gaussians runs use the uncapped cosine: their last beta is the cap 0.999, and the file stores it
    assert gaussians.config.max_beta == pytest.approx(0.999) == gaussians.schedule.betas.max()
    assert "max_beta" not in gaussians.inferred
    assert digits.config.max_beta == 0.1 and "max_beta" not in digits.inferred    # stored: reported as stored
    # a checkpoint written before max_beta existed: the cap is read off its betas and marked as inferred
    from tinydiff import checkpoint as ckpt

    arrays = ckpt.load_checkpoint(gaussians.path)
    config = ckpt.from_json_array(arrays["meta/config"])
    del config["max_beta"]
    arrays["meta/config"] = ckpt.json_array(config)
    old = load_trained(ckpt.save_checkpoint(tmp_path / "old.npz", arrays))
    assert old.config.max_beta == pytest.approx(0.999) and "max_beta" in old.inferred


def test_raw_weights_are_the_trainers_and_the_default_is_the_ema(tmp_path):
    from tinydiff.train import Trainer

    trainer = Trainer(tiny(), tmp_path)
    trainer.train(progress=False)
    raw, ema = load_trained(tmp_path, use_ema=False), load_trained(tmp_path)
    for k, p in trainer.model.parameters().items():
        np.testing.assert_array_equal(raw.network.parameters()[k], p)
        np.testing.assert_array_equal(ema.network.parameters()[k], trainer.ema.shadow[k])


def test_a_checkpoint_without_raw_weights_says_so():
    from tinydiff.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="use_ema=True"):
        load_trained(CHECKPOINTS / "8gaussians.npz", use_ema=False)


# ---- sampling ----------------------------------------------------------------------------------------------------
def test_sample_is_reproducible_with_a_seed(gaussians):
    a, b, c = gaussians.sample(50, rng=3), gaussians.sample(50, rng=3), gaussians.sample(50, rng=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sample_gives_the_numbers_of_the_by_hand_path(gaussians):
    x = gaussians.sample(200, sampler="ddim", steps=20, clip=3.0, rng=7)
    with blas_threads(1):                     # what commands.sample.draw did before the trained object existed
        z = sample(gaussians.network, (200, 2), gaussians.schedule, method="ddim", steps=20, clip=3.0, rng=7,
                   prediction_type="epsilon")
    np.testing.assert_array_equal(x, gaussians.standardizer.inverse_transform(z))
    assert x.dtype == np.float64 and x.shape == (200, 2)


def test_points_default_to_the_whole_ddpm_chain(gaussians):
    assert gaussians.sampling_defaults == POINT_DEFAULTS == dict(sampler="ddpm", steps=None, guidance=1.0)
    np.testing.assert_array_equal(gaussians.sample(20, rng=1),
                                  gaussians.sample(20, sampler="ddpm", steps=gaussians.schedule.T, rng=1))


def test_images_default_to_few_ddim_steps_and_guidance(digits):
    assert digits.sampling_defaults == IMAGE_DEFAULTS
    assert IMAGE_DEFAULTS["sampler"] == "ddim" and IMAGE_DEFAULTS["steps"] <= 100 and IMAGE_DEFAULTS["guidance"] > 1


@compiled_only
def test_images_come_back_in_the_unit_interval_as_float32(digits):
    x = digits.sample(2, label=3, steps=2, rng=0)
    assert x.shape == (2, 1, 28, 28) and x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0


@pytest.mark.parametrize("batch_size", [256, 512, 700])
def test_the_same_seed_gives_the_same_samples_whatever_the_batch_size(conditional, batch_size):
    labels = np.arange(600) % 8
    whole = conditional.sample(600, label=labels, steps=5, guidance=2.0, rng=5, batch_size=600)
    x = conditional.sample(600, label=labels, steps=5, guidance=2.0, rng=5, batch_size=batch_size)
    # the same noise, bit for bit; the float32 network rounds a little differently in a batch of another size
    # (measured: up to 1.6e-4 of the data's std after 5 guided steps; another seed: ~6 std)
    assert np.abs(x - whole).max() < 1e-3 * whole.std()


def test_one_block_of_samples_is_the_one_batch_draw_of_the_seed(gaussians):
    from tinydiff.samplers import sample

    np.testing.assert_array_equal(gaussians.sample(50, steps=10, rng=3),
                                  gaussians.to_data(sample(gaussians.network, (50, 2), gaussians.process, steps=10,
                                                           rng=3)))


def test_batches_yield_the_samples_of_sample(gaussians):
    parts = list(gaussians.batches(600, steps=5, rng=1, batch_size=256))
    assert [i for i, _ in parts] == [0, 256, 512]
    np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), gaussians.sample(600, steps=5, rng=1))


def test_more_than_the_machine_holds_is_refused_before_sampling(gaussians, monkeypatch):
    from tinydiff import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 10**6)
    with pytest.raises(memory.MemoryLimitError, match=r"drawing 1000000 points needs about .* only 1 MB"):
        gaussians.sample(10**6, rng=0)


def test_the_default_batch_shrinks_to_what_fits(gaussians, monkeypatch):
    from tinydiff import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * 10**7)
    assert gaussians.plan_batches(10**6, in_memory=False) < 8192
    assert gaussians.plan_batches(10**6, in_memory=False) % 256 == 0


def test_one_label_is_the_same_as_a_label_per_sample(conditional):
    np.testing.assert_array_equal(conditional.sample(10, label=2, steps=10, rng=0),
                                  conditional.sample(10, label=np.full(10, 2), steps=10, rng=0))


def test_guidance_moves_the_samples_of_a_label(conditional):
    assert not np.allclose(conditional.sample(10, label=2, steps=10, guidance=1.0, rng=0),
                           conditional.sample(10, label=2, steps=10, guidance=3.0, rng=0))


@pytest.mark.parametrize("label", [8, -1])
def test_a_label_outside_the_classes_is_a_clear_error(conditional, label):
    with pytest.raises(LabelError, match="0..7"):
        conditional.sample(4, label=label)


def test_a_label_for_an_unconditional_model_is_a_clear_error(gaussians):
    with pytest.raises(LabelError, match="unconditional"):
        gaussians.sample(4, label=1)


def test_the_trajectory_is_returned_in_standardised_units(gaussians):
    x, traj = gaussians.sample(30, steps=10, rng=2, return_trajectory=True)
    np.testing.assert_allclose(gaussians.standardizer.inverse_transform(traj.x[-1]), x)


def test_denoise_is_the_x0_estimate_of_the_network(gaussians):
    x_t = np.random.default_rng(0).standard_normal((5, 2))
    t = np.full(5, 300)
    ab = gaussians.schedule.alphas_cumprod[300]
    eps = gaussians.network(x_t, t).astype(np.float64)
    np.testing.assert_allclose(gaussians.denoise(x_t, t), (x_t - np.sqrt(1 - ab) * eps) / np.sqrt(ab))


# ---- metadata round trip -----------------------------------------------------------------------------------------
def test_a_checkpoint_stores_its_model_spec_config_and_command(tmp_path):
    from tinydiff import checkpoint as ckpt
    from tinydiff.cli import main

    argv = ["train", "--data", "moons", "--out", str(tmp_path), "--steps", "3", "--T", "20", "--batch-size", "16",
            "--width", "8", "--n-blocks", "1", "--emb-dim", "4", "--prediction-type", "v_prediction", "--quiet"]
    assert main(argv) == 0
    m = load_trained(tmp_path / "model.npz")
    assert m.command.startswith("python -m tinydiff train --data moons") and "--prediction-type v_prediction" in m.command
    assert (m.prediction_type, m.config.width, m.config.T, m.step, m.inferred) == ("v_prediction", 8, 20, 3, {})
    spec = ckpt.from_json_array(ckpt.load_checkpoint(tmp_path / "model.npz")["meta/model"])
    assert spec["kind"] == "mlp" and spec["config"]["width"] == 8


def test_a_trainer_hands_over_the_same_model_it_saves(tmp_path):
    from tinydiff.train import Trainer

    trainer = Trainer(tiny(), tmp_path)
    trainer.train(progress=False)
    np.testing.assert_array_equal(trainer.trained().sample(20, rng=0), load_trained(tmp_path).sample(20, rng=0))


def test_load_model_still_gives_the_four_pieces(gaussians):
    from tinydiff.train import load_model

    model, schedule, standardizer, config = load_model(CHECKPOINTS / "8gaussians.npz")
    np.testing.assert_array_equal(schedule.betas, gaussians.schedule.betas)
    np.testing.assert_array_equal(standardizer.mean, gaussians.standardizer.mean)
    assert type(model) is type(gaussians.network) and config == gaussians.config


def test_any_network_can_be_wrapped_by_hand(gaussians):
    m = TrainedDenoiser(gaussians.network, gaussians.schedule, "epsilon", gaussians.standardizer)
    np.testing.assert_array_equal(m.sample(10, steps=5, rng=0), gaussians.sample(10, steps=5, rng=0))


# ---- the model registry ------------------------------------------------------------------------------------------
def test_the_registry_lists_the_kinds_the_command_line_offers():
    from tinydiff.models import MODELS

    assert tuple(MODELS) == MODEL_KINDS


@pytest.mark.parametrize("kind, config", [("mlp", dict(dim=3, width=8, n_blocks=1, emb_dim=4)),
                                          ("unet", dict(base_channels=8, channel_mults=(1, 2), num_groups=4))])
def test_a_model_rebuilt_from_its_spec_has_the_same_shape(kind, config):
    from tinydiff.models import build_model, model_from_spec, model_spec

    model = build_model(kind, config)
    again = model_from_spec(model_spec(model))
    assert type(again) is type(model) and again.config == model.config
    assert {k: v.shape for k, v in again.parameters().items()} == {k: v.shape for k, v in model.parameters().items()}
