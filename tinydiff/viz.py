"""Figures shared by the chapters and the CLI, so every picture tinydiff draws has one look.

matplotlib is imported lazily (with the headless Agg backend unless one was chosen already) so that importing tinydiff
stays cheap. Every function takes plain arrays and returns the Figure; ``save`` writes it and closes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tinydiff import claims


def plt():
    """matplotlib.pyplot, with a headless backend when no display was configured."""
    import matplotlib

    if "MPLBACKEND" not in __import__("os").environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


# ---- chapters ---------------------------------------------------------------------------------------------------
def chapter_args(number: int, description: str = "") -> argparse.Namespace:
    """Parse a chapter's two options: ``--out DIR`` (default ``chapters/out/NN``) and ``--quick`` (small sizes).

    Uses ``parse_known_args`` so the same file also runs as a notebook (Jupyter passes its own arguments).
    The output folder is created, and the mode is handed to ``tinydiff.claims`` (quick mode gives no verdict on the
    claims its small samples cannot support).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "chapters" / "out" / f"{number:02d}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds instead of a minute (used by the tests)")
    args, _ = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    claims.set_mode(quick=args.quick)
    return args


def save(fig, path: Path | str, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (PNG unless the suffix says otherwise), close it, and print where it went."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt().close(fig)
    print(f"wrote {path}")
    return path


# ---- pictures of points and images ------------------------------------------------------------------------------
def square_axes(ax, lim: float | None = 3.5) -> None:
    """Equal aspect, the square [-lim, lim]^2 (unless lim is None) and no ticks: the frame of every 2D picture."""
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_xticks([])
    ax.set_yticks([])

def scatter_strip(panels: list[tuple[str, np.ndarray]], lim: float | None = 3.5, size: float = 2.4, s: float = 1.0,
                  color: str = "C0"):
    """One scatter plot per (title, points (N, 2)) side by side, on equal axes."""
    fig, axes = plt().subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (title, pts) in zip(axes[0], panels):
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=0.5, color=color, linewidths=0)
        ax.set_title(title, fontsize=9)
        square_axes(ax, lim)
    fig.tight_layout()
    return fig


