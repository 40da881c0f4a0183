"""PyTorch copies of tinydiff's denoisers, for ``python -m tinydiff bench --vs-torch`` only (the library never
imports this file, and torch is an optional extra: ``pip install tinydiff[bench]``).

Each copy is built from a tinydiff model: the same layers in the same order, the same widths, and the parameters under
the same qualified names, so ``copy_weights`` moves every array across by name and fails if one is missing. The time
(and coordinate) sinusoids are computed the same way as in tinydiff. ``honesty_check`` then compares one step's loss
and gradients.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def setup(threads: int | None) -> str:
    """Give PyTorch ``threads`` intra-op threads; return a line describing the build."""
    if threads:
        torch.set_num_threads(threads)
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels, mkldnn {torch.backends.mkldnn.is_available()}")


def copy_weights(td_model, module: nn.Module) -> None:
    """Copy every tinydiff parameter into the PyTorch parameter of the same name (they must match one to one)."""
    ours = td_model.parameters()
    theirs = dict(module.named_parameters())
    if set(ours) != set(theirs):
        raise KeyError(f"torch_models: parameter names differ: only tinydiff {sorted(set(ours) - set(theirs))[:4]}, "
                       f"only PyTorch {sorted(set(theirs) - set(ours))[:4]}")
    with torch.no_grad():
        for k, p in theirs.items():
            p.copy_(torch.from_numpy(np.ascontiguousarray(ours[k])).reshape(p.shape))


def _sinusoids(t, freqs):
    """[sin(t f), cos(t f)] in float64, then float32: what SinusoidalEmbedding computes."""
    args = t.double()[:, None] * freqs[None, :]                                # (B, half)
    return torch.cat([args.sin(), args.cos()], dim=1).float()                  # (B, 2 half)


# ---- the MLP -----------------------------------------------------------------------------------------------------
class _Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, h):
        return h + F.gelu(self.linear(h))


class TorchMLP(nn.Module):
    """models/mlp.py's MLPDenoiser (unconditional): Fourier features of x, sinusoids of t, GELU MLP with residuals."""

    def __init__(self, m):
        super().__init__()
        if m.num_classes:
            raise NotImplementedError("torch_models: the PyTorch copy covers the unconditional MLPDenoiser only")
        width = m.input.out_features
        self.scale = m.x_embed.scale
        self.register_buffer("x_freqs", torch.from_numpy(m.x_embed.freqs.astype(np.float32)))
        self.register_buffer("t_freqs", torch.from_numpy(m.t_embed.freqs))
        self.input = nn.Linear(m.input.in_features, width)
        self.blocks = nn.ModuleList(_Residual(width) for _ in m.blocks)
        self.output = nn.Linear(width, m.output.out_features)
        copy_weights(m, self)

    def forward(self, x, t):
        a = (self.scale * x)[:, :, None] * self.x_freqs                           # (B, D, half)
        ex = torch.cat([a.sin(), a.cos()], dim=2).reshape(len(x), -1)             # (B, D E)
        h = F.gelu(self.input(torch.cat([ex, _sinusoids(t, self.t_freqs)], dim=1)))
        for block in self.blocks:
            h = block(h)
        return self.output(h)


# ---- the U-Net ---------------------------------------------------------------------------------------------------
def _conv(c):
    return nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride, padding=c.padding)


def _norm(g):
    return nn.GroupNorm(g.num_groups, g.num_channels, eps=g.eps)


class _ResBlock(nn.Module):
    """nn/blocks.py's ResBlock: AdaGN scale/shift from the embedding, 1x1 skip when the channels change."""

    def __init__(self, b):
        super().__init__()
        self.out_ch = b.out_ch
        self.norm1, self.conv1, self.norm2, self.conv2 = _norm(b.norm1), _conv(b.conv1), _norm(b.norm2), _conv(b.conv2)
        self.emb_proj = nn.Linear(b.emb_proj.in_features, b.emb_proj.out_features)
        self.skip = _conv(b.skip) if b.skip is not None else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        st = self.emb_proj(F.silu(e))[:, :, None, None]                            # (B, 2 C_out, 1, 1)
        h = self.norm2(h) * (1 + st[:, :self.out_ch]) + st[:, self.out_ch:]
        h = self.conv2(F.silu(h))
        return (self.skip(x) if self.skip is not None else x) + h


