# %% [markdown]
r"""
# Chapter 11 — Images: MNIST, the U-Net, and training a denoiser on digits

Chapters 6-10 denoised points in the plane. Nothing in the diffusion itself changes for images: $x_0$ is now a
(1, 28, 28) array, $q(x_t \mid x_0)$ adds independent noise to every pixel, and the network $\epsilon_\theta(x_t, t)$
must return an image of the same shape. What changes is the network. An MLP on 784 pixels would have to learn
separately, at every position, what a stroke looks like; a convolution (chapter 5) learns it once and slides it
everywhere. This chapter builds the image denoiser up from that idea: MNIST as data, the forward process on digits,
the U-Net (`tinydiff.models.unet.UNet`), a short training run, and then the shipped model, trained for much longer.

## The data, scaled to [-1, 1]

MNIST holds 60,000 training and 10,000 test digits, 28 x 28 grey levels in $\{0, \dots, 255\}$; `load_mnist_float`
divides by 255. Like DDPM we map [0, 1] to [-1, 1] with one fixed affine map (`train.make_standardizer` for images):

$$x_{\text{std}} = \frac{x - 0.5}{0.5} = 2x - 1$$

so the data have the same scale as the $\mathcal{N}(0, I)$ noise they end in, and black background is exactly -1.
(Per-pixel statistics, as for points, would divide by the zero standard deviation of the always-black border.)

## The forward process on digits

The same eq. 4 of Ho et al. (2020), pixel by pixel,
$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon$, with the linear schedule of DDPM
($\beta$ from $10^{-4}$ to 0.02 over $T = 1000$ steps), the schedule of the shipped model. Its signal-to-noise ratio is
$\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$ (chapter 2). When is the digit gone? To the eye, once the noise of
one pixel, $\sigma_t = 1 / \sqrt{\mathrm{SNR}(t)}$ in data units, is well above the contrast of a stroke (2, from -1 to
+1). But a digit is 784 pixels, and their evidence adds up: given $x_t$, the most likely of $N$ candidate digits
$x_0^{(k)}$ is the one that maximises
$q(x_t \mid x_0^{(k)}) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\, x_0^{(k)}, (1 - \bar\alpha_t) I\big)$, i.e. minimises

$$\left\| x_t - \sqrt{\bar\alpha_t}\, x_0^{(k)} \right\|^2 = \|x_t\|^2 - 2 \sqrt{\bar\alpha_t}\, x_t \cdot x_0^{(k)} +
\bar\alpha_t \|x_0^{(k)}\|^2$$

and we can count how often that picks the digit $x_t$ was made from. It stays right long after the eye gives up.

## Why a U-Net

A 3x3 convolution sees 3 x 3 pixels. Stacked, each layer widens the window by $k - 1$ times the product of the
strides before it (the "jump" $j$). Layer $l$ with kernel $k_l$ and stride $s_l$ has the receptive field

$$r_l = r_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l, \qquad r_0 = j_0 = 1$$

so eleven 3x3 convolutions at full resolution see only 23 x 23 pixels, while the same eleven with two stride-2
convolutions among them see more than the whole digit, and the deeper ones run on 4 and 16 times fewer pixels. To
tell noise from a stroke the network needs both: the context of the whole digit (is this the loop of a 9 or of a
6?) and exact pixel positions (where is the edge?). The U-Net (Ronneberger et al. 2015) gets both. It goes down
28 -> 14 -> 7, gaining context; at 7 x 7 a self-attention layer lets every position read every other; it comes back
up 7 -> 14 -> 28, and at each resolution it concatenates the features saved on the way down ("skip connections"),
which carry the fine detail the bottleneck cannot.

## Where $t$ enters: AdaGN

Every ResBlock (`tinydiff.nn.blocks.ResBlock`) receives the embedding $e$ of the time step (and of the label, chapter
12) and turns it into a per-channel scale $s$ and shift $b$ that modulate its normalised features (Dhariwal & Nichol
2021):

$$[s; b] = \mathrm{Linear}(\mathrm{SiLU}(e)), \qquad h' = \mathrm{GroupNorm}(h)\, (1 + s) + b$$

So the same convolutions act differently at different noise levels: at large $t$ the network must invent a digit, at
small $t$ only remove a little noise.

Figures: `mnist_digits.png`, `mnist_forward.png`, `digit_identification.png`, `adagn_scale_shift.png`,
`short_run_loss.png`, `short_run_loss_vs_t.png`, `short_run_samples.png`, `shipped_samples.png`.
"""

