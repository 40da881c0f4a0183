"""Image layers on (B, C, H, W) arrays: Conv2d, nearest-neighbour Upsample, AvgPool2d.

Conv2d computes (cross-correlation, as every deep-learning library does)

    y[b, o, m, n] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * x[b, c, m*s - p + i, n*s - p + j]

with im2col + BLAS (``kernels/conv.py`` derives the backward passes and holds the direct-loop and NumPy versions).
A stride-2 Conv2d downsamples; ``Upsample(2)`` followed by a 3x3 Conv2d upsamples (the DDPM U-Net's choice, which avoids
the checkerboard artefacts of transposed convolutions; Odena et al. 2016).
"""

from __future__ import annotations

import numpy as np

from tinydiff.nn.init import uniform_fan_in
from tinydiff.nn.kernels.conv import (
    conv2d_backward_input_im2col,
    conv2d_backward_weight_im2col,
    conv2d_forward_im2col,
    conv_output_size,
)
from tinydiff.nn.module import Module
from tinydiff.rng import make_rng


def check_image(layer: str, x, channels: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a (B, C, H, W) array with ``channels`` channels (layers then check its
    dtype with ``Module.check_dtype``)."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(
            f"{layer} expects an image batch of shape (B, C, H, W), got {shape}. "
            "For a single image use x[None]; for a grey-scale (B, H, W) batch use x[:, None]."
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{layer} expects {channels} input channels but x has shape {x.shape} ({x.shape[1]} channels). "
            "Is the batch in (B, H, W, C) order? Use x.transpose(0, 3, 1, 2)."
        )


# ---- Conv2d ----------------------------------------------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution. x: (B, C_in, H, W) -> y: (B, C_out, Ho, Wo), Ho = (H + 2 padding - kh) // stride + 1.

    Parameters: ``weight`` (C_out, C_in, kh, kw) and ``bias`` (C_out,), both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = C_in kh kw (PyTorch's default). Cache: the input's shape and its im2col columns (B, C_in kh kw, Ho Wo),
    which give dweight with one matrix product; the column buffers are reused between calls of the same shape.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None, dtype=np.float32):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        if min(in_channels, out_channels, kh, kw, stride) < 1 or padding < 0:
            raise ValueError(
                f"Conv2d needs positive channels, kernel size and stride and padding >= 0, got in_channels="
                f"{in_channels}, out_channels={out_channels}, kernel_size={kernel_size}, stride={stride}, padding={padding}"
            )
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, np.dtype(dtype)
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        rng = make_rng(rng)
        fan_in = in_channels * kh * kw
        self.add_param("weight", uniform_fan_in((out_channels, in_channels, kh, kw), fan_in, rng, dtype))
        self.add_param("bias", uniform_fan_in((out_channels,), fan_in, rng, dtype))
        self._cols = None   # (B, C_in*kh*kw, Ho*Wo): im2col(x) from the last forward
        self._dcols = None  # same shape: scratch for backward
        self._x_shape = None

    def output_shape(self, x_shape):
        """(B, C_out, Ho, Wo) for an input of shape (B, C_in, H, W)."""
        B, _, H, W = x_shape
        (kh, kw), s, p = self.kernel_size, self.stride, self.padding
        return B, self.out_channels, conv_output_size(H, kh, s, p), conv_output_size(W, kw, s, p)

    def forward(self, x):
        w, b = self.params["weight"], self.params["bias"]
        check_image("Conv2d", x, self.in_channels)
        x = self.check_dtype(x)
        B, O, Ho, Wo = self.output_shape(x.shape)
        if Ho < 1 or Wo < 1:
            raise ValueError(
                f"Conv2d with kernel {self.kernel_size}, padding {self.padding} does not fit an input of "
                f"{x.shape[2]}x{x.shape[3]} pixels: add padding or use a smaller kernel."
            )
        cols_shape = (B, self.in_channels * self.kernel_size[0] * self.kernel_size[1], Ho * Wo)
        if self._cols is None or self._cols.shape != cols_shape or self._cols.dtype != w.dtype:
            self._cols = np.empty(cols_shape, dtype=w.dtype)
            self._dcols = None
        self._x_shape = x.shape
        y = np.empty((B, O, Ho, Wo), dtype=w.dtype)
        return conv2d_forward_im2col(np.ascontiguousarray(x), w, b, self.stride, self.padding, y, self._cols)

    def backward(self, grad_output, input_grad: bool = True):
        """dL/dy -> dL/dx; fills the weight and bias gradients. ``input_grad=False`` returns None and skips dx (the
        GEMM W^T dy and col2im): a first layer, whose input is the data, needs no dx."""
        if self._x_shape is None:
            raise RuntimeError("Conv2d.backward called before forward")
        w = self.params["weight"]
        dy = np.ascontiguousarray(grad_output, dtype=w.dtype)
        if dy.shape != self.output_shape(self._x_shape):
            raise ValueError(f"Conv2d.backward: grad_output has shape {dy.shape}, expected the forward output's "
                             f"shape {self.output_shape(self._x_shape)}")
        conv2d_backward_weight_im2col(dy, self._cols, self.grads["weight"], self.grads["bias"])
        if not input_grad:
            return None
        if self._dcols is None:
            self._dcols = np.empty_like(self._cols)
        dx = np.empty(self._x_shape, dtype=w.dtype)
        return conv2d_backward_input_im2col(dy, w, self.stride, self.padding, dx, self._dcols)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


