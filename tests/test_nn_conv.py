"""Conv2d, Upsample and AvgPool2d: shapes, dtypes, float64 gradient checks and clear errors."""

import numpy as np
import pytest

from tinydiff.nn.conv import AvgPool2d, Conv2d, Upsample
from tinydiff.nn.gradcheck import assert_gradients_ok, check_module
from tinydiff.nn.kernels.conv import conv2d_forward_ref


def _x(shape, seed=11, dtype=np.float64):
    # not seed 0: check_module draws its output projection r from seed 0, and r equal to x is a degenerate test
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# (in, out, kernel, stride, padding, input shape): stride 1/2, padding 0/1, kernel 1/3, non-square, batch > 1
CONV_CONFIGS = [
    (3, 4, 3, 1, 1, (2, 3, 6, 6)),
    (3, 2, 3, 2, 1, (2, 3, 7, 5)),
    (4, 3, 1, 1, 0, (2, 4, 5, 6)),
    (2, 3, 3, 1, 0, (3, 2, 6, 5)),
    (2, 2, 3, 2, 0, (1, 2, 7, 7)),
]


@pytest.mark.parametrize("cin,cout,k,s,p,shape", CONV_CONFIGS)
def test_conv2d_passes_gradient_check(cin, cout, k, s, p, shape):
    conv = Conv2d(cin, cout, k, stride=s, padding=p, rng=0, dtype=np.float64)
    assert_gradients_ok(conv, _x(shape), rtol=1e-7)


def test_conv2d_output_shape_follows_the_formula():
    # Ho = (H + 2p - k) // s + 1
    conv = Conv2d(3, 5, 3, stride=2, padding=1, rng=0)
    y = conv(_x((2, 3, 7, 10), dtype=np.float32))
    assert y.shape == (2, 5, 4, 5)


def test_conv2d_matches_the_reference_formula():
    conv = Conv2d(3, 4, 3, stride=2, padding=1, rng=1, dtype=np.float64)
    x = _x((2, 3, 7, 5))
    y = conv(x)
    ref = conv2d_forward_ref(x, conv.params["weight"], conv.params["bias"], 2, 1, np.empty_like(y))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_keeps_its_dtype(dtype):
    conv = Conv2d(2, 3, 3, padding=1, rng=0, dtype=dtype)
    x = _x((2, 2, 5, 5), dtype=dtype)
    y = conv(x)
    dx = conv.backward(np.ones_like(y))
    assert conv.params["weight"].dtype == y.dtype == dx.dtype == conv.grads["weight"].dtype == dtype


def test_conv2d_backward_writes_gradients_in_place():
    conv = Conv2d(2, 3, 3, padding=1, rng=0)
    before = conv.gradients()
    conv.backward(np.ones_like(conv(_x((2, 2, 4, 4), dtype=np.float32))))
    after = conv.gradients()
    assert all(after[k] is before[k] for k in before)
    assert np.any(after["weight"] != 0)


def test_conv2d_is_reproducible_from_a_seed():
    a, b = Conv2d(2, 3, 3, rng=7), Conv2d(2, 3, 3, rng=7)
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])


def test_conv2d_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="expects 3 input channels"):
        Conv2d(3, 4, 3, rng=0)(_x((2, 4, 6, 6), dtype=np.float32))


def test_conv2d_rejects_missing_batch_axis():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*x\[None\]"):
        Conv2d(3, 4, 3, rng=0)(_x((3, 6, 6), dtype=np.float32))


def test_conv2d_rejects_a_dtype_other_than_its_parameters():
    with pytest.raises(TypeError, match=r"float32 parameters but x is float64.*astype"):
        Conv2d(3, 4, 3, rng=0)(_x((2, 3, 6, 6)))


def test_conv2d_rejects_an_image_smaller_than_the_kernel():
    with pytest.raises(ValueError, match="does not fit"):
        Conv2d(1, 1, 5, rng=0)(_x((1, 1, 3, 3), dtype=np.float32))


def test_conv2d_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="stride"):
        Conv2d(1, 1, 3, stride=0)


def test_gradient_check_catches_a_wrong_conv_backward():
    # the check can fail: a backward that forgets the bias gradient is caught and blamed on "bias"
    conv = Conv2d(2, 2, 3, padding=1, rng=0, dtype=np.float64)
    original = conv.backward

    def broken(dy):
        dx = original(dy)
        conv.grads["bias"][...] = 0.0
        return dx

    conv.backward = broken
    report = check_module(conv, _x((2, 2, 4, 4)), verbose=False)
    assert set(report.failures()) == {"bias"}


# ---- Upsample and AvgPool2d ---------------------------------------------------------------------------------------
def test_upsample_repeats_each_pixel_into_a_block():
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    y = Upsample(2)(x)
    np.testing.assert_array_equal(y[0, 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_passes_gradient_check(scale):
    assert_gradients_ok(Upsample(scale), _x((2, 3, 3, 4)), rtol=1e-7)


def test_avgpool_averages_each_block():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(AvgPool2d(2)(x)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_avgpool_passes_gradient_check():
    assert_gradients_ok(AvgPool2d(2), _x((2, 3, 4, 6)), rtol=1e-7)


@pytest.mark.parametrize("layer", [Upsample(2), AvgPool2d(2)])
def test_resampling_keeps_float32(layer):
    y = layer(_x((1, 2, 4, 4), dtype=np.float32))
    assert y.dtype == layer.backward(np.ones_like(y)).dtype == np.float32


def test_avgpool_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match=r"divisible by 2, got 7x7"):
        AvgPool2d(2)(_x((1, 1, 7, 7)))


def test_upsample_rejects_a_non_integer_scale():
    with pytest.raises(ValueError, match="positive integer"):
        Upsample(1.5)


def test_conv2d_backward_before_forward_says_so():
    with pytest.raises(RuntimeError, match="before forward"):
        Conv2d(1, 1, 3).backward(np.zeros((1, 1, 2, 2), np.float32))
