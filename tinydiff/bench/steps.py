"""What the benchmarks time: the networks, a fixed batch, one training step, one evaluation, and their flop counts.

    mlp     one training step of MLPDenoiser() (2D, ~99k parameters): forward, MSE loss, backward, clip the gradient
            norm to 1, AdamW update, through ``MLPTrainStep`` (what ``train`` runs; the "mlp (layers)" row times the
            same step through the layers)                                      batch 32, 256, 1024
    unet    the same step for UNet(UNetConfig()) on 28x28 images (PyTorch in NCHW and in channels_last)  batch 64, 128
    sample  one denoiser evaluation (no gradients) at batch 64, MLP and U-Net

Honesty first: before timing, one step of each side runs from the same weights on the same batch, and the loss and
every parameter gradient are compared (max over parameters of max|g_tinydiff - g_torch| / max|g_torch|). The bench
stops with an error if they differ by more than float32 round-off allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinydiff.bench.table import Row
from tinydiff.bench.timing import time_alternating

GRAD_TOLERANCE = 2e-3                                   # honesty check: float32 round-off through a deep network


# ---- the problems --------------------------------------------------------------------------------------------------
def make_mlp(tiny: bool = False, seed: int = 0):
    from tinydiff.models.mlp import MLPDenoiser

    return MLPDenoiser(width=32, n_blocks=2, emb_dim=16, rng=seed) if tiny else MLPDenoiser(rng=seed)


def make_unet(tiny: bool = False, seed: int = 0):
    from tinydiff.models.unet import UNet, UNetConfig

    cfg = UNetConfig(base_channels=8, channel_mults=(1, 2), num_groups=4, emb_dim=16, image_size=8) if tiny \
        else UNetConfig()
    return UNet(cfg, rng=seed)


def make_batch(model, batch: int, seed: int = 1):
    """x_t, integer steps t in [0, 1000) and a target eps, all float32, from ``seed``."""
    rng = np.random.default_rng(seed)
    shape = (batch, *model.sample_shape) if hasattr(model, "sample_shape") else (batch, model.dim)
    x = rng.standard_normal(shape).astype(np.float32)
    t = rng.integers(0, 1000, size=batch)
    return x, t, rng.standard_normal(shape).astype(np.float32)


@dataclass
class TrainStep:
    """One tinydiff training step on a fixed batch: forward, MSE loss, backward, clip_grad_norm, AdamW (in place).

    An unconditional float32 MLP goes through the fused ``MLPTrainStep`` as in ``train.Trainer`` (``fused=False``:
    through the layers); other models through their layers."""

    model: object
    x: np.ndarray
    t: np.ndarray
    target: np.ndarray
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    fused: bool = True
    opt: object = field(init=False)
    fast: object = field(init=False, default=None)

    def __post_init__(self):
        from tinydiff.models.mlp_step import MLPTrainStep
        from tinydiff.nn.optim import AdamW

        self.model.train()
        self.opt = AdamW(self.model.parameters(), self.model.gradients(), lr=self.lr, weight_decay=self.weight_decay)
        if self.fused and MLPTrainStep.supports(self.model):
            self.fast = MLPTrainStep(self.model, self.opt)

    def loss_and_gradients(self) -> float:
        from tinydiff.nn.losses import mse_loss

        if self.fast is not None:
            return self.fast.loss_and_gradients(self.x, self.t, self.target)[0]
        loss, dy = mse_loss(self.model.forward(self.x, self.t), self.target)
        self.model.backward(dy, input_grad=False)     # a training step needs no dL/dx_t (PyTorch skips it too)
        return loss

    def __call__(self) -> float:
        from tinydiff.nn.optim import clip_grad_norm

        loss = self.loss_and_gradients()
        if self.fast is not None:
            self.fast.clip_and_update(self.lr, self.clip)
        else:
            clip_grad_norm(self.model.gradients(), self.clip)
            self.opt.step()
        return loss


def forward_flops(model, x, t) -> float:
    """Multiply-add flops (2 per MAC) of one forward pass's matrix products: Linear, Conv2d and attention."""
    from tinydiff.nn.attention import SelfAttention2d
    from tinydiff.nn.conv import Conv2d
    from tinydiff.nn.linear import Linear

    model.forward(x, t)
    total = 0.0
    for m in model.modules():
        if isinstance(m, Linear) and m._x is not None:
            total += 2.0 * m._x.shape[0] * m.in_features * m.out_features
        elif isinstance(m, Conv2d) and m._x_shape is not None:
            B, O, Ho, Wo = m.output_shape(m._x_shape)
            total += 2.0 * B * O * Ho * Wo * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, SelfAttention2d) and m._P is not None:
            B, nh, N, _ = m._P.shape
            total += 2.0 * 2 * B * N * N * m.channels            # S = q^T k and o = v P^T
    return total


