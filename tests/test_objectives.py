"""Training objectives (tinydiff.objectives): EDM's preconditioning (Karras et al. 2022, Table 1), NCSN's denoising
score matching (Song & Ermon 2019; Vincent 2011), sliced score matching, and training and sampling each objective."""

import numpy as np
import pytest

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.objectives import OBJECTIVES, get_objective, sampling_plan
from tinydiff.preconditioning import (
    EDM, NCSN, Preconditioned, dsm_loss, edm_precondition, preconditioning, sliced_score_matching_loss, time_input,
    weighted_mse,
)
from tinydiff.processes import EDMProcess, VEProcess
from tinydiff.train import TrainConfig, train

SIGMAS = np.geomspace(0.002, 80.0, 25)
MIX = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))


# ---- EDM's preconditioning --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sd", [0.5, 1.0])
def test_edm_input_and_effective_target_have_unit_variance(sd):
    # x = x0 + sigma n with Var x0 = sd^2: Var(c_in x) = 1 and Var((x0 - c_skip x) / c_out) = 1 (Karras et al. App. B.6)
    c_skip, c_out, c_in, lam = edm_precondition(SIGMAS, sd)
    np.testing.assert_allclose(c_in ** 2 * (sd ** 2 + SIGMAS ** 2), 1.0, rtol=1e-12)
    target_var = ((1 - c_skip) ** 2 * sd ** 2 + c_skip ** 2 * SIGMAS ** 2) / c_out ** 2
    np.testing.assert_allclose(target_var, 1.0, rtol=1e-12)
    np.testing.assert_allclose(lam * c_out ** 2, 1.0, rtol=1e-12)          # lambda = 1 / c_out^2: unit loss weight


def test_edm_c_skip_minimises_the_effective_target_variance():
    # d/dc [(1 - c)^2 sd^2 + c^2 sigma^2] = 0 at c = sd^2 / (sd^2 + sigma^2) (their eq. 131)
    sd = 0.5
    c_skip = edm_precondition(SIGMAS, sd)[0]
    var = lambda c: (1 - c) ** 2 * sd ** 2 + c ** 2 * SIGMAS ** 2          # noqa: E731
    assert np.all(var(c_skip) < var(c_skip + 1e-3)) and np.all(var(c_skip) < var(c_skip - 1e-3))


@pytest.mark.parametrize("name", ["edm", "ncsn"])
def test_network_that_outputs_the_target_denoises_exactly(name):
    # D = c_skip x + c_out F with F = the effective target gives back x0
    obj = preconditioning(name)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((64, 2)).astype(np.float64)
    x_in, t_in, target, weight, sigma = obj.training_batch(x0, rng)
    c_skip, c_out, c_in, _ = obj.coefficients(sigma[:, None])
    x = x_in / c_in
    np.testing.assert_allclose(c_skip * x + c_out * target, x0, atol=1e-9)
    np.testing.assert_array_equal(weight, 1.0)
    assert t_in.dtype == np.int64 and t_in.min() >= 0 and t_in.max() <= 999


def test_edm_draws_log_normal_sigma():
    s = EDM(0.002, 80.0).draw_sigma(200_000, np.random.default_rng(0))
    assert abs(np.log(s).mean() - (-1.2)) < 0.01 and abs(np.log(s).std() - 1.2) < 0.01


def test_ncsn_draws_geometric_sigma_between_its_end_points():
    s = NCSN(0.01, 10.0).draw_sigma(100_000, np.random.default_rng(0))
    assert s.min() >= 0.01 and s.max() <= 10.0
    counts = np.histogram(np.log(s), bins=10)[0]                           # uniform in log sigma
    assert counts.min() > 0.95 * counts.mean()


def test_time_input_is_monotone_in_sigma_and_covers_0_to_999():
    t = time_input(np.geomspace(0.002, 80.0, 50))
    assert t[0] == 0 and t[-1] == 999 and np.all(np.diff(t) > 0)


# ---- score matching ---------------------------------------------------------------------------------------------
def test_denoising_score_matching_target_averages_to_the_true_score():
    # Vincent (2011): E[ -(x - x0) / sigma^2 | x ] = grad log p_sigma(x), so the DSM loss is stationary at the
    # exact score: the mean of (score - target), weighted by sigma^2, vanishes (up to sampling error)
    rng = np.random.default_rng(0)
    sigma = 0.5
    x0 = MIX.sample(200_000, rng=rng)
    x = x0 + sigma * rng.standard_normal(x0.shape)
    den = GaussianMixtureDenoiser(MIX, EDMProcess(), "score")
    score = den(x, np.full(len(x), sigma))
    residual = sigma ** 2 * (score - (-(x - x0) / sigma ** 2))               # (N, 2)
    assert np.all(np.abs(residual.mean(0)) < 4 * residual.std(0) / np.sqrt(len(x)))
    loss = dsm_loss(score, x0, x, np.full(len(x), sigma))
    assert loss < dsm_loss(1.1 * score, x0, x, np.full(len(x), sigma))
    assert loss < dsm_loss(score + 0.05, x0, x, np.full(len(x), sigma))