# %%
import time
from pathlib import Path

import numpy as np

from tinydiff import checkpoint as ckpt
from tinydiff import claims, viz
from tinydiff.data.mnist import load_mnist_float, require_mnist
from tinydiff.diffusion import q_sample
from tinydiff.metrics.images import class_accuracy
from tinydiff.models.classifier import load_classifier
from tinydiff.models.unet import UNet
from tinydiff.samplers import sample
from tinydiff.schedules import NoiseSchedule
from tinydiff.threads import blas_threads
from tinydiff.train import TrainConfig, TrainLog, Trainer, make_standardizer
from tinydiff.trained import load_trained

args = viz.chapter_args(11, "Chapter 11: images and the U-Net")
require_mnist("chapter 11")                      # downloads MNIST if missing, else one line and exit 1

# ---- constants -------------------------------------------------------------------------------------------------
T = 1000                                           # diffusion steps, linear schedule (DDPM's, and the shipped model's)
N_SHOW = 16 if args.quick else 48                  # real digits in the first figure
FORWARD_TS = (0, 50, 100, 200, 300, 400, 500, 600, 700, 850, 999)   # steps of the forward strip
N_ID = 200 if args.quick else 1000                 # candidate digits in the identification experiment
ID_TS = (100, 300, 500, 600, 700, 800, 900, 999)   # steps where we try to identify the digit
SHORT = dict(steps=20 if args.quick else 600,      # the short training run: optimiser steps
             batch_size=16 if args.quick else 32,  # images per step
             n_train=256 if args.quick else 5000,  # training images (a random subset of the 60,000)
             base_channels=8)                      # a tiny UNet: channels 8-16-16 (~90k parameters)
PER_CLASS = 1 if args.quick else 8                 # shipped-model samples per class
DDIM_STEPS = 10 if args.quick else 25              # DDIM steps for every sample figure
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "mnist_conditional.npz"
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
plt = viz.plt()

# %% [markdown]
# ## MNIST as data
#
# The loader reads the four original IDX files (`tinydiff.data.mnist`; set TINYDIFF_DATA to the folder that holds
# them). Then the fixed map $2x - 1$. Most pixels are background: exactly -1 after scaling.

# %%
x_train, y_train = load_mnist_float(split="train")          # (60000, 1, 28, 28) in [0, 1], (60000,) uint8
x_test, y_test = load_mnist_float(split="test")             # (10000, 1, 28, 28), (10000,)
standardizer = make_standardizer(TrainConfig(data="mnist"), x_train)
x_std = standardizer.transform(x_test)                      # (10000, 1, 28, 28) in [-1, 1]
print(f"train {x_train.shape}, test {x_test.shape}; pixels in [{x_train.min():.0f}, {x_train.max():.0f}] "
      f"-> [{x_std.min():.0f}, {x_std.max():.0f}]")
print(f"scaled test set: mean {x_std.mean():+.3f}, std {x_std.std():.3f}, "
      f"{np.mean(x_std == -1):.1%} of the pixels exactly -1 (background)")
print("labels of the first row:", y_test[:8].tolist())
claims.claim(x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
             and np.all(np.isin(np.round(255 * x_test[:100]), np.arange(256))),
             "MNIST holds 60,000 training and 10,000 test digits of 28 x 28 grey levels in {{0, ..., 255}} / 255 "
             "(train {a}, test {b})", a=x_train.shape, b=x_test.shape)
claims.claim(x_std.min() == -1 and x_std.max() == 1 and np.mean(x_std == -1) > 0.5,
             "the scaled digits lie in [-1, 1] and most pixels are background, exactly -1 ({f:.1%})",
             f=np.mean(x_std == -1))
viz.save(viz.image_grid(x_test[:N_SHOW], nrow=8), args.out / "mnist_digits.png")

# %% [markdown]
# ## The forward process on one digit
#
# One test digit under the linear schedule, each panel titled with $t$ and
# $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$, and, below, the table of $\bar\alpha_t$, SNR and
# $\sigma_t = \sqrt{(1 - \bar\alpha_t) / \bar\alpha_t}$, the noise of one pixel measured in data units
# ($x_t / \sqrt{\bar\alpha_t} = x_0 + \sigma_t \epsilon$).

