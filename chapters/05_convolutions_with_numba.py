# %% [markdown]
r"""
# Chapter 5 — Convolutions and normalisation with Numba

An image denoiser must treat every part of the image alike: an edge is an edge wherever it is. A convolution builds
that in. It slides one small set of weights over the image, so a 3x3 layer from 32 to 32 channels has 9 216 weights
whatever the image size, where a dense layer on 28x28x32 features would need 600 million. This chapter writes the
layer and its two backward passes, makes them fast with Numba and BLAS, measures the result, and then derives
GroupNorm, the normalisation a diffusion U-Net uses between its convolutions.

## What a convolution computes

With input $x$: (B, C, H, W), weights $w$: (O, C, kh, kw), bias $b$: (O,), stride $s$ and zero padding $p$
(`tinydiff/nn/kernels/conv.py`, eq. 1):

$$y_{b,o,m,n} = b_o + \sum_{c, i, j} w_{o,c,i,j}\, x_{b,\, c,\, ms - p + i,\, ns - p + j}$$

$$y: (B, O, H_o, W_o), \qquad H_o = \left\lfloor \frac{H + 2p - k_h}{s} \right\rfloor + 1$$

(Deep-learning libraries compute this cross-correlation and call it convolution; flipping the kernel would change
nothing, since the weights are learned.) Stride 2 halves the resolution; `Upsample(2)` followed by a 3x3 convolution
doubles it; `AvgPool2d(2)` averages 2x2 blocks.

## Two ways to compute it

**Direct loops** run the formula as written: seven nested loops. Readable, but the inner loop is short ($W_o = 28$
values) and each weight is reused only along one row, so the CPU's vector units sit mostly idle.

**im2col** copies every receptive field into a column of a matrix, `cols`: (B, C kh kw, Ho Wo), so that the whole
 convolution becomes one matrix product per image, $y_b = W_2\, \mathrm{cols}_b + b$ with $W_2$ = `w.reshape(O, C kh
 kw)`. The copy costs memory (9x the input for a 3x3 kernel) and a few milliseconds, but the product runs in BLAS, which
 is tuned to keep every vector unit busy. The layout matters too: in NHWC order (channels last) a direct loop can run
 its inner loop over the contiguous channel axis, which vectorises much better than NCHW's short rows.

## The backward passes, written out

From $dy = \partial L / \partial y$, the chain rule applied to eq. 1 gives (eqs. 2-4 in `kernels/conv.py`):

$$dw_{o,c,i,j} = \sum_{b, m, n} dy_{b,o,m,n}\, x_{b,\, c,\, ms - p + i,\, ns - p + j}
\qquad\left(dW_2 = \sum_b dy_b\, \mathrm{cols}_b^\top\right)$$

$$db_o = \sum_{b, m, n} dy_{b,o,m,n}$$

and $dx$ collects every $w_{o,c,i,j}\, dy_{b,o,m,n}$ at the pixel it was read from
($d\mathrm{cols} = W_2^\top dy$, $dx = \mathrm{col2im}(d\mathrm{cols})$).

col2im is the adjoint (transpose) of im2col: where im2col copied one pixel into up to $k_h k_w$ columns, col2im adds
those $k_h k_w$ entries back together. So the backward pass is two more matrix products of the same size as the forward:
training costs about three forward passes.

## GroupNorm and its backward

GroupNorm (Wu & He 2018) splits the $C$ channels into $G$ groups and normalises each image's group over its
$N = (C/G)\, H W$ values: $\hat x = (x - \mu) / \sqrt{\sigma^2 + \varepsilon}$, $y = \gamma_c \hat x + \beta_c$.
Unlike BatchNorm it never mixes images, so it works at any batch size and the same in training and sampling. Its
backward is LayerNorm's, once per (image, group), with $g = dy\, \gamma$ and $r = 1 / \sqrt{\sigma^2 + \varepsilon}$
(`rstd` in the code):

$$dx = r \big(g - \mathrm{mean}(g) - \hat x\, \mathrm{mean}(g \hat x)\big), \qquad
d\gamma = \sum dy\, \hat x, \qquad d\beta = \sum dy$$

The $\mathrm{mean}(g)$ term is the path through $\mu$; the $\hat x\, \mathrm{mean}(g \hat x)$ term is the path through
$\sigma^2$.

Figures written (to `chapters/out/05/` unless `--out` says otherwise):
`conv_filters.png`, `im2col_columns.png`, `groupnorm_statistics.png`, `conv_speed.png`.
The last section times the padded-plane, register-blocked kernel the U-Net uses against the machine's GEMM peak.
"""

