"""Register-blocked convolutions on the padded-plane ("P") layout: forward, input gradient and weight gradient, all
generated from one template each, for every 3 x 3 (stride 1 or 2) and 1 x 1 convolution of the U-Net.

Why not im2col + GEMM (kernels/conv.py, the reference)? On the U-Net's shapes (24-96 channels, 7-28 pixels) the GEMM
is thin, so BLAS runs far below its peak, and building and scattering the im2col columns costs as much again. Plain
direct loops are worse still (Numba keeps the partial sums in memory, 2-7 GFLOP/s). The kernels here keep a tile of
partial sums in vector registers instead, like a BLAS micro-kernel, on a layout where a tap is a constant offset.

The layout (playout.py has the full picture): channel c of all B images is one plane, row c of X (C, L); a pixel's
3 x 3 neighbourhood, zero padding included, sits at the constant offsets (i - 1) Wp + (j - 1) around it:

    plane c:   . . . . . . . . .      <- zero margin / previous image's zero pad row
               . x x x x x x x 0      <- image rows of W pixels + one shared zero column (Wp = W + 1 entries)
               . x x[a b c]x x 0         the taps of pixel e: [a b c] at offsets -Wp-1, -Wp, -Wp+1
               . x x[d e f]x x 0                              [d e f] at -1, 0, +1
               . x x[g h i]x x 0                              [g h i] at Wp-1, Wp, Wp+1
               . 0 0 0 0 0 0 0 0      <- zero pad row (the next image starts after it)

A convolution is then a "tap list": taps t = 0..T-1, each reading input plane tplane[t] + c at offset toff[t],

    Y[o, p] = mask[p] (bias[o] + sum_{c, t} w[o, c, t] X[tplane[t] + c, p + toff[t]])             (forward)

(the mask is applied as a select, not a product, so a NaN in one image never reaches the shared pads of the next)

for every position p of the computed range (pads included, then zeroed by the mask). The same template covers:

    3 x 3, padding 1   T = 9, tplane = 0, toff = (i - 1) Wp + (j - 1)
    1 x 1              T = 1, tplane = 0, toff = 0
    input gradient     dX[c, p] = sum_{o, t} w[o, c, t] dY[o, p - toff[t]]: the forward template with the weights
                       transposed to (C, O, T) and the offsets negated (a 3 x 3 tap list read backwards)
    stride 2           polyphase: the input is split into its 4 phases x[2m + r, 2n + s] (4 C planes at the low
                       resolution); tap i reads phase r_i at row offset d_i, (r_i, d_i) = (1, -1), (0, 0), (1, 0)
                       for i = 0, 1, 2 (and the same for columns). Its input gradient: one forward-template call per
                       phase, with that phase's taps.

    dw[o, c, t] = sum_p dY[o, p] X[tplane[t] + c, p + toff[t]]                                     (weight gradient)
    db[o]       = sum_p dY[o, p]                                                 (dY is 0 at pads, so the sums are exact)

The generator. ``conv_kernel(OB)`` writes the forward template for a block of OB output planes x 4 vectors of 16
positions (OB x 4 accumulators: 16 of the 32 AVX-512 registers for OB = 4) as Python source with the accumulators as
named local variables (a0_0 ... a3_3), compiles it with Numba and returns it; ``wgrad_kernel(OB, CB)`` does the same
for the weight gradient (OB x CB accumulators over chunks of 512 positions). Each block reads its inputs once per tap
and does OB x 4 fused multiply-adds per 4 loads: that ratio (arithmetic intensity in registers) is what the
straightforward loops lack. The generated source is written to a cache directory and imported from there, so Numba
can cache the compiled code between processes; print ``conv_source(4)`` to read one.

Threads. Each template also generates a parallel version (``parallel=True``; the outer loop becomes ``prange``):
the forward / input-gradient kernel splits the blocks of positions among the threads, the weight-gradient kernel
splits the blocks of output channels (each thread owns its rows of dw and sums the chunks of positions in the serial
order), and the bias gradient splits the output channels. Every output is computed by one thread in the serial
kernel's order, so the results are the same bits on any number of threads (tests/test_kernels_parallel.py). PConv
runs the parallel versions when ``tinydiff.threads.kernel_threads()`` is above 1.

Without the compiler (``NUMBA_DISABLE_JIT=1``) the generated kernels run as plain Python on simd.py's NumPy fallback:
correct, and fast enough for the tests' tiny images only; the U-Net then takes its reference path (models/unet_p.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from numba import config, prange

from tinydiff.nn.kernels.playout import BLK, PLayout, merge_phases, split_phases
from tinydiff.nn.kernels import simd
from tinydiff.nn.kernels.jit import FAST, serial_and_parallel
from tinydiff.nn.kernels.simd import VL, vadd, vhsum, vload, vzero
from tinydiff.threads import kernel_threads

VB = BLK // VL                  # vectors of positions per block (4)
PB = 512                        # positions per chunk of the weight-gradient reduction (fits L1 with OB + CB planes)



# ---- the templates -------------------------------------------------------------------------------------------------
CONV_TEMPLATE = '''
@njit(cache={cache}, fastmath=FASTMATH, boundscheck=False{parallel})
def {name}(x, w, bias, mask, y, L, start, end, C, O, tplane, toff):
    """y[o, p] = mask[p] (bias[o] + sum_(c, t) w[o, c, t] x[tplane[t] + c, p + toff[t]]), p in [start, end).
    x, y, mask: flat P arrays; w: packed (O / {OB}, C, T, {OB}); blocks of {OB} outputs x {VB} vectors of {VL}.
    Blocks of positions are independent: {loop} over them."""
    nt = len(tplane)
    for ib in {loop}((end - start) // {BLK}):
        p0 = start + ib * {BLK}
{load_mask}
        for ob in range(O // {OB}):
{zero_acc}
            wb = ob * C * nt * {OB}
            for c in range(C):
                for t in range(nt):
                    q = (tplane[t] + c) * L + p0 + toff[t]
                    r = wb + (c * nt + t) * {OB}
{load_x}
{fma}
{store}
    return y
'''

WGRAD_TEMPLATE = '''
@njit(cache={cache}, fastmath=FASTMATH, boundscheck=False{parallel})
def {name}(dy, x, dw, L, start, end, C, O, tplane, toff, parts):
    """dw[o, c, t] += sum_(p in [start, end)) dy[o, p] x[tplane[t] + c, p + toff[t]]; dw: (O, C, T).
    Blocks of {OB} outputs x {CB} inputs, positions in chunks of {PB}. The output blocks are split into ``parts``
    contiguous groups ({loop} over them); each part owns its rows of dw and sums the chunks in order, so the
    result does not depend on ``parts``."""
    nt = len(tplane)
    nob = O // {OB}
    for part in {loop}(parts):
        for pb in range(start, end, {PB}):
            pe = min(pb + {PB}, end)
            for ob in range(part * nob // parts, (part + 1) * nob // parts):
                for cb in range(C // {CB}):
                    for t in range(nt):
                        xb = (tplane[t] + cb * {CB}) * L + toff[t]
{zero_acc}
                        for p in range(pb, pe, {VL}):
{load_dy}
{fma}
{reduce}
    return dw
'''


def _lines(indent: int, fmt: str, **ranges) -> str:
    """One line of ``fmt`` per combination of the named ranges, e.g. _lines(4, "a{o} = 0", o=range(2))."""
    if not ranges:
        return " " * indent + fmt
    (k1, r1), *rest = ranges.items()
    out = []
    for v1 in r1:
        if rest:
            (k2, r2), = rest
            out += [fmt.format(**{k1: v1, k2: v2}) for v2 in r2]
        else:
            out.append(fmt.format(**{k1: v1}))
    return "\n".join(" " * indent + s for s in out)


def kernel_name(base: str, parallel: bool) -> str:
    """The generated kernel's name: the parallel version carries ``_par`` (its own file and cache entry)."""
    return base + ("_par" if parallel else "")


