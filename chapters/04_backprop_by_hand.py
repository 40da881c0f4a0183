# %% [markdown]
r"""
# Chapter 4 — Backpropagation by hand

tinydiff has no autograd. Every layer has a `forward` that computes its output and caches what it will need, and a
`backward` that turns $\partial L / \partial\,\text{output}$ into $\partial L / \partial\,\text{input}$ and fills the
gradients of its parameters. This chapter derives the backward pass of the smallest useful network, checks it against
finite differences, and trains it with Adam.

## The network and its loss

For inputs $x$ of shape (B, 2) and targets $y$ of shape (B, 1):

| forward | shape | |
| --- | --- | --- |
| $a = x W_1^\top + b_1$ | (B, H) | `Linear(2, H)` |
| $h = \mathrm{GELU}(a) = a\, \Phi(a)$ | (B, H) | $\Phi$: the standard normal CDF |
| $\hat y = h W_2^\top + b_2$ | (B, 1) | `Linear(H, 1)` |
| $L = \frac{1}{B} \sum_b (\hat y_b - y_b)^2$ | | `mse_loss` |

## The backward pass, one line per forward line, in reverse

Write $g_z$ for $\partial L / \partial z$. The chain rule, applied from the loss back to the input:

| backward | shape | |
| --- | --- | --- |
| $g_{\hat y} = 2 (\hat y - y) / B$ | (B, 1) | `mse_loss` returns it next to the loss |
| $g_{W_2} = g_{\hat y}^\top h, \quad g_{b_2} = \sum_b g_{\hat y}$ | (1, H), (1) | a sum over the batch: each weight collects from every sample |
| $g_h = g_{\hat y} W_2$ | (B, H) | the transpose of the forward matmul |
| $g_a = g_h \odot \mathrm{GELU}'(a)$, $\ \mathrm{GELU}'(a) = \Phi(a) + a\, \varphi(a)$ | (B, H) | $\varphi$: the normal density |
| $g_{W_1} = g_a^\top x, \quad g_{b_1} = \sum_b g_a$ | (H, 2), (H) | |
| $g_x = g_a W_1$ | (B, 2) | |

Two habits make this mechanical. **Shapes**: a gradient has the shape of the thing it differentiates, which fixes where
the transposes go ($g_{W_2}$ must be (1, H), so it is $g_{\hat y}^\top h$, not $h^\top g_{\hat y}$). **Broadcasts become
sums**: $b_2$ is added to every row, so its gradient sums over the rows. Forgetting that sum is the classic bug.

## Checking it: finite differences

For any scalar $L(\theta)$, the central difference

$$\frac{L(\theta + \varepsilon e_k) - L(\theta - \varepsilon e_k)}{2 \varepsilon}$$

approximates $\partial L / \partial \theta_k$ with error $O(\varepsilon^2)$ from the Taylor series, plus a rounding
error of about $\varepsilon_\text{mach} |L| / \varepsilon$. The two balance near
$\varepsilon \approx (\varepsilon_\text{mach} |L| / |L'''|)^{1/3}$: for a function of unit scale about $10^{-5}$ in
float64 (error $\approx 10^{-10}$) but $10^{-2}$ in float32 (error $\approx 10^{-3}$ at best), which is why gradient
checks run in float64. The bottom of the V is flat and its position moves with the function's scale: this chapter's run
measures its best $\varepsilon$ at 1e-4 in float64 (relative error 1e-8 or below anywhere between 3e-6 and 3e-4) and
3e-2 in float32. `tinydiff.nn.check_module` projects the output onto a random $r$ ($L = \sum r \odot \text{forward}(x)$,
so `backward(r)` gives every analytic gradient at once) and compares, tensor by tensor.

Figures written (to `chapters/out/04/` unless `--out` says otherwise):
`finite_difference_error.png`, `gradient_check.png`, `training_loss.png`, `regression_fit.png`.
"""

# %%
import numpy as np

from tinydiff import claims, viz
from tinydiff.nn import GELU, AdamW, Linear, Sequential, check_module, clip_grad_norm, mse_loss, warmup_cosine_lr

args = viz.chapter_args(4, "Chapter 4: backpropagation by hand")   # --out DIR (default chapters/out/04), --quick
plt = viz.plt()                                                      # matplotlib.pyplot with the headless Agg backend

# ---- constants -------------------------------------------------------------------------------------------------
HIDDEN = 64                                    # H, the width of the hidden layer
N_TRAIN = 256 if args.quick else 1024          # training points on the square [-1, 1]^2
STEPS = 150 if args.quick else 3000            # AdamW steps (full batch)
LR = 1e-2                                      # peak learning rate
WARMUP = 20 if args.quick else 100             # linear warm-up steps, then cosine decay to LR / 100
WEIGHT_DECAY = 1e-4                            # AdamW's decoupled decay
MAX_GRAD_NORM = 1.0                            # gradient clipping
GRID = 40 if args.quick else 100               # grid points per axis in the fit figure
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)


def target(x):
    """The function to learn: f(x1, x2) = sin(3 x1) cos(2 x2). x: (N, 2) -> (N, 1)."""
    return np.sin(3 * x[:, :1]) * np.cos(2 * x[:, 1:])