# %%
schedule = NoiseSchedule.linear(T)
digit = x_std[:1]                                                             # (1, 1, 28, 28)
eps = rng.standard_normal(digit.shape)
panels = [(f"t = {t}\nSNR {schedule.snr[t]:.2g}", q_sample(schedule, digit, np.array([t]), eps)[0])
          for t in FORWARD_TS]
viz.save(viz.image_strip(panels, vmin=-2.5, vmax=2.5), args.out / "mnist_forward.png")
print("    t   alpha_bar        SNR    sigma_t")
for t in FORWARD_TS:
    print(f"{t:5d} {schedule.alphas_cumprod[t]:11.4g} {schedule.snr[t]:10.3g} {schedule.sigmas[t]:10.3g}")
print(f"SNR falls below 1 at t = {np.argmax(schedule.snr < 1)} and below 0.01 at t = {np.argmax(schedule.snr < 0.01)};"
      f" at t = {T - 1} it is {schedule.terminal_snr:.1e}")

# %% [markdown]
# ## Is the digit still there? Pick its source among $N$ candidates
#
# Noise $N$ test digits at step $t$ and, for each $x_t$, pick the candidate $x_0^{(k)}$ with the smallest
# $\|x_t - \sqrt{\bar\alpha_t}\, x_0^{(k)}\|^2$, computed with the expansion above as one matrix product (the
# $\|x_t\|^2$ term is the same for every $k$ and drops out). Chance is $1 / N$. Even where $\sigma_t$ is several times
# the stroke contrast, 784 pixels of weak evidence add up: the digit is "gone" only where this accuracy falls to
# chance.

# %%
cand = x_std[:N_ID].reshape(N_ID, -1).astype(np.float64)                     # (N, 784) candidates x0_k
id_accuracy = []
for t in ID_TS:
    ab = schedule.alphas_cumprod[t]
    x_t = np.sqrt(ab) * cand + np.sqrt(1 - ab) * rng.standard_normal(cand.shape)   # (N, 784), x_t made from x0_n
    d2 = -2 * np.sqrt(ab) * x_t @ cand.T + ab * (cand ** 2).sum(1)[None, :]      # (N, N), minus ||x_t||^2
    id_accuracy.append(np.mean(d2.argmin(axis=1) == np.arange(N_ID)))
    print(f"t = {t:4d}: sigma_t {schedule.sigmas[t]:7.2f}, source identified {id_accuracy[-1]:6.1%} "
          f"(chance {1 / N_ID:.1%})")
noisy = [(t, a) for t, a in zip(ID_TS, id_accuracy) if schedule.sigmas[t] > 3 * 2]      # sigma over 3x the contrast 2
t_far, a_far = max(noisy, key=lambda p: p[1])                                            # the best of those steps
claims.claim(a_far > 10 / N_ID and id_accuracy[-1] < 5 / N_ID,
             "784 pixels of weak evidence add up: at t = {t} (sigma_t = {s:.1f}, three times the stroke contrast 2) the "
             "source is still identified {a:.1%} of the time, {r:.0f} times chance; at t = {T} accuracy is down to "
             "{c:.1%} (chance {ch:.1%})", t=t_far, s=schedule.sigmas[t_far], a=a_far, r=a_far * N_ID, T=ID_TS[-1],
             c=id_accuracy[-1], ch=1 / N_ID)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(ID_TS, id_accuracy, "o-")
ax.axhline(1 / N_ID, color="k", ls=":", lw=1, label=f"chance (1 / {N_ID})")
ax.set_xlabel("time step t")
ax.set_ylabel("source digit identified")
ax.legend(fontsize=8)
fig.tight_layout()
viz.save(fig, args.out / "digit_identification.png")