# %%
import time

import numba
import numpy as np

from tinydiff import claims, viz
from tinydiff.nn import AvgPool2d, Conv2d, GroupNorm, Upsample, check_module
from tinydiff.nn.kernels import conv as K
from tinydiff.bench.conv import bench_conv, bench_groupnorm, format_table
from tinydiff.threads import blas_info

args = viz.chapter_args(5, "Chapter 5: convolutions and normalisation with Numba")  # --out DIR, --quick
plt = viz.plt()                                                      # matplotlib.pyplot with the headless Agg backend

# ---- constants -------------------------------------------------------------------------------------------------
BENCH_BATCH = 4 if args.quick else 64         # the timed convolution: 3x3, BENCH_CHANNELS -> BENCH_CHANNELS channels,
BENCH_CHANNELS = 32                           #   BENCH_SIZE x BENCH_SIZE images, this batch
BENCH_SIZE = 28
BENCH_REPEATS = 2 if args.quick else 5        # timed calls per pass (the median is reported)
BENCH_THREADS = (1,)                          # BLAS threads (Numba kernels are always serial)
GN_GROUPS = 8                                 # GroupNorm groups for the statistics figure (32 channels)
SEED = 0
# -----------------------------------------------------------------------------------------------------------------

rng = np.random.default_rng(SEED)
if numba.config.DISABLE_JIT:                  # pure-Python loops (debugging): time a toy problem, or wait minutes
    print("NUMBA_DISABLE_JIT is set: the speed table below times a tiny problem and means nothing")
    BENCH_BATCH, BENCH_CHANNELS, BENCH_SIZE, BENCH_REPEATS = 1, 4, 6, 1


def save(fig, name):
    viz.save(fig, args.out / name)


# %% [markdown]
# ## A convolution by hand
#
# Three hand-set 3x3 filters applied to a digit: horizontal edges, vertical edges and a Laplacian (which responds to
# the outline). We load them into a `Conv2d(1, 3, 3, padding=1)` and check one output pixel against eq. 1 summed by
# hand. Figure: `conv_filters.png`.

# %%
digit = viz.render_glyph("5", 28)[None, None]                       # (1, 1, 28, 28) in [0, 1]
filters = np.array([
    [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],                         # Sobel: horizontal edges
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],                         # Sobel: vertical edges
    [[0, 1, 0], [1, -4, 1], [0, 1, 0]],                           # Laplacian
], dtype=np.float64)[:, None]                                     # (3, 1, 3, 3) = (O, C, kh, kw)
conv = Conv2d(1, 3, 3, padding=1, dtype=np.float64)
conv.params["weight"][...] = filters
conv.params["bias"][...] = 0.0
edges = conv(digit)                                               # (1, 3, 28, 28)

m, n = 14, 10
by_hand = sum(filters[2, 0, i, j] * digit[0, 0, m - 1 + i, n - 1 + j] for i in range(3) for j in range(3))
claims.claim(abs(edges[0, 2, m, n] - by_hand) < 1e-12,
             "Laplacian at ({m}, {n}): the layer gives {layer:+.6f}, eq. 1 by hand {hand:+.6f}",
             m=m, n=n, layer=edges[0, 2, m, n], hand=by_hand)

down = Conv2d(1, 1, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
print(f"shapes: x {digit.shape} -> stride-2 conv {down(digit).shape} -> AvgPool2d(2) "
      f"{AvgPool2d(2)(digit).shape} -> Upsample(2) {Upsample(2)(AvgPool2d(2)(digit)).shape}")

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(digit[0, 0], cmap="gray")
axes[0].set_title("input")
for ax, img, title in zip(axes[1:], edges[0], ["horizontal edges", "vertical edges", "Laplacian"]):
    lim = np.abs(img).max()
    ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title)
for ax in axes:
    ax.axis("off")
save(fig, "conv_filters.png")

