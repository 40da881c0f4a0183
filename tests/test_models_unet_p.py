"""The U-Net's fast path (models/unet_p.py, padded-plane layout) computes the same function as its reference path
(UNet.forward_reference / backward_reference, layer by layer in NCHW): same output, loss and every gradient to
float32 round-off, the same training trajectory, and the same digits from the shipped checkpoint."""

import os
from pathlib import Path

import numpy as np
import pytest

from tinydiff.bench import TrainStep
from tinydiff.models.unet import UNet, UNetConfig
from tinydiff.nn.losses import mse_loss

# The fast path needs the compiler; under NUMBA_DISABLE_JIT=1 the U-Net takes its reference path (tested below).
compiled_only = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                                   reason="the fast path runs compiled only")

SHIPPED = UNetConfig(num_classes=10)                     # the shipped MNIST model's configuration
TINY = UNetConfig(base_channels=8, channel_mults=(1, 2), num_groups=4, emb_dim=16, image_size=6)
DEEP = UNetConfig(base_channels=8, channel_mults=(1, 2, 3), num_res_blocks=2, attention=False, num_groups=4,
                  emb_dim=16, image_size=12, in_channels=3, num_classes=3)     # 12 -> 6 -> 3, 2 blocks a level


def batch(cfg, B, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, cfg.in_channels, cfg.image_size, cfg.image_size)).astype(np.float32)
    t = rng.integers(0, 1000, B)
    y = rng.integers(0, cfg.num_classes + 1, B) if cfg.num_classes else None
    return x, t, y, rng.standard_normal(x.shape).astype(np.float32)


def one_step(cfg, fast, B=4, input_grad=True):
    """Output, loss, dL/dx and every parameter gradient of one forward/backward from the same weights."""
    model = UNet(cfg, rng=0)
    model.use_fast_path = fast
    x, t, y, target = batch(cfg, B)
    out = model.forward(x, t, y)
    assert model._fast == fast, "the path taken is not the one asked for"
    loss, dy = mse_loss(out, target)
    dx = model.backward(dy, input_grad=input_grad)
    return out, loss, dx, {k: g.copy() for k, g in model.gradients().items()}


def worst_gradient_error(ga, gb):
    return max(float(np.abs(ga[k] - gb[k]).max() / max(np.abs(ga[k]).max(), 1e-12)) for k in ga)


@compiled_only
@pytest.mark.parametrize("cfg", [SHIPPED, UNetConfig(), TINY, DEEP], ids=["shipped", "unconditional", "tiny-6x6",
                                                                        "rgb-12x12-2-blocks"])
def test_fast_path_gives_the_reference_output_loss_and_gradients(cfg):
    ref, fast = one_step(cfg, False), one_step(cfg, True)
    assert abs(ref[1] - fast[1]) <= 1e-6 * ref[1]
    assert np.abs(ref[0] - fast[0]).max() <= 1e-5 * np.abs(ref[0]).max()
    assert np.abs(ref[2] - fast[2]).max() <= 1e-5 * np.abs(ref[2]).max(), "dL/dx"
    assert worst_gradient_error(ref[3], fast[3]) < 1e-4


@compiled_only
def test_training_steps_follow_the_reference_trajectory():
    x, t, y, target = batch(TINY, 8)
    losses, params = [], []
    for fast in (False, True):
        model = UNet(TINY, rng=0)
        model.use_fast_path = fast
        step = TrainStep(model, x, t, target)
        losses.append([step() for _ in range(4)])
        params.append(model.parameters())
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert max(float(np.abs(params[0][k] - params[1][k]).max()) for k in params[0]) < 1e-4


@compiled_only
def test_fast_path_follows_a_change_of_batch_size():
    model = UNet(TINY, rng=0)
    for B in (3, 5, 3):
        x, t, _, _ = batch(TINY, B)
        model.use_fast_path = True
        fast = model.forward(x, t)
        model.use_fast_path = False
        np.testing.assert_allclose(fast, model.forward(x, t), atol=1e-5)


def test_float64_models_and_active_dropout_take_the_reference_path():
    x, t, _, _ = batch(TINY, 2)
    model64 = UNet(TINY, rng=0, dtype=np.float64)
    model64.forward(x, t)
    assert not model64._fast
    dropout = UNet(UNetConfig(**{**TINY.__dict__, "dropout": 0.1}), rng=0)
    dropout.forward(x, t)
    assert not dropout._fast, "dropout in training needs the reference path"
    dropout.eval().forward(x, t)
    assert dropout._fast == (os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0"))


@compiled_only
def test_shipped_checkpoint_samples_the_same_digits_on_both_paths():
    from tinydiff.commands.evaluate import generate
    from tinydiff.models.classifier import load_classifier
    from tinydiff.threads import blas_threads
    from tinydiff.train import load_model

    model, schedule, standardizer, _ = load_model(Path(__file__).resolve().parents[1] / "data" / "checkpoints"
                                                  / "mnist_conditional.npz")
    labels = np.arange(10)
    images = []
    with blas_threads(1):
        for fast in (False, True):
            model.use_fast_path = fast
            images.append(generate(model, schedule, standardizer, labels, len(labels), 2.0, "ddim", steps=10, seed=0,
                                   batch_size=10))
    assert np.abs(images[0] - images[1]).max() < 1e-3, "the two paths drew different images"
    classify = load_classifier().predict
    np.testing.assert_array_equal(classify(images[1]), classify(images[0]))


@compiled_only
def test_a_nan_in_the_input_comes_out_as_nan_on_the_fast_path():
    """The kernels' floating-point liberties exclude nnan/ninf, so a diverged run still shows up as NaN."""
    model = UNet(TINY, rng=0)
    x, t, _, _ = batch(TINY, 2)
    x[0, 0, 1, 2] = np.nan
    out = model.forward(x, t)
    assert model._fast and np.isnan(out[0]).all() and np.isfinite(out[1]).all()
