"""The U-Net's fast path: the same network, forward and backward, with every activation kept in the padded-plane
("P") layout of ``nn/kernels/playout.py`` from the first convolution to the last.

``UNet.forward`` / ``UNet.backward`` (models/unet.py) take this path by themselves when it applies (``fast_path_ok``:
float32 weights, Numba's compiler on, no active dropout, a size the network can halve) and their own layer-by-layer
NCHW code otherwise; that readable code is the reference this path is tested against (tests/test_models_unet_p.py:
same loss and gradients to float32 round-off, same samples from the shipped checkpoint). Set
``model.use_fast_path = False`` to force the reference.

What runs where, per ResBlock (nn/blocks.py has the algebra):

    X --[GroupNorm + SiLU]--> X1 --conv1--> Y1 --[GroupNorm + AdaGN(s, t) + SiLU]--> X2 --conv2--> + skip(X) = out

each [..] one fused kernel (kernels/pnorm.py), each conv one register-blocked kernel (kernels/pconv.py). Between
blocks: [h; skip] is stacking planes (pads stay zero), in a buffer that the two layers producing h and the skip
write into, so no copy is made; the stride-2 convolutions run polyphase,
Upsample(2) copies within P arrays. Only the 7 x 7 self-attention and the network's input and output convert to
and from NCHW. The parameters and gradients are the modules' own arrays, so optimisers and checkpoints do not see
a difference; the modules' own caches are not filled by this path (call the reference path to inspect them).

Threads: inside ``tinydiff.threads.use_threads(n)`` with n > 1 the convolutions and the fused GroupNorm run their
parallel versions (the same template / code compiled with ``prange``), which give the same bits as the serial ones.
"""

from __future__ import annotations

import numpy as np
from numba import config

from tinydiff.nn.kernels.playout import PLayout, upsample2_p, upsample2_p_backward
from tinydiff.nn.kernels.pconv import PConv
from tinydiff.nn.kernels import pnorm
from tinydiff.threads import kernel_threads


def fast_path_ok(model, x) -> bool:
    """True when the P-layout path computes exactly what the reference path would, fast."""
    n_down = len(model.cfg.channel_mults) - 1
    dropout_on = model.training and any(b.dropout.p > 0 for b in model.down_blocks + model.up_blocks
                                        + [model.mid1, model.mid2])
    return (getattr(model, "use_fast_path", True) and not config.DISABLE_JIT and model.dtype == np.float32
            and not dropout_on and x.shape[2] % 2 ** n_down == 0 and x.shape[3] % 2 ** n_down == 0)


class _Conv:
    """A Conv2d module run by PConv on P arrays; writes the module's gradients."""

    def __init__(self, conv, lay_in, lay_out=None):
        self.m, self.lay_in, self.lay_out = conv, lay_in, lay_out or lay_in
        self.p = PConv(conv.out_channels, conv.in_channels, conv.kernel_size[0], conv.stride, lay_in, self.lay_out)
        self.Y = self.lay_out.zeros(conv.out_channels)

    def forward(self, X):
        l = self.lay_in
        self.m._x_shape = (l.B, self.m.in_channels, l.H, l.W)          # what the reference would record (FLOP counts)
        self.X = X
        return self.p.forward(X, self.m.params["weight"], self.m.params["bias"], self.Y)

    def backward(self, dY, dX=None):
        return self.p.backward(dY, self.X, self.m.params["weight"], dX, self.m.grads["weight"], self.m.grads["bias"])


class _NormSiLU:
    """GroupNorm (+ AdaGN scale/shift) + SiLU on P arrays, with the GroupNorm module's parameters and gradients."""

    def __init__(self, norm, lay):
        self.n, self.lay, C = norm, lay, norm.num_channels
        self.mean, self.rstd = np.zeros((lay.B, norm.num_groups)), np.zeros((lay.B, norm.num_groups))
        self.zero_st = np.zeros((lay.B, 2 * C), np.float32)
        self.dst = np.zeros((lay.B, 2 * C), np.float32)
        self.X, self.dY = lay.zeros(C), lay.zeros(C)

    def forward(self, Y, st=None):
        l, n = self.lay, self.n
        self.Y, self.st = Y, self.zero_st if st is None else st
        kernel = pnorm.gn_adagn_silu_p if kernel_threads() == 1 else pnorm.gn_adagn_silu_p_par
        return kernel(Y, n.params["weight"], n.params["bias"], self.st, n.eps, self.mean, self.rstd, self.X,
                               l.mask, l.B, l.H, l.W, l.M0, l.S, l.Wp)

    def backward(self, dX):
        """-> dY (C, L); self.dst holds [ds | dt] (B, 2C)."""
        l, n = self.lay, self.n
        kernel = pnorm.gn_adagn_silu_p_backward if kernel_threads() == 1 else pnorm.gn_adagn_silu_p_backward_par
        return kernel(dX, self.Y, n.params["weight"], n.params["bias"], self.st, self.mean, self.rstd, self.dY,
                      self.dst, n.grads["weight"], n.grads["bias"], l.mask, l.B, l.H, l.W, l.M0, l.S, l.Wp)


