"""The equations chapters 14-16 state, one test each (the others live beside their code: Langevin's stationary
variance, the snr rule, the churn rule and plain Langevin's mode weights in test_sde_samplers.py; EDM's unit variances,
c_skip, the log-normal and DSM's target in test_objectives.py; the VP/VE f and g and the rho grid in
test_processes.py; the orders of accuracy in test_order_of_accuracy.py)."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.preconditioning import edm_precondition
from tinydiff.processes import EDMProcess, VEProcess, VPProcess
from tinydiff.samplers import AnnealedLangevin, Step, reverse_sde_step

MIX = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
RNG = np.random.default_rng(0)


# ---- chapter 14 ---------------------------------------------------------------------------------------------------
def test_tweedie_in_the_variance_exploding_frame():
    # D(x; sigma) = x + sigma^2 grad log p_sigma(x)
    p = VEProcess(0.01, 10.0)
    x = RNG.standard_normal((50, 2)) * 2
    for sigma in (0.05, 0.5, 5.0):
        t = np.full(50, float(p.t_of_noise_level(sigma)))
        D = GaussianMixtureDenoiser(MIX, p, "sample")(x, t)
        score = GaussianMixtureDenoiser(MIX, p, "score")(x, t)
        np.testing.assert_allclose(D, x + sigma ** 2 * score, atol=1e-10)


class _Zeros:
    def standard_normal(self, shape):
        return np.zeros(shape)


def test_annealed_langevin_step_is_eps_sigma_i_squared_over_sigma_L_squared():
    # Song & Ermon (2019), Alg. 1 without noise: z' = z + alpha_i / 2 score, alpha_i = eps sigma_i^2 / sigma_L^2
    sig_i, sig_L, eps_rule = 2.0, 0.1, 1e-3
    ab = np.array([1 / (1 + sig_i ** 2), 1 / (1 + sig_L ** 2), 1.0])       # VP-frame levels of sigma_i, sigma_L, data
    stepper = AnnealedLangevin(n_steps=1, eps=eps_rule)
    stepper.rng = _Zeros()
    stepper.start(ab, denoise=None)
    z = np.array([[1.0, -2.0]])
    eps = np.array([[0.3, 0.4]])                                           # the model's eps: score = -eps / sigma_i
    x_new = stepper.step(np.sqrt(ab[0]) * z, Step(0, 2, 0.0, 1.0, ab[0], ab[1]), None, eps, None)
    alpha_i = eps_rule * sig_i ** 2 / sig_L ** 2
    np.testing.assert_allclose(x_new / np.sqrt(ab[1]), z + alpha_i / 2 * (-eps / sig_i), rtol=1e-12)


# ---- chapter 15 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("process", [VPProcess(), VEProcess(0.01, 10.0)])
def test_f_and_g_give_the_marginal_variance(process):
    # d sigma^2 / dt = 2 f sigma^2 + g^2 (the variance ODE of dx = f x dt + g dW) holds with f = d log alpha / dt,
    # g^2 = d sigma^2 / dt - 2 f sigma^2; and the mean follows d alpha / dt = f alpha
    t = np.linspace(0.05, 0.95, 19)
    f, g2 = process.sde(t)
    a, s = process.alpha_sigma(t)
    h = 1e-6
    ds2 = (process.alpha_sigma(t + h)[1] ** 2 - process.alpha_sigma(t - h)[1] ** 2) / (2 * h)
    da = (process.alpha_sigma(t + h)[0] - process.alpha_sigma(t - h)[0]) / (2 * h)
    np.testing.assert_allclose(ds2, 2 * f * s ** 2 + g2, rtol=1e-6)
    np.testing.assert_allclose(da, f * a, rtol=1e-6, atol=1e-12)


def test_reverse_sde_step_in_the_sigma_frame():
    # z' = z + (sigma^2 - sigma'^2) score + sqrt(sigma^2 - sigma'^2) xi, score = -eps / sigma; at sigma' = 0: x0
    sig, sig_p = 3.0, 1.0
    ab_t, ab_p = 1 / (1 + sig ** 2), 1 / (1 + sig_p ** 2)
    z, eps, xi = RNG.standard_normal((3, 4, 2))
    out = reverse_sde_step(np.sqrt(ab_t) * z, eps, ab_t, ab_p, xi) / np.sqrt(ab_p)
    np.testing.assert_allclose(out, z + (sig ** 2 - sig_p ** 2) * (-eps / sig) + np.sqrt(sig ** 2 - sig_p ** 2) * xi,
                               rtol=1e-12)
    np.testing.assert_allclose(reverse_sde_step(np.sqrt(ab_t) * z, eps, ab_t, 1.0, xi), z - sig * eps, rtol=1e-12)


def test_probability_flow_drift_is_eps_in_the_sigma_frame():
    # dx/dt = f x - g^2 / 2 score  <=>  dz/d(sigma/alpha) = eps for z = x / alpha (Karras et al. 2022, eq. 4)
    p = VPProcess()
    t = 0.4
    x = RNG.standard_normal((20, 2))
    f, g2 = (float(v) for v in p.sde(np.float64(t)))
    score = GaussianMixtureDenoiser(MIX, p, "score")(x, np.full(20, t))
    eps = GaussianMixtureDenoiser(MIX, p, "epsilon")(x, np.full(20, t))
    a, s = (float(v) for v in p.alpha_sigma(t))
    da, ds = (float(v) for v in p.derivatives(t))
    d_level = (ds * a - s * da) / a ** 2                                   # d(sigma / alpha) / dt
    np.testing.assert_allclose(f * x - 0.5 * g2 * score, (da / a) * x + a * eps * d_level, rtol=1e-8)


# ---- chapter 16 ---------------------------------------------------------------------------------------------------
def test_edm_loss_is_a_weighted_regression_on_the_effective_target():
    # lambda || D - x0 ||^2 = lambda c_out^2 || F - (x0 - c_skip x) / c_out ||^2   (Karras et al. 2022, eq. 8)
    sigma = np.geomspace(0.002, 80, 7)[:, None]
    x0, n, F = RNG.standard_normal((3, 7, 2))
    x = x0 + sigma * n
    c_skip, c_out, c_in, lam = edm_precondition(sigma, 0.5)
    D = c_skip * x + c_out * F
    np.testing.assert_allclose(lam * (D - x0) ** 2, lam * c_out ** 2 * (F - (x0 - c_skip * x) / c_out) ** 2,
                               rtol=1e-10)


def test_edm_process_time_is_the_noise_level():
    p = EDMProcess()
    t = np.array([0.002, 1.0, 80.0])
    np.testing.assert_array_equal(p.noise_level(t), t)
