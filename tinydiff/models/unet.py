"""UNet: the convolutional denoiser eps_theta(x_t, t[, y]) for 28 x 28 images (MNIST), after Ho et al. (2020).

A U-Net (Ronneberger et al. 2015) reads the image at several resolutions. Going down, each level refines features and
halves the resolution (28 -> 14 -> 7); going up, each level doubles it again and concatenates the features saved on
the way down at the same resolution (the "skip connections", which carry the fine detail the bottleneck cannot):

    e     = MLP(SinusoidalEmbedding(t)) [+ Embedding(y)]                  (B, E)        time (and label) embedding
    h     = Conv3x3(x)                                                    (B, C_0, 28, 28)
    down:   h = ResBlock_i(h, e) ... ; save s_i = h ; h = Conv3x3/stride 2(h)          (28 -> 14 -> 7)
    middle: h = ResBlock(h, e) ; h = SelfAttention(h) ; h = ResBlock(h, e)             (at 7 x 7)
    up:     h = ResBlock_i([h; s_i], e) ... ; h = Conv3x3(Upsample2(h))               (7 -> 14 -> 28)
    out   = Conv3x3(SiLU(GroupNorm(h)))                                   (B, 1, 28, 28)

Every ResBlock (``nn.ResBlock``) lets e scale and shift its normalised features (AdaGN, Dhariwal & Nichol 2021).

Label conditioning for classifier-free guidance (Ho & Salimans 2022): with ``num_classes`` = K > 0 the label table has
K + 1 rows; row K (``model.null_label``) means "no label". Training with a fraction of labels replaced by the null
row teaches one network both eps(x_t, t, y) and eps(x_t, t), which the sampler mixes.

Backward. The embedding e feeds every ResBlock, so its gradient is the sum of what each block returns:

    dL/de = sum_blocks dL/de|_block          then back through the time MLP and into the label table's rows

and a concatenation's gradient splits along the channel axis: d[h; s] -> (dh, ds), with ds added to the gradient
that reaches s_i from the layer after it on the way down. ``backward`` returns dL/dx (t and y are integers).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinydiff.models.inputs import check_labels, check_model_time
from tinydiff.models.unet_p import backward_p, fast_path_ok, forward_p
from tinydiff.nn.activations import SiLU
from tinydiff.nn.attention import SelfAttention2d
from tinydiff.nn.blocks import ResBlock
from tinydiff.nn.conv import Conv2d, Upsample
from tinydiff.nn.embeddings import Embedding, SinusoidalEmbedding
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module
from tinydiff.nn.norm import GroupNorm
from tinydiff.rng import make_rng


@dataclass
class UNetConfig:
    in_channels: int = 1                # 1 for grey-scale MNIST
    base_channels: int = 24             # C_0, channels at full resolution (24: the shipped MNIST model, 465k params)
    channel_mults: tuple = (1, 2, 2)    # C_i = base * mult_i; one level per entry: 28 -> 14 -> 7 for three levels
    num_res_blocks: int = 1             # ResBlocks per level on the way down (and on the way up)
    attention: bool = True              # self-attention in the middle, at the lowest resolution (7 x 7)
    num_heads: int = 1                  # attention heads
    num_groups: int = 8                 # GroupNorm groups (must divide every C_i)
    emb_dim: int = 128                  # E, size of the time (and label) embedding; 4 C_0 as in DDPM
    dropout: float = 0.0                # dropout inside the ResBlocks (DDPM used 0.1 on CIFAR-10)
    num_classes: int = 0                # 0: unconditional; 10 for class-conditional MNIST (adds a null row)
    image_size: int = 28                # H = W of the images to sample (the network accepts any size it can halve)

    def __post_init__(self):
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        chans = [self.base_channels * m for m in self.channel_mults]
        if self.base_channels < 1 or not chans or min(chans) < 1 or self.num_res_blocks < 1:
            raise ValueError(f"UNetConfig: need base_channels >= 1, at least one positive channel_mult and "
                             f"num_res_blocks >= 1; got {self.base_channels}, {self.channel_mults}, "
                             f"{self.num_res_blocks}")
        bad = [c for c in chans if c % self.num_groups]
        if bad:
            raise ValueError(f"UNetConfig: num_groups={self.num_groups} must divide every level's channels "
                             f"{chans} (not {bad}); pick num_groups from the common divisors")
        if self.emb_dim < 2 or self.emb_dim % 2 or self.num_classes < 0:
            raise ValueError(f"UNetConfig: emb_dim must be even and >= 2 and num_classes >= 0, got "
                             f"emb_dim={self.emb_dim}, num_classes={self.num_classes}")

    @property
    def channels(self) -> list[int]:
        return [self.base_channels * m for m in self.channel_mults]


class UNet(Module):
    """eps_theta(x_t, t[, y]): x (B, C, H, W) float, t (B,) int, y (B,) int or None -> (B, C, H, W).

    H and W must be divisible by 2^(levels - 1) (28 with three levels: 28 -> 14 -> 7). Build with ``UNet(UNetConfig(
    ...))`` or ``UNet(**fields)``; ``rng`` seeds the initial weights, ``dtype`` is float32 to train, float64 for
    gradient checks. Inputs of another float dtype (the samplers pass float64 noise) are cast to ``dtype``, and backward
    returns dL/dx in their dtype. ``num_timesteps``: T of the schedule it is trained on, if known (steps t >= T are then
    refused; ``models.inputs``).

    Two implementations of the same function: ``forward_reference`` / ``backward_reference`` below, layer by layer in
    NCHW (the readable one), and a fast path (models/unet_p.py: padded-plane layout, register-blocked convolutions,
    fused GroupNorm + SiLU) that ``forward`` takes by itself for float32 models when Numba's compiler is on and no
    dropout is active. ``use_fast_path = False`` (on the class or one model) forces the reference.
    """

    kind = "unet"             # the key of tinydiff.models.MODELS (stored in checkpoints beside the config)
    use_fast_path = True      # take models/unet_p.py's path when fast_path_ok (False: always the reference)

    def __init__(self, config: UNetConfig | None = None, rng=0, dtype=np.float32, num_timesteps: int | None = None,
                 **fields):
        super().__init__()
        cfg = config if config is not None else UNetConfig(**fields)
        if config is not None and fields:
            raise TypeError("UNet: pass either a UNetConfig or keyword fields, not both")
        rng = make_rng(rng)
        self.cfg, self.dtype = cfg, np.dtype(dtype)
        self.config = asdict(cfg)  # plain dict, saved in checkpoints
        self.num_classes, self.null_label, self.num_timesteps = cfg.num_classes, cfg.num_classes, num_timesteps
        self.sample_shape = (cfg.in_channels, cfg.image_size, cfg.image_size)   # samplers draw (B, *sample_shape)
        chans, E, G = cfg.channels, cfg.emb_dim, cfg.num_groups
        kw = dict(rng=rng, dtype=dtype)

        # time (and label) embedding: e = Linear(SiLU(Linear(sin_emb(t)))) [+ label_table[y]]
        self.t_embed = SinusoidalEmbedding(chans[0], dtype=dtype)
        self.t_lin1, self.t_act, self.t_lin2 = Linear(chans[0], E, **kw), SiLU(), Linear(E, E, **kw)
        self.y_embed = Embedding(cfg.num_classes + 1, E, **kw) if cfg.num_classes else None

        self.conv_in = Conv2d(cfg.in_channels, chans[0], 3, padding=1, **kw)
        # down path: levels[i] holds num_res_blocks ResBlocks; downs[i] halves the resolution (not after the last)
        self.down_blocks, self.downs, c = [], [], chans[0]
        for i, ci in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                self.down_blocks.append(ResBlock(c, ci, E, G, cfg.dropout, **kw))
                c = ci
            if i < len(chans) - 1:
                self.downs.append(Conv2d(ci, ci, 3, stride=2, padding=1, **kw))
        self.mid1 = ResBlock(c, c, E, G, cfg.dropout, **kw)
        self.mid_attn = SelfAttention2d(c, cfg.num_heads, G, **kw) if cfg.attention else None
        self.mid2 = ResBlock(c, c, E, G, cfg.dropout, **kw)
        # up path, from the lowest level: the first block of a level takes [h; skip] (2 C_i channels)
        self.up_blocks, self.upsamples, self.ups = [], [], []
        for i in reversed(range(len(chans))):
            ci = chans[i]
            for j in range(cfg.num_res_blocks):
                self.up_blocks.append(ResBlock(c + ci if j == 0 else ci, ci, E, G, cfg.dropout, **kw))
                c = ci
            if i > 0:   # Upsample(2) then Conv3x3 C_i -> C_{i-1} (Odena et al. 2016: no checkerboard artefacts)
                self.upsamples.append(Upsample(2))
                self.ups.append(Conv2d(ci, chans[i - 1], 3, padding=1, **kw))
                c = chans[i - 1]
        self.out_norm, self.out_act = GroupNorm(G, c, dtype=dtype), SiLU()
        self.conv_out = Conv2d(c, cfg.in_channels, 3, padding=1, **kw)

    # ---- checks ---------------------------------------------------------------------------------------------------
    def _check(self, x, t, y):
        cfg, n_down = self.cfg, len(self.cfg.channel_mults) - 1
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"UNet: expected images x of shape (B, {cfg.in_channels}, H, W), got {x.shape}. "
                             "For (B, H, W) grey-scale images use x[:, None].")
        if x.shape[2] % 2**n_down or x.shape[3] % 2**n_down:
            raise ValueError(f"UNet with {n_down + 1} levels needs H and W divisible by {2**n_down}, got "
                             f"{x.shape[2]}x{x.shape[3]}: pad the images or use fewer channel_mults")
        t = check_model_time("UNet", t, len(x), self.num_timesteps, self.dtype)
        y = check_labels("UNet", y, len(x), self.num_classes, self.null_label)
        return np.ascontiguousarray(x, dtype=self.dtype), t, y    # the model's boundary: cast (nn.module's dtype rule)

    # ---- forward --------------------------------------------------------------------------------------------------
    def forward(self, x, t, y=None):
        in_dtype = np.asarray(x).dtype
        x, t, y = self._check(x, t, y)
        self._in_dtype = in_dtype
        e = self._embed(t, y)                                                                        # (B, E)
        self._fast = fast_path_ok(self, x)
        if self._fast:                       # the same network with P-layout kernels (models/unet_p.py)
            return forward_p(self, x, e)
        return self.forward_reference(x, e)

    def _embed(self, t, y):
        """e = Linear(SiLU(Linear(sin_emb(t)))) [+ label_table[y]], (B, E)."""
        e = self.t_lin2.forward(self.t_act.forward(self.t_lin1.forward(self.t_embed.forward(t))))  # (B, E)
        if self.num_classes:
            e = e + self.y_embed.forward(y)                                                          # (B, E)
        return e

    def _embed_backward(self, de):
        if self.num_classes:
            self.y_embed.backward(de)                                        # fills the label table's gradient
        self.t_lin1.backward(self.t_act.backward(self.t_lin2.backward(de)), input_grad=False)  # t: no dL/dt

    def forward_reference(self, x, e):
        """The layer-by-layer forward in NCHW (x checked, e the embedding): the reference for the fast path."""
        R, n_levels = self.cfg.num_res_blocks, len(self.cfg.channel_mults)
        h = self.conv_in.forward(x)                                          # (B, C_0, H, W)
        skips, blocks = [], iter(self.down_blocks)
        for i in range(n_levels):
            for _ in range(R):
                h = next(blocks).forward(h, e)                               # (B, C_i, H_i, W_i)
            skips.append(h)
            if i < n_levels - 1:
                h = self.downs[i].forward(h)                                 # (B, C_i, H_i / 2, W_i / 2)
        h = self.mid1.forward(h, e)
        if self.mid_attn is not None:
            h = self.mid_attn.forward(h)
        h = self.mid2.forward(h, e)                                          # (B, C_last, H_last, W_last)
        self._split = []                                                     # channels of h in each [h; skip]
        blocks = iter(self.up_blocks)
        for k, i in enumerate(reversed(range(n_levels))):
            self._split.append(h.shape[1])
            h = np.concatenate([h, skips[i]], axis=1)                        # (B, C + C_i, H_i, W_i)
            for _ in range(R):
                h = next(blocks).forward(h, e)                               # (B, C_i, H_i, W_i)
            if i > 0:
                h = self.ups[k].forward(self.upsamples[k].forward(h))        # (B, C_{i-1}, 2 H_i, 2 W_i)
        return self.conv_out.forward(self.out_act.forward(self.out_norm.forward(h)))   # (B, C, H, W)

    def __call__(self, x, t, y=None):
        return self.forward(x, t, y)

    # ---- backward -------------------------------------------------------------------------------------------------
    def backward(self, grad_output, input_grad: bool = True):
        """dL/d out (B, C, H, W) -> dL/dx (B, C, H, W); fills every parameter gradient (embeddings included).
        ``input_grad=False`` (a training step) returns None and skips the first convolution's dL/dx."""
        if getattr(self, "_fast", False):
            dx, de = backward_p(self, grad_output, input_grad)
        else:
            dx, de = self.backward_reference(grad_output, input_grad)
        self._embed_backward(de)
        if dx is None:
            return None
        return dx.astype(self._in_dtype if self._in_dtype.kind == "f" else self.dtype, copy=False)

    def backward_reference(self, grad_output, input_grad: bool = True):
        """The layer-by-layer backward in NCHW -> (dL/dx or None, dL/de)."""
        R, n_levels = self.cfg.num_res_blocks, len(self.cfg.channel_mults)
        dh = self.out_norm.backward(self.out_act.backward(self.conv_out.backward(grad_output)))
        de = 0
        dskips = [None] * n_levels
        blocks = iter(reversed(self.up_blocks))
        for k, i in reversed(list(enumerate(reversed(range(n_levels))))):    # levels from the top back down
            if i > 0:
                dh = self.upsamples[k].backward(self.ups[k].backward(dh))
            for _ in range(R):
                dh, d = next(blocks).backward(dh)
                de = de + d
            c = self._split[k]
            dh, dskips[i] = dh[:, :c], dh[:, c:]                            # split d[h; skip] along channels
        dh, d2 = self.mid2.backward(np.ascontiguousarray(dh))
        if self.mid_attn is not None:
            dh = self.mid_attn.backward(dh)
        dh, d1 = self.mid1.backward(dh)
        de = de + d1 + d2
        blocks = iter(reversed(self.down_blocks))
        for i in reversed(range(n_levels)):
            if i < n_levels - 1:
                dh = self.downs[i].backward(dh)
            dh = dh + dskips[i]                                               # the skip's gradient joins here
            for _ in range(R):
                dh, d = next(blocks).backward(dh)
                de = de + d
        return self.conv_in.backward(dh, input_grad=input_grad), de

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())