def make_net(dtype):
    return Sequential(Linear(2, HIDDEN, rng=SEED, dtype=dtype), GELU(), Linear(HIDDEN, 1, rng=SEED + 1, dtype=dtype))


def save(fig, name):
    viz.save(fig, args.out / name)


# %% [markdown]
# ## One forward and backward pass, in float64
#
# The library's layers do exactly the lines derived above. Run them once and look at what came out: every gradient
# has the shape of its parameter.

# %%
net = make_net(np.float64)
x_small = rng.uniform(-1, 1, (8, 2))
loss, g_yhat = mse_loss(net.forward(x_small), target(x_small))
g_x = net.backward(g_yhat)
print(f"loss {loss:.4f}; g_x shape {g_x.shape}")
for name, g in net.gradients().items():
    print(f"  dL/d{name:<16} shape {str(g.shape):<10} norm {np.linalg.norm(g):.3e}")

# %% [markdown]
# ## Choosing $\varepsilon$: the V-shaped error of a finite difference
#
# For one weight, compare the analytic gradient with central differences over a range of $\varepsilon$, in float64 and
# in a float32 copy of the same network. Truncation error falls like $\varepsilon^2$ to the right; rounding error grows
# like $1/\varepsilon$ to the left. In float32 an $\varepsilon$ below about $10^{-7} |w|$ does not even change $w$
# ($w + \varepsilon$ rounds back to $w$), so the numeric gradient is 0 and the relative error is 1. Figure:
# `finite_difference_error.png`.

# %%
EPSILONS = np.logspace(-12, -1, 23)
fd_errors = {}
for dtype in (np.float64, np.float32):
    m = make_net(dtype)
    xd, yd = x_small.astype(dtype), target(x_small).astype(dtype)
    _, g = mse_loss(m.forward(xd), yd)
    m.backward(g)
    w = m.parameters()["layers.0.weight"]
    analytic = float(m.gradients()["layers.0.weight"][0, 0])
    errs = []
    for eps in EPSILONS:
        old = w[0, 0]
        w[0, 0] = old + dtype(eps)
        lp = mse_loss(m.forward(xd), yd)[0]
        w[0, 0] = old - dtype(eps)
        lm = mse_loss(m.forward(xd), yd)[0]
        w[0, 0] = old
        numeric = (lp - lm) / (2 * eps)
        errs.append(abs(numeric - analytic) / max(abs(analytic), 1e-12))
    fd_errors[np.dtype(dtype).name] = np.array(errs)

fig, ax = plt.subplots(figsize=(5.5, 3.8))
for name, errs in fd_errors.items():
    ax.loglog(EPSILONS, np.maximum(errs, 1e-16), "o-", ms=3, label=name)
ax.set_xlabel("eps")
ax.set_ylabel("relative error of the central difference")
ax.set_title("Finite differences: rounding (left) vs truncation (right)")
ax.legend()
save(fig, "finite_difference_error.png")
best = {k: EPSILONS[np.argmin(v)] for k, v in fd_errors.items()}
flat = (EPSILONS >= 2e-6) & (EPSILONS <= 4e-4)
claims.claim(1e-6 <= best["float64"] <= 1e-3 and fd_errors["float64"][flat].max() < 1e-8,
             "float64: best eps {b:.0e}; relative error below 1e-8 for every eps in [3e-6, 3e-4] (largest {e:.1e})",
             b=best["float64"], e=fd_errors["float64"][flat].max())
claims.claim(best["float32"] >= 1e-3 and fd_errors["float32"].min() > 1e-5,
             "float32: best eps {b:.0e}, and even there the relative error is {e:.1e} (> 1e-5)",
             b=best["float32"], e=fd_errors["float32"].min())

# %% [markdown]
# ## The gradient check, and what a bug looks like
#
# `check_module` checks every input and parameter of the network. To see it fail, break GELU's backward the way students
# often do: return $\mathrm{GELU}'(a)$ and forget to multiply by the incoming gradient $g_h$. Three tensors fail: the
# input gradient **and** layer 0's weight and bias, although Linear's formulas are right. Gradients flow down from the
# output, so the wrong $g_a$ that GELU hands down spoils *every* gradient below it. The last layer's parameters stay
# right: the gradient reaching them never passed through GELU. So a failing tensor says "the error entered at or above
# me", and the right reading is: the error enters between the highest failing layer (layers.0) and the next layer that
# passes (layers.2), i.e. in layers.0 or layers.1 (GELU). The hints say exactly that; checking each candidate *alone*
# then names GELU. Figure: `gradient_check.png`.

# %%
good = check_module(make_net(np.float64), x_small, verbose=True)


class GELUForgetsChainRule(GELU):
    """A deliberately wrong backward: dL/da = GELU'(a) instead of g_h * GELU'(a)."""

    def backward(self, grad_output):
        return super().backward(np.ones_like(grad_output))


buggy_net = make_net(np.float64)
buggy_net.layers[1] = GELUForgetsChainRule()
bad = check_module(buggy_net, x_small, verbose=True)
for name, hint in bad.hints.items():
    print(f"  hint for {name}: {hint}")
