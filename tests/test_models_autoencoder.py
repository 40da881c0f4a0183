"""The VAE of latent diffusion: its layers' gradients, its loss's gradient, its scale factor, its files."""

import numpy as np
import pytest

from tinydiff.models.autoencoder import (LOGVAR_RANGE, VAE, AutoencoderConfig, autoencoder_arrays,
                                         autoencoder_from_arrays, bce_with_logits, gaussian_kl, sigmoid)
from tinydiff.nn.gradcheck import assert_gradients_ok, central_differences


def tiny_vae(dtype=np.float64, **kw):
    return VAE(AutoencoderConfig(**{**dict(base_channels=2, latent_channels=2, kl_weight=0.1), **kw}), rng=0,
               dtype=dtype)


def images(n=2, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28))


# ---- shapes ------------------------------------------------------------------------------------------------------
def test_encoder_maps_28x28_digits_to_a_7x7_latent_and_the_decoder_back():
    vae = tiny_vae(np.float32, latent_channels=4)
    mu, logvar = vae.encode(images(3))
    assert mu.shape == logvar.shape == (3, 4, 7, 7) == (3, *vae.latent_shape)
    x = vae.decode(mu)
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_encode_refuses_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        tiny_vae().encode(np.zeros((2, 28, 28)))


# ---- the elementwise formulas ------------------------------------------------------------------------------------
def test_bce_with_logits_equals_the_naive_formula_and_stays_finite_for_huge_logits():
    l, x = np.array([-3.0, 0.0, 2.0]), np.array([0.2, 0.5, 1.0])
    p = 1 / (1 + np.exp(-l))
    np.testing.assert_allclose(bce_with_logits(l, x), -x * np.log(p) - (1 - x) * np.log(1 - p), rtol=1e-12)
    assert np.all(np.isfinite(bce_with_logits(np.array([-800.0, 800.0]), np.array([1.0, 0.0]))))
    assert np.all(np.isfinite(sigmoid(np.array([-800.0, 800.0]))))


def test_gaussian_kl_matches_its_closed_form_and_vanishes_only_at_the_standard_normal():
    mu, logvar = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, np.log(4.0)])
    np.testing.assert_allclose(gaussian_kl(mu, logvar), [0.0, 0.5, 0.5 * (4 - 1 - np.log(4))], rtol=1e-12)


def test_gaussian_kl_agrees_with_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mu, logvar = 0.7, np.log(0.3)
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal(400_000)
    log_q = -0.5 * (z - mu) ** 2 / np.exp(logvar) - 0.5 * logvar
    log_p = -0.5 * z ** 2
    assert abs(np.mean(log_q - log_p) - gaussian_kl(mu, logvar)) < 5e-3


# ---- gradients ---------------------------------------------------------------------------------------------------
def test_encoder_passes_the_float64_gradient_check():
    assert_gradients_ok(tiny_vae().encoder, images(2) * 2 - 1)


def test_decoder_passes_the_float64_gradient_check():
    z = np.random.default_rng(1).standard_normal((2, 2, 7, 7))
    assert_gradients_ok(tiny_vae().decoder, z)


# the loss is a sum of ~1500 terms of size ~1: with h = 1e-6 float64 round-off (1e-16 L / h ~ 1e-7) would swamp the
# smallest gradients, so h = 1e-4 (central differences: truncation error ~ h^2 = 1e-8 relative)
def numeric_grad(vae, x, eps, name, coords, h=1e-4):
    return central_differences(lambda: vae.loss(x, eps)[0], vae.parameters()[name], coords, eps=h)


@pytest.mark.parametrize("name", ["encoder.layers.0.weight", "encoder.layers.8.bias", "decoder.layers.0.weight",
                                  "decoder.layers.10.weight"])
def test_loss_and_backward_matches_finite_differences_of_the_vae_loss(name):
    vae, x = tiny_vae(), images(2)
    eps = np.random.default_rng(2).standard_normal((2, *vae.latent_shape))
    vae.loss_and_backward(x, eps)
    analytic = vae.gradients()[name].reshape(-1)
    coords = np.random.default_rng(3).choice(analytic.size, min(8, analytic.size), replace=False)
    numeric = numeric_grad(vae, x, eps, name, coords)
    np.testing.assert_allclose(analytic[coords], numeric, rtol=1e-5, atol=1e-9)


def test_the_kl_weight_is_the_only_pull_of_mu_towards_zero():
    """beta = 0 leaves the loss indifferent to the KL; beta > 0 adds exactly beta * KL."""
    x = images(2)
    eps = np.random.default_rng(2).standard_normal((2, 2, 7, 7))
    loss0, recon0, kl0 = tiny_vae(kl_weight=0.0).loss(x, eps)
    loss1, recon1, kl1 = tiny_vae(kl_weight=0.5).loss(x, eps)
    assert loss0 == pytest.approx(recon0) and (recon1, kl1) == pytest.approx((recon0, kl0))
    assert loss1 == pytest.approx(recon1 + 0.5 * kl1)


def test_logvar_is_clipped_so_sigma_never_overflows():
    vae = tiny_vae()
    conv = vae.encoder.layers[-1]
    conv.params["bias"][2:] = 1e4                        # the log-variance channels
    _, logvar = vae.encode(images(1))
    assert logvar.max() == LOGVAR_RANGE[1]


# ---- the scale factor and files ----------------------------------------------------------------------------------
def test_scale_factor_gives_the_latents_unit_variance():
    vae = tiny_vae(np.float32)
    x = images(20)
    s = vae.fit_scale_factor(x)
    assert vae.scale_factor == s
    assert np.std(s * vae.encode_mean(x).astype(np.float64)) == pytest.approx(1.0, rel=1e-5)


def test_autoencoder_arrays_round_trip_weights_config_and_scale_factor():
    vae = tiny_vae(np.float32)
    vae.scale_factor = 1.7
    back = autoencoder_from_arrays(autoencoder_arrays(vae))
    assert back.cfg == vae.cfg and back.scale_factor == 1.7
    x = images(2)
    np.testing.assert_array_equal(back.reconstruct(x), vae.reconstruct(x))


def test_a_checkpoint_without_an_autoencoder_says_how_to_make_one():
    from tinydiff.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="train-autoencoder"):
        autoencoder_from_arrays({})
