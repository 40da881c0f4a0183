"""Convolution kernels: im2col + BLAS (the fast path), direct loops (the readable alternative), NumPy references.

A 2-D convolution (really a cross-correlation, as in every deep-learning library) with stride s and zero padding p:

    y[b, o, m, n] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[b, c, m*s - p + i, n*s - p + j]        (1)

    x: (B, C, H, W)   w: (O, C, kh, kw)   bias: (O,)   y: (B, O, Ho, Wo),   Ho = (H + 2p - kh) // s + 1

Its two backward passes follow from (1) by the chain rule:

    dw[o, c, i, j] = sum_{b, m, n} dy[b, o, m, n] * x[b, c, m*s - p + i, n*s - p + j]                 (2)
    dbias[o]       = sum_{b, m, n} dy[b, o, m, n]                                                      (3)
    dx[b, c, h, v] = sum over (o, i, j, m, n) with m*s - p + i = h and n*s - p + j = v
                     of w[o, c, i, j] * dy[b, o, m, n]                                                  (4)

im2col copies every receptive field into a column, ``cols[b, (c, i, j), (m, n)] = x[b, c, m*s-p+i, n*s-p+j]``,
so that (1)-(4) become matrix products that BLAS runs near peak speed:

    y[b]  = W2 @ cols[b] + bias          W2 = w.reshape(O, C*kh*kw)                                    (1')
    dW2   = sum_b dy[b] @ cols[b]^T                                                                     (2')
    dcols[b] = W2^T @ dy[b],  dx = col2im(dcols)   (col2im adds each column back where it came from)    (4')

Which strategy is fastest was measured, not assumed: see ``tinydiff/bench/conv.py`` and docs/performance.md
("Convolution"). Names: ``im2col_numba``/``im2col_ref``, ``col2im_numba``/``col2im_ref``; the direct loops are the
Numba kernels of each pass (``conv2d_forward_numba``, ``conv2d_backward_weight_numba``, ``conv2d_backward_input_numba``)
beside their NumPy references (``conv2d_*_ref``: sliding_window_view + einsum); ``conv2d_*_im2col`` is the im2col +
BLAS path that ``Conv2d`` runs. tests/test_kernels_conv.py checks that they agree in float32 and float64. Set ``NUMBA_DISABLE_JIT=1`` to step through the kernels in a debugger.
Kernels write into a preallocated output (last argument) and return it; they are serial (no prange), so they never
fight OpenBLAS's threads for the cores.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from tinydiff.nn.kernels.jit import FAST



def conv_output_size(n: int, k: int, stride: int, padding: int) -> int:
    """Output length along one axis: (n + 2p - k) // s + 1."""
    return (n + 2 * padding - k) // stride + 1


# ---- im2col / col2im --------------------------------------------------------------------------------------------
@njit(**FAST)
def im2col_numba(x, kh, kw, stride, padding, cols):
    """cols[b, (c*kh + i)*kw + j, m*Wo + n] = x[b, c, m*s - p + i, n*s - p + j] (0 outside the image).

    x: (B, C, H, W) -> cols: (B, C*kh*kw, Ho*Wo), written in place and returned.
    """
    B, C, H, W = x.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    for b in range(B):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    r = (c * kh + i) * kw + j
                    for m in range(Ho):
                        h = m * stride - padding + i
                        for n in range(Wo):
                            v = n * stride - padding + j
                            if 0 <= h < H and 0 <= v < W:
                                cols[b, r, m * Wo + n] = x[b, c, h, v]
                            else:
                                cols[b, r, m * Wo + n] = 0.0
    return cols


def im2col_ref(x, kh, kw, stride, padding, cols):
    """NumPy reference for ``im2col``: pad, take sliding windows, reorder. Same signature and result."""
    B, C = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]  # (B, C, Ho, Wo, kh, kw)
    Ho, Wo = win.shape[2:4]
    cols[...] = win.transpose(0, 1, 4, 5, 2, 3).reshape(B, C * kh * kw, Ho * Wo)    # (B, C*kh*kw, Ho*Wo)
    return cols