# %% [markdown]
# ## The U-Net, one batch at a time
#
# `UNet.forward_reference` calls its sub-modules in order: time embedding, input convolution, the ResBlocks and
# strided convolutions down, the middle (ResBlock, attention, ResBlock), the ResBlocks and upsampling convolutions up,
# and the output head. (`UNet.forward` normally takes a fast path, `models/unet_p.py`, that runs the same layers on
# another memory layout without calling their `forward`; `use_fast_path = False` makes it take the reference.) To
# watch the shapes we wrap each direct sub-module's `forward` (an instance attribute shadows the class's method) with
# one that records what went in and what came out, run one batch, and unwrap again. The first ResBlock of each level
# on the way up receives $[h; \text{skip}]$: its input has the channels of both.
# The model is the shipped one's shape: base_channels 24, levels 24-48-48, 10 classes plus the null label.

# %%
def trace_shapes(model, *inputs):
    """Run model(*inputs); return [(name, first input's shape, output's shape)] of its direct sub-modules, in call
    order."""
    calls = []
    for name, module in model.named_children():
        def traced(*xs, _forward=module.forward, _name=name):
            out = _forward(*xs)
            calls.append((_name, np.shape(xs[0]), out.shape))
            return out
        module.forward = traced
    try:
        model(*inputs)
    finally:
        for _, module in model.named_children():
            del module.forward                                              # back to the class's method
    return calls


unet = UNet(base_channels=24, num_classes=10, rng=SEED)
x = x_std[:4]                                                               # (4, 1, 28, 28)
unet.use_fast_path = False                                                  # the layer-by-layer path: calls them all
calls = trace_shapes(unet, x, np.full(4, 500), y_test[:4].astype(np.int64))
del unet.use_fast_path                                                      # back to the class's setting
for name, shape_in, shape_out in calls:
    print(f"{name:>14}: {str(shape_in):>18} -> {shape_out}")
shape_of = {name: (shape_in, shape_out) for name, shape_in, shape_out in calls}
sizes = [shape_of[n][1][-1] for n in ("conv_in", "downs.0", "downs.1")]     # resolution after each
first_up = [n for n, (s_in, s_out) in shape_of.items() if n.startswith("up_blocks.") and s_in[1] > s_out[1]]
claims.claim(sizes == [28, 14, 7] and shape_of["mid_attn"][0][-2:] == (7, 7) and shape_of["conv_out"][1] == x.shape
             and tuple(unet.cfg.channels) == (24, 48, 48) and unet.y_embed.params["weight"].shape[0] == 11,
             "the U-Net goes down 28 -> 14 -> 7 (resolutions {r}), attends at 7 x 7 and returns the input's shape "
             "{shape}; levels {c} channels, 10 + 1 label rows", r=sizes, shape=x.shape, c=tuple(unet.cfg.channels))
claims.claim(len(first_up) == len(unet.cfg.channel_mults)
             and all(shape_of[n][0][1] == 2 * shape_of[n][1][1] for n in first_up),
             "the first ResBlock of each level on the way up reads [h; skip], both halves' channels: {blocks}",
             blocks=", ".join(f"{n} {shape_of[n][0][1]} -> {shape_of[n][1][1]}" for n in first_up))

# %% [markdown]
# ## Receptive field along the way down
#
# The rule $r_l = r_{l-1} + (k_l - 1)\, j_{l-1}$ applied to the convolutions that a bottleneck feature depends on:
# the input convolution, two 3x3 convolutions per ResBlock, and the stride-2 convolutions. The 1x1 skip of a ResBlock
# adds nothing. For comparison, the same number of 3x3 convolutions all at stride 1.

# %%
def receptive_field(layers):
    """r and j after each (kernel, stride) of ``layers``: r_l = r_{l-1} + (k_l - 1) j_{l-1}, j_l = j_{l-1} s_l."""
    r, j, out = 1, 1, []
    for k, s in layers:
        r, j = r + (k - 1) * j, j * s
        out.append((r, j))
    return out


cfg = unet.cfg
path = [("conv_in", 3, 1)]
for level in range(len(cfg.channel_mults)):
    path += [(f"level {level} ResBlock {b + 1} conv{c}", 3, 1)              # each ResBlock: conv1, then conv2
             for b in range(cfg.num_res_blocks) for c in (1, 2)]
    if level < len(cfg.channel_mults) - 1:
        path.append((f"down {level} (stride 2)", 3, 2))
path += [(f"middle ResBlock conv{c}", 3, 1) for c in (1, 2)]
rf = receptive_field([(k, s) for _, k, s in path])
flat = receptive_field([(3, 1)] * len(path))
for (name, _, _), (r, j), (r_flat, _) in zip(path, rf, flat):
    print(f"{name:>28}: receptive field {r:3d} px (jump {j})   all at stride 1: {r_flat:3d} px")
