"""GroupNorm: the normalisation formula, gradient checks for several group counts, dtypes and errors."""

import numpy as np
import pytest

from tinydiff.nn.gradcheck import assert_gradients_ok
from tinydiff.nn.norm import GroupNorm


def _x(shape, seed=11, dtype=np.float64):
    # not seed 0: check_module draws its output projection r from seed 0, and r = (x - 1.5) / 2 would make
    # a normalisation layer's input gradient vanish by coincidence
    return (1.5 + 2.0 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def _random_affine(gn, seed=1):
    rng = np.random.default_rng(seed)
    gn.params["weight"][...] = rng.standard_normal(gn.num_channels)
    gn.params["bias"][...] = rng.standard_normal(gn.num_channels)
    return gn


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_groupnorm_matches_the_direct_formula(groups):
    # xhat = (x - mean) / sqrt(var + eps) over (C/G, H, W) of each image, then y = weight * xhat + bias
    gn = _random_affine(GroupNorm(groups, 4, dtype=np.float64))
    x = _x((3, 4, 5, 6))
    xg = x.reshape(3, groups, -1)
    xhat = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    expected = gn.params["weight"][:, None, None] * xhat + gn.params["bias"][:, None, None]
    np.testing.assert_allclose(gn(x), expected, rtol=1e-12, atol=1e-12)


def test_groupnorm_output_has_zero_mean_unit_variance_per_group_before_the_affine():
    y = GroupNorm(2, 6, dtype=np.float64)(_x((2, 6, 4, 4)))
    yg = y.reshape(2, 2, -1)
    np.testing.assert_allclose(yg.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(yg.var(-1), 1, atol=1e-4)     # eps makes it slightly below 1


def test_groupnorm_never_mixes_images_in_a_batch():
    gn, x = GroupNorm(2, 4, dtype=np.float64), _x((3, 4, 3, 3))
    np.testing.assert_allclose(gn(x)[1:2], gn(x[1:2]), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("groups,channels", [(1, 4), (2, 4), (4, 4), (3, 6)])
def test_groupnorm_passes_gradient_check(groups, channels):
    gn = _random_affine(GroupNorm(groups, channels, dtype=np.float64))
    assert_gradients_ok(gn, _x((2, channels, 3, 4)), rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_groupnorm_keeps_its_dtype(dtype):
    gn = GroupNorm(2, 4, dtype=dtype)
    y = gn(_x((2, 4, 3, 3), dtype=dtype))
    assert y.dtype == gn.backward(np.ones_like(y)).dtype == gn.grads["weight"].dtype == dtype


def test_groupnorm_float32_agrees_with_float64():
    x = _x((2, 4, 5, 5))
    y64 = GroupNorm(2, 4, dtype=np.float64)(x)
    y32 = GroupNorm(2, 4, dtype=np.float32)(x.astype(np.float32))
    np.testing.assert_allclose(y32, y64, atol=1e-5)


def test_groupnorm_rejects_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"divisible by num_groups \(4\).*Divisors of 6"):
        GroupNorm(4, 6)


def test_groupnorm_rejects_the_wrong_channel_count():
    with pytest.raises(ValueError, match="expects 4 input channels"):
        GroupNorm(2, 4, dtype=np.float64)(_x((2, 6, 3, 3)))
