"""Specifications of the UNet denoiser: shapes, the conditioning contract, float64 gradient checks on tiny instances."""

import numpy as np
import pytest

from tinydiff.models.unet import UNet, UNetConfig
from tinydiff.nn import assert_gradients_ok


def tiny(dtype=np.float64, **kw):
    """Base 8 channels, 2 GroupNorm groups (4x4 inputs): small enough for finite differences on every parameter."""
    fields = dict(base_channels=8, channel_mults=(1, 2), num_groups=2, emb_dim=16)
    fields.update(kw)
    return UNet(UNetConfig(**fields), rng=0, dtype=dtype)


def inputs(B=2, H=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, 1, H, H)), np.array([3, 70])[:B]


# a few seeded coordinates of each of the ~100-170 tensors: every tensor is checked, in seconds
FEW = dict(max_coords=5)


def test_output_has_the_shape_of_the_input_for_mnist():
    model = UNet(UNetConfig(base_channels=8, num_groups=2, emb_dim=16))
    x = np.zeros((3, 1, 28, 28), dtype=np.float32)
    assert model(x, np.array([0, 5, 999])).shape == (3, 1, 28, 28)


def test_default_config_is_within_the_parameter_budget():
    n = UNet(UNetConfig(num_classes=10)).num_parameters()
    assert 300_000 <= n <= 1_500_000


def test_gradient_check_unconditional_two_levels_with_attention():
    x, t = inputs()
    assert_gradients_ok(tiny(), x, t, **FEW)


def test_gradient_check_three_levels_two_blocks_per_level():
    x, t = inputs()
    assert_gradients_ok(tiny(channel_mults=(1, 2, 2), num_res_blocks=2, attention=False), x, t, **FEW)


def test_gradient_check_conditional_fills_the_label_table():
    model = tiny(num_classes=3)
    x, t = inputs()
    report = assert_gradients_ok(model, x, t, np.array([0, 3]), **FEW)
    assert "y_embed.weight" in report.errors
    g = model.gradients()["y_embed.weight"]
    assert np.any(g[0]) and np.any(g[3]) and not np.any(g[1:3])   # only the rows that were used


def test_every_parameter_gets_a_gradient():
    model = tiny(num_classes=3)
    x, t = inputs()
    model.backward(np.ones_like(model.forward(x, t, np.array([1, 2]))))
    zero = [k for k, g in model.gradients().items() if not np.any(g) and "y_embed" not in k]
    assert zero == []


def test_backward_returns_dx_in_the_input_dtype():
    model = tiny(dtype=np.float32)
    x, t = inputs()
    out = model.forward(x, t)                      # float64 noise from a sampler goes into a float32 model
    assert out.dtype == np.float32
    assert model.backward(np.ones_like(out)).dtype == np.float64


def test_no_label_means_the_null_label():
    model = tiny(num_classes=3)
    x, t = inputs()
    np.testing.assert_array_equal(model(x, t), model(x, t, np.full(2, model.null_label)))


def test_labels_change_the_output():
    model = tiny(num_classes=3)
    x, t = inputs()
    assert not np.allclose(model(x, t, np.array([0, 0])), model(x, t, np.array([1, 1])))


def test_unconditional_model_rejects_labels():
    x, t = inputs()
    with pytest.raises(ValueError, match="unconditional"):
        tiny()(x, t, np.array([0, 1]))


def test_image_size_must_be_divisible_by_the_downsampling():
    with pytest.raises(ValueError, match="divisible by 2"):
        tiny()(np.zeros((1, 1, 7, 7)), np.array([1]))


def test_num_groups_must_divide_every_level():
    with pytest.raises(ValueError, match="num_groups=3"):
        UNetConfig(base_channels=8, num_groups=3)


def test_state_dict_round_trip_gives_the_same_output():
    a, b = tiny(num_classes=3), UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_groups=2, emb_dim=16,
                                                num_classes=3), rng=5, dtype=np.float64)
    x, t = inputs()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x, t, np.array([0, 1])), b(x, t, np.array([0, 1])))


def test_backward_without_input_grad_fills_the_same_parameter_gradients_and_returns_none():
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((2, 1, 8, 8)), np.array([3, 7])
    full, fast = tiny(), tiny()
    dy = rng.standard_normal(full.forward(x, t).shape)
    fast.forward(x, t)
    full.backward(dy)
    assert fast.backward(dy, input_grad=False) is None
    for k, g in full.gradients().items():
        np.testing.assert_array_equal(fast.gradients()[k], g)