class _Block:
    """A ResBlock on P arrays: out = skip(X) + conv2(SiLU(AdaGN(GN(conv1(SiLU(GN(X))))))) (nn/blocks.py)."""

    def __init__(self, rb, lay):
        self.rb, self.lay = rb, lay
        self.gn1, self.gn2 = _NormSiLU(rb.norm1, lay), _NormSiLU(rb.norm2, lay)
        self.conv1, self.conv2 = _Conv(rb.conv1, lay), _Conv(rb.conv2, lay)
        self.skip = _Conv(rb.skip, lay) if rb.skip is not None else None
        self.dX1, self.dX2 = lay.zeros(rb.in_ch), lay.zeros(rb.out_ch)
        self.dskip = lay.zeros(rb.in_ch) if self.skip else None

    def forward(self, X, emb):
        rb = self.rb
        Y1 = self.conv1.forward(self.gn1.forward(X))
        st = np.ascontiguousarray(rb.emb_proj.forward(rb.emb_act.forward(emb)), dtype=np.float32)  # (B, 2 C_out)
        out = self.conv2.forward(self.gn2.forward(Y1, st))
        out += self.skip.forward(X) if self.skip else X
        return out

    def backward(self, dout):
        """-> (dX (C_in, L), demb (B, E))."""
        rb = self.rb
        dY1 = self.gn2.backward(self.conv2.backward(dout, self.dX2))
        demb = rb.emb_act.backward(rb.emb_proj.backward(self.gn2.dst))
        dX = self.gn1.backward(self.conv1.backward(dY1, self.dX1))
        if self.skip:
            dX += self.skip.backward(dout, self.dskip)
        else:
            dX += dout
        return dX, demb


class _State:
    """Layouts, converted layers and buffers for one input size (B, H, W); rebuilt when the size changes."""

    def __init__(self, model, B, H, W):
        cfg, chans = model.cfg, model.cfg.channels
        n = len(chans)
        self.key = (B, H, W)
        self.lays = lays = [PLayout(B, H >> i, W >> i) for i in range(n)]
        self.conv_in = _Conv(model.conv_in, lays[0])
        self.X0, self.dX0 = lays[0].zeros(cfg.in_channels), lays[0].zeros(cfg.in_channels)
        level_of_down = [i for i in range(n) for _ in range(cfg.num_res_blocks)]
        self.down = [_Block(b, lays[i]) for b, i in zip(model.down_blocks, level_of_down)]
        self.downs = [_Conv(d, lays[i], lays[i + 1]) for i, d in enumerate(model.downs)]
        self.ddown = [lays[i].zeros(d.in_channels) for i, d in enumerate(model.downs)]
        self.mid1, self.mid2 = _Block(model.mid1, lays[-1]), _Block(model.mid2, lays[-1])
        level_of_up = [i for i in reversed(range(n)) for _ in range(cfg.num_res_blocks)]
        self.up = [_Block(b, lays[i]) for b, i in zip(model.up_blocks, level_of_up)]
        up_levels = list(reversed(range(1, n)))                    # ups[k] upsamples level i -> i - 1
        self.ups = [_Conv(c, lays[i - 1]) for c, i in zip(model.ups, up_levels)]
        self.up_in = [lays[i - 1].zeros(c.in_channels) for c, i in zip(model.ups, up_levels)]
        self.dup_in = [lays[i - 1].zeros(c.in_channels) for c, i in zip(model.ups, up_levels)]
        # [h; skip] for up level k (level i = n - 1 - k) in one buffer, so that no concatenation is copied: the
        # layers that produce h and the skip write into its two row blocks (a row block of a P array is a P array)
        self.cat, self.split = [], []
        for k, i in enumerate(reversed(range(n))):
            h_from = self.mid2.conv2 if k == 0 else self.ups[k - 1]
            c = h_from.m.out_channels
            self.cat.append(lays[i].zeros(c + chans[i]))
            self.split.append(c)
            h_from.Y = self.cat[k][:c]
            self.down[(i + 1) * cfg.num_res_blocks - 1].conv2.Y = self.cat[k][c:]     # the skip: level i's last
        self.out_gn = _NormSiLU(model.out_norm, lays[0])
        self.conv_out = _Conv(model.conv_out, lays[0])
        self.dYout, self.dXout = lays[0].zeros(cfg.in_channels), lays[0].zeros(chans[0])


