# %% [markdown]
r"""
# Chapter 20 — Latent diffusion: compress first, then diffuse

The U-Net of chapter 11 denoises all 784 pixels of a digit at every one of its sampling steps, although most of them
are black border and the rest are strokes that a handful of numbers describe. Rombach et al. (2022, "High-Resolution
Image Synthesis with Latent Diffusion Models", the method behind Stable Diffusion) split the work in two:

1. an **autoencoder** learns, once, to compress an image $x$ into a smaller latent $z = \mathcal{E}(x)$ and back,
   $x \approx \mathcal{D}(z)$;
2. a **diffusion model** learns the distribution of the latents $z$, with the same forward process, loss and samplers
   as before; sampling runs the chain in latent space and decodes its end once: $x = \mathcal{D}(z_0)$.

tinydiff's autoencoder (`tinydiff.models.autoencoder.VAE`) is built from the layers of chapters 4-5 (Conv2d, SiLU,
Upsample) with hand-written backward passes: $28 \times 28 \times 1$ pixels $\to$ $7 \times 7 \times 4$ latents (196
numbers, 4x fewer), two stride-2 convolutions down, two nearest-neighbour upsamplings and convolutions up. It is a VAE
(Kingma & Welling 2014): the encoder outputs a mean $\mu$ and a log-variance, $z = \mu + \sigma \epsilon$, and the loss
per image is

$$L = \sum_{\text{pixels}} \operatorname{BCE}\big(x, \mathcal{D}(z)\big) +
\beta\, \operatorname{KL}\big(\mathcal{N}(\mu, \sigma^2) \,\|\, \mathcal{N}(0, I)\big), \qquad
\operatorname{KL} = \tfrac{1}{2} \sum \big(\mu^2 + \sigma^2 - 1 - \log \sigma^2\big) \qquad \text{(1)}$$

with a small $\beta$ (Rombach et al. use $10^{-6}$ beside a perceptual loss; ours is $10^{-3}$ against a sum of 784 BCE
terms): the KL only keeps the latent from drifting to arbitrary scales, it is not asked to make it $\mathcal{N}(0, I)$.

## What the chapter measures

1. what compression keeps and loses: reconstructions and their errors (`reconstructions.png`);
2. the latent's statistics, the scale factor, and why the latent must be near unit variance (`latent_stats.png`,
   `snr_by_scale.png`);
3. the KL weight's trade-off, on two short training runs (`kl_tradeoff.png`);
4. diffusion in latent space: the shipped latent model's digits (`latent_samples.png`);
5. the cost side by side with pixel space (`cost.png`);
6. what the chain means on its way: its $x_0$ estimates decoded along the steps (`chain.png`).

Files: `data/checkpoints/mnist_autoencoder.npz` (made by `python -m tinydiff train-autoencoder --data mnist --out
AE_DIR --steps 700`) and `data/checkpoints/mnist_latent.npz` (by `python -m tinydiff train --data mnist --conditional
--latent AE_DIR/autoencoder.npz --steps 12000 --out DIR`; README, "Latent diffusion"). Data: `TINYDIFF_DATA` (docs/mnist.md).
"""

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: small matrix products run best on one thread
import time
from pathlib import Path

import numpy as np

from tinydiff import claims, viz
from tinydiff.data.mnist import load_mnist_float, require_mnist
from tinydiff.latent import data_snr, decode_chain, half_signal_step
from tinydiff.models.autoencoder import gaussian_kl, load_autoencoder
from tinydiff.models.classifier import accuracy, load_classifier
from tinydiff.schedules import NoiseSchedule
from tinydiff.train_autoencoder import AutoencoderTrainConfig, train_autoencoder
from tinydiff.trained import load_trained

args = viz.chapter_args(20, "Chapter 20: latent diffusion")
require_mnist("chapter 20")                      # downloads MNIST if missing, else one line and exit 1

