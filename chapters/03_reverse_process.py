# %% [markdown]
"""
# Chapter 3 — The reverse process: what the network has to learn

To generate, we run the chain backwards: start from x_{T-1} ~ N(0, I) and sample x_{t-1} given x_t, down to the data.
This chapter derives what each backward step needs and ends at the loss a network is trained with.

## 1. The posterior q(x_{t-1} | x_t, x_0) is Gaussian

We cannot compute q(x_{t-1} | x_t) (it needs the whole data distribution), but if we *also* knew x0 the answer is
easy: by Bayes, q(x_{t-1} | x_t, x0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x0), a product of two Gaussians in
x_{t-1}, hence Gaussian. Completing the square (Ho et al. 2020, eq. 6-7):

    mean     = sqrt(ab_{t-1}) beta_t / (1 - ab_t) * x0  +  sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) * x_t
    variance = beta_tilde_t = beta_t (1 - ab_{t-1}) / (1 - ab_t)                    <- tinydiff.diffusion.q_posterior

Since ab_{t-1} >= ab_t, beta_tilde_t <= beta_t: knowing x0 makes the backward step *less* uncertain than the forward
one. At t = 0, ab_{-1} = 1, the mean is x0 itself and the variance 0.

## 2. Each reverse step is (nearly) Gaussian, so the model predicts a mean

When beta_t is small, the true reverse step q(x_{t-1} | x_t) is close to Gaussian too (Feller 1949; Sohl-Dickstein et
al. 2015). So we model p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I) with a fixed sigma_t^2 (beta_t or beta_tilde_t)
and let a network supply mu_theta. The natural choice: the posterior mean with x0 replaced by the network's guess.

## 3. The ELBO reduces to predicting the noise

The variational bound on -log p(x0) is a sum of KL divergences, one per step (Ho et al. 2020, eq. 5):

    L = KL(q(x_{T-1} | x0) || N(0, I)) + sum_{t >= 1} KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) - log p(x0 | x_0-step)

Between two Gaussians with fixed variances, the KL is a squared distance between means. Write x0 through the noise,
x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), and the means differ only through eps (Ho et al. 2020, eq. 12):

    KL_t = const + lambda_t ||eps - eps_theta(x_t, t)||^2,     lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - ab_t))

Ho et al. found that dropping lambda_t (weighting every t equally) trains better samples: the **simple loss**

    L_simple = E_{x0, t, eps} || eps - eps_theta( sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t ) ||^2   <- diffusion_loss

## 4. Three equivalent targets, and the score

Given x_t, predicting eps, x0 ("sample") or v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022) carry the same
information; `convert_prediction` turns one into another. They differ in how the squared error weighs each t:

    ||eps - eps_hat||^2 = snr_t ||x0 - x0_hat||^2          ||v - v_hat||^2 = (snr_t + 1) ||x0 - x0_hat||^2

And the noise prediction is, up to scale, the **score** of the noisy data distribution (Tweedie's formula):

    E[x0 | x_t] = (x_t + (1 - ab_t) grad log q(x_t)) / sqrt(ab_t),     so   grad log q(x_t) = -E[eps | x_t] / sqrt(1 - ab_t)

Figures: `posterior_check.png`, `elbo_weights.png`, `target_weights.png`, `tweedie.png`.
"""

# %%
import numpy as np

from tinydiff import claims, viz
from tinydiff.diffusion import convert_prediction, elbo_weights, q_posterior, q_sample, q_step
from tinydiff.schedules import NoiseSchedule

args = viz.chapter_args(3, "Chapter 3: the reverse process")

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                                  # steps
N = 40_000 if args.quick else 400_000     # Monte Carlo samples for the checks
T_CHECK = 300                             # the step whose posterior we check by simulation
DATA_MEAN, DATA_STD = 1.0, 0.5            # 1D Gaussian data for the Tweedie check
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
schedule = NoiseSchedule.linear(T)
plt = viz.plt()

# %% [markdown]
# ## The posterior, checked by simulation
#
# Fix x0 = 1 (a 1D "data set" of one point). Simulate many pairs (x_{t-1}, x_t) with the forward process, keep those
# whose x_t falls in a thin slice around a chosen value, and histogram their x_{t-1}. It should match
# N(mean, beta_tilde_t) from `q_posterior`, which knows nothing about the simulation.

# %%
x0 = np.ones((N, 1))
t_prev = np.full(N, T_CHECK - 1)
x_prev = q_sample(schedule, x0, t_prev, rng.standard_normal((N, 1)))               # x_{t-1} ~ q(x_{t-1} | x0)
x_t = q_step(schedule, x_prev, np.full(N, T_CHECK), rng.standard_normal((N, 1)))   # x_t ~ q(x_t | x_{t-1})
x_t_value = 0.3
in_slice = np.abs(x_t[:, 0] - x_t_value) < 0.01
mean, var = q_posterior(schedule, np.ones((1, 1)), np.full((1, 1), x_t_value), np.array([T_CHECK]))
selected = x_prev[in_slice, 0]
print(f"posterior at t={T_CHECK}: simulated mean {selected.mean():.4f} std {selected.std():.4f} "
      f"({in_slice.sum()} samples) vs formula mean {mean[0, 0]:.4f} std {np.sqrt(var[0, 0]):.4f}")
