"""Time the convolution strategies: forward, backward-input (dx) and backward-weight (dw, db), in ms and GFLOP/s.

Also times the GroupNorm kernels against their NumPy references (``bench_groupnorm``).

    python -m tinydiff.bench.conv                 # 3x3, 32->32 channels, 28x28, batch 64, float32
    python -m tinydiff.bench.conv --quick         # small sizes, seconds
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m tinydiff.bench.conv --threads 1 2

Strategies (the first three are the library's; the NHWC ones live only here, as the measured alternatives):

    im2col+BLAS NCHW   kernels/conv.py: Numba im2col into (B, C k k, Ho Wo), then one GEMM per image   <- Conv2d uses this
    direct NCHW        kernels/conv.py: the seven nested loops of the formula, innermost over output columns
    numpy reference    kernels/conv.py: sliding_window_view + einsum (optimize=True, so it also ends in BLAS)
    im2col+BLAS NHWC   rows (B Ho Wo, k k C): each patch row is k*k contiguous runs of C; one big GEMM
    direct NHWC        loops with the output channel innermost (a contiguous vector of O): vectorises well

A convolution's forward costs 2 B O Ho Wo C kh kw flops; each backward costs the same. NHWC timings take the arrays
already in NHWC (a model would keep that layout throughout); the NCHW<->NHWC transpose costs ~0.5 ms per tensor here.
Numba kernels are serial; only BLAS uses ``--threads`` (threadpoolctl), so the two thread pools never fight.
"""

from __future__ import annotations

import argparse

import numpy as np
from numba import njit

from tinydiff.bench.machine import machine_report
from tinydiff.bench.timing import median_ms
from tinydiff.nn.kernels import conv as K
from tinydiff.nn.kernels.jit import FAST
from tinydiff.threads import blas_thread_count, blas_threads


# ---- the NHWC alternatives ---------------------------------------------------------------------------------------
@njit(**FAST)
def im2col_nhwc(x, kh, kw, stride, padding, cols):
    """x: (B, H, W, C) -> cols: (B*Ho*Wo, kh*kw*C), cols[(b, m, n), (i, j, c)] = x[b, m s - p + i, n s - p + j, c]."""
    B, H, W, C = x.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    for b in range(B):
        for m in range(Ho):
            for n in range(Wo):
                row = (b * Ho + m) * Wo + n
                for i in range(kh):
                    h = m * stride - padding + i
                    for j in range(kw):
                        v = n * stride - padding + j
                        base = (i * kw + j) * C
                        inside = 0 <= h < H and 0 <= v < W
                        for c in range(C):
                            cols[row, base + c] = x[b, h, v, c] if inside else 0.0
    return cols


@njit(**FAST)
def col2im_nhwc(cols, kh, kw, stride, padding, dx):
    """The adjoint of ``im2col_nhwc``: cols (B*Ho*Wo, kh*kw*C) -> dx (B, H, W, C)."""
    B, H, W, C = dx.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    dx[...] = 0.0
    for b in range(B):
        for m in range(Ho):
            for n in range(Wo):
                row = (b * Ho + m) * Wo + n
                for i in range(kh):
                    h = m * stride - padding + i
                    for j in range(kw):
                        v = n * stride - padding + j
                        if 0 <= h < H and 0 <= v < W:
                            base = (i * kw + j) * C
                            for c in range(C):
                                dx[b, h, v, c] += cols[row, base + c]
    return dx


@njit(**FAST)
def conv2d_forward_direct_nhwc(x, w, bias, stride, padding, y):
    """x: (B, H, W, C), w: (kh, kw, C, O), y: (B, Ho, Wo, O); innermost loop over the O output channels."""
    B, H, W, C = x.shape
    kh, kw, _, O = w.shape
    Ho, Wo = y.shape[1], y.shape[2]
    for b in range(B):
        for m in range(Ho):
            for n in range(Wo):
                for o in range(O):
                    y[b, m, n, o] = bias[o]
                for i in range(kh):
                    h = m * stride - padding + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(kw):
                        v = n * stride - padding + j
                        if v < 0 or v >= W:
                            continue
                        for c in range(C):
                            xv = x[b, h, v, c]
                            for o in range(O):
                                y[b, m, n, o] += xv * w[i, j, c, o]
    return y


@njit(**FAST)
def conv2d_backward_weight_direct_nhwc(dy, x, stride, padding, dw, dbias):
    """dw[i, j, c, o] = sum x[b, h, v, c] dy[b, m, n, o]; innermost loop over o."""
    B, H, W, C = x.shape
    kh, kw, _, O = dw.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    dw[...] = 0.0
    dbias[...] = 0.0
    for b in range(B):
        for m in range(Ho):
            for n in range(Wo):
                for o in range(O):
                    dbias[o] += dy[b, m, n, o]
                for i in range(kh):
                    h = m * stride - padding + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(kw):
                        v = n * stride - padding + j
                        if v < 0 or v >= W:
                            continue
                        for c in range(C):
                            xv = x[b, h, v, c]
                            for o in range(O):
                                dw[i, j, c, o] += xv * dy[b, m, n, o]
    return dw, dbias