# ---- constants -------------------------------------------------------------------------------------------------
CHECKPOINTS = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
AE_PATH = CHECKPOINTS / "mnist_autoencoder.npz"      # the shipped VAE (4 x 7 x 7 latents)
LATENT_PATH = CHECKPOINTS / "mnist_latent.npz"       # the shipped latent denoiser (it carries the same VAE)
PIXEL_PATH = CHECKPOINTS / "mnist_conditional.npz"   # the shipped pixel-space U-Net (chapters 11-13)
N_TEST = 1000 if args.quick else 10000               # test images reconstructed (the README's number uses all 10,000)
KL_WEIGHTS = (1e-3, 1.0)                             # beta of the two short runs of section 3
KL_STEPS = 6 if args.quick else 200                  # their AdamW steps (batch 32)
N_SAMPLES = 20 if args.quick else 200                # latent samples drawn (labels 0..9 in turn)
STEPS = 10 if args.quick else 50                     # DDIM steps (50: the image default)
GUIDANCE = 2.0                                       # classifier-free guidance scale (the image default)
TIMING_BATCH = 8                                     # images per network call when timing section 5
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

start = time.perf_counter()
plt = viz.plt()
rng = np.random.default_rng(SEED)
judge = load_classifier()
vae = load_autoencoder(AE_PATH)
test_x, test_y = load_mnist_float(split="test")
pick = rng.permutation(len(test_x))[:N_TEST]
test_x, test_y = test_x[pick], test_y[pick].astype(np.int64)
print(f"VAE: {vae.num_parameters()} parameters, latent {vae.latent_shape}, scale factor s = {vae.scale_factor:.4f}")
if args.quick:
    print(f"QUICK MODE: {N_TEST} test images, {KL_STEPS}-step KL runs, {N_SAMPLES} samples of {STEPS} steps")

# %% [markdown]
r"""
## 1. Compression and what is lost

Encode each test digit to its mean latent $\mu(x)$ and decode it: $\hat x = \mathcal{D}(\mu(x))$. The per-pixel error,
and the judge's verdict (the classifier of chapter 13) on the reconstructions beside its verdict on the originals, say
how much of a digit survives 4x compression. `reconstructions.png` shows originals, reconstructions and $|x - \hat x|$.
"""

# %%
recon = vae.reconstruct(test_x)                                                 # (N, 1, 28, 28) in [0, 1]
mse = float(np.mean((recon - test_x) ** 2))
acc_orig, acc_recon = accuracy(judge, test_x, test_y), accuracy(judge, recon, test_y)
print(f"reconstruction MSE {mse:.5f} per pixel; judge's accuracy {100 * acc_recon:.2f} % on reconstructions, "
      f"{100 * acc_orig:.2f} % on the originals")
claims.claim(acc_recon >= acc_orig - 0.02,
             "the judge recognises the reconstructions nearly as well as the originals: {r:.2f} % vs {o:.2f} % "
             "(within 2 points)", r=100 * acc_recon, o=100 * acc_orig, quick=False)
err = np.abs(recon - test_x)
edge = (test_x > 0.1) & (test_x < 0.9)                                          # grey pixels: the strokes' edges
claims.claim(err[edge].mean() > 2 * err[~edge].mean(),
             "what is lost sits on the strokes' edges: mean error {e:.3f} on grey pixels vs {f:.3f} elsewhere (> 2x)",
             e=float(err[edge].mean()), f=float(err[~edge].mean()))
show = slice(0, 12)
fig = viz.image_rows([("original", test_x[show]), ("D(mu(x))", recon[show]), ("|x - x_hat|", err[show])])
viz.save(fig, args.out / "reconstructions.png")