# %% [markdown]
# ## im2col: the convolution as a matrix product
#
# For an 8x8 crop and a 3x3 kernel with padding 1, im2col makes a (9, 64) matrix: column $(m, n)$ holds the 3x3 patch
# around pixel $(m, n)$, row $(i, j)$ holds the image shifted by $(i - 1, j - 1)$. Multiplying by the (3, 9) filter
# matrix gives the three filtered crops at once. Figure: `im2col_columns.png`.

# %%
crop = np.ascontiguousarray(digit[:, :, 10:18, 8:16])            # (1, 1, 8, 8)
cols = K.im2col_numba(crop, 3, 3, 1, 1, np.empty((1, 9, 64)))          # (B, C kh kw, Ho Wo)
as_matmul = (filters.reshape(3, 9) @ cols[0]).reshape(3, 8, 8)   # W2 @ cols
claims.claim(np.abs(as_matmul - conv(crop)[0]).max() < 1e-12,
             "W2 @ im2col(x) equals Conv2d (largest difference {d:.1e})", d=np.abs(as_matmul - conv(crop)[0]).max())

c = rng.standard_normal(cols.shape)                               # col2im is im2col's transpose:
lhs, rhs = np.sum(cols * c), np.sum(crop * K.col2im_numba(c, 3, 3, 1, 1, np.empty_like(crop)))
claims.claim(abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs)),
             "col2im is im2col's transpose: <im2col(x), c> = {lhs:.6f} = <x, col2im(c)> = {rhs:.6f}", lhs=lhs, rhs=rhs)

fig, axes = plt.subplots(1, 2, figsize=(10, 2.6), gridspec_kw={"width_ratios": [1, 5]})
axes[0].imshow(crop[0, 0], cmap="gray")
axes[0].set_title("8x8 crop")
axes[1].imshow(cols[0], cmap="gray", aspect="auto")
axes[1].set_title("im2col: 9 rows (kernel offsets) x 64 columns (output pixels)")
axes[1].set_xlabel("output pixel m*8 + n")
axes[1].set_ylabel("offset i*3 + j")
axes[0].axis("off")
save(fig, "im2col_columns.png")

# %% [markdown]
# ## Checking the backward passes
#
# `check_module` compares $dx$, $dw$ and $db$ with central finite differences in float64 (chapter 4). A correct
# backward agrees to about 1e-9; a wrong one is off by order 1.

# %%
conv_check = Conv2d(3, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64)
report_conv = check_module(conv_check, rng.standard_normal((2, 3, 7, 6)))
gn_check = GroupNorm(2, 4, dtype=np.float64)
gn_check.params["weight"][...] = rng.standard_normal(4)
report_gn = check_module(gn_check, rng.standard_normal((2, 4, 5, 5)))
claims.claim(report_conv.ok and report_gn.ok and max(*report_conv.errors.values(), *report_gn.errors.values()) < 1e-8,
             "Conv2d (stride 2) and GroupNorm pass the gradient check: largest relative error {e:.1e}",
             e=max(*report_conv.errors.values(), *report_gn.errors.values()))

# %% [markdown]
# ## What GroupNorm does to the statistics
#
# Feature maps coming out of a convolution have group means and spreads that drift from image to image. After
# GroupNorm(8, 32) every (image, group) has mean 0 and standard deviation 1 (before $\gamma$ and $\beta$, which start at
# 1 and 0). Figure: `groupnorm_statistics.png`.

# %%
features = Conv2d(1, 32, 3, padding=1, rng=rng, dtype=np.float64)(
    np.concatenate([viz.render_glyph(d, 28)[None, None] for d in "0123"]))       # (4, 32, 28, 28)
normed = GroupNorm(GN_GROUPS, 32, dtype=np.float64)(features)
stats = {}
for name, a in [("conv output", features), ("after GroupNorm", normed)]:
    g = a.reshape(4, GN_GROUPS, -1)                                           # (B, G, C/G H W)
    stats[name] = (g.mean(-1).ravel(), g.std(-1).ravel())
fig, ax = plt.subplots(figsize=(5, 3.6))
for (name, (mu, sd)), marker in zip(stats.items(), "ox"):
    ax.scatter(mu, sd, marker=marker, label=name)