@njit(**FAST)
def conv2d_backward_input_direct_nhwc(dy, w, stride, padding, dx):
    """dx[b, h, v, c] = sum_o w[i, j, c, o] dy[b, m, n, o]: a dot product over the contiguous o axis."""
    B, H, W, C = dx.shape
    kh, kw, _, O = w.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    dx[...] = 0.0
    for b in range(B):
        for m in range(Ho):
            for n in range(Wo):
                for i in range(kh):
                    h = m * stride - padding + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(kw):
                        v = n * stride - padding + j
                        if v < 0 or v >= W:
                            continue
                        for c in range(C):
                            acc = 0.0
                            for o in range(O):
                                acc += w[i, j, c, o] * dy[b, m, n, o]
                            dx[b, h, v, c] += acc
    return dx


# ---- the benchmark -----------------------------------------------------------------------------------------------
def _strategies(x, w, bias, dy, stride, padding):
    """name -> (forward, backward_input, backward_weight) closures, each preallocating its buffers."""
    B, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = dy.shape[2:]
    y, dx, dw, db = np.empty_like(dy), np.empty_like(x), np.empty_like(w), np.empty_like(bias)
    cols = np.empty((B, C * kh * kw, Ho * Wo), x.dtype)
    dcols = np.empty_like(cols)
    K.im2col_numba(x, kh, kw, stride, padding, cols)
    # NHWC copies of the same problem
    xn, dyn = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
    wn = np.ascontiguousarray(w.transpose(2, 3, 1, 0))                      # (kh, kw, C, O)
    w2n = wn.reshape(kh * kw * C, O)                                        # (kh kw C, O)
    yn, dxn, dwn = np.empty_like(dyn), np.empty_like(xn), np.empty_like(wn)
    colsn = np.empty((B * Ho * Wo, kh * kw * C), x.dtype)
    dcolsn = np.empty_like(colsn)
    im2col_nhwc(xn, kh, kw, stride, padding, colsn)
    dy2n = dyn.reshape(-1, O)                                               # (B Ho Wo, O)

    def nhwc_forward():
        im2col_nhwc(xn, kh, kw, stride, padding, colsn)
        np.matmul(colsn, w2n, out=yn.reshape(-1, O))
        yn.reshape(-1, O)[...] += bias

    def nhwc_backward_input():
        np.matmul(dy2n, w2n.T, out=dcolsn)
        col2im_nhwc(dcolsn, kh, kw, stride, padding, dxn)

    def nhwc_backward_weight():
        np.matmul(colsn.T, dy2n, out=dwn.reshape(-1, O))
        db[...] = dy2n.sum(axis=0)

    return {
        "im2col+BLAS NCHW": (
            lambda: K.conv2d_forward_im2col(x, w, bias, stride, padding, y, cols),
            lambda: K.conv2d_backward_input_im2col(dy, w, stride, padding, dx, dcols),
            lambda: K.conv2d_backward_weight_im2col(dy, cols, dw, db)),
        "im2col+BLAS NHWC": (nhwc_forward, nhwc_backward_input, nhwc_backward_weight),
        "direct NCHW": (
            lambda: K.conv2d_forward_numba(x, w, bias, stride, padding, y),
            lambda: K.conv2d_backward_input_numba(dy, w, stride, padding, dx),
            lambda: K.conv2d_backward_weight_numba(dy, x, stride, padding, dw, db)),
        "direct NHWC": (
            lambda: conv2d_forward_direct_nhwc(xn, wn, bias, stride, padding, yn),
            lambda: conv2d_backward_input_direct_nhwc(dyn, wn, stride, padding, dxn),
            lambda: conv2d_backward_weight_direct_nhwc(dyn, xn, stride, padding, dwn, db)),
        "numpy reference": (
            lambda: K.conv2d_forward_ref(x, w, bias, stride, padding, y),
            lambda: K.conv2d_backward_input_ref(dy, w, stride, padding, dx),
            lambda: K.conv2d_backward_weight_ref(dy, x, stride, padding, dw, db)),
    }