# %% [markdown]
r"""
The reconstructions keep the digit, its slant and its thickness; what goes is the exact shape of the edges (a slightly
blurred stroke) and small specks. For diffusion this is the point: the latent keeps what the judge needs and drops
the detail no one will miss, so the diffusion model spends its capacity on shape, not on pixel noise.

## 2. The latent's statistics and the scale factor

The encoder's latents have no reason to have unit variance: the small KL weight lets them take whatever scale
serves the decoder. Rombach et al. rescale them by $s = 1 / \operatorname{std}(z)$, computed once on the training set
and stored with the weights (`VAE.fit_scale_factor`); the diffusion model then sees $s z$. Why it matters: the forward
process was designed for data of variance ~1. For data of standard deviation $\sigma_{\text{data}}$ the signal-to-noise
ratio at step $t$ is

$$\operatorname{SNR}(t) = \frac{\bar\alpha_t\, \sigma_{\text{data}}^2}{1 - \bar\alpha_t} \qquad \text{(2)}$$

(Kingma et al. 2021, per entry), so scaling the data by $c$ multiplies SNR by $c^2$ at every step: latents with std 0.2
are drowned at a step where unit-variance ones still have 25 times more signal, and the sampler then spends most of
its steps on pure noise. `latent_stats.png` shows the latent entries per channel before and after scaling;
`snr_by_scale.png` the SNR of the linear schedule ($T = 1000$) for latents of std 0.2, 1 and 5.
"""

# %%
mu = vae.encode_mean(test_x).astype(np.float64)                                 # (N, Z, 7, 7) unscaled latents
std_z, std_scaled = float(mu.std()), float((vae.scale_factor * mu).std())
print(f"latent std {std_z:.3f} (mean {mu.mean():+.3f}); per channel std "
      + ", ".join(f"{s:.2f}" for s in mu.std(axis=(0, 2, 3))) + f"; after scaling by s: std {std_scaled:.3f}")
claims.claim(abs(std_scaled - 1.0) < 0.05,
             "s, fitted on training images, gives the test latents std {s:.3f}, within 5 % of 1", s=std_scaled)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, (title, z) in zip(axes, [("latents z = mu(x)", mu), (f"scaled latents s z (s = {vae.scale_factor:.3f})",
                                                              vae.scale_factor * mu)]):
    for c in range(z.shape[1]):
        ax.hist(z[:, c].ravel(), bins=80, histtype="step", density=True, label=f"channel {c}")
    ax.set_title(title, fontsize=9)
axes[0].legend(fontsize=7)
viz.save(fig, args.out / "latent_stats.png")

schedule = NoiseSchedule.from_name("linear", 1000)
half_steps = {sd: half_signal_step(schedule.alphas_cumprod, sd) for sd in (0.2, 1.0, 5.0)}
print("first step with SNR <= 1: " + ", ".join(f"std {sd:g}: t = {t}" for sd, t in half_steps.items()))
claims.claim(half_steps[0.2] < half_steps[1.0] / 2,
             "latents of std 0.2 reach SNR 1 at t = {a}, before half the step of unit-variance ones (t = {b})",
             a=half_steps[0.2], b=half_steps[1.0])
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for sd in (0.2, 1.0, 5.0):
    ax.semilogy(data_snr(schedule.alphas_cumprod, sd), label=f"sigma_data = {sd:g}")
ax.axhline(1.0, color="grey", lw=0.8)
ax.set_xlabel("t")
ax.set_ylabel("SNR(t)")
ax.legend(fontsize=8)
viz.save(fig, args.out / "snr_by_scale.png")

# %% [markdown]
r"""
## 3. The KL weight's trade-off

$\beta$ in (1) pulls every $\mu$ towards 0 and every $\sigma$ towards 1. With $\beta = 1$ (the true ELBO) the latent
must carry information at a price: the KL grows with every bit it stores, so the encoder stores less and the
reconstructions blur. With a small $\beta$ the reconstructions are sharp and the KL large, and the latent's scale is
whatever the decoder likes, which the scale factor then fixes. Two short runs from the same seed, one per $\beta$,
trained on the same batches (`kl_tradeoff.png`: their reconstructions of the same digits, and their reconstruction and
KL terms):
"""

