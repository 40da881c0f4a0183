"""The residual block of a diffusion U-Net, conditioned on a time (and label) embedding.

Ho et al. (2020) add a projection of the embedding to the feature map; Dhariwal & Nichol (2021, sec. 3, "AdaGN")
instead let it scale and shift the normalised features, which trains better. With e the embedding (B, E):

    h  = Conv3x3(SiLU(GroupNorm(x)))                                    (B, C_out, H, W)
    [s; t] = Linear(SiLU(e))                                           (B, 2 C_out): scale s and shift t
    h' = GroupNorm(h) * (1 + s) + t                                    s, t broadcast over H, W
    y  = skip(x) + Conv3x3(Dropout(SiLU(h')))                          skip = 1x1 conv if C_in != C_out, else identity

Backward of the modulation, with g = dL/dh' and n = GroupNorm(h):

    dL/dn = g * (1 + s)      dL/ds = sum_{H, W} g * n      dL/dt = sum_{H, W} g
"""

from __future__ import annotations

import numpy as np

from tinydiff.nn.activations import SiLU
from tinydiff.nn.conv import Conv2d, check_image
from tinydiff.nn.dropout import Dropout
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module
from tinydiff.nn.norm import GroupNorm
from tinydiff.rng import make_rng


class ResBlock(Module):
    """Residual block with embedding scale/shift. forward(x (B, C_in, H, W), emb (B, E)) -> (B, C_out, H, W).

    backward(dy) returns (dx, demb). Cache: the GroupNorm output n and the scale s; the sub-layers cache the rest.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, num_groups: int, dropout: float = 0.0,
                 rng=None, dtype=np.float32):
        super().__init__()
        rng = make_rng(rng)
        self.in_ch, self.out_ch, self.emb_dim, self.dtype = in_ch, out_ch, emb_dim, np.dtype(dtype)
        self.norm1 = GroupNorm(num_groups, in_ch, dtype=dtype)
        self.act1 = SiLU()
        self.conv1 = Conv2d(in_ch, out_ch, 3, padding=1, rng=rng, dtype=dtype)
        self.emb_act = SiLU()
        self.emb_proj = Linear(emb_dim, 2 * out_ch, rng=rng, dtype=dtype)
        self.norm2 = GroupNorm(num_groups, out_ch, dtype=dtype)
        self.act2 = SiLU()
        self.dropout = Dropout(dropout, rng=rng)
        self.conv2 = Conv2d(out_ch, out_ch, 3, padding=1, rng=rng, dtype=dtype)
        self.skip = Conv2d(in_ch, out_ch, 1, rng=rng, dtype=dtype) if in_ch != out_ch else None

    def forward(self, x, emb):
        check_image(f"ResBlock({self.in_ch}, {self.out_ch})", x, self.in_ch)
        if np.ndim(emb) != 2 or np.shape(emb) != (x.shape[0], self.emb_dim):
            raise ValueError(f"ResBlock: emb must have shape (B, emb_dim) = ({x.shape[0]}, {self.emb_dim}), "
                             f"got {np.shape(emb)}")
        x, emb = self.check_dtype(x), self.check_dtype(emb, "emb")   # here, so that a mismatch names the ResBlock
        h = self.conv1.forward(self.act1.forward(self.norm1.forward(x)))   # (B, C_out, H, W)
        st = self.emb_proj.forward(self.emb_act.forward(emb))              # (B, 2 C_out)
        s = st[:, :self.out_ch, None, None]                                 # (B, C_out, 1, 1)
        t = st[:, self.out_ch:, None, None]
        self._n = self.norm2.forward(h)
        self._s = s
        h = self._n * (1 + s) + t                                           # h' = n (1 + s) + t
        h = self.conv2.forward(self.dropout.forward(self.act2.forward(h)))
        return (self.skip.forward(x) if self.skip else x) + h

    def backward(self, grad_output):
        g = self.act2.backward(self.dropout.backward(self.conv2.backward(grad_output)))  # dL/dh', (B, C_out, H, W)
        ### BEGIN SOLUTION ex11_1: ResBlock backward through the scale-shift (AdaGN) — from g = dL/dh' with h' = n (1 + s) + t: ds, dt, then demb through emb_proj and emb_act, and dh through norm2 (chapter 11, 3 points)
        # defines: demb (B, E) and dh (B, C_out, H, W), the gradient at the conv1 output; self._n (B, C_out, H, W) and self._s (B, C_out, 1, 1) are cached
        ds = (g * self._n).sum(axis=(2, 3))                                 # (B, C_out)
        dt = g.sum(axis=(2, 3))                                             # (B, C_out)
        demb = self.emb_act.backward(self.emb_proj.backward(np.concatenate([ds, dt], axis=1)))  # (B, E)
        dh = self.norm2.backward(g * (1 + self._s))
        ### END SOLUTION
        dx = self.norm1.backward(self.act1.backward(self.conv1.backward(dh)))
        dx += self.skip.backward(grad_output) if self.skip else grad_output
        return dx, demb

    def extra_repr(self):
        return f"{self.in_ch}, {self.out_ch}, emb_dim={self.emb_dim}"