class _Attention(nn.Module):
    """nn/attention.py's SelfAttention2d."""

    def __init__(self, a):
        super().__init__()
        self.heads, self.norm, self.qkv, self.proj = a.num_heads, _norm(a.norm), _conv(a.qkv), _conv(a.proj)

    def forward(self, x):
        B, C, H, W = x.shape
        d = C // self.heads
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.heads, d, H * W)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]                                  # (B, heads, d, N)
        P = torch.softmax(q.transpose(-1, -2) @ k / d**0.5, dim=-1)                # (B, heads, N, N)
        return x + self.proj((v @ P.transpose(-1, -2)).reshape(B, C, H, W))


class TorchUNet(nn.Module):
    """models/unet.py's UNet (unconditional), built from a tinydiff UNet."""

    def __init__(self, m):
        super().__init__()
        if m.num_classes:
            raise NotImplementedError("torch_models: the PyTorch copy covers the unconditional UNet only")
        self.R, self.levels = m.cfg.num_res_blocks, len(m.cfg.channel_mults)
        self.register_buffer("t_freqs", torch.from_numpy(m.t_embed.freqs))
        self.t_lin1 = nn.Linear(m.t_lin1.in_features, m.t_lin1.out_features)
        self.t_lin2 = nn.Linear(m.t_lin2.in_features, m.t_lin2.out_features)
        self.conv_in = _conv(m.conv_in)
        self.down_blocks = nn.ModuleList(_ResBlock(b) for b in m.down_blocks)
        self.downs = nn.ModuleList(_conv(c) for c in m.downs)
        self.mid1, self.mid2 = _ResBlock(m.mid1), _ResBlock(m.mid2)
        self.mid_attn = _Attention(m.mid_attn) if m.mid_attn is not None else None
        self.up_blocks = nn.ModuleList(_ResBlock(b) for b in m.up_blocks)
        self.ups = nn.ModuleList(_conv(c) for c in m.ups)
        self.out_norm, self.conv_out = _norm(m.out_norm), _conv(m.conv_out)
        copy_weights(m, self)

    def forward(self, x, t):
        e = self.t_lin2(F.silu(self.t_lin1(_sinusoids(t, self.t_freqs))))         # (B, E)
        h, skips, blocks = self.conv_in(x), [], iter(self.down_blocks)
        for i in range(self.levels):
            for _ in range(self.R):
                h = next(blocks)(h, e)
            skips.append(h)
            if i < self.levels - 1:
                h = self.downs[i](h)
        h = self.mid1(h, e)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, e)
        blocks = iter(self.up_blocks)
        for k, i in enumerate(reversed(range(self.levels))):
            h = torch.cat([h, skips[i]], dim=1)
            for _ in range(self.R):
                h = next(blocks)(h, e)
            if i > 0:
                h = self.ups[k](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.out_norm(h)))


def torch_copy(td_model) -> nn.Module:
    from tinydiff.models.unet import UNet

    return TorchUNet(td_model) if isinstance(td_model, UNet) else TorchMLP(td_model)


# ---- the timed callables -----------------------------------------------------------------------------------------
class TorchTrainStep:
    """The PyTorch twin of ``bench.TrainStep``: forward, MSE loss, backward, clip_grad_norm_, AdamW, same settings."""

    def __init__(self, td_model, x, t, target, lr=1e-3, weight_decay=0.01, clip=1.0, channels_last=False):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = torch_copy(td_model).to(memory_format=fmt).train()
        self.x = torch.from_numpy(x).contiguous(memory_format=fmt) if x.ndim == 4 else torch.from_numpy(x)
        self.t, self.target = torch.from_numpy(t), torch.from_numpy(target)
        self.clip = clip
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=weight_decay)

    def loss_and_gradients(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(self.model(self.x, self.t), self.target)
        loss.backward()
        return loss.item()

    def __call__(self) -> float:
        loss = self.loss_and_gradients()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        return loss


class TorchForward:
    """One denoiser evaluation without gradients (what a sampler step costs)."""

    def __init__(self, td_model, x, t):
        self.model = torch_copy(td_model).eval()
        self.x, self.t = torch.from_numpy(x), torch.from_numpy(t)

    def __call__(self):
        with torch.inference_mode():
            return self.model(self.x, self.t).numpy()


def honesty_check(ours, theirs) -> float:
    """Max relative difference of the loss and of each gradient after one forward + backward from the same state:
    max over parameters of max|g_ours - g_torch| / max|g_torch|."""
    loss_ours, loss_theirs = ours.loss_and_gradients(), theirs.loss_and_gradients()
    worst = abs(loss_ours - loss_theirs) / abs(loss_theirs)
    grads = ours.model.gradients()
    for k, p in theirs.model.named_parameters():
        g = p.grad.detach().reshape(grads[k].shape).numpy()
        worst = max(worst, float(np.max(np.abs(grads[k] - g)) / (np.max(np.abs(g)) + 1e-30)))
    return worst
