"""Exercise 20.1: the VAE's backward pass through the reparameterised sample and the KL term (Kingma & Welling 2014,
Sec. 2.4 and App. B) (chapters/20_latent_diffusion.py).

The encoder and decoder are swapped for stand-ins with exact, hand-checkable gradients (fixed moments [mu; logvar],
and a linear map from z to the logits), so the test needs only the region itself, not the convolution backward
passes of Exercises 4.3 and 5.3: it catches dL/dz from the decoder and the gradient the region hands to the encoder,
and compares them with the formulas and with finite differences of the loss in mu and logvar."""

import functools

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close
from tinydiff.models.autoencoder import VAE, AutoencoderConfig
from tinydiff.nn.gradcheck import central_differences

B, Z = 2, 2
RNG = np.random.default_rng(0)
MOMENTS = np.concatenate([RNG.standard_normal((B, Z, 7, 7)),                     # mu
                          RNG.uniform(-2.0, 1.0, (B, Z, 7, 7))], axis=1)         # logvar: sigma from 0.37 to 1.65
X = RNG.random((B, 1, 28, 28))                                                   # images in [0, 1]
EPS = RNG.standard_normal((B, Z, 7, 7))
W = RNG.standard_normal((Z * 49, 784)) / 14.0                                    # the linear decoder


class _FixedEncoder:
    """forward -> the moments (B, 2Z, 7, 7) whatever the image; backward records dL/dmoments."""

    def __init__(self, moments):
        self.moments, self.grad = moments, None

    def forward(self, x):
        return self.moments

    def backward(self, g, *args, **kwargs):
        self.grad = np.array(g, dtype=np.float64)


class _LinearDecoder:
    """logits = z W (B, 1, 28, 28); backward: dL/dz = dL/dlogits W^T (recorded)."""

    def __init__(self):
        self.dz = None

    def forward(self, z):
        return (np.asarray(z).reshape(len(z), -1) @ W).reshape(len(z), 1, 28, 28)

    def backward(self, g, *args, **kwargs):
        self.dz = (np.asarray(g).reshape(len(g), -1) @ W.T).reshape(len(g), Z, 7, 7)
        return self.dz


def _vae(beta, moments=MOMENTS):
    vae = VAE(AutoencoderConfig(base_channels=1, latent_channels=Z, kl_weight=beta), rng=0, dtype=np.float64)
    vae.encoder, vae.decoder = _FixedEncoder(moments), _LinearDecoder()
    return vae


def _run(beta):
    """(dz, dmoments) of one loss_and_backward."""
    vae = _vae(beta)
    vae.loss_and_backward(X, EPS)
    return vae.decoder.dz, vae.encoder.grad


@functools.lru_cache(maxsize=None)
def _numeric(beta, h=1e-5):
    """dL/dmoments by central differences of the loss (B, 2Z, 7, 7), one VAE whose fixed moments are nudged."""
    vae = _vae(beta, MOMENTS.copy())
    return central_differences(lambda: vae.loss(X, EPS)[0], vae.encoder.moments, eps=h)   # nudges the moments


MU, LOGVAR = MOMENTS[:, :Z], MOMENTS[:, Z:]
SIGMA = np.exp(0.5 * LOGVAR)


# ---- through the sample ------------------------------------------------------------------------------------------
@pytest.mark.ex20_1(part="through the sample (beta = 0)", points=1)
def test_gradient_through_the_reparameterised_sample():
    dz, dm = _run(0.0)
    expect_close("ex20_1", "dL/dmu (beta = 0)", dm[:, :Z], dz, likely=[
        (dz * EPS, "z = mu + sigma eps is linear in mu with slope 1: dL/dmu = dL/dz"),
    ], hint="z = mu + exp(logvar / 2) eps, so dL/dmu = dL/dz")
    expect_close("ex20_1", "dL/dlogvar (beta = 0)", dm[:, Z:], dz * EPS * 0.5 * SIGMA, likely=[
        (dz * EPS * SIGMA, "d sigma / d logvar = sigma / 2 (sigma = exp(logvar / 2)): the factor 1/2 is missing"),
        (dz * 0.5 * SIGMA, "z = mu + sigma eps: dz/d sigma = eps, so eps multiplies the gradient"),
        (dz * EPS * 0.5 * SIGMA ** 2, "d/dlogvar exp(logvar / 2) = exp(logvar / 2) / 2 = sigma / 2, not sigma^2 / 2"),
        (dz * EPS * SIGMA ** 2, "d/dlogvar exp(logvar / 2) = sigma / 2"),
    ], hint="dL/dlogvar = dL/dz * eps * sigma / 2")


@pytest.mark.ex20_1(part="through the sample (beta = 0)", points=1)
def test_gradient_without_the_kl_matches_finite_differences():
    expect_close("ex20_1", "dL/d[mu; logvar] (beta = 0)", _run(0.0)[1], _numeric(0.0), rtol=1e-5, atol=1e-8,
                 hint="central differences of the loss in mu and logvar disagree with your dmu, dlogvar")


# ---- the KL term -------------------------------------------------------------------------------------------------
def _kl_part(beta):
    """The KL term's share of the gradient: dmoments(beta) - dmoments(0) (the path through z cancels)."""
    return _run(beta)[1] - _run(0.0)[1]


@pytest.mark.ex20_1(part="the KL term (beta > 0)", points=2)
def test_gradient_of_the_kl_term():
    beta = 0.7
    dkl, s2 = _kl_part(beta), SIGMA ** 2
    expect_close("ex20_1", f"the KL term's part of dL/dmu (beta = {beta})", dkl[:, :Z], beta * MU / B, likely=[
        (beta * MU, "the loss averages over the B images: beta mu / B"),
        (np.zeros_like(MU), "the KL term's gradient beta mu / B is missing"),
        (-beta * MU / B, "KL grows with mu^2: its gradient is + beta mu / B"),
    ], hint="KL = 1/2 sum (mu^2 + e^logvar - 1 - logvar): dKL/dmu = mu, then times beta / B")
    expect_close("ex20_1", f"the KL term's part of dL/dlogvar (beta = {beta})", dkl[:, Z:], beta * (s2 - 1) / (2 * B),
                 likely=[
                     (beta * (s2 - 1) / 2, "the loss averages over the B images: divide the KL gradient by B"),
                     (beta * (s2 - 1) / B, "dKL/dlogvar = (sigma^2 - 1) / 2: the 1/2 is missing"),
                     (np.zeros_like(MU), "the KL term's gradient beta (sigma^2 - 1) / (2 B) is missing"),
                     (beta * (1 - s2) / (2 * B), "dKL/dlogvar = (exp(logvar) - 1) / 2: positive when sigma > 1"),
                     (beta * (SIGMA - 1) / (2 * B), "d/dlogvar e^logvar = e^logvar = sigma^2, not sigma"),
                 ], hint="dKL/dlogvar = (sigma^2 - 1) / 2, then times beta / B")


@pytest.mark.ex20_1(part="the KL term (beta > 0)", points=2)
def test_the_kl_terms_gradient_matches_finite_differences():
    expect_close("ex20_1", "the KL term's part of dL/d[mu; logvar] (beta = 0.7)", _kl_part(0.7),
                 _numeric(0.7) - _numeric(0.0), rtol=1e-5, atol=1e-8,
                 hint="central differences of beta * KL disagree with the KL part of your dmu, dlogvar")