print(f"then self-attention at 7 x 7: every position reads every other, the whole 28 x 28 image")
n_down = sum(1 for _, _, s in path if s == 2)
claims.claim(len(path) == 11 and flat[-1][0] == 23 and n_down == 2 and rf[-1][0] > 28,
             "eleven 3x3 convolutions ({n}) at stride 1 see {flat} x {flat} pixels; the same eleven with two stride-2 "
             "ones among them see {r} x {r}, more than the whole 28 x 28 digit", n=len(path), flat=flat[-1][0],
             r=rf[-1][0])

# %% [markdown]
# ## Where the parameters are
#
# Group the named parameters by the part of the network they belong to. A 3x3 convolution from $C_{\text{in}}$ to
# $C_{\text{out}}$ channels has $9\, C_{\text{out}} C_{\text{in}} + C_{\text{out}}$ parameters, so the levels with 48
# channels hold most of them, and the up path (whose first block per level reads $2C$ channels) holds more than the
# down path.

# %%
PARTS = {"t_": "time embedding MLP", "y_embed": "label table (K + 1 rows)", "conv_in": "input conv",
         "down": "down path", "mid": "middle (ResBlocks + attention)", "up": "up path", "out": "output head",
         "conv_out": "output head"}
counts = {}
for name, p in unet.parameters().items():
    part = next(v for k, v in PARTS.items() if name.startswith(k))
    counts[part] = counts.get(part, 0) + p.size
for part, n in counts.items():
    print(f"{part:>30}: {n:8d} ({n / unet.num_parameters():5.1%})")
print(f"{'total':>30}: {unet.num_parameters():8d}")
conv_weights = sum(p.size for p in unet.parameters().values() if p.ndim == 4)         # (C_out, C_in, k, k) arrays
print(f"convolution kernels hold {conv_weights / unet.num_parameters():.0%} of the parameters")
claims.claim(counts["up path"] > counts["down path"],
             "the up path ({u}) holds more parameters than the down path ({d})", u=counts["up path"], d=counts["down path"])
width = {name: getattr(m, "out_ch", None) or getattr(m, "out_channels", None) or getattr(m, "channels", None)
         for name, m in unet.named_children()}                              # output channels of each sub-module
wide = sum(m.num_parameters() for name, m in unet.named_children() if width[name] == 48)
claims.claim(wide > unet.num_parameters() / 2,
             "the sub-modules with 48 output channels hold most of the parameters ({w:.0%})",
             w=wide / unet.num_parameters())

# %% [markdown]
# ## AdaGN: how the time step moves the features (the shipped model)
#
# Load the shipped class-conditional model (`data/checkpoints/mnist_conditional.npz`; its EMA weights) and compute,
# for every $t$, the embedding $e(t)$ with the null label, and the scale $s$ and shift $b$ that the first ResBlock of
# the down path and the first of the middle apply to their channels. Each has a part that is the same at every $t$ (a
# learned per-channel gain and offset) and a part that changes with $t$; the picture shows the second, $s(t)$ minus
# its mean over $t$, one row per channel. Its size beside the constant part's is printed: that is how much the block's
# behaviour depends on the noise level, and it is not small. Look also at *where* along $t$ the colours change: they
# change fastest at small $t$ (below 300, where the task, remove a little noise and keep every stroke, differs most
# from inventing a digit), and the run prints how much of the total change, summed over the channels, lies there.

# %%
arrays = ckpt.load_checkpoint(CHECKPOINT)
shipped = load_trained(CHECKPOINT)           # the UNet (EMA weights) with its schedule, scaling, labels and config
model, model_config = shipped.network, shipped.config
print(f"shipped model: {model.num_parameters()} parameters, trained {int(arrays['meta/step'])} steps of batch "
      f"{model_config.batch_size} (of {model_config.steps} planned), schedule {model_config.schedule}, "
      f"label dropout {model_config.label_dropout}")
