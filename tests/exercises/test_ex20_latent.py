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


def _expected(dz, eps, mu, logvar, beta, B=2, half=0.5, per_batch=True):
    sigma = np.exp(0.5 * logvar)
    n = B if per_batch else 1
    return dz + beta * mu / n, dz * eps * half * sigma + beta * half * (sigma ** 2 - 1) / n


@pytest.mark.ex20_1(part="through the sample (beta = 0)", points=1)
def test_gradient_through_the_reparameterised_sample():
    _, _, eps, mu, logvar, dz, dm = _run(0.0)
    Z = mu.shape[1]
    dmu, dlogvar = _expected(dz, eps, mu, logvar, 0.0)
    sigma = np.exp(0.5 * logvar)
    expect_close("ex20_1", "dL/dmu (beta = 0)", dm[:, :Z], dmu, likely=[
        (dz * eps, "z = mu + sigma eps is linear in mu with slope 1: dL/dmu = dL/dz"),
    ], hint="z = mu + exp(logvar / 2) eps, so dL/dmu = dL/dz")
    expect_close("ex20_1", "dL/dlogvar (beta = 0)", dm[:, Z:], dlogvar, likely=[
        (dz * eps * sigma, "d sigma / d logvar = sigma / 2 (sigma = exp(logvar / 2)): the factor 1/2 is missing"),
        (dz * 0.5 * sigma, "z = mu + sigma eps: dz/d sigma = eps, so eps multiplies the gradient"),
        (dz * eps * 0.5 * sigma ** 2, "d/dlogvar exp(logvar / 2) = exp(logvar / 2) / 2 = sigma / 2, not sigma^2 / 2"),
        (dz * eps * sigma ** 2, "d/dlogvar exp(logvar / 2) = sigma / 2"),
    ], hint="dL/dlogvar = dL/dz * eps * sigma / 2")


@pytest.mark.ex20_1(part="the KL term (beta > 0)", points=2)
def test_gradient_of_the_kl_term():
    beta = 0.7
    _, _, eps, mu, logvar, dz, dm = _run(beta)
    Z = mu.shape[1]
    dmu, dlogvar = _expected(dz, eps, mu, logvar, beta)
    expect_close("ex20_1", f"dL/dmu (beta = {beta})", dm[:, :Z], dmu, likely=[
        (_expected(dz, eps, mu, logvar, beta, per_batch=False)[0], "the loss averages over the B images: beta mu / B"),
        (_expected(dz, eps, mu, logvar, 0.0)[0], "the KL term's gradient beta mu / B is missing"),
    ], hint="dL/dmu = dL/dz + beta mu / B")
    expect_close("ex20_1", f"dL/dlogvar (beta = {beta})", dm[:, Z:], dlogvar, likely=[
        (_expected(dz, eps, mu, logvar, beta, per_batch=False)[1], "the loss averages over the B images: divide "
                                                                    "the KL gradient by B"),
        (_expected(dz, eps, mu, logvar, beta, half=1.0)[1], "both terms carry 1/2: d sigma/d logvar = sigma / 2, "
                                                            "dKL/dlogvar = (sigma^2 - 1) / 2"),
        (_expected(dz, eps, mu, logvar, 0.0)[1], "the KL term's gradient beta (sigma^2 - 1) / (2 B) is missing"),
        (dz * eps * 0.5 * np.exp(0.5 * logvar) + beta * 0.5 * (1 - np.exp(logvar)) / 2,
         "dKL/dlogvar = (exp(logvar) - 1) / 2: positive when sigma > 1"),
    ], hint="KL = 1/2 sum (mu^2 + e^logvar - 1 - logvar): dKL/dlogvar = (sigma^2 - 1) / 2, then times beta / B")


@pytest.mark.ex20_1(part="the KL term (beta > 0)", points=2)
def test_encoder_gradients_match_finite_differences_of_the_loss():
    vae, x, eps, *_ = _run(0.7)
    name = "encoder.layers.8.weight"                                        # the 1x1 conv that makes mu and logvar
    analytic = vae.gradients()[name].reshape(-1).copy()
    p = vae.parameters()[name].reshape(-1)
    h, numeric = 1e-4, np.zeros(p.size)
    for i in range(p.size):
        old = p[i]
        p[i] = old + h
        up = vae.loss(x, eps)[0]
        p[i] = old - h
        down = vae.loss(x, eps)[0]
        p[i] = old
        numeric[i] = (up - down) / (2 * h)
    expect_close("ex20_1", f"dL/d{name} (the layer that outputs mu and logvar)", analytic, numeric, rtol=1e-5, atol=1e-9,
                 hint="central differences of the whole loss disagree with your backward pass: check dmu and dlogvar")
