"""The padded-plane ("P") layout of a batch of feature maps, and the kernels that move data in and out of it.

An activation with C channels for B images of H x W pixels is one float32 array X of shape (C, L). Row c of X (a
"plane") holds channel c of every image, one image after another. Each image row is stored with one extra zero
column after it, and each image with one extra zero row after it; zero margins surround the whole plane:

    plane c:  [ margin (zeros) | image 0 | image 1 | ... | image B-1 | tail (zeros) ]
    image b:  row 0    x x x ... x 0            <- W values, then the zero column
              row 1    x x x ... x 0
              ...
              row H-1  x x x ... x 0
              pad row  0 0 0 ... 0 0            <- the bottom pad of image b is the top pad of image b + 1

    X[c, M0 + b S + h Wp + w] = x[b, c, h, w],    Wp = W + 1,  S = (H + 1) Wp,   every other entry 0.

The zero column after row h is both the right neighbour of pixel (h, W-1) and the left neighbour of pixel (h+1, 0),
so a 3 x 3 convolution with zero padding 1 sees exactly the zeros it needs: its tap (i, j) at pixel p is the entry at
the constant offset (i - 1) Wp + (j - 1) from p. No im2col copy is ever made (pconv.py).

Positions. Kernels compute whole blocks of BLK = 64 consecutive entries starting at M0, pads included, and multiply
the result by ``mask`` (1 at pixels, 0 at pads) so that pads stay zero. The margins are wide enough that every tap of
every computed block reads inside the array: M0 >= Wp + 1 in front, at least Wp + 1 + 16 entries after the last block.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinydiff.nn.kernels.jit import serial_and_parallel
from tinydiff.threads import kernel_threads

BLK = 64                      # positions per computed block: 4 vectors of 16 float32


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


class PLayout:
    """Geometry of the P layout for B images of H x W. Attributes: B, H, W, Wp, S, M0, n_out, L, mask (L,) float32.

    ``start, end = M0, M0 + n_out`` is the range of positions the kernels compute (a multiple of BLK long)."""

    def __init__(self, B: int, H: int, W: int):
        if min(B, H, W) < 1:
            raise ValueError(f"PLayout needs B, H, W >= 1, got {(B, H, W)}")
        self.B, self.H, self.W = B, H, W
        self.Wp = W + 1                                         # row stride: W pixels + the shared zero column
        self.S = (H + 1) * self.Wp                              # image stride: H rows + the shared zero row
        self.M0 = _round_up(self.Wp + 1, BLK)                   # front margin: taps reach back Wp + 1 entries
        self.n_out = _round_up(B * self.S, BLK)
        self.L = _round_up(self.M0 + self.n_out + self.Wp + 1 + 16, BLK)
        self.start, self.end = self.M0, self.M0 + self.n_out
        self.mask = np.zeros(self.L, np.float32)
        self.mask[self.pixel_index().reshape(-1)] = 1.0

    def pixel_index(self):
        """(B, H, W) int array: the position of pixel (b, h, w) in a plane."""
        b, h, w = np.meshgrid(np.arange(self.B), np.arange(self.H), np.arange(self.W), indexing="ij")
        return self.M0 + b * self.S + h * self.Wp + w

    def zeros(self, C: int):
        """A (C, L) float32 P array of zeros (pads and margins must stay 0: kernels rely on it)."""
        return np.zeros((C, self.L), np.float32)

    def to_p(self, x, out=None):
        """(B, C, H, W) -> (C, L). ``out``, if given, must have zero pads (it is only written at pixels)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[0] != self.B or x.shape[2:] != (self.H, self.W):
            raise ValueError(f"PLayout{(self.B, self.H, self.W)}.to_p: got an array of shape {x.shape}")
        out = self.zeros(x.shape[1]) if out is None else out
        return nchw_to_p(x, out, self.M0, self.S, self.Wp)

    def from_p(self, X, out=None):
        """(C, L) -> (B, C, H, W) float32."""
        out = np.empty((self.B, X.shape[0], self.H, self.W), np.float32) if out is None else out
        return p_to_nchw(X, out, self.M0, self.S, self.Wp)

    def __repr__(self):
        return f"PLayout(B={self.B}, H={self.H}, W={self.W}, L={self.L})"


# ---- conversions (the references are PLayout.pixel_index fancy indexing, in the tests) -----------------------------
@njit(cache=True)
def nchw_to_p(x, X, M0, S, Wp):
    """X[c, M0 + b S + h Wp + w] = x[b, c, h, w]; x: (B, C, H, W), X: (C, L) with zero pads. Returns X."""
    B, C, H, W = x.shape
    for c in range(C):
        for b in range(B):
            for h in range(H):
                base = M0 + b * S + h * Wp
                for w in range(W):
                    X[c, base + w] = x[b, c, h, w]
    return X