def test_ncsn_regression_is_dsm_with_weight_sigma_squared():
    # sigma^2 / 2 || F / sigma + (x - x0) / sigma^2 ||^2 = || F + n ||^2 / 2: the regression on -n, times D/2
    rng = np.random.default_rng(1)
    x0, n, F = rng.standard_normal((3, 50, 2))
    sigma = np.exp(rng.uniform(-3, 2, 50))
    x = x0 + sigma[:, None] * n
    mse = weighted_mse(F, -n)[0]
    np.testing.assert_allclose(dsm_loss(F / sigma[:, None], x0, x, sigma), mse * 2 / 2, rtol=1e-12)


def test_sliced_score_matching_is_minimised_by_the_true_score():
    # data N(0, v I); model s(x) = -a x, ds/dx = -a I: E[v^T J v + (v^T s)^2 / 2] = -a D + a^2 v D / 2, min at a = 1/v
    rng = np.random.default_rng(0)
    var = 2.0
    x = np.sqrt(var) * rng.standard_normal((100_000, 2))
    v = rng.standard_normal(x.shape)
    losses = {a: sliced_score_matching_loss(-a * x, -a * v, v) for a in (0.3, 0.5, 0.7)}
    assert losses[0.5] < losses[0.3] and losses[0.5] < losses[0.7]


def test_weighted_mse_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    out, target = rng.standard_normal((2, 4, 3))
    w = rng.uniform(0.5, 2, 4)
    _, grad, _ = weighted_mse(out, target, w)
    e = np.zeros_like(out)
    e[1, 2] = 1e-6
    fd = (weighted_mse(out + e, target, w)[0] - weighted_mse(out - e, target, w)[0]) / 2e-6
    assert abs(fd - grad[1, 2]) < 1e-8


# ---- the registry and the sampling plan ------------------------------------------------------------------------
def test_registry_holds_ncsn_and_edm_with_their_preconditioning():
    assert {"ddpm", "ncsn", "edm"} <= set(OBJECTIVES)
    assert get_objective("ddpm").precondition is None
    assert isinstance(get_objective("edm").precondition(None), EDM)
    assert isinstance(get_objective("ncsn").process(None), VEProcess)
    with pytest.raises(ValueError, match="expected one of"):
        get_objective("dsm")


@pytest.mark.parametrize("name", ["ddpm", "ncsn", "edm"])
def test_each_objective_has_a_default_sampler_that_applies(name):
    sampler, steps, _ = sampling_plan(name)
    assert sampler in get_objective(name).samplers


def test_edm_default_is_18_heun_steps_and_takes_churn():
    assert sampling_plan("edm")[:2] == ("edm", 18)                     # 35 NFE
    assert sampling_plan("edm", churn=40)[2] == {"churn": 40.0}


@pytest.mark.parametrize("name, sampler", [("ddpm", "langevin"), ("ddpm", "pc"), ("edm", "nope")])
def test_a_sampler_that_does_not_apply_names_the_ones_that_do(name, sampler):
    with pytest.raises(ValueError, match=f"does not apply.*{get_objective(name).samplers[0]}"):
        sampling_plan(name, sampler)


def test_churn_belongs_to_the_edm_sampler():
    with pytest.raises(ValueError, match="churn applies to the 'edm' sampler"):
        sampling_plan("ncsn", "pc", churn=10)


# ---- training and sampling --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["edm", "ncsn"])
def test_loss_goes_down(name):
    # both regressions start near 1 (unit-variance targets); EDM's floor is high (~0.78 on moons after 8000 steps:
    # at large sigma x0 cannot be recovered), so the check asks for a 5% drop
    log = train(TrainConfig(data="moons", objective=name, steps=150, batch_size=128, n_train=2000, lr=1e-2,
                            width=32, emb_dim=16, log_every=50, loss_buckets=5), progress=False).log
    assert np.mean(log.loss[-30:]) < 0.95 * np.mean(log.loss[:30])


@pytest.mark.parametrize("name, process", [("edm", EDMProcess), ("ncsn", VEProcess)])
def test_preconditioned_exact_network_samples_the_mixture(name, process):
    # a "network" that returns the exact effective target E[F | x] turns into the exact denoiser through D
    obj = preconditioning(name)
    plan = sampling_plan(name)
    exact = GaussianMixtureDenoiser(MIX, obj.process(), "sample")

    class ExactF:
        def __call__(self, x_in, t_in):
            sigma = self.sigma                                               # set by the wrapper below
            c_skip, c_out, c_in, _ = obj.coefficients(sigma[:, None])
            x = x_in / c_in
            return (exact(x, obj.process().t_of_noise_level(sigma)) - c_skip * x) / c_out

    net = ExactF()
    wrapped = Preconditioned(net, obj)

    def model(x, t):
        net.sigma = obj.process().noise_level(t)
        return wrapped(x, t)

    from tinydiff.samplers import sample
    assert isinstance(obj.process(), process)
    x = sample(model, (1000, 2), obj.process(), method=plan[0], steps=plan[1], prediction_type=obj.prediction_type,
               rng=0)
    k = np.argmin(((x[:, None] - MIX.means[None]) ** 2).sum(-1), axis=1)
    assert np.all(np.abs(np.bincount(k, minlength=8) / 1000 - 1 / 8) < 0.04)
    assert abs(np.sqrt(np.mean((x - MIX.means[k]) ** 2)) - 0.1) < 0.015