grid = np.linspace(selected.min(), selected.max(), 200)
fig, ax = plt.subplots(figsize=(5, 3))
ax.hist(selected, bins=40, density=True, alpha=0.6, label=f"simulated x_(t-1) given x_t ~ {x_t_value}")
ax.plot(grid, np.exp(-(grid - mean[0, 0]) ** 2 / (2 * var[0, 0])) / np.sqrt(2 * np.pi * var[0, 0]),
        label="q_posterior: N(mean, beta_tilde)")
ax.set_title(f"posterior at t = {T_CHECK}, x0 = 1", fontsize=9)
ax.legend(fontsize=7)
viz.save(fig, args.out / "posterior_check.png")

# %% [markdown]
# ## The ELBO's weights, and what the simple loss does to them
#
# lambda_t is huge at small t and tiny elsewhere: the true bound cares mostly about the last, nearly noise-free steps,
# which matter little for how samples look. The simple loss (lambda_t = 1) moves the effort towards noisier steps.
# (tests/test_diffusion.py checks that KL_t equals lambda_t ||eps - eps_theta||^2 exactly.)

# %%
steps = np.arange(T)
fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(steps[1:], elbo_weights(schedule, "fixed_large")[1:], label="sigma_t^2 = beta_t")
ax.semilogy(steps[1:], elbo_weights(schedule, "fixed_small")[1:], label="sigma_t^2 = beta_tilde_t")
ax.axhline(1.0, color="k", ls="--", lw=1, label="simple loss: lambda_t = 1")
ax.set_xlabel("t")
ax.set_ylabel("lambda_t")
ax.legend(fontsize=7)
viz.save(fig, args.out / "elbo_weights.png")

# %% [markdown]
# ## Each target weighs the steps differently
#
# Measured, not just claimed: perturb a consistent (x0, eps) pair, convert the perturbed prediction between types
# with `convert_prediction`, and compare squared errors. The ratio ||eps error||^2 / ||x0 error||^2 is snr_t and the
# v ratio is snr_t + 1. So an epsilon-trained model cares little about x0 at high noise, and x0-prediction cares little
# at low noise; v sits in between (and stays finite at zero terminal SNR).

# %%
t_all = np.arange(T)
x0_true = rng.standard_normal((T, 4))
eps_true = rng.standard_normal((T, 4))
xt_all = q_sample(schedule, x0_true, t_all, eps_true)
eps_hat = eps_true + 0.01 * rng.standard_normal((T, 4))
x0_hat = convert_prediction(schedule, xt_all, t_all, eps_hat, "epsilon", "sample")
v_true = convert_prediction(schedule, xt_all, t_all, eps_true, "epsilon", "v_prediction")
v_hat = convert_prediction(schedule, xt_all, t_all, eps_hat, "epsilon", "v_prediction")
x0_err = ((x0_hat - x0_true) ** 2).sum(1)
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog(schedule.snr, ((eps_hat - eps_true) ** 2).sum(1) / x0_err, ".", ms=2, label="eps error / x0 error (measured)")
ax.loglog(schedule.snr, ((v_hat - v_true) ** 2).sum(1) / x0_err, ".", ms=2, label="v error / x0 error (measured)")
ax.loglog(schedule.snr, schedule.snr, "k--", lw=1, label="snr_t")
ax.loglog(schedule.snr, schedule.snr + 1, "k:", lw=1, label="snr_t + 1")
ax.set_xlabel("snr_t")
ax.legend(fontsize=7)
viz.save(fig, args.out / "target_weights.png")

# %% [markdown]
# ## Tweedie's formula, checked by simulation
#
# For 1D Gaussian data N(m, s^2) the noisy marginal is N(sqrt(ab) m, ab s^2 + 1 - ab), whose score is
# -(x - sqrt(ab) m) / (ab s^2 + 1 - ab). Tweedie turns that score into the best possible denoiser E[x0 | x_t]
# (`convert_prediction(..., "score", "sample")`). The dots average the true x0 of simulated pairs in bins of x_t: the
# conditional mean a perfect network would learn.

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for t_show in (100, 300, 600):
    t_vec = np.full(N, t_show)
    x0_data = DATA_MEAN + DATA_STD * rng.standard_normal((N, 1))
    xt_data = q_sample(schedule, x0_data, t_vec, rng.standard_normal((N, 1)))
    ab = schedule.alphas_cumprod[t_show]
    grid = np.linspace(np.quantile(xt_data, 0.01), np.quantile(xt_data, 0.99), 25)[:, None]
    score = -(grid - np.sqrt(ab) * DATA_MEAN) / (ab * DATA_STD**2 + 1 - ab)
    denoised = convert_prediction(schedule, grid, np.full(len(grid), t_show), score, "score", "sample")
    bins = np.digitize(xt_data[:, 0], grid[:, 0])
    centres = [(grid[i - 1, 0] + grid[i, 0]) / 2 for i in range(1, len(grid))]
    averages = [x0_data[bins == i, 0].mean() for i in range(1, len(grid))]
    line, = ax.plot(grid[:, 0], denoised[:, 0], label=f"Tweedie, t = {t_show}")
    ax.plot(centres, averages, "o", ms=3, color=line.get_color())
ax.set_xlabel("x_t")
ax.set_ylabel("E[x0 | x_t]")
ax.legend(fontsize=7)
ax.set_title("lines: score -> x0 by Tweedie; dots: simulated averages", fontsize=8)
viz.save(fig, args.out / "tweedie.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