@njit(cache=True)
def p_to_nchw(X, x, M0, S, Wp):
    """x[b, c, h, w] = X[c, M0 + b S + h Wp + w]; the inverse of nchw_to_p. Returns x."""
    B, C, H, W = x.shape
    for b in range(B):
        for c in range(C):
            for h in range(H):
                base = M0 + b * S + h * Wp
                for w in range(W):
                    x[b, c, h, w] = X[c, base + w]
    return x


# ---- resampling between resolutions: upsampling by 2 and the polyphase split, each with its inverse ----------------
# Planes are independent, so each kernel is written once with ``prange`` over them and compiled twice (jit.py's
# serial_and_parallel); the function without the leading underscore runs the version for the threads in use now
# (tinydiff.threads.kernel_threads). Each output entry is written by one thread, so both give the same bits.

def _upsample2_p(Xlo, Xhi, B, H, W, M0l, Sl, Wpl, M0h, Sh, Wph):
    """Xhi[c, pixel (b, h2, w2)] = Xlo[c, pixel (b, h2 // 2, w2 // 2)] (nn/conv.py's Upsample(2), in P layout)."""
    C = Xlo.shape[0]
    for c in prange(C):
        for b in range(B):
            for h2 in range(2 * H):
                lo = M0l + b * Sl + (h2 // 2) * Wpl
                hi = M0h + b * Sh + h2 * Wph
                for w in range(W):
                    v = Xlo[c, lo + w]
                    Xhi[c, hi + 2 * w] = v
                    Xhi[c, hi + 2 * w + 1] = v
    return Xhi


def _upsample2_p_backward(dXhi, dXlo, B, H, W, M0l, Sl, Wpl, M0h, Sh, Wph):
    """dXlo[c, pixel (b, h, w)] = sum of dXhi over the 2 x 2 block of pixel (b, h, w)."""
    C = dXlo.shape[0]
    for c in prange(C):
        for b in range(B):
            for h in range(H):
                lo = M0l + b * Sl + h * Wpl
                hi0 = M0h + b * Sh + 2 * h * Wph
                hi1 = hi0 + Wph
                for w in range(W):
                    dXlo[c, lo + w] = (dXhi[c, hi0 + 2 * w] + dXhi[c, hi0 + 2 * w + 1]
                                       + dXhi[c, hi1 + 2 * w] + dXhi[c, hi1 + 2 * w + 1])
    return dXlo


def _split_phases(Xhi, Xph, B, Hl, Wl, M0h, Sh, Wph, M0l, Sl, Wpl):
    """Xph[(2r + s) C + c, pixel_lo (b, m, n)] = Xhi[c, pixel_hi (b, 2m + r, 2n + s)], r, s in {0, 1}.

    Xhi: (C, L_hi) at 2Hl x 2Wl; Xph: (4C, L_lo) at Hl x Wl, zero pads. The two input rows 2m, 2m + 1 are read
    once, for all four phases, while they are in the cache."""
    C = Xhi.shape[0]
    for c in prange(C):
        for b in range(B):
            for m in range(Hl):
                dst = M0l + b * Sl + m * Wpl
                for r in range(2):
                    src = M0h + b * Sh + (2 * m + r) * Wph
                    for s in range(2):
                        ph = (2 * r + s) * C + c
                        for n in range(Wl):
                            Xph[ph, dst + n] = Xhi[c, src + s + 2 * n]
    return Xph


def _merge_phases(dXph, dXhi, B, Hl, Wl, M0h, Sh, Wph, M0l, Sl, Wpl):
    """The inverse of split_phases: dXhi[c, pixel_hi (b, 2m + r, 2n + s)] = dXph[(2r + s) C + c, pixel_lo (b, m, n)]."""
    C = dXhi.shape[0]
    for c in prange(C):
        for b in range(B):
            for m in range(Hl):
                src = M0l + b * Sl + m * Wpl
                for r in range(2):
                    dst = M0h + b * Sh + (2 * m + r) * Wph
                    for s in range(2):
                        ph = (2 * r + s) * C + c
                        for n in range(Wl):
                            dXhi[c, dst + s + 2 * n] = dXph[ph, src + n]
    return dXhi


_RESAMPLE = {f.__name__[1:]: serial_and_parallel(f, cache=True)
             for f in (_upsample2_p, _upsample2_p_backward, _split_phases, _merge_phases)}


def _on_threads(name):
    """The kernel ``name`` on the threads in use now: its serial version on one thread, else its parallel one."""
    serial, parallel = _RESAMPLE[name]

    def run(*args):
        return (serial if kernel_threads() == 1 else parallel)(*args)

    run.__name__, run.__doc__ = name, getattr(serial, "py_func", serial).__doc__
    return run


upsample2_p = _on_threads("upsample2_p")
upsample2_p_backward = _on_threads("upsample2_p_backward")
split_phases = _on_threads("split_phases")
merge_phases = _on_threads("merge_phases")