# %%
train_x = load_mnist_float(split="train")[0][:5000]
runs = {}
for beta in KL_WEIGHTS:
    config = AutoencoderTrainConfig(kl_weight=beta, steps=KL_STEPS, batch_size=32, warmup_steps=5,
                                    lr=3e-3, seed=SEED)
    model = train_autoencoder(config, progress=False, x_train=train_x)
    m, logvar = model.encode(test_x[:500])
    bce = float(np.mean([model.loss(test_x[i:i + 100], np.zeros((100, *model.latent_shape)))[1]
                         for i in range(0, 500, 100)]))
    kl = float(gaussian_kl(m.astype(np.float64), logvar.astype(np.float64)).sum() / 500)
    runs[beta] = dict(model=model, bce=bce, kl=kl)
    print(f"beta = {beta:g}: BCE {bce:.1f} and KL {kl:.1f} per test image after {KL_STEPS} steps")
small, big = runs[KL_WEIGHTS[0]], runs[KL_WEIGHTS[1]]
claims.claim(big["kl"] < small["kl"] and big["bce"] > small["bce"],
             "beta = 1 buys a smaller KL ({k1:.1f} < {k0:.1f}) with worse reconstructions (BCE {b1:.1f} > {b0:.1f})",
             k1=big["kl"], k0=small["kl"], b1=big["bce"], b0=small["bce"], quick=False)
fig = viz.image_rows([("original", test_x[show])] + [(f"beta = {b:g}", runs[b]["model"].reconstruct(test_x[show]))
                                                      for b in KL_WEIGHTS])
viz.save(fig, args.out / "kl_tradeoff.png")

# %% [markdown]
r"""
## 4. Diffusion in latent space

The latent denoiser is the U-Net of chapter 11 on $(4, 7, 7)$ inputs: 7 cannot be halved, so it has one level (two
ResBlocks and self-attention, all at $7 \times 7$; `config.LATENT_UNET`), class-conditional with a null label for
classifier-free guidance. Training is the Trainer of chapter 6 on $s\, \mu(x)$ instead of pixels: nothing in the loss,
the schedule or the samplers knows it is a latent (`train --latent`). `TrainedDenoiser.sample` runs the sampler on
latents and decodes the end, so it returns digits like the pixel model. `latent_samples.png`: one row per label.

How long to train it? The shipped latent model had 12,000 steps of batch 64, twice the pixel model's 6,000, but each
step is about 7x cheaper (section 5), so the whole run cost less CPU than 2,000 pixel steps. It needed them: copies of
the run scored 96 % accuracy at 8,000 steps, and a separate 6,000-step run only 91 %, while at 12,000 steps it
reaches 99 % with FD 16 against a floor of 5.6 at $n = 500$ (README, "Latent diffusion"). A latent denoiser learns
a harder-to-read target (the VAE's code, not pixels with local structure), so it needs more steps; it still wins on
time.
"""

# %%
latent_model = load_trained(LATENT_PATH)
print(latent_model)
labels = np.arange(N_SAMPLES) % 10
t0 = time.perf_counter()
samples = latent_model.sample(N_SAMPLES, label=labels, steps=STEPS, guidance=GUIDANCE, rng=SEED)
latent_seconds = time.perf_counter() - t0
acc_samples = accuracy(judge, samples, labels)
print(f"{N_SAMPLES} latent samples in {latent_seconds:.1f} s; judge's accuracy {100 * acc_samples:.1f} %")
claims.claim(acc_samples >= 0.9, "the judge recognises {a:.1f} % of the latent model's digits as the label asked "
             "for: at least 90 %, near the pixel model's 99.75 %", a=100 * acc_samples, quick=False)
order = np.argsort(labels, kind="stable")
viz.save(viz.image_grid(samples[order], nrow=10 if N_SAMPLES >= 100 else None), args.out / "latent_samples.png")

# %% [markdown]
r"""
## 5. The cost side by side

One sampling step calls the denoiser once (twice with guidance); a latent model pays the decoder once at the end.
Timed here on the same batch, one thread, on whatever else this machine is running (ratios from one run are what to
read, not the absolute times): a pixel U-Net call, a latent U-Net call, and one decoder call. `cost.png`.
"""

