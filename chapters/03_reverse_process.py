# %% [markdown]
r"""
# Chapter 3 — The reverse process: what the network has to learn

To generate, we run the chain backwards: start from $x_{T-1} \sim \mathcal{N}(0, I)$ and sample $x_{t-1}$ given $x_t$,
down to the data.
This chapter derives what each backward step needs and ends at the loss a network is trained with.

## 1. The posterior $q(x_{t-1} \mid x_t, x_0)$ is Gaussian

We cannot compute $q(x_{t-1} \mid x_t)$ (it needs the whole data distribution), but if we *also* knew $x_0$ the answer
is easy: by Bayes, $q(x_{t-1} \mid x_t, x_0)$ is proportional to $q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)$, a product
of two Gaussians in $x_{t-1}$, hence Gaussian. Completing the square (Ho et al. 2020, eq. 6-7):

$$\tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\, \beta_t}{1 - \bar\alpha_t}\, x_0 +
\frac{\sqrt{\alpha_t}\, (1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\, x_t, \qquad
\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\, \beta_t$$

(`tinydiff.diffusion.q_posterior` returns this mean and variance.)

Since $\bar\alpha_{t-1} \ge \bar\alpha_t$, $\tilde\beta_t \le \beta_t$: knowing $x_0$ makes the backward step *less*
uncertain than the forward one. At $t = 0$, $\bar\alpha_{-1} = 1$, the mean is $x_0$ itself and the variance 0.

## 2. Each reverse step is (nearly) Gaussian, so the model predicts a mean

When $\beta_t$ is small, the true reverse step $q(x_{t-1} \mid x_t)$ is close to Gaussian too (Feller 1949;
Sohl-Dickstein et al. 2015). So we model
$p_\theta(x_{t-1} \mid x_t) = \mathcal{N}\big(\mu_\theta(x_t, t), \sigma_t^2 I\big)$ with a fixed $\sigma_t^2$
($\beta_t$ or $\tilde\beta_t$) and let a network supply $\mu_\theta$. The natural choice: the posterior mean with $x_0$
replaced by the network's guess.

## 3. The ELBO reduces to predicting the noise

The variational bound on $-\log p_\theta(x_0)$ is a sum of KL divergences, one per step (Ho et al. 2020, eq. 5):

$$L = \mathrm{KL}\big(q(x_{T-1} \mid x_0) \,\|\, \mathcal{N}(0, I)\big) +
\sum_{t \ge 1} \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t)\big) -
\log p_\theta\big(x_0 \mid x_{(t=0)}\big)$$

(Index convention, chapter 1: $x_0$ is the data; $x_{(t=0)}$ is the data after one noising step, so the last term is
the "decoder" that maps step 0 back to the data: Ho et al.'s $L_0 = -\log p_\theta(x_0 \mid x_1)$ in their 1-based
counting.)

Between two Gaussians with fixed variances, the KL is a squared distance between means. Write $x_0$ through the noise,
$x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon) / \sqrt{\bar\alpha_t}$, and the means differ only through
$\epsilon$ (Ho et al. 2020, eq. 12):

$$\mathrm{KL}_t = \text{const} + \lambda_t \|\epsilon - \epsilon_\theta(x_t, t)\|^2, \qquad
\lambda_t = \frac{\beta_t^2}{2 \sigma_t^2 \alpha_t (1 - \bar\alpha_t)}$$

Ho et al. found that dropping $\lambda_t$ (weighting every $t$ equally) trains better samples: the **simple loss**

$$L_\text{simple} = \mathbb{E}_{x_0, t, \epsilon} \left\|\epsilon -
\epsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon,\ t\big)\right\|^2$$

(`diffusion_loss`.)

## 4. Three equivalent targets, and the score

Given $x_t$, predicting $\epsilon$, $x_0$ ("sample") or
$v = \sqrt{\bar\alpha_t}\, \epsilon - \sqrt{1 - \bar\alpha_t}\, x_0$ (Salimans & Ho 2022) carry the same information;
`convert_prediction` turns one into another. They differ in how the squared error weighs each $t$
($\mathrm{snr}_t = \bar\alpha_t / (1 - \bar\alpha_t)$):

$$\|\epsilon - \hat\epsilon\|^2 = \mathrm{snr}_t\, \|x_0 - \hat x_0\|^2, \qquad
\|v - \hat v\|^2 = (\mathrm{snr}_t + 1)\, \|x_0 - \hat x_0\|^2$$

And the noise prediction is, up to scale, the **score** of the noisy data distribution (Tweedie's formula):

$$\mathbb{E}[x_0 \mid x_t] = \frac{x_t + (1 - \bar\alpha_t)\, \nabla \log q(x_t)}{\sqrt{\bar\alpha_t}},
\qquad\text{so}\qquad
\nabla \log q(x_t) = -\frac{\mathbb{E}[\epsilon \mid x_t]}{\sqrt{1 - \bar\alpha_t}}$$

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
# Fix $x_0 = 1$ (a 1D "data set" of one point). Simulate many pairs $(x_{t-1}, x_t)$ with the forward process, keep
# those whose $x_t$ falls in a thin slice around a chosen value, and histogram their $x_{t-1}$. It should match
# $\mathcal{N}(\tilde\mu_t, \tilde\beta_t)$ from `q_posterior`, which knows nothing about the simulation.

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
se = selected.std() / np.sqrt(in_slice.sum())
claims.claim(abs(selected.mean() - mean[0, 0]) < 4 * se + 0.01 * np.sqrt(var[0, 0])
             and abs(selected.std() / np.sqrt(var[0, 0]) - 1) < 0.05,
             "the simulated x_(t-1) given x_t match q_posterior: mean {m:.4f} vs {mf:.4f}, std {sd:.4f} vs {sf:.4f}",
             m=selected.mean(), mf=mean[0, 0], sd=selected.std(), sf=np.sqrt(var[0, 0]))
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
# With the linear schedule $\lambda_t$ is **U-shaped** and **below 1 everywhere**: 0.27 at $t = 1$ with
# $\sigma_t^2 = \beta_t$ (0.60 with $\tilde\beta_t$), falling to a minimum of 0.005 near $t = 350$ and rising again to
# 0.010 at $t = 999$. The small, nearly noise-free steps carry the largest weights, but they are few: summed over
# $t \ge 50$ the weights still exceed those of $t < 50$. What Ho et al. (2020, Sec. 3.4) say is a statement *relative to
# the bound*: the simple loss ($\lambda_t = 1$ for every $t$) "down-weights loss terms corresponding to small t":
# against the bound, step 1 gets 55 times less weight than the middle steps (120 times with $\tilde\beta_t$) (right
# panel: the weight $L_\text{simple}$ puts on step $t$ divided by the bound's, $1 / \lambda_t$), so the network spends
# its effort on the harder denoising tasks at larger $t$. (tests/test_diffusion.py checks that $\mathrm{KL}_t$ equals
# $\lambda_t \|\epsilon - \epsilon_\theta\|^2$ exactly.)

# %%
steps = np.arange(T)
large, small = elbo_weights(schedule, "fixed_large"), elbo_weights(schedule, "fixed_small")
fig, (ax, ax_rel) = plt.subplots(1, 2, figsize=(10, 3))
ax.semilogy(steps[1:], large[1:], label="sigma_t^2 = beta_t")
ax.semilogy(steps[1:], small[1:], label="sigma_t^2 = beta_tilde_t")
ax.axhline(1.0, color="k", ls="--", lw=1, label="simple loss: lambda_t = 1")
low = 1 + int(np.argmin(large[1:]))
ax.plot(low, large[low], "kv", ms=5, label=f"minimum: t = {low}")
ax.set_xlabel("t")
ax.set_ylabel("lambda_t (log scale)")
ax.set_title("the bound's weights: U-shaped, all below 1", fontsize=9)
ax.legend(fontsize=7)
ax_rel.semilogy(steps[1:], (1 / large[1:]) / (1 / large[1:]).max(), label="sigma_t^2 = beta_t")
ax_rel.semilogy(steps[1:], (1 / small[1:]) / (1 / small[1:]).max(), label="sigma_t^2 = beta_tilde_t")
ax_rel.set_xlabel("t")
ax_rel.set_ylabel("1 / lambda_t (max = 1)")
ax_rel.set_title("L_simple relative to the bound: small t down-weighted", fontsize=9)
ax_rel.legend(fontsize=7)
viz.save(fig, args.out / "elbo_weights.png")
claims.claim(abs(large[1] - 0.27) < 0.005 and abs(small[1] - 0.60) < 0.005,
             "lambda_1 = {l1:.2f} (sigma^2 = beta) or {s1:.2f} (beta_tilde)", l1=large[1], s1=small[1])
claims.claim(abs(large[low] - 0.005) < 0.0005 and 340 <= low <= 360 and abs(large[-1] - 0.010) < 0.0005,
             "lambda_t is U-shaped: minimum {lmin:.4f} at t = {low}, {lend:.4f} at t = 999",
             lmin=large[low], low=low, lend=large[-1])
claims.claim((large[1:] < 1).all() and (small[1:] < 1).all(),
             "every lambda_t (t >= 1) is below the simple loss's 1: largest {lmax:.2f}", lmax=max(large[1:].max(), small[1:].max()))
claims.claim(large[50:].sum() > large[1:50].sum() and small[50:].sum() > small[1:50].sum(),
             "summed over t >= 50 the weights ({late:.2f}) exceed those of 1 <= t < 50 ({early:.2f}) (sigma^2 = beta)",
             late=large[50:].sum(), early=large[1:50].sum())
claims.claim(50 < large[1] / large[low] < 60 and 110 < small[1] / small[low] < 130,
             "relative to the bound, L_simple weighs the middle step t = {low} {r:.0f} times more than t = 1 "
             "({rs:.0f} times with beta_tilde)", low=low, r=large[1] / large[low], rs=small[1] / small[low])

# %% [markdown]
# ## Each target weighs the steps differently
#
# Measured, not just claimed: perturb a consistent $(x_0, \epsilon)$ pair, convert the perturbed prediction between
# types with `convert_prediction`, and compare squared errors. The ratio
# $\|\epsilon\text{ error}\|^2 / \|x_0\text{ error}\|^2$ is $\mathrm{snr}_t$ and the $v$ ratio is $\mathrm{snr}_t + 1$.
# So an $\epsilon$-trained model cares little about $x_0$ at high noise, and $x_0$-prediction cares little at low noise;
# $v$ sits in between (and stays finite at zero terminal SNR).

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
eps_ratio = ((eps_hat - eps_true) ** 2).sum(1) / x0_err / schedule.snr
v_ratio = ((v_hat - v_true) ** 2).sum(1) / x0_err / (schedule.snr + 1)
claims.claim(np.allclose(eps_ratio, 1, rtol=1e-6) and np.allclose(v_ratio, 1, rtol=1e-6),
             "measured at all {T} steps: eps error / x0 error = snr_t and v error / x0 error = snr_t + 1 "
             "(largest relative deviation {dev:.1e})", T=T, dev=max(np.abs(eps_ratio - 1).max(), np.abs(v_ratio - 1).max()))

# %% [markdown]
# ## Tweedie's formula, checked by simulation
#
# For 1D Gaussian data $\mathcal{N}(m, s^2)$ the noisy marginal is
# $\mathcal{N}\big(\sqrt{\bar\alpha_t}\, m,\ \bar\alpha_t s^2 + 1 - \bar\alpha_t\big)$, whose score is
# $-(x - \sqrt{\bar\alpha_t}\, m) / (\bar\alpha_t s^2 + 1 - \bar\alpha_t)$. Tweedie turns that score into the best
# possible denoiser $\mathbb{E}[x_0 \mid x_t]$ (`convert_prediction(..., "score", "sample")`). The dots average the true
# $x_0$ of simulated pairs in bins of $x_t$: the conditional mean a perfect network would learn.

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
worst_z = 0.0
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
    tweedie_at_centres = np.interp(centres, grid[:, 0], denoised[:, 0])   # the line is straight: exact
    counts = np.bincount(bins, minlength=len(grid) + 1)[1:len(grid)]
    posterior_sd = DATA_STD * np.sqrt((1 - ab) / (ab * DATA_STD**2 + 1 - ab))   # sd of x0 given x_t
    bin_halfwidth_effect = np.abs(np.diff(denoised[:, 0])) / 2                  # the line moves within a bin
    z = np.abs(np.array(averages) - tweedie_at_centres) / (posterior_sd / np.sqrt(counts) + bin_halfwidth_effect)
    worst_z = max(worst_z, z.max())
claims.claim(worst_z < 4, "the simulated averages lie on Tweedie's lines: largest gap {z:.1f} standard errors "
             "(sampling error plus the line's change within a bin)", z=worst_z)
ax.set_xlabel("x_t")
ax.set_ylabel("E[x0 | x_t]")
ax.legend(fontsize=7)
ax.set_title("lines: score -> x0 by Tweedie; dots: simulated averages", fontsize=8)
viz.save(fig, args.out / "tweedie.png")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