ts = np.arange(0, T, 5)
null = np.full(len(ts), model.null_label)
e = model.t_lin2(model.t_act(model.t_lin1(model.t_embed(ts)))) + model.y_embed(null)   # (len(ts), E)
claims.claim(model_config.schedule == "linear" and model_config.T == T and model_config.n_train == 60000
             and np.allclose(shipped.schedule.betas[[0, -1]], [1e-4, 0.02]) and model_config.base_channels == 24,
             "the shipped model uses DDPM's linear schedule (beta {b0:.0e} to {b1:.2f}, T = {T}) and was trained on all "
             "{n} training digits with base_channels {c}", b0=shipped.schedule.betas[0], b1=shipped.schedule.betas[-1],
             T=model_config.T, n=model_config.n_train, c=model_config.base_channels)
fig, axes = plt.subplots(2, 2, figsize=(10, 5), sharex=True)
adagn = {}                                         # (block, what) -> (rms constant, rms varying, share below t = 300)
for col, (name, block) in enumerate([("down_blocks.0", model.down_blocks[0]), ("mid1", model.mid1)]):
    sb = block.emb_proj(block.emb_act(e)).T.astype(np.float64)              # (2 C, len(ts)): rows s then b
    for row, (what, values) in enumerate([("scale s", sb[:block.out_ch]), ("shift b", sb[block.out_ch:])]):
        constant = values.mean(axis=1, keepdims=True)                       # (C, 1) the same at every t
        varying = values - constant                                         # (C, len(ts))
        lim = np.abs(varying).max()
        im = axes[row, col].imshow(varying, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim,
                                   extent=(0, T, block.out_ch, 0), interpolation="nearest")
        axes[row, col].set_title(f"{name}: {what}(t) - mean over t", fontsize=9)
        axes[row, col].set_ylabel("channel")
        fig.colorbar(im, ax=axes[row, col])
        change = np.abs(np.diff(values, axis=1)).sum(axis=0)                # (len(ts) - 1,) |s(t + 5) - s(t)| summed
        share = change[ts[1:] <= 300].sum() / change.sum()                  # of the total change, below t = 300
        adagn[name, what] = (np.sqrt(np.mean(constant ** 2)), np.sqrt(np.mean(varying ** 2)), share)
        print(f"{name} {what}: rms of the constant part {adagn[name, what][0]:.3f}, of the part that changes with t "
              f"{adagn[name, what][1]:.3f}; {share:.0%} of its change with t lies below t = 300")
for ax in axes[1]:
    ax.set_xlabel("time step t")
fig.tight_layout()
viz.save(fig, args.out / "adagn_scale_shift.png")
ratio = min(v / c for c, v, _ in adagn.values())
below = min(share for _, _, share in adagn.values())
claims.claim(ratio > 0.2, "the part of s and b that changes with t is not small: at least {r:.0%} of the constant "
             "part's rms in both blocks", r=ratio)
claims.claim(below / 0.3 > (1 - below) / 0.7,
             "s and b change fastest at small t: the 30% of the range below t = 300 holds at least {b:.0%} of the change",
             b=below)

# %% [markdown]
# ## A short training run
#
# The same `Trainer` as for points (chapter 6), now with data="mnist", which picks the UNet and the [-1, 1] scaling.
# To keep it short: a tiny UNet (base_channels 8: 8-16-16 channels), a subset of the training set, a few hundred
# steps (a handful in quick mode). The loss falls fast at first: the easy part is the background, where $x_0 = -1$
# and the noise can be read off $x_t$, $\epsilon = (x_t + \sqrt{\bar\alpha_t}) / \sqrt{1 - \bar\alpha_t}$. Per time
# step, expect the loss to be largest at small $t$, where predicting the noise means knowing the exact stroke to
# within a sliver of noise, and smallest at large $t$, where $x_t$ is nearly all noise and $\epsilon \approx x_t$. The
# shipped model's own training log (its last 20%, dashed) shows how far a long run gets: below the tiny run's at
# every $t$.