ax.set_xlabel("group mean")
ax.set_ylabel("group standard deviation")
ax.set_title(f"GroupNorm({GN_GROUPS}, 32): one point per (image, group)")
ax.legend()
save(fig, "groupnorm_statistics.png")
mu, sd = stats["after GroupNorm"]
claims.claim(np.abs(mu).max() < 1e-9 and np.abs(sd - 1).max() < 1e-3,
             "after GroupNorm every (image, group) has mean 0 (largest {m:.0e}) and std 1 (largest gap {s:.0e}; the "
             "gap is GroupNorm's eps)", m=np.abs(mu).max(), s=np.abs(sd - 1).max())

# %% [markdown]
# ## How fast? im2col + BLAS against direct loops and the NumPy reference
#
# The benchmark of `tinydiff/bench/conv.py` on a 3x3, 32 -> 32 channel convolution of 28x28 images
# (batch 64 in the full run: 0.925 GFLOP per pass; batch 4 under --quick), float32. Each strategy is timed for the
# forward pass and both backward passes; the first call (JIT compilation) is not timed. Numbers from the development
# machine are in docs/performance.md. Figure: `conv_speed.png`.

# %%
print(blas_info())
rows = bench_conv(B=BENCH_BATCH, C=BENCH_CHANNELS, O=BENCH_CHANNELS, H=BENCH_SIZE, W=BENCH_SIZE,
                  repeats=BENCH_REPEATS, threads=BENCH_THREADS)
print(format_table(rows))

import matplotlib.ticker as mpl_ticker

names = list(dict.fromkeys(r["strategy"] for r in rows))
passes = ["forward", "backward-input", "backward-weight"]
fig, ax = plt.subplots(figsize=(8, 3.6))
for k, p in enumerate(passes):
    ms = [next(r["ms"] for r in rows if r["strategy"] == s and r["pass"] == p) for s in names]
    ax.barh(np.arange(len(names)) + 0.27 * (k - 1), ms, height=0.27, label=p)
ax.set_yticks(np.arange(len(names)), names)
ax.invert_yaxis()
ax.set_xscale("log")
ax.xaxis.set_major_formatter(mpl_ticker.FormatStrFormatter("%g"))      # 1, 10, 100 ms; no colliding minor labels
ax.xaxis.set_minor_formatter(mpl_ticker.NullFormatter())
ax.set_xlabel(f"ms per pass (batch {BENCH_BATCH}, median of {BENCH_REPEATS}; lower is better)")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)   # below the axes, off the bars
save(fig, "conv_speed.png")

# GroupNorm: the fused Numba kernels against the NumPy references, on the benchmark's activation shape
gn_groups = min(GN_GROUPS, BENCH_CHANNELS)
gn_ms = bench_groupnorm(B=BENCH_BATCH, C=BENCH_CHANNELS, H=BENCH_SIZE, W=BENCH_SIZE, num_groups=gn_groups,
                        repeats=BENCH_REPEATS)
print(f"GroupNorm({gn_groups}, {BENCH_CHANNELS}) on ({BENCH_BATCH}, {BENCH_CHANNELS}, {BENCH_SIZE}, {BENCH_SIZE}), "
      "forward / backward ms: "
      f"numba {gn_ms['numba'][0]:.2f} / {gn_ms['numba'][1]:.2f}, numpy {gn_ms['numpy'][0]:.2f} / {gn_ms['numpy'][1]:.2f}")