def _loop(parallel: bool) -> dict:
    """The template's fields that differ between the serial and the parallel version: the outer loop and a flag."""
    return dict(loop="prange", parallel=", parallel=True") if parallel else dict(loop="range", parallel="")


def conv_source(OB: int, cache: bool = True, parallel: bool = False) -> str:
    """The forward template for blocks of OB output planes, as Python source (``parallel``: the blocks of positions
    run on Numba's threads)."""
    o, v = range(OB), range(VB)
    fma = "\n".join(_lines(20, f"w{i} = vbcast(w[r + {i}])") + "\n" +
                    _lines(20, f"a{i}_{{v}} = vfma(w{i}, x{{v}}, a{i}_{{v}})", v=v) for i in o)
    store = "\n".join(_lines(12, f"bo = vbcast(bias[ob * {OB} + {i}])") + "\n" +
                      _lines(12, f"yb = (ob * {OB} + {i}) * L + p0") + "\n" +
                      _lines(12, f"vstore(y, yb + {{v}} * {VL}, vmask(vadd(a{i}_{{v}}, bo), m{{v}}))", v=v) for i in o)
    return CONV_TEMPLATE.format(
        name=kernel_name(f"conv_p_o{OB}", parallel), cache=cache, OB=OB, VB=VB, VL=VL, BLK=BLK, **_loop(parallel),
        load_mask=_lines(8, f"m{{v}} = vload(mask, p0 + {{v}} * {VL})", v=v),
        zero_acc=_lines(12, "a{o}_{v} = vzero()", o=o, v=v),
        load_x=_lines(20, f"x{{v}} = vload(x, q + {{v}} * {VL})", v=v), fma=fma, store=store)


