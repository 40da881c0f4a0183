"""Exercise 20.1: the VAE's backward pass through the reparameterised sample and the KL term (Kingma & Welling 2014,
Sec. 2.4 and App. B) (chapters/20_latent_diffusion.py). A tiny float64 VAE; the test catches dL/dz from the decoder
and the gradient the region hands to the encoder, and compares them with the formulas and with finite differences."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close
from tinydiff.models.autoencoder import VAE, AutoencoderConfig


def _run(beta):
    """(mu, logvar, eps, dz, dmoments) of one loss_and_backward of a tiny VAE on 2 images."""
    vae = VAE(AutoencoderConfig(base_channels=2, latent_channels=2, kl_weight=beta), rng=0, dtype=np.float64)
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    eps = np.random.default_rng(1).standard_normal((2, *vae.latent_shape))
    seen = {}
    dec, enc = vae.decoder.backward, vae.encoder.backward

    def decoder_backward(g, *a, **k):
        seen["dz"] = dec(g, *a, **k)
        return seen["dz"]

    def encoder_backward(g, *a, **k):
        seen["dmoments"] = np.array(g)
        return enc(g, *a, **k)

    vae.decoder.backward, vae.encoder.backward = decoder_backward, encoder_backward
    vae.loss_and_backward(x, eps)
    mu, logvar = vae.encode(x)
    return vae, x, eps, mu, logvar, seen["dz"], seen["dmoments"]


@pytest.mark.ex20_1(part="through the sample (beta = 0)", points=1)
def test_gradient_through_the_reparameterised_sample():
    _, _, eps, mu, logvar, dz, dm = _run(0.0)
    Z, sigma = mu.shape[1], np.exp(0.5 * logvar)
    dmu, dlogvar = dz, dz * eps * 0.5 * sigma                              # beta = 0: only the path through z
    expect_close("ex20_1", "dL/dmu (beta = 0)", dm[:, :Z], dmu, likely=[
        (dz * eps, "z = mu + sigma eps is linear in mu with slope 1: dL/dmu = dL/dz"),
    ], hint="z = mu + exp(logvar / 2) eps, so dL/dmu = dL/dz")
    expect_close("ex20_1", "dL/dlogvar (beta = 0)", dm[:, Z:], dlogvar, likely=[
        (dz * eps * sigma, "d sigma / d logvar = sigma / 2 (sigma = exp(logvar / 2)): the factor 1/2 is missing"),
        (dz * 0.5 * sigma, "z = mu + sigma eps: dz/d sigma = eps, so eps multiplies the gradient"),
        (dz * eps * 0.5 * sigma ** 2, "d/dlogvar exp(logvar / 2) = exp(logvar / 2) / 2 = sigma / 2, not sigma^2 / 2"),
        (dz * eps * sigma ** 2, "d/dlogvar exp(logvar / 2) = sigma / 2"),
    ], hint="dL/dlogvar = dL/dz * eps * sigma / 2")


def _kl_part(beta):
    """The KL term's share of the gradient handed to the encoder: dmoments(beta) - dmoments(0). dz is the same for
    both (the decoder's backward does not see beta), so the part through the sample cancels."""
    _, _, eps, mu, logvar, dz, dm = _run(beta)
    return mu, logvar, dm - _run(0.0)[-1]


@pytest.mark.ex20_1(part="the KL term (beta > 0)", points=2)
def test_gradient_of_the_kl_term():
    beta, B = 0.7, 2
    mu, logvar, dkl = _kl_part(beta)
    Z, sigma2 = mu.shape[1], np.exp(logvar)
    expect_close("ex20_1", f"the KL term's part of dL/dmu (beta = {beta})", dkl[:, :Z], beta * mu / B, likely=[
        (beta * mu, "the loss averages over the B images: beta mu / B"),
        (np.zeros_like(mu), "the KL term's gradient beta mu / B is missing"),
        (-beta * mu / B, "KL grows with mu^2: its gradient pulls mu towards 0 with + beta mu / B"),
    ], hint="KL = 1/2 sum (mu^2 + e^logvar - 1 - logvar): dKL/dmu = mu, then times beta / B")
    expect_close("ex20_1", f"the KL term's part of dL/dlogvar (beta = {beta})", dkl[:, Z:], beta * (sigma2 - 1) / (2 * B),
                 likely=[
                     (beta * (sigma2 - 1) / 2, "the loss averages over the B images: divide the KL gradient by B"),
                     (beta * (sigma2 - 1) / B, "dKL/dlogvar = (sigma^2 - 1) / 2: the 1/2 is missing"),
                     (np.zeros_like(mu), "the KL term's gradient beta (sigma^2 - 1) / (2 B) is missing"),
                     (beta * (1 - sigma2) / (2 * B), "dKL/dlogvar = (exp(logvar) - 1) / 2: positive when sigma > 1"),
                     (beta * (np.exp(0.5 * logvar) - 1) / (2 * B), "d/dlogvar e^logvar = e^logvar = sigma^2, not sigma"),
                 ], hint="dKL/dlogvar = (sigma^2 - 1) / 2, then times beta / B")


LAYER = "encoder.layers.8.weight"                           # the 1x1 conv that outputs mu and logvar


def _analytic_and_numeric(beta, h=1e-4):
    vae, x, eps, *_ = _run(beta)
    analytic = vae.gradients()[LAYER].reshape(-1).copy()
    p = vae.parameters()[LAYER].reshape(-1)
    numeric = np.zeros(p.size)
    for i in range(p.size):
        old = p[i]
        p[i] = old + h
        up = vae.loss(x, eps)[0]
        p[i] = old - h
        down = vae.loss(x, eps)[0]
        p[i] = old
        numeric[i] = (up - down) / (2 * h)
    return analytic, numeric


@pytest.mark.ex20_1(part="through the sample (beta = 0)", points=1)
def test_encoder_gradients_match_finite_differences_without_the_kl():
    analytic, numeric = _analytic_and_numeric(0.0)
    expect_close("ex20_1", f"dL/d{LAYER} (beta = 0)", analytic, numeric, rtol=1e-5, atol=1e-9,
                 hint="central differences of the loss disagree with your backward pass: check dmu and dlogvar")


@pytest.mark.ex20_1(part="the KL term (beta > 0)", points=2)
def test_the_kl_terms_gradient_matches_finite_differences():
    a1, n1 = _analytic_and_numeric(0.7)
    a0, n0 = _analytic_and_numeric(0.0)
    expect_close("ex20_1", f"the KL term's part of dL/d{LAYER} (beta = 0.7)", a1 - a0, n1 - n0, rtol=1e-5, atol=1e-9,
                 hint="central differences of beta * KL disagree with the KL part of your dmu, dlogvar")