# %% [markdown]
# ## Why the obvious convolution is slow, and what the fast one does
#
# **Arithmetic intensity.** A 3x3 convolution from $C$ to $O$ channels does $2 \cdot 9\, C O$ flops per output pixel but
#  only needs to read $C$ input values and write $O$ outputs per pixel, plus the $9\, C O$ weights once. Its arithmetic
#  intensity (flops per byte that must come from memory) is therefore high, dozens of flops per byte for 32 channels
#  (the cell below computes it), far more than the machine's balance (peak flops / memory bandwidth, of order 5-10 flops
#  per byte on today's CPUs). So a convolution *can* run at the CPU's peak: the data fits the caches and the limit is
#  how many multiply-adds per cycle the code issues.
#
# **Why the direct loops do not.** The seven nested loops of eq. 1 update one output sum per multiply-add. Compiled,
# the innermost loop loads an input, loads the partial sum, adds, and stores it again: two loads and a store for one
# fused multiply-add, so the loop is bound by the load/store ports at a small fraction of the peak. im2col + BLAS
# does better because BLAS's micro-kernel keeps a tile of partial sums in registers, but on the U-Net's thin
# matrices (24-96 rows) BLAS runs well below its peak, and building the columns costs memory traffic of its own.
#
# **What the fast kernel does** (`tinydiff/nn/kernels/pconv.py`, used by the U-Net's fast path):
#
# 1. *Layout.* Each channel of all images is one long "plane", image rows stored with one shared zero column after them
#    and one zero row after each image (`kernels/playout.py` draws it). A 3x3 tap $(i, j)$ is then the constant offset
#    $(i - 1) W_p + (j - 1)$ ($W_p = W + 1$, the padded row length) from the output position, padding included, so no
#    im2col copy is needed: the convolution is nine shifted multiply-adds of whole planes.
# 2. *Register blocking.* A generated kernel keeps 4 output channels x 64 positions of partial sums in 16 vector
#    registers (an explicit 16 x float32 vector type, `kernels/simd.py`). For every input channel and tap it loads
#    4 vectors of inputs and broadcasts 4 weights, then does 16 vector multiply-adds: every load feeds 4 FMAs
#    instead of one.
# 3. *Backward.* The input gradient is the same kernel reading the tap list backwards (weights transposed, offsets
#    negated); the weight gradient has its own generated kernel (4 x 6 accumulators over chunks of 512 positions).
#
# The cell below measures the machine's float32 GEMM peak on one thread in this run (BLAS on a $384^3$ product), then
# times the three passes of the P-layout kernel, im2col + BLAS and the direct loops on the benchmark's convolution, the
# same way (best of repeated calls: on a shared machine the minimum is the least disturbed by other jobs). The P
# kernel's time leaves out the layout conversion: the U-Net keeps its activations in this layout from the first layer to
# the last.

# %%
from tinydiff.nn.kernels.pconv import PConv, conv_source  # noqa: E402
from tinydiff.nn.kernels.playout import PLayout  # noqa: E402
from tinydiff.threads import blas_threads  # noqa: E402

C_, O_ = BENCH_CHANNELS, BENCH_CHANNELS
flops = 2.0 * BENCH_BATCH * BENCH_SIZE**2 * O_ * C_ * 9                 # one pass
min_bytes = 4.0 * (BENCH_BATCH * BENCH_SIZE**2 * (C_ + O_) + 9 * C_ * O_)
claims.claim(flops / min_bytes > 20 or C_ < 32,
             "arithmetic intensity of the {C}-channel 3x3 convolution: {ai:.0f} flops per byte of compulsory memory "
             "traffic (dozens, far above a CPU's balance of peak flops to bandwidth)", C=C_, ai=flops / min_bytes)
src = conv_source(4)
n_fma, n_load = src.count("vfma("), src.count("vload(x,")
claims.claim(n_fma == 16 and n_fma // n_load == 4,
             "the generated kernel (4 output channels x 4 vectors) does {n_fma} vector FMAs per {n_load} vector loads "
             "of inputs: every load feeds 4 FMAs", n_fma=n_fma, n_load=n_load)


def best_ms(fn, min_seconds=0.3 if args.quick else 1.0):
    """The fastest of repeated calls over at least min_seconds (the minimum is the least disturbed by other jobs)."""
    fn()                                                              # the first call compiles
    times, t_end = [], time.perf_counter() + min_seconds
    while len(times) < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


n_gemm = 128 if numba.config.DISABLE_JIT else 384     # ~1 ms per product, like the kernels timed below
a_gemm = rng.standard_normal((n_gemm, n_gemm)).astype(np.float32)
with blas_threads(1):
    peak = 2.0 * n_gemm**3 / best_ms(lambda: a_gemm @ a_gemm) / 1e6      # GFLOP/s