# ---- the rows of the table ---------------------------------------------------------------------------------------
def _honest(name, batch, ours, theirs) -> float:
    from tinydiff.bench import torch_models

    diff = torch_models.honesty_check(ours, theirs)      # on fresh weights, before any update
    if diff > GRAD_TOLERANCE:
        raise RuntimeError(f"bench {name} batch {batch}: tinydiff and PyTorch disagree on the loss or a gradient "
                           f"(max relative difference {diff:.2e} > {GRAD_TOLERANCE:g}); the networks are not the "
                           "same, so their timings would not compare the same work")
    return diff


def train_rows(name, make_model, batches, repeats, vs_torch, formats=("NCHW",), tiny=False) -> list[Row]:
    """One Row per batch size (and PyTorch memory format). For the MLP also a row for the layer-by-layer step."""
    rows = []
    for batch in batches:
        model = make_model(tiny)
        x, t, target = make_batch(model, batch)
        flops = 3 * forward_flops(model, x, t) / 1e9   # forward + dL/dW + dL/dh, each one pass of products
        fns = {"ours": TrainStep(model, x, t, target)}
        if fns["ours"].fast is not None:
            fns["layers"] = TrainStep(make_model(tiny), x, t, target, fused=False)
        notes = {}
        if vs_torch:
            from tinydiff.bench import torch_models

            for fmt in formats:
                fns[fmt] = torch_models.TorchTrainStep(model, x, t, target, channels_last=(fmt == "channels_last"))
                notes[fmt] = f"grad diff {_honest(name, batch, fns['ours'], fns[fmt]):.1e}"
        times = time_alternating(fns, repeats)
        for fmt in (formats if vs_torch else (None,)):
            label = name if fmt is None or len(formats) == 1 else f"{name} ({fmt})"
            rows.append(Row(label, batch, times["ours"], times.get(fmt), flops, notes.get(fmt, "")))
            if "layers" in times:
                rows.append(Row(f"{label} (layers)", batch, times["layers"], times.get(fmt), flops,
                                "the same step through the layers"))
    return rows


def sample_rows(batch, repeats, vs_torch, tiny, threads: int | None = None) -> list[Row]:
    """One Row each for an MLP and a U-Net evaluation (no gradients) at ``batch``; with ``threads``, each on the
    threads `sample --threads N` gives it (BLAS N for the MLP, the kernels N and BLAS 1 for the U-Net)."""
    from contextlib import nullcontext

    from tinydiff.threads import blas_share, use_threads

    rows = []
    for label, make_model in (("sample mlp", make_mlp), ("sample unet", make_unet)):
        kind = "mlp" if make_model is make_mlp else "unet"
        with use_threads(threads, blas_share(threads, kind)) if threads else nullcontext():
            rows.append(_sample_row(label, make_model, batch, repeats, vs_torch, tiny))
    return rows


def _sample_row(label, make_model, batch, repeats, vs_torch, tiny) -> Row:
    """One Row: ``batch`` evaluations of a fresh model (no gradients), against PyTorch with ``vs_torch``."""
    model = make_model(tiny).eval()
    x, t, _ = make_batch(model, batch)
    fns = {"ours": lambda m=model: m.forward(x, t)}
    flops = forward_flops(model, x, t)
    if vs_torch:
        from tinydiff.bench import torch_models

        fns["torch"] = torch_models.TorchForward(model, x, t)
        diff = float(np.max(np.abs(fns["ours"]() - fns["torch"]())) / np.max(np.abs(fns["torch"]())))
        if diff > GRAD_TOLERANCE:
            raise RuntimeError(f"bench {label}: outputs differ by {diff:.2e} (relative); not the same network")
    times = time_alternating(fns, repeats)
    return Row(label, batch, times["ours"], times.get("torch"), flops / 1e9)