def wgrad_source(OB: int, CB: int, cache: bool = True, parallel: bool = False) -> str:
    """The weight-gradient template for blocks of OB outputs x CB inputs, as Python source (``parallel``: the
    parts of the output blocks run on Numba's threads)."""
    o, c = range(OB), range(CB)
    fma = "\n".join(_lines(28, f"x{j} = vload(x, xb + {j} * L + p)") + "\n" +
                    _lines(28, f"a{{o}}_{j} = vfma(d{{o}}, x{j}, a{{o}}_{j})", o=o) for j in c)
    return WGRAD_TEMPLATE.format(
        name=kernel_name(f"wgrad_p_o{OB}_c{CB}", parallel), cache=cache, OB=OB, CB=CB, PB=PB, VL=VL,
        **_loop(parallel), zero_acc=_lines(24, "a{o}_{c} = vzero()", o=o, c=c),
        load_dy=_lines(28, f"d{{o}} = vload(dy, (ob * {OB} + {{o}}) * L + p)", o=o), fma=fma,
        reduce=_lines(24, f"dw[ob * {OB} + {{o}}, cb * {CB} + {{c}}, t] += vhsum(a{{o}}_{{c}})", o=o, c=c))


HEADER = ("from numba import njit, prange\n"
          "from tinydiff.nn.kernels.jit import FASTMATH\n"
          "from tinydiff.nn.kernels.simd import vzero, vload, vstore, vbcast, vfma, vadd, vmask, vhsum\n")


def _kernel_dir() -> Path | None:
    """Where generated kernels are written (so that Numba can cache them): $TINYDIFF_KERNEL_DIR, else
    $NUMBA_CACHE_DIR/tinydiff_kernels, else ~/.cache/tinydiff/kernels; None if none is writable."""
    for d in (os.environ.get("TINYDIFF_KERNEL_DIR"),
              os.environ.get("NUMBA_CACHE_DIR") and os.path.join(os.environ["NUMBA_CACHE_DIR"], "tinydiff_kernels"),
              os.path.join(os.path.expanduser("~"), ".cache", "tinydiff", "kernels")):
        if d:
            try:
                os.makedirs(d, exist_ok=True)
                if os.access(d, os.W_OK):
                    return Path(d)
            except OSError:
                pass
    return None