# %%
def median_seconds(fn, repeats=5):
    fn()                                                                        # compile / warm the buffers
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


pixel_net = load_trained(PIXEL_PATH).network
xb = rng.standard_normal((TIMING_BATCH, 1, 28, 28))
zb = rng.standard_normal((TIMING_BATCH, *vae.latent_shape))
tb, yb = np.full(TIMING_BATCH, 500), np.arange(TIMING_BATCH) % 10
cost = {"pixel U-Net call": median_seconds(lambda: pixel_net(xb, tb, yb)),
        "latent U-Net call": median_seconds(lambda: latent_model.network(zb, tb, yb)),
        "decoder (once)": median_seconds(lambda: vae.decode(zb))}
per_image_ms = {k: 1e3 * v / TIMING_BATCH for k, v in cost.items()}
print("ms per image: " + ", ".join(f"{k} {v:.2f}" for k, v in per_image_ms.items())
      + f"; parameters: pixel {pixel_net.num_parameters()}, latent {latent_model.network.num_parameters()}")
nfe = 2 * STEPS                                                                 # guided: two calls per step
pixel_chain = nfe * per_image_ms["pixel U-Net call"]
latent_chain = nfe * per_image_ms["latent U-Net call"] + per_image_ms["decoder (once)"]
print(f"a {STEPS}-step guided chain per image: pixel {pixel_chain:.0f} ms, latent {latent_chain:.0f} ms "
      f"(x{pixel_chain / latent_chain:.1f})")
claims.claim(latent_chain < pixel_chain / 2, "at the same NFE a latent chain (decoder included) costs less than half "
             "a pixel chain: {l:.0f} ms vs {p:.0f} ms per image", l=latent_chain, p=pixel_chain)
fig, ax = plt.subplots(figsize=(5.5, 2.6))
ax.barh(list(per_image_ms), list(per_image_ms.values()), color=["tab:grey", "tab:blue", "tab:orange"])
ax.set_xlabel("ms per image (one call, batch %d, one thread)" % TIMING_BATCH)
viz.save(fig, args.out / "cost.png")

# %% [markdown]
r"""
The saving comes from the positions: a $3 \times 3$ convolution costs $9\, C_{\text{in}} C_{\text{out}}$ multiply-adds
per position, and $7 \times 7$ has 16x fewer positions than $28 \times 28$, which pays for wider layers (32 channels at
$7 \times 7$ against 24-48 over $28 \to 7$ in the pixel U-Net). The same holds for training steps (README,
"Latent diffusion").

## 6. Samples decoded along the chain

The chain's $x_0$ estimates are latents too; decoding them shows what the model "means" at each step.
`chain.png`: rows are steps of a DDIM run, from pure noise (top) to the end; columns are labels 0-9.
"""

# %%
x, traj = latent_model.sample(10, label=np.arange(10), steps=STEPS, guidance=GUIDANCE, rng=SEED,
                              return_trajectory=True)
every = max(1, STEPS // 6)
chain = decode_chain(latent_model, traj, every=every)                           # (K, 10, 1, 28, 28)
np.testing.assert_allclose(chain[-1] if (STEPS - 1) % every == 0 else decode_chain(latent_model, traj)[-1], x,
                           atol=0.05)
fig = viz.image_rows([(f"step {k * every + 1}", c) for k, c in enumerate(chain)] + [("decoded end", x)])
viz.save(fig, args.out / "chain.png")

# %% [markdown]
r"""
Early estimates are already digit-shaped blurs of the right class: the decoder turns any latent near the data into
something stroke-like, so even a rough $x_0$ estimate decodes to a plausible digit. The late steps change little in
pixels; they settle which digit-like shape it is.
"""

# %%
print(f"chapter 20 ran in {time.perf_counter() - start:.0f} s")
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
