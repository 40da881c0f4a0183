"""MLPDenoiser: the small network that learns to denoise points (the tanelp/tiny-diffusion shape, ~99k parameters).

It predicts eps_theta(x_t, t) (or x0 / v, whatever it is trained on) for a batch of points x_t: (B, D) at integer steps
t: (B,). An MLP cannot see "t" as a number well, nor fine detail in a raw coordinate, so both are first lifted to
sinusoidal features (Vaswani et al. 2017; as random-free Fourier features for coordinates, Tancik et al. 2020):

    e_t   = [sin(t f_j), cos(t f_j)]_j                                    (B, E)       f_j = 10000^(-j / (E/2 - 1))
    e_x_d = [sin(s x_d f_j), cos(s x_d f_j)]_j     for each coordinate d   (B, D E)     s = coord_scale (25)
    h_0   = GELU(W_in [e_x, e_t, e_y] + b_in)                              (B, H)
    h_k   = h_{k-1} + GELU(W_k h_{k-1} + b_k)        k = 1..n_blocks        (B, H)      residual blocks
    out   = W_out h_K + b_out                                              (B, D)

Optional label conditioning (``num_classes`` > 0) adds a learned embedding e_y of the class y, with one extra "null"
row (index ``num_classes``) used when y is None or y == ``model.null_label``: training with a fraction of labels
dropped to the null row lets one network give both eps(x, t, y) and eps(x, t), which classifier-free guidance mixes.

Backward returns dL/dx only (t and y are integers). Through the Fourier features that is

    dL/dx_d = s * sum_j f_j (cos(s x_d f_j) dL/dsin_j - sin(s x_d f_j) dL/dcos_j)

(``FourierFeatures.backward``; t and y get no gradient).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinydiff.models.inputs import check_labels, check_model_time
from tinydiff.nn.activations import GELU
from tinydiff.nn.kernels.activations import add_gelu_numba, gelu_backward_numba
from tinydiff.nn.embeddings import Embedding, SinusoidalEmbedding
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module
from tinydiff.rng import make_rng


class MLPBlock(Module):
    """The MLP's residual block: h + GELU(u), u = W h + b: (B, H) -> (B, H). Backward: dh = dy + W^T (GELU'(u) * dy)
    (the skip passes dy through). Not ``nn.ResBlock``, the U-Net's convolutional block with an embedding.

    The add and the GELU run as one fused kernel (``add_gelu_numba``: one pass over the activations, not two).
    Cache: u (the linear layer caches h)."""

    def __init__(self, width: int, rng=None, dtype=np.float32):
        super().__init__()
        self.dtype = np.dtype(dtype)
        self.linear = Linear(width, width, rng=rng, dtype=dtype)
        self._u = None

    def forward(self, h):
        h = self.check_dtype(h, "h")                                          # the dtype rule (nn.module)
        self._u = self.linear.forward(h)                                      # u = W h + b        (B, H)
        return add_gelu_numba(h, self._u)                                     # h + GELU(u)        (B, H)

    def backward(self, grad_output):
        if self._u is None:
            raise RuntimeError("MLPBlock.backward called before forward")
        dy = np.ascontiguousarray(grad_output, dtype=self._u.dtype)
        dh = self.linear.backward(gelu_backward_numba(self._u, dy))           # W^T (GELU'(u) * dy)
        dh += dy                                                              # + dy, through the skip
        return dh


ResidualBlock = MLPBlock  # its old name


class FourierFeatures(Module):
    """Sinusoids of each coordinate: x (B, D) float -> (B, D E), no parameters.

        a_{b,d,j} = s x_{b,d} f_j                        f_j = SinusoidalEmbedding(E).freqs (the same frequencies)
        y_{b,d,:} = [sin(a_{b,d,0..half-1}), cos(a_{b,d,0..half-1})]
        dL/dx_{b,d} = s sum_j f_j (cos(a) dL/dsin_j - sin(a) dL/dcos_j)

    The same numbers as ``SinusoidalEmbedding`` applied to s x, but computed in the layer's dtype (float32 sin/cos are
    ~25x cheaper than float64 ones for these arguments) with sin and cos cached for backward, which makes it ~30x
    faster in training. Cache: sin(a), cos(a).
    """

    def __init__(self, emb_dim: int, scale: float, dtype=np.float32):
        super().__init__()
        if emb_dim % 2:
            raise ValueError(f"FourierFeatures: emb_dim must be even, got {emb_dim}")
        self.scale, self.dtype = float(scale), np.dtype(dtype)
        self.freqs = SinusoidalEmbedding(emb_dim).freqs.astype(dtype)                   # (half,)
        self._sin = None

    def forward(self, x):
        x = self.check_dtype(x)                                                         # the dtype rule (nn.module)
        args = (self.scale * x)[:, :, None] * self.freqs                                # (B, D, half)
        self._sin, self._cos = np.sin(args), np.cos(args)
        return np.concatenate([self._sin, self._cos], axis=2).reshape(len(x), -1)       # (B, D E)

    def backward(self, grad_output):
        if self._sin is None:
            raise RuntimeError("FourierFeatures.backward called before forward")
        B, D, half = self._sin.shape
        dy = np.asarray(grad_output, dtype=self.dtype).reshape(B, D, 2 * half)           # (B, D, E)
        d_args = self._cos * dy[:, :, :half] - self._sin * dy[:, :, half:]              # (B, D, half)
        return self.scale * (d_args @ self.freqs)                                       # (B, D)


@dataclass
class MLPConfig:
    dim: int = 2                  # D, the point dimension (2 for the toy sets; any D >= 1 works)
    width: int = 128              # H, hidden width
    n_blocks: int = 3             # residual Linear+GELU blocks
    emb_dim: int = 128            # E, size of each sinusoidal embedding (time, each coordinate, the label)
    coord_scale: float = 25.0     # s, multiplies coordinates before their sinusoids (sets the finest detail resolved)
    num_classes: int = 0          # 0: unconditional; K > 0 adds a label table with K + 1 rows (the last is "null")

    def __post_init__(self):
        if (self.dim < 1 or self.width < 1 or self.n_blocks < 0 or self.emb_dim < 2 or self.emb_dim % 2
                or self.num_classes < 0):
            raise ValueError(f"MLPDenoiser: need dim >= 1, width >= 1, n_blocks >= 0, even emb_dim >= 2, "
                             f"num_classes >= 0; "
                             f"got dim={self.dim}, width={self.width}, n_blocks={self.n_blocks}, "
                             f"emb_dim={self.emb_dim}, num_classes={self.num_classes}")


class MLPDenoiser(Module):
    """eps_theta(x_t, t[, y]) for points: x (B, D) float, t (B,) int, y (B,) int or None -> (B, D).

    Build with ``MLPDenoiser(MLPConfig(...))`` or ``MLPDenoiser(**fields)`` (the fields of :class:`MLPConfig`:
    dim, width, n_blocks, emb_dim, coord_scale, num_classes). ``coord_scale`` s multiplies coordinates before their
    sinusoids (data are standardised, so s sets the finest detail the features resolve: frequencies s f_j run from s
    down to s / 10000). ``rng``: seed or Generator for the initial weights. ``dtype``: float32 to train, float64 for
    gradient checks. ``num_timesteps``: T of the schedule it is trained on, if known: steps t >= T are then refused
    (models.inputs).

    Points of another float dtype (samplers pass float64) are cast to ``dtype``; backward returns dL/dx in their dtype.
    """

    kind = "mlp"              # the key of tinydiff.models.MODELS (stored in checkpoints beside the config)

    def __init__(self, config: MLPConfig | None = None, rng=0, dtype=np.float32, num_timesteps: int | None = None,
                 **fields):
        super().__init__()
        if config is not None and fields:
            raise TypeError("MLPDenoiser: pass either an MLPConfig or keyword fields, not both")
        cfg = config if config is not None else MLPConfig(**fields)
        dim, width, n_blocks, emb_dim = cfg.dim, cfg.width, cfg.n_blocks, cfg.emb_dim
        coord_scale, num_classes = cfg.coord_scale, cfg.num_classes
        rng = make_rng(rng)
        self.dim, self.dtype, self.coord_scale = dim, np.dtype(dtype), float(coord_scale)
        self.cfg = cfg
        self.config = asdict(cfg)  # plain dict, saved in checkpoints
        self.num_classes, self.null_label, self.num_timesteps = num_classes, num_classes, num_timesteps
        self.x_embed = FourierFeatures(emb_dim, coord_scale, dtype=dtype)
        self.t_embed = SinusoidalEmbedding(emb_dim, dtype=dtype)
        self._t_table = np.zeros((0, emb_dim), dtype=dtype)
        self.y_embed = Embedding(num_classes + 1, emb_dim, rng=rng, dtype=dtype) if num_classes else None
        n_in = emb_dim * (dim + 1 + (1 if num_classes else 0))
        self.input = Linear(n_in, width, rng=rng, dtype=dtype)
        self.input_act = GELU()
        self.blocks = [MLPBlock(width, rng=rng, dtype=dtype) for _ in range(n_blocks)]
        self.output = Linear(width, dim, rng=rng, dtype=dtype)

    # ---- forward ------------------------------------------------------------------------------------------------
    def _check(self, x, t, y):
        """The model's boundary: x (B, D) cast to the model's dtype; t and y checked by ``models.inputs``."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPDenoiser(dim={self.dim}): expected points x of shape (B, {self.dim}), got {x.shape}")
        t = check_model_time("MLPDenoiser", t, len(x), self.num_timesteps, self.dtype)
        y = check_labels("MLPDenoiser", y, len(x), self.num_classes, self.null_label)
        self._x_dtype = x.dtype
        return x.astype(self.dtype, copy=False), t, y

    def forward(self, x, t, y=None):
        x, t, y = self._check(x, t, y)
        feats = [self.x_embed.forward(x), self._time_features(t)]                            # (B, D E), (B, E)
        if self.num_classes:
            feats.append(self.y_embed.forward(y))                                              # (B, E)
        h = self.input_act.forward(self.input.forward(np.concatenate(feats, axis=1)))        # (B, H)
        for block in self.blocks:
            h = block.forward(h)
        return self.output.forward(h)                                                          # (B, D)

    def __call__(self, x, t, y=None):
        return self.forward(x, t, y)

    def _time_features(self, t):
        """SinusoidalEmbedding(t), looked up in a table of every step seen so far (t is an integer: no need to
        recompute the same sinusoids every batch). Float t (continuous time) is embedded directly."""
        if t.dtype.kind == "f":
            return self.t_embed.forward(t)                                        # (B, E)
        if len(self._t_table) <= t.max(initial=0):
            self._t_table = self.t_embed.forward(np.arange(max(int(t.max()) + 1, 2 * len(self._t_table))))  # (T', E)
        return self._t_table[t]                                                   # (B, E)

    # ---- backward -----------------------------------------------------------------------------------------------
    def backward(self, grad_output, input_grad: bool = True):
        """dL/d out (B, D) -> dL/dx (B, D); fills every parameter gradient.

        ``input_grad=False`` (a training step, which needs only the parameter gradients) returns None and skips the
        input layer's dL/dfeatures and the Fourier features' backward: about a sixth of the step's flops."""
        dh = self.output.backward(grad_output)                                    # (B, H)
        for block in reversed(self.blocks):
            dh = block.backward(dh)
        dz = self.input_act.backward(dh)                                          # (B, H)
        if not input_grad and not self.num_classes:                               # (labels need d_feats: see below)
            self.input.backward(dz, input_grad=False)
            return None
        d_feats = self.input.backward(dz)                                         # (B, (D + 1 [+ 1]) E)
        n_x = self.dim * self.t_embed.dim
        if self.num_classes:
            self.y_embed.backward(d_feats[:, n_x + self.t_embed.dim:])            # labels: fills the table's gradient
        if not input_grad:
            return None
        dx = self.x_embed.backward(d_feats[:, :n_x])                              # (B, D)
        return dx.astype(self._x_dtype if self._x_dtype.kind == "f" else self.dtype, copy=False)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())