def image_strip(panels: list[tuple[str, np.ndarray]], size: float = 1.6, vmin: float = -1.0, vmax: float = 1.0):
    """One grey image per (title, image (H, W) or (1, H, W)) side by side."""
    fig, axes = plt().subplots(1, len(panels), figsize=(size * len(panels), size * 1.15), squeeze=False)
    for ax, (title, img) in zip(axes[0], panels):
        ax.imshow(np.asarray(img).reshape(img.shape[-2:]), cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, nrow: int | None = None, vmin: float = 0.0, vmax: float = 1.0, size: float = 0.6,
               title: str = ""):
    """A grid of grey images (N, 1, H, W) or (N, H, W), ``nrow`` per row (default: a square-ish grid), drawn as one
    mosaic (:func:`tile_images`), with an optional ``title`` above it."""
    ncol = nrow or int(np.ceil(np.sqrt(len(images))))
    mosaic = tile_images(images, ncol)
    h, w = np.shape(images)[-2:]
    fig, ax = plt().subplots(figsize=(size * mosaic.shape[1] / w, size * mosaic.shape[0] / h))
    ax.imshow(mosaic, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    fig.subplots_adjust(0, 0, 1, 1)
    return fig


def render_glyph(text: str = "7", size: int = 28) -> np.ndarray:
    """A white-on-black character drawn by matplotlib, (size, size) float64 in [0, 1]: an MNIST-like image with no
    download, for the first chapters."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=size * 4)
    canvas = FigureCanvasAgg(fig)
    fig.patch.set_facecolor("black")
    fig.text(0.5, 0.45, text, color="white", fontsize=size * 2.2, ha="center", va="center", fontweight="bold")
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float64)[..., 0] / 255.0  # (4 size, 4 size)
    return rgba.reshape(size, 4, size, 4).mean(axis=(1, 3))                    # average 4x4 blocks -> (size, size)


# ---- training and sampling of point models (chapters 6-7, ``train`` and ``demo``) ----------------------------------
def data_vs_samples(data: np.ndarray, samples: np.ndarray, lim: float | None = None, title: str = ""):
    """Data (grey) and model samples (blue) side by side and overlaid, on shared axes. Points (N, 2)."""
    if lim is None:
        lim = 1.05 * float(np.abs(np.concatenate([data, samples])).max())
    fig, axes = plt().subplots(1, 3, figsize=(9, 3.1))
    for ax, (name, pts, color) in zip(axes, [("data", data, "0.3"), ("samples", samples, "C0")]):
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5, color=color, linewidths=0)
        ax.set_title(f"{name} ({len(pts)})", fontsize=9)
    axes[2].scatter(data[:, 0], data[:, 1], s=1.5, alpha=0.3, color="0.3", linewidths=0, label="data")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=1.5, alpha=0.3, color="C0", linewidths=0, label="samples")
    axes[2].set_title("overlaid", fontsize=9)
    for ax in axes:
        square_axes(ax, lim)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_curve(loss: np.ndarray, smooth: int = 50, log: bool = True):
    """Per-step training loss (faint) and its running mean over ``smooth`` steps."""
    loss = np.asarray(loss, dtype=np.float64)
    fig, ax = plt().subplots(figsize=(5, 3))
    steps = np.arange(len(loss))
    ax.plot(steps, loss, color="C0", alpha=0.25, lw=0.6, label="per step")
    if len(loss) >= smooth:
        running = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")   # (steps - smooth + 1,)
        ax.plot(steps[smooth - 1:], running, color="C0", lw=1.5, label=f"mean of {smooth}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def loss_vs_t(t_sum: np.ndarray, t_count: np.ndarray, T: int, n_curves: int = 4, log_every: int = 1):
    """Mean loss per time-step bucket, one curve per stage of training. t_sum, t_count: (windows, buckets), one window
    per ``log_every`` steps."""
    windows, buckets = t_sum.shape
    centers = (np.arange(buckets) + 0.5) * T / buckets
    fig, ax = plt().subplots(figsize=(5, 3))
    edges = np.linspace(0, windows, min(n_curves, windows) + 1).astype(int)
    cmap = plt().get_cmap("viridis")
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        mean = t_sum[a:b].sum(0) / np.maximum(t_count[a:b].sum(0), 1)          # (buckets,)
        ax.plot(centers, mean, "o-", ms=3, color=cmap(i / max(len(edges) - 2, 1)),
                label=f"steps {a * log_every}-{b * log_every}")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("loss (mean over the bucket)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def trajectory_strip(xs: np.ndarray, ts, lim: float | None = 3.5, title: str = ""):
    """Snapshots of a chain, xs: (S, N, 2), titled by ts (S labels)."""
    fig = scatter_strip([(f"t = {t}" if not isinstance(t, str) else t, x) for t, x in zip(ts, xs)], lim=lim, s=2)
    if title:
        fig.suptitle(title, fontsize=10, y=1.06)
    return fig


def trajectory_gif(xs: np.ndarray, ts, path, lim: float = 3.5, fps: int = 12, trail: np.ndarray | None = None):
    """Animate a chain of point clouds xs: (S, N, 2) to a GIF (matplotlib's PillowWriter). ``trail``: points drawn
    faintly behind every frame (the data, say). ``ts``: the step of each frame, -1 for the final samples (a
    Trajectory's convention). Returns the path."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt().subplots(figsize=(3.2, 3.2))
    if trail is not None:
        ax.scatter(trail[:, 0], trail[:, 1], s=1, color="0.85", linewidths=0)
    scat = ax.scatter(xs[0][:, 0], xs[0][:, 1], s=2, color="C0", alpha=0.6, linewidths=0)
    title = ax.set_title("", fontsize=9)
    square_axes(ax, lim)

    def frame(i):
        scat.set_offsets(xs[i])
        title.set_text(f"t = {ts[i]}" if ts[i] >= 0 else "samples (x_0, after the last step)")   # -1: the end
        return scat, title

    frames = list(range(len(xs))) + [len(xs) - 1] * fps                          # hold the last frame a second
    FuncAnimation(fig, frame, frames=frames, blit=False).save(path, writer=PillowWriter(fps=fps), dpi=80)
    plt().close(fig)
    print(f"wrote {path}")
    return path


def vector_field(grid_x: np.ndarray, grid_y: np.ndarray, u: np.ndarray, v: np.ndarray, panels_t, data=None,
                 lim: float = 3.5, unit: bool = False, color_label: str = "arrow length"):
    """One quiver panel per time step: u, v: (S, G, G) vectors at the grid (G, G) points, optional data behind them.
    Colour shows the length, on one scale shared by all panels (the colourbar on the right, labelled
    ``color_label``), so colours compare across panels. Each panel scales its arrows on its own; with ``unit`` every
    arrow has the same length (direction only) and the colour scale is logarithmic."""
    from matplotlib.colors import LogNorm, Normalize

    size = np.hypot(u, v)                                                         # (S, G, G)
    norm = (LogNorm(vmin=max(size.min(), 1e-3), vmax=max(size.max(), 1e-2)) if unit
            else Normalize(vmin=0.0, vmax=max(float(size.max()), 1e-12)))
    fig, axes = plt().subplots(1, len(panels_t), figsize=(3 * len(panels_t) + 0.8, 3), squeeze=False,
                               layout="constrained")
    for ax, t, uu, vv in zip(axes[0], panels_t, u, v):
        if data is not None:
            ax.scatter(data[:, 0], data[:, 1], s=1, color="0.8", linewidths=0)
        if unit:
            length = np.maximum(np.hypot(uu, vv), 1e-12)
            step = abs(grid_x[0, 1] - grid_x[0, 0])
            arrows = ax.quiver(grid_x, grid_y, uu / length, vv / length, np.hypot(uu, vv), cmap="viridis", norm=norm,
                               angles="xy", scale_units="xy", scale=1.2 / step, width=0.005)
        else:
            arrows = ax.quiver(grid_x, grid_y, uu, vv, np.hypot(uu, vv), cmap="viridis", norm=norm, angles="xy",
                               scale_units="xy", scale=None, width=0.004)
        ax.set_title(f"t = {t}", fontsize=9)
        square_axes(ax, lim)
    bar = fig.colorbar(arrows, ax=list(axes[0]), fraction=0.03, pad=0.01, aspect=25)
    bar.set_label(color_label + (" (log scale)" if unit else ""), fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return fig


# ---- grids of digits side by side (chapters 11-12) -----------------------------------------------------------------
def tile_images(images: np.ndarray, ncol: int, pad: int = 1, pad_value: float = 0.5) -> np.ndarray:
    """Images (N, 1, H, W) or (N, H, W) -> one mosaic (rows (H + pad) - pad, ncol (W + pad) - pad), filled row by
    row, with ``pad`` pixels of ``pad_value`` between images (and in empty cells)."""
    images = np.asarray(images, dtype=np.float64)
    images = images.reshape((len(images),) + images.shape[-2:])                  # (N, H, W)
    n, h, w = images.shape
    nrows = int(np.ceil(n / ncol))
    mosaic = np.full((nrows * (h + pad) - pad, ncol * (w + pad) - pad), pad_value)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        mosaic[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return mosaic


def image_grids(panels: list[tuple[str, np.ndarray]], ncol: int, size: float = 0.4, vmin: float = 0.0,
                vmax: float = 1.0):
    """Several titled grids of grey images side by side: panels = [(title, images (N, 1, H, W))], each tiled
    ``ncol`` per row (e.g. one row per class). ``size``: inches per image."""
    mosaics = [tile_images(imgs, ncol) for _, imgs in panels]
    height = max(m.shape[0] for m in mosaics) / 28 * size
    width = sum(m.shape[1] for m in mosaics) / 28 * size
    fig, axes = plt().subplots(1, len(panels), figsize=(width + 0.3 * len(panels), height + 0.4), squeeze=False)
    for ax, (title, _), mosaic in zip(axes[0], panels, mosaics):
        ax.imshow(mosaic, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def image_rows(rows: list[tuple[str, np.ndarray]], size: float = 0.45, vmin: float = 0.0, vmax: float = 1.0):
    """Labelled rows of grey images stacked top to bottom: rows = [(label, images (N, 1, H, W))], the label on the
    left of its row (e.g. one row per corruption level). ``size``: inches per image."""
    mosaics = [tile_images(imgs, len(imgs)) for _, imgs in rows]                   # one strip per row
    width = max(m.shape[1] for m in mosaics) / 28 * size
    fig, axes = plt().subplots(len(rows), 1, figsize=(width + 1.2, size * 1.1 * len(rows)), squeeze=False)
    for ax, (label, _), mosaic in zip(axes[:, 0], rows, mosaics):
        ax.imshow(mosaic, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.tight_layout()
    return fig