def bench_conv(B=64, C=32, O=32, H=28, W=28, k=3, stride=1, padding=1, dtype=np.float32, repeats=5,
               threads=(1,), strategies=None, seed=0) -> list[dict]:
    """Time every strategy (or those named in ``strategies``) with BLAS limited to each count in ``threads``.

    Returns rows ``{"strategy", "threads", "threads_used", "pass", "ms", "gflops"}``, pass in ("forward",
    "backward-input", "backward-weight"); ``threads`` is the limit asked for, ``threads_used`` what BLAS reported
    inside the timed block (threadpoolctl; None if unknown). The flop count is 2 B O Ho Wo C k^2 for each pass.
    """
    rng = np.random.default_rng(seed)
    Ho, Wo = K.conv_output_size(H, k, stride, padding), K.conv_output_size(W, k, stride, padding)
    x = rng.standard_normal((B, C, H, W)).astype(dtype)
    w = (rng.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(dtype)
    bias = np.zeros(O, dtype)
    dy = rng.standard_normal((B, O, Ho, Wo)).astype(dtype)
    gflop = 2.0 * B * O * Ho * Wo * C * k * k / 1e9
    table = _strategies(x, w, bias, dy, stride, padding)
    rows = []
    for n in threads:
        with blas_threads(n):
            used = blas_thread_count()
            for name, fns in table.items():
                if strategies and name not in strategies:
                    continue
                for pass_name, fn in zip(("forward", "backward-input", "backward-weight"), fns):
                    ms = median_ms(fn, repeats)
                    rows.append({"strategy": name, "threads": n, "threads_used": used, "pass": pass_name, "ms": ms,
                                 "gflops": gflop / ms * 1e3})
    return rows


def bench_groupnorm(B=64, C=32, H=28, W=28, num_groups=8, dtype=np.float32, repeats=5, seed=0) -> dict:
    """Median ms of GroupNorm forward and backward: the Numba kernels against their NumPy references.

    Returns ``{"numba": (forward_ms, backward_ms), "numpy": (forward_ms, backward_ms)}``.
    """
    from tinydiff.nn.kernels import groupnorm as G

    rng = np.random.default_rng(seed)
    x, dy = (rng.standard_normal((B, C, H, W)).astype(dtype) for _ in range(2))
    gamma, beta = np.ones(C, dtype), np.zeros(C, dtype)
    y, xhat, rstd = np.empty_like(x), np.empty_like(x), np.empty((B, num_groups), dtype)
    dx, dgamma, dbeta = np.empty_like(x), np.empty_like(gamma), np.empty_like(gamma)
    out = {}
    for name, fwd, bwd in [("numba", G.groupnorm_forward_numba, G.groupnorm_backward_numba),
                           ("numpy", G.groupnorm_forward_ref, G.groupnorm_backward_ref)]:
        out[name] = (median_ms(lambda: fwd(x, gamma, beta, num_groups, 1e-5, y, xhat, rstd), repeats),
                     median_ms(lambda: bwd(dy, xhat, rstd, gamma, num_groups, dx, dgamma, dbeta), repeats))
    return out


def format_table(rows: list[dict]) -> str:
    """A Markdown table: one line per (strategy, BLAS threads), ms and GFLOP/s for each pass.

    The threads column is the count BLAS reported while the row was timed (with the limit asked for, if different)."""
    lines = ["| strategy | BLAS threads in use | forward ms (GFLOP/s) | backward-input ms (GFLOP/s) | backward-weight ms (GFLOP/s) |",
             "| --- | --- | --- | --- | --- |"]
    keys = list(dict.fromkeys((r["strategy"], r["threads"]) for r in rows))
    for name, n in keys:
        mine = [r for r in rows if (r["strategy"], r["threads"]) == (name, n)]
        used = mine[0].get("threads_used", n)
        shown = "unknown" if used is None else f"{used}" if used == n else f"{used} (asked {n})"
        cells = [f"{r['ms']:.1f} ({r['gflops']:.0f})" for r in mine]
        lines.append(f"| {name} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 4 and 2 repeats: a smoke test")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="BLAS thread counts to try (default: 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--float64", action="store_true")
    args = p.parse_args(argv)
    B, repeats = (4, 2) if args.quick else (64, args.repeats)
    dtype = np.float64 if args.float64 else np.float32
    print(f"conv 3x3, 32->32 channels, 28x28, batch {B}, {np.dtype(dtype).name}; "
          f"{2 * B * 32 * 28 * 28 * 32 * 9 / 1e9:.3f} GFLOP per pass")
    print("\n".join(machine_report()))
    print(format_table(bench_conv(B=B, dtype=dtype, repeats=repeats, threads=args.threads)))
    gn = bench_groupnorm(B=B, dtype=dtype, repeats=repeats)
    print(f"GroupNorm(8, 32) on ({B}, 32, 28, 28): forward / backward ms: numba {gn['numba'][0]:.2f} / "
          f"{gn['numba'][1]:.2f}, numpy reference {gn['numpy'][0]:.2f} / {gn['numpy'][1]:.2f}")


if __name__ == "__main__":
    main()