# %%
config = TrainConfig(data="mnist", model="unet", schedule="linear", T=T, lr=2e-3, warmup_steps=10, seed=SEED,
                     ema_decay=0.9 if args.quick else 0.99, log_every=max(1, SHORT["steps"] // 10), **SHORT)
trainer = Trainer(config)
print(f"tiny UNet: {trainer.model.num_parameters()} parameters; {config.steps} steps of batch {config.batch_size} "
      f"on {config.n_train} images")
t0 = time.perf_counter()
trainer.train(progress=not args.quick)
print(f"{time.perf_counter() - t0:.1f} s, {1e3 * trainer.log.seconds / config.steps:.0f} ms per step; loss "
      f"{trainer.log.loss[0]:.3f} at the first step, {np.mean(trainer.log.loss[-max(1, config.steps // 10):]):.3f} "
      f"over the last 10%")
viz.save(viz.loss_curve(trainer.log.loss, smooth=max(2, config.steps // 20)), args.out / "short_run_loss.png")

shipped_log = TrainLog(config.loss_buckets)
shipped_log.load_state_dict(ckpt.group(arrays, "log"))                      # the shipped model's own training log
tiny_vs_t, shipped_vs_t = trainer.log.loss_vs_t(0.5), shipped_log.loss_vs_t(0.2)   # (buckets,) each
centers = (np.arange(config.loss_buckets) + 0.5) * T / config.loss_buckets
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.plot(centers, tiny_vs_t, "o-", ms=3, label=f"tiny UNet, last half of {config.steps} steps")
ax.plot(centers, shipped_vs_t, "s--", ms=3, label=f"shipped model, last 20% of {len(shipped_log.loss)} steps")
ax.set_yscale("log")
ax.set_xlabel("time step t")
ax.set_ylabel("mean squared error of eps per pixel")
ax.legend(fontsize=7)
fig.tight_layout()
viz.save(fig, args.out / "short_run_loss_vs_t.png")
for k in (0, config.loss_buckets // 2, config.loss_buckets - 1):
    lo, hi = k * T // config.loss_buckets, (k + 1) * T // config.loss_buckets
    print(f"t in [{lo:3d}, {hi:4d}): tiny UNet {tiny_vs_t[k]:.4f}, shipped model {shipped_vs_t[k]:.4f}")
last = np.mean(trainer.log.loss[-max(1, config.steps // 10):])
claims.claim(last < 0.5 * trainer.log.loss[0], "the loss falls fast at first: {a:.3f} at the first step, {b:.3f} over "
             "the last 10% of {n} steps", a=trainer.log.loss[0], b=last, n=config.steps)
claims.claim(np.nanargmax(shipped_vs_t) == 0 and np.nanargmin(shipped_vs_t) == len(shipped_vs_t) - 1,
             "the shipped model's loss is largest in the first bucket of t ({a:.4f}) and smallest in the last ({b:.4f})",
             a=shipped_vs_t[0], b=shipped_vs_t[-1])
claims.claim(np.nanargmax(tiny_vs_t) == 0 and tiny_vs_t[-1] < tiny_vs_t[len(tiny_vs_t) // 2],
             "so is the tiny model's: largest at small t ({a:.4f}), lower at t = 500 ({m:.4f}) and at large t ({b:.4f})",
             a=tiny_vs_t[0], m=tiny_vs_t[len(tiny_vs_t) // 2], b=tiny_vs_t[-1], quick=False)
claims.claim(np.all(shipped_vs_t < tiny_vs_t), "the long run's loss is below the tiny run's at every t "
             "(ratio at most {r:.2f})", r=np.max(shipped_vs_t / tiny_vs_t), quick=False)

# %% [markdown]
# Samples of the tiny model (EMA weights, DDIM). It is unconditional, so there are no rows per class. A model this
# weak makes $x_0$ estimates outside the data range more often than the shipped model does (the run compares them on
# noised test digits at $t = 700$, where an error in $\epsilon$ is multiplied by $\sigma_t = 12$), and without a guard
# its samples saturate to black or white (most of their pixels end far beyond $\pm 1$); so, as DDPM's own sampler
# does ("clip_denoised"), we clamp each step's $x_0$ estimate to [-1, 1] (`clip=1.0`). After so short a run, expect
# blobs and strokes at best: the digit judge of chapter 13 is less sure what the tiny model's samples show than what
# the shipped model's show.

# %%
def x0_outside(network, t=700, n=10):
    # fraction of the pixels of x0_hat = (x_t - sqrt(1 - ab) eps_theta) / sqrt(ab) outside [-1, 1], n test digits
    ab = schedule.alphas_cumprod[t]
    x_t = q_sample(schedule, x_std[:n], np.full(n, t), np.random.default_rng(SEED).standard_normal(x_std[:n].shape))
    with blas_threads(1):
        eps_hat = network(x_t.astype(np.float32), np.full(n, t), *([np.full(n, network.null_label)]
                                                                    if network.num_classes else []))
    return np.mean(np.abs((x_t - np.sqrt(1 - ab) * eps_hat) / np.sqrt(ab)) > 1)


with trainer.ema.average_weights(), blas_threads(1):
    trainer.model.eval()
    x = sample(trainer.model, (10, 1, 28, 28), trainer.schedule, method="ddim", steps=DDIM_STEPS, clip=1.0, rng=SEED)
    x_free = sample(trainer.model, (10, 1, 28, 28), trainer.schedule, method="ddim", steps=DDIM_STEPS, rng=SEED)
    tiny_outside = x0_outside(trainer.model)
tiny_samples = np.clip(trainer.standardizer.inverse_transform(x), 0, 1)      # (10, 1, 28, 28) in [0, 1]
viz.save(viz.image_grid(tiny_samples, nrow=10), args.out / "short_run_samples.png")
shipped_outside = x0_outside(model)
saturated = np.mean(np.abs(x_free) > 1.5)                                     # far beyond black (-1) or white (+1)
print(f"x0 estimates at t = 700 outside [-1, 1]: tiny model {tiny_outside:.0%} of the pixels, shipped model "
      f"{shipped_outside:.0%}; without clipping, {saturated:.0%} of the tiny model's sample pixels end beyond +-1.5")
claims.claim(tiny_outside > shipped_outside and saturated > 0.5,
             "the tiny model's x0 estimates leave the data range more often than the shipped model's ({a:.0%} of the "
             "pixels against {b:.0%}), and unclipped, most of its sample pixels ({c:.0%}) end beyond +-1.5",
             a=tiny_outside, b=shipped_outside, c=saturated)
judge = load_classifier()


def judge_sure(images):
    # mean top probability the judge gives images (N, 1, 28, 28) in [0, 1]: how sure it is which digit it sees
    logits = judge(images.astype(np.float32)).astype(np.float64)              # (N, 10)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return float(np.mean(p.max(axis=1) / p.sum(axis=1)))

# %% [markdown]
# ## The shipped model
#
# The shipped checkpoint is the same kind of UNet with base_channels 24, trained on all 60,000 digits for the number of
# steps printed above (`python -m tinydiff train --data mnist --conditional --base-channels 24 ...`; docs/mnist.md
# has the command and its cost). It is class-conditional: chapter 12 shows how the label gets in. Here we ask it for
# each digit in turn (one row per class), without guidance ($s = 1$), with DDIM (chapter 8) in a few steps, and the
# judge reads nearly all of them as the digit we asked for.

# %%
labels = np.repeat(np.arange(10), PER_CLASS)                                  # (10 PER_CLASS,) 0, 0, ..., 9
t0 = time.perf_counter()
digits = shipped.sample(len(labels), label=labels, sampler="ddim", steps=DDIM_STEPS, guidance=1.0, rng=SEED,
                        batch_size=100, progress=not args.quick)              # (N, 1, 28, 28) in [0, 1]
print(f"{len(digits)} digits in {time.perf_counter() - t0:.1f} s ({DDIM_STEPS} DDIM steps)")
viz.save(viz.image_rows([(f"label {c}", digits[labels == c]) for c in range(10)]), args.out / "shipped_samples.png")
accuracy, _ = class_accuracy(judge.predict(digits), labels)
tiny_sure, shipped_sure = judge_sure(tiny_samples), judge_sure(digits)
print(f"judge: accuracy on the requested labels {accuracy:.3f}; mean top probability {shipped_sure:.3f} for the "
      f"shipped model's samples, {tiny_sure:.3f} for the tiny model's")
claims.claim(accuracy >= 0.9, "the judge reads {a:.1%} of the shipped model's samples as the requested digit",
             a=accuracy, quick=False)
claims.claim(tiny_sure < shipped_sure, "the judge is less sure of the tiny model's samples (mean top probability "
             "{a:.2f}) than of the shipped model's ({b:.2f})", a=tiny_sure, b=shipped_sure, quick=False)

# %% [markdown]
# Next (chapter 12): the label embedding, the null label, and classifier-free guidance on digits.

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