def _compile(name: str, source_fn):
    """Compile generated source: from a file in the kernel directory (Numba caches it), or by exec (no cache)."""
    d = None if config.DISABLE_JIT else _kernel_dir()
    src = HEADER + source_fn(d is not None)
    if d is None:
        ns = {}
        exec(compile(src, f"<generated {name}>", "exec"), ns)
        return ns[name]
    # the name hashes simd.py too: Numba's cache checks only the generated file, not the intrinsics it inlines
    simd_src = Path(simd.__file__).read_bytes()
    path = d / f"{name}_{hashlib.sha1(src.encode() + simd_src).hexdigest()[:10]}.py"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(src)
        os.replace(tmp, path)                                     # atomic: parallel processes see whole files
    spec = importlib.util.spec_from_file_location(f"tinydiff_generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                              # Numba's cache finds the module by name
    spec.loader.exec_module(module)
    return getattr(module, name)


_kernels: dict = {}


def conv_kernel(OB: int, parallel: bool = False):
    """The compiled forward template for blocks of OB output planes (generated once per process, when first asked
    for: the parallel version is compiled only if threads are used)."""
    key = ("conv", OB, parallel)
    if key not in _kernels:
        _kernels[key] = _compile(kernel_name(f"conv_p_o{OB}", parallel),
                                 lambda cache: conv_source(OB, cache, parallel))
    return _kernels[key]


def wgrad_kernel(OB: int, CB: int, parallel: bool = False):
    """The compiled weight-gradient template for blocks of OB x CB (generated once per process, when first asked
    for)."""
    key = ("wgrad", OB, CB, parallel)
    if key not in _kernels:
        _kernels[key] = _compile(kernel_name(f"wgrad_p_o{OB}_c{CB}", parallel),
                                 lambda cache: wgrad_source(OB, CB, cache, parallel))
    return _kernels[key]


def _bias_grad_p(dy, L, start, end, db):
    """db[o] = sum_{p in [start, end)} dy[o, p]; dy: flat P array with zero pads. Outputs o are independent."""
    for o in prange(db.shape[0]):
        acc = vzero()
        for p in range(start, end, VL):
            acc = vadd(acc, vload(dy, o * L + p))
        db[o] = vhsum(acc)
    return db


bias_grad_p, bias_grad_p_par = serial_and_parallel(_bias_grad_p, **FAST)


def block_size(n: int, options=(4, 6, 3, 2)) -> int:
    """The first register-block size in ``options`` dividing n (1 if none does: correct, but slow)."""
    return next((b for b in options if n % b == 0), 1)


def pack_weights(w3, OB: int):
    """w3 (O, C, T) -> the forward template's packing: flat [ob, c, t, o_in_block], OB outputs per block."""
    O, C, T = w3.shape
    return np.ascontiguousarray(w3.reshape(O // OB, OB, C, T).transpose(0, 2, 3, 1), dtype=np.float32).reshape(-1)


# ---- tap lists ---------------------------------------------------------------------------------------------------
PHASE_TAPS = ((1, -1), (0, 0), (1, 0))     # stride 2, padding 1: tap i reads phase r at offset d, (r, d) per i


def same_taps(k: int, Wp: int):
    """k x k, stride 1, padding k // 2: tplane (T,), toff (T,) for T = k^2 taps in (i, j) order."""
    i, j = np.divmod(np.arange(k * k), k)
    return np.zeros(k * k, np.int64), ((i - k // 2) * Wp + (j - k // 2)).astype(np.int64)


def stride2_taps(C: int, Wp: int):
    """3 x 3, stride 2, padding 1 on the 4 phases (4 C planes, low-resolution row stride Wp): tplane, toff."""
    r = np.array([PHASE_TAPS[i][0] for i in range(3)])
    d = np.array([PHASE_TAPS[i][1] for i in range(3)])
    i, j = np.divmod(np.arange(9), 3)
    return ((2 * r[i] + r[j]) * C).astype(np.int64), (d[i] * Wp + d[j]).astype(np.int64)


# ---- a convolution on P arrays -------------------------------------------------------------------------------------
class PConv:
    """The convolution of a (O, C, k, k) weight, on P arrays: k = 3 with padding 1 and stride 1 or 2, or k = 1.

    ``lay_in`` / ``lay_out`` are the layouts of the input and output (the same for stride 1; for stride 2 the output
    is at half the resolution, which must be even). forward(X, w, b, Y) writes Y; backward(dY, X, w, dX, dw, db)
    writes the gradients (dX may be None). Stride 2 keeps its input's phases (4 C, L_out) from forward for backward.
    """

    def __init__(self, O: int, C: int, k: int, stride: int, lay_in: PLayout, lay_out: PLayout):
        if (k, stride) not in ((3, 1), (1, 1), (3, 2)):
            raise ValueError(f"PConv supports 3x3 stride 1 or 2 and 1x1 stride 1, got {k}x{k} stride {stride}")
        if stride == 2 and (lay_in.H != 2 * lay_out.H or lay_in.W != 2 * lay_out.W):
            raise ValueError(f"PConv stride 2 needs an even input size: {lay_in} -> {lay_out}")
        self.O, self.C, self.k, self.stride, self.lay_in, self.lay_out = O, C, k, stride, lay_in, lay_out
        lo = lay_out
        if stride == 1:
            self.tplane, self.toff = same_taps(k, lo.Wp)
            taps = [np.arange(k * k)]                       # dX: all taps, read backwards, into one output
        else:
            self.tplane, self.toff = stride2_taps(C, lo.Wp)
            self.Xph = lo.zeros(4 * C)                      # the input's 4 phases, kept for the weight gradient
            self.dXph = lo.zeros(4 * C)
            taps = [np.flatnonzero(self.tplane // C == ph) for ph in range(4)]   # dX: one pass per phase
        # dX tap lists: (taps, input planes (all dY's, plane 0), negated offsets)
        self.dx_taps = [(t, np.zeros(len(t), np.int64), -self.toff[t]) for t in taps]
        self.ob_fwd, self.ob_dx = block_size(O), block_size(C)
        self.ob_w, self.cb_w = block_size(O, (4, 3, 2)), block_size(C, (6, 4, 3, 2))
        self.fwd, self.dx = conv_kernel(self.ob_fwd), conv_kernel(self.ob_dx)     # the serial kernels
        self.wgrad = wgrad_kernel(self.ob_w, self.cb_w)
        self.dw3 = np.zeros((O, C, len(self.toff)), np.float32)
        self.zero_c = np.zeros(C, np.float32)
        self.zero_plane = np.zeros(1, np.int64)

    def _kernels(self):
        """(forward, input-gradient, weight-gradient, bias-gradient kernels, parts of the weight gradient) for the
        threads in use now (tinydiff.threads.kernel_threads): the serial kernels on one thread, else the parallel."""
        n = kernel_threads()
        if n == 1:
            return self.fwd, self.dx, self.wgrad, bias_grad_p, 1
        return (conv_kernel(self.ob_fwd, True), conv_kernel(self.ob_dx, True),
                wgrad_kernel(self.ob_w, self.cb_w, True), bias_grad_p_par, min(n, self.O // self.ob_w))

    def _input(self, X):
        """The array the taps read: X itself (stride 1) or its phases (stride 2)."""
        if self.stride == 1:
            return X
        hi, lo = self.lay_in, self.lay_out
        split_phases(X, self.Xph, lo.B, lo.H, lo.W, hi.M0, hi.S, hi.Wp, lo.M0, lo.S, lo.Wp)
        return self.Xph

    def forward(self, X, w, b, Y):
        """Y (O, L_out) = conv(X (C, L_in)) + b, zero pads. w: (O, C, k, k)."""
        lo, Xin = self.lay_out, self._input(X)
        wp = pack_weights(w.reshape(self.O, self.C, -1), self.ob_fwd)
        forward = self._kernels()[0]
        forward(Xin.reshape(-1), wp, b.astype(np.float32, copy=False), lo.mask, Y.reshape(-1), lo.L, lo.start, lo.end,
                self.C, self.O, self.tplane, self.toff)
        return Y

    def backward(self, dY, X, w, dX, dw, db):
        """From dY (O, L_out): dw (O, C, k, k) and db (O,) overwritten; dX (C, L_in) written unless None.
        X is forward's input (stride 2 uses the phases forward kept instead)."""
        self.backward_weight(dY, X, dw, db)
        return None if dX is None else self.backward_input(dY, w, dX)

    def backward_weight(self, dY, X, dw, db):
        """dw (O, C, k, k) and db (O,) from dY (O, L_out) and forward's input X, overwritten."""
        lo = self.lay_out
        Xin = X if self.stride == 1 else self.Xph
        _, _, wgrad, bias_grad, parts = self._kernels()
        self.dw3[...] = 0
        wgrad(dY.reshape(-1), Xin.reshape(-1), self.dw3, lo.L, lo.start, lo.end, self.C, self.O, self.tplane,
              self.toff, parts)
        dw[...] = self.dw3.reshape(dw.shape)
        bias_grad(dY.reshape(-1), lo.L, lo.start, lo.end, db)
        return dw, db

    def backward_input(self, dY, w, dX):
        """dX (C, L_in) from dY (O, L_out), written (pads stay 0)."""
        lo = self.lay_out
        wt = w.reshape(self.O, self.C, -1).transpose(1, 0, 2)                 # (C, O, T): outputs are inputs now
        dx = self._kernels()[1]
        if self.stride == 1:                                                  # read the tap list backwards
            taps, tplane, toff = self.dx_taps[0]
            dx(dY.reshape(-1), pack_weights(wt, self.ob_dx), self.zero_c, lo.mask, dX.reshape(-1), lo.L,
                    lo.start, lo.end, self.O, self.C, tplane, toff)
            return dX
        for ph, (taps, tplane, toff) in enumerate(self.dx_taps):             # each phase gets its own taps
            out = self.dXph[ph * self.C:(ph + 1) * self.C]
            dx(dY.reshape(-1), pack_weights(wt[:, :, taps], self.ob_dx), self.zero_c, lo.mask, out.reshape(-1),
                    lo.L, lo.start, lo.end, self.O, self.C, tplane, toff)
        hi = self.lay_in
        merge_phases(self.dXph, dX, lo.B, lo.H, lo.W, hi.M0, hi.S, hi.Wp, lo.M0, lo.S, lo.Wp)
        return dX
