# %% [markdown]
r"""
# Chapter 1 — The forward process: turning data into noise

A diffusion model learns to *undo* a process that is easy to run: adding a little Gaussian noise, many times.
This chapter runs that forward (noising) process on 2D points and on a small image, and checks the one formula
everything else builds on.

## The chain

Start from a data point $x_0$. At each of $T$ steps, shrink it a little and add a little noise (Ho et al. 2020, eq. 2):

$$q(x_t \mid x_{t-1}) = \mathcal{N}\big(\sqrt{1 - \beta_t}\, x_{t-1},\ \beta_t I\big), \quad\text{i.e.}\quad
x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{\beta_t}\, \epsilon_t$$

with $\alpha_t = 1 - \beta_t$ and fresh noise $\epsilon_t \sim \mathcal{N}(0, I)$ at every step. The schedule
$\beta_0, \ldots, \beta_{T-1}$ is small ($10^{-4}$ to 0.02 for $T = 1000$): each step barely changes the data.

## The closed form

Unroll two steps:

$$x_t = \sqrt{\alpha_t \alpha_{t-1}}\, x_{t-2} + \sqrt{\alpha_t \beta_{t-1}}\, \epsilon_{t-1} +
\sqrt{\beta_t}\, \epsilon_t.$$

The two noise terms are independent Gaussians, so their sum is one Gaussian with variance
$\alpha_t (1 - \alpha_{t-1}) + (1 - \alpha_t) = 1 - \alpha_t \alpha_{t-1}$. By induction (Ho et al. 2020, eq. 4):

$$q(x_t \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\, x_0,\ (1 - \bar\alpha_t) I\big), \qquad
\bar\alpha_t = \prod_{s \le t} \alpha_s$$

$$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon, \qquad \epsilon \sim \mathcal{N}(0, I)$$

(`tinydiff.diffusion.q_sample`; in the code $\bar\alpha_t$ is `schedule.alphas_cumprod[t]`.)

So we never need to run the chain to train: any step is one multiply-add away. Because $\sqrt{\bar\alpha_t}^{\,2}$ plus
the noise variance is exactly 1, data with unit variance keeps unit variance all the way: the process is *variance
preserving*. As $\bar\alpha_t \to 0$ the signal fades and $x_t$ becomes pure $\mathcal{N}(0, I)$ noise: the distribution
we will sample from.

**Index convention (read this twice).** tinydiff counts noising steps $t = 0, \ldots, T-1$: our step $t$ is Ho et al.'s
 $t + 1$. The data $x_0$ come *before* step 0, so **$x_0$ is not $x_t$ at $t = 0$**: $x_t$ at $t = 0$ is the data after
 one noising step, $x_{(t=0)} = \sqrt{\bar\alpha_0}\, x_0 + \sqrt{\beta_0}\, \epsilon$ with
 $\bar\alpha_0 = 1 - \beta_0 = 0.9999$. That is why the last reverse step (chapter 3) is written
 $p(x_0 \mid x_{(t=0)})$, "data given step 0", and why `schedule.alphas_cumprod_prev[0] = 1` stands for "no noise yet".
 In code and text, `x0` always means the data.

Figures written (to `chapters/out/01/` unless `--out` says otherwise):
`forward_points.png`, `forward_image.png`, `chain_vs_closed_form.png`, `signal_and_noise.png`.
"""

# %%
import numpy as np

from tinydiff import claims, viz
from tinydiff.data.toy2d import make_dataset
from tinydiff.diffusion import q_chain, q_sample
from tinydiff.schedules import NoiseSchedule

args = viz.chapter_args(1, "Chapter 1: the forward process")

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                               # diffusion steps (Ho et al. 2020)
N_POINTS = 500 if args.quick else 5000  # 2D points to noise
N_CHAINS = 2000 if args.quick else 20000  # chains run step by step to check the closed form
SHOW_STEPS = [0, 50, 100, 250, 500, 999]  # the steps we draw
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
schedule = NoiseSchedule.linear(T)
print(schedule)

# %% [markdown]
# ## Noising a point cloud
#
# The "moons" set, noised in one jump to several steps with `q_sample`. Watch the two crescents shrink towards the
# origin (the $\sqrt{\bar\alpha_t}$ factor) while the noise grows ($\sqrt{1 - \bar\alpha_t}$).

# %%
x0 = make_dataset("moons", N_POINTS, rng=rng)
x0 = (x0 - x0.mean(0)) / x0.std(0)  # unit variance per axis, as the model will see it
panels, variances = [], []
for t in SHOW_STEPS:
    xt = q_sample(schedule, x0, np.full(N_POINTS, t), rng.standard_normal(x0.shape))
    panels.append((f"t = {t}\nalpha_bar = {schedule.alphas_cumprod[t]:.3f}", xt))
    variances.append(xt.var(axis=0))
viz.save(viz.scatter_strip([("data x0", x0)] + panels), args.out / "forward_points.png")
claims.claim(np.abs(np.array(variances) - 1).max() < 0.2,
             "variance preserving: the unit-variance data keeps variance ~1 per axis at every step shown "
             "(between {lo:.2f} and {hi:.2f})", lo=np.min(variances), hi=np.max(variances))