KEEP_STATES = 2      # input sizes whose buffers stay allocated (a sampler's batch and its last, smaller one)


def _state(model, B, H, W) -> _State:
    """The buffers for this input size, built on first use; the least recently used size beyond KEEP_STATES goes."""
    states = model.__dict__.setdefault("_p_states", {})
    st = states.pop((B, H, W), None) or _State(model, B, H, W)
    states[B, H, W] = st                                       # dicts keep insertion order: most recent last
    while len(states) > KEEP_STATES:
        states.pop(next(iter(states)))
    model._p_state = st
    return st


def _geometry(lo, hi):
    return lo.B, lo.H, lo.W, lo.M0, lo.S, lo.Wp, hi.M0, hi.S, hi.Wp


def _stack(cat, c, h, skip):
    """[h; skip] in ``cat``: nothing to do when their layers wrote them there (_State), else a copy."""
    if h.base is not cat:
        cat[:c] = h
    if skip.base is not cat:
        cat[c:] = skip
    return cat


def forward_p(model, x, e):
    """x (B, C, H, W) float32 (checked), e (B, E) the embedding -> eps (B, C, H, W) float32. Same order as
    UNet.forward; h is a (channels, L) P array throughout."""
    B, _, H, W = x.shape
    st = _state(model, B, H, W)
    lays, R, n = st.lays, model.cfg.num_res_blocks, len(st.lays)
    h = st.conv_in.forward(lays[0].to_p(x, st.X0))
    skips, blocks = [], iter(st.down)
    for i in range(n):
        for _ in range(R):
            h = next(blocks).forward(h, e)
        skips.append(h)
        if i < n - 1:
            h = st.downs[i].forward(h)                                 # stride 2: polyphase
    h = st.mid1.forward(h, e)
    if model.mid_attn is not None:                                     # 7 x 7: NCHW for the attention layer
        h = lays[-1].to_p(model.mid_attn.forward(lays[-1].from_p(h)))
    h = st.mid2.forward(h, e)
    blocks = iter(st.up)
    for k, i in enumerate(reversed(range(n))):
        h = _stack(st.cat[k], st.split[k], h, skips[i])                 # [h; skip]: stacking planes
        for _ in range(R):
            h = next(blocks).forward(h, e)
        if i > 0:
            upsample2_p(h, st.up_in[k], *_geometry(lays[i], lays[i - 1]))
            h = st.ups[k].forward(st.up_in[k])
    y = st.conv_out.forward(st.out_gn.forward(h))
    return lays[0].from_p(y)


def backward_p(model, grad_output, input_grad: bool):
    """dL/d eps (B, C, H, W) -> (dL/dx (B, C, H, W) float32 or None, dL/de (B, E)); fills the parameter gradients."""
    st = model._p_state
    lays, R, n = st.lays, model.cfg.num_res_blocks, len(st.lays)
    dh = st.out_gn.backward(st.conv_out.backward(lays[0].to_p(grad_output, st.dYout), st.dXout))
    de = 0
    dskips = [None] * n
    blocks = iter(reversed(st.up))
    for k, i in reversed(list(enumerate(reversed(range(n))))):
        if i > 0:
            st.ups[k].backward(dh, st.dup_in[k])
            dh = upsample2_p_backward(st.dup_in[k], lays[i].zeros(st.dup_in[k].shape[0]),
                                      *_geometry(lays[i], lays[i - 1]))
        for _ in range(R):
            dh, d = next(blocks).backward(dh)
            de = de + d
        c = st.split[k]
        dh, dskips[i] = dh[:c], dh[c:]                                 # split d[h; skip] along the planes
    dh, d2 = st.mid2.backward(np.ascontiguousarray(dh))
    if model.mid_attn is not None:
        dh = lays[-1].to_p(model.mid_attn.backward(lays[-1].from_p(dh)))
    dh, d1 = st.mid1.backward(dh)
    de = de + d1 + d2
    blocks = iter(reversed(st.down))
    for i in reversed(range(n)):
        if i < n - 1:
            dh = st.downs[i].backward(np.ascontiguousarray(dh), st.ddown[i])
        dh = dh + dskips[i]
        for _ in range(R):
            dh, d = next(blocks).backward(dh)
            de = de + d
    dX0 = st.conv_in.backward(dh, st.dX0 if input_grad else None)
    return (lays[0].from_p(dX0) if input_grad else None), de