@njit(**FAST)
def col2im_numba(cols, kh, kw, stride, padding, dx):
    """The adjoint of ``im2col``: dx[b, c, h, v] = sum of every cols entry that was copied from x[b, c, h, v].

    cols: (B, C*kh*kw, Ho*Wo) -> dx: (B, C, H, W), overwritten and returned.
    """
    B, C, H, W = dx.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    dx[...] = 0.0
    for b in range(B):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    r = (c * kh + i) * kw + j
                    for m in range(Ho):
                        h = m * stride - padding + i
                        if h < 0 or h >= H:
                            continue
                        for n in range(Wo):
                            v = n * stride - padding + j
                            if 0 <= v < W:
                                dx[b, c, h, v] += cols[b, r, m * Wo + n]
    return dx


def col2im_ref(cols, kh, kw, stride, padding, dx):
    """NumPy reference for ``col2im``: add each kernel offset's slab back into a padded image. Same signature."""
    B, C, H, W = dx.shape
    Ho, Wo = conv_output_size(H, kh, stride, padding), conv_output_size(W, kw, stride, padding)
    c6 = cols.reshape(B, C, kh, kw, Ho, Wo)
    dxp = np.zeros((B, C, H + 2 * padding, W + 2 * padding), dtype=dx.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] += c6[:, :, i, j]
    dx[...] = dxp[:, :, padding:padding + H, padding:padding + W]
    return dx


# ---- the fast path: im2col + BLAS (numpy's matmul) ------------------------------------------------------------
def conv2d_forward_im2col(x, w, bias, stride, padding, y, cols):
    """Equation (1'): y = W2 @ im2col(x) + bias. Fills ``cols`` (B, C*kh*kw, Ho*Wo), which backward reuses."""
    B, O, Ho, Wo = y.shape
    im2col_numba(x, w.shape[2], w.shape[3], stride, padding, cols)
    y3 = y.reshape(B, O, Ho * Wo)                                 # (B, O, Ho*Wo), a view of y
    np.matmul(w.reshape(O, -1), cols, out=y3)                     # one GEMM per image
    y3 += bias[:, None]
    return y


def conv2d_backward_weight_im2col(dy, cols, dw, dbias):
    """Equations (2') and (3) from the forward's columns: dW2 = sum_b dy[b] @ cols[b]^T, dbias = sum dy."""
    B, O, Ho, Wo = dy.shape
    dy3 = dy.reshape(B, O, Ho * Wo)                               # (B, O, Ho*Wo)
    dw.reshape(O, -1)[...] = np.matmul(dy3, cols.transpose(0, 2, 1)).sum(axis=0)  # (O, C*kh*kw)
    dbias[...] = dy3.sum(axis=(0, 2))
    return dw, dbias


def conv2d_backward_input_im2col(dy, w, stride, padding, dx, dcols):
    """Equation (4'): dcols = W2^T @ dy, then col2im adds the columns back into dx (B, C, H, W)."""
    B, O, Ho, Wo = dy.shape
    np.matmul(w.reshape(O, -1).T, dy.reshape(B, O, Ho * Wo), out=dcols)  # (B, C*kh*kw, Ho*Wo)
    return col2im_numba(dcols, w.shape[2], w.shape[3], stride, padding, dx)


# ---- direct loops: equations (1), (2)-(3) and (4) written out --------------------------------------------------
@njit(**FAST)
def conv2d_forward_numba(x, w, bias, stride, padding, y):
    """Equation (1) as loops. x: (B, C, H, W), w: (O, C, kh, kw), bias: (O,) -> y: (B, O, Ho, Wo)."""
    B, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = y.shape[2], y.shape[3]
    for b in range(B):
        for o in range(O):
            y[b, o] = bias[o]
            for c in range(C):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[o, c, i, j]
                        for m in range(Ho):
                            h = m * stride - padding + i
                            if h < 0 or h >= H:
                                continue
                            for n in range(Wo):
                                v = n * stride - padding + j
                                if 0 <= v < W:
                                    y[b, o, m, n] += wv * x[b, c, h, v]
    return y


