"""Figures shared by the chapters and the CLI, so every picture tinydiff draws has one look.

matplotlib is imported lazily (with the headless Agg backend unless one was chosen already) so that importing tinydiff
stays cheap. Every function takes plain arrays and returns the Figure; ``save`` writes it and closes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


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
    The output folder is created.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "chapters" / "out" / f"{number:02d}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds instead of a minute (used by the tests)")
    args, _ = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
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
def scatter_strip(panels: list[tuple[str, np.ndarray]], lim: float | None = 3.5, size: float = 2.4, s: float = 1.0,
                  color: str = "C0"):
    """One scatter plot per (title, points (N, 2)) side by side, on equal axes."""
    fig, axes = plt().subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (title, pts) in zip(axes[0], panels):
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=0.5, color=color, linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_xticks([])
        ax.set_yticks([])
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


def image_grid(images: np.ndarray, nrow: int | None = None, vmin: float = 0.0, vmax: float = 1.0, size: float = 0.6):
    """A grid of grey images (N, 1, H, W) or (N, H, W), ``nrow`` per row (default: a square-ish grid)."""
    images = np.asarray(images).reshape((len(images),) + np.shape(images)[-2:])  # (N, H, W)
    n = len(images)
    ncol = nrow or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncol))
    fig, axes = plt().subplots(nrows, ncol, figsize=(size * ncol, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=vmin, vmax=vmax)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
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