lay = PLayout(BENCH_BATCH, BENCH_SIZE, BENCH_SIZE)
pconv = PConv(O_, C_, 3, 1, lay, lay)
w_p = (rng.standard_normal((O_, C_, 3, 3)) / np.sqrt(9 * C_)).astype(np.float32)
b_p = np.zeros(O_, np.float32)
X_p = lay.to_p(rng.standard_normal((BENCH_BATCH, C_, BENCH_SIZE, BENCH_SIZE)))
Y_p, dX_p = lay.zeros(O_), lay.zeros(C_)
dw_p, db_p = np.zeros_like(w_p), np.zeros_like(b_p)
x_n = lay.from_p(X_p)                                                    # the same data in NCHW for the others
y_n, dy_n, dx_n = np.empty((BENCH_BATCH, O_, BENCH_SIZE, BENCH_SIZE), np.float32), lay.from_p(Y_p), np.empty_like(x_n)
cols = np.empty((BENCH_BATCH, 9 * C_, BENCH_SIZE**2), np.float32)
dcols = np.empty_like(cols)
K.conv2d_forward_im2col(x_n, w_p, b_p, 1, 1, y_n, cols)
strategies = {   # name -> {pass: callable}, each on the same (B, 32, 28, 28) problem
    "P-layout kernel": {"forward": lambda: pconv.forward(X_p, w_p, b_p, Y_p),
                        "backward-input": lambda: pconv.backward_input(Y_p, w_p, dX_p),
                        "backward-weight": lambda: pconv.backward_weight(Y_p, X_p, dw_p, db_p)},
    "im2col+BLAS NCHW": {"forward": lambda: K.conv2d_forward_im2col(x_n, w_p, b_p, 1, 1, y_n, cols),
                         "backward-input": lambda: K.conv2d_backward_input_im2col(dy_n, w_p, 1, 1, dx_n, dcols),
                         "backward-weight": lambda: K.conv2d_backward_weight_im2col(dy_n, cols, dw_p, db_p)},
    "direct NCHW": {"forward": lambda: K.conv2d_forward_numba(x_n, w_p, b_p, 1, 1, y_n),
                    "backward-input": lambda: K.conv2d_backward_input_numba(dy_n, w_p, 1, 1, dx_n),
                    "backward-weight": lambda: K.conv2d_backward_weight_numba(dy_n, x_n, 1, 1, dw_p, db_p)},
}
with blas_threads(1):
    best = {(name, p): best_ms(fn) for name, fns in strategies.items() for p, fn in fns.items()}

print(f"float32 GEMM peak on one thread, measured now ({n_gemm}^3): {peak:.0f} GFLOP/s")
print(f"{'pass':16s} " + " ".join(f"{name:>22s}" for name in strategies) + "   (best of repeated calls)")
gflops = {k: flops / ms / 1e6 for k, ms in best.items()}
for p in passes:
    print(f"{p:16s} " + " ".join(f"{best[name, p]:7.2f} ms {gflops[name, p]:5.0f} GF/s" for name in strategies))
for p in passes:
    print(f"{p}: the P-layout kernel runs at {100 * gflops['P-layout kernel', p] / peak:.0f}% of the GEMM peak, "
          f"{gflops['P-layout kernel', p] / gflops['im2col+BLAS NCHW', p]:.1f}x the speed of im2col + BLAS")
speedup = min(gflops["P-layout kernel", p] / gflops["im2col+BLAS NCHW", p] for p in passes)
claims.claim(speedup > 1.0, "the P-layout kernel beats im2col + BLAS on all three passes (at least {s:.1f}x)",
             s=speedup, quick=False)   # quick mode's batch of 4 is too small a problem to time fairly
claims.claim(max(gflops["direct NCHW", p] for p in passes) < 0.2 * peak,
             "the direct loops stay far below the GEMM peak (at most {d:.0f} of {peak:.0f} GFLOP/s)",
             d=max(gflops["direct NCHW", p] for p in passes), peak=peak, quick=False)

# %%
fast = {r["pass"]: r["ms"] for r in rows if r["strategy"] == "im2col+BLAS NCHW"}
ref = {r["pass"]: r["ms"] for r in rows if r["strategy"] == "numpy reference"}
print(f"\nsummary: gradient checks max error {max(report_conv.errors.values()):.1e} (Conv2d), "
      f"{max(report_gn.errors.values()):.1e} (GroupNorm); im2col+BLAS forward {fast['forward']:.1f} ms vs NumPy "
      f"reference {ref['forward']:.1f} ms at batch {BENCH_BATCH}; GroupNorm forward numba "
      f"{gn_ms['numba'][0]:.2f} ms vs numpy {gn_ms['numpy'][0]:.2f} ms")

# %%
claims.finish()   # every claim above was checked in this run: exit 1 if one failed