@njit(**FAST)
def conv2d_backward_weight_numba(dy, x, stride, padding, dw, dbias):
    """Equations (2) and (3) as loops. dy: (B, O, Ho, Wo), x: (B, C, H, W) -> dw: (O, C, kh, kw), dbias: (O,)."""
    B, C, H, W = x.shape
    O, _, kh, kw = dw.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    ### BEGIN SOLUTION ex5_3: conv2d backward — the loops of dw, dbias (equations 2-3) and of dx (equation 4) in the two Numba kernels (chapter 5, 4 points)
    # fills: dw (O, C, kh, kw) and dbias (O,) in place (overwrite, do not add to old values)
    dw[...] = 0.0
    dbias[...] = 0.0
    for b in range(B):
        for o in range(O):
            for m in range(Ho):
                for n in range(Wo):
                    dbias[o] += dy[b, o, m, n]
            for c in range(C):
                for i in range(kh):
                    for j in range(kw):
                        acc = 0.0
                        for m in range(Ho):
                            h = m * stride - padding + i
                            if h < 0 or h >= H:
                                continue
                            for n in range(Wo):
                                v = n * stride - padding + j
                                if 0 <= v < W:
                                    acc += dy[b, o, m, n] * x[b, c, h, v]
                        dw[o, c, i, j] += acc
    ### END SOLUTION
    return dw, dbias


@njit(**FAST)
def conv2d_backward_input_numba(dy, w, stride, padding, dx):
    """Equation (4) as loops: scatter w[o, c, i, j] * dy[b, o, m, n] back to the pixel it came from."""
    B, C, H, W = dx.shape
    O, _, kh, kw = w.shape
    Ho, Wo = dy.shape[2], dy.shape[3]
    ### BEGIN SOLUTION ex5_3
    # fills: dx (B, C, H, W) in place (overwrite, do not add to old values)
    dx[...] = 0.0
    for b in range(B):
        for o in range(O):
            for c in range(C):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[o, c, i, j]
                        for m in range(Ho):
                            h = m * stride - padding + i
                            if h < 0 or h >= H:
                                continue
                            for n in range(Wo):
                                v = n * stride - padding + j
                                if 0 <= v < W:
                                    dx[b, c, h, v] += wv * dy[b, o, m, n]
    ### END SOLUTION
    return dx


# ---- NumPy references (sliding_window_view + einsum), same signatures as the direct kernels --------------------
def _windows(x, kh, kw, stride, padding):
    """All receptive fields of x as a strided view: (B, C, Ho, Wo, kh, kw). No copy except the padding."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d_forward_ref(x, w, bias, stride, padding, y):
    """Equation (1) with einsum over the sliding windows."""
    win = _windows(x, w.shape[2], w.shape[3], stride, padding)   # (B, C, Ho, Wo, kh, kw)
    y[...] = np.einsum("bcmnij,ocij->bomn", win, w, optimize=True) + bias[:, None, None]
    return y


def conv2d_backward_weight_ref(dy, x, stride, padding, dw, dbias):
    """Equations (2) and (3) with einsum over the sliding windows."""
    win = _windows(x, dw.shape[2], dw.shape[3], stride, padding)  # (B, C, Ho, Wo, kh, kw)
    dw[...] = np.einsum("bcmnij,bomn->ocij", win, dy, optimize=True)
    dbias[...] = dy.sum(axis=(0, 2, 3))
    return dw, dbias


def conv2d_backward_input_ref(dy, w, stride, padding, dx):
    """Equation (4): for each kernel offset (i, j), add w[:, :, i, j]^T dy into the strided slab it read."""
    B, C, H, W = dx.shape
    kh, kw = w.shape[2:]
    Ho, Wo = dy.shape[2:]
    dxp = np.zeros((B, C, H + 2 * padding, W + 2 * padding), dtype=dx.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] += np.einsum("bomn,oc->bcmn", dy, w[:, :, i, j])
    dx[...] = dxp[:, :, padding:padding + H, padding:padding + W]
    return dx