# ---- resampling --------------------------------------------------------------------------------------------------
class Upsample(Module):
    """Nearest-neighbour upsampling by an integer ``scale``: y[b, c, h, w] = x[b, c, h // s, w // s].

    Backward: each input pixel was copied to an s x s block, so dx is the sum of dy over that block.
    x: (B, C, H, W) -> y: (B, C, s H, s W). No parameters.
    """

    def __init__(self, scale: int = 2):
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise ValueError(f"Upsample scale must be a positive integer, got {scale}")
        self.scale = int(scale)

    def forward(self, x):
        check_image("Upsample", x)
        s = self.scale
        return x.repeat(s, axis=2).repeat(s, axis=3)                   # (B, C, s H, s W)

    def backward(self, grad_output):
        B, C, Hs, Ws = grad_output.shape
        s = self.scale
        return grad_output.reshape(B, C, Hs // s, s, Ws // s, s).sum(axis=(3, 5))  # (B, C, H, W)

    def extra_repr(self):
        return f"scale={self.scale}"


class AvgPool2d(Module):
    """Average over non-overlapping k x k blocks: y[b, c, m, n] = mean of x[b, c, k m : k m + k, k n : k n + k].

    Backward: each input pixel contributed 1/k^2 of one output, so dx = dy / k^2 copied over the block.
    x: (B, C, H, W) with H and W divisible by k -> y: (B, C, H / k, W / k). No parameters.
    """

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        if int(kernel_size) != kernel_size or kernel_size < 1:
            raise ValueError(f"AvgPool2d kernel_size must be a positive integer, got {kernel_size}")
        self.kernel_size = int(kernel_size)

    def forward(self, x):
        check_image("AvgPool2d", x)
        B, C, H, W = x.shape
        k = self.kernel_size
        if H % k or W % k:
            raise ValueError(
                f"AvgPool2d({k}) needs H and W divisible by {k}, got {H}x{W}. "
                f"Pad or crop the image first, or downsample with Conv2d(..., stride={k}, padding=1) instead."
            )
        return x.reshape(B, C, H // k, k, W // k, k).mean(axis=(3, 5))  # (B, C, H/k, W/k)

    def backward(self, grad_output):
        k = self.kernel_size
        dx = grad_output.repeat(k, axis=2).repeat(k, axis=3)           # (B, C, H, W)
        dx /= k * k
        return dx

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}"