# %% [markdown]
# ## Noising an image
#
# The same formula works for any shape: each pixel is one coordinate. Images are scaled to $[-1, 1]$ first so that the
# data and the noise have comparable size. (The digit is drawn by matplotlib, so this runs without downloading MNIST.)

# %%
image = viz.render_glyph("7")[None] * 2 - 1  # (1, 28, 28) in [-1, 1]
eps = rng.standard_normal(image.shape)
image_panels = [("x0", image[0])]
for t in SHOW_STEPS:
    image_panels.append((f"t = {t}", q_sample(schedule, image[None], np.array([t]), eps[None])[0, 0]))
viz.save(viz.image_strip(image_panels, vmin=-2.5, vmax=2.5), args.out / "forward_image.png")

# %% [markdown]
# ## The closed form equals the chain
#
# Run the Markov chain step by step (`q_chain`) from one fixed point $x_0$ many times, and compare the mean and spread
# of $x_t$ across chains with the closed form: mean $\sqrt{\bar\alpha_t}\, x_0$ and standard deviation
# $\sqrt{1 - \bar\alpha_t}$. The two should agree within sampling error, about $1 / \sqrt{N}$ for $N$ = N_CHAINS chains
# (tests/test_diffusion.py checks this with a stated tolerance).

# %%
start = np.tile([[1.5, -1.0]], (N_CHAINS, 1))
trajectory = q_chain(schedule, start, rng)  # (T + 1, N_CHAINS, 2): trajectory[t + 1] is x_t
steps = np.arange(T)
chain_mean = trajectory[1:, :, 0].mean(axis=1)
chain_std = trajectory[1:, :, 0].std(axis=1)
closed_mean = np.sqrt(schedule.alphas_cumprod) * start[0, 0]
closed_std = np.sqrt(1 - schedule.alphas_cumprod)
worst = max(np.abs(chain_mean - closed_mean).max(), np.abs(chain_std - closed_std).max())
standard_error = 1 / np.sqrt(N_CHAINS)
claims.claim(worst < 5 * standard_error,
             "the chain and the closed form agree within sampling error at all {T} steps: largest gap {worst:.4f} is "
             "{ratio:.1f} standard errors ({se:.4f}; the largest of 2T such gaps is typically 3-4)",
             T=T, worst=worst, se=standard_error, ratio=worst / standard_error)

plt = viz.plt()
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(steps, chain_mean, label="chain (mean over runs)")
axes[0].plot(steps, closed_mean, "--", label="sqrt(alpha_bar_t) x0")
axes[0].plot(steps, chain_std, label="chain (std over runs)")
axes[0].plot(steps, closed_std, "--", label="sqrt(1 - alpha_bar_t)")
axes[0].set_xlabel("t")
axes[0].legend(fontsize=7)
axes[0].set_title("first coordinate of x_t, x0 = (1.5, -1)")
final = trajectory[-1, :, 0]
grid = np.linspace(-4, 4, 200)
axes[1].hist(final, bins=60, density=True, alpha=0.6, label="chain at t = T-1")
axes[1].plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), label="N(0, 1)")
axes[1].legend(fontsize=7)
axes[1].set_title("the end of the chain is noise")
viz.save(fig, args.out / "chain_vs_closed_form.png")

# %% [markdown]
# ## How much signal is left?
#
# $\sqrt{\bar\alpha_t}$ is the weight of the data in $x_t$ and $\sqrt{1 - \bar\alpha_t}$ the weight of the noise. Their
# squares add to 1 at every step. With the linear schedule, half the variance is noise by $t = 259$ ($\bar\alpha_{200}$
# is still 0.656); by the end only $\sqrt{\bar\alpha_{T-1}} \approx 0.006$ of the data is left. Chapter 2 asks whether
# that is a good way to spend the $T$ steps.

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(steps, np.sqrt(schedule.alphas_cumprod), label="signal weight sqrt(alpha_bar_t)")
ax.plot(steps, np.sqrt(1 - schedule.alphas_cumprod), label="noise weight sqrt(1 - alpha_bar_t)")
ax.set_xlabel("t")
ax.legend(fontsize=8)
viz.save(fig, args.out / "signal_and_noise.png")
ab = schedule.alphas_cumprod
half = int(np.argmax(ab < 0.5))
claims.claim(half == 259 and abs(ab[200] - 0.656) < 5e-4,
             "half the variance is noise by t = {half} (alpha_bar_200 = {ab200:.3f})", half=half, ab200=ab[200])
claims.claim(abs(np.sqrt(ab[-1]) - 0.006) < 5e-4, "sqrt(alpha_bar_(T-1)) = {s:.4f} ~ 0.006 of the data is left",
             s=np.sqrt(ab[-1]))
claims.claim(ab[0] == 1 - schedule.betas[0] and schedule.alphas_cumprod_prev[0] == 1,
             "x_t at t = 0 is already one noising step: alpha_bar_0 = 1 - beta_0 = {ab0:.4f}; alphas_cumprod_prev[0] = 1",
             ab0=ab[0])

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