claims.claim(good.ok, "the correct backward passes: largest relative error {e:.1e}", e=max(good.errors.values()))
claims.claim(set(bad.failures()) == {"input0", "layers.0.weight", "layers.0.bias"},
             "with GELU's chain rule broken, exactly the input gradient and layer 0's weight and bias fail ({names})",
             names=", ".join(bad.failures()))
claims.claim(all("layers.0 (Linear), layers.1 (GELUForgetsChainRule)" in h for h in bad.hints.values()),
             "every hint names layers 0-1 as where the error can enter, not Linear's formula")

# Check each candidate alone, on the input it really sees in the network.
a_small = buggy_net.layers[0].forward(x_small)                       # (8, H): GELU's input
alone = {"layers.0 (Linear)": check_module(make_net(np.float64).layers[0], x_small, verbose=False),
         "layers.1 (GELU, broken)": check_module(GELUForgetsChainRule(), a_small, verbose=False)}
for name, report in alone.items():
    print(f"  {name} checked alone: {'ok' if report.ok else 'FAIL'} (largest error {max(report.errors.values()):.1e})")
claims.claim(alone["layers.0 (Linear)"].ok and not alone["layers.1 (GELU, broken)"].ok,
             "checked alone, Linear passes and the broken GELU fails: the bug is found")

fig, ax = plt.subplots(figsize=(6.5, 3.6))
names = list(good.errors)
pos = np.arange(len(names))
ax.bar(pos - 0.2, [max(good.errors[k], 1e-16) for k in names], 0.4, label="correct backward")
ax.bar(pos + 0.2, [max(bad.errors[k], 1e-16) for k in names], 0.4, label="GELU forgets the chain rule")
ax.axhline(good.rtol, color="k", ls="--", lw=1, label=f"threshold {good.rtol:.0e}")
ax.set_yscale("log")
ax.set_xticks(pos, names, rotation=30, ha="right")
ax.set_ylabel("relative error")
ax.set_title("Gradient check in float64")
ax.legend(fontsize=8)
save(fig, "gradient_check.png")

# %% [markdown]
# ## Training: AdamW on a 2D regression
#
# Now in float32, as for real training. Each step is the whole story of this chapter: forward, loss and its gradient,
# backward, clip the global gradient norm, set the learning rate (linear warm-up, then cosine decay), AdamW step.
# Figures: `training_loss.png` and `regression_fit.png` (the target, the network's fit, and the error).

# %%
x_train = rng.uniform(-1, 1, (N_TRAIN, 2)).astype(np.float32)
y_train = target(x_train).astype(np.float32)
model = make_net(np.float32)
opt = AdamW(model.parameters(), model.gradients(), lr=LR, weight_decay=WEIGHT_DECAY)
losses, lrs = [], []
for step in range(STEPS):
    loss, g = mse_loss(model.forward(x_train), y_train)
    model.backward(g)
    clip_grad_norm(model.gradients(), MAX_GRAD_NORM)
    opt.lr = warmup_cosine_lr(step, LR, WARMUP, STEPS, min_lr=LR / 100)
    opt.step()
    losses.append(loss)
    lrs.append(opt.lr)

fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.semilogy(losses, label="training MSE")
ax.set_xlabel("step")
ax.set_ylabel("MSE")
ax2 = ax.twinx()
ax2.plot(lrs, color="C1", lw=1, label="learning rate")
ax2.set_ylabel("learning rate", color="C1")
ax.set_title("AdamW with warm-up and cosine decay")
save(fig, "training_loss.png")

u = np.linspace(-1, 1, GRID)
grid = np.stack(np.meshgrid(u, u), axis=-1).reshape(-1, 2).astype(np.float32)   # (GRID*GRID, 2)
truth = target(grid).reshape(GRID, GRID)
fit = model.forward(grid).reshape(GRID, GRID)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained")   # constrained: colourbars keep clear
for ax, (title, img) in zip(axes, [("target sin(3x1)cos(2x2)", truth), ("network", fit), ("error", fit - truth)]):
    im = ax.imshow(img, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu_r",
                   vmin=-1 if title != "error" else -0.2, vmax=1 if title != "error" else 0.2)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
save(fig, "regression_fit.png")

# %%
test_mse = float(np.mean((fit - truth) ** 2))
claims.claim(losses[-1] < losses[0] / 2, "training lowers the MSE: {l0:.3f} -> {l1:.4f}", l0=losses[0], l1=losses[-1])
claims.claim(losses[-1] < losses[0] / 100 and test_mse < 2 * losses[-1] + 1e-3,
             "after {n} steps the MSE is below 1 % of its start ({l1:.4f}), and the fit holds between the training points "
             "(grid MSE {g:.4f})", n=STEPS, l1=losses[-1], g=test_mse, quick=False)
print(f"\nsummary: gradient check max error {max(good.errors.values()):.1e} (correct) vs "
      f"{max(bad.errors.values()):.1e} (broken GELU); training MSE {losses[0]:.3f} -> {losses[-1]:.4f} "
      f"in {STEPS} steps; grid MSE {test_mse:.4f}")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
